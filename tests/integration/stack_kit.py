"""The real stack as a user starts it (scripts/up: local_aws + airflow standalone) from this
checkout, on free ports, with its state in a temporary directory so a developer's .airflow/
and .local-aws/ are left alone; and the REST API calls the tests make against it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
LOGIN = re.compile(r"login\s+user (\S+), password (\S+)")
# one REST call; a busy 2-core machine has kept the api-server 30 s from answering
API_TIMEOUT = 120


def reachable(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port`` (Postgres, Redis)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def wait(condition: Callable[[], Any], what: str, timeout: float, interval: float = 0.5) -> Any:
    """Poll ``condition`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except urllib.error.HTTPError:
            raise  # an answer, and not the one hoped for
        except (TimeoutError, urllib.error.URLError):
            value = None  # a poll a busy api-server did not answer in time: ask again
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


@dataclass
class Stack:
    """A running `make up`: its addresses, the printed login, its output so far."""

    base: str
    aws_url: str
    airflow_port: int
    aws_port: int
    env: dict[str, str]
    up: subprocess.Popen
    lines: list[str] = field(default_factory=list)
    user: str = ""
    password: str = ""
    down: subprocess.CompletedProcess | None = None
    _token: str = ""

    def output(self) -> str:
        return "".join(self.lines)

    def token(self) -> str:
        """A REST API token for the printed login (fetched once)."""
        if not self._token:
            request = urllib.request.Request(
                f"{self.base}/auth/token",
                data=json.dumps({"username": self.user, "password": self.password}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=API_TIMEOUT) as response:
                self._token = json.loads(response.read())["access_token"]
        return self._token

    def call(self, path: str, method: str = "GET", body: Any = None) -> Any:
        """The REST API (``path`` under the base URL, e.g. /api/v2/dags), as JSON."""
        request = urllib.request.Request(
            f"{self.base}{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {self.token()}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=API_TIMEOUT) as response:
            return json.loads(response.read())

    def has_dag(self, dag_id: str) -> bool:
        """Whether the dag-processor has parsed ``dag_id`` (the API knows it)."""
        try:
            self.call(f"/api/v2/dags/{dag_id}")
            return True
        except urllib.error.HTTPError:
            return False

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """A task try's log as the UI shows it (structured events, one per line)."""
        events = self.call(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        )["content"]
        return "\n".join(e if isinstance(e, str) else json.dumps(e) for e in events)

    def nothing_left_running(self) -> bool:
        return nothing_left_running(self.env)


def nothing_left_running(env: dict[str, str]) -> bool:
    """No process of the stack started with ``env`` is alive (the api-server finishes its
    requests before it exits)."""
    pattern = f"port:{env['AIRFLOW_PORT']}|--port {env['LOCAL_AWS_PORT']}"
    found = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True)
    return found.stdout == ""


def stack_env(tmp_path: Path, **extra_env: str) -> dict[str, str]:
    """The environment scripts/up gets: free ports, state under ``tmp_path``, none of the
    caller's Airflow, AWS or project settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_", "MLOPS_"))}
    env.update(
        AIRFLOW_PORT=str(free_port()),
        LOCAL_AWS_PORT=str(free_port()),
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        LOCAL_AWS_DATA_DIR=str(tmp_path / "local-aws"),
        **extra_env,
    )
    return env


@contextmanager
def running_stack(tmp_path: Path, **extra_env: str) -> Iterator[Stack]:
    """scripts/up on free ports until the login is printed; scripts/down when the block ends
    (its result in ``stack.down``, the up process waited for)."""
    env = stack_env(tmp_path, **extra_env)
    airflow_port, aws_port = int(env["AIRFLOW_PORT"]), int(env["LOCAL_AWS_PORT"])
    up = subprocess.Popen(
        [str(ROOT / "scripts" / "up")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    stack = Stack(
        base=f"http://127.0.0.1:{airflow_port}",
        aws_url=f"http://127.0.0.1:{aws_port}",
        airflow_port=airflow_port,
        aws_port=aws_port,
        env=env,
        up=up,
    )
    threading.Thread(target=lambda: stack.lines.extend(up.stdout or []), daemon=True).start()
    try:
        found = wait(
            lambda: (
                next((m for m in map(LOGIN.search, stack.lines) if m), None)
                or up.poll() is not None
            ),
            "the login line",
            300,
        )
        assert isinstance(found, re.Match), stack.output()
        stack.user, stack.password = found.groups()
        yield stack
    finally:
        stack.down = subprocess.run(
            [str(ROOT / "scripts" / "down")], cwd=ROOT, env=env, capture_output=True, text=True
        )
        up.wait(timeout=120)


def boto3_client(stack: Stack, service: str) -> Any:
    """A real boto3 client on the stack's local_aws (any credentials do: it checks none)."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=stack.aws_url,
        region_name="us-east-1",
        aws_access_key_id="local-aws-key-id",
        aws_secret_access_key="local-aws-not-a-secret",
    )
