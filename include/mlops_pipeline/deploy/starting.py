"""A release's first move: check the package and the endpoint, create the candidate's
model and configs, and write the release record (nothing else has happened yet).

An endpoint that does not exist is a first deployment (created, no canary); one that
already serves the package is ``unchanged``; otherwise the candidate joins as a second
production variant by a canary config (stepped), or the whole plan goes to SageMaker's
BlueGreenUpdatePolicy with rollback alarms (native).
"""

from __future__ import annotations

import time
from typing import Any

from mlops_pipeline.deploy import hosting
from mlops_pipeline.deploy.release import Release, Variant, new_release
from mlops_pipeline.deploy.session import ReleaseSession


def start_release(session: ReleaseSession, package_arn: str) -> Release:
    """The new release record, saved; raises hosting.DeployError for a package or an
    endpoint a release cannot start from (before any traffic moves)."""
    s = session
    package = s.sm.describe_model_package(ModelPackageName=package_arn)
    hosting.check_package(package, s.settings.model_package_group)
    endpoint = hosting.describe_endpoint(s.sm, s.endpoint)
    now = time.time()
    model = hosting.model_name(s.endpoint, package, s.run.key)
    candidate = Variant(hosting.variant_name(package), model, package["ModelPackageArn"], model)
    baseline = current = None
    if endpoint is not None:
        current = _serving_alone(s, endpoint)
        if current["PackageArn"] != package["ModelPackageArn"]:
            if current["VariantName"] == candidate.variant:
                candidate.variant = f"{candidate.variant}-{s.run.key}"[:63]
            baseline = Variant(
                current["VariantName"],
                current["ModelName"],
                current["PackageArn"],
                endpoint["EndpointConfigName"],
            )
    canary = hosting.naming.job_name(s.endpoint, "canary", s.run.key) if baseline else None
    release = new_release(
        release_id=s.run.key,
        endpoint=s.endpoint,
        candidate=candidate,
        baseline=baseline,
        plan=s.plan,
        bounds=vars(s.bounds),
        canary_config=canary,
        failure_budget=s.settings.deploy_failure_budget,
        now=now,
        dag_id=s.run.dag_id,
        run_id=s.run.run_id,
    )
    if current is not None and baseline is None:
        release.finish("unchanged", now, f"{s.endpoint} already serves this package")
        s.save(release)
        return release
    ensure_model(s, model, package)
    ensure_config(
        s, candidate.config, [(candidate.variant, model, 1.0, s.settings.deploy_instance_count)]
    )
    if baseline is not None and s.mode == "native":
        start_native(s, release)
    elif baseline is not None and canary is not None and endpoint is not None:
        first = s.plan.steps[0].weight
        count = next(
            (
                int(v.get("CurrentInstanceCount") or 1)
                for v in endpoint["ProductionVariants"]
                if v["VariantName"] == baseline.variant
            ),
            1,
        )
        ensure_config(
            s,
            canary,
            [
                (baseline.variant, baseline.model, 100 - first, count),
                (candidate.variant, model, first, s.settings.deploy_instance_count),
            ],
        )
        release.begin_step(1, now)
        s.log.info(
            "canary release of %s onto %s: %s, against %s (%s)",
            candidate.package_arn,
            s.endpoint,
            s.plan.describe(),
            baseline.variant,
            baseline.package_arn or "package unknown",
        )
    else:
        s.log.info(
            "endpoint %s does not exist: first deployment, created with %s alone (no canary)",
            s.endpoint,
            candidate.package_arn,
        )
    s.save(release)
    return release


def _serving_alone(s: ReleaseSession, endpoint: dict[str, Any]) -> dict[str, Any]:
    """The one variant an InService endpoint serves; anything else is a DeployError."""
    if endpoint["EndpointStatus"] != "InService":
        raise hosting.DeployError(
            f"endpoint {s.endpoint} is {endpoint['EndpointStatus']}: a release "
            "starts only on an InService endpoint; wait for it or fix it first"
        )
    serving = hosting.serving_variants(s.sm, endpoint)
    if len(serving) != 1:
        raise hosting.DeployError(
            f"endpoint {s.endpoint} serves {len(serving)} variants "
            f"({', '.join(v['VariantName'] for v in serving)}): another release is "
            "under way or was left half-done; finish or roll it back first"
        )
    return serving[0]


def start_native(s: ReleaseSession, release: Release) -> None:
    """Hand the plan to SageMaker: one UpdateEndpoint with a BlueGreenUpdatePolicy and
    alarms on the analysis's bounds; SageMaker shifts, bakes and rolls back."""
    from mlops_pipeline.deploy.plan import native_deployment

    cloudwatch = s.client("cloudwatch")
    requests = hosting.rollback_alarm_requests(
        s.settings,
        endpoint=release.endpoint,
        variant=release.candidate.variant,
        name_prefix=hosting.naming.job_name(release.endpoint, "canary", s.run.key),
        bounds=s.bounds,
    )
    for request in requests:
        cloudwatch.put_metric_alarm(**request)
    release.mode = "native"
    release.canary_config = None
    release.deployment_config = native_deployment(
        s.plan, [r["AlarmName"] for r in requests], s.settings.job_timeout_seconds
    )
    release.status = "promoting"
    s.log.info(
        "native canary release of %s onto %s: %s, by SageMaker's BlueGreenUpdatePolicy "
        "with rollback alarms %s",
        release.candidate.package_arn,
        release.endpoint,
        s.plan.describe(),
        ", ".join(r["AlarmName"] for r in requests),
    )


def ensure_model(s: ReleaseSession, name: str, package: dict[str, Any]) -> None:
    from botocore.exceptions import ClientError

    try:
        s.sm.create_model(
            **hosting.model_request(s.settings, name=name, package=package, tags=s.run.tags)
        )
    except ClientError as error:
        if "already existing" not in str(error):  # a retry made it already: use it
            raise


def ensure_config(
    s: ReleaseSession, name: str, variants: list[tuple[str, str, float, int]]
) -> None:
    from botocore.exceptions import ClientError

    try:
        s.sm.create_endpoint_config(
            **hosting.endpoint_config_request(
                s.settings, name=name, variants=variants, tags=s.run.tags
            )
        )
    except ClientError as error:
        if "already existing" not in str(error):
            raise
