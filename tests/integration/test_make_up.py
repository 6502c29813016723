"""`make up` as a new user meets it: non-default ports, the login printed, a task that runs
and logs without masking ordinary words, `make down` stopping everything.

A real stack (scripts/up: local_aws + airflow standalone) from this checkout, with its state
in a temporary directory so a developer's .airflow/ and .local-aws/ are left alone.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
LOGIN = re.compile(r"login\s+user (\S+), password (\S+)")

pytestmark = pytest.mark.slow


def _call(url: str, token: str, method: str = "GET", body: Any = None) -> Any:
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _log(task_url: str, token: str) -> str:
    """The task's first try's log, as the UI shows it (structured events, one per line)."""
    events = _call(f"{task_url}/logs/1", token)["content"]
    return "\n".join(e if isinstance(e, str) else json.dumps(e) for e in events)


def _wait(condition, what: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except urllib.error.HTTPError:
            raise
        except (TimeoutError, urllib.error.URLError):
            value = None  # a poll a busy api-server did not answer in time: ask again
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def test_make_up_on_other_ports_runs_a_task_and_make_down_stops_it(tmp_path: Path) -> None:
    airflow_port, aws_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_", "MLOPS_"))}
    env.update(
        AIRFLOW_PORT=str(airflow_port),
        LOCAL_AWS_PORT=str(aws_port),
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        LOCAL_AWS_DATA_DIR=str(tmp_path / "local-aws"),
    )
    up = subprocess.Popen(
        [str(ROOT / "scripts" / "up")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(up.stdout or []), daemon=True).start()
    try:
        found = _wait(
            lambda: next((m for m in map(LOGIN.search, lines) if m), None) or up.poll() is not None,
            "the login line",
            300,
        )
        assert isinstance(found, re.Match), "".join(lines)
        assert f"Airflow UI   http://127.0.0.1:{airflow_port}" in "".join(lines)
        user, password = found.groups()

        base = f"http://127.0.0.1:{airflow_port}"
        request = urllib.request.Request(
            f"{base}/auth/token",
            data=json.dumps({"username": user, "password": password}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            token = json.loads(response.read())["access_token"]
        # the DAG is there once the dag-processor has parsed it
        _wait(lambda: _dag(base, token), "model_build in the API", 180)
        _call(f"{base}/api/v2/dags/model_build", token, "PATCH", {"is_paused": False})
        _call(
            f"{base}/api/v2/dags/model_build/dagRuns",
            token,
            "POST",
            {"logical_date": "2026-01-07T00:00:00Z", "dag_run_id": "make-up-test"},
        )
        task = (
            f"{base}/api/v2/dags/model_build/dagRuns/make-up-test/taskInstances/select_data_window"
        )
        state = _wait(
            lambda: (
                _call(task, token).get("state") in ("success", "failed", "upstream_failed")
                and _call(task, token)["state"]
            ),
            "select_data_window to finish",
            300,
        )
        # tasks reached the api-server on its own port (not :8080) and ran against local_aws
        log = _log(task, token)
        assert state == "success", log[-3000:]
        assert "***" not in log  # no ordinary word masked as a secret
        assert "mlops-local" in log or "2026-01-07" in log
    finally:
        down = subprocess.run(
            [str(ROOT / "scripts" / "down")], cwd=ROOT, env=env, capture_output=True, text=True
        )
        up.wait(timeout=120)
    assert "stopped: Airflow local_aws" in down.stdout, down.stdout + down.stderr
    assert up.returncode == 0, "".join(lines)[-3000:]

    def none_left() -> bool:  # the api-server finishes its requests before it exits
        found = subprocess.run(
            ["pgrep", "-af", f"port:{airflow_port}|--port {aws_port}"],
            capture_output=True,
            text=True,
        )
        return found.stdout == ""

    _wait(none_left, "every process of the stack to exit", 120)


def _dag(base: str, token: str) -> bool:
    try:
        _call(f"{base}/api/v2/dags/model_build", token)
        return True
    except urllib.error.HTTPError:
        return False
