"""aws-chunked uploads (a checksum sent as a trailer) and checksums asked for without a value
are handled while the body streams: the server never holds the body in memory, the object
and its checksum are what moto gave an unframed upload, and a body that does not match its
trailer or its declared length is refused with S3's error, nothing stored.

botocore frames bodies as aws-chunked only over HTTPS; a ``before-call`` handler moves its
checksum to the trailer here, as it does there. The malformed bodies are written into a
real boto3 request by a ``before-send`` handler (an unsigned-payload trailer request's
signature does not cover its body).
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import ServerProcess
from tests.memkit import MB, block, reset_peak, status_bytes

SIZE = 160 * MB
#: Peak RSS growth allowed while the body goes up: moto held the framed body, and built
#: the decoded one by concatenation next to it.
GROWTH_LIMIT = 60 * MB


def _as_trailer(params: dict[str, Any], **_: Any) -> None:
    algorithm = params["context"].get("checksum", {}).get("request_algorithm")
    if algorithm:
        algorithm["in"] = "trailer"  # what botocore does over HTTPS


def chunked_client(server: ServerProcess, **config: Any) -> Any:
    from botocore.config import Config

    s3 = server.client("s3", Config(**config))
    for operation in ("PutObject", "UploadPart"):
        s3.meta.events.register(f"before-call.s3.{operation}", _as_trailer)
    return s3


def _sent(s3: Any) -> list[dict[str, str]]:
    """The headers of every request the client sends from now on."""
    seen: list[dict[str, str]] = []

    def record(request: Any, **_: Any) -> None:
        seen.append(
            {
                k.lower(): v.decode() if isinstance(v, bytes) else v
                for k, v in request.headers.items()
            }
        )

    s3.meta.events.register("before-send.s3", record)
    return seen


def _sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


class _File:
    """SIZE bytes of memkit blocks, read as a file by boto3 (no large file on disk)."""

    def __init__(self, size: int, salt: bytes):
        self.size, self.salt, self.position = size, salt, 0

    def read(self, amount: int = -1) -> bytes:
        if amount < 0:
            amount = self.size - self.position
        out = bytearray()
        while amount > 0 and self.position < self.size:
            i, offset = divmod(self.position, MB)
            piece = block(i, self.salt)[offset : offset + amount]
            out += piece
            self.position += len(piece)
            amount -= len(piece)
        return bytes(out)

    def seek(self, position: int, whence: int = 0) -> int:
        self.position = {0: position, 1: self.position + position, 2: self.size + position}[whence]
        return self.position

    def tell(self) -> int:
        return self.position


def _digests(size: int, salt: bytes) -> tuple[str, str]:
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    for i in range(size // MB):
        md5.update(block(i, salt))
        sha.update(block(i, salt))
    return md5.hexdigest(), base64.b64encode(sha.digest()).decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc to read the server's memory")
    proc = ServerProcess(tmp_path_factory.mktemp("chunked") / "aws").start()
    try:
        proc.client("s3").create_bucket(Bucket="chunks")
        yield proc
    finally:
        proc.stop()


def _growth(server: ServerProcess, action: Callable[[], Any]) -> tuple[int, Any]:
    assert server.proc is not None
    pid = server.proc.pid
    before = status_bytes(pid, "VmRSS")
    reset_peak(pid)
    result = action()
    return status_bytes(pid, "VmHWM") - before, result


def test_a_large_aws_chunked_put_is_decoded_as_it_streams(server: ServerProcess) -> None:
    s3 = chunked_client(server)
    sent = _sent(s3)
    growth, put = _growth(
        server,
        lambda: s3.put_object(
            Bucket="chunks", Key="big", Body=_File(SIZE, b"chunked"), ChecksumAlgorithm="SHA256"
        ),
    )
    assert sent[-1]["content-encoding"] == "aws-chunked"  # the framing the test is about
    assert sent[-1]["x-amz-content-sha256"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    md5, sha = _digests(SIZE, b"chunked")
    assert put["ETag"] == f'"{md5}"'
    assert put["ChecksumSHA256"] == sha
    got = s3.get_object(Bucket="chunks", Key="big", ChecksumMode="ENABLED")
    assert got["ChecksumSHA256"] == sha  # botocore checks the body against it as it reads
    assert got["ContentLength"] == SIZE
    assert "ContentEncoding" not in got  # aws-chunked is the transfer's, not the object's
    assert sum(len(chunk) for chunk in got["Body"].iter_chunks(MB)) == SIZE
    assert growth < GROWTH_LIMIT, f"server RSS grew {growth / MB:.0f} MB for {SIZE // MB} MB"


@pytest.mark.parametrize("size", [5, 9 * MB])
@pytest.mark.parametrize("algorithm", ["CRC32", "SHA256", "SHA1"])
def test_chunked_uploads_keep_what_moto_gave_an_unframed_one(
    server: ServerProcess, size: int, algorithm: str
) -> None:
    body = os.urandom(size)
    chunked, plain = chunked_client(server), server.client("s3")
    answers = {}
    for name, s3 in (("chunked", chunked), ("plain", plain)):
        put = s3.put_object(
            Bucket="chunks",
            Key=f"{name}-{size}",
            Body=body,
            ChecksumAlgorithm=algorithm,
            ContentEncoding="gzip",
        )
        got = s3.get_object(Bucket="chunks", Key=f"{name}-{size}", ChecksumMode="ENABLED")
        answers[name] = (
            put["ETag"],
            put[f"Checksum{algorithm}"],
            got["ETag"],
            got[f"Checksum{algorithm}"],
            got["ContentEncoding"],
            got["Body"].read() == body,
        )
    assert answers["chunked"] == answers["plain"]
    assert answers["chunked"][4] == "gzip" and answers["chunked"][5]


def test_a_chunked_multipart_upload_and_a_restart(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "aws").start()
    try:
        s3 = chunked_client(server)
        s3.create_bucket(Bucket="parts")
        bodies = [os.urandom(9 * MB), os.urandom(100)]
        upload = s3.create_multipart_upload(Bucket="parts", Key="k", ChecksumAlgorithm="CRC32")[
            "UploadId"
        ]
        parts = []
        for number, body in enumerate(bodies, 1):
            answer = s3.upload_part(
                Bucket="parts",
                Key="k",
                UploadId=upload,
                PartNumber=number,
                Body=body,
                ChecksumAlgorithm="CRC32",
            )
            assert answer["ETag"] == f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'
            parts.append(
                {
                    "PartNumber": number,
                    "ETag": answer["ETag"],
                    "ChecksumCRC32": answer["ChecksumCRC32"],
                }
            )
        s3.complete_multipart_upload(
            Bucket="parts", Key="k", UploadId=upload, MultipartUpload={"Parts": parts}
        )
        s3.put_object(Bucket="parts", Key="one", Body=bodies[0], ChecksumAlgorithm="SHA256")
        server.stop(signal.SIGKILL)
        server.start()  # the journal replays the framed bodies through the same decoding
        s3 = server.client("s3")
        assert s3.get_object(Bucket="parts", Key="k")["Body"].read() == b"".join(bodies)
        one = s3.get_object(Bucket="parts", Key="one", ChecksumMode="ENABLED")
        assert one["ChecksumSHA256"] == _sha256(bodies[0])
        assert one["Body"].read() == bodies[0]
    finally:
        server.stop()


def _framed(data: bytes, trailer: bytes, chunk: int = 1000, extension: bytes = b"") -> bytes:
    pieces = [
        b"%x%s\r\n%s\r\n"
        % (len(data[start : start + chunk]), extension, data[start : start + chunk])
        for start in range(0, len(data), chunk)
    ]
    return b"".join(pieces) + b"0%s\r\n%s\r\n" % (extension, trailer)


def _put_raw(server: ServerProcess, key: str, body: bytes, headers: dict[str, str]) -> Any:
    """A PutObject whose body (and some headers) are replaced just before it is sent."""
    # botocore retries a BadDigest (a body damaged on the way); the test's is damaged on purpose
    s3 = chunked_client(server, retries={"total_max_attempts": 1})

    def rewrite(request: Any, **_: Any) -> None:
        request.body = body
        request.headers.pop("Transfer-Encoding", None)
        request.headers["Content-Length"] = str(len(body))
        for name, value in headers.items():
            request.headers[name] = value

    s3.meta.events.register("before-send.s3.PutObject", rewrite)
    return s3.put_object(Bucket="chunks", Key=key, Body=b"x" * 10, ChecksumAlgorithm="SHA256")


@pytest.mark.parametrize("size", [3000, 9 * MB])
def test_bodies_that_do_not_match_their_framing_are_refused(
    server: ServerProcess, size: int
) -> None:
    data = os.urandom(size)
    good_trailer = b"x-amz-checksum-sha256:%s\r\n" % _sha256(data).encode()
    bad_trailer = b"x-amz-checksum-sha256:%s\r\n" % _sha256(data + b"!").encode()
    length = {"X-Amz-Decoded-Content-Length": str(size)}
    cases = [
        ("BadDigest", "SHA256 you specified did not match", _framed(data, bad_trailer), length),
        (
            "IncompleteBody",
            "x-amz-decoded-content-length",
            _framed(data, good_trailer),
            {"X-Amz-Decoded-Content-Length": str(size + 1)},
        ),
        ("InvalidRequest", "not hexadecimal", b"zz\r\n" + _framed(data, good_trailer), length),
        ("InvalidRequest", "does not end with", _framed(data, b""), length),
        ("IncompleteBody", "ended inside a chunk", _framed(data, good_trailer)[:-500], length),
    ]
    s3 = server.client("s3")
    for code, words, body, headers in cases:
        with pytest.raises(ClientError) as caught:
            _put_raw(server, f"bad-{size}", body, headers)
        error = caught.value.response["Error"]
        assert (error["Code"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (
            code,
            400,
        ), words
        assert words in error["Message"]
        with pytest.raises(ClientError):  # nothing stored
            s3.head_object(Bucket="chunks", Key=f"bad-{size}")
    # signed chunks (chunk-signature extensions) decode too, and the good trailer passes
    signed = {
        **length,
        "X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
    }
    extension = b";chunk-signature=" + b"0" * 64
    put = _put_raw(server, f"good-{size}", _framed(data, good_trailer, 4096, extension), signed)
    assert put["ChecksumSHA256"] == _sha256(data)
    assert s3.get_object(Bucket="chunks", Key=f"good-{size}")["Body"].read() == data


def _without_checksum_value(s3: Any) -> None:
    """Send x-amz-sdk-checksum-algorithm without x-amz-checksum-*: S3 computes it."""

    def drop(request: Any, **_: Any) -> None:
        for name in [n for n in request.headers if n.lower().startswith("x-amz-checksum-")]:
            if name.lower() != "x-amz-checksum-mode":
                del request.headers[name]

    s3.meta.events.register("before-send.s3", drop)


def test_a_checksum_asked_for_without_a_value_is_computed_as_the_body_streams(
    server: ServerProcess,
) -> None:
    s3 = server.client("s3")
    _without_checksum_value(s3)
    sent = _sent(s3)
    growth, put = _growth(
        server,
        lambda: s3.put_object(
            Bucket="chunks",
            Key="computed",
            Body=_File(SIZE, b"computed"),
            ChecksumAlgorithm="SHA256",
        ),
    )
    assert sent[-1]["x-amz-sdk-checksum-algorithm"] == "SHA256"
    assert "x-amz-checksum-sha256" not in sent[-1]
    md5, sha = _digests(SIZE, b"computed")
    assert (put["ETag"], put["ChecksumSHA256"]) == (f'"{md5}"', sha)
    got = s3.head_object(Bucket="chunks", Key="computed", ChecksumMode="ENABLED")
    assert got["ChecksumSHA256"] == sha
    assert growth < GROWTH_LIMIT, f"server RSS grew {growth / MB:.0f} MB for {SIZE // MB} MB"


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA1", "SHA256"])
def test_computed_checksums_equal_moto_s_for_a_small_body_and_for_parts(
    server: ServerProcess, algorithm: str
) -> None:
    s3 = server.client("s3")
    _without_checksum_value(s3)
    small, large = os.urandom(1000), os.urandom(9 * MB)  # moto's own path, the streamed one
    for key, body in (("small", small), ("large", large)):
        put = s3.put_object(Bucket="chunks", Key=key, Body=body, ChecksumAlgorithm=algorithm)
        head = s3.head_object(Bucket="chunks", Key=key, ChecksumMode="ENABLED")
        reference = server.client("s3").put_object(  # the client computes it: the truth
            Bucket="chunks", Key=f"{key}-ref", Body=body, ChecksumAlgorithm=algorithm
        )
        assert put[f"Checksum{algorithm}"] == head[f"Checksum{algorithm}"]
        assert put[f"Checksum{algorithm}"] == reference[f"Checksum{algorithm}"], key
    upload = s3.create_multipart_upload(Bucket="chunks", Key="mp", ChecksumAlgorithm=algorithm)
    part = s3.upload_part(
        Bucket="chunks",
        Key="mp",
        UploadId=upload["UploadId"],
        PartNumber=1,
        Body=large,
        ChecksumAlgorithm=algorithm,
    )
    reference = server.client("s3").put_object(
        Bucket="chunks", Key="large-ref", Body=large, ChecksumAlgorithm=algorithm
    )
    assert part[f"Checksum{algorithm}"] == reference[f"Checksum{algorithm}"]


def test_without_verify_signatures_chunk_signatures_are_not_checked(
    server: ServerProcess,
) -> None:
    """Any credentials work without --verify-signatures, as with moto: a signed chunked
    upload is decoded and stored whatever its chunk signatures say."""
    from tests.local_aws.test_signatures import _body, _wrong_chunk_signature, signed_chunked

    body = _body(200 << 10)
    status, answer = signed_chunked(server, "/chunks/any-sig", body, tamper=_wrong_chunk_signature)
    assert status == 200, answer
    assert server.client("s3").get_object(Bucket="chunks", Key="any-sig")["Body"].read() == body
