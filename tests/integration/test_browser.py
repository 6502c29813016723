"""The Airflow UI as a person uses it, in a real browser: headless Debian Chromium driven by
Playwright (`make browser` installs it; Playwright's own browser download is never used)
against the real stack of `make up` (scripts/up: local_aws + airflow standalone).

Log in with the printed credentials, find the three DAGs, open model_build's graph, trigger
model_deploy from its form with a package ARN, reject one package and approve the next in
the human-in-the-loop view (Required Action), then open the plugin's Releases and Cost
views. What the UI did is checked where it lands: the registry (boto3), the endpoints, the
run's task states. A screenshot of every step is kept under test-artifacts/browser/.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.kit import INFERENCE, Registry
from tests.integration.stack_kit import ROOT, Stack, boto3_client, running_stack, wait
from tests.jobkit import upload_source

# a whole user session: stack start, two model_deploy runs, one of them deploying
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "browser"
GROUP, ENDPOINT = "card-fraud-ui", "fraud-ui"
# Generous: task processes start cold on a shared 2-core machine (tens of seconds each).
UI_MS = 240_000
RUN_SECONDS = 600
MODEL_BUILD_TASKS = (
    "package_code",
    "select_data_window",
    "validate_training_data",
    "preprocess",
    "validate_training_features",
    "tune",
    "evaluate",
    "quality_gate",
    "register",
)


def evaluation(pr_auc: float, auc: float) -> dict[str, Any]:
    """An evaluation.json shaped as model_build's evaluate step writes it."""
    return {
        "version": 1,
        "binary_classification_metrics": {
            "pr_auc": {"value": pr_auc, "standard_deviation": 0.01},
            "auc": {"value": auc, "standard_deviation": 0.01},
            "precision": {"value": 0.71, "standard_deviation": 0.02},
            "recall": {"value": 0.64, "standard_deviation": 0.02},
        },
        "threshold": {"value": 0.35},
    }


def register_pending(registry: Registry, sm: Any, s3: Any, version: str, pr_auc: float) -> str:
    """A package pending approval with metrics and lineage, as model_build registers one."""
    return registry.register(
        sm,
        s3,
        [0.1, 0.2, 0.3],
        status="PendingManualApproval",
        evaluation=evaluation(pr_auc, 0.93),
        MetadataProperties={"GeneratedBy": f"airflow:model_build/scheduled__{version}"},
        CustomerMetadataProperties={
            "data_window_start": "2026-01-01",
            "data_window_end": "2026-01-07",
            "code_version": f"code-{version}",
        },
    )


@pytest.fixture
def page() -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_MS)
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (scripts/install-browser)")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.set_default_timeout(UI_MS)
        try:
            yield context.new_page()
        finally:
            browser.close()
            print(f"\nscreenshots of the browser test: {ARTIFACTS}")


class Shots:
    """Numbered screenshots, one per step, in test-artifacts/browser/."""

    def __init__(self, page: Any) -> None:
        self.page, self.count = page, 0

    def __call__(self, name: str) -> None:
        self.count += 1
        self.page.screenshot(path=str(ARTIFACTS / f"{self.count:02d}-{name}.png"))


def until_shown(
    page: Any, locator: Any, url: str | None = None, timeout_s: float = UI_MS / 1000
) -> None:
    """Reload (or open ``url`` again) until ``locator`` is visible: a page opened before the
    task got there does not fetch it again by itself (and a task's Required Action tab,
    opened before the task asked, falls back to its logs)."""

    def shown() -> bool:
        try:  # a page renders in seconds, but its API calls take a while on a busy machine
            locator.first.wait_for(state="visible", timeout=30_000)
            return True
        except Exception:  # playwright's TimeoutError: not yet
            if url:
                page.goto(url)
            else:
                page.reload()
            return False

    wait(shown, f"{locator} on {page.url}", timeout_s, interval=0)


def finished(stack: Stack, run_id: str) -> dict[str, str]:
    """Wait for the model_deploy run to end; each task's state."""
    path = f"/api/v2/dags/model_deploy/dagRuns/{run_id}"
    state = wait(
        lambda: stack.call(path)["state"] in ("success", "failed") and stack.call(path)["state"],
        f"model_deploy run {run_id} to end",
        RUN_SECONDS,
        interval=1,
    )
    tasks = {
        t["task_id"]: t["state"] for t in stack.call(f"{path}/taskInstances")["task_instances"]
    }
    return {"run": state, **tasks}


def trigger_from_form(page: Any, stack: Stack, package_arn: str, run_id: str, shot: Shots) -> None:
    """model_deploy's Trigger form: the package ARN as the run's parameter."""
    from playwright.sync_api import expect

    page.goto(f"{stack.base}/dags/model_deploy")
    page.get_by_role("button", name="Trigger Dag").click()
    form = page.get_by_role("dialog")
    expect(form.get_by_text("package_arn", exact=True)).to_be_visible()
    # the param's input (its label is not tied to it in Airflow 3.3's form)
    form.locator("#element_package_arn").fill(package_arn)
    form.get_by_role("button", name="Advanced Options").click()
    form.locator("input[name=dagRunId]").fill(run_id)
    shot(f"trigger-{run_id}")
    form.get_by_role("button", name="Trigger").click()
    page.wait_for_url(f"**/dags/model_deploy/runs/{run_id}")


def decide(
    page: Any, stack: Stack, run_id: str, button: str, version: int, pr_auc: float, shot: Shots
) -> None:
    """Open the run's await_approval Required Action, check what it shows, press ``button``."""
    from playwright.sync_api import expect

    url = f"{stack.base}/dags/model_deploy/runs/{run_id}/tasks/await_approval/required_actions"
    page.goto(url)
    # the form shows as soon as the task asks, and takes answers once the task is deferred
    until_shown(page, page.get_by_role("button", name=button, disabled=False), url)
    expect(page.get_by_text(f"Deploy {GROUP} version {version} to {ENDPOINT}?")).to_be_visible()
    # the candidate's metrics and lineage from the registry, not placeholders
    table = page.get_by_role("table")
    for row, value in (
        ("PR-AUC", f"{pr_auc:.4f}"),
        ("ROC-AUC", "0.9300"),
        ("recall at threshold", "0.6400"),
        ("threshold", "0.3500"),
        ("data window", "2026-01-01..2026-01-07"),
        ("code version", f"code-v{version}"),
        ("trained by", "airflow:model_build/"),
    ):
        cell = page.get_by_role("cell", name=row, exact=True)
        expect(table.get_by_role("row").filter(has=cell)).to_contain_text(value)
    shot(f"review-{run_id}")
    page.get_by_role("button", name=button).click()
    until_shown(page, page.get_by_text("Response received at"), url)
    expect(page.get_by_text("Response received at")).to_contain_text(f"from {stack.user}")
    shot(f"{button.lower()}ed-{run_id}")


def open_run(page: Any, stack: Stack, run_id: str) -> None:
    """The run's page, rendered (its last task listed), for a screenshot worth keeping."""
    from playwright.sync_api import expect

    page.goto(f"{stack.base}/dags/model_deploy/runs/{run_id}")
    expect(page.get_by_text("canary_release").first).to_be_visible()


def test_ui_login_dags_graph_approval_and_plugin_views(tmp_path: Path, page: Any) -> None:
    from playwright.sync_api import expect

    shot = Shots(page)
    with running_stack(
        tmp_path,
        MLOPS_MODEL_PACKAGE_GROUP=GROUP,
        MLOPS_DEPLOY_ENDPOINT_NAME=ENDPOINT,
        MLOPS_DEPLOY_STAGING_ENDPOINT_NAME=f"{ENDPOINT}-staging",
    ) as stack:
        sm, s3 = boto3_client(stack, "sagemaker"), boto3_client(stack, "s3")
        sm.create_model_package_group(ModelPackageGroupName=GROUP)
        bucket = "mlops-local"  # the local profile's, seeded by scripts/up
        code = upload_source(s3, bucket, "code/sourcedir.tar.gz", {"inference.py": INFERENCE})
        registry = Registry(bucket, GROUP, code)

        # log in with what `make up` printed
        page.goto(stack.base)
        page.get_by_label("Username").fill(stack.user)
        page.get_by_label("Password").fill(stack.password)
        shot("login")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/auth/login" not in url)

        # the three DAGs, once the dag-processor has parsed them
        page.goto(f"{stack.base}/dags")
        for dag_id in ("batch_inference", "model_build", "model_deploy"):
            until_shown(page, page.get_by_role("link", name=dag_id, exact=True))
        expect(page.get_by_text("3 Dags")).to_be_visible()
        shot("dags")

        # model_build's graph: every task a node
        page.get_by_role("link", name="model_build", exact=True).click()
        page.get_by_role("button", name="Show Graph (Press g)").click()
        nodes = page.locator(".react-flow__node")
        expect(nodes).to_have_count(len(MODEL_BUILD_TASKS))
        assert sorted(n.get_attribute("data-id") for n in nodes.all()) == sorted(MODEL_BUILD_TASKS)
        shot("model-build-graph")

        # a rejection in the UI: the run ends skipping the rest, nothing is deployed
        first = register_pending(registry, sm, s3, "v1", pr_auc=0.81)
        trigger_from_form(page, stack, first, "ui-reject", shot)
        decide(page, stack, "ui-reject", "Reject", 1, 0.81, shot)
        # the decision reaches the registry when the task resumes on it
        states = finished(stack, "ui-reject")
        package = sm.describe_model_package(ModelPackageName=first)
        assert package["ModelApprovalStatus"] == "Rejected"
        assert (
            f"Rejected in Airflow (model_deploy) by {stack.user}"
            in (package["ApprovalDescription"])
        )
        assert states == {
            "run": "success",
            "resolve_package": "success",
            "await_approval": "success",
            "deploy_staging": "skipped",
            "smoke_test": "skipped",
            "canary_release": "skipped",
        }, states
        assert sm.list_endpoints()["Endpoints"] == []
        assert sm.list_endpoint_configs()["EndpointConfigs"] == []
        open_run(page, stack, "ui-reject")
        shot("rejected-run")

        # an approval in the UI: written to the registry naming who, then deployed
        second = register_pending(registry, sm, s3, "v2", pr_auc=0.84)
        trigger_from_form(page, stack, second, "ui-approve", shot)
        decide(page, stack, "ui-approve", "Approve", 2, 0.84, shot)
        states = finished(stack, "ui-approve")
        package = sm.describe_model_package(ModelPackageName=second)
        assert package["ModelApprovalStatus"] == "Approved"
        assert (
            f"Approved in Airflow (model_deploy) by {stack.user} at "
            in (package["ApprovalDescription"])
        )
        assert set(states.values()) == {"success"}, states
        endpoint = sm.describe_endpoint(EndpointName=ENDPOINT)
        assert endpoint["EndpointStatus"] == "InService"
        open_run(page, stack, "ui-approve")
        shot("approved-run")

        # the plugin's Releases view (navigation bar): the release just made
        page.get_by_role("link", name="Releases").click()
        releases = page.frame_locator("iframe[title=Releases]")
        expect(releases.get_by_role("heading", name="Canary releases")).to_be_visible()
        row = releases.get_by_role("row").filter(has_text=ENDPOINT)
        expect(row).to_contain_text(second)
        expect(row).to_contain_text("created")
        expect(row).to_contain_text("first deployment: the endpoint was created")
        shot("releases")

        # the plugin's Cost view (Browse menu): both runs of model_deploy
        page.get_by_role("button", name="Browse").click()
        page.get_by_role("menuitem", name="Cost").click()
        cost = page.frame_locator("iframe[title=Cost]")
        expect(cost.get_by_role("heading", name="Cost of DAG runs")).to_be_visible()
        # each run's record is written by the plugin's listener once the run has ended
        for run_id in ("ui-approve", "ui-reject"):
            until_shown(page, cost.get_by_role("row").filter(has_text=run_id))
            expect(cost.get_by_role("row").filter(has_text=run_id)).to_contain_text("success")
        expect(cost.get_by_role("row").filter(has_text="ui-approve")).to_contain_text(
            "deploy_staging $"
        )
        shot("cost")
    assert stack.up.returncode == 0, stack.output()[-3000:]
    wait(stack.nothing_left_running, "every process of the stack to exit", 120)
    assert len(list(ARTIFACTS.glob("*.png"))) == shot.count
