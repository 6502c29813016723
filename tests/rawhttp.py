"""A request with ``Expect: 100-continue`` sent over a raw socket, the way a client that
honours it sends it: the headers, then the body only after the server's go-ahead."""

from __future__ import annotations

import http.client
import socket


def expect_continue(
    host: str, port: int, request_line: str, headers: dict[str, str], body: bytes
) -> tuple[list[int], bytes]:
    """(the status of every response that came before the first final one, then that one;
    the final response's body). A second ``100 Continue`` shows up as [100, 100, ...]."""
    head = [request_line, f"Host: {host}:{port}", "Expect: 100-continue"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    head += [f"Content-Length: {len(body)}", "Connection: close"]
    with socket.create_connection((host, port), timeout=30) as sock:
        reader = sock.makefile("rb")
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        statuses = [_status(reader)]
        http.client.parse_headers(reader)  # type: ignore[arg-type]
        if statuses[0] == 100:
            sock.sendall(body)
        while statuses[-1] == 100:  # what comes next, with Connection: close read to the end
            statuses.append(_status(reader))
            http.client.parse_headers(reader)  # type: ignore[arg-type]
        return statuses, reader.read()


def _status(reader: object) -> int:
    line = reader.readline()  # type: ignore[attr-defined]
    assert line.startswith(b"HTTP/1.1 "), line
    return int(line.split()[1])
