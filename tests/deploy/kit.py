"""Model packages for deployment tests: small scikit-learn models in a registry group laid
out as model_build leaves them (evaluation.json and the test split under one run root)."""

from __future__ import annotations

import datetime as dt
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import SKLEARN_IMAGE, unique
from tests.jobkit import fit, upload_model, upload_source

INFERENCE = """
import os
import joblib
import numpy as np

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def input_fn(body, content_type):
    text = body.decode() if isinstance(body, bytes) else body
    return np.array([[float(x) for x in line.split(",")] for line in text.split() if line])

def predict_fn(data, model):
    return model.predict(np.atleast_2d(data))
"""
TEST_ROWS = "\n".join(f"{i % 2},{i * 0.1:.1f},{1 - i * 0.05:.2f},{i % 3}" for i in range(40))
DAY = dt.datetime(2026, 3, 7, tzinfo=dt.UTC)


@dataclass
class Registry:
    bucket: str
    group: str
    code: str

    def register(
        self,
        sm: Any,
        s3: Any,
        coef: list[float],
        status: str = "Approved",
        evaluation: dict[str, Any] | None = None,
        **request: Any,
    ) -> str:
        """A new package version serving LinearRegression(coef); its ARN. ``evaluation`` is
        its evaluation.json (default: a PR-AUC of 0.5); ``request`` adds CreateModelPackage
        fields (lineage metadata, as model_build's register sets them)."""
        root = f"model-build/{unique('run')}"
        model = upload_model(s3, self.bucket, f"{root}/model.tar.gz", fit(coef, 0.5))
        s3.put_object(
            Bucket=self.bucket,
            Key=f"{root}/evaluation/evaluation.json",
            Body=json.dumps(
                evaluation or {"binary_classification_metrics": {"pr_auc": {"value": 0.5}}}
            ),
        )
        s3.put_object(Bucket=self.bucket, Key=f"{root}/features/test/test.csv", Body=TEST_ROWS)
        return sm.create_model_package(
            ModelPackageGroupName=self.group,
            ModelApprovalStatus=status,
            InferenceSpecification={
                "Containers": [
                    {
                        "Image": SKLEARN_IMAGE,
                        "ModelDataUrl": model,
                        "Environment": {
                            "SAGEMAKER_PROGRAM": "inference.py",
                            "SAGEMAKER_SUBMIT_DIRECTORY": self.code,
                        },
                    }
                ],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
            ModelMetrics={
                "ModelQuality": {
                    "Statistics": {
                        "ContentType": "application/json",
                        "S3Uri": f"s3://{self.bucket}/{root}/evaluation/evaluation.json",
                    }
                }
            },
            **request,
        )["ModelPackageArn"]


def new_registry(sm: Any, s3: Any) -> Registry:
    bucket, group = unique("deploy"), unique("card-fraud")
    s3.create_bucket(Bucket=bucket)
    sm.create_model_package_group(ModelPackageGroupName=group)
    code = upload_source(s3, bucket, "code/sourcedir.tar.gz", {"inference.py": INFERENCE})
    return Registry(bucket, group, code)


# quick bakes: metrics per second, 2 s bakes, ~10 calls per variant and bake
FAST = {
    "MLOPS_CHECK_INTERVAL_SECONDS": "0.2",
    "MLOPS_DEPLOY_POLL_SECONDS": "0.2",
    "MLOPS_DEPLOY_METRIC_PERIOD_SECONDS": "1",
    "MLOPS_DEPLOY_CANARY_PLAN": "10%:2s,50%:2s,100%",
    "MLOPS_DEPLOY_REPLAY_RATE": "8",
    "MLOPS_DEPLOY_MIN_INVOCATIONS": "5",
    "MLOPS_DEPLOY_MAX_LATENCY_RATIO": "3",
    "MLOPS_DEPLOY_LATENCY_SLACK_MS": "50",
    "MLOPS_DEPLOY_SMOKE_MAX_LATENCY_MS": "2000",
}


@contextmanager
def environment(registry: Registry, endpoint: str, **extra: str):
    env = {
        **FAST,
        "MLOPS_BUCKET": registry.bucket,
        "MLOPS_MODEL_PACKAGE_GROUP": registry.group,
        "MLOPS_DEPLOY_ENDPOINT_NAME": endpoint,
        "MLOPS_DEPLOY_STAGING_ENDPOINT_NAME": f"{endpoint}-staging",
        **extra,
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield env
    assert all(k not in os.environ or k in FAST for k in ())
