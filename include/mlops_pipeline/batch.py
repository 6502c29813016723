"""batch_inference's pure parts: where a day's data live, which model scores it, the
transform request, and the manifest that publishes it.

S3 layout of one day (``D`` = YYYY-MM-DD)::

    <raw_prefix>/dt=D/part-*.csv, _SUCCESS      the input (datagen writes the marker last)
    <batch_prefix>/staging/dt=D/<transform job>/ the transform's output, before validation
    <predictions_prefix>/dt=D/part-00000.csv     published: transaction_id,score,model_version
    <predictions_prefix>/dt=D/_manifest.json     model package, row counts, checksums
                                                 (the run id: S3 metadata, x-amz-meta-run-id)
    <batch_prefix>/drift/dt=D/drift.json         the day's PSI report

The transform job is named from the date and a hash of the model package and the input
objects' ETags: a rerun or a backfill of a date with the same model and data finds the job
that already scored it (one job per date), while a corrected partition or a newly approved
model gets a job of its own.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlops_pipeline import naming, registry
from mlops_pipeline.config import Settings

DAG_ID = "batch_inference"
DATA_FILE_PREFIX = "part-"  # the input prefix ends mid-name: data files, not the marker
PUBLISHED_FILE = "part-00000.csv"
MANIFEST_FILE = "_manifest.json"
# batch transform's view of a raw row: the columns event_time..distance_from_home_km go to
# the model (no id, no label); the joined output keeps the id, the score and the version
INPUT_FILTER = "$[1:12]"
OUTPUT_FILTER = "$[0,-2,-1]"
OUTPUT_COLUMNS = ("transaction_id", "score", "model_version")
VERSION_ENV = "MLOPS_MODEL_VERSION"  # containers/inference.py appends it to every score


class NoApprovedModel(LookupError):
    """The group has no Approved package: nothing may score the day."""


class OutputMismatch(ValueError):
    """The transform output does not match its input row for row."""


# -- where things are ----------------------------------------------------------------------------
@dataclass(frozen=True)
class DayPaths:
    settings: Settings
    partition: str  # YYYY-MM-DD

    @property
    def raw_prefix(self) -> str:
        return f"{self.settings.raw_prefix.strip('/')}/dt={self.partition}/"

    @property
    def raw_uri(self) -> str:
        return self.settings.s3_uri(self.raw_prefix) + "/"

    @property
    def marker_key(self) -> str:
        return self.raw_prefix + self.settings.partition_marker

    @property
    def input_uri(self) -> str:
        """An S3Prefix that ends mid-name: every data file of the day, not the marker."""
        return self.raw_uri + DATA_FILE_PREFIX

    def staging_uri(self, job_name: str) -> str:
        return self.settings.s3_uri(
            self.settings.batch_prefix, "staging", f"dt={self.partition}", job_name
        )

    @property
    def published_prefix(self) -> str:
        return f"{self.settings.predictions_prefix.strip('/')}/dt={self.partition}/"

    @property
    def published_uri(self) -> str:
        return self.settings.s3_uri(self.published_prefix) + "/"

    @property
    def drift_report_uri(self) -> str:
        return self.settings.s3_uri(
            self.settings.batch_prefix, "drift", f"dt={self.partition}", "drift.json"
        )


# -- the model -----------------------------------------------------------------------------------
def approved_package(sm: Any, group: str) -> dict[str, Any]:
    """DescribeModelPackage of the group's newest Approved version.

    :raises NoApprovedModel: no group, or nothing in it approved, with what to do about it
    """
    package = registry.newest_approved(sm, group)
    if package is None:
        raise NoApprovedModel(
            f"model package group {group!r} has no Approved model package, so nothing may "
            "score this day: run model_build, then approve its package (Airflow UI, model "
            "registry, or update_model_package ModelApprovalStatus=Approved) and clear this task"
        )
    return package


def model_version(package: Mapping[str, Any]) -> str:
    """``<group>/<version>``: what every published score names as its model."""
    return f"{package['ModelPackageGroupName']}/{package['ModelPackageVersion']}"


def _digest(*parts: str, length: int = 8) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:length]


def model_name(package: Mapping[str, Any]) -> str:
    """The SageMaker Model for a package: one per package, reused by every day."""
    group = naming._slug(str(package["ModelPackageGroupName"]))
    suffix = f"-v{package['ModelPackageVersion']}-{_digest(package['ModelPackageArn'])}"
    return group[: 63 - len(suffix)].strip("-") + suffix


def job_key(partition: str, package_arn: str, input_etags: Sequence[str]) -> str:
    """``YYYYMMDD-<hash of the package and the input objects>``: the transform's name key."""
    return f"{partition.replace('-', '')}-{_digest(package_arn, *sorted(input_etags), length=6)}"


def input_etags(s3: Any, settings: Settings, partition: str) -> list[str]:
    """ETags of the day's data files; a clear error when the day has none."""
    paths = DayPaths(settings, partition)
    prefix = paths.raw_prefix + DATA_FILE_PREFIX
    tags = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket, Prefix=prefix):
        tags += [f"{o['Key']}:{o['ETag']}" for o in page.get("Contents", [])]
    if not tags:
        raise FileNotFoundError(
            f"partition {partition} has no data files ({paths.input_uri}*): was the day exported?"
        )
    return tags


# -- transform -----------------------------------------------------------------------------------
def transform_request(
    settings: Settings,
    run: Any,
    *,
    name: str,
    model_name: str,
    model_version: str,
    partition: str,
) -> dict[str, Any]:
    """CreateTransformJob over the day's raw files: every score joined to its transaction_id
    (JoinSource Input, filters), written to the day's staging prefix."""
    paths = DayPaths(settings, partition)
    output: dict[str, Any] = {
        "S3OutputPath": paths.staging_uri(name),
        "Accept": "text/csv",
        "AssembleWith": "Line",
    }
    resources: dict[str, Any] = {
        "InstanceType": settings.transform_instance_type,
        "InstanceCount": settings.transform_instance_count,
    }
    if settings.kms_key_id:
        output["KmsKeyId"] = settings.kms_key_id
        resources["VolumeKmsKeyId"] = settings.kms_key_id
    return {
        "TransformJobName": name,
        "ModelName": model_name,
        "MaxConcurrentTransforms": settings.transform_max_concurrent,
        "MaxPayloadInMB": settings.transform_max_payload_mb,
        "BatchStrategy": "MultiRecord",
        "ModelClientConfig": {"InvocationsTimeoutInSeconds": 600, "InvocationsMaxRetries": 1},
        "Environment": {VERSION_ENV: model_version},
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": paths.input_uri}},
            "ContentType": "text/csv",
            "CompressionType": "None",
            "SplitType": "Line",
        },
        "TransformOutput": output,
        "TransformResources": resources,
        "DataProcessing": {
            "InputFilter": INPUT_FILTER,
            "JoinSource": "Input",
            "OutputFilter": OUTPUT_FILTER,
        },
        "Tags": run.tags,
    }


# -- publish -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckedOutput:
    rows: int  # data rows, header not counted
    sha256: str
    bytes: int


def check_output(
    input_lines: Iterable[str], output_lines: Iterable[str], where: str
) -> CheckedOutput:
    """The output holds one row per input row, in order, with the input's transaction_id,
    the header ``transaction_id,score,model_version`` first and a score in [0, 1].

    Streams both (memory stays flat); returns the output's row count and SHA-256.
    """
    digest = _Digest()
    inputs = csv.reader(input_lines)
    outputs = csv.reader(digest.lines(output_lines))
    in_header = next(inputs, None)
    out_header = next(outputs, None)
    if in_header is None or "transaction_id" not in in_header:
        raise OutputMismatch(f"{where}: the input has no header with transaction_id")
    if out_header is None or tuple(out_header) != OUTPUT_COLUMNS:
        raise OutputMismatch(
            f"{where}: the output starts with {out_header!r}, not the header "
            f"{','.join(OUTPUT_COLUMNS)}: is the model's inference.py the batch-capable one?"
        )
    id_at = in_header.index("transaction_id")
    rows = 0
    for row in inputs:
        if not row:
            continue
        out = next(outputs, None)
        rows += 1
        if out is None:
            raise OutputMismatch(
                f"{where}: the output ends after {rows - 1} rows; the input has more"
            )
        if out[0] != row[id_at]:
            raise OutputMismatch(
                f"{where}: row {rows} scores {out[0]!r} where the input has {row[id_at]!r}"
            )
        try:
            score = float(out[1])
        except (ValueError, IndexError):
            raise OutputMismatch(f"{where}: row {rows} has no numeric score: {out!r}") from None
        if not 0.0 <= score <= 1.0:
            raise OutputMismatch(f"{where}: row {rows} has score {score} outside [0, 1]")
    extra = next(outputs, None)
    if extra is not None:
        raise OutputMismatch(f"{where}: the output has more rows than the input's {rows}")
    for _ in outputs:  # drain, so the checksum covers the whole file
        pass
    return CheckedOutput(rows, digest.sha256.hexdigest(), digest.size)


class _Digest:
    """SHA-256 and size of the lines passing through."""

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.size = 0

    def lines(self, lines: Iterable[str]) -> Iterator[str]:
        for line in lines:
            data = line.encode()
            self.sha256.update(data)
            self.size += len(data)
            yield line


def text_lines(body: Any, chunk: int = 1 << 20) -> Iterator[str]:
    """An S3 streaming body as text lines, line ends kept (memory: one chunk)."""
    return iter(io.TextIOWrapper(io.BufferedReader(_RawStream(body), chunk), "utf-8", newline=""))


class _RawStream(io.RawIOBase):
    def __init__(self, body: Any):
        self.body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


RUN_ID_METADATA = "run-id"  # S3 user metadata of the published objects: who wrote them


def manifest(
    *,
    partition: str,
    package: Mapping[str, Any],
    transform_job: str,
    input_uri: str,
    files: Sequence[tuple[str, CheckedOutput]],
) -> bytes:
    """The published day's manifest, as bytes: what was scored, by which model, and the
    output's checksums. Nothing that differs between runs goes in (no clock, no run id: the
    run that wrote it is the object's ``run-id`` metadata), so a rerun or a backfill of a
    date under a new run id writes the same bytes."""
    rows = sum(checked.rows for _, checked in files)
    document = {
        "partition": partition,
        "model_package_arn": package["ModelPackageArn"],
        "model_version": model_version(package),
        "transform_job": transform_job,
        "input": {"uri": input_uri, "rows": rows},
        "files": [
            {"key": key, "rows": c.rows, "bytes": c.bytes, "sha256": c.sha256} for key, c in files
        ],
        "columns": list(OUTPUT_COLUMNS),
        "rows": rows,
    }
    return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()
