"""model_deploy end to end: dag.test() of dags/model_deploy.py against local_aws.

Packages are small scikit-learn models laid out as model_build leaves them (tests/deploy/kit.py),
so a run takes seconds, not a model_build."""

from __future__ import annotations

import json
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
    summary = run.get_task_instance("canary_release").xcom_pull(task_ids="canary_release")
    assert summary["status"] == "promoted" and summary["previous_package"] == first
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert [v["VariantName"] for v in described["ProductionVariants"]] == ["v2"]
    staging = sm.describe_endpoint(EndpointName=f"{endpoint}-staging")
    assert staging["EndpointStatus"] == "InService"
    audit = s3.get_object(Bucket=registry.bucket, Key=summary["audit_uri"].split("/", 3)[3])
    record = json.loads(audit["Body"].read())
    assert [s["weight"] for s in record["steps"]] == [10, 50, 100]


def test_a_rejection_in_the_registry_deploys_nothing(aws_conn, local_aws, sm, s3, capfd):
    registry = new_registry(sm, s3)
    endpoint = unique("prod")
    package = registry.register(sm, s3, [1, 2, 3], status="PendingManualApproval")
    sm.update_model_package(
        ModelPackageArn=package, ModelApprovalStatus="Rejected", ApprovalDescription="no"
    )
    with environment(registry, endpoint):
        capfd.readouterr()
        run = run_model_deploy()  # no param: the group's newest pending package... none now
    assert run.state == "failed"
    out = capfd.readouterr()
    assert "no package of group" in out.out + out.err
    with environment(registry, endpoint):
        capfd.readouterr()
        run = run_model_deploy({"package_arn": package})
        captured = capfd.readouterr()
        out = captured.out + captured.err
    assert run.state == "success", states(run)
    got = states(run)
    assert got["await_approval"] == "success"
    assert {got[t] for t in ("deploy_staging", "smoke_test", "canary_release")} == {"skipped"}
    assert "Rejected in the Model Registry by" in out and "nothing is deployed" in out
    assert not sm.list_endpoints(NameContains=endpoint)["Endpoints"]
