"""A real backfill of batch_inference: `airflow backfill create` from the CLI, run by a real
scheduler (`airflow standalone`: api-server, scheduler, dag-processor, triggerer) against
local_aws. Slow (a whole Airflow starts), so one test covers it; dag.test() covers the rest.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_pipeline import datagen
from tests.batchkit import register_package
from tests.conftest import free_port, unique

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DAYS = ("2026-04-01", "2026-04-02", "2026-04-03")
ROWS = 1000


def airflow(*args: str, env: dict[str, str], timeout: float = 120) -> str:
    for _ in range(5):
        done = subprocess.run(
            [str(Path(sys.executable).with_name("airflow")), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )
        # SQLite has one writer: a CLI write racing the scheduler's may find it locked (the
        # transaction rolls back), as it would not on the production profile's Postgres
        if done.returncode == 0 or "database is locked" not in done.stdout + done.stderr:
            break
        time.sleep(2)
    assert done.returncode == 0, f"airflow {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done.stdout


def query(db: Path, sql: str, *params: object) -> list[tuple]:
    with sqlite3.connect(db, timeout=30) as connection:
        return connection.execute(sql, params).fetchall()


def wait_until(condition, timeout: float, what: str, log: Path, process) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline or process.poll() is not None:
            tail = log.read_text()[-4000:] if log.exists() else ""
            raise TimeoutError(f"{what} within {timeout:.0f} s; airflow standalone said:\n{tail}")
        time.sleep(1)


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to standalone's process group (its scheduler, triggerer, ...), then SIGKILL
    to whatever of it is still there after a minute."""
    os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        process.poll()
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture
def airflow_env(local_aws, tmp_path, s3, sm) -> Iterator[tuple[dict[str, str], str]]:
    bucket, group = unique("bi-backfill"), unique("card-fraud")
    s3.create_bucket(Bucket=bucket)
    register_package(s3, sm, bucket, group)
    for day in DAYS:
        datagen.write_partition(s3, bucket, dt.date.fromisoformat(day), ROWS, seed=11)
    home = tmp_path / "airflow"
    home.mkdir()
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_"))},
        # standalone starts its components as `airflow ...` from the PATH
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        # task processes reach the execution API on this port, not the default 8080
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
            {
                "conn_type": "aws",
                "login": "local",
                "password": "local",
                "extra": {"endpoint_url": local_aws.url, "region_name": local_aws.region},
            }
        ),
        "MLOPS_BUCKET": bucket,
        "MLOPS_MODEL_PACKAGE_GROUP": group,
        # no scheduled run gets in the way: the backfill alone scores the days
        "MLOPS_BATCH_START_DATE": (
            dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
        ).isoformat(),
        # the executor's and triggerer's log servers: free ports, not 8793/8794
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    }
    yield env, bucket


@pytest.mark.timeout(900)
def test_a_cli_backfill_run_by_the_scheduler_publishes_every_day(airflow_env, s3, sm):
    env, bucket = airflow_env
    home = Path(env["AIRFLOW_HOME"])
    db, log = home / "airflow.db", home / "standalone.log"
    airflow("db", "migrate", env=env, timeout=300)
    with log.open("w") as out:
        standalone = subprocess.Popen(
            [str(Path(sys.executable).with_name("airflow")), "standalone"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,  # its scheduler, triggerer, ... stop with it below
        )
    try:
        wait_until(
            lambda: query(db, "select 1 from serialized_dag where dag_id = 'batch_inference'"),
            240,
            "the dag-processor did not serialize batch_inference",
            log,
            standalone,
        )
        # Airflow 3 starts a paused DAG's backfill runs only once it is unpaused
        airflow("dags", "unpause", "batch_inference", env=env)
        printed = airflow(
            "backfill",
            "create",
            "--dag-id",
            "batch_inference",
            "--from-date",
            DAYS[0],
            "--to-date",
            DAYS[-1],
            env=env,
        )
        assert "batch_inference" in printed

        def finished() -> bool:
            states = query(
                db,
                "select state from dag_run where dag_id = 'batch_inference' "
                "and run_type = 'backfill'",
            )
            return len(states) == len(DAYS) and all(s in ("success", "failed") for (s,) in states)

        wait_until(finished, 600, "the backfill's runs did not finish", log, standalone)
        runs = query(
            db,
            "select logical_date, run_id, state from dag_run where dag_id = 'batch_inference' "
            "order by logical_date",
        )
        failed = query(
            db,
            "select run_id, task_id, state from task_instance where dag_id = 'batch_inference' "
            "and state not in ('success')",
        )
        assert [state for _, _, state in runs] == ["success"] * len(DAYS), (runs, failed)
    finally:
        stop_group(standalone)

    for (_, run_id, _), day in zip(runs, DAYS, strict=True):
        prefix = f"predictions/dt={day}/"
        keys = sorted(
            o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
        )
        assert keys == [prefix + "_manifest.json", prefix + "part-00000.csv"]
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read())
        assert "run_id" not in manifest and run_id.startswith("backfill__")
        head = s3.head_object(Bucket=bucket, Key=keys[0])
        assert head["Metadata"]["run-id"] == run_id
        assert manifest["rows"] == ROWS
        jobs = sm.list_transform_jobs(NameContains=f"transform-{day.replace('-', '')}-")
        assert len(jobs["TransformJobSummaries"]) == 1
