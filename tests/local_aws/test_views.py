"""local_aws's read-only HTML pages of a resource (the task links' target offline): what
they show, that they escape what users and jobs wrote, and that they stay open to a
browser (no signature) for GET only."""

from __future__ import annotations

import json
import urllib.request

from local_aws.sagemaker import views
from tests.conftest import http_get, unique

HTML = {"Accept": "text/html,application/xhtml+xml"}


def test_a_model_package_page_and_its_json(local_aws, sm):
    group = unique("views-group")
    sm.create_model_package_group(ModelPackageGroupName=group)
    arn = sm.create_model_package(
        ModelPackageGroupName=group,
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [
                {
                    "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
                    "ModelDataUrl": "s3://models/fraud/model.tar.gz",
                }
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )["ModelPackageArn"]
    url = f"{local_aws.url}/_local_aws/describe/model-packages/{group}/1"
    status, page = http_get(url, HTML)
    assert status == 200, page
    assert "PendingManualApproval" in page and "s3://models/fraud/model.tar.gz" in page
    assert "<h2>Artefacts</h2>" in page and "Log (last" not in page  # packages have no log
    status, body = http_get(url)  # an HTTP client that does not ask for HTML gets JSON
    assert status == 200 and json.loads(body)["ModelPackageArn"] == arn
    assert http_get(f"{url}/logs")[0] == 404
    # read-only: only GET is open without a signature or the admin token
    request = urllib.request.Request(url, method="POST", data=b"{}")
    try:
        urllib.request.urlopen(request, timeout=30)
        raise AssertionError("a POST went through")
    except urllib.error.HTTPError as error:
        assert error.code == 403


def test_everything_shown_is_escaped():
    description = {
        "TrainingJobName": "tj",
        "TrainingJobStatus": "Failed",
        "FailureReason": "<img src=x onerror=alert(1)>",
        "HyperParameters": {"<b>depth</b>": "\"'><script>alert(2)</script>"},
        "FinalMetricDataList": [{"MetricName": "auc", "Value": 0.91, "Timestamp": 0}],
        "SecondaryStatusTransitions": [
            {"Status": "Training", "StartTime": 0, "StatusMessage": "<i>go</i>"}
        ],
        "ModelArtifacts": {"S3ModelArtifacts": "s3://b/<k>/model.tar.gz"},
    }
    page = views.render_resource(
        "training-jobs", "tj", description, log_lines=["<script>alert(3)</script>"]
    )
    assert "<script>" not in page and "<img src=x" not in page and "<b>depth" not in page
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    for section in ("Timeline", "Hyperparameters", "Metrics", "Artefacts", "Log (last 50 lines)"):
        assert f"<h2>{section}</h2>" in page
    assert "s3://b/&lt;k&gt;/model.tar.gz" in page and "0.91" in page


def test_a_tuning_page_lists_its_training_jobs():
    description = {
        "HyperParameterTuningJobName": "tune",
        "HyperParameterTuningJobStatus": "Completed",
        "BestTrainingJob": {
            "TrainingJobName": "tune-002-b",
            "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "auc", "Value": 0.9},
        },
    }
    children = [
        {
            "TrainingJobName": f"tune-00{i}-x",
            "TrainingJobStatus": "Completed",
            "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "auc", "Value": v},
            "TunedHyperParameters": {"max_depth": str(i + 2)},
        }
        for i, v in ((1, 0.8), (2, 0.9))
    ]
    page = views.render_resource(
        "hyper-tuning-jobs", "tune", description, log_lines=[], children=children
    )
    assert "<h2>Training jobs</h2>" in page and "tune-001-x" in page and "max_depth=4" in page
    assert "best: auc" in page and "tune-002-b" in page
