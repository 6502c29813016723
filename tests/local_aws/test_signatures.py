"""--verify-signatures: SigV4 checked against configured keys, with AWS's error codes."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
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


# --- signed aws-chunked uploads: every chunk's signature, and the trailer's ---------------

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class _StreamingSigner(S3SigV4Auth):
    """botocore's S3 signer, for the seed of a signed streaming upload: the payload it
    signs is the STREAMING-... literal, as the AWS Java SDK sends over http."""

    def __init__(self, payload: str):
        super().__init__(Credentials(KEY_ID, SECRET), "s3", "us-east-1")
        self._payload = payload

    def payload(self, request: Any) -> str:
        return self._payload


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def signed_chunked(
    server: Any,
    path: str,
    body: bytes,
    *,
    trailer: bool = False,
    chunk: int = 64 << 10,
    tamper: Callable[[list[list[Any]], dict[str, str]], None] | None = None,
) -> tuple[int, bytes]:
    """PUT ``body`` as AWS's signed chunked upload (seed signed by botocore, each chunk's
    string to sign written here as AWS's documentation gives it); ``tamper`` changes the
    [size, data, signature] chunks or the trailers after signing. Returns (status, body)."""
    payload = (
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
        if trailer
        else "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    )
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(body)),
    }
    if trailer:
        headers["x-amz-trailer"] = "x-amz-checksum-crc32"
    request = AWSRequest(method="PUT", url=f"{server.url}{path}", headers=headers)
    signer = _StreamingSigner(payload)
    signer.add_auth(request)
    assert request.headers["X-Amz-Content-SHA256"] == payload
    timestamp = request.context["timestamp"]
    scope = signer.credential_scope(request)
    previous = request.headers["Authorization"].rsplit("Signature=", 1)[1]
    chunks = []
    for data in [body[i : i + chunk] for i in range(0, len(body), chunk)] + [b""]:
        string = "\n".join(
            ["AWS4-HMAC-SHA256-PAYLOAD", timestamp, scope, previous, EMPTY_SHA256, _sha(data)]
        )
        previous = signer.signature(string, request)
        chunks.append([len(data), data, previous])
    trailers: dict[str, str] = {}
    if trailer:
        crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
        trailers["x-amz-checksum-crc32"] = crc
        hashed = _sha(f"x-amz-checksum-crc32:{crc}\n".encode())
        string = "\n".join(["AWS4-HMAC-SHA256-TRAILER", timestamp, scope, previous, hashed])
        trailers["x-amz-trailer-signature"] = signer.signature(string, request)
    if tamper is not None:
        tamper(chunks, trailers)
    framed = b"".join(
        b"%x;chunk-signature=%s\r\n%s" % (size, sig.encode(), data) + (b"\r\n" if size else b"")
        for size, data, sig in chunks
    )
    framed += b"".join(f"{k}:{v}\r\n".encode() for k, v in trailers.items()) + b"\r\n"
    sent = {k: v for k, v in request.headers.items()}
    conn = http.client.HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]))
    try:
        conn.request("PUT", path, body=framed, headers=sent)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _flip_byte(chunks: list[list[Any]], _: dict[str, str]) -> None:
    data = bytearray(chunks[1][1])
    data[100] ^= 0x01
    chunks[1][1] = bytes(data)


def _wrong_chunk_signature(chunks: list[list[Any]], _: dict[str, str]) -> None:
    chunks[2][2] = "0" * 64


def _wrong_final_signature(chunks: list[list[Any]], _: dict[str, str]) -> None:
    chunks[-1][2] = chunks[-2][2]  # a real signature, of another chunk


def _wrong_trailer_signature(_: list[list[Any]], trailers: dict[str, str]) -> None:
    trailers["x-amz-trailer-signature"] = "f" * 64


def _changed_trailer(_: list[list[Any]], trailers: dict[str, str]) -> None:
    trailers["x-amz-checksum-crc32"] = "AAAAAA=="  # its signature kept


def _body(size: int) -> bytes:
    return bytes((i * 7 + i // 251) % 256 for i in range(size))


@pytest.mark.parametrize("trailer", [False, True])
def test_a_signed_chunked_upload_is_stored_when_every_chunk_is_signed(server, trailer) -> None:
    s3 = client(server, "s3")
    s3.create_bucket(Bucket="chunk-signed")
    body = _body(200 << 10)  # 4 chunks of up to 64 KiB, then the final 0-byte one
    status, answer = signed_chunked(server, "/chunk-signed/good", body, trailer=trailer)
    assert status == 200, answer
    assert s3.get_object(Bucket="chunk-signed", Key="good")["Body"].read() == body


@pytest.mark.parametrize(
    ("tamper", "trailer"),
    [
        (_flip_byte, False),
        (_flip_byte, True),
        (_wrong_chunk_signature, False),
        (_wrong_final_signature, False),
        (_wrong_trailer_signature, True),
        (_changed_trailer, True),
    ],
)
def test_a_chunk_or_trailer_not_signed_as_the_seed_says_is_refused(server, tamper, trailer) -> None:
    s3 = client(server, "s3")
    s3.create_bucket(Bucket="chunk-tampered")
    before = _body(70 << 10)
    assert signed_chunked(server, "/chunk-tampered/kept", before)[0] == 200
    body = _body(200 << 10)[::-1]
    for key in ("new", "kept"):
        status, answer = signed_chunked(
            server, f"/chunk-tampered/{key}", body, trailer=trailer, tamper=tamper
        )
        assert status == 403, answer
        assert b"<Code>SignatureDoesNotMatch</Code>" in answer
        assert b"does not match the signature you provided" in answer
    # nothing stored: no new object, and the one there before is unchanged
    assert error_code(lambda: s3.head_object(Bucket="chunk-tampered", Key="new")) == "404"
    assert s3.get_object(Bucket="chunk-tampered", Key="kept")["Body"].read() == before


def test_chunk_strings_to_sign_match_aws_documented_example() -> None:
    """AWS's worked example (sigv4-streaming, PUT /examplebucket/chunkObject.txt): its seed
    signature, then 64 KiB and 1 KiB of 'a' and the final chunk, with these signatures."""
    from local_aws import chunksig

    signer = SigV4Auth(
        Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        "s3",
        "us-east-1",
    )
    request = AWSRequest(method="PUT", url="https://s3.amazonaws.com/")
    request.context["timestamp"] = "20130524T000000Z"
    chain = chunksig.Seed(
        sign=lambda string: signer.signature(string, request),
        timestamp="20130524T000000Z",
        scope="20130524/us-east-1/s3/aws4_request",
        signature="4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
        trailer=False,
    ).chain()
    documented = [
        (b"a" * 65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"),
        (b"a" * 1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"),
        (b"", "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"),
    ]
    for data, signature in documented:
        chain.chunk(signature, _sha(data))  # raises Mismatch if not AWS's
    with pytest.raises(chunksig.Mismatch):
        chain.chunk(documented[-1][1], EMPTY_SHA256)  # the chain moved on


def test_a_signed_chunked_part_is_checked_and_the_object_survives_a_restart(server) -> None:
    s3 = client(server, "s3")
    s3.create_bucket(Bucket="chunk-parts")
    upload = s3.create_multipart_upload(Bucket="chunk-parts", Key="k")["UploadId"]
    path = f"/chunk-parts/k?partNumber=1&uploadId={upload}"
    body = _body(150 << 10)
    status, answer = signed_chunked(server, path, body, trailer=True, tamper=_flip_byte)
    assert (status, b"SignatureDoesNotMatch" in answer) == (403, True)
    listed = s3.list_parts(Bucket="chunk-parts", Key="k", UploadId=upload)
    assert listed.get("Parts", []) == []  # no part stored for it
    assert signed_chunked(server, path, body, trailer=True)[0] == 200
    (part,) = s3.list_parts(Bucket="chunk-parts", Key="k", UploadId=upload)["Parts"]
    s3.complete_multipart_upload(
        Bucket="chunk-parts",
        Key="k",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert signed_chunked(server, "/chunk-parts/single", body)[0] == 200
    server.stop(signal.SIGKILL)
    server.start()  # the journal replays the framed bodies: their chunks were checked once
    s3 = client(server, "s3")
    assert s3.get_object(Bucket="chunk-parts", Key="k")["Body"].read() == body
    assert s3.get_object(Bucket="chunk-parts", Key="single")["Body"].read() == body
