"""model_deploy end to end: dag.test() of dags/model_deploy.py against local_aws.

Packages are small scikit-learn models laid out as model_build leaves them (tests/deploy/kit.py),
so a run takes seconds, not a model_build."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import unique
from tests.deploy.kit import DAY, environment, new_registry

pytestmark = pytest.mark.slow

DAGS = Path(__file__).resolve().parents[2] / "dags"


def run_model_deploy(conf: dict[str, Any] | None = None) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / "model_deploy.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag("model_deploy")
    for task in dag.tasks:
        task.retries = 0
    return dag.test(logical_date=DAY, run_conf=conf or {})


def states(run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def test_an_approved_package_is_smoke_tested_and_released(
    aws_conn, local_aws, sm, s3, runtime, capfd
):
    registry = new_registry(sm, s3)
    endpoint = unique("prod")
    first = registry.register(sm, s3, [1, 2, 3])
    with environment(registry, endpoint):
        run = run_model_deploy({"package_arn": first})
        assert run.state == "success", states(run)
        # the second package waits for a decision; a reviewer approves it in the registry
        second = registry.register(sm, s3, [1, 2, 4], status="PendingManualApproval")
        sm.update_model_package(
            ModelPackageArn=second,
            ModelApprovalStatus="Approved",
            ApprovalDescription="looks good (reviewer in Studio)",
        )
        capfd.readouterr()
        run = run_model_deploy({"package_arn": second})
        out = capfd.readouterr()
    assert run.state == "success", states(run)
    text = out.out + out.err
    assert "Approved in the Model Registry by" in text
    assert "smoke test of " in text and "21 calls, 20 rows scored" in text
    # the staging endpoint's wait logs each status once, not once per poll
    assert "not done yet" not in text
    for status in ("Creating", "Updating"):
        assert text.count(f"endpoint job {endpoint}-staging: {status}") <= 1, status
    summary = run.get_task_instance("canary_release").xcom_pull(task_ids="canary_release")
    assert summary["status"] == "promoted" and summary["previous_package"] == first
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert [v["VariantName"] for v in described["ProductionVariants"]] == ["v2"]
    staging = sm.describe_endpoint(EndpointName=f"{endpoint}-staging")
    assert staging["EndpointStatus"] == "InService"
    audit = s3.get_object(Bucket=registry.bucket, Key=summary["audit_uri"].split("/", 3)[3])
    record = json.loads(audit["Body"].read())
    assert [s["weight"] for s in record["steps"]] == [10, 50, 100]


def hitl_requests() -> int:
    from airflow.models.hitl import HITLDetail
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.query(HITLDetail).count()


def when_waiting_for_approval(action, timeout: float = 120) -> threading.Thread:
    """Run ``action`` (in a thread) once await_approval has asked for a decision: its
    request shows in the UI, and its trigger waits."""
    before = hitl_requests()

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if hitl_requests() > before:
                action()
                return
            time.sleep(0.1)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_rejection_in_the_registry_deploys_nothing(aws_conn, local_aws, sm, s3, capfd):
    registry = new_registry(sm, s3)
    endpoint = unique("prod")
    with environment(registry, endpoint):
        capfd.readouterr()
        run = run_model_deploy()  # nothing is pending in a new group
    out = capfd.readouterr()
    assert run.state == "failed"
    assert f"no package of group '{registry.group}' is PendingManualApproval" in out.out + out.err

    package = registry.register(sm, s3, [1, 2, 3], status="PendingManualApproval")
    reviewer = when_waiting_for_approval(
        lambda: sm.update_model_package(
            ModelPackageArn=package, ModelApprovalStatus="Rejected", ApprovalDescription="no"
        ),
    )
    # a decision that never comes would end the wait after 36 s, not hang the test
    with environment(registry, endpoint, MLOPS_DEPLOY_APPROVAL_TIMEOUT_HOURS="0.01"):
        capfd.readouterr()
        run = run_model_deploy()  # no param: the newest pending package of the group
        captured = capfd.readouterr()
        out = captured.out + captured.err
    reviewer.join(timeout=5)
    assert run.state == "success", states(run)
    got = states(run)
    assert got["await_approval"] == "success"
    assert {got[t] for t in ("deploy_staging", "smoke_test", "canary_release")} == {"skipped"}
    assert "Rejected in the Model Registry by" in out and "nothing is deployed" in out
    assert not sm.list_endpoints(NameContains=endpoint)["Endpoints"]


def test_a_decision_in_the_ui_is_written_to_the_registry(aws_conn, sm, s3):
    """The UI's answer as Airflow's API resumes the task with it (HITLDetail's resume
    payload); the operator records who decided, and when, in the registry."""
    import datetime as dt

    from mlops_pipeline.deploy.approval import AwaitApprovalOperator

    registry = new_registry(sm, s3)
    package = registry.register(sm, s3, [1, 2, 3], status="PendingManualApproval")
    operator = AwaitApprovalOperator(
        task_id="await_approval", package_arn=package, subject="Deploy?", body="metrics"
    )
    at = dt.datetime(2026, 3, 8, 9, 30, tzinfo=dt.UTC)
    result = operator.execute_complete(
        {},  # an approval needs no context: nothing downstream is skipped
        {
            "chosen_options": ["Approve"],
            "params_input": {},
            "responded_at": at,
            "responded_by_user": {"id": "7", "name": "alice"},
            "timedout": False,
        },
    )
    assert result["chosen_options"] == ["Approve"]
    described = sm.describe_model_package(ModelPackageName=package)
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["ApprovalDescription"] == (
        "Approved in Airflow (model_deploy) by alice at 2026-03-08T09:30:00+00:00"
    )


def test_no_decision_in_time_ends_the_run_cleanly(aws_conn, local_aws, sm, s3, capfd):
    registry = new_registry(sm, s3)
    endpoint = unique("prod")
    package = registry.register(sm, s3, [1, 2, 3], status="PendingManualApproval")
    # 0.001 h = 3.6 s: nobody decides within it
    with environment(registry, endpoint, MLOPS_DEPLOY_APPROVAL_TIMEOUT_HOURS="0.001"):
        capfd.readouterr()
        run = run_model_deploy({"package_arn": package})
        captured = capfd.readouterr()
    assert run.state == "success", states(run)
    got = states(run)
    assert {got[t] for t in ("deploy_staging", "smoke_test", "canary_release")} == {"skipped"}
    assert "nothing is deployed and the package stays PendingManualApproval" in (
        captured.out + captured.err
    )
    described = sm.describe_model_package(ModelPackageName=package)
    assert described["ModelApprovalStatus"] == "PendingManualApproval"
    assert not sm.list_endpoints(NameContains=endpoint)["Endpoints"]
