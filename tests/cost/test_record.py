"""A run's cost record from local_aws: the finder picks the run's jobs by their tags (and
nothing of another run), the record lands in S3, the report reads it back."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from mlops_pipeline import naming
from mlops_pipeline.config import load_settings
from mlops_pipeline.cost import prices, record
from tests.conftest import unique, wait_for
from tests.jobkit import processing_request

SCRIPT = "print('hello from a processing job')\n"


def start_job(sm, s3, bucket: str, run_id: str, task_id: str, instance_type: str) -> str:
    name = unique("cost-job")
    key = f"{name}/input/code/prep.py"
    s3.put_object(Bucket=bucket, Key=key, Body=SCRIPT.encode())
    request = processing_request(
        name,
        code_uri=f"s3://{bucket}/{key}",
        Tags=naming.airflow_tags("cost_dag", run_id, task_id),
    )
    request["ProcessingResources"]["ClusterConfig"]["InstanceType"] = instance_type
    sm.create_processing_job(**request)
    return name


@pytest.fixture
def settings(bucket, monkeypatch):
    monkeypatch.setenv("MLOPS_BUCKET", bucket)
    return load_settings()


def test_the_record_lists_the_runs_jobs_and_nothing_else(sm, s3, bucket, settings):
    run_id, other_run = unique("manual__run"), unique("manual__other")
    start = dt.datetime.now(dt.UTC)
    ours = {
        start_job(sm, s3, bucket, run_id, "prepare", "ml.m5.large"): "prepare",
        start_job(sm, s3, bucket, run_id, "score", "ml.m5.24xlarge"): "score",
    }
    theirs = start_job(sm, s3, bucket, other_run, "prepare", "ml.m5.large")
    for name in [*ours, theirs]:
        wait_for(
            lambda n=name: sm.describe_processing_job(ProcessingJobName=n), "ProcessingJobStatus"
        )
    end = dt.datetime.now(dt.UTC)

    run = record.RunInfo("cost_dag", run_id, "success", start, end)
    rec = record.collect(sm, s3, settings, run)

    assert {j["name"]: j["task_id"] for j in rec["jobs"]} == ours
    by_name = {j["name"]: j for j in rec["jobs"]}
    table = prices.load()
    known = next(j for j in rec["jobs"] if j["instance_type"] == "ml.m5.large")
    described = sm.describe_processing_job(ProcessingJobName=known["name"])
    seconds = (described["ProcessingEndTime"] - described["ProcessingStartTime"]).total_seconds()
    expected = (
        seconds
        / 3600
        * (
            table.rate("us-east-1", "processing", "ml.m5.large")
            + 5 * table.storage_rate("us-east-1")  # the request's 5 GB volume
        )
    )
    assert known["total_usd"] == pytest.approx(expected, rel=1e-6)
    # the instance type the table lacks is unknown, and so is the run's total
    unknown = next(j for j in by_name.values() if j["instance_type"] == "ml.m5.24xlarge")
    assert unknown["total_usd"] is None
    assert rec["unknown_cost_jobs"] == [unknown["name"]] and rec["total_usd"] is None
    assert rec["prices"]["as_of"] == table.as_of

    # stored in S3 under the DAG, and read back for the report
    stored = json.loads(
        s3.get_object(Bucket=bucket, Key=rec["uri"].split("/", 3)[3])["Body"].read()
    )
    assert stored == rec
    assert rec["uri"].startswith(f"s3://{bucket}/cost/cost_dag/")
    assert record.read_all(s3, bucket, "cost", "cost_dag") == [rec]
    assert record.read_all(s3, bucket, "cost", "cost_dag", since=end + dt.timedelta(hours=1)) == []
    line = record.summary(rec)
    assert f"cost_dag run {run_id} (success) cost $" in line and "unknown for 1 job(s)" in line
    assert rec["uri"] in line and table.as_of in line
    text = record.table([rec])
    assert run_id in text and f"prices as of {table.as_of}" in text


def test_a_run_without_jobs_has_an_empty_record(sm, s3, settings):
    now = dt.datetime.now(dt.UTC)
    run = record.RunInfo("cost_dag", unique("manual__empty"), "failed", now, now)
    rec = record.collect(sm, s3, settings, run)
    assert rec["jobs"] == [] and rec["total_usd"] == 0
    assert "no SageMaker jobs" in record.summary(rec)


def test_the_record_is_made_while_the_process_exits(sm, s3, bucket, aws_conn):
    """``airflow dags test`` ends right after the run: the listener's thread then works while
    the interpreter shuts down, when no new thread may start."""
    import subprocess
    import sys
    import textwrap

    run_id = unique("manual__exiting")
    start = dt.datetime.now(dt.UTC)
    name = start_job(sm, s3, bucket, run_id, "prepare", "ml.m5.large")
    wait_for(lambda: sm.describe_processing_job(ProcessingJobName=name), "ProcessingJobStatus")
    script = textwrap.dedent(
        f"""
        import datetime as dt, threading
        from mlops_pipeline.config import load_settings
        from mlops_pipeline.cost import listener, record

        main = threading.main_thread()
        run = record.RunInfo("cost_dag", {run_id!r}, "success",
                             dt.datetime.fromisoformat({start.isoformat()!r}),
                             dt.datetime.now(dt.UTC))

        def after_main():
            main.join()  # the interpreter is shutting down from here on
            rec = listener.record_cost(run, load_settings())
            print("JOBS", [j["name"] for j in rec["jobs"]] if rec else None, flush=True)

        threading.Thread(target=after_main).start()
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MLOPS_BUCKET": bucket},
    )
    assert f"JOBS {[name]!r}" in out.stdout, out.stdout[-2000:] + out.stderr[-3000:]


def test_a_record_over_the_candidate_bound_says_it_is_incomplete(sm, s3, bucket, settings):
    from mlops_pipeline.cost import finder

    run_id = unique("manual__busy")
    start = dt.datetime.now(dt.UTC)
    names = [start_job(sm, s3, bucket, run_id, "prepare", "ml.m5.large") for _ in range(2)]
    for name in names:
        wait_for(
            lambda n=name: sm.describe_processing_job(ProcessingJobName=n), "ProcessingJobStatus"
        )
    end = dt.datetime.now(dt.UTC)

    found, skipped = finder.find_run(sm, "cost_dag", run_id, start, end)
    assert sorted(f.description["ProcessingJobName"] for f in found) == sorted(names)
    assert skipped == 0
    found, skipped = finder.find_run(sm, "cost_dag", run_id, start, end, max_candidates=1)
    assert len(found) <= 1 and skipped >= 1
    rec = record.build(
        record.RunInfo("cost_dag", run_id, "success", start, end), found, prices.load(), "us-east-1"
    )
    rec["unexamined_resources"] = skipped
    assert f"INCOMPLETE: {skipped} resources created meanwhile were not examined" in (
        record.summary(rec)
    )
