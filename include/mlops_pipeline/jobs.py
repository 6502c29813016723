"""Pure builders of model_build's SageMaker requests, from one Settings object and the run.

Every builder returns a boto-shaped dict (validated against botocore's service model in
the tests) and touches nothing: names, S3 locations and upstream results come in as
arguments. The aws profile's security settings (KMS key, VPC, network isolation) are
applied here, to every request, when they are set.

S3 layout of one run (``<root>`` = ``s3://<bucket>/<model_build_prefix>/<run key>``)::

    <root>/input/manifest.json      the window's raw partitions (a ManifestFile input)
    <root>/features/{train,validation,test,metadata}/
    <root>/models/<training job>/output/model.tar.gz
    <root>/checkpoints/             managed-spot checkpoints of the training jobs
    <root>/evaluation/evaluation.json
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlops_pipeline import naming
from mlops_pipeline.config import Settings, SettingsError
from mlops_pipeline.gate import Threshold

PROCESSING = "/opt/ml/processing"
CODE_DIR = f"{PROCESSING}/input/code"
SPLITS = ("train", "validation", "test")
# the XGBoost container's script mode; the toolkit reads these two hyperparameters
PROGRAM_PARAM, SUBMIT_DIR_PARAM = "sagemaker_program", "sagemaker_submit_directory"
# with network isolation the job cannot fetch its code from S3: it arrives as a channel
CODE_CHANNEL_DIR = "/opt/ml/input/data/code"
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_METADATA_UNSAFE = re.compile(r"[^\w .:/=+\-@]")


# -- the run -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobRun:
    """The Airflow task a job is started for: its name key, tags and lineage."""

    dag_id: str
    run_id: str
    task_id: str
    key: str  # naming.run_key(logical date, run id)

    @property
    def tags(self) -> list[dict[str, str]]:
        return naming.airflow_tags(self.dag_id, self.run_id, self.task_id)


@dataclass(frozen=True)
class DataWindow:
    """The daily partitions a model is trained on, both ends included."""

    start: dt.date
    end: dt.date

    @property
    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    @property
    def partitions(self) -> list[str]:
        return [day.isoformat() for day in self.days]


def data_window(
    days: int,
    *,
    logical_date: dt.datetime | None = None,
    run_after: dt.datetime | None = None,
    end: dt.date | str | None = None,
) -> DataWindow:
    """``days`` partitions ending at ``end``, else the logical date's day, else the last
    complete day before ``run_after`` (asset-triggered and API runs have no logical date)."""
    if days < 1:
        raise SettingsError(f"MLOPS_TRAINING_WINDOW_DAYS must be >= 1, got {days}")
    if isinstance(end, str):
        try:
            last = dt.date.fromisoformat(end[:10])
        except ValueError:
            raise ValueError(f"window end {end!r} is not a date (YYYY-MM-DD)") from None
    elif end is not None:
        last = end
    elif logical_date is not None:
        last = logical_date.date()
    elif run_after is not None:
        last = run_after.date() - dt.timedelta(days=1)
    else:
        raise ValueError("data_window needs an end, a logical date or a run_after")
    return DataWindow(last - dt.timedelta(days=days - 1), last)


@dataclass(frozen=True)
class BuildPaths:
    root: str

    @property
    def manifest(self) -> str:
        return f"{self.root}/input/manifest.json"

    def features(self, part: str) -> str:
        return f"{self.root}/features/{part}"

    @property
    def models(self) -> str:
        return f"{self.root}/models"

    @property
    def checkpoints(self) -> str:
        return f"{self.root}/checkpoints"

    @property
    def evaluation(self) -> str:
        return f"{self.root}/evaluation"


def build_paths(settings: Settings, run_key: str) -> BuildPaths:
    return BuildPaths(settings.s3_uri(settings.model_build_prefix, run_key))


def manifest(settings: Settings, keys: Sequence[str]) -> list[Any]:
    """A SageMaker ManifestFile over raw partition objects (keys relative to the raw prefix),
    so the preprocess job downloads the window's partitions and nothing else."""
    prefix = settings.raw_prefix.strip("/") + "/"
    relative = []
    for key in keys:
        if not key.startswith(prefix):
            raise ValueError(f"{key!r} is not under the raw prefix {prefix!r}")
        relative.append(key[len(prefix) :])
    if not relative:
        raise ValueError("the manifest would list no partitions")
    return [{"prefix": settings.s3_uri(prefix) + "/"}, *sorted(relative)]


# -- security, applied to every request ----------------------------------------------------------
def secure_processing(request: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The settings' KMS key, VPC and network isolation on a CreateProcessingJob request
    (every processing job of ours, the data-quality gate's too)."""
    if settings.kms_key_id:
        request["ProcessingOutputConfig"]["KmsKeyId"] = settings.kms_key_id
        request["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] = settings.kms_key_id
    network: dict[str, Any] = {}
    if settings.network_isolation:
        network["EnableNetworkIsolation"] = True
    if settings.vpc_config:
        network["VpcConfig"] = settings.vpc_config
        network["EnableInterContainerTrafficEncryption"] = True
    if network:
        request["NetworkConfig"] = network
    return request


def s3_input(name: str, uri: str, local: str, data_type: str = "S3Prefix") -> dict[str, Any]:
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": local,
            "S3DataType": data_type,
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
        },
    }


def s3_output(name: str, local: str, uri: str) -> dict[str, Any]:
    return {
        "OutputName": name,
        "S3Output": {"S3Uri": uri, "LocalPath": local, "S3UploadMode": "EndOfJob"},
    }


def _processing(
    settings: Settings,
    run: JobRun,
    *,
    name: str,
    image: str,
    program: str,
    code_uri: str,
    arguments: list[str],
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
) -> dict[str, Any]:
    """CreateProcessingJob as the SDK's ScriptProcessor.run(code=...) shapes it."""
    request: dict[str, Any] = {
        "ProcessingJobName": name,
        "RoleArn": settings.role_arn,
        "AppSpecification": {
            "ImageUri": image,
            "ContainerEntrypoint": ["python3", f"{CODE_DIR}/{program}"],
            "ContainerArguments": arguments,
        },
        "ProcessingInputs": [*inputs, s3_input("code", code_uri, CODE_DIR)],
        "ProcessingOutputConfig": {"Outputs": outputs},
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": settings.processing_instance_type,
                "VolumeSizeInGB": settings.processing_volume_gb,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.processing_max_runtime_seconds},
        "Environment": {"PYTHONUNBUFFERED": "1"},
        "Tags": run.tags,
    }
    return secure_processing(request, settings)


# -- preprocess ----------------------------------------------------------------------------------
def preprocess_request(
    settings: Settings,
    run: JobRun,
    *,
    name: str,
    code_uri: str,
    manifest_uri: str,
    start: str,
    end: str,
) -> dict[str, Any]:
    """preprocess.py over the window's partitions: cleaned, featurised, split by time, and
    the training split's statistics (the drift baseline)."""
    paths = build_paths(settings, run.key)
    raw_dir = f"{PROCESSING}/input/raw"
    arguments = ["--input-dir", raw_dir, "--start-date", start[:10], "--end-date", end[:10]]
    outputs = []
    for part in (*SPLITS, "metadata"):
        local = f"{PROCESSING}/{part}"
        arguments += [f"--{part}-dir", local]
        outputs.append(s3_output(part, local, paths.features(part)))
    return _processing(
        settings,
        run,
        name=name,
        image=settings.sklearn_image,
        program="preprocess.py",
        code_uri=code_uri,
        arguments=arguments,
        inputs=[s3_input("raw", manifest_uri, raw_dir, data_type="ManifestFile")],
        outputs=outputs,
    )


# -- tune ----------------------------------------------------------------------------------------
def parameter_ranges(specs: Mapping[str, str]) -> dict[str, list[dict[str, Any]]]:
    """``{"max_depth": "int:3:8", "eta": "continuous:0.03:0.3:Logarithmic",
    "booster": "categorical:gbtree|dart"}`` → the API's ParameterRanges."""
    ranges: dict[str, list[dict[str, Any]]] = {
        "IntegerParameterRanges": [],
        "ContinuousParameterRanges": [],
        "CategoricalParameterRanges": [],
    }
    for name, spec in sorted(specs.items()):
        kind, _, rest = spec.partition(":")
        parts = rest.split(":") if rest else []
        where = f"MLOPS_TUNING_RANGES[{name!r}] = {spec!r}"
        if kind == "categorical":
            values = [v for v in rest.split("|") if v]
            if not values:
                raise SettingsError(f"{where}: give the values, e.g. 'categorical:a|b'")
            ranges["CategoricalParameterRanges"].append({"Name": name, "Values": values})
            continue
        if kind not in ("int", "continuous") or len(parts) not in (2, 3):
            raise SettingsError(
                f"{where}: use 'int:MIN:MAX', 'continuous:MIN:MAX[:SCALING]' or 'categorical:A|B'"
            )
        low, high = parts[0], parts[1]
        if not (_NUMBER.match(low) and _NUMBER.match(high)) or float(low) >= float(high):
            raise SettingsError(f"{where}: MIN and MAX must be numbers with MIN < MAX")
        if kind == "int" and not (low.lstrip("-").isdigit() and high.lstrip("-").isdigit()):
            raise SettingsError(f"{where}: an int range needs whole numbers")
        entry: dict[str, Any] = {"Name": name, "MinValue": low, "MaxValue": high}
        if len(parts) == 3:
            scaling = {
                s.lower(): s for s in ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")
            }
            if parts[2].lower() not in scaling:
                raise SettingsError(
                    f"{where}: scaling must be Auto, Linear, Logarithmic or ReverseLogarithmic"
                )
            entry["ScalingType"] = scaling[parts[2].lower()]
        ranges["IntegerParameterRanges" if kind == "int" else "ContinuousParameterRanges"].append(
            entry
        )
    return {k: v for k, v in ranges.items() if v}


def _hyperparameter(value: str) -> str:
    """The SDK's encoding: numbers as they are, everything else JSON (a quoted string)."""
    return value if _NUMBER.match(value) else json.dumps(value)


def metric_definitions(objective: str) -> list[dict[str, str]]:
    """train.py prints ``<split>:<metric>=<value>`` for the model it saves; these regexes
    read those lines (the objective first)."""
    names = [objective, "validation:aucpr", "validation:auc", "train:aucpr", "train:auc"]
    unique = list(dict.fromkeys(names))
    return [
        {"Name": n, "Regex": rf"{re.escape(n)}=([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"}
        for n in unique
    ]


def tuning_request(
    settings: Settings,
    run: JobRun,
    *,
    name: str,
    sourcedir_uri: str,
    train_uri: str,
    validation_uri: str,
    metadata_uri: str,
) -> dict[str, Any]:
    """A HyperParameterTuningJob over train.py in the XGBoost image's script mode."""
    paths = build_paths(settings, run.key)
    ranges = parameter_ranges(settings.tuning_ranges)
    tuned = {r["Name"] for group in ranges.values() for r in group}
    both = sorted(tuned & set(settings.static_hyperparameters))
    if both:
        raise SettingsError(
            f"{', '.join(both)} is both tuned (MLOPS_TUNING_RANGES) and static "
            "(MLOPS_STATIC_HYPERPARAMETERS): remove it from one of them"
        )
    code_channel = settings.network_isolation
    submit_dir = f"{CODE_CHANNEL_DIR}/sourcedir.tar.gz" if code_channel else sourcedir_uri
    static = {
        PROGRAM_PARAM: json.dumps("train.py"),
        SUBMIT_DIR_PARAM: json.dumps(submit_dir),
        "sagemaker_container_log_level": "20",
        "sagemaker_region": json.dumps(settings.region),
        **{k: _hyperparameter(str(v)) for k, v in sorted(settings.static_hyperparameters.items())},
    }
    channels = {"train": train_uri, "validation": validation_uri, "metadata": metadata_uri}
    if code_channel:
        channels["code"] = sourcedir_uri
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": settings.training_max_runtime_seconds}
    if settings.managed_spot_training:
        stopping["MaxWaitTimeInSeconds"] = max(
            settings.spot_max_wait_seconds, settings.training_max_runtime_seconds
        )
    limits: dict[str, int] = {"MaxParallelTrainingJobs": settings.tuning_max_parallel}
    if settings.tuning_strategy != "Grid":  # grid search runs the whole grid
        limits["MaxNumberOfTrainingJobs"] = settings.tuning_max_jobs
    definition: dict[str, Any] = {
        "StaticHyperParameters": static,
        "AlgorithmSpecification": {
            "TrainingImage": settings.xgboost_image,
            "TrainingInputMode": "File",
            "MetricDefinitions": metric_definitions(settings.tuning_objective_metric),
        },
        "RoleArn": settings.role_arn,
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "ContentType": "application/x-gzip" if channel == "code" else "text/csv",
                "InputMode": "File",
            }
            for channel, uri in channels.items()
        ],
        "OutputDataConfig": {"S3OutputPath": paths.models},
        "ResourceConfig": {
            "InstanceType": settings.training_instance_type,
            "InstanceCount": 1,
            "VolumeSizeInGB": settings.training_volume_gb,
        },
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": settings.managed_spot_training,
        "CheckpointConfig": {"S3Uri": paths.checkpoints},
    }
    if settings.kms_key_id:
        definition["OutputDataConfig"]["KmsKeyId"] = settings.kms_key_id
        definition["ResourceConfig"]["VolumeKmsKeyId"] = settings.kms_key_id
    if settings.network_isolation:
        definition["EnableNetworkIsolation"] = True
    if settings.vpc_config:
        definition["VpcConfig"] = settings.vpc_config
        definition["EnableInterContainerTrafficEncryption"] = True
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": settings.tuning_strategy,
            "HyperParameterTuningJobObjective": {
                "Type": "Maximize",
                "MetricName": settings.tuning_objective_metric,
            },
            "ResourceLimits": limits,
            "ParameterRanges": ranges,
            "TrainingJobEarlyStoppingType": "Off",
        },
        "TrainingJobDefinition": definition,
        "Tags": run.tags,
    }


# -- evaluate ------------------------------------------------------------------------------------
def evaluate_request(
    settings: Settings,
    run: JobRun,
    *,
    name: str,
    code_uri: str,
    model_uri: str,
    test_uri: str,
    validation_uri: str,
) -> dict[str, Any]:
    """evaluate.py on the held-out test split → evaluation.json (the threshold is chosen on
    the validation split)."""
    paths = build_paths(settings, run.key)
    arguments = [
        "--model-dir",
        f"{PROCESSING}/model",
        "--test-dir",
        f"{PROCESSING}/test",
        "--validation-dir",
        f"{PROCESSING}/validation",
        "--output-dir",
        f"{PROCESSING}/evaluation",
        "--threshold-strategy",
        settings.threshold_strategy,
        "--target-precision",
        f"{settings.target_precision:g}",
    ]
    return _processing(
        settings,
        run,
        name=name,
        image=settings.xgboost_image,
        program="evaluate.py",
        code_uri=code_uri,
        arguments=arguments,
        inputs=[
            s3_input("model", model_uri, f"{PROCESSING}/model"),
            s3_input("test", test_uri, f"{PROCESSING}/test"),
            s3_input("validation", validation_uri, f"{PROCESSING}/validation"),
        ],
        outputs=[s3_output("evaluation", f"{PROCESSING}/evaluation", paths.evaluation)],
    )


# -- quality gate and register -------------------------------------------------------------------
def gate_thresholds(settings: Settings) -> list[Threshold]:
    """MLOPS_GATE_THRESHOLDS (``{"pr_auc": ">=0.3"}``) as the gate's thresholds."""
    thresholds = []
    for metric, spec in sorted(settings.gate_thresholds.items()):
        text = spec.replace(" ", "")
        op, number = text[:2], text[2:]
        if op not in (">=", "<=") or not _NUMBER.match(number):
            raise SettingsError(
                f"MLOPS_GATE_THRESHOLDS[{metric!r}] = {spec!r}: use '>=NUMBER' or '<=NUMBER'"
            )
        value = float(number)
        thresholds.append(
            Threshold(metric, minimum=value) if op == ">=" else Threshold(metric, maximum=value)
        )
    return thresholds


def client_token(*parts: str) -> str:
    """A CreateModelPackage ClientToken: the same registration asked twice is one package."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def _metadata_value(value: str) -> str:
    return _METADATA_UNSAFE.sub("_", value)[:256] or "-"


def model_package_request(
    settings: Settings,
    run: JobRun,
    *,
    model_uri: str,
    sourcedir_uri: str,
    code_version: str,
    evaluation_uri: str,
    metadata_uri: str,
    window_start: str,
    window_end: str,
    training_job: str,
    tuning_job: str,
) -> dict[str, Any]:
    """CreateModelPackage: a new version in the group, pending manual approval, with its
    metrics, drift baseline and lineage (run, data window, code version, jobs).

    ``metadata_uri`` is preprocess's metadata output: its baseline.json (the training
    split's statistics) is the baseline drift is checked against."""
    baseline_uri = f"{metadata_uri.rstrip('/')}/baseline.json"
    lineage = {
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "data_window_start": window_start[:10],
        "data_window_end": window_end[:10],
        "code_version": code_version,
        "tuning_job": tuning_job,
        "training_job": training_job,
    }
    inference_environment = {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": sourcedir_uri,
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
        "SAGEMAKER_REGION": settings.region,
    }
    return {
        "ModelPackageGroupName": settings.model_package_group,
        "ModelPackageDescription": (
            f"XGBoost card-fraud model from {training_job} (tuning job {tuning_job}); "
            f"data {window_start[:10]}..{window_end[:10]}; code {code_version}"
        ),
        "ModelApprovalStatus": "PendingManualApproval",
        "InferenceSpecification": {
            "Containers": [
                {
                    "Image": settings.xgboost_image,
                    "ModelDataUrl": model_uri,
                    "Environment": inference_environment,
                }
            ],
            "SupportedContentTypes": ["text/csv", "application/json"],
            "SupportedResponseMIMETypes": ["text/csv", "application/json"],
            "SupportedRealtimeInferenceInstanceTypes": [settings.endpoint_instance_type],
            "SupportedTransformInstanceTypes": [settings.transform_instance_type],
        },
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": evaluation_uri}
            }
        },
        "DriftCheckBaselines": {
            "ModelDataQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": baseline_uri}
            }
        },
        "MetadataProperties": {
            "CommitId": code_version,
            "GeneratedBy": f"airflow:{run.dag_id}/{run.run_id}"[:1024],
            "ProjectId": settings.model_package_group,
        },
        "CustomerMetadataProperties": {k: _metadata_value(v) for k, v in lineage.items()},
        "Domain": "MACHINE_LEARNING",
        "Task": "CLASSIFICATION",
        "ClientToken": client_token(run.dag_id, run.run_id, model_uri),
    }
