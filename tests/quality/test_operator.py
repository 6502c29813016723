"""DataQualityOperator in dag.test() against local_aws: the gate as a DAG author sees it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from mlops_pipeline.quality.history import MetricHistoryStore
from tests.quality.data import put_partition, to_csv, transactions

DAY = "2026-01-05"
pytestmark = pytest.mark.slow


@pytest.fixture
def env(aws_conn, bucket, monkeypatch):
    monkeypatch.setenv("MLOPS_BUCKET", bucket)
    monkeypatch.setenv("MLOPS_CHECK_INTERVAL_SECONDS", "1")
    return bucket


def run_gate(dag_id: str, bucket: str, **operator_kwargs: Any):
    """model_build's first two steps: the gate, then a task that must only run after it."""
    from airflow.sdk import DAG, task

    from mlops_pipeline.operators.data_quality import DataQualityOperator
    from tests.conftest import serialize_dag

    with DAG(dag_id, schedule=None, start_date=dt.datetime(2026, 1, 1)) as dag:
        gate = DataQualityOperator(
            task_id="validate_training_data", dataset="transactions", **operator_kwargs
        )

        @task
        def preprocess() -> None:
            import boto3

            boto3.client("s3").put_object(Bucket=bucket, Key="features/out.csv", Body=b"x")

        gate >> preprocess()
    serialize_dag(dag)
    return dag.test(logical_date=dt.datetime.fromisoformat(f"{DAY}T00:00:00+00:00"))


def downstream_ran(s3, bucket: str) -> bool:
    return "Contents" in s3.list_objects_v2(Bucket=bucket, Prefix="features/")


def seed_history(s3, bucket: str, rows: int, days: int = 5) -> None:
    store = MetricHistoryStore(s3, bucket)
    day = dt.date.fromisoformat(DAY)
    for back in range(days, 0, -1):
        metrics = {"row_count": rows, "columns": {"distance_from_home_km": {"completeness": 1.0}}}
        store.put(
            "transactions", (day - dt.timedelta(days=back)).isoformat(), metrics, status="passed"
        )


def test_clean_partition_passes_records_history_and_runs_downstream(env, s3, capfd):
    put_partition(s3, env, DAY, to_csv(transactions(300)))
    seed_history(s3, env, rows=280)

    run = run_gate("t_dq_pass", env)

    assert run.state == "success"
    assert downstream_ran(s3, env)
    entry = MetricHistoryStore(s3, env).get("transactions", DAY)
    assert entry.status == "passed" and entry.metrics["row_count"] == 300
    out = capfd.readouterr().out
    assert "Data quality gate PASSED for dataset 'transactions', partition 2026-01-05" in out
    assert "anomaly check row_count (relative_rate_of_change): bounds [140, 560]" in out


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "sync"])
def test_corrupted_partition_fails_with_the_summary_and_stops_downstream(
    env, s3, capfd, deferrable
):
    df = transactions(300)
    df["amount"] = df["amount"].astype(object)
    df.loc[:4, "amount"] = -3.0
    put_partition(s3, env, DAY, to_csv(df))

    run = run_gate(f"t_dq_fail_{deferrable}", env, deferrable=deferrable, retries=2)

    assert run.state == "failed"
    assert not downstream_ran(s3, env)
    out = capfd.readouterr().out
    assert "Data quality gate FAILED for dataset 'transactions', partition 2026-01-05" in out
    assert (
        "ERROR    expect_column_values_to_be_between on amount: observed 5 of 300 rows "
        "(1.67%) unexpected, e.g. [-3.0]; expected (0, +inf)"
    ) in out
    # the page in the dataset's one site (the task's Data Docs link opens it in the UI)
    assert (
        f"Data Docs: s3://{env}/quality/data_docs/transactions/validations/dt=2026-01-05/dq-" in out
    )
    # bad data is not retried: one job, one history entry saying it failed
    jobs = [line for line in out.splitlines() if "in processing job dq-transactions-" in line]
    assert len(jobs) == 1
    assert MetricHistoryStore(s3, env).get("transactions", DAY).status == "failed"


def test_row_count_drop_against_history_fails_although_the_suite_passes(env, s3, capfd):
    put_partition(s3, env, DAY, to_csv(transactions(300)))
    seed_history(s3, env, rows=1000)

    run = run_gate("t_dq_anomaly", env)

    assert run.state == "failed" and not downstream_ran(s3, env)
    out = capfd.readouterr().out
    assert (
        "ERROR    anomaly in row_count (relative_rate_of_change): observed 300; expected "
        "[500, 2,000] (previous value 1,000 × allowed rate)"
    ) in out
    assert "1 error" in out


def test_history_before_leaves_days_of_the_same_window_out(env, s3, capfd):
    """A window's days are gated in parallel: with history_before at the window's start, a
    day is judged on the history before the window whichever window day finished first."""
    put_partition(s3, env, DAY, to_csv(transactions(400)))
    seed_history(s3, env, rows=400)
    window_start = (dt.date.fromisoformat(DAY) - dt.timedelta(days=1)).isoformat()
    # the window's first day finished first, with far more rows
    MetricHistoryStore(s3, env).put(
        "transactions",
        window_start,
        {"row_count": 2000, "columns": {"distance_from_home_km": {"completeness": 1.0}}},
        status="passed",
    )
    assert run_gate("t_dq_order", env).state == "failed"
    assert "observed 400; expected [1,000, 4,000]" in capfd.readouterr().out

    # against the days before the window (400 rows each) the same day passes
    assert run_gate("t_dq_order_window", env, history_before=window_start).state == "success"


def test_null_rate_jump_fails_although_the_static_warning_would_pass(env, s3, capfd):
    df = transactions(400)
    df["distance_from_home_km"] = df["distance_from_home_km"].astype(object)
    df.loc[:19, "distance_from_home_km"] = None  # 5 % nulls: a static Warning only
    put_partition(s3, env, DAY, to_csv(df))
    seed_history(s3, env, rows=400)

    run = run_gate("t_dq_nulls", env)

    assert run.state == "failed"
    out = capfd.readouterr().out
    assert "ERROR    anomaly in completeness(distance_from_home_km) (absolute_change)" in out
    assert "expected non-null in at least 98% of rows" in out
    assert "WARNING  expect_column_values_to_not_be_null on distance_from_home_km" in out


def test_warning_passes_and_alerts_through_callable_and_notifier(env, s3):
    from airflow.sdk import BaseNotifier

    alerts: list[Any] = []

    class Recorder(BaseNotifier):
        template_fields = ("message",)

        def __init__(self, message: str):
            super().__init__()
            self.message = message

        def notify(self, context):
            alerts.append(("notifier", self.message))

    df = transactions(300)
    df.loc[: len(df) // 2, "is_fraud"] = 1  # fraud rate ~50 %: a Warning in the suite
    put_partition(s3, env, DAY, to_csv(df))

    run = run_gate(
        "t_dq_warn",
        env,
        on_warning=[
            lambda report, context: alerts.append(("callable", report)),
            Recorder(
                "{{ data_quality.dataset }} {{ data_quality.status }}: {{ data_quality.warnings }}"
            ),
        ],
    )

    assert run.state == "success" and downstream_ran(s3, env)
    (kind, report), notified = alerts
    assert kind == "callable" and report["status"] == "warning" and report["warnings"] == 1
    assert "WARNING  expect_column_mean_to_be_between on is_fraud" in report["summary"]
    assert report["data_docs_uri"].endswith(".html")
    assert notified == ("notifier", "transactions warning: 1")
    assert MetricHistoryStore(s3, env).get("transactions", DAY).status == "warning"


def test_missing_partition_fails_at_once_naming_it(env, s3, sm, capfd):
    run = run_gate("t_dq_missing", env)

    assert run.state == "failed"
    out = capfd.readouterr().out
    assert (
        "Data quality gate FAILED for dataset 'transactions', partition 2026-01-05: missing "
        f"partition: no data files under s3://{env}/raw/transactions/dt=2026-01-05/"
    ) in out
