"""The Airflow listener that records each DAG run's cost when the run ends.

Registered by the project's plugin (``plugins/mlops_plugin.py``), so no DAG carries an
extra task. The scheduler calls it inside its loop: it only reads the run's identity and
the settings, then hands the work to one background thread and returns. That thread finds
the run's jobs by their tags, writes the record to S3, logs the summary and checks the
budget and the cost history; anything that goes wrong is logged, never raised. The work
per run is bounded: botocore timeouts and few retries on every call, at most
``MAX_PENDING`` runs waiting (more are skipped with a warning).

A run that fails without a failed task (timed out, deadlocked) is alerted from here too;
failed tasks alert through their own callbacks (``mlops_pipeline.notifications``).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow.listeners import hookimpl

if TYPE_CHECKING:
    from mlops_pipeline.config import Settings
    from mlops_pipeline.cost.record import RunInfo

log = logging.getLogger(__name__)
MAX_PENDING = 100

_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlops-cost")
_lock = threading.Lock()
_pending: list[Future[dict[str, Any] | None]] = []


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    submit(dag_run, "success")


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    submit(dag_run, "failed")
    if msg in RUN_LEVEL_FAILURES:
        _alert_run_failure(dag_run, msg)


# a run that fails without a failed task (its tasks' own alerts cover the rest)
RUN_LEVEL_FAILURES = {
    "timed_out": "the run exceeded its dagrun_timeout",
    "all_tasks_deadlocked": "no task could be scheduled (deadlocked dependencies)",
}


def _alert_run_failure(dag_run: Any, msg: str) -> None:
    try:
        from mlops_pipeline.config import load_settings
        from mlops_pipeline.notifications import Alert

        logical = getattr(dag_run, "logical_date", None)
        alert = Alert(
            kind="run_failure",
            title=f"{dag_run.dag_id} run failed",
            reason=RUN_LEVEL_FAILURES[msg],
            facts={
                "DAG": dag_run.dag_id,
                "Run": dag_run.run_id,
                "Logical date": logical.isoformat() if logical else "none",
            },
        )
        settings = load_settings()
        with _lock:
            _pending.append(_pool.submit(_send, alert, settings))
    except Exception:
        log.exception("run failure alert could not be queued")


def _send(alert: Any, settings: Settings) -> None:
    from mlops_pipeline.notifications import send

    send(alert, settings)


def submit(dag_run: Any, state: str) -> Future[dict[str, Any] | None] | None:
    """Queue the run's cost record; returns at once (None when it could not be queued)."""
    try:
        from mlops_pipeline.config import load_settings
        from mlops_pipeline.cost.record import RunInfo

        now = dt.datetime.now(dt.UTC)
        run = RunInfo(
            dag_id=dag_run.dag_id,
            run_id=dag_run.run_id,
            state=state,
            start=dag_run.start_date or dag_run.queued_at or now,
            end=dag_run.end_date or now,
            logical_date=getattr(dag_run, "logical_date", None),
        )
        settings = load_settings()  # now: the environment the run ended in
        with _lock:
            _pending[:] = [f for f in _pending if not f.done()]
            if len(_pending) >= MAX_PENDING:
                log.warning(
                    "cost of %s run %s not recorded: %d runs already waiting",
                    run.dag_id,
                    run.run_id,
                    len(_pending),
                )
                return None
            future = _pool.submit(record_cost, run, settings)
            _pending.append(future)
        return future
    except Exception:
        log.exception("cost listener: could not queue the run's cost record")
        return None


def wait_idle(timeout: float) -> bool:
    """Wait until every queued record is done (a process about to exit, the demo, tests)."""
    deadline = time.monotonic() + timeout
    while True:
        with _lock:
            pending = [f for f in _pending if not f.done()]
        if not pending:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        _wait(pending[0], remaining)


def _wait(future: Future[Any], timeout: float) -> None:
    try:
        future.result(timeout=timeout)
    except Exception:
        pass  # record_cost logs its own errors; a timeout is reported by the caller's loop


def clients(settings: Settings) -> tuple[Any, Any]:
    """SageMaker and S3 clients through the Amazon provider's hooks (the aws connection),
    with short timeouts and few retries: the record must never hang."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
    from botocore.config import Config

    timeout = max(1, int(settings.cost_timeout_seconds / 4))
    config = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"max_attempts": 3, "mode": "standard"},
    )
    sm = SageMakerHook(aws_conn_id=settings.aws_conn_id, config=config).conn
    s3 = S3Hook(aws_conn_id=settings.aws_conn_id, config=config).get_conn()
    return sm, s3


def record_cost(run: RunInfo, settings: Settings) -> dict[str, Any] | None:
    from mlops_pipeline.cost import record

    started = time.monotonic()
    try:
        sm, s3 = clients(settings)
        rec = record.collect(sm, s3, settings, run)
    except Exception:
        log.exception("cost of %s run %s could not be recorded", run.dag_id, run.run_id)
        return None
    log.info("%s", record.summary(rec))
    try:
        from mlops_pipeline.cost import budget

        budget.check_and_alert(s3, settings, rec)
    except Exception:
        log.exception("cost check of %s run %s failed", run.dag_id, run.run_id)
    elapsed = time.monotonic() - started
    if elapsed > settings.cost_timeout_seconds:
        log.warning(
            "the cost record of %s run %s took %.1f s (bound %s s)",
            run.dag_id,
            run.run_id,
            elapsed,
            settings.cost_timeout_seconds,
        )
    return rec


def report_cost(context: Any) -> dict[str, Any]:
    """The run's cost so far, from a task of the run itself (e.g. batch_inference's
    ``report_cost``): the record is written as the listener would (the listener's, at run
    end, replaces it) and a small XCom comes back: the summary, the totals and the URI."""
    from mlops_pipeline.config import load_settings
    from mlops_pipeline.cost import record

    dag_run = context["dag_run"]
    now = dt.datetime.now(dt.UTC)
    run = record.RunInfo(
        dag_id=dag_run.dag_id,
        run_id=dag_run.run_id,
        state="running",
        start=dag_run.start_date or now,
        end=now,
        logical_date=getattr(dag_run, "logical_date", None),
    )
    settings = load_settings()
    sm, s3 = clients(settings)
    rec = record.collect(sm, s3, settings, run)
    line = record.summary(rec)
    log.info("%s", line)
    return {
        "summary": line,
        "total_usd": rec["total_usd"],
        "known_usd": rec["known_usd"],
        "jobs": len(rec["jobs"]),
        "uri": rec["uri"],
    }
