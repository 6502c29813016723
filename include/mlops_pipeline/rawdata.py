"""The raw daily partitions in S3: which files a data window holds, and the manifest that
gives the preprocess job exactly those files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mlops_pipeline import jobs
from mlops_pipeline.config import Settings


def partition_keys(s3: Any, settings: Settings, partitions: Sequence[str]) -> list[str]:
    """The data files of the partitions (``_SUCCESS``-style markers and dotfiles left out)."""
    prefix = settings.raw_prefix.strip("/")
    keys = []
    paginator = s3.get_paginator("list_objects_v2")
    for day in partitions:
        for page in paginator.paginate(Bucket=settings.bucket, Prefix=f"{prefix}/dt={day}/"):
            for obj in page.get("Contents", []):
                if not obj["Key"].rsplit("/", 1)[-1].startswith(("_", ".")):
                    keys.append(obj["Key"])
    return keys


def write_manifest(s3: Any, settings: Settings, partitions: Sequence[str], uri: str) -> int:
    """Write the window's ManifestFile to ``uri``; returns how many files it lists.

    Writes nothing when the window holds no files: a missing day is the data-quality
    gate's to report, by name, before preprocess would need the manifest.
    """
    keys = partition_keys(s3, settings, partitions)
    if keys:
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        body = json.dumps(jobs.manifest(settings, keys)).encode()
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    return len(keys)
