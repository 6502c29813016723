"""`make up STACK=celery` as production runs it: Postgres as the metadata DB, the
CeleryExecutor on Redis, scheduler, dag-processor, triggerer, a Celery worker and the
api-server as processes of their own (scripts/up, scripts/celery-stack), driven through the
REST API only.

One stack serves the module (its own Airflow home, local_aws data dir, database and Redis
key prefix, on free ports), dropped at the end whatever happened. The tests run in order:
model_build (with the worker SIGKILLed while a SageMaker job runs), then batch_inference
with the model that build registered.

Needs Postgres (trust auth, user postgres) on 127.0.0.1:5432 and Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import re
import signal
import socket
import subprocess
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from mlops_pipeline import datagen
from mlops_pipeline.demo import DEMO_END, DEMO_SEED
from tests.conftest import free_port
from tests.integration.stack_kit import reachable, wait

ROOT = Path(__file__).resolve().parents[2]
LOGIN = re.compile(r"login\s+user (\S+), password (\S+)")
REDIS_URL = "redis://127.0.0.1:6379/0"
PG = {"PGHOST": "127.0.0.1", "PGPORT": "5432", "PGUSER": "postgres"}
BUILD_RUN = "celery-build"

pytestmark = pytest.mark.slow


# the kit's poll, once a second: tolerant of a poll the busy api-server did not answer
_wait = functools.partial(wait, interval=1)


@dataclass
class Stack:
    base: str
    home: Path
    stack_id: str
    aws_url: str
    output: list[str]
    token: str = field(default="", repr=False)
    clients: dict[str, Any] = field(default_factory=dict, repr=False)

    def call(self, path: str, method: str = "GET", body: Any = None) -> Any:
        request = urllib.request.Request(
            self.base + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        # generous: a busy machine's api-server (one worker) may take its time
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())

    def client(self, service: str) -> Any:
        if service not in self.clients:
            self.clients[service] = boto3.client(
                service,
                endpoint_url=self.aws_url,
                region_name="us-east-1",
                aws_access_key_id="local-aws-key-id",
                aws_secret_access_key="local-aws-not-a-secret",
            )
        return self.clients[service]

    def task(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return self.call(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")

    def log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        events = self.call(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        )["content"]
        return "\n".join(e if isinstance(e, str) else json.dumps(e) for e in events)

    def trigger(self, dag_id: str, run_id: str, logical_date: str) -> None:
        self.call(f"/api/v2/dags/{dag_id}", "PATCH", {"is_paused": False})
        self.call(
            f"/api/v2/dags/{dag_id}/dagRuns",
            "POST",
            {"logical_date": logical_date, "dag_run_id": run_id},
        )

    def wait_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        def ended() -> str | None:
            state = self.call(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
            return state if state in ("success", "failed") else None

        state = _wait(ended, f"{dag_id} run {run_id} to end", timeout, interval=2)
        if state != "success":
            tis = self.call(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
            failed = [t for t in tis["task_instances"] if t["state"] != "success"]
            logs = "\n".join(
                f"--- {t['task_id']}[{t['map_index']}] {t['state']}\n"
                + (
                    self.log(dag_id, run_id, t["task_id"], t["try_number"])[-2000:]
                    if t["try_number"]
                    else ""
                )
                for t in failed
                if t["map_index"] == -1
            )
            raise AssertionError(f"{dag_id} run {run_id} ended {state}:\n{logs}")
        return state

    def worker_pid(self) -> int | None:
        try:
            return int((self.home / "stack" / "celery-worker.pid").read_text())
        except (OSError, ValueError):
            return None

    def active_on_worker(self) -> list[dict[str, Any]]:
        """What the stack's Celery worker is running now, asked through its control channel
        (`celery inspect active`) under the stack's key prefix."""
        from celery import Celery

        app = Celery(
            broker=REDIS_URL, broker_transport_options={"global_keyprefix": f"{self.stack_id}:"}
        )
        try:
            replies = app.control.inspect(
                destination=[f"{self.stack_id}@{socket.gethostname()}"], timeout=5
            ).active()
        finally:
            app.close()
        assert replies, "the Celery worker did not answer `inspect active`"
        return [task for tasks in replies.values() for task in tasks]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not (reachable(5432) and reachable(6379)):
        # they run on every machine this project is built and tested on (CI's too): their
        # absence is a broken machine, not a reason to test less
        pytest.fail("needs Postgres on 127.0.0.1:5432 and Redis on 127.0.0.1:6379: start them")
    tmp = tmp_path_factory.mktemp("celery-stack")
    airflow_port, aws_port = free_port(), free_port()
    stack_id = f"airflow_test_{uuid.uuid4().hex[:10]}"
    today = dt.datetime.now(dt.UTC).date()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_", "MLOPS_"))}
    env.update(
        PG,
        STACK="celery",
        AIRFLOW_STACK_ID=stack_id,
        AIRFLOW_PORT=str(airflow_port),
        LOCAL_AWS_PORT=str(aws_port),
        AIRFLOW_HOME=str(tmp / "airflow"),
        LOCAL_AWS_DATA_DIR=str(tmp / "local-aws"),
        # a dead worker's task is noticed after 20 s without a heartbeat (default 5 min)
        AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="20",
        AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL="5",
        # A deferrable task holds its worker only for the instant between CreateJob and the
        # deferral, too short to kill the worker in; waiting in the worker slot (as where no
        # triggerer runs) puts the task in the worker for the job's whole run. The triggerer
        # is still shown holding a deferred task (the partition sensor) without a slot.
        MLOPS_JOBS_DEFERRABLE="false",
        # a small build: three days of data, two training jobs
        MLOPS_TRAINING_WINDOW_DAYS="3",
        MLOPS_TUNING_MAX_JOBS="2",
        # which makes a weaker model than the demo's week (AUC about 0.78): the gate checks a
        # looser bound here, this module being about the topology, not the model
        MLOPS_GATE_THRESHOLDS='{"auc": ">=0.6", "pr_auc": ">=0.3"}',
        # batch_inference starts today: unpausing it schedules no catch-up of past days
        MLOPS_BATCH_START_DATE=today.isoformat(),
    )
    up = subprocess.Popen(
        [str(ROOT / "scripts" / "up")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(up.stdout or []), daemon=True).start()
    stack = Stack(
        f"http://127.0.0.1:{airflow_port}",
        tmp / "airflow",
        stack_id,
        f"http://127.0.0.1:{aws_port}",
        output,
    )
    try:
        # the closing line of what make up prints, once Airflow answers
        _wait(
            lambda: "Ctrl-C here" in "".join(output) or up.poll() is not None,
            "make up STACK=celery to print the login",
            600,
        )
        text = "".join(output)
        found = LOGIN.search(text)
        assert found, text
        assert f"metadata DB  postgresql://postgres@127.0.0.1:5432/{stack_id}" in text, text
        user, password = found.groups()
        request = urllib.request.Request(
            f"{stack.base}/auth/token",
            data=json.dumps({"username": user, "password": password}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            stack.token = json.loads(response.read())["access_token"]
        _wait(lambda: _has_dags(stack), "the DAGs in the API", 300)
        yield stack
    finally:
        down = subprocess.run(
            [str(ROOT / "scripts" / "down")], cwd=ROOT, env=env, capture_output=True, text=True
        )
        try:
            up.wait(timeout=180)
        except subprocess.TimeoutExpired:
            up.kill()
        _drop(stack_id)
    assert "stopped: Airflow local_aws" in down.stdout, down.stdout + down.stderr


def _has_dags(stack: Stack) -> bool:
    try:
        for dag_id in ("model_build", "batch_inference"):
            stack.call(f"/api/v2/dags/{dag_id}")
        return True
    except urllib.error.HTTPError:
        return False


def _drop(stack_id: str) -> None:
    """The stack's database and Redis keys: nothing of the test is left on the servers."""
    import redis

    env = {**os.environ, **PG}
    subprocess.run(
        [
            "psql",
            "-d",
            "postgres",
            "-q",
            "-c",
            f'DROP DATABASE IF EXISTS "{stack_id}" WITH (FORCE)',
        ],
        env=env,
        check=True,
    )
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{stack_id}:*"))
    if keys:
        client.delete(*keys)


def test_model_build_recovers_from_a_killed_worker_without_a_second_job(stack: Stack) -> None:
    sm = stack.client("sagemaker")
    stack.trigger("model_build", BUILD_RUN, f"{DEMO_END.isoformat()}T00:00:00Z")

    def tuning_in_worker() -> bool:
        running = stack.task("model_build", BUILD_RUN, "tune")["state"] == "running"
        jobs = sm.list_hyper_parameter_tuning_jobs(StatusEquals="InProgress")
        return running and bool(jobs["HyperParameterTuningJobSummaries"])

    _wait(tuning_in_worker, "tune running in the worker while its tuning job is InProgress", 900)
    killed = stack.worker_pid()
    assert killed is not None
    # the whole worker: its main process, pool and the task processes under them, as when
    # the machine or container under it dies
    os.killpg(killed, signal.SIGKILL)
    replacement = _wait(
        lambda: (pid := stack.worker_pid()) not in (None, killed) and pid,
        "a new Celery worker",
        120,
    )
    assert replacement != killed

    stack.wait_run("model_build", BUILD_RUN, 900)
    tune = stack.task("model_build", BUILD_RUN, "tune")
    assert tune["try_number"] == 2, tune  # the first try died with its worker
    retry_log = stack.log("model_build", BUILD_RUN, "tune", 2)
    assert re.search(r"re-attaching to Tuning job|Tuning job \S+ already completed", retry_log), (
        retry_log[-3000:]
    )
    jobs = sm.list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"]
    assert len(jobs) == 1, [j["HyperParameterTuningJobName"] for j in jobs]
    assert jobs[0]["HyperParameterTuningJobStatus"] == "Completed"


def test_batch_inference_scores_a_day_and_its_deferred_sensor_holds_no_worker_slot(
    stack: Stack,
) -> None:
    sm, s3 = stack.client("sagemaker"), stack.client("s3")
    package = sm.list_model_packages(ModelPackageGroupName="card-fraud")["ModelPackageSummaryList"]
    assert len(package) == 1, "model_build registered no package (see the test before)"
    # the approval a person gives in the registry (or model_deploy's await_approval)
    sm.update_model_package(
        ModelPackageArn=package[0]["ModelPackageArn"], ModelApprovalStatus="Approved"
    )
    day = dt.datetime.now(dt.UTC).date()
    run_id = f"celery-score-{day.isoformat()}"
    stack.trigger("batch_inference", run_id, f"{day.isoformat()}T00:00:00Z")

    # the day's partition is not there yet: the sensor waits in the triggerer
    def deferred() -> bool:
        return stack.task("batch_inference", run_id, "wait_for_partition")["state"] == "deferred"

    _wait(deferred, "wait_for_partition deferred", 300)
    sensor = stack.task("batch_inference", run_id, "wait_for_partition")["id"]

    # The worker lets go of the task once it has deferred (a moment after the state says so,
    # while the task's process exits): wait for that, with the sensor still deferred. A
    # sensor that held its slot while deferred would keep this from ever being true.
    def slot_free() -> bool:
        holding = [t for t in stack.active_on_worker() if sensor in json.dumps(t.get("args"))]
        return not holding and deferred()

    _wait(slot_free, "the deferred sensor to hold no worker slot", 120, interval=2)
    assert deferred(), "the sensor left the triggerer (its partition is not there yet)"

    datagen.write_partition(s3, "mlops-local", day, 2000, seed=DEMO_SEED)
    stack.wait_run("batch_inference", run_id, 600)

    published = s3.list_objects_v2(Bucket="mlops-local", Prefix=f"predictions/dt={day}/")
    assert published.get("KeyCount", 0) >= 2, published  # the scores and their manifest
    transforms = sm.list_transform_jobs()["TransformJobSummaries"]
    assert [j["TransformJobStatus"] for j in transforms] == ["Completed"]


def test_no_credentials_in_the_runs_logs_xcom_or_rendered_templates(stack: Stack) -> None:
    """Both runs above, as a data engineer could read them: every task log file on disk,
    every XCom and every rendered template field through the REST API. The connection's
    credentials appear in none, and no ordinary word was masked as a secret."""
    secret, key_id = "local-aws-not-a-secret", "local-aws-key-id"
    logs = [p for p in (stack.home / "logs").rglob("*") if p.is_file()]
    assert len(logs) >= 10, "the runs left too few task logs to judge"
    for path in logs:
        text = path.read_text(errors="replace")
        assert secret not in text and key_id not in text, path
        assert "***" not in text, f"{path}: a word masked as a secret"

    day_runs = stack.call("/api/v2/dags/batch_inference/dagRuns")["dag_runs"]
    runs = [("model_build", BUILD_RUN)] + [("batch_inference", r["dag_run_id"]) for r in day_runs]
    seen = 0
    for dag_id, run_id in runs:
        instances = stack.call(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        for ti in instances["task_instances"]:
            task = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}"
            index = ti.get("map_index", -1)
            instance = stack.call(task if index < 0 else f"{task}/{index}")
            entries = stack.call(f"{task}/xcomEntries?map_index={index}")["xcom_entries"]
            values = [
                stack.call(f"{task}/xcomEntries/{e['key']}?map_index={index}") for e in entries
            ]
            seen += len(values)
            for blob in (json.dumps(instance.get("rendered_fields")), json.dumps(values)):
                assert secret not in blob and key_id not in blob, (dag_id, ti["task_id"])
    assert seen >= 5, "the runs left too few XComs to judge"
