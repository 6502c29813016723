"""Metric history: one JSON object per dataset and partition date in S3.

``s3://<bucket>/<prefix>/history/<dataset>/dt=<YYYY-MM-DD>.json`` holds the profile of that
partition and the gate's verdict. One object per date means a rerun of a date replaces
exactly that date's entry, and concurrent backfill runs never write the same object.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_DATE = re.compile(r"dt=(\d{4}-\d{2}-\d{2})\.json$")
FAILED = "failed"


class HistoryError(RuntimeError):
    """An entry cannot be read; the message names the object."""


@dataclass(frozen=True)
class HistoryEntry:
    dataset: str
    partition: str
    status: str  # passed | warning | failed
    metrics: dict[str, Any]
    recorded_at: str
    job_name: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "partition": self.partition,
            "status": self.status,
            "recorded_at": self.recorded_at,
            "job_name": self.job_name,
            "metrics": self.metrics,
        }


class MetricHistoryStore:
    """Reads and writes entries with a boto3 S3 client (the caller's credentials/endpoint)."""

    def __init__(self, s3: Any, bucket: str, prefix: str = "quality/history"):
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def key(self, dataset: str, partition: str) -> str:
        return f"{self.prefix}/{dataset}/dt={_date(partition).isoformat()}.json"

    def uri(self, dataset: str, partition: str) -> str:
        return f"s3://{self.bucket}/{self.key(dataset, partition)}"

    def put(
        self,
        dataset: str,
        partition: str,
        metrics: Mapping[str, Any],
        *,
        status: str,
        job_name: str | None = None,
        now: dt.datetime | None = None,
    ) -> HistoryEntry:
        entry = HistoryEntry(
            dataset=dataset,
            partition=_date(partition).isoformat(),
            status=status,
            metrics=dict(metrics),
            recorded_at=(now or dt.datetime.now(dt.UTC)).isoformat(),
            job_name=job_name,
        )
        self.s3.put_object(
            Bucket=self.bucket,
            Key=self.key(dataset, partition),
            Body=json.dumps(entry.to_json(), indent=1).encode(),
            ContentType="application/json",
        )
        return entry

    def get(self, dataset: str, partition: str) -> HistoryEntry | None:
        key = self.key(dataset, partition)
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None
        return _entry(body, f"s3://{self.bucket}/{key}")

    def dates(self, dataset: str) -> list[dt.date]:
        found = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/{dataset}/"):
            for item in page.get("Contents", []):
                match = _DATE.search(item["Key"])
                if match:
                    found.append(dt.date.fromisoformat(match.group(1)))
        return sorted(found)

    def before(
        self, dataset: str, partition: str, *, days: int = 90, include_failed: bool = False
    ) -> list[HistoryEntry]:
        """Entries of the ``days`` dates before ``partition``, oldest first.

        Only earlier dates count, so a backfill of an old date compares it with its own past.
        Partitions that failed the gate are left out unless asked for: a bad day must not
        become the baseline the next day is judged against.
        """
        day = _date(partition)
        start = day - dt.timedelta(days=days)
        entries = []
        for date in self.dates(dataset):
            if start <= date < day:
                entry = self.get(dataset, date.isoformat())
                if entry is not None and (include_failed or entry.status != FAILED):
                    entries.append(entry)
        return entries


def _entry(body: bytes, where: str) -> HistoryEntry:
    try:
        raw = json.loads(body)
        return HistoryEntry(
            dataset=raw["dataset"],
            partition=raw["partition"],
            status=raw["status"],
            metrics=raw["metrics"],
            recorded_at=raw["recorded_at"],
            job_name=raw.get("job_name"),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise HistoryError(
            f"metric history entry {where} is malformed ({exc}): delete it, or rerun that "
            "date's validation to rewrite it"
        ) from None


def _date(partition: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(partition)[:10])
    except ValueError:
        raise ValueError(
            f"partition {partition!r} is not a date (YYYY-MM-DD): history is keyed by date"
        ) from None
