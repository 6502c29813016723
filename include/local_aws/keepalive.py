"""HTTP/1.1 keep-alive for the embedded server.

werkzeug's development server answers every request with ``Connection: close`` and then
reads whatever the socket still holds for 10 ms (its way to let a client see a 413), which
would swallow the next request on a kept-alive connection. So a new TCP connection per
request: a connect and a thread start for every boto3 call (about 0.5 ms of the 2.2 ms an
InvokeEndpoint added). This handler keeps werkzeug's environ (and moto's header handling),
parses the header block without the email parser (:mod:`local_aws.httpheaders`) and runs the
WSGI app itself: it reads exactly the request's body (what the app left unread is drained,
or the connection closed if that is large), frames the response by Content-Length or
chunks, sends the headers with the first body bytes, and keeps the connection for the
client's next request.
"""

from __future__ import annotations

import email.utils
import logging
import socket
import threading
import time
from typing import Any

from moto.core.request import PRESERVED_HEADER_NAMES_ENVIRON_KEY
from moto.moto_server.werkzeug_app import MotoRequestHandler
from werkzeug.serving import WSGIRequestHandler
from werkzeug.wsgi import LimitedStream

from local_aws.httpheaders import FastHeadersHandler

log = logging.getLogger(__name__)

#: A request body the app did not read is drained up to this size; past it the connection
#: is closed instead (a 403 to a 1 GB upload should not read the gigabyte).
DRAIN_LIMIT = 1 << 20
#: Seconds a kept-alive connection may stay idle (its thread waits that long at most).
IDLE_TIMEOUT = 60.0

_NO_BODY_STATUSES = frozenset({204, 304})
#: A body up to this size goes out in the same write as the headers.
COALESCE_LIMIT = 64 << 10
#: werkzeug's access log (one line per request), which local_aws turns down to warnings
_ACCESS_LOG = logging.getLogger("werkzeug")


class KeepAliveHandler(FastHeadersHandler, MotoRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT

    def setup(self) -> None:
        super().setup()
        connections = getattr(self.server, "local_aws_connections", None)
        if connections is not None:
            with connections.lock:
                connections.add(self.connection)

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        # http.server reports a connection that sat idle past IDLE_TIMEOUT as an error; with
        # keep-alive that is how every client's pooled connection ends, not a problem
        if format.startswith("Request timed out"):
            log.debug("closing a connection idle for %.0f s", IDLE_TIMEOUT)
            return
        super().log_error(format, *args)

    def finish(self) -> None:
        connections = getattr(self.server, "local_aws_connections", None)
        if connections is not None:
            with connections.lock:
                connections.discard(self.connection)
        super().finish()

    def make_environ(self) -> dict[str, Any]:
        # moto's make_environ only adds the original spelling of underscored header names
        # (S3 metadata): without any, its two passes over the headers add an empty mapping
        if any("_" in name for name in self.headers.keys()):
            return super().make_environ()
        environ = WSGIRequestHandler.make_environ(self)
        environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = {}
        return environ

    def run_wsgi(self) -> None:
        # No "100 Continue" here, unlike werkzeug's run_wsgi: parse_request sent it already
        # (http.server's handle_expect_100), and a second one is not HTTP
        environ = self.make_environ()
        self.environ = environ
        body = environ["wsgi.input"]
        if not environ.get("wsgi.input_terminated"):  # not chunked: exactly Content-Length
            try:
                length = max(int(environ.get("CONTENT_LENGTH") or 0), 0)
            except ValueError:
                length = 0
                self.close_connection = True
            body = LimitedStream(self.rfile, length)  # type: ignore[arg-type]
            environ["wsgi.input"] = body
            environ["wsgi.input_terminated"] = True  # the app may read to the end
        response = _Response(self, environ)
        try:
            result = self.server.app(environ, response.start)
            try:
                for data in result:
                    response.write(data)
                response.finish()
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except (TimeoutError, ConnectionError):
            self.close_connection = True
            return
        except Exception:
            log.exception("local_aws: error serving %s %s", self.command, self.path)
            if response.headers_sent:
                self.close_connection = True  # the response cannot be completed
                return
            response.internal_error()
        self._drain(body)

    def _drain(self, body: Any) -> None:
        """Read what the app left of the request, so the next request starts where it should."""
        if self.close_connection:
            return
        try:
            if isinstance(body, LimitedStream):
                if body.limit - body._pos > DRAIN_LIMIT:  # noqa: SLF001
                    self.close_connection = True
                    return
                body.exhaust()
            else:  # chunked: to its last chunk
                drained = 0
                while chunk := body.read(64 << 10):
                    drained += len(chunk)
                    if drained > DRAIN_LIMIT:
                        self.close_connection = True
                        return
        except Exception:  # a client gone mid-body, among others
            self.close_connection = True


class _Response:
    """The response side of one WSGI call: status line and headers go out with the first
    body bytes, in one write (two writes, two wake-ups of the client, cost more than the
    copy of a small body)."""

    def __init__(self, handler: KeepAliveHandler, environ: dict[str, Any]):
        self.handler = handler
        self.environ = environ
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.headers_sent = False
        self.chunked = False
        self.bodiless = False  # HEAD, 1xx, 204, 304: bytes written would be the next response
        self.code = 0
        self.size = 0

    def start(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info is not None and self.headers_sent:
            raise exc_info[1].with_traceback(exc_info[2])
        self.status, self.headers = status, list(headers)
        return self.write

    def _head(self) -> bytes:
        """The status line and headers (what ``send_response`` and ``send_header`` write)."""
        assert self.status is not None, "the app wrote before start_response"
        handler = self.handler
        code_text, _, reason = self.status.partition(" ")
        code = self.code = int(code_text)
        lines = [
            f"{handler.protocol_version} {code} {reason}",
            f"Server: {handler.version_string()}",
            f"Date: {_http_date()}",
        ]
        names = set()
        for name, value in self.headers:
            lower = name.lower()
            names.add(lower)
            if lower == "connection":
                if value.lower() == "close":
                    handler.close_connection = True
                continue  # hop-by-hop: ours to decide
            lines.append(f"{name}: {value}")
        no_body = (
            self.environ["REQUEST_METHOD"] == "HEAD" or code < 200 or code in _NO_BODY_STATUSES
        )
        self.bodiless = no_body
        if "content-length" not in names and not no_body:
            if "transfer-encoding" not in names:
                lines.append("Transfer-Encoding: chunked")
            self.chunked = True
        if handler.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "strict")
        self.headers_sent = True
        return head

    def write(self, data: bytes) -> None:
        if not data:  # headers wait for the first bytes of the body (PEP 3333)
            return
        head = b"" if self.headers_sent else self._head()
        if self.bodiless:
            if head:
                self.handler.wfile.write(head)
            return
        self.size += len(data)
        if self.chunked:
            data = b"%x\r\n" % len(data) + data + b"\r\n"
        wfile = self.handler.wfile
        if head and len(data) <= COALESCE_LIMIT:
            wfile.write(head + data)
            return
        if head:
            wfile.write(head)
        wfile.write(data)

    def finish(self) -> None:
        out = b"" if self.headers_sent else self._head()
        if self.chunked:
            out += b"0\r\n\r\n"
        if out:
            self.handler.wfile.write(out)
        self.handler.wfile.flush()
        if _ACCESS_LOG.level == logging.NOTSET or _ACCESS_LOG.isEnabledFor(logging.INFO):
            self.handler.log_request(self.code, self.size)  # werkzeug formats it eagerly

    def internal_error(self) -> None:
        body = b"Internal Server Error\n"
        self.status = "500 Internal Server Error"
        self.headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        self.write(body)
        self.finish()


_date: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The Date header's value, formatted once a second rather than once a response."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, email.utils.formatdate(now, usegmt=True))
    return _date[1]


class Connections(set[socket.socket]):
    """The open connections of a server, to close when it stops (they outlive its loop)."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def close_all(self) -> None:
        with self.lock:
            sockets = list(self)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
