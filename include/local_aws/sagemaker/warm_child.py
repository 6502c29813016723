"""The trainer zygote: imports the SageMaker training toolkit and the built-in algorithms'
libraries once, forks one child per job.

Run by :mod:`local_aws.sagemaker.warm` as ``python -m local_aws.sagemaker.warm_child FD``.
The zygote lives in a mount namespace of its own with an empty /opt/ml (importing the
toolkit creates /opt/ml/code); each child enters one more, where /opt/ml is its job's sandbox.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import socket
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from local_aws.sagemaker import builtins, private_opt_ml


def _run_job(toolkit: dict[str, ModuleType], spec_path: str, output_fd: int) -> int:
    os.setsid()  # its own process group, so a stop kills the user script too
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    os.close(output_fd)
    with open(spec_path) as fh:
        spec = json.load(fh)
    try:
        private_opt_ml.enter(spec["sandbox"], nested=True)  # the zygote covered /opt
    except OSError as exc:
        print(f"{private_opt_ml.NOTICE} ({exc})", flush=True)
    os.environ.clear()
    os.environ.update(spec["env"])
    os.chdir(spec["cwd"])
    if spec.get("module"):  # a built-in algorithm: its main() reads /opt/ml at call time
        return int(importlib.import_module(spec["module"]).main())
    # The toolkit reads SAGEMAKER_BASE_DIR into module constants at import: re-read them.
    importlib.reload(toolkit["environment"])
    importlib.reload(toolkit["intermediate_output"])
    try:
        toolkit["trainer"].train()  # exits with the job's code, as the container's entry point does
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def _load_toolkit() -> dict[str, ModuleType]:
    """The point of this process: pay for these imports once, in its own /opt/ml."""
    try:
        private_opt_ml.enter(None)
    except OSError:
        pass  # every job's child tries again and logs why it could not
    toolkit = {
        name: importlib.import_module(f"sagemaker_training.{name}")
        for name in ("environment", "intermediate_output", "trainer")
    }
    # Imports only: nothing may start a thread pool (OpenMP, BLAS work) before the forks.
    for module in builtins.preload_modules():
        try:
            importlib.import_module(module)
        except ImportError:  # a job that needs it imports it itself and fails saying why
            pass
    return toolkit


def serve(
    sock: socket.socket,
    parent: int | None = None,
    load: Callable[[], Any] = _load_toolkit,
    run: Callable[[Any, str, int], int] = _run_job,
) -> None:
    """Answer fork requests until told to stop: ``load()`` once, then per request a child
    that runs ``run(loaded, spec_path, output_fd)`` and exits with its code."""
    # The server's pid, as it gave it: read after a slow import, getppid() could already
    # name init, and the zygote of a server killed meanwhile would linger.
    parent = os.getppid() if parent is None else parent
    toolkit = load()
    jobs: dict[int, int] = {}  # child pid → request id
    while True:
        if os.getppid() != parent:
            return  # the server died without saying goodbye: don't linger as an orphan
        readable, _, _ = select.select([sock], [], [], 0.05)
        if readable:
            try:
                message, fds, _, _ = socket.recv_fds(sock, 4096, 1)
            except OSError:
                message, fds = b"", []
            if not message:
                return  # the server closed its end: stop
            request = json.loads(message)
            if request.get("stop"):
                return
            pid = os.fork()
            if pid == 0:
                sock.close()
                code = 1
                try:
                    code = run(toolkit, request["spec"], fds[0])
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            for fd in fds:
                os.close(fd)
            jobs[pid] = request["id"]
            sock.send(json.dumps({"id": request["id"], "pid": pid}).encode())
        while jobs:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            request_id = jobs.pop(pid, None)
            if request_id is not None:
                code = os.waitstatus_to_exitcode(status)
                sock.send(json.dumps({"id": request_id, "exit": code}).encode())


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])), int(sys.argv[2]) if len(sys.argv) > 2 else None)
