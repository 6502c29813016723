"""The canary release operator, thin over its parts, and the staging endpoint operator.

Each time the canary task runs (first try, a resume from its trigger, a retry after a
lost worker) it reads the release record from S3 and moves the endpoint one transition
further (``machine``), writing the record after every change; waits are deferred to
``CanaryTrigger``. The parts: ``session`` (settings, clients, the record), ``starting``
(the first move, native mode included), ``machine`` (steps and endpoint changes),
``judging`` (the analysis calls, autoscaling), ``outcome`` (summary, rollback alert).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.sagemaker import SageMakerEndpointOperator
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from mlops_pipeline.deploy import hosting
from mlops_pipeline.deploy.release import Release
from mlops_pipeline.links import SageMakerLogsLink, SageMakerResourceLink, persist_link

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_pipeline.config import Settings
    from mlops_pipeline.deploy.session import ReleaseSession


class CanaryReleaseOperator(BaseOperator):
    """Release a model package onto the production endpoint by a canary plan.

    The candidate joins the endpoint as a second production variant (a new EndpointConfig,
    UpdateEndpoint); each step sets the weights (UpdateEndpointWeightsAndCapacities), bakes
    and is judged on CloudWatch per-variant metrics against the baseline. A failed step
    beyond the failure budget rolls back (100% baseline, then the baseline's own config:
    the candidate is removed) and fails the task naming the step, metric, value and bound;
    the last step promotes (an EndpointConfig with the candidate alone). An endpoint that
    does not exist yet is simply created. Every step is recorded as JSON in S3.

    :param package_arn: the Approved model package to release (templated)
    :param endpoint_name: the production endpoint (templated; default from settings)
    :param plan: the canary plan (default: MLOPS_DEPLOY_CANARY_PLAN)
    :return: the release summary (status, packages, one word per step, reason)
    """

    template_fields: Sequence[str] = ("package_arn", "endpoint_name", "plan")
    ui_color = "#c7e9c0"
    operator_extra_links = (SageMakerResourceLink(), SageMakerLogsLink())

    def __init__(
        self,
        *,
        package_arn: str,
        endpoint_name: str | None = None,
        plan: str | None = None,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.package_arn = package_arn
        self.endpoint_name = endpoint_name
        self.plan = plan
        self.aws_conn_id = aws_conn_id

    def _settings(self) -> Settings:
        from mlops_pipeline.config import load_settings

        return load_settings()

    def _client(self, service: str) -> Any:
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        return AwsBaseHook(aws_conn_id=self.aws_conn_id, client_type=service).get_conn()

    def _session(self, context: Context) -> ReleaseSession:
        from mlops_pipeline.deploy.session import open_session

        self.session = open_session(
            context,
            settings=self._settings(),
            plan=self.plan,
            endpoint_name=self.endpoint_name,
            client=self._client,
            log=self.log,
        )
        # on every run of the task (first try, each resume, a retry): cheap, and the link is
        # there whichever run wrote last
        persist_link(context, self, "endpoint", self.session.endpoint)
        return self.session

    # -- entry points ---------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_pipeline.config import SettingsError
        from mlops_pipeline.deploy.starting import start_release

        try:
            session = self._session(context)
            release = session.load()
            if release is not None:
                self.log.info(
                    "resuming release %s from its record (%s, step %s): %s",
                    release.release_id,
                    release.status,
                    release.current.step if release.current else "-",
                    session.audit_uri,
                )
            else:
                release = start_release(session, self.package_arn)
        except (SettingsError, hosting.DeployError) as error:
            raise AirflowFailException(str(error)) from None
        return self._machine().advance(release, None)

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        session = self._session(context)
        release = session.load()
        if release is None:
            raise AirflowFailException(f"the release record {session.audit_uri} is gone")
        return self._machine().advance(release, event or {})

    def _machine(self) -> Any:
        from mlops_pipeline.deploy.machine import ReleaseMachine

        return ReleaseMachine(
            self.session, defer_bake=self._defer_bake, defer_in_service=self._defer_in_service
        )

    # -- waits: on the triggerer, no worker slot held ---------------------------------------------
    def _defer_in_service(self, release: Release) -> None:
        from mlops_pipeline.deploy.triggers import CanaryTrigger

        settings = self.session.settings
        self.defer(
            trigger=CanaryTrigger(
                endpoint_name=release.endpoint,
                phase="in_service",
                poll_seconds=settings.deploy_poll_seconds,
                aws_conn_id=self.aws_conn_id,
            ),
            method_name="execute_complete",
            timeout=dt.timedelta(seconds=settings.job_timeout_seconds),
        )

    def _defer_bake(self, release: Release, until: float) -> None:
        from mlops_pipeline.deploy.triggers import CanaryTrigger

        record = release.current
        assert record is not None and record.bake_until is not None
        rows: list[str] = []
        variants: list[str] = []
        settings = self.session.settings
        rate = settings.deploy_replay_rate
        if rate > 0 and release.baseline is not None:
            rows = self._replay_rows(release)
            variants = [release.candidate.variant]
            if record.weight < 100:
                variants.append(release.baseline.variant)
        self.defer(
            trigger=CanaryTrigger(
                endpoint_name=release.endpoint,
                phase="bake",
                # replay stops when the bake ends; the wait goes on until its metrics are in
                until=until,
                replay_until=record.bake_until,
                replay_seconds=record.bake_seconds,
                replay_rows=rows,
                replay_variants=variants,
                replay_rate=rate,
                poll_seconds=settings.deploy_poll_seconds,
                aws_conn_id=self.aws_conn_id,
            ),
            method_name="execute_complete",
            timeout=dt.timedelta(seconds=max(60.0, until - time.time()) * 2 + 60),
        )

    def _replay_rows(self, release: Release) -> list[str]:
        session = self.session
        package = session.sm.describe_model_package(ModelPackageName=release.candidate.package_arn)
        try:
            return hosting.read_sample_rows(
                session.s3, hosting.test_split_uri(package), session.settings.deploy_sample_rows
            )
        except hosting.DeployError as error:
            self.log.warning("no traffic replay: %s", error)
            return []


class StagingEndpointOperator(SageMakerEndpointOperator):
    """The provider's endpoint operator for the staging endpoint: the model and config are
    built from the package at run time (and reused when a retry finds them); create falls
    back to update when the endpoint exists. Returns names and ARNs only.

    :param package_arn: the package to serve (templated)
    :param endpoint_name: default: the settings' staging endpoint (templated)
    """

    template_fields: Sequence[str] = (
        *SageMakerEndpointOperator.template_fields,
        "package_arn",
        "endpoint_name",
    )
    operator_extra_links = (SageMakerResourceLink(), SageMakerLogsLink())

    def __init__(
        self, *, package_arn: str, endpoint_name: str | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("deferrable", True)
        super().__init__(config={}, **kwargs)
        self.package_arn = package_arn
        self.endpoint_name = endpoint_name

    def execute(self, context: Context) -> dict:
        from mlops_pipeline.config import load_settings
        from mlops_pipeline.operators.job_watch import job_run

        settings = load_settings()
        run = job_run(context)
        sm = self.hook.conn
        package = sm.describe_model_package(ModelPackageName=self.package_arn)
        endpoint = self.endpoint_name or settings.deploy_staging_endpoint_name
        persist_link(context, self, "endpoint", endpoint)
        model = hosting.model_name(endpoint, package, run.key)
        self.check_interval = int(max(1, settings.deploy_poll_seconds))
        self.config = {
            "Endpoint": {"EndpointName": endpoint, "EndpointConfigName": model, "Tags": run.tags}
        }
        if not _exists(sm.describe_model, ModelName=model):
            self.config["Model"] = hosting.model_request(
                settings, name=model, package=package, tags=run.tags
            )
        if not _exists(sm.describe_endpoint_config, EndpointConfigName=model):
            self.config["EndpointConfig"] = hosting.endpoint_config_request(
                settings, name=model, variants=[("AllTraffic", model, 1.0, 1)], tags=run.tags
            )
        current = hosting.describe_endpoint(sm, endpoint)
        if current is not None and current["EndpointConfigName"] == model:
            self.log.info("staging endpoint %s already serves %s", endpoint, model)
            if current["EndpointStatus"] == "InService":
                return self._result(endpoint)
        super().execute(context)
        return self._result(endpoint)

    def defer(self, *, trigger: Any, **kwargs: Any) -> Any:
        """The provider's execute defers to its SageMakerTrigger, which logs the endpoint's
        status on every poll: wait with ours instead, which logs it when it changes and
        streams the endpoint's log."""
        from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger

        from mlops_pipeline.operators.job_watch import SageMakerProgressTrigger

        if type(trigger) is SageMakerTrigger:
            trigger = SageMakerProgressTrigger(
                job_name=trigger.job_name,
                job_type=trigger.job_type,
                waiter_delay=trigger.waiter_delay,
                waiter_max_attempts=trigger.attempts,
                aws_conn_id=trigger.aws_conn_id,
                region_name=trigger.region_name,
                verify=trigger.verify,
                botocore_config=trigger.botocore_config,
            )
        return super().defer(trigger=trigger, **kwargs)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict:
        super().execute_complete(context, event)
        return self._result(str((event or {}).get("job_name")))

    def _result(self, endpoint: str) -> dict[str, Any]:
        described = self.hook.describe_endpoint(endpoint)
        if described["EndpointStatus"] != "InService":
            raise AirflowFailException(
                f"staging endpoint {endpoint} is {described['EndpointStatus']}: "
                f"{described.get('FailureReason', 'no reason given')}"
            )
        return {
            "endpoint_name": endpoint,
            "endpoint_arn": described["EndpointArn"],
            "endpoint_config": described["EndpointConfigName"],
        }


def _exists(describe: Any, **kwargs: Any) -> bool:
    from botocore.exceptions import ClientError

    try:
        describe(**kwargs)
        return True
    except ClientError:
        return False
