"""The unmodified provider's SageMakerStartPipelineOperator and SageMakerStopPipelineOperator
against local_aws's SageMaker Pipelines, in dag.test(), waiting in the task and deferred."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROLE_ARN, unique
from tests.integration.provider_kit import run_dag, states, xcom
from tests.jobkit import upload_source
from tests.local_aws.test_pipelines import EVALUATE, TRAIN, definition


def create(sm, s3, sleep: str) -> str:
    bucket = unique("op-pipelines")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="code/evaluate.py", Body=EVALUATE.encode())
    source = upload_source(s3, bucket, "code/train.tar.gz", {"train.py": TRAIN})
    name = unique("op-pipeline")
    body = definition(bucket, f"s3://{bucket}/code/evaluate.py", source, sleep)
    sm.create_pipeline(PipelineName=name, PipelineDefinition=json.dumps(body), RoleArn=ROLE_ARN)
    return name


@pytest.fixture(scope="module")
def pipeline_name(sm, s3) -> str:
    return create(sm, s3, "0")


@pytest.mark.parametrize("deferrable", [False, True], ids=["waits-in-task", "deferred"])
def test_start_pipeline_operator_waits_for_the_execution(aws_conn, sm, pipeline_name, deferrable):
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerStartPipelineOperator

    run = run_dag(
        f"t_pipeline_{'deferred' if deferrable else 'waits'}",
        lambda: SageMakerStartPipelineOperator(
            task_id="start",
            pipeline_name=pipeline_name,
            pipeline_params={"MinAuc": "0.5"},
            wait_for_completion=True,
            check_interval=1,
            deferrable=deferrable,
            aws_conn_id="aws_default",
        ),
    )
    assert states(run) == {"start": "success"}
    arn = xcom(run, "start")
    execution = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
    assert execution["PipelineExecutionStatus"] == "Succeeded"


def test_a_failing_execution_fails_the_task_and_stop_operator_stops_one(
    aws_conn, sm, s3, pipeline_name
):
    from airflow.providers.amazon.aws.operators.sagemaker import (
        SageMakerStartPipelineOperator,
        SageMakerStopPipelineOperator,
    )

    failing = run_dag(
        "t_pipeline_fails",
        lambda: SageMakerStartPipelineOperator(
            task_id="start",
            pipeline_name=pipeline_name,
            pipeline_params={"MinAuc": "0.99"},  # the Fail step's branch
            wait_for_completion=True,
            check_interval=1,
            aws_conn_id="aws_default",
        ),
    )
    assert states(failing) == {"start": "failed"}

    slow = create(sm, s3, "120")  # its first step runs two minutes: the stop comes first
    stopped = run_dag(
        "t_pipeline_stop",
        lambda: SageMakerStartPipelineOperator(
            task_id="start",
            pipeline_name=slow,
            aws_conn_id="aws_default",
        ),
        lambda: SageMakerStopPipelineOperator(
            task_id="stop",
            pipeline_exec_arn="{{ ti.xcom_pull(task_ids='start') }}",
            wait_for_completion=True,
            check_interval=1,
            aws_conn_id="aws_default",
        ),
    )
    assert states(stopped) == {"start": "success", "stop": "success"}
    arn = xcom(stopped, "start")
    status = sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"]
    assert status == "Stopped"
