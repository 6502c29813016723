"""The server as a whole: routing, binding, faults, restarts, the CLI."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
import urllib.request
import uuid

import psutil
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local_aws.gaps import signing_service
from local_aws.server import LocalAWS
from tests.conftest import ServerProcess, admin, unique, wait_for
from tests.jobkit import (
    endpoint_config_request,
    fit,
    model_request,
    training_request,
    upload_model,
    upload_source,
    wait_until_training,
)


def test_one_port_serves_moto_and_sagemaker(local_aws, s3, sm):
    bucket = unique("route")
    s3.create_bucket(Bucket=bucket)
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert sm.list_training_jobs(NameContains="no-such-prefix")["TrainingJobSummaries"] == []
    iam = local_aws.client("iam")
    role = iam.create_role(RoleName=unique("role"), AssumeRolePolicyDocument="{}")["Role"]
    assert role["Arn"].startswith("arn:aws:iam::123456789012:role/")
    sts = local_aws.client("sts")
    assert sts.get_caller_identity()["Account"] == "123456789012"


def test_signing_service_reads_the_credential_scope():
    auth = (
        "AWS4-HMAC-SHA256 Credential=AKID/20261125/us-east-1/sagemaker/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=abc"
    )
    assert signing_service({"HTTP_AUTHORIZATION": auth}) == "sagemaker"
    assert signing_service({}) is None


def test_iam_simulate_principal_policy_allows_every_action(local_aws):
    # The SageMaker SDK checks its role this way; local_aws enforces no IAM policy.
    iam = local_aws.client("iam")
    result = iam.simulate_principal_policy(
        PolicySourceArn="arn:aws:iam::123456789012:role/SageMakerExecution",
        ActionNames=["s3:PutObject", "s3:GetObject"],
        ResourceArns=["arn:aws:s3:::bucket/*"],
    )
    assert [
        (r["EvalActionName"], r["EvalResourceName"], r["EvalDecision"])
        for r in result["EvaluationResults"]
    ] == [
        ("s3:PutObject", "arn:aws:s3:::bucket/*", "allowed"),
        ("s3:GetObject", "arn:aws:s3:::bucket/*", "allowed"),
    ]
    assert result["IsTruncated"] is False


def test_unserved_services_and_actions_get_an_aws_error_at_once(local_aws):
    # no backend for the service at all (a REST-JSON protocol)
    with pytest.raises(ClientError) as err:
        local_aws.client("codeartifact").list_domains()
    assert err.value.response["Error"]["Code"] == "NotImplemented"
    assert "local_aws does not serve codeartifact" in err.value.response["Error"]["Message"]
    assert err.value.response["ResponseMetadata"]["RetryAttempts"] == 0  # answered, not retried
    # a service moto serves, an action it lacks (a query-protocol service: an XML error)
    with pytest.raises(ClientError) as err:
        local_aws.client("iam").simulate_custom_policy(
            PolicyInputList=["{}"], ActionNames=["s3:GetObject"]
        )
    assert err.value.response["Error"]["Code"] == "NotImplemented"
    assert "iam:SimulateCustomPolicy" in err.value.response["Error"]["Message"]
    assert err.value.response["ResponseMetadata"]["RetryAttempts"] == 0


def test_refuses_non_loopback_without_the_flag(tmp_path):
    with pytest.raises(ValueError, match="loopback"):
        LocalAWS(tmp_path, host="0.0.0.0")
    with pytest.warns(UserWarning, match="binding 0.0.0.0"):
        LocalAWS(tmp_path, host="0.0.0.0", allow_non_loopback=True)


def test_unknown_operation_and_bad_json_are_aws_errors(local_aws):
    request = urllib.request.Request(
        local_aws.url,
        data=b"{not json",
        headers={
            "X-Amz-Target": "SageMaker.ListTrainingJobs",
            "Content-Type": "application/x-amz-json-1.1",
            "Authorization": "AWS4-HMAC-SHA256 Credential=a/20261125/us-east-1/sagemaker/aws4_request, SignedHeaders=host, Signature=x",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request)
    body = json.loads(err.value.read())
    assert err.value.code == 400
    assert body["__type"] == "ValidationException" and "not valid JSON" in body["message"]


def test_throttling_fault_gives_throttling_exception(local_aws):
    raw = local_aws.client(
        "sagemaker", config=Config(retries={"max_attempts": 1, "mode": "standard"})
    )
    admin(local_aws, "/_local_aws/faults/throttle", {"fraction": 1.0, "operations": ["ListModels"]})
    try:
        with pytest.raises(ClientError) as err:
            raw.list_models()
        assert err.value.response["Error"]["Code"] == "ThrottlingException"
        raw.list_training_jobs(MaxResults=1)  # other operations are untouched
        # boto3's retries ride out a partial throttle, as against real AWS
        admin(local_aws, "/_local_aws/faults/throttle", {"fraction": 0.3, "seed": 7})
        retrying = local_aws.client(
            "sagemaker", config=Config(retries={"max_attempts": 10, "mode": "standard"})
        )
        retries = 0
        for _ in range(5):
            retries += retrying.list_models()["ResponseMetadata"]["RetryAttempts"]
        assert retries > 0, "with a 30% throttle some of the calls must have been retried"
    finally:
        admin(local_aws, "/_local_aws/faults", None, method="DELETE")


def test_fail_job_fault(local_aws, sm, s3, bucket):
    source = upload_source(
        s3, bucket, "code/sleep.tar.gz", {"train.py": "import time\ntime.sleep(60)\n"}
    )
    name = unique("fault-fail")
    sm.create_training_job(**training_request(name, bucket, source))
    wait_until_training(sm, name)
    admin(
        local_aws,
        f"/_local_aws/faults/training-jobs/{name}/fail",
        {"reason": "AlgorithmError: injected"},
    )
    job = wait_for(lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus")
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"] == "AlgorithmError: injected"


def test_restart_keeps_everything_and_fails_the_running_job(tmp_path):
    server = ServerProcess(tmp_path / "data").start()
    try:
        s3, sm, logs = server.client("s3"), server.client("sagemaker"), server.client("logs")
        s3.create_bucket(Bucket="restart-bucket")
        s3.put_object(Bucket="restart-bucket", Key="data/x.csv", Body=b"1,2\n")
        quick = upload_source(
            s3, "restart-bucket", "code/q.tar.gz", {"train.py": "print('quick job ran')\n"}
        )
        slow = upload_source(
            s3, "restart-bucket", "code/s.tar.gz", {"train.py": "import time\ntime.sleep(60)\n"}
        )
        sm.create_training_job(**training_request("done-before", "restart-bucket", quick))
        wait_for(
            lambda: sm.describe_training_job(TrainingJobName="done-before"), "TrainingJobStatus"
        )
        sm.create_training_job(**training_request("running-at-stop", "restart-bucket", slow))
        wait_until_training(sm, "running-at-stop")
    finally:
        server.stop(signal.SIGTERM)

    server.start()
    try:
        s3, sm, logs = server.client("s3"), server.client("sagemaker"), server.client("logs")
        assert s3.get_object(Bucket="restart-bucket", Key="data/x.csv")["Body"].read() == b"1,2\n"
        done = sm.describe_training_job(TrainingJobName="done-before")
        assert done["TrainingJobStatus"] == "Completed"
        model = done["ModelArtifacts"]["S3ModelArtifacts"]
        assert (
            s3.head_object(Bucket="restart-bucket", Key=model.split("/", 3)[3])["ContentLength"] > 0
        )
        stream = logs.describe_log_streams(
            logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix="done-before/"
        )["logStreams"][0]["logStreamName"]
        messages = [
            e["message"]
            for e in logs.get_log_events(
                logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream, startFromHead=True
            )["events"]
        ]
        assert "quick job ran" in messages
        interrupted = sm.describe_training_job(TrainingJobName="running-at-stop")
        assert interrupted["TrainingJobStatus"] == "Failed"
        assert "stopped while this job was running" in interrupted["FailureReason"]
    finally:
        server.stop()


def test_cli_fault_commands_reach_a_running_server(tmp_path):
    server = ServerProcess(tmp_path / "cli").start()
    try:

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "local_aws", *args, "--endpoint-url", server.url]
                if args[0] == "health"
                else [
                    sys.executable,
                    "-m",
                    "local_aws",
                    "fault",
                    "--endpoint-url",
                    server.url,
                    "--data-dir",  # where the running server keeps its admin token
                    str(server.data_dir),
                    *args,
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )

        assert json.loads(cli("health").stdout)["status"] == "ok"
        assert cli("throttle", "--fraction", "1", "--operations", "ListModels").returncode == 0
        with pytest.raises(ClientError, match="ThrottlingException"):
            server.client("sagemaker").list_models()
        assert cli("clear").returncode == 0
        server.client("sagemaker").list_models()
        missing = cli("fail-job", "training-jobs", "nope")
        assert missing.returncode == 1 and "not running" in missing.stderr
    finally:
        server.stop()


def test_cli_serve_refuses_a_non_loopback_host(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "local_aws",
            "serve",
            "--host",
            "0.0.0.0",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--allow-non-loopback" in result.stderr


# -- the guard: what a web page the user visits cannot do -----------------------------------------
def _raw(local_aws, path: str, method: str = "GET", headers: dict | None = None, data=None):
    """A plain HTTP request, as a browser would send it: no AWS signature."""
    request = urllib.request.Request(
        local_aws.url + path, data=data, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_unsigned_requests_are_refused_and_presigned_urls_work(local_aws, s3, bucket):
    s3.put_object(Bucket=bucket, Key="secret.txt", Body=b"secret")
    status, _, body = _raw(local_aws, f"/{bucket}/secret.txt")
    assert status == 403
    assert b"<Code>AccessDenied</Code>" in body and b"AWS signature" in body
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "secret.txt"})
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.read() == b"secret"


def test_moto_reset_and_admin_routes_need_the_token(local_aws, s3, bucket):
    s3.put_object(Bucket=bucket, Key="kept.txt", Body=b"kept")
    # the request a page can send cross-origin without a preflight
    status, _, body = _raw(
        local_aws, "/moto-api/reset", "POST", {"Content-Type": "text/plain"}, b"x"
    )
    assert status == 403 and b"admin route" in body
    assert s3.get_object(Bucket=bucket, Key="kept.txt")["Body"].read() == b"kept"
    status, _, _ = _raw(local_aws, "/_local_aws/faults/throttle", "POST", data=b"{}")
    assert status == 403
    assert _raw(local_aws, "/_local_aws/health")[0] == 200  # readiness stays open
    token_file = local_aws.data_dir / "admin-token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert admin(local_aws, "/_local_aws/faults", method="GET")["throttle_fraction"] == 0


def test_a_second_server_on_a_data_dir_in_use_is_refused_and_changes_nothing(tmp_path):
    from local_aws.journal import JournalError

    with LocalAWS(tmp_path, port=0) as running:
        token = (tmp_path / "admin-token").read_text()
        with pytest.raises(JournalError, match="in use by another local_aws"):
            LocalAWS(tmp_path, port=0).start()
        # the running server's token, which its CLI and clients read, is still the file's
        assert (tmp_path / "admin-token").read_text() == token
        assert admin(running, "/_local_aws/faults", method="GET")["throttle_fraction"] == 0


def test_no_cross_origin_access_by_default(local_aws, bucket):
    evil = {"Origin": "http://evil.example"}
    status, headers, _ = _raw(
        local_aws,
        f"/{bucket}",
        "OPTIONS",
        {**evil, "Access-Control-Request-Method": "GET"},
    )
    assert status == 403
    assert not any(k.lower().startswith("access-control-") for k in headers)
    # a signed request from a page (were it able to sign) still gets no CORS grant
    auth = "AWS4-HMAC-SHA256 Credential=a/20261202/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=x"
    _, headers, _ = _raw(local_aws, "/", headers={**evil, "Authorization": auth})
    assert not any(k.lower().startswith("access-control-") for k in headers)


def test_an_allowed_origin_keeps_the_cors_headers():
    from werkzeug.test import Client
    from werkzeug.wrappers import Response

    from local_aws import guard

    def app(environ, start_response):
        origin = environ.get("HTTP_ORIGIN", "")
        return Response("ok", headers={"Access-Control-Allow-Origin": origin})(
            environ, start_response
        )

    client = Client(guard.wrap(app, token="t", cors_origins=["http://ok.example"]))
    auth = {"Authorization": "AWS4-HMAC-SHA256 Credential=a/20261202/us-east-1/s3/aws4_request"}
    allowed = client.get("/", headers={**auth, "Origin": "http://ok.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://ok.example"
    other = client.get("/", headers={**auth, "Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    preflight = client.options("/", headers={"Origin": "http://ok.example"})
    assert preflight.status_code == 200


def test_a_restart_after_kill_9_reaps_what_the_dead_server_left_running(tmp_path):
    server = ServerProcess(tmp_path / "data").start()
    marker = f"orphan_{uuid.uuid4().hex[:8]}"
    try:
        s3, sm = server.client("s3"), server.client("sagemaker")
        s3.create_bucket(Bucket="orphan-bucket")
        script = f"import time\nprint('{marker}', flush=True)\ntime.sleep(600)\n"
        source = upload_source(s3, "orphan-bucket", "code/o.tar.gz", {f"{marker}.py": script})
        request = training_request("orphaned", "orphan-bucket", source, program=f"{marker}.py")
        sm.create_training_job(**request)
        wait_until_training(sm, "orphaned")
        deadline = time.monotonic() + 60
        while not _pids(marker):  # the toolkit has started the script
            assert time.monotonic() < deadline, "the script never started"
            time.sleep(0.1)
    finally:
        server.stop(signal.SIGKILL)  # no chance to stop its jobs
    assert _pids(marker), "the job's script died with the server: nothing to reap"

    server.start()
    try:
        sm = server.client("sagemaker")
        assert _pids(marker) == []  # killed before the job was marked Failed
        job = sm.describe_training_job(TrainingJobName="orphaned")
        assert job["TrainingJobStatus"] == "Failed"
        assert "stopped while this job was running" in job["FailureReason"]
    finally:
        server.stop()


# A model that only a SIGKILL ends (it ignores SIGTERM, as a server stuck in C code would) and
# that starts a helper in a session of its own (out of the model server's process group).
_STUBBORN = """
import os, signal, subprocess, sys
import joblib
import numpy as np

def model_fn(model_dir):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)", "MARKER"], start_new_session=True
    )
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def predict_fn(data, model):
    return model.predict(np.atleast_2d(data))
"""


def _descendants(pid: int) -> dict[int, tuple[float, str]]:
    """pid -> (start time, command line) of every process below ``pid``."""
    found = {}
    for child in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            found[child.pid] = (child.create_time(), " ".join(child.cmdline()))
    return found


def _running(procs: dict[int, tuple[float, str]]) -> list[str]:
    """Those of ``procs`` still running (the same process, not a reused pid; not a zombie)."""
    left = []
    for pid, (started, cmdline) in procs.items():
        with contextlib.suppress(psutil.NoSuchProcess):
            proc = psutil.Process(pid)
            if proc.create_time() == started and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{pid} {cmdline}")
    return left


def test_no_process_outlives_a_stop_and_a_restart_reaps_the_model_servers(tmp_path):
    """kill -9 leaves a two-variant endpoint's model servers running (they ignore SIGTERM)
    and their helpers (sessions of their own): the next start kills them all before it
    serves; a clean stop then leaves nothing, zygotes included."""
    marker = f"helper_{uuid.uuid4().hex[:8]}"
    server = ServerProcess(tmp_path / "data").start()
    try:
        s3, sm = server.client("s3"), server.client("sagemaker")
        s3.create_bucket(Bucket="stubborn")
        code = upload_source(
            s3, "stubborn", "code/s.tar.gz", {"inference.py": _STUBBORN.replace("MARKER", marker)}
        )
        for which, coef in (("a", [1, 2, 3]), ("b", [-1, 0, 1])):
            data = upload_model(s3, "stubborn", f"models/{which}.tar.gz", fit(coef, 0.5))
            sm.create_model(**model_request(f"stubborn-{which}", data, code))
        sm.create_endpoint_config(
            **endpoint_config_request("stubborn", {"A": ("stubborn-a", 1), "B": ("stubborn-b", 1)})
        )
        sm.create_endpoint(EndpointName="stubborn", EndpointConfigName="stubborn")
        done = wait_for(lambda: sm.describe_endpoint(EndpointName="stubborn"), "EndpointStatus")
        assert done["EndpointStatus"] == "InService", done.get("FailureReason")
        first = _descendants(server.proc.pid)
    finally:
        server.stop(signal.SIGKILL)  # no chance to stop anything
    commands = " ".join(cmdline for _, cmdline in first.values())
    assert "warm_serving" in commands and "warm_child" in commands  # both zygotes
    assert len(_pids(marker)) == 2  # a helper per variant
    # the model servers (forked from the serving zygote) ignore SIGTERM: nothing but a sweep
    # ends them; without one they would run on
    assert len(_running(first)) >= 4, first

    server.start()  # returns once it serves: the sweep came first
    try:
        assert _running(first) == []
        runtime = server.client("sagemaker-runtime")
        answer = runtime.invoke_endpoint(
            EndpointName="stubborn", Body=b"1,2,3", ContentType="text/csv"
        )  # the endpoint is restored, its helpers started again
        assert answer["Body"].read()
        second = _descendants(server.proc.pid)
        assert len(_pids(marker)) == 2
    finally:
        server.stop()  # SIGTERM: a clean stop
    assert _running(second) == []  # the server has exited: nothing of it is left


def _pids(pattern: str) -> list[str]:
    return subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()


# -- bad requests get AWS's answers ---------------------------------------------------------------
def _sagemaker_raw(local_aws, operation: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(
        local_aws.url,
        data=body,
        headers={
            "X-Amz-Target": f"SageMaker.{operation}",
            "Content-Type": "application/x-amz-json-1.1",
            "Authorization": "AWS4-HMAC-SHA256 Credential=a/20261202/us-east-1/sagemaker/aws4_request, SignedHeaders=host, Signature=x",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_malformed_requests_get_validation_errors_not_500s(local_aws):
    base = {
        "TrainingJobName": "no-algorithm",
        "RoleArn": "arn:aws:iam::123456789012:role/R",
        "OutputDataConfig": {"S3OutputPath": "s3://b/o"},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }
    status, body = _sagemaker_raw(
        local_aws,
        "CreateTrainingJob",
        json.dumps({**base, "ResourceConfig": {"InstanceCount": 1, "VolumeSizeInGB": 1}}).encode(),
    )
    assert (status, body["__type"]) == (400, "ValidationException")
    assert "AlgorithmSpecification is required" in body["message"]
    algorithm = {"TrainingImage": "img", "TrainingInputMode": "File"}
    status, body = _sagemaker_raw(
        local_aws,
        "CreateTrainingJob",
        json.dumps({**base, "AlgorithmSpecification": algorithm}).encode(),
    )
    assert (status, body["__type"]) == (400, "ValidationException")
    assert "ResourceConfig is required" in body["message"]

    deep = b'{"a": ' * 5000 + b"1" + b"}" * 5000
    status, body = _sagemaker_raw(local_aws, "ListModels", deep)
    assert (status, body["__type"]) == (400, "SerializationException")

    for token in ("-5", "abc"):
        status, body = _sagemaker_raw(
            local_aws, "ListModels", json.dumps({"NextToken": token}).encode()
        )
        assert (status, body["__type"]) == (400, "ValidationException")
        assert "Invalid pagination token" in body["message"]


def test_a_missing_output_bucket_fails_the_job_before_it_runs(sm, s3, bucket, logs):
    name = unique("no-out-bucket")
    source = upload_source(s3, bucket, f"{name}/s.tar.gz", {"train.py": "print('trained')"})
    request = training_request(name, bucket, source)
    request["OutputDataConfig"]["S3OutputPath"] = f"s3://{unique('missing')}/out"
    sm.create_training_job(**request)
    job = wait_for(lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus")
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("ClientError: OutputDataConfig.S3OutputPath: the bucket")
    assert "TrainingStartTime" not in job  # nothing ran, nothing to pay for


def test_an_ipv6_loopback_host_is_bracketed_in_urls(tmp_path):
    assert LocalAWS(tmp_path, host="::1", port=4599).url == "http://[::1]:4599"
