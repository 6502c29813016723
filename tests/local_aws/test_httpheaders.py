"""The hot path's HTTP pieces: header blocks parsed as http.client parses them, and the
model-server client reading every framing a server may answer with."""

from __future__ import annotations

import http.client
import io
import socket
import threading
from collections.abc import Iterator

import pytest

from local_aws.httpheaders import parse_headers
from local_aws.sagemaker.model_server import ConnectionPool

BLOCKS = [
    b"Host: 127.0.0.1:4566\r\nContent-Type: text/csv\r\nContent-Length: 3\r\n\r\n",
    b"\r\n",  # no headers at all
    b"A: 1\r\na: 2\r\nB:\r\nC:    spaced  \r\nD:\ttab\r\n\r\n",  # repeats, empty, blanks kept
    b"X-Latin: caf\xe9\r\n\n",  # a latin-1 byte, and an LF-only end
    b"Folded: one\r\n two\r\nNext: 3\r\n\r\n",  # obsolete line folding
    b"Bare: a\rb\r\n\r\n",  # a CR inside a value
    b"no colon here\r\nAfter: 1\r\n\r\n",
    b": empty name\r\n\r\n",
    b"Sp ace: x\r\n\r\n",
    b"From nobody\r\nX: 1\r\n\r\n",
    b"Unterminated: 1\r\n",  # EOF before the empty line
]


@pytest.mark.parametrize("block", BLOCKS)
def test_headers_are_what_http_client_parses(block: bytes) -> None:
    ours = parse_headers(io.BytesIO(block))
    theirs = http.client.parse_headers(io.BytesIO(block))
    assert ours.items() == theirs.items()
    assert ours.get("content-length") == theirs.get("content-length")


def test_oversized_headers_fail_as_in_http_client() -> None:
    too_long = b"X: " + b"a" * 70000 + b"\r\n\r\n"
    too_many = b"".join(b"X%d: 1\r\n" % i for i in range(101)) + b"\r\n"
    for block in (too_long, too_many):
        with pytest.raises(http.client.HTTPException) as ours:
            parse_headers(io.BytesIO(block))
        with pytest.raises(http.client.HTTPException) as theirs:
            http.client.parse_headers(io.BytesIO(block))
        assert (type(ours.value), str(ours.value)) == (type(theirs.value), str(theirs.value))


ANSWERS = {
    "/length": b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: 5\r\n\r\nhello",
    "/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nhel\r\n2;ext=1\r\nlo\r\n0\r\nTrailer: x\r\n\r\n",
    "/continue": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
    "/close": b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n"
    b"Content-Length: 4\r\n\r\nfail",
    "/until-close": b"HTTP/1.0 200 OK\r\n\r\nto the end",
}


@pytest.fixture
def raw_server() -> Iterator[tuple[int, list[int]]]:
    """Answers each request with ANSWERS[path]; records how many connections it accepted."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def serve(conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        with conn, reader:
            while line := reader.readline():
                path = line.split()[1].decode()
                length = 0
                while (header := reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                reader.read(length)
                conn.sendall(ANSWERS[path])
                if path in ("/close", "/until-close"):
                    return

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1], accepted
    finally:
        listener.close()


def test_model_server_client_reads_every_framing(raw_server: tuple[int, list[int]]) -> None:
    port, accepted = raw_server
    pool = ConnectionPool("127.0.0.1", port)
    try:
        status, headers, body = pool.request("POST", "/length", b"1,2", {}, 10)
        assert (status, body, dict(headers)["Content-Type"]) == (200, b"hello", "text/csv")
        assert pool.request("POST", "/chunked", b"x", {}, 10)[::2] == (200, b"hello")
        assert pool.request("POST", "/continue", b"x", {}, 10)[::2] == (201, b"ok")
        assert len(accepted) == 1  # kept alive across all three
        assert pool.request("POST", "/close", b"x", {}, 10)[::2] == (500, b"fail")
        assert pool.request("GET", "/until-close", None, {}, 10)[::2] == (200, b"to the end")
        assert pool.request("POST", "/length", b"1,2", {}, 10)[::2] == (200, b"hello")
        assert len(accepted) == 3  # a new connection after each one the server closed
        with pytest.raises(ValueError, match="Invalid header"):
            pool.request("POST", "/length", b"", {"Accept": "a\r\nInjected: 1"}, 10)
    finally:
        pool.close()
