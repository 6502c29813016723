"""Training jobs: script mode under the real SageMaker training toolkit, through boto3."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import time

import pytest
from botocore.exceptions import ClientError

from tests.conftest import admin, unique, wait_for
from tests.jobkit import (
    TRAINING_LOGS,
    log_lines,
    training_request,
    upload_source,
    wait_until_training,
)

TRAIN = """
import argparse, json, os, sys

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--learning-rate", type=float, default=0.1)
parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR"))
parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN"))
args = parser.parse_args()

rows = open(os.path.join(args.train, "data.csv")).read().split()
for epoch in range(args.epochs):
    print(f"epoch={epoch} train_loss={1.0 / (epoch + 1):.4f}", flush=True)
with open(os.path.join(args.model_dir, "model.json"), "w") as fh:
    json.dump({"rows": len(rows), "lr": args.learning_rate,
               "hps": json.loads(os.environ["SM_HPS"]),
               "channels": json.loads(os.environ["SM_CHANNELS"]),
               "job": os.environ.get("TRAINING_JOB_NAME")}, fh)
os.makedirs(os.environ["SM_OUTPUT_DATA_DIR"], exist_ok=True)
open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "report.txt"), "w").write("ok")
if args.learning_rate < 0:
    raise ValueError(f"learning rate must be positive, got {args.learning_rate}")
"""


@pytest.fixture
def data(s3, bucket):
    s3.put_object(Bucket=bucket, Key="train/data.csv", Body=b"1,2\n3,4\n5,6\n")
    source = upload_source(s3, bucket, "code/sourcedir.tar.gz", {"train.py": TRAIN})
    return bucket, source


def read_tar_member(s3, uri: str, member: str) -> bytes:
    bucket, key = uri[5:].split("/", 1)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        extracted = tar.extractfile(member)
        assert extracted is not None
        return extracted.read()


def test_script_mode_job_trains_and_uploads_model(sm, s3, logs, data):
    bucket, source = data
    name = unique("train")
    sm.create_training_job(
        **training_request(
            name,
            bucket,
            source,
            hyperparameters={"epochs": "3", "learning-rate": "0.05"},
            channels={"train": f"s3://{bucket}/train"},
            metric_definitions=[{"Name": "train:loss", "Regex": r"train_loss=([0-9.]+)"}],
            Tags=[{"Key": "airflow_dag_id", "Value": "model_build"}],
        )
    )
    job = wait_for(lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus")

    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["SecondaryStatus"] == "Completed"
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]] == [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    assert job["TrainingStartTime"] <= job["TrainingEndTime"]
    assert job["BillableTimeInSeconds"] >= 1
    assert job["FinalMetricDataList"][0]["MetricName"] == "train:loss"
    assert job["FinalMetricDataList"][0]["Value"] == pytest.approx(0.3333)

    artifacts = job["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifacts == f"s3://{bucket}/output/{name}/output/model.tar.gz"
    model = json.loads(read_tar_member(s3, artifacts, "model.json"))
    assert model["rows"] == 3 and model["lr"] == 0.05 and model["job"] == name
    assert model["hps"]["epochs"] == 3
    assert model["channels"] == ["train"]
    output = artifacts.replace("model.tar.gz", "output.tar.gz")
    assert read_tar_member(s3, output, "report.txt") == b"ok"

    streams = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{name}/"
    )["logStreams"]
    assert len(streams) == 1 and streams[0]["logStreamName"].startswith(f"{name}/algo-1-")
    events = logs.get_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs",
        logStreamName=streams[0]["logStreamName"],
        startFromHead=True,
    )["events"]
    assert "epoch=2 train_loss=0.3333" in [e["message"] for e in events]

    tags = sm.list_tags(ResourceArn=job["TrainingJobArn"])["Tags"]
    assert {"Key": "airflow_dag_id", "Value": "model_build"} in tags


def test_exception_in_script_fails_job_with_reason(sm, data):
    bucket, source = data
    name = unique("train-fail")
    sm.create_training_job(
        **training_request(
            name,
            bucket,
            source,
            hyperparameters={"learning-rate": "-1"},
            channels={"train": f"s3://{bucket}/train"},
        )
    )
    job = wait_for(lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus")
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("AlgorithmError: ExecuteUserScriptError")
    assert "ValueError" in job["FailureReason"]
    assert "learning rate must be positive, got -1.0" in job["FailureReason"]
    assert job["ModelArtifacts"]["S3ModelArtifacts"] == ""


def test_failure_file_becomes_failure_reason(sm, s3, bucket):
    script = """
    import os, sys
    base = os.environ["SAGEMAKER_BASE_DIR"]
    open(os.path.join(base, "output", "failure"), "w").write("ClientError: column 'amount' missing")
    sys.exit(3)
    """
    source = upload_source(s3, bucket, "code/fail.tar.gz", {"train.py": script})
    name = unique("train-failfile")
    sm.create_training_job(**training_request(name, bucket, source))
    job = wait_for(lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus")
    assert job["TrainingJobStatus"] == "Failed"
    assert "ClientError: column 'amount' missing" in job["FailureReason"]


def test_stop_and_max_runtime(sm, s3, bucket):
    source = upload_source(
        s3, bucket, "code/sleep.tar.gz", {"train.py": "import time\ntime.sleep(120)\n"}
    )
    stopped = unique("train-stop")
    sm.create_training_job(**training_request(stopped, bucket, source))
    wait_until_training(sm, stopped)
    sm.stop_training_job(TrainingJobName=stopped)
    job = wait_for(lambda: sm.describe_training_job(TrainingJobName=stopped), "TrainingJobStatus")
    assert job["TrainingJobStatus"] == "Stopped"

    limited = unique("train-limit")
    request = training_request(limited, bucket, source)
    request["StoppingCondition"] = {"MaxRuntimeInSeconds": 2}
    started = time.monotonic()
    sm.create_training_job(**request)
    job = wait_for(lambda: sm.describe_training_job(TrainingJobName=limited), "TrainingJobStatus")
    assert time.monotonic() - started < 30
    assert job["TrainingJobStatus"] == "Stopped"
    assert job["SecondaryStatus"] == "MaxRuntimeExceeded"


def test_duplicate_name_and_missing_job(sm, s3, data):
    bucket, source = data
    name = unique("train-dup")
    sm.create_training_job(
        **training_request(name, bucket, source, channels={"train": f"s3://{bucket}/train"})
    )
    with pytest.raises(ClientError) as err:
        sm.create_training_job(**training_request(name, bucket, source))
    assert err.value.response["Error"]["Code"] == "ResourceInUse"
    assert "must be unique" in err.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as err:
        sm.describe_training_job(TrainingJobName="no-such-job")
    assert err.value.response["Error"]["Code"] == "ValidationException"
    wait_for(lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus")


def test_bad_requests_name_the_field(local_aws, bucket):
    # botocore validates client-side too; disable that to see the server's own answer
    from botocore.config import Config

    raw = local_aws.client("sagemaker", config=Config(parameter_validation=False))
    request = training_request("bad_name!", bucket, "s3://x/y.tar.gz")
    with pytest.raises(ClientError) as err:
        raw.create_training_job(**request)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "'trainingJobName'" in err.value.response["Error"]["Message"]

    request = training_request("ok-name", bucket, "s3://x/y.tar.gz")
    request["ResourceConfig"]["InstanceCount"] = "one"
    with pytest.raises(ClientError) as err:
        raw.create_training_job(**request)
    assert "ResourceConfig.InstanceCount" in err.value.response["Error"]["Message"]

    request = training_request("ok-name", bucket, "s3://x/y.tar.gz")
    del request["OutputDataConfig"]
    with pytest.raises(ClientError) as err:
        raw.create_training_job(**request)
    assert 'Missing required parameter in input: "OutputDataConfig"' in str(err.value)


def test_unsupported_image_and_missing_program_fail_clearly(sm, bucket):
    name = unique("train-image")
    request = training_request(
        name, bucket, "s3://x/y.tar.gz", image="123.dkr.ecr.us-east-1.amazonaws.com/my-own:1"
    )
    sm.create_training_job(**request)
    job = wait_for(lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus")
    assert job["TrainingJobStatus"] == "Failed"
    assert "cannot run image" in job["FailureReason"] and "my-own" in job["FailureReason"]

    name = unique("train-noprog")
    request = training_request(name, bucket, "s3://x/y.tar.gz")
    request["HyperParameters"] = {"epochs": "1"}
    sm.create_training_job(**request)
    job = wait_for(lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus")
    assert "sagemaker_program" in job["FailureReason"]


def test_missing_input_data_fails_with_the_uri(sm, data):
    bucket, source = data
    name = unique("train-noinput")
    sm.create_training_job(
        **training_request(name, bucket, source, channels={"train": f"s3://{bucket}/nothing-here/"})
    )
    job = wait_for(lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus")
    assert job["TrainingJobStatus"] == "Failed"
    assert f"s3://{bucket}/nothing-here/" in job["FailureReason"]


def test_list_training_jobs_filters(sm, data):
    bucket, source = data
    prefix = unique("listing")
    for i in range(3):
        sm.create_training_job(
            **training_request(
                f"{prefix}-{i}", bucket, source, channels={"train": f"s3://{bucket}/train"}
            )
        )
    for i in range(3):
        wait_for(
            lambda i=i: sm.describe_training_job(TrainingJobName=f"{prefix}-{i}"),
            "TrainingJobStatus",
        )
    listed = sm.list_training_jobs(NameContains=prefix, SortBy="Name", SortOrder="Ascending")
    assert [j["TrainingJobName"] for j in listed["TrainingJobSummaries"]] == [
        f"{prefix}-{i}" for i in range(3)
    ]
    page = sm.list_training_jobs(NameContains=prefix, MaxResults=2)
    assert len(page["TrainingJobSummaries"]) == 2 and "NextToken" in page
    rest = sm.list_training_jobs(NameContains=prefix, MaxResults=2, NextToken=page["NextToken"])
    assert len(rest["TrainingJobSummaries"]) == 1
    assert (
        sm.list_training_jobs(NameContains=prefix, StatusEquals="Failed")["TrainingJobSummaries"]
        == []
    )


SPOT = """
import os, time
base = os.environ["SAGEMAKER_BASE_DIR"]
ckpt = os.path.join(base, "checkpoints")
os.makedirs(ckpt, exist_ok=True)
path = os.path.join(ckpt, "epoch.txt")
start = int(open(path).read()) if os.path.exists(path) else 0
print(f"resuming from epoch {start}", flush=True)
for epoch in range(start, 6):
    open(path, "w").write(str(epoch + 1))
    print(f"epoch {epoch} done", flush=True)
    if start == 0 and epoch == 1:
        time.sleep(120)  # the first run waits here to be interrupted (the test does it)
open(os.path.join(os.environ["SM_MODEL_DIR"], "started_at.txt"), "w").write(str(start))
"""


def test_spot_interruption_resumes_from_checkpoint(local_aws, sm, s3, logs, bucket):

    source = upload_source(s3, bucket, "code/spot.tar.gz", {"train.py": SPOT})
    name = unique("train-spot")
    request = training_request(
        name,
        bucket,
        source,
        EnableManagedSpotTraining=True,
        CheckpointConfig={"S3Uri": f"s3://{bucket}/checkpoints/{name}"},
    )
    request["StoppingCondition"] = {"MaxRuntimeInSeconds": 120, "MaxWaitTimeInSeconds": 300}
    sm.create_training_job(**request)
    wait_until_training(sm, name)
    # two epochs checkpointed (a condition, not a time: the machine may be slow)
    deadline = time.monotonic() + 120
    while "epoch 1 done" not in _lines(logs, name):
        assert time.monotonic() < deadline, "the job never finished its second epoch"
        time.sleep(0.2)
    admin(local_aws, f"/_local_aws/faults/training-jobs/{name}/interrupt-spot")
    job = wait_for(lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus")

    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    statuses = [t["Status"] for t in job["SecondaryStatusTransitions"]]
    assert "Interrupted" in statuses
    assert statuses.index("Interrupted") < len(statuses) - statuses[::-1].index("Training") - 1
    resumed_at = int(
        read_tar_member(s3, job["ModelArtifacts"]["S3ModelArtifacts"], "started_at.txt")
    )
    assert resumed_at >= 2, "the second run should resume from the saved checkpoint"
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f"checkpoints/{name}/")["KeyCount"] == 1
    # Spot is billed at a discount: billable time is well under the time the job took.
    assert job["BillableTimeInSeconds"] < job["TrainingTimeInSeconds"]


def _lines(logs, name: str) -> list[str]:
    try:
        return log_lines(logs, TRAINING_LOGS, name)
    except logs.exceptions.ResourceNotFoundException:
        return []  # nothing logged yet


def test_checkpoint_path_outside_opt_ml_is_rejected(sm, bucket):
    request = training_request(
        unique("train-ckpt"),
        bucket,
        "s3://x/y.tar.gz",
        CheckpointConfig={"S3Uri": f"s3://{bucket}/ckpt", "LocalPath": "/etc/checkpoints"},
    )
    with pytest.raises(ClientError) as err:
        sm.create_training_job(**request)
    assert "CheckpointConfig.LocalPath must be a path under /opt/ml/" in str(err.value)


LIST_CHANNEL = """
import os
print(f"channel train: {sorted(os.listdir('/opt/ml/input/data/train'))}", flush=True)
os.makedirs("/opt/ml/model", exist_ok=True)
open("/opt/ml/model/seen.txt", "w").write(",".join(sorted(os.listdir("/opt/ml/input/data/train"))))
"""


def test_a_script_sees_its_channel_at_the_hard_coded_opt_ml_path(sm, s3, logs, bucket):
    name = unique("optml-train")
    s3.put_object(Bucket=bucket, Key=f"{name}/train/part-1.csv", Body=b"1,2\n")
    s3.put_object(Bucket=bucket, Key=f"{name}/train/part-2.csv", Body=b"3,4\n")
    source = upload_source(s3, bucket, f"{name}/source.tar.gz", {"train.py": LIST_CHANNEL})
    sm.create_training_job(
        **training_request(name, bucket, source, channels={"train": f"s3://{bucket}/{name}/train/"})
    )
    job = wait_for(lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    logged = log_lines(logs, "/aws/sagemaker/TrainingJobs", name)
    assert any("channel train: ['part-1.csv', 'part-2.csv']" in line for line in logged), "\n".join(
        logged
    )
    # /opt/ml/model was the job's own: it came back in model.tar.gz
    artifact = job["ModelArtifacts"]["S3ModelArtifacts"]
    key = artifact.removeprefix(f"s3://{bucket}/")
    with tarfile.open(
        fileobj=io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    ) as tar:
        assert tar.extractfile("seen.txt").read() == b"part-1.csv,part-2.csv"  # type: ignore[union-attr]


def test_an_s3_key_that_would_escape_the_channel_fails_the_job_and_writes_nothing(
    sm, s3, bucket, tmp_path
):
    name = unique("escape")
    escape = tmp_path / "escape.txt"
    depth = "../" * 12  # deeper than any sandbox: would reach the file system's root
    s3.put_object(Bucket=bucket, Key=f"{name}/train/ok.csv", Body=b"1\n")
    s3.put_object(Bucket=bucket, Key=f"{name}/train/{depth}{escape}", Body=b"pwned")
    source = upload_source(s3, bucket, f"{name}/source.tar.gz", {"train.py": "print('ran')"})
    sm.create_training_job(
        **training_request(name, bucket, source, channels={"train": f"s3://{bucket}/{name}/train/"})
    )
    job = wait_for(lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus")
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("ClientError: channel 'train': S3 object key")
    assert f"{depth}{escape}" in job["FailureReason"]
    assert not escape.exists()


def test_a_channel_named_dot_dot_is_refused(sm, bucket):
    name = unique("dotdot")
    request = training_request(
        name, bucket, f"s3://{bucket}/src.tar.gz", channels={"..": f"s3://{bucket}/x/"}
    )
    with pytest.raises(ClientError) as err:
        sm.create_training_job(**request)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "InputDataConfig.ChannelName '..'" in err.value.response["Error"]["Message"]


IGNORES_SIGTERM = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ignoring SIGTERM", flush=True)
time.sleep(600)
"""


def test_stop_ends_a_script_that_ignores_sigterm(sm, s3, bucket):
    name = unique("stubborn")
    # the program's name is unique: its processes are found by it on the host
    program = f"{name.replace('-', '_')}.py"
    source = upload_source(s3, bucket, f"{name}/source.tar.gz", {program: IGNORES_SIGTERM})
    sm.create_training_job(**training_request(name, bucket, source, program=program))
    wait_until_training(sm, name)

    def running() -> list[str]:
        found = subprocess.run(["pgrep", "-f", program], capture_output=True, text=True)
        return found.stdout.split()

    deadline = time.monotonic() + 60
    while not running():  # the toolkit has started the script
        assert time.monotonic() < deadline, "the script never started"
        time.sleep(0.1)
    sm.stop_training_job(TrainingJobName=name)  # answers at once; the stop goes on behind it
    job = wait_for(lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus")
    assert job["TrainingJobStatus"] == "Stopped"
    # Stopped only once the whole process group is gone: SIGKILL after the grace period
    assert running() == []
