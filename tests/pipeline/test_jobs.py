"""model_build's request builders: every request valid for botocore's SageMaker model, in both
profiles, with the aws profile's security settings applied; plus the code bundle."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import tarfile
from typing import Any

import pytest

from mlops_pipeline import code, jobs, rawdata
from mlops_pipeline.assets import drifted_partition
from mlops_pipeline.config import SettingsError, load_settings
from mlops_pipeline.gate import Threshold

AWS_ENV = {
    "MLOPS_PROFILE": "aws",
    "MLOPS_BUCKET": "prod-ml",
    "MLOPS_ROLE_ARN": "arn:aws:iam::111122223333:role/SageMakerExecution",
    "MLOPS_KMS_KEY_ID": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "MLOPS_SUBNETS": "subnet-0a1b2c3d,subnet-4e5f6a7b",
    "MLOPS_SECURITY_GROUP_IDS": "sg-0123456789abcdef0",
    "MLOPS_NETWORK_ISOLATION": "true",
}
PROFILES = {"local": {}, "aws": AWS_ENV}
RUN = jobs.JobRun(
    dag_id="model_build",
    run_id="manual__2026-01-07T00:00:00+00:00",
    task_id="tune",
    key="20260107-1a2b3c",
)


def validate(operation: str, request: dict[str, Any]) -> None:
    """botocore's own parameter validation, then local_aws's stricter pass (lengths, patterns)."""
    import botocore.session
    from botocore.validate import validate_parameters

    from local_aws.sagemaker.service_model import validate_request

    model = botocore.session.get_session().get_service_model("sagemaker")
    validate_parameters(request, model.operation_model(operation).input_shape)
    validate_request(operation, request)


def requests(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    settings = load_settings(env)
    base = jobs.build_paths(settings, RUN.key).root
    bundle = code.bundle(settings, "0123456789abcdef")
    return {
        "CreateProcessingJob:preprocess": jobs.preprocess_request(
            settings,
            RUN,
            name="model-build-preprocess-20260107-1a2b3c",
            code_uri=bundle.code_uri,
            manifest_uri=f"{base}/input/manifest.json",
            start="2026-01-01",
            end="2026-01-07",
        ),
        "CreateHyperParameterTuningJob": jobs.tuning_request(
            settings,
            RUN,
            name="model-build-tune-20260107-1a2b3c",
            sourcedir_uri=bundle.sourcedir_uri,
            train_uri=f"{base}/features/train",
            validation_uri=f"{base}/features/validation",
            metadata_uri=f"{base}/features/metadata",
        ),
        "CreateProcessingJob:evaluate": jobs.evaluate_request(
            settings,
            RUN,
            name="model-build-evaluate-20260107-1a2b3c",
            code_uri=bundle.code_uri,
            model_uri=f"{base}/models/model-build-tune-20260107-1a2b3c-001-ab12cd34/output/model.tar.gz",
            test_uri=f"{base}/features/test",
            validation_uri=f"{base}/features/validation",
        ),
        "CreateModelPackage": jobs.model_package_request(
            settings,
            RUN,
            model_uri=f"{base}/models/x/output/model.tar.gz",
            sourcedir_uri=bundle.sourcedir_uri,
            code_version=bundle.version,
            evaluation_uri=f"{base}/evaluation/evaluation.json",
            metadata_uri=f"{base}/features/metadata",
            window_start="2026-01-01",
            window_end="2026-01-07",
            training_job="model-build-tune-20260107-1a2b3c-001-ab12cd34",
            tuning_job="model-build-tune-20260107-1a2b3c",
        ),
    }


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_request_is_valid_for_the_service_model(profile):
    for label, request in requests(PROFILES[profile]).items():
        validate(label.split(":")[0], request)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_jobs_carry_the_airflow_tags(profile):
    built = requests(PROFILES[profile])
    for label in ("CreateProcessingJob:preprocess", "CreateHyperParameterTuningJob"):
        tags = {t["Key"]: t["Value"] for t in built[label]["Tags"]}
        assert tags == {
            "airflow_dag_id": "model_build",
            "airflow_run_id": RUN.run_id,
            "airflow_task_id": "tune",
        }


def test_aws_profile_applies_kms_vpc_and_network_isolation():
    built = requests(AWS_ENV)
    key, vpc = (
        AWS_ENV["MLOPS_KMS_KEY_ID"],
        {
            "Subnets": ["subnet-0a1b2c3d", "subnet-4e5f6a7b"],
            "SecurityGroupIds": ["sg-0123456789abcdef0"],
        },
    )
    for label in ("CreateProcessingJob:preprocess", "CreateProcessingJob:evaluate"):
        request = built[label]
        assert request["ProcessingOutputConfig"]["KmsKeyId"] == key
        assert request["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == key
        assert request["NetworkConfig"]["EnableNetworkIsolation"] is True
        assert request["NetworkConfig"]["VpcConfig"] == vpc
        assert request["RoleArn"] == AWS_ENV["MLOPS_ROLE_ARN"]
    definition = built["CreateHyperParameterTuningJob"]["TrainingJobDefinition"]
    assert definition["OutputDataConfig"]["KmsKeyId"] == key
    assert definition["ResourceConfig"]["VolumeKmsKeyId"] == key
    assert definition["EnableNetworkIsolation"] is True and definition["VpcConfig"] == vpc
    # an isolated job cannot download its code: it comes as a channel, as the SDK does it
    channels = {c["ChannelName"]: c for c in definition["InputDataConfig"]}
    assert channels["code"]["DataSource"]["S3DataSource"]["S3Uri"].endswith("sourcedir.tar.gz")
    assert json.loads(definition["StaticHyperParameters"]["sagemaker_submit_directory"]) == (
        "/opt/ml/input/data/code/sourcedir.tar.gz"
    )
    assert all(v.startswith("s3://prod-ml/") for v in _s3_uris(built))


def test_local_profile_has_no_security_settings():
    built = requests({})
    for label in ("CreateProcessingJob:preprocess", "CreateProcessingJob:evaluate"):
        assert "NetworkConfig" not in built[label]
        assert "KmsKeyId" not in built[label]["ProcessingOutputConfig"]
    definition = built["CreateHyperParameterTuningJob"]["TrainingJobDefinition"]
    assert "VpcConfig" not in definition and "EnableNetworkIsolation" not in definition
    assert {c["ChannelName"] for c in definition["InputDataConfig"]} == {
        "train",
        "validation",
        "metadata",
    }


def _s3_uris(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [u for v in value.values() for u in _s3_uris(v)]
    if isinstance(value, list):
        return [u for v in value for u in _s3_uris(v)]
    return [value] if isinstance(value, str) and value.startswith("s3://") else []


def test_processing_code_is_an_input_under_the_code_dir():
    request = requests({})["CreateProcessingJob:preprocess"]
    assert request["AppSpecification"]["ContainerEntrypoint"] == [
        "python3",
        "/opt/ml/processing/input/code/preprocess.py",
    ]
    inputs = {i["InputName"]: i["S3Input"] for i in request["ProcessingInputs"]}
    assert inputs["code"]["LocalPath"] == "/opt/ml/processing/input/code"
    assert inputs["code"]["S3Uri"] == "s3://mlops-local/code/0123456789abcdef/src/"
    assert inputs["raw"]["S3DataType"] == "ManifestFile"
    arguments = request["AppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--start-date") + 1] == "2026-01-01"
    assert arguments[arguments.index("--end-date") + 1] == "2026-01-07"
    outputs = {
        o["OutputName"]: o["S3Output"]["S3Uri"]
        for o in request["ProcessingOutputConfig"]["Outputs"]
    }
    assert outputs == {
        part: f"s3://mlops-local/model-build/20260107-1a2b3c/features/{part}"
        for part in ("train", "validation", "test", "metadata")
    }


def test_tuning_request_script_mode_objective_spot_and_checkpoints():
    request = requests({})["CreateHyperParameterTuningJob"]
    config = request["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"] == {
        "Type": "Maximize",
        "MetricName": "validation:aucpr",
    }
    assert config["ResourceLimits"] == {"MaxParallelTrainingJobs": 2, "MaxNumberOfTrainingJobs": 4}
    integer = {r["Name"]: r for r in config["ParameterRanges"]["IntegerParameterRanges"]}
    assert integer["max_depth"] == {"Name": "max_depth", "MinValue": "3", "MaxValue": "8"}
    continuous = {r["Name"]: r for r in config["ParameterRanges"]["ContinuousParameterRanges"]}
    assert continuous["eta"]["ScalingType"] == "Logarithmic"

    definition = request["TrainingJobDefinition"]
    static = definition["StaticHyperParameters"]
    assert json.loads(static["sagemaker_program"]) == "train.py"
    assert json.loads(static["sagemaker_submit_directory"]).endswith("/sourcedir.tar.gz")
    assert static["num_round"] == "300" and static["eval_metric"] == '"aucpr"'
    assert not set(static) & set(integer) | set(continuous) & set(static)
    assert definition["AlgorithmSpecification"]["TrainingImage"].endswith("sagemaker-xgboost:1.7-1")
    assert definition["EnableManagedSpotTraining"] is True
    stopping = definition["StoppingCondition"]
    assert stopping["MaxWaitTimeInSeconds"] >= stopping["MaxRuntimeInSeconds"]
    assert definition["CheckpointConfig"]["S3Uri"] == (
        "s3://mlops-local/model-build/20260107-1a2b3c/checkpoints"
    )


def test_the_objective_regex_reads_train_py_final_line_only():
    definitions = jobs.metric_definitions("validation:aucpr")
    assert definitions[0]["Name"] == "validation:aucpr"
    regex = re.compile(definitions[0]["Regex"])
    # what train.py prints for the saved model, and lines that must not match
    assert regex.search("validation:aucpr=0.812345").group(1) == "0.812345"
    assert regex.search("validation:auc=0.934000") is None
    assert regex.search("train:aucpr=0.99") is None
    assert regex.search("[12]#011train-aucpr:0.5#011validation-aucpr:0.4") is None
    assert len({d["Name"] for d in definitions}) == len(definitions)


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        ({"max_depth": "int:8:3"}, "MIN < MAX"),
        ({"max_depth": "int:3.5:8"}, "whole numbers"),
        ({"eta": "continuous:0.1:0.3:Sideways"}, "scaling must be"),
        ({"eta": "normal:0:1"}, "use 'int:MIN:MAX'"),
        ({"booster": "categorical:"}, "give the values"),
    ],
)
def test_bad_tuning_ranges_name_the_setting(ranges, message):
    with pytest.raises(SettingsError, match=re.escape(message)) as error:
        jobs.parameter_ranges(ranges)
    assert "MLOPS_TUNING_RANGES" in str(error.value)


def test_a_hyperparameter_both_tuned_and_static_is_refused():
    env = {"MLOPS_STATIC_HYPERPARAMETERS": '{"eta": "0.1", "num_round": "10"}'}
    with pytest.raises(SettingsError, match="eta is both tuned"):
        requests(env)


def test_categorical_and_grid():
    ranges = jobs.parameter_ranges({"booster": "categorical:gbtree|dart"})
    assert ranges == {
        "CategoricalParameterRanges": [{"Name": "booster", "Values": ["gbtree", "dart"]}]
    }
    request = requests(
        {"MLOPS_TUNING_STRATEGY": "Grid", "MLOPS_TUNING_RANGES": '{"max_depth": "categorical:3|5"}'}
    )["CreateHyperParameterTuningJob"]
    assert (
        "MaxNumberOfTrainingJobs" not in request["HyperParameterTuningJobConfig"]["ResourceLimits"]
    )
    validate("CreateHyperParameterTuningJob", request)


def test_model_package_metrics_baselines_and_lineage():
    request = requests({})["CreateModelPackage"]
    assert request["ModelApprovalStatus"] == "PendingManualApproval"
    assert request["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"].endswith(
        "/evaluation/evaluation.json"
    )
    assert request["DriftCheckBaselines"]["ModelDataQuality"]["Statistics"]["S3Uri"].endswith(
        "/features/metadata/baseline.json"
    )
    container = request["InferenceSpecification"]["Containers"][0]
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"].endswith("sourcedir.tar.gz")
    assert container["ModelDataUrl"].endswith("/output/model.tar.gz")
    assert request["CustomerMetadataProperties"] == {
        "dag_id": "model_build",
        "run_id": RUN.run_id,
        "data_window_start": "2026-01-01",
        "data_window_end": "2026-01-07",
        "code_version": "0123456789abcdef",
        "tuning_job": "model-build-tune-20260107-1a2b3c",
        "training_job": "model-build-tune-20260107-1a2b3c-001-ab12cd34",
    }
    assert request["MetadataProperties"]["CommitId"] == "0123456789abcdef"
    # the same registration asked again is the same token; another model is another
    assert request["ClientToken"] == requests({})["CreateModelPackage"]["ClientToken"]
    assert jobs.client_token("a", "b") != jobs.client_token("a", "c")


def test_run_ids_with_odd_characters_still_make_valid_metadata():
    run = jobs.JobRun("model_build", "manual run #3 (retrain!)", "register", "abc123")
    request = jobs.model_package_request(
        load_settings({}),
        run,
        model_uri="s3://b/m.tar.gz",
        sourcedir_uri="s3://b/s.tar.gz",
        code_version="v",
        evaluation_uri="s3://b/e.json",
        metadata_uri="s3://b/meta/",
        window_start="2026-01-01",
        window_end="2026-01-07",
        training_job="t",
        tuning_job="h",
    )
    validate("CreateModelPackage", request)
    assert request["CustomerMetadataProperties"]["run_id"] == "manual run _3 _retrain__"


def test_data_window():
    window = jobs.data_window(3, logical_date=dt.datetime(2026, 1, 7, 5, tzinfo=dt.UTC))
    assert window.partitions == ["2026-01-05", "2026-01-06", "2026-01-07"]
    # asset-triggered runs have no logical date: the last complete day before the run
    after = jobs.data_window(2, run_after=dt.datetime(2026, 1, 8, 0, 30, tzinfo=dt.UTC))
    assert after.partitions == ["2026-01-06", "2026-01-07"]
    # the drifted day, when the asset event names it, wins
    drifted = jobs.data_window(
        1, end="2026-01-03", logical_date=dt.datetime(2026, 1, 7, tzinfo=dt.UTC)
    )
    assert drifted.partitions == ["2026-01-03"]
    with pytest.raises(SettingsError, match="MLOPS_TRAINING_WINDOW_DAYS"):
        jobs.data_window(0, end="2026-01-03")


def test_manifest_lists_keys_relative_to_the_raw_prefix():
    settings = load_settings({})
    body = jobs.manifest(
        settings,
        [
            "raw/transactions/dt=2026-01-02/part-00000.csv",
            "raw/transactions/dt=2026-01-01/part-00000.csv",
        ],
    )
    assert body == [
        {"prefix": "s3://mlops-local/raw/transactions/"},
        "dt=2026-01-01/part-00000.csv",
        "dt=2026-01-02/part-00000.csv",
    ]
    with pytest.raises(ValueError, match="not under the raw prefix"):
        jobs.manifest(settings, ["other/x.csv"])


def test_gate_thresholds_from_settings():
    settings = load_settings(
        {"MLOPS_GATE_THRESHOLDS": '{"pr_auc": ">=0.4", "brier_score": "<= 0.05"}'}
    )
    assert jobs.gate_thresholds(settings) == [
        Threshold("brier_score", maximum=0.05),
        Threshold("pr_auc", minimum=0.4),
    ]
    with pytest.raises(SettingsError, match=r"MLOPS_GATE_THRESHOLDS\['auc'\]"):
        jobs.gate_thresholds(load_settings({"MLOPS_GATE_THRESHOLDS": '{"auc": "0.9"}'}))


def test_code_version_is_the_content_hash_and_the_tarball_is_reproducible(tmp_path):
    files = code.collect()
    assert {"preprocess.py", "train.py", "evaluate.py", "inference.py"} <= set(files)
    assert "__init__.py" not in files
    assert code.version_of(files) == code.version_of(dict(reversed(list(files.items()))))
    assert code.sourcedir_tarball(files) == code.sourcedir_tarball(files)
    changed = {**files, "train.py": files["train.py"] + b"\n# tweak\n"}
    assert code.version_of(changed) != code.version_of(files)
    with tarfile.open(fileobj=io.BytesIO(code.sourcedir_tarball(files))) as tar:
        assert sorted(tar.getnames()) == sorted(files)


def test_publish_uploads_once_per_version(s3, bucket):
    settings = load_settings({"MLOPS_BUCKET": bucket})
    first = code.publish(s3, settings)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert f"code/{first.version}/sourcedir.tar.gz" in keys
    assert f"code/{first.version}/src/train.py" in keys
    stamp = s3.head_object(Bucket=bucket, Key=f"code/{first.version}/sourcedir.tar.gz")
    again = code.publish(s3, settings)
    assert again == first
    assert (
        s3.head_object(Bucket=bucket, Key=f"code/{first.version}/sourcedir.tar.gz")["LastModified"]
        == stamp["LastModified"]
    )


def test_the_window_manifest_lists_the_window_files_only(s3, bucket):
    settings = load_settings({"MLOPS_BUCKET": bucket})
    for key in (
        "raw/transactions/dt=2026-01-05/part-0.csv",
        "raw/transactions/dt=2026-01-06/part-0.csv",
        "raw/transactions/dt=2026-01-06/part-1.csv",
        "raw/transactions/dt=2026-01-06/_SUCCESS",  # markers are not data
        "raw/transactions/dt=2026-01-07/part-0.csv",  # outside the window
    ):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    uri = f"s3://{bucket}/model-build/run/input/manifest.json"

    assert rawdata.write_manifest(s3, settings, ["2026-01-05", "2026-01-06"], uri) == 3
    body = json.loads(
        s3.get_object(Bucket=bucket, Key="model-build/run/input/manifest.json")["Body"].read()
    )
    assert body == [
        {"prefix": f"s3://{bucket}/raw/transactions/"},
        "dt=2026-01-05/part-0.csv",
        "dt=2026-01-06/part-0.csv",
        "dt=2026-01-06/part-1.csv",
    ]


def test_an_empty_window_writes_no_manifest(s3, bucket):
    settings = load_settings({"MLOPS_BUCKET": bucket})
    uri = f"s3://{bucket}/model-build/run/input/manifest.json"
    assert rawdata.write_manifest(s3, settings, ["2026-02-01"], uri) == 0
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


class Event:
    def __init__(self, extra):
        self.extra = extra


def test_the_latest_drifted_partition_ends_the_window():
    events = {
        "card_fraud_drift": [
            Event({"partition": "2026-03-02"}),
            Event({"partition": "2026-03-04"}),
        ],
        "other": [Event({}), Event(None)],
    }
    assert drifted_partition(events) == "2026-03-04"
    assert drifted_partition({}) is None  # a manual run
