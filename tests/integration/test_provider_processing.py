"""The unmodified Amazon provider's processing operator and sensor against local_aws."""

from __future__ import annotations

import copy
import re
import textwrap
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import unique, wait_for
from tests.integration.provider_kit import run_dag, states, xcom
from tests.jobkit import processing_request, s3_input, s3_output

# A cleaning step of the kind model_build runs: drop bad rows, write features and a report.
PREP = """
import csv, json, os, sys

src, out, report = sys.argv[1:4]
rows = [r for f in sorted(os.listdir(src)) for r in csv.DictReader(open(os.path.join(src, f)))]
kept = [r for r in rows if r["amount"] and float(r["amount"]) > 0]
with open(os.path.join(out, "clean.csv"), "w", newline="") as fh:
    writer = csv.DictWriter(fh, fieldnames=["id", "amount"])
    writer.writeheader()
    writer.writerows(kept)
json.dump({"rows_in": len(rows), "rows_kept": len(kept)}, open(os.path.join(report, "metrics.json"), "w"))
print(f"kept {len(kept)} of {len(rows)} rows", flush=True)
"""
BROKEN = """
raise RuntimeError("the amount column is missing from the input partition")
"""
SLOW = """
import time
time.sleep(60)
"""
RAW = "id,amount\n1,5.0\n2,\n3,-1\n4,12.5\n"


@dataclass
class Inputs:
    bucket: str
    code: str
    broken: str
    slow: str
    raw: str


@pytest.fixture(scope="module")
def inputs(s3) -> Inputs:
    bucket = unique("provider-processing")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="code/prep.py", Body=textwrap.dedent(PREP).encode())
    s3.put_object(Bucket=bucket, Key="code/broken.py", Body=textwrap.dedent(BROKEN).encode())
    s3.put_object(Bucket=bucket, Key="code/slow.py", Body=textwrap.dedent(SLOW).encode())
    s3.put_object(Bucket=bucket, Key="raw/2026-01-01/part-0.csv", Body=RAW.encode())
    return Inputs(
        bucket,
        f"s3://{bucket}/code/prep.py",
        f"s3://{bucket}/code/broken.py",
        f"s3://{bucket}/code/slow.py",
        f"s3://{bucket}/raw/2026-01-01/",
    )


def processing_config(name: str, inp: Inputs, *, code: str | None = None) -> dict[str, Any]:
    """A CreateProcessingJob request as SKLearnProcessor.run(code=...) builds it."""
    code = code or inp.code
    out = f"s3://{inp.bucket}/jobs/{name}"
    return processing_request(
        name,
        code_uri=code,
        script=code.split("/")[-1],
        arguments=[
            "/opt/ml/processing/input/raw",
            "/opt/ml/processing/features",
            "/opt/ml/processing/report",
        ],
        inputs=[s3_input("raw", inp.raw, "/opt/ml/processing/input/raw")],
        outputs=[
            s3_output("features", "/opt/ml/processing/features", f"{out}/features"),
            s3_output("report", "/opt/ml/processing/report", f"{out}/report"),
        ],
        StoppingCondition={"MaxRuntimeInSeconds": 120},
    )


def processing_task(task_id: str, config: dict[str, Any], **kwargs: Any) -> Any:
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerProcessingOperator

    kwargs.setdefault("check_interval", 1)
    return SageMakerProcessingOperator(
        task_id=task_id, config=copy.deepcopy(config), aws_conn_id="aws_default", **kwargs
    )


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_processing_operator_runs_the_job_and_returns_its_outputs(
    aws_conn, sm, s3, inputs, deferrable, capfd
):
    name = unique("op-prep")
    mode = "deferrable" if deferrable else "sync"
    run = run_dag(
        f"t_processing_{mode}",
        lambda: processing_task(
            "preprocess",
            processing_config(name, inputs),
            deferrable=deferrable,
            output_files_to_xcom=[
                {"output_name": "report", "file_name": "metrics.json", "result_name": "Report"}
            ],
        ),
    )
    out = capfd.readouterr().out
    assert run.state == "success", out[-3000:]

    job = sm.describe_processing_job(ProcessingJobName=name)
    assert job["ProcessingJobStatus"] == "Completed"
    clean = s3.get_object(Bucket=inputs.bucket, Key=f"jobs/{name}/features/clean.csv")
    assert clean["Body"].read().decode().splitlines() == ["id,amount", "1,5.0", "4,12.5"]

    # XCom: the describe response, plus the JSON report read back from S3
    result = xcom(run, "preprocess")
    assert result["Processing"]["ProcessingJobName"] == name
    assert result["Processing"]["ProcessingJobStatus"] == "Completed"
    assert result["Processing"]["ProcessingJobArn"] == job["ProcessingJobArn"]
    assert result["OutputFiles"] == {"Report": {"rows_in": 4, "rows_kept": 2}}
    if deferrable:
        # logged whether the job ended before the task deferred or in execute_complete
        assert "preprocess completed successfully." in out
    else:
        assert "current status is Completed" in out
        assert "SageMaker resource completed" in out


def test_existing_job_name_gets_a_timestamp_or_fails_the_task(aws_conn, sm, s3, inputs, capfd):
    """action_if_job_exists relies on DescribeProcessingJob's ValidationException for a
    missing name; a second run of the same config creates ``<name>-<epoch seconds>``."""
    from airflow.providers.amazon.aws.sensors.sagemaker import SageMakerProcessingSensor

    name = unique("op-prep-again")
    config = processing_config(name, inputs)
    run = run_dag(
        "t_processing_existing_name",
        lambda: processing_task("first", config, wait_for_completion=False),
        lambda: SageMakerProcessingSensor(
            task_id="wait_first",
            job_name="{{ ti.xcom_pull(task_ids='first')['Processing']['ProcessingJobName'] }}",
            aws_conn_id="aws_default",
            mode="poke",
            poke_interval=1,
            timeout=120,
        ),
        lambda: processing_task("second", config, action_if_job_exists="timestamp"),
        lambda: processing_task("third", config, action_if_job_exists="fail"),
    )
    out = capfd.readouterr().out
    assert states(run) == {
        "first": "success",
        "wait_first": "success",
        "second": "success",
        "third": "failed",
    }, out[-3000:]
    assert run.state == "failed"

    first = xcom(run, "first")["Processing"]
    assert first["ProcessingJobName"] == name
    assert sm.describe_processing_job(ProcessingJobName=name)["ProcessingJobStatus"] == "Completed"
    assert "job currently Completed" in out  # the sensor's poke log

    renamed = xcom(run, "second")["Processing"]["ProcessingJobName"]
    assert re.fullmatch(rf"{name}-\d{{10}}", renamed), renamed
    assert f"Changed job name to '{renamed}' to avoid collision." in out
    assert sm.describe_processing_job(ProcessingJobName=renamed)["ProcessingJobStatus"] == (
        "Completed"
    )
    # the renamed job wrote to the same output prefix, as on AWS
    assert s3.list_objects_v2(Bucket=inputs.bucket, Prefix=f"jobs/{name}/report/")["KeyCount"] == 1

    assert f"A SageMaker job with name {name} already exists." in out
    assert xcom(run, "third") is None


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_failed_processing_fails_the_task_with_the_reason(aws_conn, sm, inputs, deferrable, capfd):
    name = unique("op-prep-fail")
    run = run_dag(
        f"t_processing_fail_{'deferrable' if deferrable else 'sync'}",
        lambda: processing_task(
            "preprocess", processing_config(name, inputs, code=inputs.broken), deferrable=deferrable
        ),
    )
    out = capfd.readouterr().out
    assert run.state == "failed"
    job = sm.describe_processing_job(ProcessingJobName=name)
    assert job["ProcessingJobStatus"] == "Failed"
    assert "the amount column is missing from the input partition" in job["FailureReason"]
    assert "AlgorithmError: See job logs for more information. ExitCode 1" in out
    assert "the amount column is missing from the input partition" in out


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_a_job_over_the_tasks_time_budget_fails_the_task_but_keeps_running(
    aws_conn, sm, inputs, deferrable, capfd
):
    """Sync: max_ingestion_time; deferrable: max_attempts polls of check_interval. Neither
    stops the job: on AWS too it runs on until it ends or someone stops it."""
    name = unique("op-prep-slow")
    budget = {"max_attempts": 2} if deferrable else {"max_ingestion_time": 2}
    run = run_dag(
        f"t_processing_budget_{'deferrable' if deferrable else 'sync'}",
        lambda: processing_task(
            "preprocess",
            processing_config(name, inputs, code=inputs.slow),
            deferrable=deferrable,
            **budget,
        ),
    )
    out = capfd.readouterr().out
    try:
        assert run.state == "failed"
        if deferrable:
            assert "Error while running job: {'status': 'timeout'" in out
            assert "'message': 'Waiter error: max attempts reached'" in out
        else:
            assert "SageMaker resource took more than 2 seconds" in out
        job = sm.describe_processing_job(ProcessingJobName=name)
        assert job["ProcessingJobStatus"] == "InProgress"
    finally:
        sm.stop_processing_job(ProcessingJobName=name)
        wait_for(lambda: sm.describe_processing_job(ProcessingJobName=name), "ProcessingJobStatus")
