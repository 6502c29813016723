"""The gate's verdict and the summary a person reads when it fails."""

from __future__ import annotations

import pytest

from mlops_pipeline.quality import severity


def result(expectations, **extra):
    return {
        "contract": 1,
        "dataset": "transactions",
        "partition": "2026-01-05",
        "status": "validated",
        "row_count": 1000,
        "expectations": expectations,
        "data_docs_uri": "s3://b/quality/runs/x/output/data_docs/validations/p.html",
        **extra,
    }


BETWEEN = {
    "type": "expect_column_values_to_be_between",
    "column": "amount",
    "severity": "error",
    "success": False,
    "observed": {
        "element_count": 1000,
        "unexpected_count": 12,
        "unexpected_percent": 1.2,
        "unexpected_sample": [-5.0, -1.5],
    },
    "bounds": {"min_value": 0, "strict_min": True},
}
MEAN = {
    "type": "expect_column_mean_to_be_between",
    "column": "is_fraud",
    "severity": "warning",
    "success": False,
    "observed": {"value": 0.31},
    "bounds": {"min_value": 0.002, "max_value": 0.1},
}
ROWS = {
    "type": "expect_table_row_count_to_be_between",
    "column": None,
    "severity": "error",
    "success": False,
    "observed": {"value": 400},
    "bounds": {"min_value": 500.0, "max_value": 2000.0},
    "anomaly": {
        "metric": "row_count",
        "strategy": "relative_rate_of_change",
        "reason": "previous value 1,000 × allowed rate",
    },
}


def test_an_error_fails_the_gate_and_the_summary_says_what_where_and_how_far():
    verdict = severity.evaluate(result([BETWEEN, MEAN, ROWS, {**MEAN, "success": True}]))
    assert not verdict.passed and verdict.status == "failed"
    text = verdict.summary("s3://b/result.json")
    assert text.splitlines() == [
        "Data quality gate FAILED for dataset 'transactions', partition 2026-01-05, 1,000 rows: "
        "2 errors, 1 warning (4 expectations evaluated)",
        "  ERROR    expect_column_values_to_be_between on amount: observed 12 of 1,000 rows "
        "(1.2%) unexpected, e.g. [-5.0, -1.5]; expected (0, +inf)",
        "  ERROR    anomaly in row_count (relative_rate_of_change): observed 400; expected "
        "[500, 2,000] (previous value 1,000 × allowed rate)",
        "  WARNING  expect_column_mean_to_be_between on is_fraud: observed 0.31; expected "
        "[0.002, 0.1]",
        "Data Docs: s3://b/quality/runs/x/output/data_docs/validations/p.html",
        "Result: s3://b/result.json",
    ]


def test_warnings_alone_pass_the_gate():
    verdict = severity.evaluate(result([MEAN, {**BETWEEN, "success": True}]))
    assert verdict.passed and verdict.status == "warning"
    assert verdict.to_xcom()["warnings"] == 1
    info = severity.evaluate(result([{**MEAN, "severity": "info"}]))
    assert info.status == "passed" and len(info.infos) == 1


def test_invalid_input_fails_with_its_problems():
    verdict = severity.evaluate(
        result(
            [],
            status="invalid_input",
            row_count=None,
            problems=[{"kind": "missing_columns", "message": "part-0.csv lacks column(s) amount"}],
        )
    )
    assert not verdict.passed
    assert "  INPUT    missing_columns: part-0.csv lacks column(s) amount" in verdict.summary()


def test_an_expectation_that_could_not_run_fails_with_its_exception():
    broken = {**BETWEEN, "observed": {}, "exception": "column 'amount' does not exist"}
    text = severity.evaluate(result([broken])).summary()
    assert "observed nothing (not evaluated)" in text
    assert "could not be evaluated: column 'amount' does not exist" in text


def test_a_result_from_another_contract_version_is_refused():
    with pytest.raises(severity.ResultError, match="contract 2, expected 1"):
        severity.evaluate(result([], contract=2))
