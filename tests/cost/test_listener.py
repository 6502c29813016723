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


def test_a_run_over_its_budget_alerts_with_the_figures(
    aws_conn, sm, s3, bucket, receiver, alerts_file, monkeypatch
):
    from mlops_pipeline import naming
    from tests.conftest import wait_for
    from tests.jobkit import processing_request
    from tests.notifications.receiver import TOKEN, slack_connection

    monkeypatch.setenv("MLOPS_BUCKET", bucket)
    monkeypatch.setenv("MLOPS_COST_BUDGETS", '{"cost_dag": "0"}')
    slack_connection(monkeypatch, receiver.port)
    run = dag_run()
    # a real (short) job: its span is what the run is billed for
    name = unique("cost-budget")
    key = f"{name}/input/code/prep.py"
    s3.put_object(Bucket=bucket, Key=key, Body=b"print('working')\n")
    sm.create_processing_job(
        **processing_request(
            name,
            code_uri=f"s3://{bucket}/{key}",
            Tags=naming.airflow_tags("cost_dag", run.run_id, "prepare"),
        )
    )
    wait_for(lambda: sm.describe_processing_job(ProcessingJobName=name), "ProcessingJobStatus")
    run.end_date = dt.datetime.now(dt.UTC)

    listener.on_dag_run_success(dag_run=run, msg="success")
    [body] = receiver.wait_for(1, timeout=60)
    assert body["blocks"][0]["text"]["text"] == "cost_dag run cost alert"
    reason = body["blocks"][2]["text"]["text"]
    assert "is over the budget of $0.0000 per run" in reason
    facts = {
        f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in body["blocks"][1]["fields"]
    }
    assert facts["*Run*"] == run.run_id and facts["*Budget*"] == "$0.0000"
    assert "prepare: $" in body["blocks"][3]["text"]["text"]
    assert TOKEN not in str(body)
    assert listener.wait_idle(timeout=60)


def test_a_task_of_the_run_reports_its_cost_so_far_as_a_small_xcom(
    aws_conn, airflow_db, s3, bucket, monkeypatch
):
    from airflow.sdk import DAG, task

    from mlops_pipeline.cost.listener import report_cost
    from tests.conftest import serialize_dag, wait_for
    from tests.jobkit import processing_request

    monkeypatch.setenv("MLOPS_BUCKET", bucket)
    key = "code/prep.py"
    s3.put_object(Bucket=bucket, Key=key, Body=b"print('scoring')\n")

    with DAG(
        unique("t_report_cost").replace("-", "_"),
        schedule=None,
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    ) as dag:

        @task
        def transform(**context) -> str:
            from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

            from mlops_pipeline import naming

            ti = context["ti"]
            sm = SageMakerHook().conn
            name = unique("report-cost")
            sm.create_processing_job(
                **processing_request(
                    name,
                    code_uri=f"s3://{bucket}/{key}",
                    Tags=naming.airflow_tags(ti.dag_id, ti.run_id, ti.task_id),
                )
            )
            wait_for(
                lambda: sm.describe_processing_job(ProcessingJobName=name), "ProcessingJobStatus"
            )
            return name

        @task
        def report(**context) -> dict:
            return report_cost(context)

        transform() >> report()
    serialize_dag(dag)
    run = dag.test()
    assert run.state == "success"
    name = run.get_task_instance("transform").xcom_pull(task_ids="transform")
    xcom = run.get_task_instance("report").xcom_pull(task_ids="report")
    assert xcom["jobs"] == 1 and xcom["total_usd"] > 0
    assert f"{dag.dag_id} run {run.run_id} (running) cost $" in xcom["summary"]
    assert xcom["uri"].startswith(f"s3://{bucket}/cost/{dag.dag_id}/")
    assert len(str(xcom)) < 1000  # a summary, not the record
    # the listener's record at run end replaces the running one, under the same key
    assert listener.wait_idle(timeout=60)
    final = record.read_all(s3, bucket, "cost", dag.dag_id)
    assert [r["state"] for r in final] == ["success"]
    assert [j["name"] for j in final[0]["jobs"]] == [name]


def test_a_run_that_times_out_alerts_without_a_failed_task(
    aws_conn, bucket, receiver, alerts_file, monkeypatch
):
    from tests.notifications.receiver import slack_connection

    monkeypatch.setenv("MLOPS_BUCKET", bucket)
    slack_connection(monkeypatch, receiver.port)
    run = dag_run()
    listener.on_dag_run_failed(dag_run=run, msg="timed_out")
    [body] = receiver.wait_for(1, timeout=60)
    assert body["blocks"][0]["text"]["text"] == "cost_dag run failed"
    assert body["blocks"][2]["text"]["text"] == ("*Reason*\nthe run exceeded its dagrun_timeout")
    # a run failed by its tasks is alerted by the tasks' callbacks, not twice here
    listener.on_dag_run_failed(dag_run=dag_run(), msg="task_failure")
    assert listener.wait_idle(timeout=60)
    assert len(receiver.bodies) == 1
