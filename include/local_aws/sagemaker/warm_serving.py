"""Warm model servers: endpoint and transform model servers fork from a process that has
imported the serving stack already.

A cold ``python -m local_aws.sagemaker.serving`` spends most of its 2–4 s start importing
numpy, pandas, scikit-learn and XGBoost; the model itself loads in milliseconds. So, as
training jobs do (:mod:`local_aws.sagemaker.warm`), one zygote per server imports them
once and forks a child per model server. The child is what a cold start would be from
the point of the imports on: its own session and process group, its own mount namespace
whose /opt/ml is its workdir (:mod:`local_aws.sagemaker.private_opt_ml`), the model's
environment, working directory and arguments, then ``serving.main``.

Run as ``python -m local_aws.sagemaker.warm_serving FD`` by :class:`warm.Zygote`; the
server side is :func:`spawn`.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import socket
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from local_aws.sagemaker import api, private_opt_ml
from local_aws.sagemaker.warm import WarmProcess, Zygotes

if TYPE_CHECKING:
    from local_aws.sagemaker.backend import Backend

MODULE = "local_aws.sagemaker.warm_serving"
# What the framework containers' models unpickle into: imported in the zygote when
# installed, so a child's model_fn finds them loaded (the fork shares their pages).
PRELOADED = ("joblib", "sklearn.base", "sklearn.linear_model", "sklearn.ensemble", "xgboost")

ZYGOTES = Zygotes(MODULE)


# -- server side ---------------------------------------------------------------------------------
def spawn(
    args: list[str], *, cwd: Path, env: dict[str, str], sandbox: Path, owner: Path
) -> WarmProcess:
    """A model server (``serving`` with ``args``) forked from the zygote of the server whose
    data dir is ``owner``; it quacks like the ``subprocess.Popen`` of a cold start (pid =
    its process group, text ``stdout``)."""
    return WarmProcess(env, cwd, sandbox=sandbox, argv=args, via=ZYGOTES.get(owner))


@api.on_start
def prewarm_model_servers(backend: Backend) -> None:
    """Start the zygote with the server, so the first endpoint does not pay its imports."""
    ZYGOTES.open(backend.data_dir.resolve())


@api.on_last_shutdown
def stop_model_server_zygote(backend: Backend) -> None:
    ZYGOTES.close(backend.data_dir.resolve())


# -- zygote side ---------------------------------------------------------------------------------
def _load() -> ModuleType:
    """The point of this process: pay for the serving stack's imports once."""
    try:
        private_opt_ml.enter(None)  # nothing imported here may write the host's /opt/ml
    except OSError:
        pass  # every child tries again and logs why it could not
    serving = importlib.import_module("local_aws.sagemaker.serving")
    for name in PRELOADED:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    sys.stdout.flush()  # nothing buffered here may reach a child's output
    return serving


def _run_server(serving: ModuleType, spec_path: str, output_fd: int) -> int:
    os.setsid()  # its own process group: a stop kills the server and what it started
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    os.close(output_fd)
    with open(spec_path) as fh:
        spec = json.load(fh)
    os.unlink(spec_path)  # it holds the model's environment: gone once read
    try:
        private_opt_ml.enter(spec["sandbox"], nested=True)  # the zygote covered /opt
    except OSError as exc:
        print(f"{private_opt_ml.NOTICE} ({exc})", flush=True)
    os.environ.clear()
    os.environ.update(spec["env"])
    os.chdir(spec["cwd"])
    # what `python -m` would have put first on sys.path: the working directory, then
    # PYTHONPATH's entries
    extra = [p for p in spec["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:1] = [spec["cwd"], *extra]
    code = 1
    try:
        code = serving.main(spec["argv"])
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    return code


if __name__ == "__main__":
    from local_aws.sagemaker.warm_child import serve

    serve(
        socket.socket(fileno=int(sys.argv[1])),
        int(sys.argv[2]) if len(sys.argv) > 2 else None,
        load=_load,
        run=_run_server,
    )
