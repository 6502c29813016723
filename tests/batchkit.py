"""A real, small card-fraud model package for batch-inference tests, built in-process.

model_build's own containers do the work (preprocess's cleaning, features, vocabulary and
baseline; evaluate's score distribution; inference.py and preprocess.py as the served code),
only without running the jobs: a few seconds instead of a whole model_build run. The
package is registered as model_build registers it (``jobs.model_package_request``) and
approved through the registry API.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass
from typing import Any

from mlops_pipeline import code, datagen, jobs
from mlops_pipeline.config import load_settings
from tests.conftest import unique
from tests.jobkit import tar_gz

TRAIN_DAYS = (dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 3))
ROWS = 2000
SEED = 11


@dataclass(frozen=True)
class Package:
    arn: str
    version: int
    booster: Any
    vocabulary: dict[str, Any]


def train_frames(rows: int = ROWS, seed: int = SEED) -> Any:
    import pandas as pd

    from mlops_pipeline.containers import preprocess

    raw = pd.concat(
        [
            pd.read_csv(
                io.BytesIO(datagen.render_partition(day, rows, seed=seed)),
                dtype=str,
                keep_default_na=False,
                na_values=[""],
            ).assign(_partition=day.isoformat())
            for day in TRAIN_DAYS
        ],
        ignore_index=True,
    )
    frame, _ = preprocess.clean(raw)
    return frame


def register_package(
    s3: Any, sm: Any, bucket: str, group: str, approve: bool = True, image: str | None = None
) -> Package:
    """Train, upload and register a model package in ``group`` (approved unless told not;
    ``image`` replaces the serving image)."""
    import numpy as np
    import xgboost as xgb

    from mlops_pipeline.containers import evaluate, preprocess

    settings = load_settings({"MLOPS_BUCKET": bucket, "MLOPS_MODEL_PACKAGE_GROUP": group})
    frame = train_frames()
    cut = int(len(frame) * 0.8)
    train, test = frame.iloc[:cut], frame.iloc[cut:]
    vocabulary = preprocess.fit_vocabulary(train, 20)
    features = preprocess.engineer(train, vocabulary)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "nthread": 1},
        xgb.DMatrix(
            features.to_numpy(np.float32),
            label=train["is_fraud"],
            feature_names=list(features.columns),
        ),
        30,
    )
    test_features = preprocess.engineer(test, vocabulary)
    scores = booster.predict(
        xgb.DMatrix(test_features.to_numpy(np.float32), feature_names=list(test_features.columns))
    )
    baseline = preprocess.baseline(train, features)
    evaluation = {
        "version": 1,
        "binary_classification_metrics": {"pr_auc": {"value": 0.5}, "auc": {"value": 0.9}},
        "score_distribution": evaluate.score_distribution(scores),
    }
    root = f"model-build/test-{group}"
    files = {
        "xgboost-model": bytes(booster.save_raw("ubj")),
        "features.json": json.dumps({"features": list(features.columns)}).encode(),
        "vocabulary.json": json.dumps(vocabulary).encode(),
        "baseline.json": json.dumps(baseline).encode(),
    }
    s3.put_object(Bucket=bucket, Key=f"{root}/model.tar.gz", Body=tar_gz(files))
    s3.put_object(Bucket=bucket, Key=f"{root}/metadata/baseline.json", Body=files["baseline.json"])
    s3.put_object(
        Bucket=bucket,
        Key=f"{root}/evaluation/evaluation.json",
        Body=json.dumps(evaluation).encode(),
    )
    bundle = code.publish(s3, settings)
    # a run of its own: the request's ClientToken would otherwise return the same package
    run = jobs.JobRun("model_build", unique("manual"), "register", "20260303-abcdef")
    request = jobs.model_package_request(
        settings,
        run,
        model_uri=f"s3://{bucket}/{root}/model.tar.gz",
        sourcedir_uri=bundle.sourcedir_uri,
        code_version=bundle.version,
        evaluation_uri=f"s3://{bucket}/{root}/evaluation/evaluation.json",
        metadata_uri=f"s3://{bucket}/{root}/metadata",
        window_start=TRAIN_DAYS[0].isoformat(),
        window_end=TRAIN_DAYS[-1].isoformat(),
        training_job="test-training-job",
        tuning_job="test-tuning-job",
    )
    if image:
        request["InferenceSpecification"]["Containers"][0]["Image"] = image
    try:
        sm.create_model_package_group(ModelPackageGroupName=group)
    except sm.exceptions.ClientError as error:
        if "already exists" not in str(error).lower():
            raise
    arn = sm.create_model_package(**request)["ModelPackageArn"]
    if approve:
        sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    version = sm.describe_model_package(ModelPackageName=arn)["ModelPackageVersion"]
    return Package(arn, version, booster, vocabulary)


def expected_scores(package: Package, raw: Any) -> Any:
    """What the model scores for raw rows, computed in-process."""
    import numpy as np
    import pandas as pd
    import xgboost as xgb

    from mlops_pipeline.containers import preprocess

    frame = raw.copy()
    frame["event_time"] = preprocess.parse_times(frame["event_time"])
    for column in preprocess.NUMERIC_RAW:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    features = preprocess.engineer(frame, package.vocabulary)
    return package.booster.predict(
        xgb.DMatrix(features.to_numpy(np.float32), feature_names=list(features.columns))
    )
