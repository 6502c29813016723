"""How a release ends for the task: the summary of its audit record for XCom, and for a
rollback the alert (step and both variants' figures) and the failure that names the step,
metric, value and bound."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from mlops_pipeline.deploy.release import Release, step_lines
from mlops_pipeline.deploy.session import ReleaseSession


def done(s: ReleaseSession, release: Release) -> dict[str, Any]:
    """The task's result for a finished release (a rollback raises instead)."""
    lines = "\n".join(f"  {line}" for line in step_lines(release))
    summary = release.summary()
    if release.status == "rolled_back":
        fail(s, release)
    s.log.info(
        "release %s of %s onto %s: %s%s\n%s\naudit record: %s",
        release.release_id,
        release.candidate.package_arn,
        release.endpoint,
        release.status,
        f" (previous package {summary['previous_package']})" if summary["previous_package"] else "",
        lines,
        s.audit_uri,
    )
    return {**summary, "audit_uri": s.audit_uri}


def fail(s: ReleaseSession, release: Release) -> Any:
    """Alert on a rolled-back release and fail the task (no retry: the record says why)."""
    from mlops_pipeline.notifications import ALERTED, rollback_alert, send

    lines = "\n".join(f"  {line}" for line in step_lines(release))
    baseline = release.baseline.variant if release.baseline else "the baseline"
    failed = release.steps[-1] if release.steps else None
    metrics: dict[str, Any] = {}
    if failed is not None:
        for variant, values in (failed.metrics or {}).items():
            role = "candidate" if variant == release.candidate.variant else "baseline"
            for name, value in values.items():
                metrics[f"{role} {name}"] = "-" if value is None else value
    # the rollback's own alert (step and metrics), instead of the generic failure alert
    send(
        rollback_alert(
            s.dag_id,
            release.endpoint,
            f"{failed.step} ({failed.weight}%)" if failed else "-",
            metrics,
            release.reason or "rolled back",
            task_id=s.task_id,
        ),
        s.settings,
        logger=s.log,
    )
    error = AirflowFailException(
        f"canary release of {release.candidate.package_arn} onto {release.endpoint} ROLLED "
        f"BACK: {release.reason}; {baseline} serves 100% again\n{lines}\n"
        f"audit record: {s.audit_uri}"
    )
    setattr(error, ALERTED, True)
    raise error
