"""Scheduler throughput on the production topology: 100 short runs of a no-op DAG, the task
latency from queued to running (p50, p95) with the CeleryExecutor on Redis against the
LocalExecutor, both on the same Postgres on this machine.

Each executor gets a stack of its own (Airflow home, database, Redis key prefix, ports) with
scheduler, dag-processor and api-server (and a Celery worker), the same parallelism (4),
and the runs are triggered through the REST API as a user would. Reading the rows: queued ->
running is the executor's hand-off only. With 100 runs at once and 4 slots, the time a task
waits for a slot is spent before "queued" on one executor and after it on the other, so the
row of the whole burst's wall time (trigger to last end) goes with the two latency rows. Needs Postgres on
127.0.0.1:5432 and Redis on 127.0.0.1:6379; without them the rows are left out (said on
stderr).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.harness import ROOT, Row
from tests.conftest import free_port
from tests.integration.stack_kit import reachable

RUNS = 100
PARALLELISM = 4
REDIS_URL = "redis://127.0.0.1:6379/0"
PG = {"PGHOST": "127.0.0.1", "PGPORT": "5432", "PGUSER": "postgres"}
DAG_ID = "bench_noop"
DAG_FILE = f'''
import datetime as dt

from airflow.sdk import dag, task


@dag(
    dag_id="{DAG_ID}",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    max_active_runs={RUNS},
    is_paused_upon_creation=False,
)
def bench_noop():
    @task
    def noop() -> None:
        pass

    noop()


bench_noop()
'''


def _psql(sql: str) -> None:
    subprocess.run(
        ["psql", "-d", "postgres", "-q", "-c", sql], env={**os.environ, **PG}, check=True
    )


def _environment(home: Path, dags: Path, executor: str, db: str, port: int) -> dict[str, str]:
    url = f"postgresql+psycopg2://{PG['PGUSER']}@{PG['PGHOST']}:{PG['PGPORT']}/{db}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__EXECUTOR=executor,
        AIRFLOW__CORE__PARALLELISM=str(PARALLELISM),
        AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG=str(PARALLELISM),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=url,
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__API__WORKERS="1",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
        AIRFLOW__API_AUTH__JWT_SECRET=uuid.uuid4().hex,
        # as scripts/env.sh celery_stack_env sets them for make up STACK=celery
        AIRFLOW__CELERY__BROKER_URL=REDIS_URL,
        AIRFLOW__CELERY__RESULT_BACKEND=f"db+{url}",
        AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX=f"{db}:",
        AIRFLOW__OPERATORS__DEFAULT_QUEUE=db,
        AIRFLOW__CELERY__WORKER_CONCURRENCY=str(PARALLELISM),
    )
    return env


@contextmanager
def _stack(executor: str) -> Iterator[tuple[str, str]]:
    """(base URL, API token) of a running stack with ``executor``; everything stopped and
    dropped afterwards."""
    db = f"airflow_bench_{uuid.uuid4().hex[:10]}"
    port = free_port()
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="bench-scheduler-") as tmp:
        home, dags = Path(tmp) / "airflow", Path(tmp) / "dags"
        home.mkdir()
        dags.mkdir()
        (dags / f"{DAG_ID}.py").write_text(DAG_FILE)
        env = _environment(home, dags, executor, db, port)
        _psql(f'CREATE DATABASE "{db}"')
        try:
            subprocess.run(
                ["airflow", "db", "migrate"], env=env, check=True, capture_output=True, cwd=ROOT
            )
            commands = [
                ["airflow", "scheduler", "--skip-serve-logs"],
                ["airflow", "dag-processor"],
                ["airflow", "api-server"],
            ]
            if executor == "CeleryExecutor":
                commands.append(
                    [
                        "airflow",
                        "celery",
                        "worker",
                        "--skip-serve-logs",
                        "--queues",
                        db,
                        "--celery-hostname",
                        f"{db}@%h",
                    ]  # fmt: skip
                )
            for command in commands:
                log = open(home / f"{command[1]}.log", "w")  # noqa: SIM115 - closed with the dir
                procs.append(
                    subprocess.Popen(
                        command,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        cwd=ROOT,
                    )  # fmt: skip
                )
            base = f"http://127.0.0.1:{port}"
            token = _token(base, home, procs)
            yield base, token
        finally:
            for proc in procs:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            _psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            _drop_redis_keys(f"{db}:")


def _drop_redis_keys(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)


def _call(base: str, path: str, token: str = "", method: str = "GET", body: Any = None) -> Any:
    request = urllib.request.Request(
        base + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
    )
    # generous: on a busy machine the one api-server worker answers slowly
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def _token(base: str, home: Path, procs: list[subprocess.Popen]) -> str:
    passwords = home / "simple_auth_manager_passwords.json.generated"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        dead = [p.args for p in procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"{dead} exited; see the logs in {home}")
        try:
            user, password = next(iter(json.loads(passwords.read_text()).items()))
            token = _call(
                base, "/auth/token", method="POST", body={"username": user, "password": password}
            )["access_token"]
            _call(base, f"/api/v2/dags/{DAG_ID}", token)  # parsed by the dag-processor
            return token
        except (OSError, ValueError, StopIteration, urllib.error.URLError):
            time.sleep(1)
    raise TimeoutError(f"the api-server on {base} did not serve {DAG_ID} within 300 s")


def _parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _latencies(executor: str) -> tuple[list[float], float]:
    """Queued -> running of each of RUNS task instances (s), and the wall time of all runs."""
    with _stack(executor) as (base, token):
        started = time.monotonic()
        for i in range(RUNS):
            _call(
                base,
                f"/api/v2/dags/{DAG_ID}/dagRuns",
                token,
                "POST",
                {"dag_run_id": f"bench-{i:03d}", "logical_date": None},
            )
        deadline = time.monotonic() + 1200
        while True:
            tis = _call(base, f"/api/v2/dags/{DAG_ID}/dagRuns/~/taskInstances?limit={RUNS}", token)[
                "task_instances"
            ]
            ended = [t for t in tis if t["state"] in ("success", "failed")]
            if len(ended) == RUNS:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{executor}: {len(ended)} of {RUNS} runs ended in 1200 s")
            time.sleep(1)
        wall = time.monotonic() - started
        failed = [t["dag_run_id"] for t in tis if t["state"] != "success"]
        if failed:
            raise RuntimeError(f"{executor}: no-op tasks failed in {failed}")
        return [
            (_parse(t["start_date"]) - _parse(t["queued_when"])).total_seconds() for t in tis
        ], wall


def _quantile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def run(aws: Any = None) -> list[Row]:
    if not (reachable(5432) and reachable(6379)):
        print("scheduler: Postgres :5432 or Redis :6379 not reachable; skipped", file=sys.stderr)
        return []
    celery, celery_wall = _latencies("CeleryExecutor")
    local, local_wall = _latencies("LocalExecutor")
    rows = []
    for q in (50, 95):
        rows.append(
            Row(
                f"scheduler: no-op task queued -> running p{q}, {RUNS} runs, CeleryExecutor",
                _quantile(celery, q),
                "s",
                baseline=_quantile(local, q),
                baseline_name="LocalExecutor",
            )
        )
    rows.append(
        Row(
            f"scheduler: {RUNS} no-op runs, trigger to last end, CeleryExecutor",
            RUNS / celery_wall,
            "runs/s",
            baseline=RUNS / local_wall,
            baseline_name="LocalExecutor",
        )
    )
    return rows
