"""`make up` as a new user meets it: non-default ports, the login printed, a task that runs
and logs without masking ordinary words, `make down` stopping everything.

A real stack (scripts/up: local_aws + airflow standalone) from this checkout, with its state
in a temporary directory so a developer's .airflow/ and .local-aws/ are left alone.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.stack_kit import (
    ROOT,
    nothing_left_running,
    running_stack,
    stack_env,
    wait,
)

pytestmark = pytest.mark.slow


def test_make_up_on_other_ports_runs_a_task_and_make_down_stops_it(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        assert f"Airflow UI   http://127.0.0.1:{stack.airflow_port}" in stack.output()
        # the DAG is there once the dag-processor has parsed it
        wait(lambda: stack.has_dag("model_build"), "model_build in the API", 180)
        stack.call("/api/v2/dags/model_build", "PATCH", {"is_paused": False})
        stack.call(
            "/api/v2/dags/model_build/dagRuns",
            "POST",
            {"logical_date": "2026-01-07T00:00:00Z", "dag_run_id": "make-up-test"},
        )
        task = "/api/v2/dags/model_build/dagRuns/make-up-test/taskInstances/select_data_window"
        state = wait(
            lambda: (
                stack.call(task).get("state") in ("success", "failed", "upstream_failed")
                and stack.call(task)["state"]
            ),
            "select_data_window to finish",
            300,
        )
        # tasks reached the api-server on its own port (not :8080) and ran against local_aws
        log = stack.task_log("model_build", "make-up-test", "select_data_window")
        assert state == "success", log[-3000:]
        assert "***" not in log  # no ordinary word masked as a secret
        assert "mlops-local" in log or "2026-01-07" in log
    assert stack.down is not None
    assert "stopped: Airflow local_aws" in stack.down.stdout, stack.down.stdout + stack.down.stderr
    assert stack.up.returncode == 0, stack.output()[-3000:]
    wait(stack.nothing_left_running, "every process of the stack to exit", 120)


def test_make_up_fails_without_a_login_when_airflow_does_not_answer_in_time(
    tmp_path: Path,
) -> None:
    """A login printed before the api-server answers sends the user to a refused connection."""
    env = stack_env(tmp_path, AIRFLOW_START_TIMEOUT="1")
    up = subprocess.run(
        [str(ROOT / "scripts" / "up")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert up.returncode == 1, up.stdout + up.stderr
    assert "login" not in up.stdout
    assert "did not answer" in up.stderr and "AIRFLOW_START_TIMEOUT" in up.stderr, up.stderr
    wait(lambda: nothing_left_running(env), "every process of the stack to exit", 120)
