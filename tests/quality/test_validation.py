"""The validation job's code (containers/validate.py) with real GX, on small partitions.

Every expectation type the suites or the anomaly checks use is run here through the whole
path (GX run, result store, Data Docs, our JSON result), on passing and on failing data:
GX 1.24's quantile expectation, for one, breaks only when its result is serialised.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlops_pipeline.containers import dq_gx, validate
from mlops_pipeline.quality import anomaly, severity
from tests.quality.conftest import load, params, write_partition
from tests.quality.data import to_csv, training_features, transactions

ROWS = 400


def run(tmp_path: Path, body: bytes, suite: dict[str, Any], **extra: Any) -> dict[str, Any]:
    data = write_partition(tmp_path / "data", body)
    return validate.validate(str(data), suite, params(**extra), str(tmp_path / "out"))


def unmet(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{e['type']}:{e['column']}": e for e in result["expectations"] if not e["success"]}


def predictions(rows: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "transaction_id": transactions(rows).transaction_id,
            "score": np.round(rng.beta(0.3, 12, rows), 6),
            "model_version": "card-fraud/3",
        }
    )


CLEAN = {
    "transactions": lambda: transactions(ROWS),
    "training_features": lambda: training_features(ROWS),
    "predictions": lambda: predictions(ROWS),
}


@pytest.mark.parametrize("dataset", sorted(CLEAN))
def test_each_suite_passes_on_clean_data_with_docs_and_metrics(tmp_path, dataset):
    suite = load(dataset)
    body = to_csv(CLEAN[dataset](), header=suite["meta"].get("header", True))
    result = run(tmp_path, body, suite, dataset=dataset)

    assert result["status"] == "validated"
    assert [e for e in result["expectations"] if not e["success"] or e["exception"]] == []
    assert result["gx_success"] is True
    assert len(result["expectations"]) == len(suite["expectations"])
    # the contract is plain JSON on disk, next to the metrics and the Data Docs page
    on_disk = json.loads((tmp_path / "out" / "result.json").read_text())
    assert on_disk["expectations"] == result["expectations"]
    page = result["data_docs_uri"].split("/output/", 1)[1]
    assert (tmp_path / "out" / page).is_file()
    # the run's page alone: the site's index and static files are the site's, not the run's
    assert [p.name for p in (tmp_path / "out" / "data_docs").iterdir()] == ["validation.html"]
    assert "<html" in (tmp_path / "out" / page).read_text()
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["row_count"] == ROWS
    assert severity.evaluate(result).status == "passed"


# Each corruption breaks one expectation of the transactions suite; together they cover
# the failing path of every expectation type the suite uses.
def _set(column: str, value: Any, rows: slice = slice(0, 3)):
    def spoil(df):
        df[column] = df[column].astype(object)
        df.loc[df.index[rows], column] = value
        return df

    return spoil


CORRUPTIONS = {
    "null amount": (_set("amount", None), "expect_column_values_to_not_be_null:amount"),
    "negative amount": (_set("amount", -5.0), "expect_column_values_to_be_between:amount"),
    "duplicated keys": (
        _set("transaction_id", "tx-dup"),
        "expect_column_values_to_be_unique:transaction_id",
    ),
    "unknown category": (
        _set("merchant_category", "casino"),
        "expect_column_values_to_be_in_set:merchant_category",
    ),
    "bad country code": (
        _set("country", "Germany"),
        "expect_column_values_to_match_regex:country",
    ),
    "hour out of range": (_set("hour", 24), "expect_column_values_to_be_between:hour"),
    "event from another day": (
        _set("event_time", "2026-01-06T00:00:01Z"),
        "expect_column_values_to_be_between:event_time",
    ),
    "24h count below 1h count": (
        _set("txn_count_1h", 99),
        "expect_column_pair_values_a_to_be_greater_than_b:txn_count_24h,txn_count_1h",
    ),
    "fraud label not 0/1": (_set("is_fraud", 2), "expect_column_values_to_be_in_set:is_fraud"),
    "fraud rate too high": (
        _set("is_fraud", 1, slice(0, ROWS // 2)),
        "expect_column_mean_to_be_between:is_fraud",
    ),
    "amounts too large": (
        _set("amount", 30000.0, slice(0, ROWS // 2 + 5)),
        "expect_column_quantile_values_to_be_between:amount",
    ),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corruption_fails_the_expectation_that_guards_it(tmp_path, transactions_suite, name):
    spoil, key = CORRUPTIONS[name]
    result = run(tmp_path, to_csv(spoil(transactions(ROWS))), transactions_suite)

    failed = unmet(result)
    assert key in failed, sorted(failed)
    item = failed[key]
    assert item["exception"] is None
    assert item["observed"], item
    assert item["bounds"] or item["type"].endswith(("_unique", "_not_be_null"))
    line = severity.describe(item)
    assert item["column"].split(",")[0] in line and "observed" in line and "expected" in line


def test_warning_severity_fails_in_gx_but_passes_the_gate(tmp_path, transactions_suite):
    spoil, _ = CORRUPTIONS["fraud rate too high"]
    result = run(tmp_path, to_csv(spoil(transactions(ROWS))), transactions_suite)

    assert result["gx_success"] is False  # GX: any failure fails the suite
    verdict = severity.evaluate(result)
    assert verdict.passed and verdict.status == "warning"
    assert [w["column"] for w in verdict.warnings] == ["is_fraud"]
    assert "PASSED with warnings" in verdict.summary()


def test_anomaly_expectations_get_their_bounds_as_runtime_parameters(tmp_path, transactions_suite):
    config = anomaly.parse_config(
        {
            "dataset": "transactions",
            "checks": [
                {"metric": m, "column": "amount", "strategy": "simple_threshold", **b}
                for m, b in (
                    ("completeness", {"lower_bound": 0.99}),
                    ("distinctness", {"lower_bound": 0.9}),
                    ("mean", {"upper_bound": 5.0}),
                    ("stddev", {"lower_bound": 0.0}),
                    ("min", {"lower_bound": 0.0}),
                    ("max", {"upper_bound": 1e6}),
                )
            ]
            + [
                {"metric": "row_count", "strategy": "simple_threshold", "lower_bound": 1000},
                {
                    "metric": "quantile",
                    "column": "amount",
                    "quantile": 0.5,
                    "strategy": "simple_threshold",
                    "lower_bound": 1,
                    "upper_bound": 1000,
                },
            ],
        }
    )
    plan = anomaly.plan(config, [])
    result = run(
        tmp_path,
        to_csv(transactions(ROWS)),
        transactions_suite,
        expectations=plan.expectations,
        parameters={**params()["parameters"], **plan.parameters},
        anomaly_notes=plan.notes,
    )

    checks = {e["anomaly"]["metric"]: e for e in result["expectations"] if e["anomaly"]}
    assert set(checks) == {
        "completeness(amount)",
        "distinctness(amount)",
        "mean(amount)",
        "stddev(amount)",
        "min(amount)",
        "max(amount)",
        "row_count",
        "quantile(amount, 0.5)",
    }
    assert all(c["exception"] is None for c in checks.values())
    # the runtime values, not the $PARAMETER placeholders, are reported
    assert checks["row_count"]["bounds"] == {"min_value": 1000}
    assert checks["row_count"]["observed"]["value"] == ROWS
    assert not checks["row_count"]["success"] and not checks["mean(amount)"]["success"]
    assert checks["distinctness(amount)"]["success"] and checks["min(amount)"]["success"]
    verdict = severity.evaluate(result)
    assert not verdict.passed
    assert "anomaly in row_count (simple_threshold): observed 400; expected [1,000, +inf)" in (
        verdict.summary()
    )


def test_every_expectation_type_in_use_is_exercised():
    exercised = {
        "expect_table_columns_to_match_set",
        "expect_table_row_count_to_be_between",
        "expect_column_values_to_be_unique",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_match_regex",
        "expect_column_pair_values_a_to_be_greater_than_b",
        "expect_column_mean_to_be_between",
        "expect_column_quantile_values_to_be_between",
        "expect_column_stdev_to_be_between",
        "expect_column_min_to_be_between",
        "expect_column_max_to_be_between",
        "expect_column_proportion_of_unique_values_to_be_between",
        "expect_column_unique_value_count_to_be_between",
        # failing paths in test_training_features_suite.py
        "expect_table_columns_to_match_ordered_list",
        "expect_multicolumn_sum_to_equal",
    }
    used = {e["type"] for name in CLEAN for e in load(name)["expectations"]}
    used |= set(anomaly._BETWEEN.values()) | {
        "expect_column_values_to_not_be_null",
        "expect_column_quantile_values_to_be_between",
    }
    assert used <= exercised, f"add tests for {sorted(used - exercised)}"


# -- bad input: each a clear problem naming the file and column, never a crash -------------
def _csv(text: str) -> bytes:
    return textwrap.dedent(text).lstrip().encode()


def test_empty_partition(tmp_path, transactions_suite):
    header = ",".join(transactions_suite["meta"]["columns"]) + "\n"
    result = run(tmp_path, header.encode(), transactions_suite)

    assert result["status"] == "invalid_input"
    assert [p["kind"] for p in result["problems"]] == ["empty_partition"]
    summary = severity.evaluate(result).summary()
    assert "FAILED for dataset 'transactions', partition 2026-01-05" in summary
    assert "empty_partition: the partition has no rows" in summary


def test_no_files_at_all(tmp_path, transactions_suite):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "_SUCCESS").write_text("")
    result = validate.validate(
        str(tmp_path / "data"), transactions_suite, params(), str(tmp_path / "out")
    )
    assert [p["kind"] for p in result["problems"]] == ["missing_partition"]


def test_missing_and_extra_columns(tmp_path, transactions_suite):
    df = transactions(20).drop(columns=["amount"]).assign(merchant_name="ACME")
    result = run(tmp_path, to_csv(df), transactions_suite)

    problems = {p["kind"]: p for p in result["problems"]}
    assert set(problems) == {"missing_columns", "extra_columns"}
    assert problems["missing_columns"]["column"] == "amount"
    assert "part-00000.csv lacks column(s) amount" in problems["missing_columns"]["message"]
    assert "merchant_name" in problems["extra_columns"]["message"]


def test_wrong_types_name_column_and_examples(tmp_path, transactions_suite):
    df = transactions(20).astype({"amount": object, "hour": object, "event_time": object})
    df.loc[3, "amount"] = "12,50"
    df.loc[4, "hour"] = "7.5"
    df.loc[5, "event_time"] = "yesterday"
    result = run(tmp_path, to_csv(df), transactions_suite)

    messages = {p["column"]: p["message"] for p in result["problems"]}
    assert set(messages) == {"amount", "hour", "event_time"}
    assert (
        "column amount (float) has 1 value(s) that are not numbers, e.g. ['12,50']"
        in (messages["amount"])
    )
    assert "not whole numbers, e.g. ['7.5']" in messages["hour"]
    assert "not ISO-8601 timestamps, e.g. ['yesterday']" in messages["event_time"]


def test_nulls_in_an_int_column_are_nulls_not_type_errors(tmp_path, transactions_suite):
    df = transactions(50).astype({"hour": object})
    df.loc[[1, 2], "hour"] = None
    result = run(tmp_path, to_csv(df), transactions_suite)

    assert result["status"] == "validated"
    assert "expect_column_values_to_not_be_null:hour" in unmet(result)


@pytest.mark.parametrize(
    "body, expected",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4, "is not UTF-8 text"),
        (None, "cannot be parsed as CSV: Error tokenizing data"),
    ],
    ids=["binary", "ragged-rows"],
)
def test_unparsable_file(tmp_path, transactions_suite, body, expected):
    if body is None:
        good = to_csv(transactions(5)).decode()
        body = (
            good + "tx-x,2026-01-05T00:00:00Z,c,1,gas,pos,DE,0,1,0,0,1,0,extra,fields\n"
        ).encode()
    result = run(tmp_path, body, transactions_suite)

    assert [p["kind"] for p in result["problems"]] == ["unparsable_file"]
    assert expected in result["problems"][0]["message"]
    assert result["problems"][0]["file"] == "part-00000.csv"


def test_namibia_is_a_country_not_a_null(tmp_path, transactions_suite):
    df = transactions(ROWS)
    df["country"] = "NA"
    result = run(tmp_path, to_csv(df), transactions_suite)
    assert unmet(result) == {}


def test_gx_quantile_serialisation_bug_is_still_there():
    """Remove dq_gx's quantile workaround when this fails (GX fixed it upstream)."""
    script = """
        import pandas as pd, great_expectations as gx, great_expectations.expectations as gxe
        ctx = gx.get_context(mode="ephemeral")
        batch = ctx.data_sources.add_pandas("p").add_dataframe_asset("a")
        batch = batch.add_batch_definition_whole_dataframe("b")
        suite = ctx.suites.add(gx.ExpectationSuite(name="s"))
        suite.add_expectation(gxe.ExpectColumnQuantileValuesToBeBetween(
            column="x", quantile_ranges={"quantiles": [0.5], "value_ranges": [[0, 10]]}))
        vd = ctx.validation_definitions.add(gx.ValidationDefinition(name="v", data=batch, suite=suite))
        vd.run(batch_parameters={"dataframe": pd.DataFrame({"x": [1.0, 2.0, 3.0]})})
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        env={"GX_ANALYTICS_ENABLED": "false", "TQDM_DISABLE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode != 0
    assert "is not JSON serializable" in done.stderr


def test_two_quantile_checks_on_one_column_are_each_judged_on_their_own_quantiles():
    """GX 1.24 keys the quantile metric before adding its quantiles: without dq_gx's fix,
    an anomaly check of q0.99 was judged on the suite's [q0.5, q0.99] and warned falsely."""
    amounts = pd.DataFrame({"amount": [float(v) for v in range(1, 1001)]})
    suite = {
        "name": "amounts",
        "expectations": [
            {
                "type": "expect_column_quantile_values_to_be_between",
                "kwargs": {
                    "column": "amount",
                    "quantile_ranges": {"quantiles": [0.5, 0.99], "value_ranges": [[1, 1000]] * 2},
                },
            }
        ],
    }
    anomaly = {
        "type": "expect_column_quantile_values_to_be_between",
        "kwargs": {"column": "amount", "quantile_ranges": {"$PARAMETER": "q99"}},
    }
    result = dq_gx.run_suite(
        amounts,
        suite,
        extra_expectations=[anomaly],
        parameters={"q99": {"quantiles": [0.99], "value_ranges": [[980, 1000]]}},
    )
    static, dynamic = result["expectations"]
    assert static["observed"]["value"]["quantiles"] == [0.5, 0.99]
    assert dynamic["observed"]["value"] == {"quantiles": [0.99], "values": [990.0]}
    assert dynamic["success"] is True


def test_headerless_csv_reads_columns_in_schema_order(tmp_path):
    suite = {
        "name": "labels",
        "meta": {"columns": {"is_fraud": "int", "amount": "float"}, "header": False},
        "expectations": [
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": "is_fraud", "value_set": [0, 1]},
            },
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "amount", "min_value": 0},
            },
        ],
    }
    result = run(tmp_path, b"0,12.5\n1,3.0\n0,-1\n", suite, dataset="labels")
    assert result["row_count"] == 3
    assert list(unmet(result)) == ["expect_column_values_to_be_between:amount"]
