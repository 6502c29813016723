"""--verify-signatures: SigV4 checked against configured keys, with AWS's error codes."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.conftest import ServerProcess

KEY_ID, SECRET = "AKIALOCALTEST", "a-secret-only-this-test-knows"
# temporary credentials (as STS hands out): a key, its secret and the session token
TEMP_ID, TEMP_SECRET, TOKEN = "ASIALOCALTEST", "a-temporary-secret", "FwoGZXIvYXdzEXAMPLETOKEN//"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("sigv4")
    credentials = tmp / "credentials"
    credentials.write_text(
        f"[default]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n"
        f"[temporary]\naws_access_key_id = {TEMP_ID}\naws_secret_access_key = {TEMP_SECRET}\n"
        f"aws_session_token = {TOKEN}\n"
    )
    server = ServerProcess(
        tmp / "data", args=("--verify-signatures", "--credentials-file", str(credentials))
    ).start()
    yield server
    server.stop()


def client(
    server: Any,
    service: str,
    key_id: str = KEY_ID,
    secret: str = SECRET,
    config: Config | None = None,
    token: str | None = None,
) -> Any:
    return boto3.session.Session().client(
        service,
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=config,
    )


def error_code(call: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return str(caught.value.response["Error"]["Code"])


def test_the_configured_key_works_for_every_protocol(server) -> None:
    s3 = client(server, "s3")
    s3.create_bucket(Bucket="signed")
    key = "dir/a key with spaces+plus/ünïcode~(1).txt"
    s3.put_object(Bucket="signed", Key=key, Body=b"body", Metadata={"m": "v"})
    assert s3.get_object(Bucket="signed", Key=key)["Body"].read() == b"body"
    listed = s3.list_objects_v2(Bucket="signed", Prefix="dir/", MaxKeys=5)["Contents"]
    assert [o["Key"] for o in listed] == [key]
    presigner = boto3.session.Session().client(
        "s3",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        config=Config(signature_version="s3v4"),
    )
    url = presigner.generate_presigned_url("get_object", Params={"Bucket": "signed", "Key": key})
    with urllib.request.urlopen(url) as response:
        assert response.read() == b"body"
    with pytest.raises(urllib.error.HTTPError) as refused:  # a wrong signature
        urllib.request.urlopen(url.replace("X-Amz-Signature=", "X-Amz-Signature=0"))
    assert b"SignatureDoesNotMatch" in refused.value.read()
    # query (IAM), JSON (Logs, SageMaker)
    role = client(server, "iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")
    assert role["Role"]["RoleName"] == "r"
    logs = client(server, "logs")
    logs.create_log_group(logGroupName="g")
    assert [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]] == ["g"]
    sm = client(server, "sagemaker")
    assert sm.list_training_jobs()["TrainingJobSummaries"] == []


def test_a_wrong_secret_or_unknown_key_gets_aws_errors(server) -> None:
    wrong = "not-the-secret"
    assert error_code(lambda: client(server, "s3", secret=wrong).list_buckets()) == (
        "SignatureDoesNotMatch"
    )
    assert (
        error_code(lambda: client(server, "iam", secret=wrong).list_roles())
        == "SignatureDoesNotMatch"
    )
    assert (
        error_code(lambda: client(server, "logs", secret=wrong).describe_log_groups())
        == "SignatureDoesNotMatch"
    )
    assert (
        error_code(lambda: client(server, "s3", key_id="AKIAUNKNOWN").list_buckets())
        == "InvalidAccessKeyId"
    )
    assert (
        error_code(lambda: client(server, "sagemaker", key_id="AKIAUNKNOWN").list_training_jobs())
        == "InvalidClientTokenId"
    )
    assert (
        error_code(lambda: client(server, "iam", key_id="AKIAUNKNOWN").list_roles())
        == "InvalidClientTokenId"
    )


def test_temporary_credentials_need_their_own_session_token(server) -> None:
    """A key configured with a session token works with that token only; a long-term key
    works with none; any other token is refused in AWS's words for each protocol."""

    def temporary(service: str, token: str | None = TOKEN, **kwargs: Any) -> Any:
        return client(server, service, TEMP_ID, TEMP_SECRET, token=token, **kwargs)

    s3 = temporary("s3")
    s3.create_bucket(Bucket="temporary")
    s3.put_object(Bucket="temporary", Key="k", Body=b"with the token")
    assert s3.get_object(Bucket="temporary", Key="k")["Body"].read() == b"with the token"
    assert temporary("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []
    assert "Roles" in temporary("iam").list_roles()
    url = temporary("s3", config=Config(signature_version="s3v4")).generate_presigned_url(
        "get_object", Params={"Bucket": "temporary", "Key": "k"}
    )
    assert "X-Amz-Security-Token=" in url
    with urllib.request.urlopen(url) as response:
        assert response.read() == b"with the token"

    once = Config(retries={"max_attempts": 1, "mode": "standard"})
    for s3 in (
        temporary("s3", "not-the-token", config=once),
        temporary("s3", None, config=once),  # none where one is needed
        client(server, "s3", token="a-token-this-key-has-not", config=once),
    ):
        with pytest.raises(ClientError) as caught:
            s3.list_buckets()
        error = caught.value.response["Error"]
        assert (error["Code"], error["Message"]) == (
            "InvalidToken",
            "The provided token is malformed or otherwise invalid.",
        )
    for token in ("not-the-token", None):
        for service, call, code in (
            ("sagemaker", "list_training_jobs", "UnrecognizedClientException"),
            ("logs", "describe_log_groups", "UnrecognizedClientException"),
            ("iam", "list_roles", "InvalidClientTokenId"),  # the query protocol's word
        ):
            with pytest.raises(ClientError) as caught:
                getattr(temporary(service, token, config=once), call)()
            error = caught.value.response["Error"]
            assert (error["Code"], error["Message"]) == (
                code,
                "The security token included in the request is invalid.",
            ), service
    with pytest.raises(urllib.error.HTTPError) as refused:  # a presigned URL's token
        urllib.request.urlopen(url.replace("X-Amz-Security-Token=", "X-Amz-Security-Token=x"))
    assert b"InvalidToken" in refused.value.read()
    assert refused.value.code == 400


def test_a_body_changed_after_signing_is_refused(server) -> None:
    body = json.dumps({"logGroupNamePrefix": "g"})
    request = AWSRequest(
        method="POST",
        url=f"{server.url}/",
        data=body,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "Logs_20140328.DescribeLogGroups",
        },
    )
    SigV4Auth(Credentials(KEY_ID, SECRET), "logs", "us-east-1").add_auth(request)
    headers = dict(request.headers.items())

    def send(payload: str) -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]))
        try:
            conn.request("POST", "/", body=payload.encode(), headers=headers)
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    assert send(body)[0] == 200
    status, error = send(json.dumps({"logGroupNamePrefix": "h"}))
    assert (status, error["__type"]) == (403, "SignatureDoesNotMatch")


def test_verify_signatures_needs_a_credentials_file(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "local_aws", "serve", "--port", "0", "--verify-signatures"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "--verify-signatures needs --credentials-file" in result.stderr
    bad = tmp_path / "credentials"
    bad.write_text("[default]\naws_access_key_id = AKIAONLY\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "local_aws",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path / "data"),
            "--verify-signatures",
            "--credentials-file",
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "[default] needs both aws_access_key_id and aws_secret_access_key" in result.stderr


@pytest.mark.parametrize(
    ("minutes", "refused"),
    [(-20, True), (20, True), (-5, False), (5, False)],
)
def test_a_request_signed_far_from_the_servers_clock_is_refused(
    server, monkeypatch, minutes: int, refused: bool
) -> None:
    """AWS refuses a signature more than 15 minutes from its clock (a replayed request, or
    a client whose clock is wrong); within that window it is accepted."""
    import datetime as dt

    import botocore.auth

    skewed = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(minutes=minutes)
    # the client in this process signs as if its clock were off; the server's is not
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: skewed)
    once = Config(retries={"max_attempts": 1, "mode": "standard"})
    s3, sm = client(server, "s3", config=once), client(server, "sagemaker", config=once)
    if not refused:
        s3.list_buckets()
        sm.list_training_jobs()
        return
    assert error_code(s3.list_buckets) == "RequestTimeTooSkewed"
    with pytest.raises(ClientError) as caught:
        sm.list_training_jobs()
    error = caught.value.response["Error"]
    assert error["Code"] == "InvalidSignatureException"
    expected = "Signature expired" if minutes < 0 else "Signature not yet current"
    assert error["Message"].startswith(expected), error["Message"]
