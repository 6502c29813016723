"""The validation request, and the real validation Processing job on local_aws."""

from __future__ import annotations

import json

import pytest
from botocore.session import get_session
from botocore.validate import ParamValidator

from mlops_pipeline import naming
from mlops_pipeline.config import load_settings, replace
from mlops_pipeline.quality import request, severity
from tests.conftest import unique, wait_for
from tests.quality.conftest import load, params
from tests.quality.data import put_partition, to_csv, transactions


def validate_against_botocore(payload: dict) -> None:
    model = get_session().get_service_model("sagemaker")
    shape = model.operation_model("CreateProcessingJob").input_shape
    report = ParamValidator().validate(payload, shape)
    assert not report.has_errors(), report.generate_report()


def test_request_is_valid_for_the_sagemaker_api_with_security_settings():
    settings = replace(
        load_settings({}),
        kms_key_id="arn:aws:kms:us-east-1:123456789012:key/abc",
        subnets=("subnet-1",),
        security_group_ids=("sg-1",),
        network_isolation=True,
    )
    name = request.job_name("transactions", "2026-01-05", run_key="model_build/r1/validate")
    run = request.run_uri(settings, "transactions", "2026-01-05", name)
    payload = request.build_request(
        name=name,
        settings=settings,
        input_uri="s3://mlops-local/raw/transactions/dt=2026-01-05/",
        run=run,
        tags=naming.airflow_tags("model_build", "r1", "validate_training_data"),
    )
    validate_against_botocore(payload)
    assert payload["AppSpecification"]["ImageUri"].endswith(
        "sagemaker-scikit-learn:1.4-2-py312-cpu-py3"
    )
    assert payload["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] == f"{run}/output"
    assert payload["NetworkConfig"] == {
        "EnableNetworkIsolation": True,
        "VpcConfig": {"Subnets": ["subnet-1"], "SecurityGroupIds": ["sg-1"]},
        # the same security as every other job of the pipeline (mlops_pipeline.jobs)
        "EnableInterContainerTrafficEncryption": True,
    }
    assert payload["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"].endswith("/abc")


def test_job_names_are_valid_unique_per_run_and_try():
    long = request.job_name("a" * 80, "2026-01-05", run_key="d/r/t", try_number=12)
    assert len(long) <= 63 and long.endswith("-t12")
    a = request.job_name("training_features", "2026-01-05", run_key="d/r1/t")
    b = request.job_name("training_features", "2026-01-05", run_key="d/r2/t")
    assert a != b and a.startswith("dq-training-features-20260105-")
    import re

    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", long)


def run_job(s3, sm, bucket: str, body: bytes, suite_name: str = "transactions") -> dict:
    settings = replace(load_settings({}), bucket=bucket)
    input_uri = put_partition(s3, bucket, "2026-01-05", body)
    name = unique("dq-test")
    run = request.run_uri(settings, "transactions", "2026-01-05", name)
    request.upload_job_files(
        s3,
        run,
        suite=load(suite_name),
        params=params(
            output_uri=f"{run}/output",
            input_uri=input_uri,
            **request.docs_params(settings, "transactions", "2026-01-05", name),
        ),
    )
    payload = request.build_request(
        name=name,
        settings=settings,
        input_uri=input_uri,
        run=run,
        docs_uri=f"{request.docs_site_uri(settings, 'transactions')}/validations/dt=2026-01-05/",
    )
    validate_against_botocore(payload)
    sm.create_processing_job(**payload)
    job = wait_for(
        lambda: sm.describe_processing_job(ProcessingJobName=name),
        "ProcessingJobStatus",
        timeout=300,
    )
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    bucket_, key = request.split_s3_uri(f"{run}/output/result.json")
    return json.loads(s3.get_object(Bucket=bucket_, Key=key)["Body"].read())


@pytest.mark.slow
def test_processing_job_writes_result_metrics_and_data_docs_to_s3(s3, sm, bucket):
    result = run_job(s3, sm, bucket, to_csv(transactions(300)))

    assert result["status"] == "validated" and result["row_count"] == 300
    assert severity.evaluate(result).status == "passed"
    for uri in (result["data_docs_uri"], result["metrics_uri"]):
        b, key = request.split_s3_uri(uri)
        assert s3.head_object(Bucket=b, Key=key)["ContentLength"] > 0
    # the page went to the dataset's one site, alone: no index or static files per run
    b, site = request.split_s3_uri(result["data_docs_index_uri"])
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=b, Prefix=site)["Contents"]]
    assert listed == [request.split_s3_uri(result["data_docs_uri"])[1]]
    b, key = request.split_s3_uri(result["data_docs_uri"])
    page = s3.get_object(Bucket=b, Key=key)["Body"].read().decode()
    # the validation page of this run: its run name, and the suite's columns
    assert "transactions-2026-01-05" in page and "distance_from_home_km" in page


@pytest.mark.slow
def test_processing_job_reports_a_corrupted_partition_without_failing(s3, sm, bucket):
    df = transactions(300)
    df.loc[:9, "transaction_id"] = "tx-dup"
    result = run_job(s3, sm, bucket, to_csv(df).replace(b"tx-2026-01-05-00000299", b"tx-dup"))

    verdict = severity.evaluate(result)
    assert not verdict.passed
    assert [(e["type"], e["column"]) for e in verdict.errors] == [
        ("expect_column_values_to_be_unique", "transaction_id")
    ]
    assert "11 of 300 rows" in verdict.summary()
