"""preprocess → train → evaluate as real SageMaker jobs on local_aws, plus serving and spot.

The container scripts run unchanged, as the framework images run them: preprocess.py in a
scikit-learn Processing job, train.py in XGBoost script mode, evaluate.py in an XGBoost
Processing job, inference.py behind an endpoint. Requests are built here for now; the
pipeline's request builders come later.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from botocore.exceptions import ClientError

import mlops_pipeline
from mlops_pipeline import datagen
from mlops_pipeline.config import SKLEARN_IMAGE, XGBOOST_IMAGE
from mlops_pipeline.datagen import Corruption
from tests import jobkit
from tests.conftest import admin, unique, wait_for
from tests.jobkit import (
    endpoint_config_request,
    log_lines,
    model_request,
    s3_input,
    s3_output,
    training_request,
    upload_source,
)

pytestmark = pytest.mark.slow

CONTAINERS = Path(mlops_pipeline.__file__).parent / "containers"
PROCESSING = "/opt/ml/processing"
START = dt.date(2026, 3, 1)
DAYS, ROWS = 3, 3000
SPLITS = ("train", "validation", "test")
# SageMaker's XGBoost metric regexes: CloudWatch shows XGBoost's tabs as "#011"
VALIDATION_AUCPR = r".*\[[0-9]+\].*#011validation-aucpr:([-+]?[0-9]*\.?[0-9]+)"
TRAIN_AUCPR = r".*\[[0-9]+\].*#011train-aucpr:([-+]?[0-9]*\.?[0-9]+)"
# one thread: xgboost's OpenMP threads fight over this machine's two cores
FAST_HPS = {"num_round": "40", "max_depth": "4", "eta": "0.3", "nthread": "1"}


def script(name: str) -> str:
    return (CONTAINERS / name).read_text()


def processing_request(
    name: str,
    image: str,
    program: str,
    code_uri: str,
    arguments: list[str],
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
) -> dict[str, Any]:
    """A CreateProcessingJob request as the SDK's ScriptProcessor.run(code=...) builds it."""
    return jobkit.processing_request(
        name,
        code_uri=code_uri,
        script=program,
        arguments=arguments,
        inputs=inputs,
        outputs=outputs,
        image=image,
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )


def upload_script(s3: Any, bucket: str, job: str, program: str) -> str:
    key = f"{job}/input/code/{program}"
    s3.put_object(Bucket=bucket, Key=key, Body=script(program).encode())
    return f"s3://{bucket}/{key}"


def run_processing(sm: Any, request: dict[str, Any]) -> dict[str, Any]:
    sm.create_processing_job(**request)
    return wait_for(
        lambda: sm.describe_processing_job(ProcessingJobName=request["ProcessingJobName"]),
        "ProcessingJobStatus",
        timeout=300,
    )


def run_training(sm: Any, request: dict[str, Any]) -> dict[str, Any]:
    sm.create_training_job(**request)
    return wait_for(
        lambda: sm.describe_training_job(TrainingJobName=request["TrainingJobName"]),
        "TrainingJobStatus",
        timeout=300,
    )


def read_text(s3: Any, uri: str) -> str:
    bucket, key = uri[5:].split("/", 1)
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def read_tar(s3: Any, uri: str) -> dict[str, bytes]:
    bucket, key = uri[5:].split("/", 1)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        return {
            m.name.removeprefix("./"): tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


@dataclass
class Preprocessed:
    bucket: str
    job: dict[str, Any]
    prefix: str  # s3://bucket/features/<job>

    def uri(self, output: str) -> str:
        return f"{self.prefix}/{output}"


@pytest.fixture(scope="module")
def preprocessed(sm, s3) -> Preprocessed:
    bucket = unique("model-build")
    s3.create_bucket(Bucket=bucket)
    for i in range(DAYS + 1):  # the last day lies outside the job's window
        # the middle day arrives with replayed rows and a few negative amounts
        broken = (
            [Corruption.parse("negative_amounts:0.01"), Corruption.parse("duplicate_ids:0.01")]
            if i == 1
            else []
        )
        datagen.write_partition(
            s3, bucket, START + dt.timedelta(days=i), ROWS, seed=7, corruptions=broken
        )
    name = unique("preprocess")
    prefix = f"s3://{bucket}/features/{name}"
    arguments = [
        "--input-dir",
        f"{PROCESSING}/input/raw",
        "--start-date",
        START.isoformat(),
        "--end-date",
        (START + dt.timedelta(days=DAYS - 1)).isoformat(),
    ]
    outputs = []
    for output in (*SPLITS, "metadata", "keys"):
        arguments += [f"--{output}-dir", f"{PROCESSING}/{output}"]
        outputs.append(s3_output(output, f"{PROCESSING}/{output}", f"{prefix}/{output}"))
    request = processing_request(
        name,
        SKLEARN_IMAGE,
        "preprocess.py",
        upload_script(s3, bucket, name, "preprocess.py"),
        arguments,
        [s3_input("raw", f"s3://{bucket}/raw/transactions/", f"{PROCESSING}/input/raw")],
        outputs,
    )
    job = run_processing(sm, request)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    return Preprocessed(bucket, job, prefix)


@pytest.fixture(scope="module")
def train_code(s3, preprocessed) -> str:
    return upload_source(
        s3, preprocessed.bucket, "code/train/sourcedir.tar.gz", {"train.py": script("train.py")}
    )


def train_request(
    prep: Preprocessed, code: str, name: str, hyperparameters: dict[str, str], **extra: Any
) -> dict[str, Any]:
    return training_request(
        name,
        prep.bucket,
        code,
        hyperparameters=hyperparameters,
        channels={c: prep.uri(c) for c in ("train", "validation", "metadata")},
        metric_definitions=[
            {"Name": "validation:aucpr", "Regex": VALIDATION_AUCPR},
            {"Name": "train:aucpr", "Regex": TRAIN_AUCPR},
        ],
        image=XGBOOST_IMAGE,
        **extra,
    )


@pytest.fixture(scope="module")
def trained(sm, preprocessed, train_code) -> dict[str, Any]:
    request = train_request(preprocessed, train_code, unique("train"), FAST_HPS)
    job = run_training(sm, request)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    return job


@pytest.fixture(scope="module")
def evaluated(sm, s3, preprocessed, trained) -> dict[str, Any]:
    name = unique("evaluate")
    request = processing_request(
        name,
        XGBOOST_IMAGE,
        "evaluate.py",
        upload_script(s3, preprocessed.bucket, name, "evaluate.py"),
        [
            "--model-dir",
            f"{PROCESSING}/model",
            "--test-dir",
            f"{PROCESSING}/test",
            "--validation-dir",
            f"{PROCESSING}/validation",
            "--output-dir",
            f"{PROCESSING}/evaluation",
        ],
        [
            s3_input("model", trained["ModelArtifacts"]["S3ModelArtifacts"], f"{PROCESSING}/model"),
            s3_input("test", preprocessed.uri("test"), f"{PROCESSING}/test"),
            s3_input("validation", preprocessed.uri("validation"), f"{PROCESSING}/validation"),
        ],
        [
            s3_output(
                "evaluation",
                f"{PROCESSING}/evaluation",
                f"s3://{preprocessed.bucket}/evaluation/{name}",
            )
        ],
    )
    job = run_processing(sm, request)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    return job


def keys(s3: Any, prep: Preprocessed, split: str) -> pd.DataFrame:
    frame = pd.read_csv(io.StringIO(read_text(s3, prep.uri(f"keys/{split}.csv"))))
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)
    return frame


def test_preprocess_cleans_and_splits_by_time_without_leakage(s3, logs, preprocessed):
    report = json.loads(read_text(s3, preprocessed.uri("metadata/report.json")))
    # only the window's partitions are read
    assert [f["partition"] for f in report["files"]] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert report["rows_read"] == DAYS * ROWS
    dropped = report["dropped_by_reason"]
    assert set(dropped) == {"amount not positive", "duplicate transaction_id"}
    assert 20 <= dropped["amount not positive"] <= 30
    assert 20 <= dropped["duplicate transaction_id"] <= 30
    assert report["rows_kept"] + report["rows_dropped"] == DAYS * ROWS
    messages = log_lines(
        logs, "/aws/sagemaker/ProcessingJobs", preprocessed.job["ProcessingJobName"]
    )
    assert any(
        re.search(rf"dropped {dropped['amount not positive']} rows: amount not positive", m)
        for m in messages
    )

    parts = {split: keys(s3, preprocessed, split) for split in SPLITS}
    assert parts["train"]["event_time"].max() < parts["validation"]["event_time"].min()
    assert parts["validation"]["event_time"].max() < parts["test"]["event_time"].min()
    assert sum(len(p) for p in parts.values()) == report["rows_kept"]
    all_ids = pd.concat(p["transaction_id"] for p in parts.values())
    assert all_ids.is_unique

    header = read_text(s3, preprocessed.uri("metadata/header.csv")).strip().split(",")
    assert header[0] == "is_fraud" and len(header) == len(set(header)) > 20
    for split in SPLITS:
        matrix = pd.read_csv(
            io.StringIO(read_text(s3, preprocessed.uri(f"{split}/{split}.csv"))), header=None
        )
        assert matrix.shape == (len(parts[split]), len(header))
        assert set(matrix[0]) <= {0, 1}
        assert report["splits"][split]["rows"] == len(matrix)
    assert preprocessed.job["ExitMessage"].startswith(f"train={len(parts['train'])} ")

    baseline = json.loads(read_text(s3, preprocessed.uri("metadata/baseline.json")))
    assert baseline["rows"] == len(parts["train"])
    assert 0.005 < baseline["label"]["rate"] < 0.05
    amount = baseline["numeric"]["amount"]
    assert amount["quantiles"]["p05"] < amount["quantiles"]["p50"] < amount["quantiles"]["p95"]
    assert sum(amount["histogram"]["fractions"]) == pytest.approx(1.0)
    assert len(amount["histogram"]["fractions"]) == len(amount["histogram"]["edges"]) + 1
    channels = baseline["categorical"]["channel"]["frequencies"]
    assert set(channels) == set(datagen.CHANNELS) and sum(channels.values()) == pytest.approx(1)
    vocabulary = json.loads(read_text(s3, preprocessed.uri("metadata/vocabulary.json")))
    assert vocabulary["features"] == header[1:]
    assert vocabulary["country"]["codes"][:2] == ["__other__", "DE"]


def test_training_job_reports_the_validation_metric_and_saves_the_model(
    s3, logs, preprocessed, trained
):
    metrics = {m["MetricName"]: m["Value"] for m in trained["FinalMetricDataList"]}
    base_rate = json.loads(read_text(s3, preprocessed.uri("metadata/report.json")))["splits"][
        "validation"
    ]["fraud_rate"]
    assert base_rate < metrics["validation:aucpr"] <= 1
    assert metrics["train:aucpr"] > metrics["validation:aucpr"] * 0.5

    lines = log_lines(logs, "/aws/sagemaker/TrainingJobs", trained["TrainingJobName"])
    rounds = [line for line in lines if re.match(VALIDATION_AUCPR, line)]
    assert rounds[0].startswith("[0]#011train-auc:")
    final = [line for line in lines if line.startswith("validation:aucpr=")]
    assert len(final) == 1 and 0 < float(final[0].split("=")[1]) <= 1

    files = read_tar(s3, trained["ModelArtifacts"]["S3ModelArtifacts"])
    assert {"xgboost-model", "features.json", "vocabulary.json", "baseline.json"} <= set(files)
    info = json.loads(files["features.json"])
    header = read_text(s3, preprocessed.uri("metadata/header.csv")).strip().split(",")
    assert info["features"] == header[1:]
    assert 1 <= info["rounds"] <= int(FAST_HPS["num_round"])
    booster = load_booster(files["xgboost-model"])
    assert booster.num_boosted_rounds() == info["rounds"]


def load_booster(data: bytes):
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(bytearray(data))
    return booster


def test_evaluation_json_holds_sane_metrics(s3, preprocessed, evaluated):
    uri = evaluated["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    report = json.loads(read_text(s3, f"{uri}/evaluation.json"))
    metrics = report["binary_classification_metrics"]
    test_rows = json.loads(read_text(s3, preprocessed.uri("metadata/report.json")))["splits"][
        "test"
    ]
    assert report["rows"]["test"] == test_rows["rows"]
    assert report["rows"]["test_positives"] == test_rows["positives"]
    base_rate = report["base_rate"]
    assert metrics["precision_best_constant_classifier"]["value"] == pytest.approx(base_rate)
    assert metrics["pr_auc"]["value"] > max(0.1, 3 * base_rate)
    assert metrics["auc"]["value"] > 0.7
    matrix = metrics["confusion_matrix"]
    assert sum(matrix[a][p] for a in "01" for p in "01") == report["rows"]["test"]
    assert matrix["1"]["0"] + matrix["1"]["1"] == report["rows"]["test_positives"]
    tp, fp = matrix["1"]["1"], matrix["0"]["1"]
    assert metrics["precision"]["value"] == pytest.approx(tp / (tp + fp) if tp + fp else 0.0)
    for name in ("pr_auc", "auc", "precision", "recall", "f1"):
        assert 0 <= metrics[name]["value"] <= 1
        assert isinstance(metrics[name]["standard_deviation"], float)  # >= 200 test rows
    assert report["threshold"]["chosen_on"] == "validation"
    assert report["threshold"]["strategy"] == "best_f1"
    calibration = report["calibration"]
    assert sum(b["count"] for b in calibration["bins"]) == report["rows"]["test"]
    # better calibrated than always predicting the base rate
    assert calibration["brier_score"] < base_rate * (1 - base_rate)
    curve = metrics["precision_recall_curve"]
    assert len(curve["precisions"]) == len(curve["recalls"]) <= 101
    assert evaluated["ExitMessage"].startswith("pr_auc=")


def test_inference_script_serves_the_model_on_an_endpoint(sm, s3, runtime, preprocessed, trained):
    bucket = preprocessed.bucket
    code = upload_source(
        s3, bucket, "code/inference/sourcedir.tar.gz", {"inference.py": script("inference.py")}
    )
    artifacts = trained["ModelArtifacts"]["S3ModelArtifacts"]
    model = unique("fraud-model")
    # what the SDK's XGBoostModel(entry_point="inference.py") sends
    sm.create_model(**model_request(model, artifacts, code, image=XGBOOST_IMAGE))
    config = unique("fraud-config")
    sm.create_endpoint_config(**endpoint_config_request(config, {"AllTraffic": (model, 1.0)}))
    endpoint = unique("fraud-endpoint")
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    try:
        described = wait_for(
            lambda: sm.describe_endpoint(EndpointName=endpoint), "EndpointStatus", timeout=180
        )
        assert described["EndpointStatus"] == "InService", described.get("FailureReason")

        test = read_text(s3, preprocessed.uri("test/test.csv")).splitlines()[:25]
        rows = [line.split(",", 1)[1] for line in test]  # features only, label dropped
        answer = runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="text/csv", Body="\n".join(rows).encode()
        )
        served = np.array(answer["Body"].read().decode().split(), dtype=float)

        import xgboost

        files = read_tar(s3, artifacts)
        names = json.loads(files["features.json"])["features"]
        features = np.array([[float(v) for v in row.split(",")] for row in rows])
        expected = load_booster(files["xgboost-model"]).predict(
            xgboost.DMatrix(features, feature_names=names)
        )
        assert served.shape == (25,)
        assert np.allclose(served, expected, atol=1e-6)
        assert ((served >= 0) & (served <= 1)).all()

        keyed = [dict(zip(names, map(float, row.split(",")), strict=True)) for row in rows[:3]]
        answer = runtime.invoke_endpoint(
            EndpointName=endpoint,
            ContentType="application/json",
            Accept="application/json",
            Body=json.dumps(keyed).encode(),
        )
        predictions = json.loads(answer["Body"].read())["predictions"]
        assert np.allclose(predictions, expected[:3], atol=1e-6)

        # rows that still carry the label get an error that says what to do
        with pytest.raises(ClientError) as error:
            runtime.invoke_endpoint(
                EndpointName=endpoint, ContentType="text/csv", Body=test[0].encode()
            )
        assert "InputFilter" in str(error.value)
    finally:
        sm.delete_endpoint(EndpointName=endpoint)


def test_spot_interruption_resumes_from_the_latest_checkpoint(
    local_aws, sm, s3, logs, preprocessed, train_code
):
    name = unique("train-spot")
    hyperparameters = {
        **FAST_HPS,
        # long enough to be interrupted part-way; no early stopping so every round runs
        "num_round": "1000",
        "max_depth": "3",
        "early_stopping_rounds": "0",
        "checkpoint_frequency": "25",
    }
    request = train_request(
        preprocessed,
        train_code,
        name,
        hyperparameters,
        EnableManagedSpotTraining=True,
        CheckpointConfig={"S3Uri": f"s3://{preprocessed.bucket}/checkpoints/{name}"},
    )
    request["StoppingCondition"] = {"MaxRuntimeInSeconds": 300, "MaxWaitTimeInSeconds": 600}
    sm.create_training_job(**request)

    group = "/aws/sagemaker/TrainingJobs"
    deadline = time.monotonic() + 120
    while not any(line.startswith("checkpoint saved") for line in log_lines(logs, group, name)):
        status = sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]
        assert status == "InProgress", f"the job ended ({status}) before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint was written within 120 s"
        time.sleep(0.2)
    admin(local_aws, f"/_local_aws/faults/training-jobs/{name}/interrupt-spot")
    job = wait_for(
        lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus", timeout=300
    )

    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    statuses = [t["Status"] for t in job["SecondaryStatusTransitions"]]
    assert "Interrupted" in statuses, "the job finished before the interruption arrived"
    lines = log_lines(logs, group, name)
    resumed = [line for line in lines if line.startswith("resuming from checkpoint at round")]
    assert len(resumed) == 1
    at = int(resumed[0].rsplit(" ", 1)[1])
    assert at > 0 and at % 25 == 0
    # the second run starts where the checkpoint ended, not at round 0
    after = lines[lines.index(resumed[0]) :]
    first_round = next(line for line in after if re.match(VALIDATION_AUCPR, line))
    assert first_round.startswith(f"[{at}]#011")
    files = read_tar(s3, job["ModelArtifacts"]["S3ModelArtifacts"])
    assert json.loads(files["features.json"])["rounds"] == 1000
    checkpoints = s3.list_objects_v2(Bucket=preprocessed.bucket, Prefix=f"checkpoints/{name}/").get(
        "Contents", []
    )
    keys = [c["Key"].rsplit("/", 1)[1] for c in checkpoints]
    assert any(re.fullmatch(r"xgboost-checkpoint\.\d{6}\.json", key) for key in keys), keys
    # the interruption may land mid-write: the half-written file keeps its temporary name,
    # which the loader never picks up
    assert all(
        re.fullmatch(r"xgboost-checkpoint\.\d{6}\.json|\.partial-\d+\.json", k) for k in keys
    )
    # spot bills only the time on capacity, at the spot discount
    assert job["BillableTimeInSeconds"] < job["TrainingTimeInSeconds"]


def test_preprocess_fails_naming_the_partition_and_the_missing_column(sm, s3):
    bucket = unique("model-build-bad")
    s3.create_bucket(Bucket=bucket)
    datagen.write_partition(s3, bucket, START, 200, seed=1)
    datagen.write_partition(
        s3,
        bucket,
        START + dt.timedelta(days=1),
        200,
        seed=1,
        corruptions=[Corruption.parse("missing_column:amount")],
    )
    name = unique("preprocess-bad")
    request = processing_request(
        name,
        SKLEARN_IMAGE,
        "preprocess.py",
        upload_script(s3, bucket, name, "preprocess.py"),
        ["--input-dir", f"{PROCESSING}/input/raw", "--train-dir", f"{PROCESSING}/train"],
        [s3_input("raw", f"s3://{bucket}/raw/transactions/", f"{PROCESSING}/input/raw")],
        [s3_output("train", f"{PROCESSING}/train", f"s3://{bucket}/features/{name}/train")],
    )
    job = run_processing(sm, request)
    assert job["ProcessingJobStatus"] == "Failed"
    assert "dt=2026-03-02/part-00000.csv lacks column(s) amount" in job["FailureReason"]
    assert s3.list_objects_v2(Bucket=bucket, Prefix="features/")["KeyCount"] == 0
