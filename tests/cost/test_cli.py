"""``python -m mlops_pipeline.cost report|estimate`` over records in local_aws's S3, and the
budget and anomaly checks on the cost history."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mlops_pipeline.config import SettingsError, load_settings
from mlops_pipeline.cost import __main__ as cli
from mlops_pipeline.cost import budget, estimate, prices
from tests.cost.kit import MINUTES, store, transform_run

REL = 1e-9


@pytest.fixture
def history(s3, bucket, monkeypatch):
    monkeypatch.setenv("MLOPS_BUCKET", bucket)
    records = [transform_run(day, m) for day, m in enumerate(MINUTES, start=1)]
    records.append(transform_run(len(MINUTES) + 1, 600, state="failed"))  # not history
    store(s3, bucket, records)
    return records


def test_report_prints_each_run_with_its_cost_and_the_price_table(history, s3, capsys):
    assert cli.main(["report", "--dag-id", "batch_inference", "--since", "2026-01-03"], s3=s3) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("2026-01-")]
    assert [line[:10] for line in lines] == [f"2026-01-{d:02d}" for d in range(3, 8)]
    # day 3: 90 minutes of ml.m5.large at $0.115/h
    assert "$0.1725" in lines[0] and "transform $0.1725" in lines[0]
    assert f"prices as of {prices.load().as_of}" in out


def test_estimate_gives_a_range_and_the_runs_it_rests_on(history, aws_conn, s3):
    # as a data engineer runs it: a process of its own, through the aws_default connection
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlops_pipeline.cost",
            "estimate",
            "--dag-id",
            "batch_inference",
            "--from-date",
            "2026-02-01",
            "--to-date",
            "2026-02-10",
        ],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=True,
    ).stdout
    per_run = sorted(0.115 * m / 60 for m in MINUTES)
    assert "batch_inference backfill 2026-02-01..2026-02-10: 10 run(s)" in out
    assert "from 6 earlier successful run(s)" in out and "1 run(s) left out" in out
    found = estimate.estimate(history, 10)
    assert found is not None and found.history == len(MINUTES)
    assert found.per_run_typical == pytest.approx(0.115 * 60 / 60, rel=REL)  # median of minutes
    assert per_run[0] <= found.per_run_low <= found.per_run_high <= per_run[-1]
    assert found.typical == pytest.approx(10 * found.per_run_typical, rel=REL)
    assert f"{found.low:,.4f}" in out and f"{found.high:,.4f}" in out


def test_estimate_without_history_says_so(s3, bucket, monkeypatch, capsys):
    monkeypatch.setenv("MLOPS_BUCKET", bucket)
    code = cli.main(
        [
            "estimate",
            "--dag-id",
            "batch_inference",
            "--from-date",
            "2026-02-01",
            "--to-date",
            "2026-02-02",
        ],
        s3=s3,
    )
    assert code == 2 and "no earlier successful run" in capsys.readouterr().err


def test_over_budget_and_anomalous_costs_are_found():
    history = [transform_run(day, m) for day, m in enumerate([60] * 4 + [62] * 4, start=1)]
    normal, expensive = transform_run(20, 61), transform_run(21, 600)
    assert budget.findings(normal, history, budget=1.0) == []
    found = budget.findings(expensive, history, budget=1.0)
    assert len(found) == 2
    assert found[0] == "cost $1.1500 is over the budget of $1.0000 per run"
    assert found[1].startswith("cost $1.1500 is anomalous: above $0.1")
    # too little history: the anomaly check waits, the budget still applies
    assert budget.findings(expensive, history[:3], budget=None) == []
    alert = budget.alert_for(expensive, found, 1.0)
    assert alert.facts["Budget"] == "$1.0000" and "over the budget" in alert.reason


def test_a_budget_that_is_not_a_number_names_the_setting():
    settings = load_settings({"MLOPS_COST_BUDGETS": '{"model_build": "lots"}'})
    with pytest.raises(SettingsError, match=r"MLOPS_COST_BUDGETS\['model_build'\]"):
        budget.budget_of(settings, "model_build")
    assert budget.budget_of(settings, "batch_inference") is None
