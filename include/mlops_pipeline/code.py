"""The job code (containers/) in S3 at a content-hash key: the code version *is* the hash.

One upload serves every job of a run: ``s3://<bucket>/<code_prefix>/<version>/src/<file>``
for Processing jobs (a ProcessingInput under /opt/ml/processing/input/code) and
``.../sourcedir.tar.gz`` for script mode (``sagemaker_submit_directory`` of training,
``SAGEMAKER_SUBMIT_DIRECTORY`` of inference). The same files always give the same version
and the same bytes, so publishing again is a no-op and a registered model names exactly
the code that trained it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_pipeline.config import Settings

CONTAINERS = Path(__file__).resolve().parent / "containers"
SOURCEDIR = "sourcedir.tar.gz"


@dataclass(frozen=True)
class CodeBundle:
    version: str
    prefix: str  # s3://bucket/<code_prefix>/<version>

    @property
    def code_uri(self) -> str:
        """The prefix holding the plain files (a Processing job's code input)."""
        return f"{self.prefix}/src/"

    @property
    def sourcedir_uri(self) -> str:
        return f"{self.prefix}/{SOURCEDIR}"

    def to_xcom(self) -> dict[str, str]:
        return {
            "code_version": self.version,
            "code_uri": self.code_uri,
            "sourcedir_uri": self.sourcedir_uri,
        }


def collect(directory: Path = CONTAINERS) -> dict[str, bytes]:
    """The job code: every top-level ``*.py`` file (caches and hidden files left out)."""
    files = {
        path.name: path.read_bytes()
        for path in sorted(directory.glob("*.py"))
        if not path.name.startswith((".", "_"))
    }
    if not files:
        raise FileNotFoundError(f"no job code (*.py) in {directory}")
    return files


def version_of(files: Mapping[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:16]


def sourcedir_tarball(files: Mapping[str, bytes]) -> bytes:
    """A reproducible tar.gz (fixed order, times and owners): same files, same bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(files[name]))
    return gzip.compress(raw.getvalue(), mtime=0)


def bundle(settings: Settings, version: str) -> CodeBundle:
    return CodeBundle(version, settings.s3_uri(settings.code_prefix, version))


def publish(s3: Any, settings: Settings, directory: Path = CONTAINERS) -> CodeBundle:
    """Upload the job code unless this version is already there; return where it is."""
    files = collect(directory)
    result = bundle(settings, version_of(files))
    bucket, prefix = settings.bucket, result.prefix.split("/", 3)[3]
    try:
        s3.head_object(Bucket=bucket, Key=f"{prefix}/{SOURCEDIR}")
        return result
    except s3.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
    for name, data in files.items():
        s3.put_object(Bucket=bucket, Key=f"{prefix}/src/{name}", Body=data)
    # the tarball goes last: its presence means the version is complete
    s3.put_object(Bucket=bucket, Key=f"{prefix}/{SOURCEDIR}", Body=sourcedir_tarball(files))
    return result
