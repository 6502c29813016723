"""What every part of a canary release works with: the checked settings, the plan and
bounds, the AWS clients, the run it belongs to and where its audit record lives.

``open_session`` checks every rule of the plan and the bounds before any traffic moves;
``save``/``load`` are the audit record's only writer and reader.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_pipeline.deploy import hosting
from mlops_pipeline.deploy.release import Release

if TYPE_CHECKING:
    from mlops_pipeline.config import Settings
    from mlops_pipeline.deploy.analysis import Bounds
    from mlops_pipeline.deploy.plan import Plan
    from mlops_pipeline.jobs import JobRun


@dataclass
class ReleaseSession:
    settings: Settings
    plan: Plan
    bounds: Bounds
    mode: str  # "stepped" or "native"
    run: JobRun
    endpoint: str
    audit_uri: str
    task_id: str
    log: logging.Logger | Any
    client: Callable[[str], Any]  # an AWS client by service name (the task's connection)
    sm: Any
    s3: Any

    @property
    def dag_id(self) -> str:
        return self.run.dag_id

    def save(self, release: Release) -> None:
        hosting.write_record(self.s3, self.audit_uri, release.to_json())

    def load(self) -> Release | None:
        stored = hosting.read_record(self.s3, self.audit_uri)
        return None if stored is None else Release.from_json(stored)


def open_session(
    context: Any,
    *,
    settings: Settings,
    plan: str | None,
    endpoint_name: str | None,
    client: Callable[[str], Any],
    log: logging.Logger | Any,
) -> ReleaseSession:
    """The session of a task run; a bad plan, bound, mode or autoscaling setting raises
    SettingsError naming it, before any AWS call."""
    from mlops_pipeline.config import SettingsError
    from mlops_pipeline.deploy.analysis import Bounds
    from mlops_pipeline.deploy.plan import native_deployment, parse_plan
    from mlops_pipeline.operators.job_watch import job_run

    parsed = parse_plan(
        plan or settings.deploy_canary_plan,
        metric_period_seconds=settings.deploy_metric_period_seconds,
    )
    bounds = Bounds.from_settings(settings)
    hosting.autoscaling_requests(settings, "check", "check")  # bad min/max: now
    mode = settings.deploy_canary_mode
    if mode not in ("stepped", "native"):
        raise SettingsError(f"MLOPS_DEPLOY_CANARY_MODE={mode!r}: use stepped or native")
    if mode == "native":  # a plan SageMaker cannot run is refused before traffic moves
        native_deployment(parsed, [], settings.job_timeout_seconds)
    run = job_run(context)
    endpoint = endpoint_name or settings.deploy_endpoint_name
    return ReleaseSession(
        settings=settings,
        plan=parsed,
        bounds=bounds,
        mode=mode,
        run=run,
        endpoint=endpoint,
        audit_uri=hosting.audit_uri(settings, endpoint, run.key),
        task_id=run.task_id,
        log=log,
        client=client,
        sm=client("sagemaker"),
        s3=client("s3"),
    )
