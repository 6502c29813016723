"""The cost listener hands the work to its own thread and returns; failures are logged."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from types import SimpleNamespace

from mlops_pipeline.cost import listener, record
from tests.conftest import unique


def dag_run(**extra):
    now = dt.datetime.now(dt.UTC)
    return SimpleNamespace(
        dag_id="cost_dag",
        run_id=unique("manual__listener"),
        start_date=now - dt.timedelta(minutes=1),
        end_date=now,
        queued_at=None,
        logical_date=None,
        **extra,
    )


def test_the_hook_returns_before_the_work_is_done(aws_conn, bucket, monkeypatch):
    monkeypatch.setenv("MLOPS_BUCKET", bucket)
    release, entered = threading.Event(), threading.Event()
    real = record.collect

    def slow_collect(*args, **kwargs):
        entered.set()
        assert release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(record, "collect", slow_collect)
    future = listener.submit(dag_run(), "success")
    assert future is not None
    assert entered.wait(60)
    assert not future.done()  # the scheduler's loop would already be on its next task
    release.set()
    rec = future.result(timeout=60)
    assert rec is not None and rec["jobs"] == [] and rec["uri"].startswith(f"s3://{bucket}/cost/")
    assert listener.wait_idle(timeout=60)


def test_an_error_is_logged_never_raised(aws_conn, monkeypatch, caplog):
    monkeypatch.setenv("MLOPS_BUCKET", unique("no-such-bucket"))
    run = dag_run()
    with caplog.at_level(logging.ERROR, logger=listener.__name__):
        listener.on_dag_run_failed(dag_run=run, msg="task_failure")  # the hook itself
        assert listener.wait_idle(timeout=60)
    assert f"cost of cost_dag run {run.run_id} could not be recorded" in caplog.text
    assert "NoSuchBucket" in caplog.text


def test_a_broken_dag_run_object_does_not_raise(caplog):
    with caplog.at_level(logging.ERROR, logger=listener.__name__):
        assert listener.submit(object(), "success") is None
    assert "could not queue" in caplog.text
