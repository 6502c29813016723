"""The quality gate's decisions and its reasons."""

from __future__ import annotations

from mlops_pipeline.gate import Threshold, evaluate_gate, flatten_metrics

REPORT = {
    "binary_classification_metrics": {
        "pr_auc": {"value": 0.62, "standard_deviation": "NaN"},
        "roc_auc": {"value": 0.93},
        "confusion_matrix": {"0": {"0": 10, "1": 1}},
    },
    "rows": {"test": 1000},
}
THRESHOLDS = [Threshold("pr_auc", minimum=0.5), Threshold("roc_auc", minimum=0.85)]


def test_flatten_reads_sagemaker_model_quality_json():
    flat = flatten_metrics(REPORT)
    assert flat["pr_auc"] == 0.62 and flat["roc_auc"] == 0.93 and flat["test"] == 1000


def test_passes_thresholds_without_an_approved_model():
    result = evaluate_gate(flatten_metrics(REPORT), THRESHOLDS)
    assert result.passed
    assert "no approved model yet" in result.summary()


def test_fails_below_threshold_and_says_why():
    result = evaluate_gate({"pr_auc": 0.3, "roc_auc": 0.9}, THRESHOLDS)
    assert not result.passed
    assert "pr_auc = 0.3000 is below the minimum 0.5000" in result.summary()


def test_missing_metric_fails():
    result = evaluate_gate({"roc_auc": 0.9}, THRESHOLDS)
    assert not result.passed and "pr_auc: missing" in result.summary()


def test_regression_against_approved_model_fails_within_tolerance_passes():
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/card-fraud/3"
    worse = evaluate_gate(
        {"pr_auc": 0.60, "roc_auc": 0.9},
        THRESHOLDS,
        approved={"pr_auc": 0.70},
        approved_arn=arn,
        no_regression=("pr_auc",),
        tolerance=0.02,
    )
    assert not worse.passed
    assert "regresses from the approved model's 0.7000" in worse.summary()
    assert arn in worse.summary()
    close = evaluate_gate(
        {"pr_auc": 0.69, "roc_auc": 0.9},
        THRESHOLDS,
        approved={"pr_auc": 0.70},
        no_regression=("pr_auc",),
        tolerance=0.02,
    )
    assert close.passed
