"""model_deploy's canary release on local_aws: how fast it decides and how fast a candidate
serves, read from the release's own audit record.

``airflow dags test model_deploy`` runs twice as a user runs it: the first run creates the
production endpoint, the second releases a new package by a two-bake canary plan with
traffic replay. From the audit record:

- decision latency: from the end of a bake to the next weight change (or rollback): the
  trigger's event, the task resuming, the analysis's CloudWatch reads, the audit record and
  UpdateEndpointWeightsAndCapacities. local_aws publishes endpoint metrics before a metric
  read, so the local profile waits for none (MLOPS_DEPLOY_METRICS_DELAY_SECONDS=0; it was
  3.5 s when they were published every 3 s, and the latency 4.6 s);
- candidate ready: from UpdateEndpoint with the canary config to the endpoint serving it
  (blue/green: a model server per variant of the new config starts).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from benchmarks.harness import Row, airflow_environment

ROOT = Path(__file__).resolve().parents[1]
PLAN = "10%:2s,50%:2s,100%"


def run(aws: Any) -> list[Row]:
    from mlops_pipeline.deploy.release import Release
    from tests.deploy.kit import new_registry

    s3, sm = aws.client("s3"), aws.client("sagemaker")
    registry = new_registry(sm, s3)
    first = registry.register(sm, s3, [1, 2, 3])
    second = registry.register(sm, s3, [1, 2, 4])
    endpoint = f"bench-prod-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory(prefix="bench-airflow-") as home:
        env = airflow_environment(
            home,
            aws,
            registry.bucket,
            registry.group,
            deploy_endpoint_name=endpoint,
            deploy_staging_endpoint_name=f"{endpoint}-staging",
            deploy_canary_plan=PLAN,
            deploy_replay_rate="8",
            deploy_min_invocations="5",
            deploy_latency_slack_ms="50",
        )
        airflow = str(Path(sys.executable).with_name("airflow"))
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
        for package in (first, second):
            done = subprocess.run(
                [
                    airflow,
                    "dags",
                    "test",
                    "model_deploy",
                    "-c",
                    json.dumps({"package_arn": package}),
                ],
                env=env,
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                tail = "\n".join(done.stdout.splitlines()[-40:])
                raise RuntimeError(f"model_deploy failed in the benchmark:\n{tail}")
    listing = s3.list_objects_v2(
        Bucket=registry.bucket, Prefix=f"model-deploy/releases/{endpoint}/"
    )["Contents"]
    records = [
        Release.from_json(
            json.loads(s3.get_object(Bucket=registry.bucket, Key=o["Key"])["Body"].read())
        )
        for o in listing
    ]
    [release] = [r for r in records if r.status == "promoted"]
    steps = release.steps
    decisions = [
        nxt.requested_at - step.bake_until
        for step, nxt in zip(steps, steps[1:], strict=False)
        if step.bake_until is not None
    ]
    ready = steps[0].started_at - steps[0].requested_at  # type: ignore[operator]
    worst = max(decisions)
    return [
        Row(
            f"canary decision latency, bake end → weight change (worst of {len(decisions)})",
            worst,
            "s",
            target="<= 2 s",
            ok=worst <= 2.0,
        ),
        Row(
            "candidate ready, UpdateEndpoint → both variants serving",
            ready,
            "s",
            target="<= 1.5 s",
            ok=ready <= 1.5,
        ),
    ]
