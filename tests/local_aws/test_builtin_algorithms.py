"""The built-in k-NN and Linear Learner algorithms (their images, no script): training,
hosting, batch transform and tuning through boto3, under the algorithms' documented
contracts, checked against scikit-learn run in this process on the same data."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from tests.algokit import (
    CSV,
    KNN_IMAGE,
    LINEAR_LEARNER_IMAGE,
    RECORDIO,
    channel,
    csv_rows,
    csv_with_label,
    make_data,
    read_recordio_labels,
    recordio,
    tar_members,
    training_request,
)
from tests.conftest import ROLE_ARN, unique, wait_for
from tests.jobkit import endpoint_config_request

K = 5


@pytest.fixture(scope="module")
def data(s3) -> dict[str, Any]:
    bucket = unique("algos")
    s3.create_bucket(Bucket=bucket)
    train, test, valid = make_data(300, 1), make_data(100, 2), make_data(100, 3)
    put = {
        "train-csv/part-0.csv": csv_with_label(*train),
        "train-rec/part-0.rec": recordio(*train),
        "test-csv/part-0.csv": csv_with_label(*test),
        "valid-rec/part-0.rec": recordio(*valid),
    }
    for key, body in put.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    return {"bucket": bucket, "train": train, "test": test, "uri": f"s3://{bucket}"}


def _train(sm, request: dict[str, Any]) -> dict[str, Any]:
    sm.create_training_job(**request)
    name = request["TrainingJobName"]
    return wait_for(lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus")


def knn_request(data: dict[str, Any], name: str, **hps: str) -> dict[str, Any]:
    uri = data["uri"]
    train = channel("train", f"{uri}/train-rec/", RECORDIO)
    del train["ContentType"]  # RecordIO-protobuf is the algorithms' default
    return training_request(
        name, KNN_IMAGE, f"{uri}/out", [train, channel("test", f"{uri}/test-csv/", CSV)], **hps
    )


def ll_request(data: dict[str, Any], name: str, **hps: str) -> dict[str, Any]:
    uri = data["uri"]
    channels = [
        channel("train", f"{uri}/train-csv/", CSV),
        channel("validation", f"{uri}/valid-rec/", RECORDIO),
        channel("test", f"{uri}/test-csv/", CSV),
    ]
    return training_request(name, LINEAR_LEARNER_IMAGE, f"{uri}/out", channels, **hps)


@pytest.fixture(scope="module")
def knn(sm, data) -> dict[str, Any]:
    # a sample larger than the data is accepted, as on AWS: every point is indexed
    hps = {"feature_dim": "4", "k": str(K), "predictor_type": "classifier", "sample_size": "5000"}
    job = _train(sm, knn_request(data, unique("knn"), **hps))
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    return job


@pytest.fixture(scope="module")
def linear(sm, data) -> dict[str, Any]:
    hps = {"predictor_type": "binary_classifier", "feature_dim": "4", "epochs": "10"}
    job = _train(sm, ll_request(data, unique("ll"), **hps))
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    return job


def sklearn_knn(data: dict[str, Any]) -> Any:
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(n_neighbors=K).fit(*data["train"])


def metrics_of(job: dict[str, Any]) -> dict[str, float]:
    return {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}


def test_knn_training_writes_its_model_and_test_accuracy(knn, s3, data):
    artifact = knn["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact == f"{data['uri']}/out/{knn['TrainingJobName']}/output/model.tar.gz"
    assert list(tar_members(s3, artifact)) == ["model_algo-1"]
    # exact search, k=5, two classes: the same accuracy scikit-learn gets here
    expected = sklearn_knn(data).score(*data["test"])
    assert metrics_of(knn) == {"test:accuracy": pytest.approx(expected, abs=1e-9)}


def test_linear_learner_training_reports_its_documented_metrics(linear, s3):
    assert list(tar_members(s3, linear["ModelArtifacts"]["S3ModelArtifacts"])) == ["model_algo-1"]
    metrics = metrics_of(linear)
    for name in ("binary_classification_accuracy", "objective_loss", "roc_auc_score", "recall"):
        assert f"validation:{name}" in metrics and f"test:{name}" in metrics, metrics
    # nearly separable data: a linear model ranks and labels them well
    assert metrics["validation:binary_classification_accuracy"] > 0.9
    assert metrics["test:roc_auc_score"] > 0.95
    assert 0 < metrics["validation:objective_loss"] < 0.5


def _model(sm, image: str, job: dict[str, Any]) -> str:
    name = unique("algo-model")
    sm.create_model(
        ModelName=name,
        PrimaryContainer={
            "Image": image,
            "ModelDataUrl": job["ModelArtifacts"]["S3ModelArtifacts"],
        },
        ExecutionRoleArn=ROLE_ARN,
    )
    return name


def _endpoint(sm, model: str) -> str:
    config = unique("algo-config")
    sm.create_endpoint_config(**endpoint_config_request(config, {"AllTraffic": (model, 1.0)}))
    endpoint = unique("algo-endpoint")
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    done = wait_for(lambda: sm.describe_endpoint(EndpointName=endpoint), "EndpointStatus")
    assert done["EndpointStatus"] == "InService", done.get("FailureReason")
    return endpoint


def _transform(sm, s3, data, model: str, key: str, body: bytes, **output: str) -> list[str]:
    s3.put_object(Bucket=data["bucket"], Key=f"batch/{key}", Body=body)
    job = unique("algo-transform")
    sm.create_transform_job(
        TransformJobName=job,
        ModelName=model,
        TransformInput={
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{data['uri']}/batch/{key}"}
            },
            "ContentType": CSV,
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": f"{data['uri']}/scored/{job}/", **output},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
    )
    done = wait_for(lambda: sm.describe_transform_job(TransformJobName=job), "TransformJobStatus")
    assert done["TransformJobStatus"] == "Completed", done.get("FailureReason")
    out = s3.get_object(Bucket=data["bucket"], Key=f"scored/{job}/{key}.out")["Body"].read()
    return out.decode().splitlines()


def test_knn_endpoint_and_batch_transform_answer_in_the_algorithms_formats(
    sm, s3, runtime, knn, data
):
    x, _ = data["test"]
    expected = sklearn_knn(data).predict(x[:6]).tolist()
    model = _model(sm, KNN_IMAGE, knn)
    endpoint = _endpoint(sm, model)

    def invoke(body: bytes | str, content_type: str, **accept: str) -> Any:
        answer = runtime.invoke_endpoint(
            EndpointName=endpoint, Body=body, ContentType=content_type, **accept
        )
        return answer["ContentType"], answer["Body"].read()

    # CSV in, JSON out by default
    kind, body = invoke(csv_rows(x[:6]), CSV)
    assert kind == "application/json"
    assert json.loads(body) == {"predictions": [{"predicted_label": v} for v in expected]}
    # JSON instances in (dense and the data/features form), verbose answers name neighbours
    instances = {
        "instances": [
            {"features": x[0].tolist()},
            {"data": {"features": {"values": x[1].tolist()}}},
        ]
    }
    kind, body = invoke(
        json.dumps(instances), "application/json", Accept="application/json; verbose=true"
    )
    answers = json.loads(body)["predictions"]
    assert [a["predicted_label"] for a in answers] == expected[:2]
    for answer in answers:
        assert len(answer["labels"]) == len(answer["distances"]) == K
        assert answer["distances"] == sorted(answer["distances"])
    # RecordIO-protobuf in and out
    kind, body = invoke(recordio(x[:6]), RECORDIO, Accept=RECORDIO)
    assert kind == RECORDIO
    assert read_recordio_labels(body) == [{"predicted_label": [v]} for v in expected]
    sm.delete_endpoint(EndpointName=endpoint)

    lines = _transform(
        sm, s3, data, model, "knn.csv", csv_rows(x[:6]).encode(),
        Accept="application/jsonlines", AssembleWith="Line",
    )  # fmt: skip
    assert [json.loads(line) for line in lines] == [{"predicted_label": v} for v in expected]


def test_linear_learner_endpoint_and_batch_transform_score_and_label(sm, s3, runtime, linear, data):
    x, y = data["test"]
    model = _model(sm, LINEAR_LEARNER_IMAGE, linear)
    endpoint = _endpoint(sm, model)
    answer = runtime.invoke_endpoint(
        EndpointName=endpoint,
        Body=json.dumps({"instances": [{"features": row.tolist()} for row in x]}),
        ContentType="application/json",
    )
    predictions = json.loads(answer["Body"].read())["predictions"]
    assert len(predictions) == len(x) and all(
        set(p) == {"score", "predicted_label"} for p in predictions
    )
    scores = np.array([p["score"] for p in predictions])
    labels = np.array([p["predicted_label"] for p in predictions])
    assert ((scores >= 0) & (scores <= 1)).all()
    # one threshold separates the labels it gives, and they are mostly right
    assert labels.min() == 0 and labels.max() == 1
    assert scores[labels == 0].max() < scores[labels == 1].min()
    assert np.mean(labels == y) > 0.9
    sm.delete_endpoint(EndpointName=endpoint)

    lines = _transform(sm, s3, data, model, "ll.csv", csv_rows(x[:8]).encode(), Accept=CSV)
    rows = [[float(v) for v in line.split(",")] for line in lines]  # score,predicted_label
    assert rows == [
        pytest.approx([p["score"], p["predicted_label"]], rel=1e-6) for p in predictions[:8]
    ]


@pytest.mark.parametrize(
    "algorithm, metric, ranges, static",
    [
        (
            "knn", "test:accuracy", {"Name": "k", "Values": ["1", "9"]},
            {"feature_dim": "4", "predictor_type": "classifier", "sample_size": "300"},
        ),
        (
            "linear-learner", "validation:binary_classification_accuracy",
            {"Name": "mini_batch_size", "Values": ["50", "200"]},
            {"predictor_type": "binary_classifier", "epochs": "3"},
        ),
    ],
)  # fmt: skip
def test_tuning_on_the_algorithms_metric_needs_no_metric_definitions(
    sm, data, algorithm, metric, ranges, static
):
    build = knn_request if algorithm == "knn" else ll_request
    definition = build(data, "unused")
    name = unique(f"tune-{algorithm}")[:32]
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name,
        HyperParameterTuningJobConfig={
            "Strategy": "Grid",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": metric},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 2},
            "ParameterRanges": {"CategoricalParameterRanges": [ranges]},
        },
        TrainingJobDefinition={
            **{
                k: definition[k]
                for k in (
                    "AlgorithmSpecification",
                    "InputDataConfig",
                    "OutputDataConfig",
                    "ResourceConfig",
                    "StoppingCondition",
                )
            },  # fmt: skip
            "RoleArn": ROLE_ARN,
            "StaticHyperParameters": static,
        },
    )
    job = wait_for(
        lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
        "HyperParameterTuningJobStatus",
    )
    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    assert job["TrainingJobStatusCounters"]["Completed"] == 2
    best = job["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]
    assert best["MetricName"] == metric and 0.8 < best["Value"] <= 1.0


@pytest.mark.parametrize(
    "algorithm, hps, reason",
    [
        (
            "knn", {"predictor_type": "classifier", "feature_dim": "4"},
            "ClientError: No value(s) were specified for 'k', 'sample_size' which are required "
            "hyperparameter(s) (caused by ValidationError)",
        ),
        (
            "linear-learner", {"feature_dim": "4"},
            "ClientError: No value(s) were specified for 'predictor_type' which are required "
            "hyperparameter(s) (caused by ValidationError)",
        ),
        (
            "knn", {"predictor_type": "classifier", "feature_dim": "7", "k": "3", "sample_size": "9"},
            "ClientError: channel 'train' has 4 features per record, but the hyperparameter "
            "feature_dim is 7",
        ),
        (
            "linear-learner", {"predictor_type": "multiclass_classifier", "num_classes": "3", "loss": "hinge_loss"},
            "ClientError: Hyperparameter loss: 'hinge_loss' is not one of ['auto', 'softmax_loss'] "
            "for a multiclass_classifier (caused by ValidationError)",
        ),
        (
            "linear-learner", {"predictor_type": "binary_classifier", "loss": "quantile_loss"},
            "ClientError: Hyperparameter loss: 'quantile_loss' is not one of ['auto', 'logistic', "
            "'hinge_loss'] for a binary_classifier (caused by ValidationError)",
        ),
        (
            "linear-learner", {"predictor_type": "regressor", "loss": "quantile_loss", "quantile": "1.5"},
            "ClientError: Hyperparameter quantile: '1.5' is not a number between 0 and 1",
        ),
    ],
    ids=[
        "knn-missing", "linear-learner-missing", "knn-feature-dim", "multiclass-hinge",
        "binary-quantile", "quantile-out-of-range",
    ],
)  # fmt: skip
def test_bad_hyperparameters_fail_with_a_client_error(sm, data, algorithm, hps, reason):
    build = knn_request if algorithm == "knn" else ll_request
    job = _train(sm, build(data, unique("algo-bad"), **hps))
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith(reason)


# -- Linear Learner's losses ------------------------------------------------------------------
def make_regression(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """y = 2 x0 - x1 + N(0, 1): a linear signal, noise of unit variance."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    return x, 2 * x[:, 0] - x[:, 1] + rng.normal(size=rows)


@pytest.fixture(scope="module")
def regression(s3, data) -> dict[str, Any]:
    sets = {"train": make_regression(300, 11), "validation": make_regression(100, 12)}
    sets["test"] = make_regression(200, 13)
    for name, (x, y) in sets.items():
        body = "".join(
            ",".join(repr(float(v)) for v in (t, *row)) + "\n" for row, t in zip(x, y, strict=True)
        )
        s3.put_object(Bucket=data["bucket"], Key=f"reg-{name}/part-0.csv", Body=body.encode())
    return sets


def regressor_request(data: dict[str, Any], name: str, **hps: str) -> dict[str, Any]:
    channels = [channel(c, f"{data['uri']}/reg-{c}/", CSV) for c in ("train", "validation", "test")]
    hps = {"predictor_type": "regressor", "mini_batch_size": "50", "epochs": "15", **hps}
    return training_request(name, LINEAR_LEARNER_IMAGE, f"{data['uri']}/out", channels, **hps)


@pytest.mark.parametrize(
    "loss",
    ["auto", "squared_loss", "absolute_loss", "eps_insensitive_squared_loss",
     "eps_insensitive_absolute_loss", "huber_loss", "quantile_loss"],
)  # fmt: skip
def test_linear_learner_trains_a_regressor_with_each_documented_loss(sm, data, regression, loss):
    job = _train(sm, regressor_request(data, unique("ll-loss"), loss=loss))
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    metrics = metrics_of(job)
    # every loss fits the linear signal: what is left is about the noise's variance (1)
    assert metrics["test:mse"] < 1.3, metrics
    assert metrics["test:objective_loss"] > 0


@pytest.mark.parametrize("q", [0.1, 0.9])
def test_linear_learner_quantile_loss_predicts_the_quantile(sm, s3, data, regression, q):
    """The model's test objective is the pinball loss, near scikit-learn's exact
    (linear-programming) quantile regression; about q of the labels fall below its scores."""
    from sklearn.linear_model import QuantileRegressor

    job = _train(
        sm, regressor_request(data, unique("ll-quantile"), loss="quantile_loss", quantile=str(q))
    )
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    x, y = regression["test"]
    exact = QuantileRegressor(quantile=q, alpha=0, solver="highs").fit(*regression["train"])
    residual = y - exact.predict(x)
    best = float(np.mean(np.maximum(q * residual, (q - 1) * residual)))
    assert metrics_of(job)["test:objective_loss"] == pytest.approx(best, rel=0.05)

    model = _model(sm, LINEAR_LEARNER_IMAGE, job)
    lines = _transform(sm, s3, data, model, f"q{q}.csv", csv_rows(x).encode(), Accept=CSV)
    scores = np.array([float(line) for line in lines])
    assert len(scores) == len(y)
    # 200 test rows: the fraction below is q give or take sampling noise (sd ~0.02)
    assert np.mean(y <= scores) == pytest.approx(q, abs=0.07)


@pytest.fixture(scope="module")
def three_classes(s3, data) -> str:
    """Labels 0, 1, 2: the largest of the first three features (linearly separable)."""
    for name, seed, rows in (("train", 21, 300), ("validation", 22, 100), ("test", 23, 100)):
        x = np.random.default_rng(seed).normal(size=(rows, 4)).astype(np.float32)
        y = x[:, :3].argmax(axis=1).astype(np.float32)
        s3.put_object(
            Bucket=data["bucket"], Key=f"multi-{name}/part-0.csv", Body=csv_with_label(x, y)
        )
    return f"{data['uri']}/multi-"


@pytest.mark.parametrize(
    "hps, metric",
    [
        (
            {"predictor_type": "binary_classifier", "loss": "hinge_loss", "margin": "2"},
            "validation:binary_classification_accuracy",
        ),
        (
            {"predictor_type": "multiclass_classifier", "num_classes": "3", "loss": "softmax_loss"},
            "validation:multiclass_accuracy",
        ),
    ],
    ids=["binary-hinge", "multiclass-softmax"],
)
def test_linear_learner_trains_a_classifier_with_its_documented_losses(
    sm, data, three_classes, hps, metric
):
    name = unique("ll-class")
    if hps["predictor_type"] == "multiclass_classifier":
        channels = [channel(c, f"{three_classes}{c}/", CSV) for c in ("train", "validation")]
        request = training_request(
            name, LINEAR_LEARNER_IMAGE, f"{data['uri']}/out", channels, epochs="10", **hps
        )
    else:
        request = ll_request(data, name, epochs="10", **hps)
    job = _train(sm, request)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    metrics = metrics_of(job)
    assert metrics[metric] > 0.85, metrics
    assert 0 < metrics["validation:objective_loss"] < 1, metrics
