"""Moving job data between S3 and a job's sandbox, the way SageMaker's agents do."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from local_aws.sagemaker.errors import ValidationException


class InputError(Exception):
    """Job input that cannot be fetched as asked (no objects, or a key that would escape);
    the job fails with a ClientError carrying this message."""


def split_s3_uri(uri: str, *, field: str = "S3Uri") -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValidationException(
            f"{field} must be an s3:// URI like s3://bucket/prefix, got {uri!r}"
        )
    return parsed.netloc, parsed.path.lstrip("/")


def require_bucket(s3: Any, uri: str, *, field: str) -> None:
    """Raise InputError when ``uri``'s bucket does not exist: checked before a job runs, so
    its work is not lost at upload time."""
    from botocore.exceptions import ClientError

    bucket, _ = split_s3_uri(uri, field=field)
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        raise InputError(
            f"{field}: the bucket {bucket!r} of {uri} does not exist or cannot be reached "
            f"({exc.response.get('Error', {}).get('Code', 'error')}): create it first"
        ) from exc


def list_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []) if not obj["Key"].endswith("/"))
    return keys


def download(s3: Any, uri: str, dest: Path, *, data_type: str = "S3Prefix") -> int:
    """Copy an S3Prefix, ManifestFile or single object into ``dest``; return the object count.

    As in SageMaker, keys land at their path below the prefix: ``s3://b/train`` and
    ``s3://b/train/`` both put ``train/x.csv`` at ``x.csv``; a single object keeps its name.
    """
    bucket, prefix = split_s3_uri(uri)
    dest.mkdir(parents=True, exist_ok=True)
    if data_type == "ManifestFile":
        return _download_manifest(s3, bucket, prefix, dest)
    keys = list_keys(s3, bucket, prefix)
    if not keys:
        raise InputError(f"No S3 objects found under URI {uri}")
    targets = [(key, inside(dest, relative_key(key, prefix), key)) for key in keys]
    for key, target in targets:  # every key checked before anything is written
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(target))
    return len(keys)


def inside(dest: Path, relative: str, key: str) -> Path:
    """``dest / relative``, refusing a key whose path would land outside ``dest``.

    S3 keys are free text: ``data/../../etc/x`` or an absolute manifest entry would
    otherwise be written to that host path by local_aws itself.
    """
    target = Path(os.path.normpath(dest / relative))
    if os.path.isabs(relative) or target == dest or not target.is_relative_to(dest):
        raise InputError(
            f"S3 object key {key!r} does not map to a file inside the job's directory "
            f"({relative!r} has '..' segments, is absolute or empty): rename the object"
        )
    return target


def relative_key(key: str, prefix: str) -> str:
    """Where an object listed under ``prefix`` lands below the destination (see ``download``)."""
    if key == prefix:
        return key.rsplit("/", 1)[-1]
    rest = key[len(prefix) :]
    if prefix.endswith("/") or rest.startswith("/"):
        return rest.lstrip("/")
    # a prefix that ends mid-name ("data/tr" for "data/train.csv"): keep the file's own name
    directory = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
    return key[len(directory) :]


def _download_manifest(s3: Any, bucket: str, key: str, dest: Path) -> int:
    import json

    manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    prefix = manifest[0]["prefix"]
    src_bucket, src_prefix = split_s3_uri(prefix)
    targets = [
        (relative, inside(dest, relative, src_prefix + relative)) for relative in manifest[1:]
    ]
    for relative, target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(src_bucket, src_prefix + relative, str(target))
    return len(manifest) - 1


def upload_dir(s3: Any, src: Path, uri: str) -> int:
    """Upload every file below ``src`` to ``uri`` (a prefix); return the file count."""
    bucket, prefix = split_s3_uri(uri)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    count = 0
    for root, _, files in os.walk(src):
        for name in sorted(files):
            path = Path(root) / name
            s3.upload_file(str(path), bucket, prefix + path.relative_to(src).as_posix())
            count += 1
    return count


def upload_tar_gz(s3: Any, src: Path, uri: str) -> None:
    """Pack ``src``'s contents (not the folder itself) into a tar.gz at ``uri``."""
    bucket, key = split_s3_uri(uri)
    archive = src.parent / f".{src.name}.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        for entry in sorted(src.iterdir()) if src.exists() else []:
            tar.add(entry, arcname=entry.name)
    try:
        s3.upload_file(str(archive), bucket, key)
    finally:
        archive.unlink(missing_ok=True)


def download_and_extract(s3: Any, uri: str, dest: Path) -> None:
    """Fetch a model.tar.gz / sourcedir.tar.gz and unpack it (refusing paths that escape)."""
    bucket, key = split_s3_uri(uri)
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / ".download.tar.gz"
    s3.download_file(bucket, key, str(archive))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
    finally:
        archive.unlink(missing_ok=True)
