"""The Cost view through a real api-server with the project's plugin loaded."""

from __future__ import annotations

import json
import urllib.parse

import pytest

from mlops_pipeline.cost import prices
from tests.conftest import api_server as start_api_server
from tests.conftest import http_get
from tests.cost.kit import store, transform_run

pytestmark = pytest.mark.slow


get = http_get


@pytest.fixture
def api_server(aws_conn, airflow_db, bucket, tmp_path):
    with start_api_server({"MLOPS_BUCKET": bucket}, tmp_path / "api-server.log") as base:
        yield base


def test_the_cost_view_lists_runs_with_cost_per_task_and_instance_type(api_server, s3, bucket):
    records = [transform_run(day, minutes) for day, minutes in ((1, 60), (2, 30), (3, 90))]
    records.append(transform_run(4, 45, state="failed"))
    store(s3, bucket, records)

    # the Airflow login guards the view as it guards the UI
    for path in ("/mlops/cost/", "/mlops/cost/api/runs", "/mlops/cost/run?dag_id=a&run_id=b"):
        status, body = get(f"{api_server}{path}", login=False)
        assert status == 401 and "batch_inference" not in body, (path, status)

    status, page = get(f"{api_server}/mlops/cost/")
    assert status == 200, page[:2000]
    assert "<h2 id='batch_inference'>batch_inference</h2>" in page
    for r in records:
        assert r["run_id"] in page
    assert "4 recent run(s): $0.4313 known cost" in page  # 225 min × $0.115/h
    assert "transform $0.1725" in page and "ml.m5.large $0.1725" in page
    assert page.count("<rect ") == 4  # the trend chart: one bar per run
    assert f"Prices as of {prices.load().as_of}" in page

    status, body = get(f"{api_server}/mlops/cost/api/runs?dag_id=batch_inference&limit=2")
    assert status == 200
    runs = json.loads(body)["dags"]["batch_inference"]
    assert [r["run_id"] for r in runs] == [r["run_id"] for r in records[-2:]]

    # one run: its jobs with usage, rate and cost
    run_id = records[2]["run_id"]
    query = urllib.parse.urlencode({"dag_id": "batch_inference", "run_id": run_id})
    status, page = get(f"{api_server}/mlops/cost/run?{query}")
    assert status == 200, page[:2000]
    assert "batch-inference-transform-20260103" in page and "ml.m5.large" in page
    assert "<td>5400.0</td>" in page and "$0.1725" in page  # 90 minutes
    status, page = get(f"{api_server}/mlops/cost/run?dag_id=batch_inference&run_id=nope")
    assert status == 200 and "No cost record for this run (yet)" in page

    # the UI lists the view: in the navigation, on a DAG's page and on a run's page
    status, body = get(f"{api_server}/api/v2/plugins")
    assert status == 200, body[:500]
    [plugin] = [p for p in json.loads(body)["plugins"] if p["name"] == "mlops"]
    views = {v["destination"]: v["href"] for v in plugin["external_views"] if v["name"] == "Cost"}
    assert views == {
        "nav": "/mlops/cost/",
        "dag": "/mlops/cost/?dag_id={DAG_ID}",
        "dag_run": "/mlops/cost/run?dag_id={DAG_ID}&run_id={RUN_ID}",
    }
    assert plugin["listeners"] == ["mlops_pipeline.cost.listener"]
