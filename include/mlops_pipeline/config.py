"""One typed settings object for the whole pipeline, chosen by profile from the environment.

Profiles differ only in defaults: ``local`` (local_aws on a laptop) and ``aws`` (a real
account, where KMS keys, VPC config and network isolation apply when given). Every field
can be overridden by an environment variable ``MLOPS_<FIELD>`` (upper case), so the same
DAG files run in both places; nothing in dags/ or the operators branches on the profile.
Reading settings touches no network: safe at DAG parse time.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args, get_type_hints

Profile = Literal["local", "aws"]

# SageMaker framework images (sagemaker.image_uris.retrieve(...) for us-east-1); local_aws
# runs these on its own Python, AWS pulls them from ECR.
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
# Great Expectations 1.x needs Python >= 3.10: the py312 build of the scikit-learn image has it,
# the 1.2-1 image (Python 3.9) does not.
QUALITY_IMAGE = (
    "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-py312-cpu-py3"
)


DEFAULT_TUNING_RANGES = {
    "max_depth": "int:3:8",
    "eta": "continuous:0.03:0.3:Logarithmic",
    "min_child_weight": "continuous:1:10",
    "subsample": "continuous:0.6:1.0",
    "colsample_bytree": "continuous:0.5:1.0",
}
DEFAULT_STATIC_HYPERPARAMETERS = {
    "num_round": "300",
    "early_stopping_rounds": "20",
    "eval_metric": "aucpr",
    "objective": "binary:logistic",
    "checkpoint_frequency": "10",
}
# the demo data allow ~0.9 ROC-AUC (a quarter of the fraud is camouflaged as normal traffic)
DEFAULT_GATE_THRESHOLDS = {"pr_auc": ">=0.40", "auc": ">=0.80"}


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable and the fix."""


@dataclass(frozen=True)
class Settings:
    profile: Profile = "local"
    region: str = "us-east-1"
    aws_conn_id: str = "aws_default"
    bucket: str = "mlops-local"
    # local_aws accepts any well-formed role; on AWS this must be a real execution role
    role_arn: str = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
    sklearn_image: str = SKLEARN_IMAGE
    xgboost_image: str = XGBOOST_IMAGE
    processing_instance_type: str = "ml.m5.large"
    training_instance_type: str = "ml.m5.large"
    transform_instance_type: str = "ml.m5.large"
    endpoint_instance_type: str = "ml.m5.large"
    model_package_group: str = "card-fraud"
    # data-quality validation jobs: the image runs containers/validate.py, which pip-installs
    # quality_gx_requirement when the image lacks GX (needs internet from the job; for
    # network-isolated jobs use an image with GX baked in and leave the requirement as is)
    quality_image: str = QUALITY_IMAGE
    quality_gx_requirement: str = "great-expectations==1.24.1"
    quality_prefix: str = "quality"
    # the GX file project with the suites; empty means great_expectations/ of this repository
    gx_root: str = ""
    # model_build: the training data window, tuning, evaluation and the model quality gate
    raw_prefix: str = "raw/transactions"
    model_build_prefix: str = "model-build"
    code_prefix: str = "code"
    training_window_days: int = 7  # daily partitions up to and including the window's end
    processing_volume_gb: int = 30
    training_volume_gb: int = 30
    processing_max_runtime_seconds: int = 3600
    training_max_runtime_seconds: int = 3600
    # managed spot: cheaper, may be interrupted; train.py checkpoints and resumes
    managed_spot_training: bool = True
    spot_max_wait_seconds: int = 7200
    tuning_strategy: str = "Bayesian"
    tuning_max_jobs: int = 12
    tuning_max_parallel: int = 3
    # the objective is read from the training log by a MetricDefinition of this name
    tuning_objective_metric: str = "validation:aucpr"
    # name -> "int:MIN:MAX", "continuous:MIN:MAX[:Logarithmic]" or "categorical:A|B|C"
    tuning_ranges: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TUNING_RANGES))
    static_hyperparameters: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_STATIC_HYPERPARAMETERS)
    )
    threshold_strategy: str = "best_f1"  # or target_precision
    target_precision: float = 0.8
    # metric (as in evaluation.json) -> ">=MIN" or "<=MAX"; all must hold to register
    gate_thresholds: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_GATE_THRESHOLDS)
    )
    # metrics that must not fall below the approved model's by more than the tolerance
    gate_no_regression: tuple[str, ...] = ("pr_auc",)
    gate_regression_tolerance: float = 0.02
    # security settings applied to every job request when set (the aws profile)
    kms_key_id: str | None = None
    subnets: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    network_isolation: bool = False
    # how long a waiting task may take before it gives up
    job_timeout_seconds: int = 6 * 3600
    # between two Describe* calls of a waiting task; fractions are fine (local_aws)
    check_interval_seconds: float = 30
    # SageMaker job waits in the triggerer, holding no worker slot; false only where no
    # triggerer runs (each wait then holds a worker slot for the job's whole run)
    jobs_deferrable: bool = True
    extra: Mapping[str, str] = field(default_factory=dict)
    # model_deploy: approval, staging smoke test and the canary release (mlops_pipeline.deploy)
    deploy_endpoint_name: str = "card-fraud"  # the production endpoint
    deploy_staging_endpoint_name: str = "card-fraud-staging"
    deploy_prefix: str = "model-deploy"  # audit records: <prefix>/releases/<endpoint>/<id>.json
    deploy_instance_count: int = 1
    # steps of candidate traffic with a bake each: "10%:5m,50%:10m,100%" or a JSON list
    # [{"weight": 10, "bake": "5m"}, ...]; the last step is 100 (its bake is optional)
    deploy_canary_plan: str = "10%:5m,50%:10m,100%"
    # CloudWatch period the analysis reads (SageMaker publishes endpoint metrics per minute)
    # and how long after a bake its datapoints are complete
    deploy_metric_period_seconds: int = 60
    deploy_metrics_delay_seconds: float = 120
    deploy_min_invocations: int = 100  # per variant and bake; fewer (or none) fails the step
    deploy_max_error_rate_increase: float = 0.01  # candidate 5XX rate minus the baseline's
    deploy_max_latency_ratio: float = 1.5  # candidate ModelLatency over the baseline's...
    deploy_latency_slack_ms: float = 5.0  # ...plus this, so 1 ms vs 2 ms is not a regression
    deploy_max_latency_ms: float = 1000.0  # candidate ModelLatency, absolute
    deploy_failure_budget: int = 0  # failed analyses tolerated (each re-bakes its step)
    # "stepped": our steps and analysis; "native": the same plan handed to SageMaker's
    # BlueGreenUpdatePolicy, rolled back by CloudWatch alarms on the same bounds
    deploy_canary_mode: str = "stepped"
    # traffic replay during bakes: requests per second sent to EACH variant (TargetVariant)
    # with sample rows, so a quiet endpoint still reaches a verdict; 0 = live traffic only
    deploy_replay_rate: float = 0.0
    deploy_sample_rows: int = 20  # rows of the test split for the smoke test and the replay
    deploy_smoke_max_latency_ms: float = 2000.0  # per InvokeEndpoint of the smoke test
    deploy_approval_timeout_hours: float = 72.0
    deploy_poll_seconds: float = 15.0  # endpoint status and approval polls while deferred
    # Application Auto Scaling of the production variant (target tracking on
    # SageMakerVariantInvocationsPerInstance), re-registered for the variant each promotion;
    # max 0 = none
    deploy_autoscaling_min_instances: int = 1
    deploy_autoscaling_max_instances: int = 0
    deploy_autoscaling_target_invocations: float = 70.0  # per instance and minute
    # cost and alerts
    cost_prefix: str = "cost"  # s3://<bucket>/<cost_prefix>/<dag_id>/...: one record per run
    # a JSON price table shaped like mlops_pipeline/cost/prices.json; empty: the bundled one
    price_table: str = ""
    # dag_id -> budget per run in USD, e.g. {"model_build": "2.50"}; a run over it alerts
    cost_budgets: Mapping[str, str] = field(default_factory=dict)
    # the cost history a run is judged against (online normal, as the data-quality checks)
    cost_anomaly_history_runs: int = 30
    cost_anomaly_deviation_factor: float = 3.0
    # the listener gives up on one run's record after this long (logged, never raised)
    cost_timeout_seconds: float = 60
    # the Slack Incoming Webhook connection failure alerts go to; missing: the alerts file
    slack_webhook_conn_id: str = "slack_alerts"
    # alerts are also appended here when Slack is not configured or fails (JSON lines);
    # a relative path is under AIRFLOW_HOME
    alerts_file: str = "alerts/alerts.jsonl"
    alert_retries: int = 2  # further tries when Slack is unreachable or answers 5xx/429
    alert_timeout_seconds: int = 5
    # batch_inference
    predictions_prefix: str = "predictions"  # published: <prefix>/dt=YYYY-MM-DD/
    batch_prefix: str = "batch-inference"  # transform staging output and drift reports
    batch_max_active_runs: int = 3  # a backfill scores this many dates at once
    batch_start_date: str = "2026-01-01"  # the first day scored (catchup starts here)
    # the day's raw partition is complete when this marker is there (datagen writes it last)
    partition_marker: str = "_SUCCESS"
    partition_timeout_seconds: int = 6 * 3600
    partition_poke_seconds: float = 300
    # the triggerer waits, not a worker slot; off only where no triggerer runs
    partition_sensor_deferrable: bool = True
    transform_instance_count: int = 1
    transform_max_concurrent: int = 2
    transform_max_payload_mb: int = 6
    transform_max_runtime_seconds: int = 3600
    # population stability index: < 0.1 stable, 0.1-0.2 moderate, > 0.2 a real shift
    drift_psi_threshold: float = 0.2
    drift_top_features: int = 3

    def s3_uri(self, *parts: str) -> str:
        """s3://<bucket>/<parts joined by '/'>."""
        path = "/".join(p.strip("/") for p in parts if p)
        return f"s3://{self.bucket}/{path}"

    @property
    def vpc_config(self) -> dict[str, list[str]] | None:
        if not self.subnets:
            return None
        return {"Subnets": list(self.subnets), "SecurityGroupIds": list(self.security_group_ids)}


PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "local": {
        # local_aws answers a Describe* in milliseconds: poll often, notice job ends sooner
        # (half a second per job ended is most of Airflow's share of a demo run)
        "check_interval_seconds": 0.5,
        "partition_poke_seconds": 1,
        # a laptop: few, small child jobs, one xgboost thread each so they do not fight
        "tuning_max_jobs": 4,
        "tuning_max_parallel": 2,
        "static_hyperparameters": {**DEFAULT_STATIC_HYPERPARAMETERS, "nthread": "1"},
        # model_deploy: local_aws stamps endpoint metrics per second and publishes them
        # before any metric read, so a bake's datapoints are complete when it ends
        "deploy_canary_plan": "10%:30s,50%:30s,100%",
        "deploy_metric_period_seconds": 1,
        "deploy_metrics_delay_seconds": 0.0,
        "deploy_min_invocations": 20,
        "deploy_replay_rate": 5.0,
        "deploy_poll_seconds": 0.5,
    },
    "aws": {"bucket": "", "role_arn": "", "check_interval_seconds": 30},
}
REQUIRED_ON_AWS = ("bucket", "role_arn")


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings for ``MLOPS_PROFILE`` (default ``local``) with ``MLOPS_*`` overrides."""
    env = os.environ if env is None else env
    profile = env.get("MLOPS_PROFILE", "local")
    if profile not in get_args(Profile):
        raise SettingsError(
            f"MLOPS_PROFILE={profile!r} is not a profile: use one of {', '.join(get_args(Profile))}"
        )
    values: dict[str, Any] = {"profile": profile, **PROFILE_DEFAULTS[profile]}
    hints = get_type_hints(Settings)
    for f in fields(Settings):
        name = f"MLOPS_{f.name.upper()}"
        if f.name == "profile" or name not in env:
            continue
        values[f.name] = _parse(name, env[name], hints[f.name])
    settings = Settings(**values)
    if bool(settings.subnets) != bool(settings.security_group_ids):
        # a VpcConfig needs both (SageMaker refuses either alone); say so before any job
        given, needed = (
            ("MLOPS_SUBNETS", "MLOPS_SECURITY_GROUP_IDS")
            if settings.subnets
            else ("MLOPS_SECURITY_GROUP_IDS", "MLOPS_SUBNETS")
        )
        raise SettingsError(
            f"{given} is set but {needed} is not: a job in your VPC needs both "
            "(e.g. MLOPS_SUBNETS=subnet-0a1b,subnet-2c3d MLOPS_SECURITY_GROUP_IDS=sg-0123)"
        )
    if profile == "aws":
        missing = [f"MLOPS_{n.upper()}" for n in REQUIRED_ON_AWS if not getattr(settings, n)]
        if missing:
            raise SettingsError(
                f"the aws profile needs {', '.join(missing)}: set them in the environment "
                "(e.g. MLOPS_BUCKET=my-ml-bucket MLOPS_ROLE_ARN=arn:aws:iam::<account>:role/<role>)"
            )
    return settings


def _parse(name: str, raw: str, hint: Any) -> Any:
    text = raw.strip()
    if hint is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off", ""):
            return False
        raise SettingsError(f"{name}={raw!r} is not a boolean: use true or false")
    if hint is float:
        try:
            return float(text)
        except ValueError:
            raise SettingsError(f"{name}={raw!r} is not a number") from None
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if hint == tuple[str, ...]:
        return tuple(p.strip() for p in text.split(",") if p.strip())
    if hint == str | None:
        return text or None
    if hint == Mapping[str, str]:
        import json

        try:
            parsed = json.loads(text)
        except ValueError:
            raise SettingsError(f'{name} must be a JSON object, e.g. {{"key": "value"}}') from None
        if not isinstance(parsed, dict):
            raise SettingsError(f'{name} must be a JSON object, e.g. {{"key": "value"}}')
        return {str(k): str(v) for k, v in parsed.items()}
    return text


def replace(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, **changes)
