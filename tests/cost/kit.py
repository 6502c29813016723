"""Cost records of synthetic runs, for the report, estimate and view tests."""

from __future__ import annotations

import datetime as dt

from mlops_pipeline.cost import prices, record
from mlops_pipeline.cost.finder import Found

# minutes of one ml.m5.large transform job per run: $0.115/h → these cost 0.115 × m / 60
MINUTES = [60, 30, 90, 60, 120, 30]


def transform_run(day: int, minutes: int, state: str = "success") -> dict:
    start = dt.datetime(2026, 1, day, 1, tzinfo=dt.UTC)
    job = {
        "TransformJobName": f"batch-inference-transform-202601{day:02d}",
        "TransformJobStatus": "Completed",
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        "TransformStartTime": start,
        "TransformEndTime": start + dt.timedelta(minutes=minutes),
    }
    run = record.RunInfo(
        "batch_inference",
        f"scheduled__2026-01-{day:02d}T00:00:00+00:00",
        state,
        start,
        start + dt.timedelta(minutes=minutes + 5),
    )
    return record.build(run, [Found("transform", "transform", job)], prices.load(), "us-east-1")


def store(s3, bucket: str, records: list[dict]) -> None:
    for r in records:
        key = record.key("cost", r["dag_id"], r["run_id"], dt.datetime.fromisoformat(r["start"]))
        record.write(s3, bucket, key, r)
