"""A model server for one Model record: what an endpoint instance or a transform job runs.

It fetches the model's artifacts the way SageMaker's hosting agents do (ModelDataUrl's
model.tar.gz unpacked as /opt/ml/model, an s3:// SAGEMAKER_SUBMIT_DIRECTORY unpacked as
the code directory), starts ``local_aws.sagemaker.serving`` in its own process group with
the container's Environment, streams its output into a CloudWatch Logs stream, and talks
to it over a pool of keep-alive HTTP connections. The server is forked warm from the
serving zygote (:mod:`local_aws.sagemaker.warm_serving`: no imports to pay, well under a
second to serve); a cold ``python -m`` start is the fallback when the zygote cannot fork.
"""

from __future__ import annotations

import http.client
import json
import logging
import queue
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local_aws.httpheaders import MAX_LINE, parse_headers, read_header_lines
from local_aws.sagemaker import builtins, images, s3io, warm_serving
from local_aws.sagemaker.cloudwatch import LogStream
from local_aws.sagemaker.jobs import base_env, spawn, stop_group
from local_aws.sagemaker.warm import WarmProcess

if TYPE_CHECKING:
    from local_aws.sagemaker.backend import Backend

log = logging.getLogger(__name__)

_READY = re.compile(r"serving on http://(?P<host>[^:/\s]+):(?P<port>\d+)")
DEFAULT_STARTUP_TIMEOUT = 120.0
DEFAULT_DOWNLOAD_TIMEOUT = 600.0
INVOCATION_TIMEOUT = 60.0  # SageMaker's limit on one real-time invocation
_RETRYABLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
_COALESCE_LIMIT = 64 << 10  # a request body up to this size goes out with its headers


class ModelServerError(Exception):
    """The model server could not start; ``reason`` is SageMaker-style, ``tail`` its output."""

    def __init__(self, reason: str, tail: list[str] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.tail = tail or []

    @property
    def last_error(self) -> str:
        """The last meaningful output line (a traceback's exception line), if any."""
        for line in reversed(self.tail):
            if line.strip():
                return line.strip()
        return ""


def instance_id() -> str:
    """An EC2-style instance id, the second half of an endpoint instance's log stream."""
    return "i-" + secrets.token_hex(9)[:17]


class ConnectionPool:
    """Keep-alive HTTP/1.1 connections to one server, reused across threads."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self._idle: list[Connection] = []
        self._lock = threading.Lock()

    def request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str], timeout: float
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        for attempt in range(2):
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            reused = conn is not None
            try:
                if conn is None:
                    conn = Connection(self.host, self.port, timeout)
                status, response_headers, data, will_close = conn.request(
                    method, path, body, headers, timeout
                )
            except _RETRYABLE:
                if conn is not None:
                    conn.close()
                if reused and attempt == 0:
                    continue  # the server closed an idle connection: one retry on a fresh one
                raise
            except BaseException:
                if conn is not None:
                    conn.close()
                raise
            if will_close:
                conn.close()
            else:
                with self._lock:
                    self._idle.append(conn)
            return status, response_headers, data
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class Connection:
    """One HTTP/1.1 connection to a model server, as ``http.client.HTTPConnection`` would
    send and read it, minus its cost per call (a new buffered reader and the email parser
    for every response, the request in two writes): the request goes out in one write and
    the response is read through the connection's own reader."""

    def __init__(self, host: str, port: int, timeout: float):
        self.sock = socket.create_connection((host, port), timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.reader = self.sock.makefile("rb")
        self.host = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str], timeout: float
    ) -> tuple[int, list[tuple[str, str]], bytes, bool]:
        """(status, headers, body, whether the server closes the connection after it)."""
        if timeout != self.timeout:  # settimeout is a syscall (FIONBIO), even unchanged
            self.sock.settimeout(timeout)
            self.timeout = timeout
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", "Accept-Encoding: identity"]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        for name, value in headers.items():
            if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
                raise ValueError(f"Invalid header {name!r}: {value!r}")  # as http.client says
            lines.append(f"{name}: {value}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if body and len(body) <= _COALESCE_LIMIT:
            self.sock.sendall(head + body)
        else:
            self.sock.sendall(head)
            if body:
                self.sock.sendall(body)
        return self._response(method)

    def _response(self, method: str) -> tuple[int, list[tuple[str, str]], bytes, bool]:
        version, status = self._status()
        while status == 100:  # "100 Continue" and its (empty) headers come before the answer
            read_header_lines(self.reader)
            version, status = self._status()
        headers = parse_headers(self.reader)
        connection = headers.get("connection", "").lower()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            will_close = "keep-alive" not in connection
        else:
            will_close = "close" in connection
        if method == "HEAD" or status in (204, 304) or status < 200:
            return status, headers.items(), b"", will_close
        if headers.get("transfer-encoding", "").lower() == "chunked":
            return status, headers.items(), self._chunked(), will_close
        try:
            length = int(headers.get("content-length", ""))
        except ValueError:
            length = -1
        if length < 0:  # no length: the body ends where the connection does
            return status, headers.items(), self.reader.read(), True
        data = self.reader.read(length)
        if len(data) < length:
            raise http.client.IncompleteRead(data, length - len(data))
        return status, headers.items(), data, will_close

    def _status(self) -> tuple[str, int]:
        line = str(self.reader.readline(MAX_LINE + 1), "iso-8859-1")
        if not line:
            raise http.client.RemoteDisconnected("Remote end closed connection without response")
        words = line.split(None, 2)
        if len(words) < 2 or not words[0].startswith("HTTP/") or not words[1].isdigit():
            raise http.client.BadStatusLine(line)
        return words[0], int(words[1])

    def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while size := self._chunk_size(parts):
            chunk = self.reader.read(size + 2)  # the chunk and its CRLF
            if len(chunk) < size + 2:
                raise http.client.IncompleteRead(b"".join(parts) + chunk[:size])
            parts.append(chunk[:size])
        read_header_lines(self.reader)  # trailers, up to the empty line
        return b"".join(parts)

    def _chunk_size(self, parts: list[bytes]) -> int:
        line = self.reader.readline(MAX_LINE + 1)
        try:
            return int(line.split(b";", 1)[0], 16)
        except ValueError:
            raise http.client.IncompleteRead(b"".join(parts)) from None

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class ModelServer:
    """One running model server.

    ``ModelServer(backend, container, workdir=..., log_group=..., log_stream=...).start()``
    raises ModelServerError with a FailureReason-ready message when the model cannot serve.
    """

    def __init__(
        self,
        backend: Backend,
        container: dict[str, Any],
        *,
        workdir: Path,
        log_group: str,
        log_stream: str,
        env: dict[str, str] | None = None,
        startup_timeout: float | None = None,
        download_timeout: float | None = None,
    ):
        self.backend = backend
        self.container = container
        self.workdir = Path(workdir)
        self.log_group, self.log_stream = log_group, log_stream
        self.extra_env = env or {}
        self.startup_timeout = startup_timeout or DEFAULT_STARTUP_TIMEOUT
        self.download_timeout = download_timeout or DEFAULT_DOWNLOAD_TIMEOUT
        self.url = ""
        self._proc: subprocess.Popen[str] | WarmProcess | None = None
        self._pool: ConnectionPool | None = None
        self._logs: LogStream | None = None
        self._tail: deque[str] = deque(maxlen=40)
        self._ready = threading.Event()
        self._exited = threading.Event()
        self._stopping = False
        self._lock = threading.Lock()

    @property
    def log_stream_arn(self) -> str:
        b = self.backend
        return (
            f"arn:aws:logs:{b.region}:{b.account_id}:log-group:{self.log_group}"
            f":log-stream:{self.log_stream}"
        )

    # -- start ---------------------------------------------------------------------------------
    def start(self) -> ModelServer:
        """Fetch the artifacts, start the server and wait (bounded) until /ping answers 200."""
        reason = images.unsupported_reason(self.container.get("Image", ""), algorithms=True)
        if not self.container.get("Image"):
            reason = (
                "ClientError: the model's container has no Image (local_aws does not resolve "
                "ModelPackageName containers): give Image and ModelDataUrl"
            )
        if reason:
            raise ModelServerError(reason)
        args, env = self._prepare()
        try:
            self._launch(args, env)
        except BaseException:
            self.stop()
            raise
        return self

    def _prepare(self) -> tuple[list[str], dict[str, str]]:
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        model_dir = self.workdir / "model"
        model_dir.mkdir(parents=True)
        s3 = self.backend.client("s3")
        env = base_env(self.backend)
        env.update(self.container.get("Environment") or {})
        env.update(self.extra_env)
        args = ["--model-dir", str(model_dir)]
        algorithm = builtins.for_model(self.container.get("Image", ""))
        if algorithm is not None and algorithm.serving:
            args += ["--algorithm", algorithm.serving]
        started = time.monotonic()
        uri = self.container.get("ModelDataUrl")
        source = (self.container.get("ModelDataSource") or {}).get("S3DataSource")
        try:
            if uri:
                s3io.download_and_extract(s3, uri, model_dir)
            elif source:
                uri = source["S3Uri"]
                if source.get("CompressionType") == "Gzip":
                    s3io.download_and_extract(s3, uri, model_dir)
                else:
                    s3io.download(
                        s3, uri, model_dir, data_type=source.get("S3DataType", "S3Prefix")
                    )
        except Exception as exc:
            raise ModelServerError(
                f'Failed to download model data for container "container_1" from URL: "{uri}". '
                "Please ensure that there is an object located at the URL and that the role "
                f"passed to CreateModel has permissions to download the object. ({exc})"
            ) from exc
        submit = env.get("SAGEMAKER_SUBMIT_DIRECTORY", "")
        if submit.startswith("s3://"):
            code_dir = self.workdir / "code"
            try:
                s3io.download_and_extract(s3, submit, code_dir)
            except Exception as exc:
                raise ModelServerError(
                    f"ClientError: could not download SAGEMAKER_SUBMIT_DIRECTORY {submit}: {exc}"
                ) from exc
            env["SAGEMAKER_SUBMIT_DIRECTORY"] = str(code_dir)
            args += ["--code-dir", str(code_dir)]
        if time.monotonic() - started > self.download_timeout:
            raise ModelServerError(
                "ClientError: downloading the model data took longer than "
                f"ModelDataDownloadTimeoutInSeconds ({self.download_timeout:.0f}s)"
            )
        return args, env

    def _launch(self, args: list[str], env: dict[str, str]) -> None:
        self._logs = LogStream(self.backend.client("logs"), self.log_group, self.log_stream)
        args = [*args, "--host", "127.0.0.1", "--port", "0"]
        with self._lock:
            if self._stopping:  # stopped while it downloaded: start nothing that would leak
                raise ModelServerError("The model server was stopped before it started")
            # the workdir holds model/ and code/: the server sees them as /opt/ml/model, /opt/ml/code
            self._proc = self._spawn(args, env)
        threading.Thread(
            target=self._pump, name=f"model-server:{self.log_stream}", daemon=True
        ).start()
        deadline = time.monotonic() + self.startup_timeout
        self._ready.wait(self.startup_timeout)
        if not self.url:
            code = self._proc.poll()
            if code is None:
                raise ModelServerError(
                    "The model server did not start within "
                    f"{self.startup_timeout:.0f} seconds (ContainerStartupHealthCheckTimeout"
                    "InSeconds)",
                    list(self._tail),
                )
            self._exited.wait(5)  # let the pump read the rest of the traceback
            raise ModelServerError(
                f"The model server exited with code {code} before it was ready", list(self._tail)
            )
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        self._pool = ConnectionPool(host, int(port))
        while not self.ping(timeout=max(0.1, deadline - time.monotonic())):
            if time.monotonic() > deadline or self._exited.is_set():
                raise ModelServerError(
                    "The model server did not pass the ping health check", list(self._tail)
                )
            time.sleep(0.1)

    def _spawn(self, args: list[str], env: dict[str, str]) -> subprocess.Popen[str] | WarmProcess:
        try:
            return warm_serving.spawn(
                args,
                cwd=self.workdir,
                env=env,
                sandbox=self.workdir,
                owner=self.backend.data_dir.resolve(),
            )
        except (OSError, RuntimeError, queue.Empty) as exc:  # no zygote: start it cold
            log.warning("model server %s starts cold: %s", self.log_stream, exc)
        cmd = [sys.executable, "-m", "local_aws.sagemaker.serving", *args]
        return spawn(cmd, cwd=self.workdir, env=env, sandbox=self.workdir)

    def _pump(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        logs = self._logs
        try:
            for line in self._proc.stdout:
                if logs is not None:
                    logs.write(line)
                self._tail.append(line.rstrip("\n"))
                if not self._ready.is_set():
                    match = _READY.search(line)
                    if match:
                        self.url = f"http://{match['host']}:{match['port']}"
                        self._ready.set()
        finally:
            self._exited.set()
            self._ready.set()
            if not self._stopping and self.url:
                log.warning("model server %s exited unexpectedly", self.log_stream)

    # -- use -----------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = INVOCATION_TIMEOUT,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """One HTTP request to the server: (status, response headers, body). Raises OSError."""
        if self._pool is None:
            raise ConnectionError("the model server is not running")
        return self._pool.request(method, path, body, headers or {}, timeout)

    def invoke(
        self, body: bytes, headers: dict[str, str], timeout: float = INVOCATION_TIMEOUT
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        return self.request("POST", "/invocations", body, headers, timeout)

    def ping(self, timeout: float = 2.0) -> bool:
        try:
            status, _, _ = self.request("GET", "/ping", timeout=timeout)
        except (OSError, http.client.HTTPException):
            return False
        return status == 200

    def execution_parameters(self) -> dict[str, Any]:
        """GET /execution-parameters (what batch transform asks a container for), or {}."""
        try:
            status, _, data = self.request("GET", "/execution-parameters", timeout=5)
            return json.loads(data) if status == 200 else {}
        except (OSError, http.client.HTTPException, ValueError):
            return {}

    # -- stop ----------------------------------------------------------------------------------
    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._stopping = True
            proc = self._proc
        if proc is not None and proc.poll() is None:
            stop_group(proc, timeout=timeout)
            proc.wait(timeout=timeout)  # at once, unless it took a SIGKILL
        if self._pool is not None:
            self._pool.close()
        if proc is not None:
            self._exited.wait(2)  # the pump's last lines reach the log stream
        if self._logs is not None:
            self._logs.close()
            self._logs = None
