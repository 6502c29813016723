"""Failure alerts through the Slack provider's real webhook client, received by a real HTTP
server on 127.0.0.1; with no connection they go to the alerts file; with the receiver down
or erroring, delivery is retried a bounded number of times and the task's outcome stands."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from mlops_pipeline.config import load_settings
from mlops_pipeline.notifications import Alert, alerting_args, failure_alert, send
from mlops_pipeline.quality import severity
from tests.conftest import free_port, serialize_dag, unique
from tests.notifications.receiver import TOKEN, slack_connection

DAY = dt.datetime(2026, 3, 7, tzinfo=dt.UTC)


def failing_dag(error: Exception):
    from airflow.sdk import DAG, task

    with DAG(
        unique("t_alerts").replace("-", "_"),
        schedule=None,
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        default_args={**alerting_args(), "retries": 0},
    ) as dag:

        @task
        def train_model() -> None:
            raise error

        @task
        def fine() -> str:
            return "ok"

        fine()
        train_model()
    serialize_dag(dag)
    return dag


def text_of(body: dict[str, Any]) -> str:
    return json.dumps(body)


def test_a_failed_task_reaches_slack_with_dag_task_date_try_reason_and_log(
    airflow_db, receiver, alerts_file, monkeypatch
):
    slack_connection(monkeypatch, receiver.port)
    dag = failing_dag(RuntimeError("the feature store is unreachable\n  a long traceback-ish tail"))
    run = dag.test(logical_date=DAY)

    assert run.state == "failed"
    [body] = receiver.wait_for(1)
    assert receiver.paths == [f"/services/{TOKEN}"]  # the hook's URL: host + token
    blocks = body["blocks"]
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": f"{dag.dag_id}.train_model failed"},
    }
    facts = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in blocks[1]["fields"]}
    assert facts == {
        "*DAG*": dag.dag_id,
        "*Task*": "train_model",
        "*Logical date*": DAY.isoformat(),
        "*Try*": "1",
    }
    assert blocks[2]["text"]["text"] == "*Reason*\nthe feature store is unreachable"
    link = blocks[-1]["elements"][0]["url"]
    assert f"/dags/{dag.dag_id}/runs/" in link and link.endswith("/tasks/train_model?try_number=1")
    assert "traceback-ish" not in text_of(body)  # the first line only
    assert TOKEN not in text_of(body) and "s3cr3t" not in text_of(body)
    assert len(text_of(body)) < 2000
    assert body["text"].startswith(f"{dag.dag_id}.train_model failed")  # the fallback
    assert not alerts_file.exists()  # delivered: nothing for the file


def test_a_data_quality_failure_lists_the_failed_expectations_and_observed_values(
    airflow_db, receiver, alerts_file, monkeypatch
):
    from airflow.sdk.exceptions import AirflowFailException

    slack_connection(monkeypatch, receiver.port)
    verdict = severity.evaluate(
        {
            "contract": 1,
            "dataset": "transactions",
            "partition": "2026-03-06",
            "status": "validated",
            "row_count": 3000,
            "expectations": [
                {
                    "type": "expect_column_values_to_be_between",
                    "column": "amount",
                    "severity": "error",
                    "success": False,
                    "observed": {
                        "element_count": 3000,
                        "unexpected_count": 150,
                        "unexpected_percent": 5.0,
                        "unexpected_sample": [-12.5, -3.0],
                    },
                    "bounds": {"min_value": 0, "strict_min": True},
                },
                {
                    "type": "expect_table_row_count_to_be_between",
                    "column": None,
                    "severity": "error",
                    "success": False,
                    "observed": {"value": 400},
                    "bounds": {"min_value": 500.0, "max_value": 2000.0},
                },
            ],
        }
    )
    dag = failing_dag(AirflowFailException(verdict.summary("s3://b/result.json")))
    assert dag.test(logical_date=DAY).state == "failed"

    [body] = receiver.wait_for(1)
    reason = body["blocks"][2]["text"]["text"]
    assert "Data quality gate FAILED for dataset 'transactions', partition 2026-03-06" in reason
    listed = body["blocks"][3]["text"]["text"].split("\n")
    assert len(listed) == 2
    assert "amount" in listed[0] and "150" in listed[0] and "-12.5" in listed[0]
    assert "row_count" in listed[1] or "400" in listed[1]
    assert "observed" in listed[1]


def test_without_a_slack_connection_the_alert_goes_to_the_log_and_the_alerts_file(
    airflow_db, alerts_file, monkeypatch, caplog
):
    monkeypatch.setenv("MLOPS_SLACK_WEBHOOK_CONN_ID", "no_such_slack")
    dag = failing_dag(ValueError("bad input"))
    assert dag.test(logical_date=DAY).state == "failed"

    [entry] = [json.loads(line) for line in alerts_file.read_text().splitlines()]
    assert entry["kind"] == "task_failure" and entry["reason"] == "bad input"
    assert entry["facts"]["Task"] == "train_model" and entry["delivered"] == "file"


@pytest.mark.parametrize("failure", ["down", "erroring"])
def test_slack_down_or_erroring_is_retried_a_bounded_number_of_times_and_the_outcome_stands(
    airflow_db, receiver, alerts_file, monkeypatch, failure
):
    if failure == "down":
        slack_connection(monkeypatch, free_port())  # nothing listens there
    else:
        receiver.status = 500
        slack_connection(monkeypatch, receiver.port)
    dag = failing_dag(ValueError("bad input"))
    run = dag.test(logical_date=DAY)

    # the failing task failed (not worse), the other task succeeded: nothing changed
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {"train_model": "failed", "fine": "success"}
    assert run.state == "failed"
    if failure == "erroring":
        assert len(receiver.wait_for(3)) == 3  # one try and MLOPS_ALERT_RETRIES=2 retries
    [entry] = [json.loads(line) for line in alerts_file.read_text().splitlines()]
    assert entry["delivered"] == "file" and entry["slack_error"]
    assert TOKEN not in alerts_file.read_text()


def test_send_never_raises_and_the_alert_is_short(receiver, alerts_file, monkeypatch):
    slack_connection(monkeypatch, receiver.port)
    alert = Alert(
        kind="cost",
        title="model_build run cost alert",
        reason="cost $3.0000 is over the budget of $2.0000 per run",
        facts={"DAG": "model_build", "Run": "manual__1", "Cost": "$3.0000", "Budget": "$2.0000"},
        details=["tune: $2.5000"],
    )
    assert send(alert, load_settings()) == "slack"
    [body] = receiver.wait_for(1)
    assert "over the budget" in body["blocks"][2]["text"]["text"]


def test_the_alert_of_a_context_without_a_logical_date_names_the_run():
    class TI:
        dag_id, task_id, run_id, map_index, try_number = "d", "t", "manual__x", 2, 3
        log_url = "http://localhost:8080/dags/d/runs/manual__x/tasks/t/mapped/2?try_number=3"

    alert = failure_alert({"ti": TI(), "logical_date": None, "exception": KeyError("k")})
    assert alert.facts == {
        "DAG": "d",
        "Task": "t[2]",
        "Logical date": "none (run manual__x)",
        "Try": "3",
    }
    assert alert.reason == "'k'"


def test_a_rollback_and_drift_reach_slack_with_the_step_the_metrics_and_the_top_features(
    receiver, alerts_file, monkeypatch
):
    from mlops_pipeline.notifications import drift_alert, rollback_alert

    slack_connection(monkeypatch, receiver.port)
    settings = load_settings()
    rollback = rollback_alert(
        "model_deploy",
        "card-fraud-prod",
        "step 2 of 4 (25% canary)",
        {"canary error rate": 0.125, "baseline error rate": 0.01, "canary p99 latency ms": 412.0},
        "canary error rate 0.125 is above the budget 0.05",
    )
    drift = drift_alert(
        "batch_inference",
        "2026-03-07",
        [("amount", 0.41), ("hour", 0.05), ("merchant_risk", 0.27), ("age", 0.31)],
        threshold=0.2,
        statistic="PSI",
    )
    assert send(rollback, settings) == "slack" and send(drift, settings) == "slack"
    first, second = receiver.wait_for(2)

    assert (
        first["blocks"][0]["text"]["text"] == "model_deploy: canary on card-fraud-prod rolled back"
    )
    assert {"type": "mrkdwn", "text": "*Step*\nstep 2 of 4 (25% canary)"} in first["blocks"][1][
        "fields"
    ]
    assert first["blocks"][3]["text"]["text"].split("\n") == [
        "• canary error rate: 0.125",
        "• baseline error rate: 0.01",
        "• canary p99 latency ms: 412",
    ]
    assert second["blocks"][2]["text"]["text"] == (
        "*Reason*\n3 feature(s) above the PSI threshold 0.2; top: amount"
    )
    assert second["blocks"][3]["text"]["text"].split("\n")[:3] == [
        "• amount: PSI 0.41",
        "• age: PSI 0.31",
        "• merchant_risk: PSI 0.27",
    ]
