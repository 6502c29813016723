"""The analysis calls of a release: a baked step judged on CloudWatch's per-variant
metrics (the candidate against the baseline over the same window), and target-tracking
autoscaling moved onto the variant that ends up serving alone."""

from __future__ import annotations

import math
import time

from mlops_pipeline.deploy import hosting
from mlops_pipeline.deploy.release import Release
from mlops_pipeline.deploy.session import ReleaseSession


def judge(s: ReleaseSession, release: Release) -> str:
    """Judge the current step on its bake's window; records the verdict on the release
    and returns the move: "next", "rebake", "promote" or "rollback" (as Release.judge)."""
    from mlops_pipeline.deploy.analysis import analyse

    record = release.current
    assert record is not None and record.started_at is not None
    assert record.bake_until is not None and release.baseline is not None
    cloudwatch = s.client("cloudwatch")
    period = s.settings.deploy_metric_period_seconds
    # CloudWatch stamps a datapoint with its period's start: the window covers the bake
    # from the period that holds its start (CloudWatch rounds StartTime down so; moto
    # does not, so it is done here) up to the period that holds its end
    start = math.floor(record.started_at / period) * period
    end = record.bake_until + period
    stats = {
        v.variant: hosting.variant_window_stats(
            cloudwatch, release.endpoint, v.variant, start, end, period
        )
        for v in (release.candidate, release.baseline)
    }
    baseline = stats[release.baseline.variant]
    verdict = analyse(
        record.step,
        record.weight,
        stats[release.candidate.variant],
        baseline if baseline.invocations > 0 else None,
        s.bounds,
    )
    for check in verdict.checks:
        s.log.info("step %d: %s", record.step, check.text())
    move = release.judge(
        verdict.to_json(),
        {k: hosting.stats_json(v) for k, v in stats.items()},
        time.time(),
    )
    s.log.info("step %d verdict: %s → %s", record.step, verdict.reason(), move)
    return move


def autoscale(s: ReleaseSession, release: Release) -> None:
    """Target tracking for the variant that now serves alone; the previous variant's
    scalable target goes with it (its resource no longer exists)."""
    requests = hosting.autoscaling_requests(s.settings, release.endpoint, release.candidate.variant)
    if requests is None:
        return
    scaling = s.client("application-autoscaling")
    if release.baseline is not None:
        old = hosting.scaling_resource(release.endpoint, release.baseline.variant)
        targets = scaling.describe_scalable_targets(
            ServiceNamespace="sagemaker", ResourceIds=[old]
        )["ScalableTargets"]
        for target in targets:
            scaling.deregister_scalable_target(
                ServiceNamespace="sagemaker",
                ResourceId=old,
                ScalableDimension=target["ScalableDimension"],
            )
    target, policy = requests
    scaling.register_scalable_target(**target)
    scaling.put_scaling_policy(**policy)
    s.log.info(
        "autoscaling %s: %d..%d instances, target %g invocations per instance",
        target["ResourceId"],
        target["MinCapacity"],
        target["MaxCapacity"],
        s.settings.deploy_autoscaling_target_invocations,
    )
