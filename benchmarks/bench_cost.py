"""The cost listener's work at run end: find a run's 50 jobs among another run's 50 by their
tags, cost them and write the record (the issue's bound: 1 s on local_aws)."""

from __future__ import annotations

import datetime as dt
import statistics
import time
import uuid
from typing import Any

from benchmarks.harness import Row

JOBS = 50
TARGET_SECONDS = 1.0
# an image local_aws cannot run: the job ends Failed at once, with its description and tags
# as a real one has them, so the benchmark measures the listener and not the jobs
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/bench-noop:1"


def _start_jobs(sm: Any, dag_id: str, run_id: str, count: int) -> list[str]:
    from mlops_pipeline import naming
    from tests.jobkit import processing_request

    names = []
    for i in range(count):
        name = f"bench-cost-{uuid.uuid4().hex[:8]}-{i}"
        request = processing_request(
            name, image=IMAGE, Tags=naming.airflow_tags(dag_id, run_id, f"task_{i % 5}")
        )
        sm.create_processing_job(**request)
        names.append(name)
    return names


def _wait_ended(sm: Any, names: list[str]) -> None:
    deadline = time.monotonic() + 120
    for name in names:
        while sm.describe_processing_job(ProcessingJobName=name)["ProcessingJobStatus"] in (
            "InProgress",
            "Stopping",
        ):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} did not end")
            time.sleep(0.05)


def _record_seconds(
    sm: Any, s3: Any, settings: Any, run: Any, repeats: int
) -> tuple[float, dict[str, Any]]:
    from mlops_pipeline.cost import prices, record

    table = prices.load()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        rec = record.collect(sm, s3, settings, run, table)
        times.append(time.perf_counter() - started)
    return statistics.median(times), rec


def run(aws: Any, repeats: int = 5) -> list[Row]:
    from mlops_pipeline.config import load_settings
    from mlops_pipeline.cost.record import RunInfo

    s3, sm = aws.client("s3"), aws.client("sagemaker")
    bucket = f"bench-cost-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    settings = load_settings({"MLOPS_BUCKET": bucket})

    start = dt.datetime.now(dt.UTC)
    big, other, small = (f"manual__bench-{uuid.uuid4().hex[:6]}" for _ in range(3))
    names = _start_jobs(sm, "bench_dag", big, JOBS)
    names += _start_jobs(sm, "bench_dag", other, JOBS)  # a concurrent run's: not counted
    names += _start_jobs(sm, "bench_dag", small, 1)
    _wait_ended(sm, names)
    end = dt.datetime.now(dt.UTC)

    big_seconds, rec = _record_seconds(
        sm, s3, settings, RunInfo("bench_dag", big, "success", start, end), repeats
    )
    assert len(rec["jobs"]) == JOBS, len(rec["jobs"])
    small_seconds, _ = _record_seconds(
        sm, s3, settings, RunInfo("bench_dag", small, "success", start, end), repeats
    )
    return [
        Row(
            f"cost record at run end ({JOBS} jobs of {2 * JOBS + 1} listed)",
            big_seconds,
            "s",
            baseline=small_seconds,
            baseline_name="a 1-job run among them",
            target=f"<= {TARGET_SECONDS:g} s",
            ok=big_seconds <= TARGET_SECONDS,
        )
    ]
