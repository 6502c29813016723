"""await_approval: a decision on a model package, in the Airflow UI or in the registry,
whichever comes first.

``AwaitApprovalOperator`` is the standard provider's ApprovalOperator (the request shows
in the UI's Required Actions with the candidate's metrics beside production's) that, where
the provider parks the task awaiting input, defers instead to ``ApprovalTrigger``: the
provider's HITLTrigger (it sees a UI response and applies the timeout) that also watches
the package's ``ModelApprovalStatus`` in the registry. A UI response resumes the task
directly (the API resumes a deferred HITL task as it does a parked one) or through the
trigger; a decision in Studio, the CLI or boto3 resumes it through the trigger. One task,
one decision: the other channel is then closed (a UI decision is written to the registry
with UpdateModelPackage and an ApprovalDescription naming who and when; a registry
decision is recorded as the HITL response, so the UI shows it answered).

``ModelApprovalSensor`` is the registry half alone, for DAGs without a UI step.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.providers.standard.triggers.hitl import HITLTrigger
from airflow.sdk import BaseSensorOperator
from airflow.triggers.base import BaseTrigger, TriggerEvent

if TYPE_CHECKING:
    from airflow.sdk import Context

DECIDED = ("Approved", "Rejected")
COMPARED = (
    ("pr_auc", "PR-AUC"),
    ("auc", "ROC-AUC"),
    ("precision", "precision at threshold"),
    ("recall", "recall at threshold"),
)


# -- pure --------------------------------------------------------------------------------------
def registry_decision(package: Mapping[str, Any]) -> dict[str, Any] | None:
    """The registry's decision on a package (None while it is pending)."""
    status = package.get("ModelApprovalStatus")
    if status not in DECIDED:
        return None
    by = package.get("LastModifiedBy") or {}
    who = by.get("UserProfileName") or by.get("IamIdentity", {}).get("Arn") or "the registry"
    at = package.get("LastModifiedTime")
    return {
        "source": "registry",
        "status": status,
        "by": who,
        "at": at.isoformat() if isinstance(at, dt.datetime) else str(at or ""),
        "description": package.get("ApprovalDescription", ""),
    }


def approval_description(decision: str, user: str, at: dt.datetime) -> str:
    """What UpdateModelPackage records for a decision taken in Airflow."""
    return f"{decision} in Airflow (model_deploy) by {user} at {at.isoformat(timespec='seconds')}"


def comparison_body(
    candidate: Mapping[str, Any],
    candidate_metrics: Mapping[str, float],
    production: Mapping[str, Any] | None,
    production_metrics: Mapping[str, float] | None,
) -> str:
    """Markdown for the UI: the candidate's metrics and lineage beside production's."""

    def lineage(package: Mapping[str, Any] | None, key: str) -> str:
        if package is None:
            return "-"
        props = package.get("CustomerMetadataProperties") or {}
        if key == "window":
            start, end = props.get("data_window_start"), props.get("data_window_end")
            return f"{start}..{end}" if start else "-"
        if key == "trained_by":
            return (package.get("MetadataProperties") or {}).get("GeneratedBy") or props.get(
                "run_id", "-"
            )
        return str(props.get(key, "-"))

    def number(metrics: Mapping[str, float] | None, name: str) -> str:
        value = (metrics or {}).get(name)
        return "-" if value is None else f"{value:.4f}"

    version = f"version {candidate.get('ModelPackageVersion')}"
    prod = f"version {production.get('ModelPackageVersion')}" if production else "none yet"
    rows = [
        f"| | candidate ({version}) | production ({prod}) |",
        "|---|---|---|",
        *(
            f"| {label} | {number(candidate_metrics, key)} | {number(production_metrics, key)} |"
            for key, label in COMPARED
        ),
        f"| threshold | {number(candidate_metrics, 'threshold')} | "
        f"{number(production_metrics, 'threshold')} |",
        f"| data window | {lineage(candidate, 'window')} | {lineage(production, 'window')} |",
        f"| code version | {lineage(candidate, 'code_version')} | "
        f"{lineage(production, 'code_version')} |",
        f"| trained by | {lineage(candidate, 'trained_by')} | "
        f"{lineage(production, 'trained_by')} |",
    ]
    return "\n".join(
        [
            f"**{candidate.get('ModelPackageArn')}**",
            "",
            *rows,
            "",
            "Approve to deploy it to staging, smoke-test it and release it by the canary plan; "
            "a decision in the Model Registry (Studio, CLI) counts as well.",
        ]
    )


# -- triggers ----------------------------------------------------------------------------------
async def _describe_package(aws_conn_id: str | None, arn: str) -> dict[str, Any]:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    def describe() -> dict[str, Any]:
        sm = AwsBaseHook(aws_conn_id=aws_conn_id, client_type="sagemaker").get_conn()
        return sm.describe_model_package(ModelPackageName=arn)

    return await asyncio.to_thread(describe)


class ModelApprovalTrigger(BaseTrigger):
    """Fires when the package's ModelApprovalStatus is Approved or Rejected."""

    def __init__(
        self, *, package_arn: str, poll_seconds: float = 15.0, aws_conn_id: str | None = None
    ) -> None:
        super().__init__()
        self.package_arn = package_arn
        self.poll_seconds = poll_seconds
        self.aws_conn_id = aws_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "package_arn": self.package_arn,
                "poll_seconds": self.poll_seconds,
                "aws_conn_id": self.aws_conn_id,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            decision = registry_decision(
                await _describe_package(self.aws_conn_id, self.package_arn)
            )
            if decision:
                yield TriggerEvent(decision)
                return
            await asyncio.sleep(self.poll_seconds)


class ApprovalTrigger(HITLTrigger):
    """HITLTrigger (a UI response, or the timeout's default) that also fires on a decision
    in the registry."""

    def __init__(self, *, package_arn: str, aws_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.package_arn = package_arn
        self.aws_conn_id = aws_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {**kwargs, "package_arn": self.package_arn, "aws_conn_id": self.aws_conn_id},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow.sdk.timezone import utcnow

        while True:
            decision = registry_decision(
                await _describe_package(self.aws_conn_id, self.package_arn)
            )
            if decision:
                self.log.info(
                    "package %s %s in the registry by %s",
                    self.package_arn,
                    decision["status"],
                    decision["by"],
                )
                yield TriggerEvent(decision)
                return
            # the HITL request is readable on a triggerer; dag.test()'s in-process runner
            # answers None, and then only the registry and the clock can decide
            hitl = await self._hitl_readable()
            if self.timeout_datetime and self.timeout_datetime < utcnow():
                if hitl:
                    yield await self._handle_timeout()
                else:
                    yield TriggerEvent(
                        {
                            "chosen_options": list(self.defaults or []),
                            "params_input": {},
                            "responded_at": utcnow(),
                            "responded_by_user": None,
                            "timedout": True,
                        }
                    )
                return
            if hitl:
                event = await self._handle_response()
                if event:
                    yield event
                    return
            await asyncio.sleep(self.poke_interval)

    async def _hitl_readable(self) -> bool:
        from airflow.sdk.execution_time.hitl import get_hitl_detail_content_detail
        from asgiref.sync import sync_to_async

        return await sync_to_async(get_hitl_detail_content_detail)(ti_id=self.ti_id) is not None


# -- operators ---------------------------------------------------------------------------------
class AwaitApprovalOperator(ApprovalOperator):
    """Approve or reject a model package in the Airflow UI or in the Model Registry.

    Approve lets the run go on; Reject, or no decision within ``response_timeout``, skips
    everything downstream (the run ends without deploying) and says why. A UI decision is
    written to the registry; a timeout leaves the package pending.

    :param package_arn: the package to decide on (templated)
    :param body: markdown shown with the request (templated): the metrics comparison
    """

    template_fields: Sequence[str] = (*ApprovalOperator.template_fields, "package_arn")

    def __init__(
        self,
        *,
        package_arn: str,
        aws_conn_id: str | None = "aws_default",
        poll_seconds: float = 15.0,
        **kwargs: Any,
    ) -> None:
        # a timeout chooses Reject: the run ends cleanly, nothing deployed
        kwargs.setdefault("defaults", [self.REJECT])
        super().__init__(**kwargs)
        self.package_arn = package_arn
        self.aws_conn_id = aws_conn_id
        self.poll_seconds = poll_seconds

    def execute(self, context: Context) -> Any:
        from airflow.sdk.execution_time.hitl import upsert_hitl_detail
        from airflow.sdk.timezone import utcnow

        ti_id = context["task_instance"].id
        upsert_hitl_detail(
            ti_id=ti_id,
            options=self.options,
            subject=self.subject,
            body=self.body,
            defaults=self.defaults,
            multiple=self.multiple,
            params=self.serialized_params,
            assigned_users=self.assigned_users,
        )
        timeout = utcnow() + self.response_timeout if self.response_timeout else None
        self.log.info(
            "waiting for a decision on %s: Approve/Reject in the Airflow UI (Required Actions), "
            "or ModelApprovalStatus in the Model Registry%s",
            self.package_arn,
            f"; Reject by default at {timeout.isoformat(timespec='seconds')}" if timeout else "",
        )
        for notifier in self.notifiers:
            notifier(context)
        self.defer(
            trigger=ApprovalTrigger(
                ti_id=ti_id,
                options=self.options,
                defaults=self.defaults,
                params=self.serialized_params,
                multiple=self.multiple,
                timeout_datetime=timeout,
                poke_interval=self.poll_seconds,
                package_arn=self.package_arn,
                aws_conn_id=self.aws_conn_id,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        from airflow.sdk.timezone import utcnow

        if event.get("source") == "registry":
            decision = event["status"]
            self.log.info(
                "%s in the Model Registry by %s at %s%s",
                decision,
                event["by"],
                event["at"],
                f": {event['description']}" if event.get("description") else "",
            )
            option = self.APPROVE if decision == "Approved" else self.REJECT
            self._record_in_airflow(context, option)
            event = {
                "chosen_options": [option],
                "params_input": {},
                "responded_at": utcnow(),
                "responded_by_user": {"id": "registry", "name": str(event["by"])},
                "timedout": False,
            }
        elif event.get("timedout"):
            self.log.warning(
                "no decision on %s within %s: nothing is deployed and the package stays "
                "PendingManualApproval; approve it and trigger model_deploy again",
                self.package_arn,
                self.response_timeout,
            )
        elif "chosen_options" in event:
            option = event["chosen_options"][0]
            user = (event.get("responded_by_user") or {}).get("name") or "an Airflow user"
            at = event.get("responded_at") or utcnow()
            if isinstance(at, str):
                at = dt.datetime.fromisoformat(at)
            self._record_in_registry(option, user, at)
        if event["chosen_options"][0] == self.REJECT:
            # before the provider's skip, which ends execution by raising
            self.log.info("%s was not approved: nothing is deployed", self.package_arn)
        return super().execute_complete(context, event)

    def _record_in_registry(self, option: str, user: str, at: dt.datetime) -> None:
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        status = "Approved" if option == self.APPROVE else "Rejected"
        SageMakerHook(aws_conn_id=self.aws_conn_id).conn.update_model_package(
            ModelPackageArn=self.package_arn,
            ModelApprovalStatus=status,
            ApprovalDescription=approval_description(status, user, at),
        )
        self.log.info("recorded in the registry: %s %s by %s", self.package_arn, status, user)

    def _record_in_airflow(self, context: Context, option: str) -> None:
        """Answer the UI's request with the registry's decision, so it no longer waits."""
        from airflow.sdk.execution_time.hitl import update_hitl_detail_response

        try:
            update_hitl_detail_response(
                ti_id=context["task_instance"].id, chosen_options=[option], params_input={}
            )
        except Exception as error:  # answered in the UI meanwhile: the registry decided first
            self.log.info("the UI request was already answered (%s)", error)


class ModelApprovalSensor(BaseSensorOperator):
    """Waits (deferred) until a model package is Approved; Rejected fails the task.

    :param package_arn: the package (templated)
    """

    template_fields: Sequence[str] = ("package_arn",)

    def __init__(
        self,
        *,
        package_arn: str,
        aws_conn_id: str | None = "aws_default",
        poll_seconds: float = 15.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.package_arn = package_arn
        self.aws_conn_id = aws_conn_id
        self.poll_seconds = poll_seconds

    def execute(self, context: Context) -> Any:
        self.defer(
            trigger=ModelApprovalTrigger(
                package_arn=self.package_arn,
                poll_seconds=self.poll_seconds,
                aws_conn_id=self.aws_conn_id,
            ),
            method_name="execute_complete",
            timeout=dt.timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        if event["status"] != "Approved":
            raise AirflowFailException(
                f"{self.package_arn} was {event['status']} by {event['by']} at {event['at']}"
            )
        return event


# -- finding the package and what to show -----------------------------------------------------
class NothingToApprove(LookupError):
    """No package is waiting for a decision."""


def newest_pending(sm: Any, group: str) -> str:
    from mlops_pipeline import registry

    arn = registry.newest_arn(sm, group, "PendingManualApproval")
    if arn is None:
        raise NothingToApprove(
            f"no package of group {group!r} is PendingManualApproval: run model_build, or "
            "trigger model_deploy with a package_arn"
        )
    return arn


def describe_for_review(
    sm: Any, s3: Any, settings: Any, package_arn: str
) -> tuple[dict[str, Any], str]:
    """The package (checked to be of the settings' group) and the markdown comparing it
    with the package the production endpoint serves (else the newest Approved one)."""
    from mlops_pipeline.deploy import hosting
    from mlops_pipeline.gate import flatten_metrics
    from mlops_pipeline.operators.registration import latest_approved

    package = sm.describe_model_package(ModelPackageName=package_arn)
    if package.get("ModelPackageGroupName") != settings.model_package_group:
        raise hosting.DeployError(
            f"package {package_arn} belongs to group {package.get('ModelPackageGroupName')!r}, "
            f"not {settings.model_package_group!r} (MLOPS_MODEL_PACKAGE_GROUP): give a package "
            "of the group"
        )
    production_arn = None
    endpoint = hosting.describe_endpoint(sm, settings.deploy_endpoint_name)
    if endpoint is not None:
        serving = hosting.serving_variants(sm, endpoint)
        production_arn = next((v["PackageArn"] for v in serving if v["PackageArn"]), None)
    if production_arn is None:
        production_arn, _ = latest_approved(sm, settings.model_package_group)
    production = (
        sm.describe_model_package(ModelPackageName=production_arn)
        if production_arn and production_arn != package_arn
        else None
    )

    def metrics(pkg: Mapping[str, Any] | None) -> dict[str, float] | None:
        uri = (
            (pkg or {}).get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {})
        ).get("S3Uri")
        if not uri:
            return None
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        try:
            import json

            report = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except Exception:  # the comparison is shown without it; the decision is the human's
            return None
        flat = flatten_metrics(report)
        if isinstance(report.get("threshold"), Mapping) and "value" in report["threshold"]:
            flat["threshold"] = float(report["threshold"]["value"])
        return flat

    body = comparison_body(package, metrics(package) or {}, production, metrics(production))
    return package, body
