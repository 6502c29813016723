"""The canary release operator: thin over ``plan``, ``analysis`` and ``release``.

Each time it runs (first try, a resume from its trigger, a retry after a lost worker) it
reads the release record from S3 and moves the endpoint one transition further, writing
the record after every change; waits are deferred to ``CanaryTrigger``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.sagemaker import SageMakerEndpointOperator
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from mlops_pipeline.deploy import hosting
from mlops_pipeline.deploy.release import Release, Variant
from mlops_pipeline.links import SageMakerLogsLink, SageMakerResourceLink, persist_link

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_pipeline.config import Settings


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

    # -- clients and settings -------------------------------------------------------------------
    def _settings(self) -> Settings:
        from mlops_pipeline.config import load_settings

        return load_settings()

    def _client(self, service: str) -> Any:
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        return AwsBaseHook(aws_conn_id=self.aws_conn_id, client_type=service).get_conn()

    def _setup(self, context: Context) -> None:
        from mlops_pipeline.config import SettingsError
        from mlops_pipeline.deploy.analysis import Bounds
        from mlops_pipeline.deploy.plan import native_deployment, parse_plan
        from mlops_pipeline.operators.sagemaker import job_run

        self.settings = self._settings()
        # every rule of the plan and the bounds is checked before any traffic moves
        self.parsed_plan = parse_plan(
            self.plan or self.settings.deploy_canary_plan,
            metric_period_seconds=self.settings.deploy_metric_period_seconds,
        )
        self.bounds = Bounds.from_settings(self.settings)
        hosting.autoscaling_requests(self.settings, "check", "check")  # bad min/max: now
        self.mode = self.settings.deploy_canary_mode
        if self.mode not in ("stepped", "native"):
            raise SettingsError(f"MLOPS_DEPLOY_CANARY_MODE={self.mode!r}: use stepped or native")
        if self.mode == "native":  # a plan SageMaker cannot run is refused before traffic moves
            native_deployment(self.parsed_plan, [], self.settings.job_timeout_seconds)
        self.run = job_run(context)
        self.endpoint = self.endpoint_name or self.settings.deploy_endpoint_name
        self.sm = self._client("sagemaker")
        self.s3 = self._client("s3")
        self.audit_uri = hosting.audit_uri(self.settings, self.endpoint, self.run.key)
        # on every run of the task (first try, each resume, a retry): cheap, and the link is
        # there whichever run wrote last
        persist_link(context, self, "endpoint", self.endpoint)

    def _save(self, release: Release) -> None:
        hosting.write_record(self.s3, self.audit_uri, release.to_json())

    # -- entry points ---------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_pipeline.config import SettingsError

        try:
            self._setup(context)
            stored = hosting.read_record(self.s3, self.audit_uri)
            if stored is not None:
                release = Release.from_json(stored)
                self.log.info(
                    "resuming release %s from its record (%s, step %s): %s",
                    release.release_id,
                    release.status,
                    release.current.step if release.current else "-",
                    self.audit_uri,
                )
            else:
                release = self._start()
        except (SettingsError, hosting.DeployError) as error:
            raise AirflowFailException(str(error)) from None
        return self._advance(release, None)

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        self._setup(context)
        stored = hosting.read_record(self.s3, self.audit_uri)
        if stored is None:
            raise AirflowFailException(f"the release record {self.audit_uri} is gone")
        return self._advance(Release.from_json(stored), event or {})

    # -- starting -------------------------------------------------------------------------------
    def _start(self) -> Release:
        from mlops_pipeline.deploy.release import new_release

        package = self.sm.describe_model_package(ModelPackageName=self.package_arn)
        hosting.check_package(package, self.settings.model_package_group)
        endpoint = hosting.describe_endpoint(self.sm, self.endpoint)
        tags = self.run.tags
        now = time.time()
        candidate_variant = hosting.variant_name(package)
        model = hosting.model_name(self.endpoint, package, self.run.key)
        candidate = Variant(candidate_variant, model, package["ModelPackageArn"], model)
        baseline = None
        canary_config = None
        if endpoint is not None:
            if endpoint["EndpointStatus"] != "InService":
                raise hosting.DeployError(
                    f"endpoint {self.endpoint} is {endpoint['EndpointStatus']}: a release "
                    "starts only on an InService endpoint; wait for it or fix it first"
                )
            serving = hosting.serving_variants(self.sm, endpoint)
            if len(serving) != 1:
                raise hosting.DeployError(
                    f"endpoint {self.endpoint} serves {len(serving)} variants "
                    f"({', '.join(v['VariantName'] for v in serving)}): another release is "
                    "under way or was left half-done; finish or roll it back first"
                )
            [current] = serving
            if current["PackageArn"] == package["ModelPackageArn"]:
                release = new_release(
                    release_id=self.run.key,
                    endpoint=self.endpoint,
                    candidate=candidate,
                    baseline=None,
                    plan=self.parsed_plan,
                    bounds=vars(self.bounds),
                    canary_config=None,
                    failure_budget=self.settings.deploy_failure_budget,
                    now=now,
                    dag_id=self.run.dag_id,
                    run_id=self.run.run_id,
                )
                release.finish("unchanged", now, f"{self.endpoint} already serves this package")
                self._save(release)
                return release
            if current["VariantName"] == candidate_variant:
                candidate_variant = f"{candidate_variant}-{self.run.key}"[:63]
                candidate.variant = candidate_variant
            baseline = Variant(
                current["VariantName"],
                current["ModelName"],
                current["PackageArn"],
                endpoint["EndpointConfigName"],
            )
            canary_config = hosting.naming.job_name(self.endpoint, "canary", self.run.key)
        self._ensure_model(model, package, tags)
        self._ensure_config(
            candidate.config,
            [(candidate.variant, model, 1.0, self.settings.deploy_instance_count)],
        )
        release = new_release(
            release_id=self.run.key,
            endpoint=self.endpoint,
            candidate=candidate,
            baseline=baseline,
            plan=self.parsed_plan,
            bounds=vars(self.bounds),
            canary_config=canary_config,
            failure_budget=self.settings.deploy_failure_budget,
            now=now,
            dag_id=self.run.dag_id,
            run_id=self.run.run_id,
        )
        if baseline is not None and self.mode == "native":
            self._start_native(release)
        elif baseline is not None and canary_config is not None and endpoint is not None:
            first = self.parsed_plan.steps[0].weight
            count = next(
                (
                    int(v.get("CurrentInstanceCount") or 1)
                    for v in endpoint["ProductionVariants"]
                    if v["VariantName"] == baseline.variant
                ),
                1,
            )
            self._ensure_config(
                canary_config,
                [
                    (baseline.variant, baseline.model, 100 - first, count),
                    (candidate.variant, model, first, self.settings.deploy_instance_count),
                ],
            )
            release.begin_step(1, now)
            self.log.info(
                "canary release of %s onto %s: %s, against %s (%s)",
                candidate.package_arn,
                self.endpoint,
                self.parsed_plan.describe(),
                baseline.variant,
                baseline.package_arn or "package unknown",
            )
        else:
            self.log.info(
                "endpoint %s does not exist: first deployment, created with %s alone (no canary)",
                self.endpoint,
                candidate.package_arn,
            )
        self._save(release)
        return release

    def _start_native(self, release: Release) -> None:
        """Hand the plan to SageMaker: one UpdateEndpoint with a BlueGreenUpdatePolicy and
        alarms on the analysis's bounds; SageMaker shifts, bakes and rolls back."""
        from mlops_pipeline.deploy.plan import native_deployment

        cloudwatch = self._client("cloudwatch")
        requests = hosting.rollback_alarm_requests(
            self.settings,
            endpoint=release.endpoint,
            variant=release.candidate.variant,
            name_prefix=hosting.naming.job_name(release.endpoint, "canary", self.run.key),
            bounds=self.bounds,
        )
        for request in requests:
            cloudwatch.put_metric_alarm(**request)
        release.mode = "native"
        release.canary_config = None
        release.deployment_config = native_deployment(
            self.parsed_plan, [r["AlarmName"] for r in requests], self.settings.job_timeout_seconds
        )
        release.status = "promoting"
        self.log.info(
            "native canary release of %s onto %s: %s, by SageMaker's BlueGreenUpdatePolicy "
            "with rollback alarms %s",
            release.candidate.package_arn,
            release.endpoint,
            self.parsed_plan.describe(),
            ", ".join(r["AlarmName"] for r in requests),
        )

    def _ensure_model(self, name: str, package: dict[str, Any], tags: list[dict[str, str]]) -> None:
        from botocore.exceptions import ClientError

        try:
            self.sm.create_model(
                **hosting.model_request(self.settings, name=name, package=package, tags=tags)
            )
        except ClientError as error:
            if "already existing" not in str(error):  # a retry made it already: use it
                raise

    def _ensure_config(self, name: str, variants: list[tuple[str, str, float, int]]) -> None:
        from botocore.exceptions import ClientError

        try:
            self.sm.create_endpoint_config(
                **hosting.endpoint_config_request(
                    self.settings, name=name, variants=variants, tags=self.run.tags
                )
            )
        except ClientError as error:
            if "already existing" not in str(error):
                raise

    # -- the state machine ----------------------------------------------------------------------
    def _advance(self, release: Release, event: dict[str, Any] | None) -> dict[str, Any]:
        from mlops_pipeline.deploy.release import next_step

        if event and event.get("status") == "error":
            # the wait broke (an AWS error in the trigger), or the endpoint ended Failed; a
            # retry resumes from the record, after _converge has said which
            self.log.warning("the wait reported an error: %s", event.get("message"))
            if event.get("endpoint_status") is None:
                raise AirflowException(
                    f"waiting on endpoint {release.endpoint} failed: {event.get('message')}; "
                    f"a retry resumes release {release.release_id} from {self.audit_uri}"
                )
        while True:
            if release.finished:
                return self._done(release)
            if release.status == "baking":
                record = release.current
                assert record is not None and record.bake_until is not None
                replayed_until = float((event or {}).get("replay_until") or 0)
                if replayed_until > record.bake_until:
                    # the trigger started late and replayed a whole bake from then: the
                    # step's window is where its traffic is
                    record.bake_until = replayed_until
                    self._save(release)
                event = None  # consumed: a later loop of this step must not apply it again
                ready = record.bake_until + self.settings.deploy_metrics_delay_seconds
                if time.time() < ready:
                    self._defer_bake(release, ready)
                move = self._judge(release)
                self._save(release)
                if move == "next":
                    index = next_step(release)
                    assert index is not None
                    release.begin_step(index, time.time())
                    self._save(release)
                elif move == "rebake":
                    assert release.current is not None
                    release.begin_step(release.current.step, time.time())
                    self._save(release)
                continue
            # creating, shifting, promoting, rolling_back: converge the endpoint, then move on
            if not self._converge(release):
                self._save(release)
                self._defer_in_service(release)
            now = time.time()
            if release.status in ("creating", "promoting"):
                self._autoscale(release)
            if release.status == "creating":
                release.finish("created", now)
            elif release.status == "shifting":
                record = release.serving(now)
                self.log.info(
                    "step %d: %d%% of %s on %s from %s",
                    record.step,
                    record.weight,
                    release.endpoint,
                    release.candidate.variant,
                    dt.datetime.fromtimestamp(now, dt.UTC).isoformat(timespec="seconds"),
                )
                if record.bake_seconds <= 0:  # the last 100% step without a bake
                    release.status = "promoting"
            elif release.status == "promoting":
                release.finish("promoted", now)
            elif release.status == "rolling_back":
                release.finish("rolled_back", now)
            self._save(release)

    def _converge(self, release: Release) -> bool:
        """True when the endpoint is where the release's status wants it, InService;
        otherwise asks for the next change (once) and returns False."""
        endpoint = hosting.describe_endpoint(self.sm, release.endpoint)
        status = endpoint["EndpointStatus"] if endpoint else None
        if status in hosting.TRANSITIONS:
            return False
        if endpoint is None:
            if release.status != "creating":
                raise AirflowFailException(f"endpoint {release.endpoint} was deleted mid-release")
            self.sm.create_endpoint(
                EndpointName=release.endpoint,
                EndpointConfigName=release.candidate.config,
                Tags=self.run.tags,
            )
            return False
        if status == "Failed":
            raise AirflowFailException(
                f"endpoint {release.endpoint} is Failed: {endpoint.get('FailureReason')}"
            )
        config = endpoint["EndpointConfigName"]
        weights = hosting.current_weights(endpoint)
        if release.status == "creating":
            return config == release.candidate.config
        if release.status == "promoting":
            return self._update_config(release, endpoint, release.candidate.config)
        if release.status == "rolling_back":
            assert release.baseline is not None
            if config == release.canary_config and weights.get(release.candidate.variant, 0) > 0:
                # traffic off the candidate first (seconds), then its variant removed
                return self._update_weights(release, release.weights(0))
            return self._update_config(release, endpoint, release.baseline.config)
        # shifting
        record = release.current
        assert record is not None and release.canary_config is not None
        if config != release.canary_config:
            if len(release.steps) > 1:
                raise AirflowFailException(
                    f"endpoint {release.endpoint} no longer runs the release's config "
                    f"{release.canary_config} (it runs {config}): someone changed it mid-release"
                )
            return self._update_config(release, endpoint, release.canary_config)
        wanted = release.weights(record.weight)
        if hosting.weights_match(weights, wanted):
            return True
        return self._update_weights(release, wanted)

    def _update_config(self, release: Release, endpoint: dict[str, Any], config: str) -> bool:
        if endpoint["EndpointConfigName"] == config:
            release.asked = None
            return True
        if release.asked == f"config:{config}":
            # asked before, and the endpoint is InService on another config: SageMaker
            # rolled the update back (a variant that did not start, an alarm)
            reason = endpoint.get("FailureReason") or "no FailureReason given"
            if release.mode == "native" and release.status == "promoting":
                # an update that rolled back ends InService with a FailureReason: failed
                release.finish("rolled_back", time.time(), f"SageMaker rolled back: {reason}")
                self._save(release)
                return self._fail(release)
            if release.status == "shifting":
                release.finish(
                    "rolled_back",
                    time.time(),
                    f"the candidate variant never served: UpdateEndpoint to {config} failed "
                    f"({reason})",
                )
                self._save(release)
                return self._fail(release)
            raise AirflowFailException(
                f"UpdateEndpoint of {release.endpoint} to {config} failed: {reason}; the "
                f"release record ({self.audit_uri}) is {release.status}: clear the task to retry"
            )
        self.log.info("UpdateEndpoint %s → %s", release.endpoint, config)
        request: dict[str, Any] = {"EndpointName": release.endpoint, "EndpointConfigName": config}
        if release.deployment_config and config == release.candidate.config:
            request["DeploymentConfig"] = release.deployment_config
        self.sm.update_endpoint(**request)
        release.asked = f"config:{config}"
        return False

    def _update_weights(self, release: Release, wanted: dict[str, int]) -> bool:
        self.log.info(
            "UpdateEndpointWeightsAndCapacities %s: %s",
            release.endpoint,
            ", ".join(f"{k}={v}" for k, v in wanted.items()),
        )
        self.sm.update_endpoint_weights_and_capacities(
            EndpointName=release.endpoint,
            DesiredWeightsAndCapacities=[
                {"VariantName": k, "DesiredWeight": float(v)} for k, v in wanted.items()
            ],
        )
        return False

    def _autoscale(self, release: Release) -> None:
        """Target tracking for the variant that now serves alone; the previous variant's
        scalable target goes with it (its resource no longer exists)."""
        requests = hosting.autoscaling_requests(
            self.settings, release.endpoint, release.candidate.variant
        )
        if requests is None:
            return
        scaling = self._client("application-autoscaling")
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
        self.log.info(
            "autoscaling %s: %d..%d instances, target %g invocations per instance",
            target["ResourceId"],
            target["MinCapacity"],
            target["MaxCapacity"],
            self.settings.deploy_autoscaling_target_invocations,
        )

    def _judge(self, release: Release) -> str:
        from mlops_pipeline.deploy.analysis import analyse

        record = release.current
        assert record is not None and record.started_at is not None
        assert record.bake_until is not None and release.baseline is not None
        cloudwatch = self._client("cloudwatch")
        period = self.settings.deploy_metric_period_seconds
        # CloudWatch stamps a datapoint with its period's start: the window covers the bake
        # up to the period that holds its end
        end = record.bake_until + period
        stats = {
            v.variant: hosting.variant_window_stats(
                cloudwatch, release.endpoint, v.variant, record.started_at, end, period
            )
            for v in (release.candidate, release.baseline)
        }
        baseline = stats[release.baseline.variant]
        verdict = analyse(
            record.step,
            record.weight,
            stats[release.candidate.variant],
            baseline if baseline.invocations > 0 else None,
            self.bounds,
        )
        for check in verdict.checks:
            self.log.info("step %d: %s", record.step, check.text())
        move = release.judge(
            verdict.to_json(),
            {k: hosting.stats_json(v) for k, v in stats.items()},
            time.time(),
        )
        self.log.info("step %d verdict: %s → %s", record.step, verdict.reason(), move)
        return move

    # -- waits ----------------------------------------------------------------------------------
    def _defer_in_service(self, release: Release) -> None:
        from mlops_pipeline.deploy.triggers import CanaryTrigger

        self.defer(
            trigger=CanaryTrigger(
                endpoint_name=release.endpoint,
                phase="in_service",
                poll_seconds=self.settings.deploy_poll_seconds,
                aws_conn_id=self.aws_conn_id,
            ),
            method_name="execute_complete",
            timeout=dt.timedelta(seconds=self.settings.job_timeout_seconds),
        )

    def _defer_bake(self, release: Release, until: float) -> None:
        from mlops_pipeline.deploy.triggers import CanaryTrigger

        record = release.current
        assert record is not None and record.bake_until is not None
        rows: list[str] = []
        variants: list[str] = []
        rate = self.settings.deploy_replay_rate
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
                poll_seconds=self.settings.deploy_poll_seconds,
                aws_conn_id=self.aws_conn_id,
            ),
            method_name="execute_complete",
            timeout=dt.timedelta(seconds=max(60.0, until - time.time()) * 2 + 60),
        )

    def _replay_rows(self, release: Release) -> list[str]:
        package = self.sm.describe_model_package(ModelPackageName=release.candidate.package_arn)
        try:
            return hosting.read_sample_rows(
                self.s3, hosting.test_split_uri(package), self.settings.deploy_sample_rows
            )
        except hosting.DeployError as error:
            self.log.warning("no traffic replay: %s", error)
            return []

    # -- the end --------------------------------------------------------------------------------
    def _done(self, release: Release) -> dict[str, Any]:
        from mlops_pipeline.deploy.release import step_lines

        lines = "\n".join(f"  {line}" for line in step_lines(release))
        summary = release.summary()
        if release.status == "rolled_back":
            self._fail(release)
        self.log.info(
            "release %s of %s onto %s: %s%s\n%s\naudit record: %s",
            release.release_id,
            release.candidate.package_arn,
            release.endpoint,
            release.status,
            f" (previous package {summary['previous_package']})"
            if summary["previous_package"]
            else "",
            lines,
            self.audit_uri,
        )
        return {**summary, "audit_uri": self.audit_uri}

    def _fail(self, release: Release) -> Any:
        from mlops_pipeline.deploy.release import step_lines
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
                self.dag_id,
                release.endpoint,
                f"{failed.step} ({failed.weight}%)" if failed else "-",
                metrics,
                release.reason or "rolled back",
                task_id=self.task_id,
            ),
            self.settings,
            logger=self.log,
        )
        error = AirflowFailException(
            f"canary release of {release.candidate.package_arn} onto {release.endpoint} ROLLED "
            f"BACK: {release.reason}; {baseline} serves 100% again\n{lines}\n"
            f"audit record: {self.audit_uri}"
        )
        setattr(error, ALERTED, True)
        raise error


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
        from mlops_pipeline.operators.sagemaker import job_run

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

        from mlops_pipeline.operators.sagemaker import SageMakerProgressTrigger

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
