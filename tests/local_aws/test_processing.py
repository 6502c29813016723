"""Processing jobs: script mode as the SageMaker SDK's SKLearnProcessor sets it up, via boto3."""

from __future__ import annotations

import datetime
import json
import textwrap
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import ROLE_ARN, admin, unique, wait_for
from tests.jobkit import processing_request, s3_input, s3_output

LOG_GROUP = "/aws/sagemaker/ProcessingJobs"

# A preprocessing script of the kind SKLearnProcessor runs: paths come in as arguments.
PREP = """
import argparse, csv, json, os, sys

parser = argparse.ArgumentParser()
parser.add_argument("--input-dir")
parser.add_argument("--countries")
parser.add_argument("--train-dir")
parser.add_argument("--report-dir")
parser.add_argument("--min-amount", type=float, default=0)
args = parser.parse_args()

names = {row["code"]: row["name"] for row in csv.DictReader(open(args.countries))}
kept = []
for fname in sorted(os.listdir(args.input_dir)):
    for row in csv.DictReader(open(os.path.join(args.input_dir, fname))):
        if float(row["amount"]) >= args.min_amount:
            kept.append({"id": row["id"], "amount": row["amount"], "country": names[row["country"]]})
with open(os.path.join(args.train_dir, "train.csv"), "w", newline="") as fh:
    writer = csv.DictWriter(fh, fieldnames=["id", "amount", "country"])
    writer.writeheader()
    writer.writerows(kept)
base = os.environ["SAGEMAKER_BASE_DIR"]
config = json.load(open(os.path.join(base, "config", "processingjobconfig.json")))
hosts = json.load(open(os.path.join(base, "config", "resourceconfig.json")))
os.makedirs(os.path.join(args.report_dir, "nested"))
json.dump(
    {"rows": len(kept), "job": config["ProcessingJobName"], "stage": os.environ["STAGE"],
     "host": hosts["current_host"]},
    open(os.path.join(args.report_dir, "nested", "report.json"), "w"),
)
open(os.path.join(base, "output", "message"), "w").write(f"kept {len(kept)} rows")
print(f"kept {len(kept)} of the rows", flush=True)
"""

TRANSACTIONS_A = "id,amount,country\n1,5.0,DE\n2,50.0,FR\n"
TRANSACTIONS_B = "id,amount,country\n3,500.0,DE\n4,0.5,FR\n"
COUNTRIES = "code,name\nDE,Germany\nFR,France\n"


def upload_script(s3, bucket: str, job: str, source: str, name: str = "prep.py") -> str:
    """Upload the script where the SDK puts it: s3://bucket/<job>/input/code/<name>."""
    key = f"{job}/input/code/{name}"
    s3.put_object(Bucket=bucket, Key=key, Body=textwrap.dedent(source).encode())
    return f"s3://{bucket}/{key}"


def describe(sm, name: str) -> dict[str, Any]:
    return wait_for(
        lambda: sm.describe_processing_job(ProcessingJobName=name), "ProcessingJobStatus"
    )


def log_messages(logs, name: str) -> list[str]:
    streams = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{name}/")
    messages: list[str] = []
    for stream in streams["logStreams"]:
        events = logs.get_log_events(
            logGroupName=LOG_GROUP, logStreamName=stream["logStreamName"], startFromHead=True
        )["events"]
        messages.extend(e["message"] for e in events)
    return messages


def test_script_processing_job_reads_inputs_and_uploads_outputs(sm, s3, logs, bucket):
    s3.put_object(Bucket=bucket, Key="raw/2024-01-01/a.csv", Body=TRANSACTIONS_A.encode())
    s3.put_object(Bucket=bucket, Key="raw/2024-01-01/b.csv", Body=TRANSACTIONS_B.encode())
    s3.put_object(Bucket=bucket, Key="ref/countries.csv", Body=COUNTRIES.encode())
    name = unique("prep")
    code = upload_script(s3, bucket, name, PREP)
    before = time.time()
    request = processing_request(
        name,
        code_uri=code,
        arguments=[
            "--input-dir",
            "/opt/ml/processing/input/raw",
            "--countries=/opt/ml/processing/input/ref/countries.csv",
            "--train-dir",
            "/opt/ml/processing/train/",
            "--report-dir",
            "/opt/ml/processing/report",
            "--min-amount",
            "1",
        ],
        inputs=[
            s3_input("raw", f"s3://{bucket}/raw/2024-01-01/", "/opt/ml/processing/input/raw"),
            # a single object: it lands under LocalPath with its own name
            s3_input("ref", f"s3://{bucket}/ref/countries.csv", "/opt/ml/processing/input/ref"),
        ],
        outputs=[
            s3_output("train", "/opt/ml/processing/train", f"s3://{bucket}/features/train"),
            s3_output(
                "report", "/opt/ml/processing/report", f"s3://{bucket}/reports/", "Continuous"
            ),
        ],
        Environment={"STAGE": "test"},
        Tags=[{"Key": "airflow_dag_id", "Value": "model_build"}],
    )
    arn = sm.create_processing_job(**request)["ProcessingJobArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:123456789012:processing-job/{name}"
    job = describe(sm, name)

    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert "FailureReason" not in job
    assert job["ExitMessage"] == "kept 3 rows"
    assert "SecondaryStatus" not in job
    creation, start, end = (
        job["CreationTime"].timestamp(),
        job["ProcessingStartTime"].timestamp(),
        job["ProcessingEndTime"].timestamp(),
    )
    assert before - 1 <= creation <= start <= end <= job["LastModifiedTime"].timestamp()
    assert end <= time.time() + 1
    # the request is echoed back as sent
    assert job["AppSpecification"] == request["AppSpecification"]
    assert job["ProcessingInputs"] == request["ProcessingInputs"]
    assert job["ProcessingOutputConfig"] == request["ProcessingOutputConfig"]
    assert job["ProcessingResources"] == request["ProcessingResources"]
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 300}
    assert job["Environment"] == {"STAGE": "test"}
    assert job["RoleArn"] == ROLE_ARN

    train = s3.get_object(Bucket=bucket, Key="features/train/train.csv")["Body"].read().decode()
    assert train.splitlines() == [
        "id,amount,country",
        "1,5.0,Germany",
        "2,50.0,France",
        "3,500.0,Germany",
    ]
    report = json.loads(
        s3.get_object(Bucket=bucket, Key="reports/nested/report.json")["Body"].read()
    )
    assert report == {"rows": 3, "job": name, "stage": "test", "host": "localhost"}
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="features/")["Contents"]
    assert [o["Key"] for o in listed] == ["features/train/train.csv"]

    messages = log_messages(logs, name)
    assert "kept 3 of the rows" in messages
    assert any("S3UploadMode Continuous" in m and "'report'" in m for m in messages)
    stream = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{name}/")
    (only,) = stream["logStreams"]
    assert only["logStreamName"].startswith(f"{name}/algo-1-")
    assert abs(int(only["logStreamName"].rsplit("-", 1)[1]) - start) < 5

    assert {"Key": "airflow_dag_id", "Value": "model_build"} in sm.list_tags(ResourceArn=arn)[
        "Tags"
    ]


FAILING = """
import os, sys
base = os.environ["SAGEMAKER_BASE_DIR"]
open(os.path.join(base, "output", "message"), "w").write("validation: 1 of 2 checks failed")
open(os.path.join(sys.argv[1], "partial.csv"), "w").write("half written")
print("starting validation", flush=True)
raise ValueError("column 'amount' has 3 nulls")
"""


def test_failing_script_fails_with_the_exception_and_uploads_nothing(sm, s3, bucket):
    name = unique("prep-fail")
    code = upload_script(s3, bucket, name, FAILING, "validate.py")
    sm.create_processing_job(
        **processing_request(
            name,
            code_uri=code,
            script="validate.py",
            arguments=["/opt/ml/processing/output"],
            outputs=[s3_output("out", "/opt/ml/processing/output", f"s3://{bucket}/out/{name}")],
        )
    )
    job = describe(sm, name)
    assert job["ProcessingJobStatus"] == "Failed"
    reason = job["FailureReason"]
    assert reason.startswith("AlgorithmError: See job logs for more information. ExitCode 1")
    assert "ValueError: column 'amount' has 3 nulls" in reason
    assert "starting validation" in reason
    assert job["ExitMessage"] == "validation: 1 of 2 checks failed"
    assert job["ProcessingStartTime"] <= job["ProcessingEndTime"]
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f"out/{name}")["KeyCount"] == 0

    summary = sm.list_processing_jobs(NameContains=name)["ProcessingJobSummaries"]
    assert summary[0]["FailureReason"] == reason
    assert summary[0]["ExitMessage"] == "validation: 1 of 2 checks failed"


def test_requests_the_job_could_not_run_are_rejected_naming_the_field(sm, bucket):
    def rejected(request: dict[str, Any]) -> str:
        with pytest.raises(ClientError) as err:
            sm.create_processing_job(**request)
        assert err.value.response["Error"]["Code"] == "ValidationException"
        return err.value.response["Error"]["Message"]

    name = unique("prep-bad")
    message = rejected(
        processing_request(
            name,
            code_uri=f"s3://{bucket}/code/prep.py",
            inputs=[s3_input("data", f"s3://{bucket}/data/", "/data/input")],
        )
    )
    assert "ProcessingInputs.1.S3Input.LocalPath" in message and "/opt/ml/" in message

    message = rejected(
        processing_request(name, outputs=[s3_output("out", "/tmp/out", f"s3://{bucket}/out/")])
    )
    assert "ProcessingOutputConfig.Outputs.1.S3Output.LocalPath" in message

    athena = {
        "InputName": "query",
        "DatasetDefinition": {
            "AthenaDatasetDefinition": {
                "Catalog": "AwsDataCatalog",
                "Database": "db",
                "QueryString": "SELECT 1",
                "OutputS3Uri": f"s3://{bucket}/athena/",
                "OutputFormat": "PARQUET",
            },
            "LocalPath": "/opt/ml/processing/input/query",
        },
    }
    message = rejected(processing_request(name, inputs=[athena]))
    assert "ProcessingInputs.1.DatasetDefinition" in message and "not supported" in message

    same_path = [
        s3_input("a", f"s3://{bucket}/a/", "/opt/ml/processing/input"),
        s3_input("b", f"s3://{bucket}/b/", "/opt/ml/processing/input/"),
    ]
    assert "ProcessingInputs.2.S3Input.LocalPath" in rejected(
        processing_request(name, inputs=same_path)
    )
    # nothing was created by the rejected requests
    with pytest.raises(ClientError):
        sm.describe_processing_job(ProcessingJobName=name)


def test_unknown_image_and_missing_entrypoint_fail_with_a_reason(sm):
    image = unique("prep-image")
    sm.create_processing_job(
        **processing_request(image, image="123456789012.dkr.ecr.us-east-1.amazonaws.com/my-etl:3")
    )
    no_entry = unique("prep-noentry")
    request = processing_request(no_entry)
    del request["AppSpecification"]["ContainerEntrypoint"]
    sm.create_processing_job(**request)

    job = describe(sm, image)
    assert job["ProcessingJobStatus"] == "Failed"
    assert "cannot run image" in job["FailureReason"] and "my-etl:3" in job["FailureReason"]
    job = describe(sm, no_entry)
    assert job["ProcessingJobStatus"] == "Failed"
    assert "ContainerEntrypoint" in job["FailureReason"]


def test_duplicate_name_and_missing_job(sm, s3, bucket):
    name = unique("prep-dup")
    code = upload_script(s3, bucket, name, "print('hi')\n")
    arn = sm.create_processing_job(**processing_request(name, code_uri=code))["ProcessingJobArn"]
    with pytest.raises(ClientError) as err:
        sm.create_processing_job(**processing_request(name, code_uri=code))
    assert err.value.response["Error"]["Code"] == "ResourceInUse"
    assert "must be unique" in err.value.response["Error"]["Message"]
    assert arn in err.value.response["Error"]["Message"]

    with pytest.raises(ClientError) as err:
        sm.describe_processing_job(ProcessingJobName="no-such-processing-job")
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "no-such-processing-job" in err.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as err:
        sm.stop_processing_job(ProcessingJobName="no-such-processing-job")
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert describe(sm, name)["ProcessingJobStatus"] == "Completed"


SLEEP = """
import time
print("sleeping", flush=True)
time.sleep(60)
"""


def wait_for_log(logs, name: str, line: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while line not in log_messages(logs, name):
        assert time.monotonic() < deadline, f"{name} never logged {line!r}"
        time.sleep(0.2)


def test_stop_fault_and_max_runtime_end_a_running_job(local_aws, sm, s3, logs, bucket):
    names = {kind: unique(f"prep-{kind}") for kind in ("stop", "fault", "limit")}
    for kind, name in names.items():
        code = upload_script(s3, bucket, name, SLEEP)
        request = processing_request(name, code_uri=code)
        if kind == "limit":
            request["StoppingCondition"] = {"MaxRuntimeInSeconds": 1}
        sm.create_processing_job(**request)
    started = time.monotonic()

    wait_for_log(logs, names["stop"], "sleeping")
    sm.stop_processing_job(ProcessingJobName=names["stop"])
    assert sm.describe_processing_job(ProcessingJobName=names["stop"])["ProcessingJobStatus"] in (
        "Stopping",
        "Stopped",
    )

    wait_for_log(logs, names["fault"], "sleeping")
    admin(
        local_aws,
        f"/_local_aws/faults/processing-jobs/{names['fault']}/fail",
        {"reason": "InternalServerError: injected"},
    )

    stopped = describe(sm, names["stop"])
    assert stopped["ProcessingJobStatus"] == "Stopped"
    assert "ProcessingEndTime" in stopped
    failed = describe(sm, names["fault"])
    assert failed["ProcessingJobStatus"] == "Failed"
    assert failed["FailureReason"] == "InternalServerError: injected"
    limited = describe(sm, names["limit"])
    assert limited["ProcessingJobStatus"] == "Failed"
    assert "MaxRuntimeInSeconds" in limited["FailureReason"]
    assert time.monotonic() - started < 30  # none of them slept its 60 s

    # stopping a job that has ended changes nothing
    sm.stop_processing_job(ProcessingJobName=names["stop"])
    assert describe(sm, names["stop"])["ProcessingJobStatus"] == "Stopped"


def test_list_processing_jobs_filters_sorts_and_pages(sm, s3, bucket):
    # the jobs read their data through a manifest file
    s3.put_object(Bucket=bucket, Key="data/part-0.csv", Body=b"1\n2\n")
    s3.put_object(Bucket=bucket, Key="data/part-1.csv", Body=b"3\n")
    manifest = [{"prefix": f"s3://{bucket}/data/"}, "part-0.csv", "part-1.csv"]
    s3.put_object(Bucket=bucket, Key="data.manifest", Body=json.dumps(manifest).encode())
    count = """
    import os, sys
    files = sorted(os.listdir(sys.argv[1]))
    print("files", files, flush=True)
    sys.exit(0 if files == ["part-0.csv", "part-1.csv"] and sys.argv[2] == "ok" else 2)
    """
    prefix = unique("listing")
    for i, verdict in enumerate(("ok", "ok", "bad")):
        name = f"{prefix}-{i}"
        code = upload_script(s3, bucket, name, count, "count.py")
        if i == 1:
            time.sleep(0.2)  # a boundary between the first job's creation and the others'
            first = sm.describe_processing_job(ProcessingJobName=f"{prefix}-0")["CreationTime"]
            boundary = first + datetime.timedelta(milliseconds=100)
        sm.create_processing_job(
            **processing_request(
                name,
                code_uri=code,
                script="count.py",
                arguments=["/opt/ml/processing/input/data", verdict],
                inputs=[
                    s3_input(
                        "data",
                        f"s3://{bucket}/data.manifest",
                        "/opt/ml/processing/input/data",
                        "ManifestFile",
                    )
                ],
            )
        )
    statuses = [describe(sm, f"{prefix}-{i}")["ProcessingJobStatus"] for i in range(3)]
    assert statuses == ["Completed", "Completed", "Failed"]

    def names(**kwargs: Any) -> list[str]:
        page = sm.list_processing_jobs(NameContains=prefix, **kwargs)
        return [j["ProcessingJobName"] for j in page["ProcessingJobSummaries"]]

    assert names(SortBy="Name", SortOrder="Ascending") == [f"{prefix}-{i}" for i in range(3)]
    assert names() == [f"{prefix}-{i}" for i in (2, 1, 0)]  # newest first by default
    assert names(StatusEquals="Failed") == [f"{prefix}-2"]
    assert names(StatusEquals="Completed", SortBy="Name", SortOrder="Ascending") == [
        f"{prefix}-0",
        f"{prefix}-1",
    ]
    assert names(CreationTimeAfter=boundary) == [f"{prefix}-2", f"{prefix}-1"]
    assert names(CreationTimeBefore=boundary) == [f"{prefix}-0"]
    page = sm.list_processing_jobs(NameContains=prefix, MaxResults=2)
    assert len(page["ProcessingJobSummaries"]) == 2 and "NextToken" in page
    rest = sm.list_processing_jobs(NameContains=prefix, MaxResults=2, NextToken=page["NextToken"])
    assert len(rest["ProcessingJobSummaries"]) == 1 and "NextToken" not in rest
    summary = rest["ProcessingJobSummaries"][0]
    assert set(summary) >= {
        "ProcessingJobName",
        "ProcessingJobArn",
        "CreationTime",
        "ProcessingEndTime",
        "LastModifiedTime",
        "ProcessingJobStatus",
    }


# -- a private /opt/ml for every job -------------------------------------------------------------
# What SKLearnProcessor examples do: paths hard-coded in the script, not passed as arguments.
HARD_CODED = """
import json, os, sys
tag = sys.argv[1]
summary = {"tag": tag, "inputs": sorted(os.listdir("/opt/ml/processing/input/data"))}
with open("/opt/ml/processing/output/summary.json", "w") as fh:
    json.dump(summary, fh)
"""


def test_concurrent_jobs_writing_the_same_hard_coded_opt_ml_path_keep_their_own_output(
    sm, s3, bucket
):
    names = [unique("optml-a"), unique("optml-b")]
    for name in names:
        s3.put_object(Bucket=bucket, Key=f"{name}/in/{name}.csv", Body=b"x\n1\n")
    requests = [
        processing_request(
            name,
            code_uri=upload_script(s3, bucket, name, HARD_CODED),
            arguments=[name],
            inputs=[s3_input("data", f"s3://{bucket}/{name}/in/", "/opt/ml/processing/input/data")],
            outputs=[s3_output("out", "/opt/ml/processing/output", f"s3://{bucket}/{name}/out")],
        )
        for name in names
    ]
    for request in requests:  # both at once: on a shared /opt/ml they would overwrite each other
        sm.create_processing_job(**request)
    for name in names:
        job = describe(sm, name)
        assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
        body = s3.get_object(Bucket=bucket, Key=f"{name}/out/summary.json")["Body"].read()
        # its own tag and its own input: nothing of the other job's /opt/ml
        assert json.loads(body) == {"tag": name, "inputs": [f"{name}.csv"]}
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{name}/out/")["Contents"]
        assert [o["Key"] for o in listed] == [f"{name}/out/summary.json"]


def test_manifest_entries_outside_the_input_directory_fail_the_job(sm, s3, bucket, tmp_path):
    name = unique("manifest-escape")
    escape = tmp_path / "escape.txt"
    s3.put_object(Bucket=bucket, Key=f"{name}/data/a.csv", Body=b"1\n")
    manifest = [{"prefix": f"s3://{bucket}/{name}/data/"}, "a.csv", str(escape)]
    s3.put_object(Bucket=bucket, Key=f"{name}/manifest.json", Body=json.dumps(manifest).encode())
    source = s3_input("data", f"s3://{bucket}/{name}/manifest.json", "/opt/ml/processing/input")
    source["S3Input"]["S3DataType"] = "ManifestFile"
    sm.create_processing_job(
        **processing_request(
            name, code_uri=upload_script(s3, bucket, name, "print('ran')"), inputs=[source]
        )
    )
    job = describe(sm, name)
    assert job["ProcessingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("ClientError: input 'data': S3 object key")
    assert str(escape) in job["FailureReason"]
    assert not escape.exists()


def test_a_job_sees_none_of_the_servers_own_secrets(sm, s3, logs, bucket, monkeypatch):
    # the server runs in this process: what it has in its environment, a job must not get
    monkeypatch.setenv("WAREHOUSE_PASSWORD", "hunter2")
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", "postgres://u:hunter2@db/x")
    name = unique("env")
    script = "import os\nprint('ENV', sorted(os.environ))\nprint('STAGE', os.environ['STAGE'])\n"
    sm.create_processing_job(
        **processing_request(
            name,
            code_uri=upload_script(s3, bucket, name, script),
            Environment={"STAGE": "given"},
        )
    )
    job = describe(sm, name)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    printed = "\n".join(log_messages(logs, name))
    assert "STAGE given" in printed  # what the request gives is there
    assert "WAREHOUSE_PASSWORD" not in printed and "AIRFLOW_CONN_WAREHOUSE" not in printed
    assert "'PATH'" in printed and "'AWS_ENDPOINT_URL'" in printed


def test_a_job_without_a_stopping_condition_gets_sagemakers_one_day_limit():
    from local_aws.sagemaker.jobs import max_runtime

    assert max_runtime({}) == 86_400
    assert max_runtime({"StoppingCondition": {}}) == 86_400
    assert max_runtime({"StoppingCondition": {"MaxRuntimeInSeconds": 60}}) == 60
