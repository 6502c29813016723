"""
### model_deploy: approve a model package, smoke-test it on staging, release it by canary

```
resolve_package   the package to decide on: the run's package_arn param, else the one
                  model_build's registration (Asset event) names, else the group's newest
                  PendingManualApproval
→ await_approval  Approve/Reject in the Airflow UI (Required Actions: its metrics beside
                  production's) OR in the Model Registry (Studio, CLI, boto3), whichever
                  comes first; Reject or timeout skips the rest: nothing is deployed
→ deploy_staging  the staging endpoint serves the package (created or updated)
→ smoke_test      sample rows of the package's test split: one score per row, no error,
                  each call under MLOPS_DEPLOY_SMOKE_MAX_LATENCY_MS
→ canary_release  the production endpoint: the candidate joins as a second variant and
                  takes MLOPS_DEPLOY_CANARY_PLAN's steps (e.g. 10% → 50% → 100%), each
                  baked and judged on CloudWatch per-variant metrics against the baseline
                  (5XX rate, ModelLatency, minimum calls); a failed step rolls back to
                  100% baseline and fails the run naming step, metric, value and bound;
                  the last step promotes the candidate alone. A first deployment ever
                  simply creates the endpoint.
```

**Schedule.** The `card_fraud_model_package` Asset, which model_build's `register`
publishes with the new package's ARN; or by hand with `package_arn` in the run's params
(`airflow dags trigger model_deploy --conf '{"package_arn": "arn:..."}'`).

**One approval, two places.** `await_approval` is the standard provider's ApprovalOperator
with one change: instead of parking the task awaiting input, it defers to a trigger that
is the provider's HITLTrigger plus a poll of the package's `ModelApprovalStatus`. A
response in the UI resumes the task at once (Airflow's API resumes a deferred HITL task as
it does a parked one); a decision in the registry fires the trigger. Whichever comes first
decides, and is written to the other side: a UI decision to the registry
(`UpdateModelPackage`, `ApprovalDescription` with who and when), a registry decision as the
UI request's answer. Two parallel tasks (a HITL task and a sensor) would need the winner to
cancel the loser, and a run would wait for both; one task has one decision by construction.
With no decision within MLOPS_DEPLOY_APPROVAL_TIMEOUT_HOURS the default, Reject, applies
(the package stays pending in the registry).

**Resumable release.** The canary's waits (endpoint updates, bakes) run on the triggerer,
holding no worker slot. Every step (weights, metrics, verdict, times) is written to
`s3://<bucket>/model-deploy/releases/<endpoint>/<run key>.json` as it happens; a retried or
resumed task reads it and continues the same step. XCom carries the summary only.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, chain, dag, task

from mlops_pipeline.assets import model_package_asset
from mlops_pipeline.config import load_settings
from mlops_pipeline.deploy.approval import AwaitApprovalOperator
from mlops_pipeline.deploy.operators import CanaryReleaseOperator, StagingEndpointOperator
from mlops_pipeline.notifications import alerting_args

settings = load_settings()  # environment only: no network at parse time


@dag(
    schedule=[model_package_asset()],
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,  # one release at a time on the production endpoint
    description="Approve a registered model, smoke-test it on staging, canary-release it to production",
    doc_md=__doc__,
    tags=["ml", "card-fraud", "sagemaker", "deployment"],
    params={
        "package_arn": Param(
            None,
            type=["null", "string"],
            description="The model package to deploy; empty: the registration that "
            "triggered the run, else the group's newest PendingManualApproval package",
        )
    },
    # every failed task alerts (Slack, else the alerts file): mlops_pipeline.notifications
    default_args={**alerting_args(), "retries": 1, "retry_delay": dt.timedelta(seconds=30)},
)
def model_deploy():
    @task(multiple_outputs=True)
    def resolve_package(**context) -> dict:
        """The package ARN and the markdown shown for the decision."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
        from airflow.sdk.exceptions import AirflowFailException

        from mlops_pipeline.assets import registered_package
        from mlops_pipeline.deploy import approval, hosting

        sm, s3 = SageMakerHook().conn, S3Hook().get_conn()
        try:
            arn = (
                context["params"].get("package_arn")
                or registered_package(context["triggering_asset_events"])
                or approval.newest_pending(sm, settings.model_package_group)
            )
            package, body = approval.describe_for_review(sm, s3, settings, arn)
        except (approval.NothingToApprove, hosting.DeployError) as error:
            raise AirflowFailException(str(error)) from None
        return {
            "package_arn": arn,
            "subject": f"Deploy {settings.model_package_group} version "
            f"{package.get('ModelPackageVersion')} to {settings.deploy_endpoint_name}?",
            "body": body,
        }

    @task
    def smoke_test(staging: dict, package_arn: str) -> str:
        """Score sample rows of the package's test split on the staging endpoint."""
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
        from airflow.sdk.exceptions import AirflowFailException

        from mlops_pipeline.deploy import hosting
        from mlops_pipeline.deploy.smoke import SmokeError, smoke_test

        package = SageMakerHook().conn.describe_model_package(ModelPackageName=package_arn)
        rows = hosting.read_sample_rows(
            S3Hook().get_conn(), hosting.test_split_uri(package), settings.deploy_sample_rows
        )
        runtime = AwsBaseHook(client_type="sagemaker-runtime").get_conn()
        try:
            result = smoke_test(
                runtime, staging["endpoint_name"], rows, settings.deploy_smoke_max_latency_ms
            )
        except SmokeError as error:
            raise AirflowFailException(
                f"smoke test of {staging['endpoint_name']}: {error}"
            ) from None
        print(f"smoke test of {staging['endpoint_name']} passed: {result.text()}")
        return result.text()

    package = resolve_package()
    await_approval = AwaitApprovalOperator(
        task_id="await_approval",
        package_arn=package["package_arn"],
        subject=package["subject"],
        body=package["body"],
        response_timeout=dt.timedelta(hours=settings.deploy_approval_timeout_hours),
        poll_seconds=settings.deploy_poll_seconds,
    )
    deploy_staging = StagingEndpointOperator(
        task_id="deploy_staging", package_arn=package["package_arn"]
    )
    smoke = smoke_test(deploy_staging.output, package["package_arn"])
    canary_release = CanaryReleaseOperator(
        task_id="canary_release", package_arn=package["package_arn"]
    )

    chain(package, await_approval, deploy_staging, smoke, canary_release)


model_deploy()
