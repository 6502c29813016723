"""HTTP keep-alive: one TCP connection carries many requests, whatever their bodies."""

from __future__ import annotations

import http.client
from typing import Any

from tests.conftest import unique
from tests.rawhttp import expect_continue

# Any credentials work unless --verify-signatures; a signature must be there at all.
AUTH = (
    "AWS4-HMAC-SHA256 Credential=local/20261207/us-east-1/s3/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=0000"
)


def _connect(local_aws: Any) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(local_aws.host, local_aws.port, timeout=30)


def _call(
    conn: http.client.HTTPConnection, method: str, path: str, body: Any = None, **kw: Any
) -> tuple[int, bytes, http.client.HTTPResponse]:
    headers = {"Authorization": AUTH, **kw.pop("headers", {})}
    conn.request(method, path, body=body, headers=headers, **kw)
    response = conn.getresponse()
    return response.status, response.read(), response


def test_one_connection_carries_many_requests(local_aws) -> None:
    bucket = unique("keepalive")
    conn = _connect(local_aws)
    try:
        assert _call(conn, "PUT", f"/{bucket}")[0] == 200
        sock = conn.sock
        for i in range(5):
            status, _, response = _call(conn, "PUT", f"/{bucket}/k{i}", body=f"body {i}".encode())
            assert status == 200
            assert response.getheader("Connection") != "close"
        # a chunked request body, then a request whose body the server never reads (refused
        # unsigned), and the connection is still in step
        conn.request(
            "PUT",
            f"/{bucket}/chunked",
            body=iter([b"chun", b"ked"]),
            headers={"Authorization": AUTH},
            encode_chunked=True,
        )
        assert conn.getresponse().read() is not None
        conn.request("PUT", f"/{bucket}/refused", body=b"x" * 5000)  # no signature: 403
        refused = conn.getresponse()
        assert refused.status == 403 and b"AccessDenied" in refused.read()
        status, _, head = _call(conn, "HEAD", f"/{bucket}/k0")  # a length, and no body
        assert (status, head.getheader("Content-Length")) == (200, "6")
        for i in range(5):
            assert _call(conn, "GET", f"/{bucket}/k{i}")[1] == f"body {i}".encode()
        assert _call(conn, "GET", f"/{bucket}/chunked")[1] == b"chunked"
        assert conn.sock is sock  # never reconnected
    finally:
        conn.close()


def test_an_idle_connection_is_closed_without_an_error_line(local_aws, monkeypatch, caplog) -> None:
    """A pooled client connection that sits idle is closed by the server; http.server calls
    that "Request timed out", which the server's log printed as an error for every idle
    client (boto3 keeps its connections open)."""
    import logging

    from local_aws.keepalive import KeepAliveHandler

    monkeypatch.setattr(KeepAliveHandler, "timeout", 0.3)  # seconds, instead of a minute
    caplog.set_level(logging.DEBUG)
    conn = _connect(local_aws)
    try:
        assert _call(conn, "PUT", f"/{unique('idle')}")[0] == 200
        assert conn.sock is not None
        conn.sock.settimeout(30)
        assert conn.sock.recv(1) == b""  # the server closed the idle connection
    except TimeoutError:  # pragma: no cover - the failure this test is for
        raise AssertionError("the server kept an idle connection open past its timeout") from None
    finally:
        conn.close()
    errors = [r for r in caplog.records if "timed out" in r.getMessage()]
    assert errors == [], [r.getMessage() for r in errors]


def test_expect_100_continue_gets_one_interim_response(local_aws, s3) -> None:
    """One "100 Continue", then the final answer: a second interim response (werkzeug sends
    one of its own after http.server's) would be read as the answer by a strict client."""
    bucket = unique("expect")
    s3.create_bucket(Bucket=bucket)
    statuses, _ = expect_continue(
        local_aws.host,
        local_aws.port,
        f"PUT /{bucket}/k HTTP/1.1",
        {"Authorization": AUTH},
        b"after the go-ahead",
    )
    assert statuses == [100, 200]
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"after the go-ahead"
