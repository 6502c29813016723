"""Constraint suggestion: the CLI profiles a partition in S3 and drafts a reviewable suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mlops_pipeline.containers import validate
from mlops_pipeline.quality import severity, suggest
from tests.quality.conftest import params, write_partition
from tests.quality.data import put_partition, to_csv, transactions


@pytest.fixture
def draft(local_aws, s3, bucket, tmp_path):
    uri = put_partition(s3, bucket, "2026-01-05", to_csv(transactions(500)))
    output = tmp_path / "transactions.draft.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlops_pipeline.quality",
            "suggest",
            "--dataset",
            "transactions",
            "--input",
            uri,
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "AWS_ENDPOINT_URL": local_aws.url},
    )
    assert done.returncode == 0, done.stderr
    assert f"wrote {output}" in done.stdout and "review it before use" in done.stdout
    return json.loads(output.read_text()), uri


def rules(suite):
    return {(e["meta"]["suggested_by"], e["kwargs"].get("column")) for e in suite["expectations"]}


def test_suggestion_follows_the_deequ_rules(draft):
    suite, uri = draft
    found = rules(suite)
    assert ("complete_if_complete", "amount") in found
    assert ("unique", "transaction_id") in found
    assert ("unique", "card_id") not in found
    assert ("categorical_range", "channel") in found and ("categorical_range", "is_fraud") in found
    assert ("categorical_range", "transaction_id") not in found
    assert ("non_negative", "distance_from_home_km") in found
    assert ("range", "hour") in found
    ranges = [e for e in suite["expectations"] if e["meta"]["suggested_by"] == "range"]
    assert {e["severity"] for e in ranges} == {"warning"}
    assert suite["meta"]["columns"]["event_time"] == "timestamp"
    assert suite["meta"]["columns"]["hour"] == "int"
    assert suite["meta"]["key"] == ["transaction_id"]
    assert suite["meta"]["partition_uri"] == uri.replace("dt=2026-01-05", "dt={partition}")


def test_draft_loads_in_gx_and_passes_on_its_own_data_but_not_on_corrupted(draft, tmp_path):
    import great_expectations as gx

    suite, _ = draft
    gx.ExpectationSuite(**{k: v for k, v in suite.items() if k != "notes"})
    clean = transactions(500)
    ok = validate.validate(
        str(write_partition(tmp_path / "clean", to_csv(clean))),
        suite,
        params(),
        str(tmp_path / "out1"),
        docs=False,
    )
    assert severity.evaluate(ok).status == "passed", severity.evaluate(ok).summary()

    bad = clean.astype({"amount": object, "channel": object})
    bad.loc[:3, "amount"] = -1.0
    bad.loc[5, "channel"] = "telepathy"
    bad.loc[7, "transaction_id"] = bad.loc[8, "transaction_id"]
    result = validate.validate(
        str(write_partition(tmp_path / "bad", to_csv(bad))),
        suite,
        params(),
        str(tmp_path / "out2"),
        docs=False,
    )
    verdict = severity.evaluate(result)
    assert not verdict.passed
    failed = {(e["type"], e["column"]) for e in verdict.errors}
    assert failed == {
        ("expect_column_values_to_be_between", "amount"),
        ("expect_column_values_to_be_in_set", "channel"),
        ("expect_column_values_to_be_unique", "transaction_id"),
    }


def test_retained_completeness_is_the_lower_confidence_bound():
    assert suggest.retained_completeness(0.95, 10_000) == 0.94
    assert suggest.retained_completeness(0.5, 100) == 0.4


def test_suggest_refuses_to_overwrite_and_names_a_missing_partition(tmp_path, local_aws, bucket):
    existing = tmp_path / "s.json"
    existing.write_text("{}")
    base = [sys.executable, "-m", "mlops_pipeline.quality", "suggest", "--dataset", "t"]
    env = {**os.environ, "AWS_ENDPOINT_URL": local_aws.url}
    done = subprocess.run(
        [*base, "--input", "s3://x/y/", "--output", str(existing)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 2 and "a draft never replaces a reviewed suite" in done.stderr
    missing = f"s3://{bucket}/raw/transactions/dt=2026-02-01/"
    done = subprocess.run(
        [*base, "--input", missing, "--output", str(tmp_path / "new.json")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 1
    assert f"error: dataset t: no data files under {missing}" in done.stderr
