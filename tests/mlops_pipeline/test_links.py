"""The task links: the AWS console on AWS, local_aws's pages offline, Data Docs through the
plugin. Formatting only; tests/pipeline/test_task_pages.py follows every link of a run."""

from __future__ import annotations

import pytest

from mlops_pipeline.links import (
    DataDocsLink,
    SageMakerLogsLink,
    SageMakerResourceLink,
    data_docs_url,
    model_package_name,
)

AWS = {"region_name": "eu-west-1", "aws_domain": "aws.amazon.com", "endpoint_url": None}
LOCAL = {**AWS, "endpoint_url": "http://127.0.0.1:4566/"}


@pytest.mark.parametrize(
    ("kind", "resource", "page", "logs"),
    [
        (
            "processing-jobs",
            "dq-x-20260105-t1",
            "#/processing-jobs/dq-x-20260105-t1",
            "log-group/$252Faws$252Fsagemaker$252FProcessingJobs"
            "$253FlogStreamNameFilter$253Ddq-x-20260105-t1$252F",
        ),
        (
            "hyper-tuning-jobs",
            "mb-tune-1",
            "#/hyper-tuning-jobs/mb-tune-1",
            # the children's streams: <tuning job>-NNN-<hash>/…
            "log-group/$252Faws$252Fsagemaker$252FTrainingJobs"
            "$253FlogStreamNameFilter$253Dmb-tune-1-",
        ),
        (
            "endpoints",
            "fraud-prod",
            "#/endpoints/fraud-prod",
            "log-group/$252Faws$252Fsagemaker$252FEndpoints$252Ffraud-prod",
        ),
    ],
)
def test_on_aws_the_links_open_the_console(kind, resource, page, logs):
    parts = {**AWS, "kind": kind, "resource": resource}
    assert SageMakerResourceLink().format_link(**parts) == (
        f"https://console.aws.amazon.com/sagemaker/home?region=eu-west-1{page}"
    )
    assert SageMakerLogsLink().format_link(**parts) == (
        "https://console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logsV2:log-groups/" + logs
    )


def test_offline_the_links_open_local_aws_pages():
    parts = {**LOCAL, "kind": "training-jobs", "resource": "mb-train-1"}
    page = "http://127.0.0.1:4566/_local_aws/describe/training-jobs/mb-train-1"
    assert SageMakerResourceLink().format_link(**parts) == page
    assert SageMakerLogsLink().format_link(**parts) == f"{page}/logs"


def test_a_model_package_has_a_page_and_no_log():
    name = model_package_name("arn:aws:sagemaker:us-east-1:123456789012:model-package/fraud/3")
    assert name == "fraud/3"
    parts = {**LOCAL, "kind": "model-packages", "resource": name}
    assert SageMakerResourceLink().format_link(**parts) == (
        "http://127.0.0.1:4566/_local_aws/describe/model-packages/fraud/3"
    )
    assert SageMakerLogsLink().format_link(**parts) == ""


def test_data_docs_open_through_the_plugin(monkeypatch):
    page = "validations/dt=2026-01-05/dq-x.html"
    assert data_docs_url("transactions", page) == f"/mlops/data-docs/transactions/{page}"
    # behind a proxy with a base URL, the link carries it
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/team/")
    assert data_docs_url("transactions", page) == (
        f"https://airflow.example.com/team/mlops/data-docs/transactions/{page}"
    )
    assert DataDocsLink.name == "Data Docs"
