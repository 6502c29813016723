"""Batch transform jobs: real model servers behind boto3, outputs checked against in-process
predictions of the same model."""

from __future__ import annotations

import gzip
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError
from sklearn.linear_model import LinearRegression

from local_aws.sagemaker.errors import ValidationException
from local_aws.sagemaker.transform import compile_path, cut_batches, gunzip
from tests.conftest import unique, wait_for
from tests.jobkit import model_request, upload_model, upload_source

# One script for every test; the job's Environment switches on what a test looks at. CSV is
# parsed to float64, so served predictions differ from in-process ones only by summation order.
INFERENCE = """
import io
import json
import os
import time

import joblib
import numpy as np

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def input_fn(data, content_type):
    if "json" in content_type:  # JSON Lines: one array of features per line
        return np.array([json.loads(line) for line in data.splitlines() if line.strip()])
    return np.loadtxt(io.StringIO(data), delimiter=",", ndmin=2)

def predict_fn(data, model):
    if os.environ.get("FAIL_ON_NEGATIVE") and (data < 0).any():
        raise ValueError("negative feature values are not allowed")
    time.sleep(float(os.environ.get("SLEEP_PER_REQUEST", "0")))
    return model.predict(data), len(data)

def execution_parameters_fn():  # what a container offers for what the job leaves unset
    default = '{"MaxConcurrentTransforms": 1, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}'
    return json.loads(os.environ.get("EXECUTION_PARAMETERS", default))

def output_fn(prediction, accept):
    values, rows = prediction
    if "json" in accept:
        return "".join(json.dumps(float(v)) + "\\n" for v in values)
    if os.environ.get("REPORT_BATCH_SIZE"):  # lets a test see how records were batched
        return "".join(f"{float(v)!r},{rows}\\n" for v in values)
    return "".join(f"{float(v)!r}\\n" for v in values)
"""
LOG_GROUP = "/aws/sagemaker/TransformJobs"
# Served predictions are compared with in-process ones to a relative 1e-9: BLAS may sum a batch
# of one in another order than a batch of four, so the last bit differs on some CPUs; any real
# defect (a row out of order, a float32 cast, a shifted column) is many orders larger.
PREDICTION_RTOL = 1e-9


def predicted(model: LinearRegression, rows: Any) -> Any:
    """What the model predicts in-process for ``rows``, to compare served scores with."""
    return pytest.approx(model.predict(rows).tolist(), rel=PREDICTION_RTOL)


@dataclass
class Setup:
    bucket: str
    model: LinearRegression
    model_name: str


@pytest.fixture(scope="module")
def setup(s3, sm) -> Setup:
    bucket = unique("transform")
    s3.create_bucket(Bucket=bucket)
    x = np.random.RandomState(0).rand(40, 3)
    model = LinearRegression().fit(x, x @ np.array([1.0, -2.0, 3.0]) + 0.5)
    model_data = upload_model(s3, bucket, "model/model.tar.gz", model)
    code = upload_source(s3, bucket, "code/sourcedir.tar.gz", {"inference.py": INFERENCE})
    name = unique("tx-model")
    sm.create_model(**model_request(name, model_data, code))
    return Setup(bucket, model, name)


def features(n: int, seed: int = 1) -> np.ndarray:
    return np.random.RandomState(seed).rand(n, 3) * 10 - 2


def csv_text(rows: np.ndarray, ids: list[str] | None = None) -> str:
    lines = [",".join(repr(float(v)) for v in row) for row in rows]
    if ids is not None:
        lines = [f"{i},{line}" for i, line in zip(ids, lines, strict=True)]
    return "".join(line + "\n" for line in lines)


def request(
    setup: Setup,
    name: str,
    input_prefix: str,
    *,
    split: str = "Line",
    content_type: str = "text/csv",
    accept: str | None = "text/csv",
    environment: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    output: dict[str, Any] = {
        "S3OutputPath": f"s3://{setup.bucket}/out/{name}",
        "AssembleWith": "Line",
    }
    if accept:
        output["Accept"] = accept
    req: dict[str, Any] = {
        "TransformJobName": name,
        "ModelName": setup.model_name,
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"s3://{setup.bucket}/{input_prefix}",
                }
            },
            "ContentType": content_type,
            "SplitType": split,
        },
        "TransformOutput": output,
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        "Environment": environment or {},
    }
    req.update(extra)
    return req


def run(sm: Any, req: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
    sm.create_transform_job(**req)
    name = req["TransformJobName"]
    return wait_for(
        lambda: sm.describe_transform_job(TransformJobName=name), "TransformJobStatus", timeout
    )


def read(s3: Any, bucket: str, key: str) -> str:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in listed)


def log_lines(logs: Any, stream: str) -> list[str]:
    events = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream, startFromHead=True)
    return [e["message"] for e in events["events"]]


# -- the data path -------------------------------------------------------------------------------
def test_multi_record_csv_gives_one_out_per_object_in_input_order(sm, s3, logs, setup):
    name = unique("tx-multi")
    big, small = features(20_000), features(5, seed=2)
    s3.put_object(Bucket=setup.bucket, Key=f"{name}/in/part-a.csv", Body=csv_text(big))
    s3.put_object(Bucket=setup.bucket, Key=f"{name}/in/nested/part-b.csv", Body=csv_text(small))
    assert len(csv_text(big)) > 1024 * 1024  # more than one 1 MB mini-batch
    req = request(
        setup,
        name,
        f"{name}/in/",
        environment={"REPORT_BATCH_SIZE": "1"},
        BatchStrategy="MultiRecord",
        MaxPayloadInMB=1,
        MaxConcurrentTransforms=2,
        Tags=[{"Key": "dag_id", "Value": "batch_inference"}],
    )
    created = time.time()
    job = run(sm, req)
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert "FailureReason" not in job

    # one .out per input object, at its path below the input prefix
    out = f"out/{name}/"
    assert keys(s3, setup.bucket, out) == [f"{out}nested/part-b.csv.out", f"{out}part-a.csv.out"]
    for key, rows in ((f"{out}part-a.csv.out", big), (f"{out}nested/part-b.csv.out", small)):
        lines = read(s3, setup.bucket, key).splitlines()
        got = [float(line.split(",")[0]) for line in lines]
        assert got == predicted(setup.model, rows)  # every row, in input order
    sizes = [
        int(line.split(",")[1]) for line in read(s3, setup.bucket, f"{out}part-a.csv.out").split()
    ]
    batches = [sizes[0]]
    while sum(batches) < len(sizes):
        batches.append(sizes[sum(batches)])
    assert len(batches) >= 2 and all(b > 1000 for b in batches), batches
    bytes_per_row = len(csv_text(big)) / len(big)
    assert max(batches) * bytes_per_row <= 1024 * 1024 * 1.01  # within MaxPayloadInMB

    # Describe echoes the request, with the job's own timestamps
    assert job["TransformJobArn"].endswith(f":transform-job/{name}")
    for field in (
        "ModelName",
        "TransformInput",
        "TransformOutput",
        "TransformResources",
        "BatchStrategy",
        "MaxPayloadInMB",
        "MaxConcurrentTransforms",
        "Environment",
    ):
        assert job[field] == req[field], field
    assert created - 1 <= job["CreationTime"].timestamp() <= job["TransformStartTime"].timestamp()
    assert job["TransformStartTime"] <= job["TransformEndTime"]
    tags = sm.list_tags(ResourceArn=job["TransformJobArn"])["Tags"]
    assert tags == [{"Key": "dag_id", "Value": "batch_inference"}]

    # the container's log and the agent's data-log, named as SageMaker names them
    streams = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{name}/")
    names = sorted(s["logStreamName"] for s in streams["logStreams"])
    assert len(names) == 2 and names[1] == f"{names[0]}/data-log", names
    assert names[0].startswith(f"{name}/i-")
    data_log = "\n".join(log_lines(logs, names[1]))
    assert "MaxConcurrentTransforms=2, MaxPayloadInMB=1, BatchStrategy=MULTI_RECORD" in data_log
    assert f"s3://{setup.bucket}/{name}/in/part-a.csv: 20000 records" in data_log
    assert any("serving on http://" in line for line in log_lines(logs, names[0]))

    # the name is taken now
    with pytest.raises(ClientError) as err:
        sm.create_transform_job(**req)
    assert err.value.response["Error"]["Code"] == "ResourceInUse"
    assert "a job with this name already exists" in err.value.response["Error"]["Message"]


def test_single_record_sends_one_record_per_request(sm, s3, setup):
    name = unique("tx-single")
    rows = features(4)
    s3.put_object(Bucket=setup.bucket, Key=f"{name}/in/rows.csv", Body=csv_text(rows))
    job = run(
        sm,
        request(
            setup,
            name,
            f"{name}/in/rows.csv",  # a single object as the S3Uri
            environment={"REPORT_BATCH_SIZE": "1"},
            BatchStrategy="SingleRecord",
        ),
    )
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    lines = read(s3, setup.bucket, f"out/{name}/rows.csv.out").splitlines()
    assert [line.split(",")[1] for line in lines] == ["1"] * 4
    assert [float(line.split(",")[0]) for line in lines] == predicted(setup.model, rows)


def test_unset_parameters_come_from_the_containers_execution_parameters(sm, s3, logs, setup):
    name = unique("tx-params")
    rows = features(5)
    s3.put_object(Bucket=setup.bucket, Key=f"{name}/in/rows.csv", Body=csv_text(rows))
    offered = {"MaxConcurrentTransforms": 3, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 2}
    req = request(
        setup,
        name,
        f"{name}/in/",
        environment={"REPORT_BATCH_SIZE": "1", "EXECUTION_PARAMETERS": json.dumps(offered)},
    )
    job = run(sm, req)
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert "BatchStrategy" not in job and "MaxPayloadInMB" not in job  # Describe shows the request
    lines = read(s3, setup.bucket, f"out/{name}/rows.csv.out").splitlines()
    assert [line.split(",")[1] for line in lines] == ["1"] * 5
    stream = next(
        s["logStreamName"]
        for s in logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{name}/")[
            "logStreams"
        ]
        if s["logStreamName"].endswith("/data-log")
    )
    assert any(
        "MaxConcurrentTransforms=3, MaxPayloadInMB=2, BatchStrategy=SINGLE_RECORD" in line
        for line in log_lines(logs, stream)
    )


def test_join_source_input_with_input_and_output_filters(sm, s3, setup):
    """The batch_inference pattern: drop the id before the model, keep it beside the score."""
    name = unique("tx-join")
    rows = features(30)
    ids = [f"txn-{i:03d}" for i in range(30)]
    s3.put_object(Bucket=setup.bucket, Key=f"{name}/in/day.csv", Body=csv_text(rows, ids))
    req = request(
        setup,
        name,
        f"{name}/in/",
        BatchStrategy="MultiRecord",
        DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"},
    )
    job = run(sm, req)
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert job["DataProcessing"] == req["DataProcessing"]
    lines = read(s3, setup.bucket, f"out/{name}/day.csv.out").splitlines()
    assert [line.split(",")[0] for line in lines] == ids
    assert [float(line.split(",")[1]) for line in lines] == predicted(setup.model, rows)

    # without an OutputFilter the whole input row comes first, then the prediction
    name2 = unique("tx-join-all")
    s3.put_object(Bucket=setup.bucket, Key=f"{name2}/in/day.csv", Body=csv_text(rows[:3], ids[:3]))
    req2 = request(
        setup, name2, f"{name2}/in/", DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input"}
    )
    job2 = run(sm, req2)
    assert job2["TransformJobStatus"] == "Completed", job2.get("FailureReason")
    joined = [
        line.rsplit(",", 1)
        for line in read(s3, setup.bucket, f"out/{name2}/day.csv.out").splitlines()
    ]
    assert [row for row, _ in joined] == csv_text(rows[:3], ids[:3]).splitlines()
    assert [float(score) for _, score in joined] == predicted(setup.model, rows[:3])


def test_json_lines_input_joined_under_sagemaker_output(sm, s3, setup):
    name = unique("tx-jsonl")
    rows = features(6)
    records = [{"id": f"a{i}", "features": [float(v) for v in row]} for i, row in enumerate(rows)]
    body = "".join(json.dumps(r) + "\n" for r in records)
    s3.put_object(Bucket=setup.bucket, Key=f"{name}/in/records.jsonl", Body=body)
    job = run(
        sm,
        request(
            setup,
            name,
            f"{name}/in/",
            content_type="application/jsonlines",
            accept="application/jsonlines",
            BatchStrategy="MultiRecord",
            DataProcessing={
                "InputFilter": "$.features",
                "JoinSource": "Input",
                "OutputFilter": "$['id','SageMakerOutput']",
            },
        ),
    )
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    out = [
        json.loads(line)
        for line in read(s3, setup.bucket, f"out/{name}/records.jsonl.out").splitlines()
    ]
    assert [r["id"] for r in out] == [f"a{i}" for i in range(6)]
    assert [r["SageMakerOutput"] for r in out] == predicted(setup.model, rows)
    assert all(r.keys() == {"id", "SageMakerOutput"} for r in out)


def test_split_none_sends_each_gzip_object_whole_from_a_manifest(sm, s3, setup):
    name = unique("tx-none")
    rows = features(50)
    body = gzip.compress(csv_text(rows).encode())
    s3.put_object(Bucket=setup.bucket, Key=f"{name}/in/day=1/batch.csv.gz", Body=body)
    s3.put_object(Bucket=setup.bucket, Key=f"{name}/in/day=2/ignored.csv.gz", Body=body)
    manifest = [{"prefix": f"s3://{setup.bucket}/{name}/in/"}, "day=1/batch.csv.gz"]
    s3.put_object(Bucket=setup.bucket, Key=f"{name}/manifest.json", Body=json.dumps(manifest))
    req = request(
        setup, name, f"{name}/manifest.json", split="None", environment={"REPORT_BATCH_SIZE": "1"}
    )
    req["TransformInput"]["DataSource"]["S3DataSource"]["S3DataType"] = "ManifestFile"
    req["TransformInput"]["CompressionType"] = "Gzip"
    job = run(sm, req)
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    # only what the manifest lists, at its path relative to the manifest's prefix
    assert keys(s3, setup.bucket, f"out/{name}/") == [f"out/{name}/day=1/batch.csv.gz.out"]
    lines = read(s3, setup.bucket, f"out/{name}/day=1/batch.csv.gz.out").splitlines()
    assert {line.split(",")[1] for line in lines} == {"50"}  # one request held every row
    assert [float(line.split(",")[0]) for line in lines] == predicted(setup.model, rows)


# -- failures --------------------------------------------------------------------------------------
def test_record_larger_than_max_payload_fails_naming_the_object(sm, s3, setup):
    name = unique("tx-oversize")
    s3.put_object(Bucket=setup.bucket, Key=f"{name}/in/a-good.csv", Body=csv_text(features(3)))
    huge = ",".join(["1.0"] * 300_000) + "\n"  # one 1.2 MB record
    s3.put_object(
        Bucket=setup.bucket, Key=f"{name}/in/b-huge.csv", Body=csv_text(features(2)) + huge
    )
    job = run(sm, request(setup, name, f"{name}/in/", MaxPayloadInMB=1))
    assert job["TransformJobStatus"] == "Failed"
    reason = job["FailureReason"]
    assert f"s3://{setup.bucket}/{name}/in/b-huge.csv" in reason
    assert "larger than MaxPayloadInMB (1 MB)" in reason
    # the object that could be transformed is; the failed one leaves nothing behind
    assert keys(s3, setup.bucket, f"out/{name}/") == [f"out/{name}/a-good.csv.out"]
    listed = sm.list_transform_jobs(NameContains=name)["TransformJobSummaries"]
    assert listed[0]["FailureReason"] == reason


def test_model_error_fails_the_job_with_the_message_and_the_object(sm, s3, setup):
    name = unique("tx-model-error")
    rows = features(10)
    rows[7, 1] = -1.0
    s3.put_object(Bucket=setup.bucket, Key=f"{name}/in/scores.csv", Body=csv_text(rows))
    job = run(
        sm,
        request(
            setup,
            name,
            f"{name}/in/",
            environment={"FAIL_ON_NEGATIVE": "1"},
            ModelClientConfig={"InvocationsTimeoutInSeconds": 30, "InvocationsMaxRetries": 0},
        ),
    )
    assert job["TransformJobStatus"] == "Failed"
    reason = job["FailureReason"]
    assert f"s3://{setup.bucket}/{name}/in/scores.csv" in reason
    assert "500" in reason and "negative feature values are not allowed" in reason
    assert keys(s3, setup.bucket, f"out/{name}/") == []


def test_model_that_cannot_load_fails_the_job_with_its_error(sm, s3, setup):
    broken = upload_source(
        s3,
        setup.bucket,
        "code/broken.tar.gz",
        {"inference.py": "def model_fn(model_dir):\n    raise ValueError('weights are corrupt')\n"},
    )
    model = unique("tx-broken")
    sm.create_model(**model_request(model, f"s3://{setup.bucket}/model/model.tar.gz", broken))
    name = unique("tx-broken-job")
    s3.put_object(Bucket=setup.bucket, Key=f"{name}/in/x.csv", Body=csv_text(features(3)))
    job = run(sm, request(setup, name, f"{name}/in/", ModelName=model))
    assert job["TransformJobStatus"] == "Failed"
    assert "the model server did not start" in job["FailureReason"]
    assert "ValueError: weights are corrupt" in job["FailureReason"]
    assert f"{name}/i-" in job["FailureReason"]  # where its log is
    assert keys(s3, setup.bucket, f"out/{name}/") == []


def test_missing_model_and_missing_job(sm, setup):
    name = unique("tx-no-model")
    req = request(setup, name, "anything/")
    req["ModelName"] = "no-such-model"
    with pytest.raises(ClientError) as err:
        sm.create_transform_job(**req)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert err.value.response["Error"]["Message"] == (
        'Could not find model "arn:aws:sagemaker:us-east-1:123456789012:model/no-such-model".'
    )
    for call in (sm.describe_transform_job, sm.stop_transform_job):
        with pytest.raises(ClientError) as err:
            call(TransformJobName=name)
        assert err.value.response["Error"]["Code"] == "ValidationException"
        assert err.value.response["Error"]["Message"] == (
            f"Could not find requested job with name {name}"
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"TransformInput.SplitType": "RecordIO"}, "SplitType RecordIO is not supported"),
        ({"DataProcessing": {"InputFilter": "$..features"}}, "DataProcessing.InputFilter"),
        ({"DataProcessing": {"OutputFilter": "features"}}, "DataProcessing.OutputFilter"),
        ({"MaxPayloadInMB": 60, "MaxConcurrentTransforms": 2}, "cannot exceed 100 MB"),
        ({"MaxPayloadInMB": 0}, "MaxPayloadInMB 0"),
        (
            {"DataProcessing": {"JoinSource": "Input"}, "TransformInput.ContentType": "image/png"},
            "CSV and JSON input only",
        ),
    ],
)
def test_requests_local_aws_cannot_run_are_rejected_naming_the_field(sm, setup, change, message):
    name = unique("tx-invalid")
    req = request(setup, name, "anything/")
    for field, value in change.items():
        if field.startswith("TransformInput."):
            req["TransformInput"][field.split(".", 1)[1]] = value
        else:
            req[field] = value
    with pytest.raises(ClientError) as err:
        sm.create_transform_job(**req)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert message in err.value.response["Error"]["Message"]


def test_stop_ends_the_job_stopped_without_output_or_processes(sm, s3, setup, local_aws):
    name = unique("tx-stop")
    s3.put_object(Bucket=setup.bucket, Key=f"{name}/in/slow.csv", Body=csv_text(features(200)))
    sm.create_transform_job(
        **request(
            setup,
            name,
            f"{name}/in/",
            environment={"SLEEP_PER_REQUEST": "0.2"},
            BatchStrategy="SingleRecord",
        )
    )
    deadline = time.monotonic() + 60
    handshake = local_aws.backend.sandbox_dir("transform-jobs", name) / "server.json"
    while not handshake.exists():  # the model server is up
        assert time.monotonic() < deadline, "the model server did not start"
        time.sleep(0.05)
    time.sleep(0.5)  # a few records are in
    sm.stop_transform_job(TransformJobName=name)
    assert sm.describe_transform_job(TransformJobName=name)["TransformJobStatus"] in (
        "Stopping",
        "Stopped",
    )
    job = wait_for(
        lambda: sm.describe_transform_job(TransformJobName=name), "TransformJobStatus", 30
    )
    assert job["TransformJobStatus"] == "Stopped"
    assert "FailureReason" not in job
    assert keys(s3, setup.bucket, f"out/{name}/") == []
    sm.stop_transform_job(TransformJobName=name)  # stopping a stopped job changes nothing
    assert sm.describe_transform_job(TransformJobName=name)["TransformJobStatus"] == "Stopped"
    assert running_processes(name) == []


def running_processes(marker: str) -> list[str]:
    """Command lines of live processes that mention ``marker`` (the job's sandbox path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                state = (entry / "stat").read_text().split(") ", 1)[1][0]
            except (OSError, IndexError):
                continue
            if marker in cmdline and state != "Z":
                found.append(cmdline)
    return found


def test_list_transform_jobs_filters_sorts_and_pages(sm, setup):
    prefix = unique("tx-list")
    names = [f"{prefix}-{c}" for c in "bca"]
    for name in names:  # nothing under the prefix: each job fails at once
        sm.create_transform_job(**request(setup, name, f"{prefix}/empty/"))
    for name in names:
        job = wait_for(
            lambda name=name: sm.describe_transform_job(TransformJobName=name),
            "TransformJobStatus",
        )
        assert job["TransformJobStatus"] == "Failed"
        assert job["FailureReason"].startswith("ClientError: No S3 objects found under S3 URL")

    by_name = sm.list_transform_jobs(NameContains=prefix, SortBy="Name", SortOrder="Ascending")
    assert [s["TransformJobName"] for s in by_name["TransformJobSummaries"]] == sorted(names)
    summary = by_name["TransformJobSummaries"][0]
    assert set(summary) >= {
        "TransformJobName",
        "TransformJobArn",
        "CreationTime",
        "TransformEndTime",
        "LastModifiedTime",
        "TransformJobStatus",
        "FailureReason",
    }
    newest_first = sm.list_transform_jobs(NameContains=prefix)["TransformJobSummaries"]
    assert [s["TransformJobName"] for s in newest_first] == names[::-1]
    page = sm.list_transform_jobs(NameContains=prefix, SortBy="Name", MaxResults=2)
    rest = sm.list_transform_jobs(
        NameContains=prefix, SortBy="Name", MaxResults=2, NextToken=page["NextToken"]
    )
    assert [
        s["TransformJobName"] for s in page["TransformJobSummaries"] + rest["TransformJobSummaries"]
    ] == sorted(names, reverse=True)
    assert "NextToken" not in rest
    assert (
        sm.list_transform_jobs(NameContains=prefix, StatusEquals="Completed")[
            "TransformJobSummaries"
        ]
        == []
    )


# -- the pieces, without a server ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("expression", "value", "expected"),
    [
        ("$", ["a", "b"], None),
        ("$[1:]", ["id", "1", "2"], ["1", "2"]),
        ("$[0,2]", ["a", "b", "c"], ["a", "c"]),
        ("$[0,-1]", ["id", "1", "2", "0.9"], ["id", "0.9"]),
        ("$[0,5:]", list("abcdefg"), ["a", "f", "g"]),
        ("$[-1]", ["a", "b"], "b"),
        ("$.features", {"id": 1, "features": [1, 2]}, [1, 2]),
        ("$.data.features[1:]", {"data": {"features": [1, 2, 3]}}, [2, 3]),
        (
            "$['id','SageMakerOutput']",
            {"id": 1, "x": 2, "SageMakerOutput": 3},
            {"id": 1, "SageMakerOutput": 3},
        ),
        ("$[*]", {"a": 1, "b": 2}, [1, 2]),
    ],
)
def test_jsonpath_subset(expression, value, expected):
    path = compile_path(expression, field="DataProcessing.InputFilter")
    assert (path(value) if path else None) == expected


def test_cut_batches_keeps_whole_lines_in_order_within_the_limit():
    lines = [f"{i},{'x' * (i % 37)}\n".encode() for i in range(5000)]
    data = b"".join(lines)
    chunks = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    batches = list(cut_batches(chunks, 4096, "s3://b/k"))
    assert b"".join(b.payload for b in batches) == data
    assert all(len(b.payload) <= 4096 and b.payload.endswith(b"\n") for b in batches)
    assert sum(b.count for b in batches) == len(lines)
    # full batches: the next line would not have fitted
    assert all(len(b.payload) > 4096 - 50 for b in batches[:-1])
    with pytest.raises(Exception, match="larger than MaxPayloadInMB"):
        list(cut_batches([b"1,2\n", b"9" * 5000, b"\n"], 4096, "s3://b/k"))


def test_gunzip_streams_concatenated_members():
    data = gzip.compress(b"a,1\n" * 1000) + gzip.compress(b"b,2\n" * 1000)
    chunks = [data[i : i + 100] for i in range(0, len(data), 100)]
    assert b"".join(gunzip(chunks, "s3://b/k")) == b"a,1\n" * 1000 + b"b,2\n" * 1000


def test_bad_jsonpath_raises_validation_naming_the_field():
    with pytest.raises(ValidationException, match="DataProcessing.OutputFilter"):
        compile_path("$['id',0]", field="DataProcessing.OutputFilter")
