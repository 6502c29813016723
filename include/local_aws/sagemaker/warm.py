"""A warm trainer: training jobs fork from a process that imported what they run.

Importing the SageMaker training toolkit costs most of a second (boto3; paramiko through its
MPI runner), the built-in algorithms' libraries (NumPy, pandas, scikit-learn, XGBoost) a
few more; paid by every job it would dominate short ones. So one helper process per server
(the "zygote", :mod:`local_aws.sagemaker.warm_child`) imports them once and forks a child
per job, with the job's environment, working directory, session and stdout: the same code
as a cold ``python -m sagemaker_training.cli.train`` (or ``python -m <algorithm>``), minus
the imports.

The server talks to the zygote over a datagram socketpair: a request carries the path of
a JSON spec and, as SCM_RIGHTS, the write end of the job's output pipe; replies carry
the child's pid and later its exit code. The zygote exits when told to, or when the server process is gone.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from local_aws.sagemaker.orphans import DATA_DIR_MARK

_MAX_DATAGRAM = 4096


class Zygote:
    """``module``: the zygote's program, a module run as ``python -m MODULE FD`` (the
    toolkit's by default; model servers have their own, :mod:`local_aws.sagemaker.warm_serving`)."""

    def __init__(self, owner: Path, module: str = "local_aws.sagemaker.warm_child") -> None:
        """``owner``: the data dir of the server it serves. The zygote's environment carries
        it as the mark of that server's processes, and so does every child it forks (a
        fork's /proc/PID/environ is its parent's, whatever it sets after): the next server
        of that data dir finds them all if this one is killed (orphans.reap)."""
        self._sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._process = subprocess.Popen(
            [sys.executable, "-m", module, str(child_sock.fileno()), str(os.getpid())],
            pass_fds=[child_sock.fileno()],
            stdin=subprocess.DEVNULL,
            env={**os.environ, DATA_DIR_MARK: str(owner)},
        )
        child_sock.close()
        self._ids = itertools.count(1)
        self._waiting: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        threading.Thread(target=self._read_replies, name="toolkit-zygote", daemon=True).start()

    def _read_replies(self) -> None:
        self._sock.settimeout(0.5)
        while True:
            try:
                data = self._sock.recv(_MAX_DATAGRAM)
            except TimeoutError:
                if self.alive():
                    continue
                data = b""
            except OSError:  # closed by close()
                data = b""
            if not data:  # no zygote any more: wake every waiter with a failure
                with self._lock:
                    for waiter in self._waiting.values():
                        waiter.put({"exit": -1, "error": "the toolkit zygote process exited"})
                return
            reply = json.loads(data)
            with self._lock:
                found = self._waiting.get(reply["id"])
            if found is not None:
                found.put(reply)

    def spawn(
        self, spec_path: Path, output_fd: int
    ) -> tuple[int, int, queue.Queue[dict[str, Any]]]:
        """Fork a job; return (request id, child pid, queue that will get its exit)."""
        request_id = next(self._ids)
        replies: queue.Queue[dict[str, Any]] = queue.Queue()
        with self._lock:
            self._waiting[request_id] = replies
        message = json.dumps({"id": request_id, "spec": str(spec_path)}).encode()
        with self._send_lock:
            socket.send_fds(self._sock, [message], [output_fd])
        first = replies.get(timeout=60)
        if "pid" not in first:
            raise RuntimeError(first.get("error", "the toolkit zygote could not start the job"))
        return request_id, int(first["pid"]), replies

    def forget(self, request_id: int) -> None:
        with self._lock:
            self._waiting.pop(request_id, None)

    def alive(self) -> bool:
        return self._process.poll() is None

    def close(self) -> None:
        # datagram sockets have no EOF: say goodbye explicitly
        with self._send_lock, contextlib.suppress(OSError):
            self._sock.send(b'{"stop": true}')
        self._sock.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()


class ZygoteClosed(Exception):
    """The server is stopping: nothing may fork a process that its stop would not see."""


class Zygotes:
    """The running zygotes of one program, one per server (by its data dir): servers in one
    process (tests) each mark, and stop, their own."""

    def __init__(self, module: str) -> None:
        self.module = module
        self._running: dict[Path, Zygote] = {}
        self._closed: set[Path] = set()
        self._lock = threading.Lock()

    def open(self, owner: Path) -> Zygote:
        """Start the zygote of a server that starts (again)."""
        with self._lock:
            self._closed.discard(owner)
        return self.get(owner)

    def get(self, owner: Path) -> Zygote:
        with self._lock:
            if owner in self._closed:
                # a job or model server started late in a stop: after the final sweep, a
                # zygote started again would outlive the server
                raise ZygoteClosed("the local_aws server is stopping")
            found = self._running.get(owner)
            if found is None or not found.alive():
                found = self._running[owner] = Zygote(owner, self.module)
            return found

    def close(self, owner: Path) -> None:
        with self._lock:
            found = self._running.pop(owner, None)
            self._closed.add(owner)
        if found is not None:
            found.close()


TOOLKIT = Zygotes("local_aws.sagemaker.warm_child")


class WarmProcess:
    """A toolkit run forked from the zygote; quacks like ``subprocess.Popen`` for jobs.py.

    Thread-safe: the job thread and a stopping thread may wait on it at the same time.
    """

    def __init__(
        self,
        env: dict[str, str],
        cwd: Path,
        *,
        sandbox: Path,
        module: str | None = None,
        argv: list[str] | None = None,
        via: Zygote,
    ):
        """``module``: a built-in algorithm's module to run instead of the toolkit's
        trainer; ``via``: the zygote to fork from; ``argv``: the program's arguments, for
        a zygote whose program takes any."""
        spec = cwd / ".toolkit-spec.json"
        # the job's environment: readable by the server's user alone
        fd = os.open(spec, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(
                {
                    "env": env,
                    "cwd": str(cwd),
                    "sandbox": str(sandbox),
                    "module": module,
                    "argv": argv,
                },
                fh,
            )
        read_fd, write_fd = os.pipe()
        self._zygote = via
        try:
            self._id, self.pid, replies = self._zygote.spawn(spec, write_fd)
        finally:
            os.close(write_fd)  # the child has its own copy: EOF once it and its children exit
        self.stdout: IO[str] = os.fdopen(read_fd, "r", errors="replace")
        self._exit: int | None = None
        self._done = threading.Event()
        threading.Thread(target=self._await_exit, args=(replies,), daemon=True).start()

    def _await_exit(self, replies: queue.Queue[dict[str, Any]]) -> None:
        self._exit = int(replies.get()["exit"])
        self._zygote.forget(self._id)
        self._done.set()

    def poll(self) -> int | None:
        return self._exit if self._done.is_set() else None

    def wait(self, timeout: float | None = None) -> int:
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired("sagemaker-training", timeout or 0)
        assert self._exit is not None
        return self._exit
