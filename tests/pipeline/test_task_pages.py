"""What a data engineer sees of a SageMaker task, end to end: dag.test() of real jobs on
local_aws, then every link of the tasks and every page behind them over HTTP: local_aws's
job and log pages, and the Data Docs served by the plugin in a real api-server.

One DAG run: the data-quality gate on two days (deferred to the trigger, mapped), then a
processing job that prints as it runs (waited for in the worker).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest

from mlops_pipeline.links import DataDocsLink, SageMakerLogsLink, SageMakerResourceLink
from tests.conftest import api_server, http_get, serialize_dag
from tests.jobkit import processing_request
from tests.quality.data import put_partition, to_csv, transactions

pytestmark = pytest.mark.slow

DAYS = ("2026-01-05", "2026-01-06")
CHATTY = """
import time
for step in range(5):
    print(f"chatty step {step} of 5", flush=True)
    time.sleep(0.6)
print("chatty is done", flush=True)
"""


def chatty_request(settings: Any, run: Any, *, name: str, code_uri: str) -> dict[str, Any]:
    return processing_request(name, code_uri=code_uri, script="chatty.py")


@pytest.fixture(scope="module")
def site(aws_conn, s3, tmp_path_factory):
    """A bucket with the two days, and an api-server with the plugin reading it."""
    import uuid

    bucket = f"pages-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    for day in DAYS:
        put_partition(s3, bucket, day, to_csv(transactions(200, day=day)))
    log = tmp_path_factory.mktemp("api") / "api-server.log"
    with api_server({"MLOPS_BUCKET": bucket}, log) as base:
        yield bucket, base


@pytest.fixture
def run(site, s3, capfd, caplog, monkeypatch):
    from airflow.sdk import DAG

    from mlops_pipeline.operators.data_quality import DataQualityOperator
    from mlops_pipeline.operators.sagemaker import ProcessingJobOperator

    bucket, _ = site
    monkeypatch.setenv("MLOPS_BUCKET", bucket)
    monkeypatch.setenv("MLOPS_CHECK_INTERVAL_SECONDS", "1")
    s3.put_object(Bucket=bucket, Key="code/chatty/chatty.py", Body=CHATTY.encode())
    code_uri = f"s3://{bucket}/code/chatty/"
    with DAG("t_task_pages", schedule=None, start_date=dt.datetime(2026, 1, 1)) as dag:
        gate = DataQualityOperator.partial(
            task_id="validate_training_data", dataset="transactions"
        ).expand(partition=list(DAYS))
        chatty = ProcessingJobOperator(
            task_id="chatty",
            request=chatty_request,
            request_args={"code_uri": code_uri},
            deferrable=False,
        )
        gate >> chatty
    serialize_dag(dag)
    capfd.readouterr()
    dag_run = dag.test(logical_date=dt.datetime(2026, 1, 7, tzinfo=dt.UTC))
    output = capfd.readouterr()
    return dag_run, output.out + output.err + caplog.text


def links(dag_run: Any, task_id: str, map_index: int = -1) -> dict[str, str]:
    """The task's extra links as the UI gets them: the URLs the task stored when it ended."""
    ti = dag_run.get_task_instance(task_id, map_index=map_index)
    found = {}
    for link in (SageMakerResourceLink, SageMakerLogsLink, DataDocsLink):
        url = ti.xcom_pull(task_ids=task_id, key=f"_link_{link.__name__}", map_indexes=map_index)
        if url:
            found[link.name] = url
    return found


def test_task_logs_links_and_pages(run, site, local_aws, s3):
    dag_run, log = run
    bucket, airflow = site
    assert dag_run.state == "success", log[-3000:]

    # -- the task log: each status once, the job's own output as it ran ------------------------
    [chatty_job] = set(re.findall(r"started Processing job (\S+)", log))
    assert log.count(f"Processing job {chatty_job}: InProgress") == 1, log[-3000:]
    for step in range(5):
        assert log.count(f"[{chatty_job}] chatty step {step} of 5") == 1
    assert log.count(f"[{chatty_job}] chatty is done") == 1
    dq_jobs = sorted(set(re.findall(r"in processing job (dq-\S+)", log)))
    assert len(dq_jobs) == 2
    for job in dq_jobs:  # deferred: the trigger's line, once, and the job's own last line
        assert log.count(f"Processing job {job}: InProgress") <= 1
        assert re.search(rf"\[{job}\] .*dataset transactions partition \S+: validated", log), job
    assert "not done yet" not in log

    # -- the processing job's links: local_aws's page and log of the job -----------------------
    found = links(dag_run, "chatty")
    assert set(found) == {"SageMaker job / endpoint", "CloudWatch logs"}
    page_url = f"{local_aws.url}/_local_aws/describe/processing-jobs/{chatty_job}"
    assert found["SageMaker job / endpoint"] == page_url
    assert found["CloudWatch logs"] == f"{page_url}/logs"
    status, page = http_get(page_url, {"Accept": "text/html"})
    assert status == 200, page
    assert f"processing job {chatty_job}" in page and "Completed" in page
    assert "<h2>Timeline</h2>" in page and "ProcessingEndTime" in page
    assert "<h2>Artefacts</h2>" in page and f"s3://{bucket}/code/chatty" in page
    assert "chatty is done" in page  # the log tail
    status, logs_page = http_get(found["CloudWatch logs"])
    assert status == 200
    assert all(f"chatty step {i} of 5" in logs_page for i in range(5))

    # -- a gate's links: its job, its log and its Data Docs page through the plugin ------------
    for index, day in enumerate(DAYS):
        found = links(dag_run, "validate_training_data", index)
        assert set(found) == {"SageMaker job / endpoint", "CloudWatch logs", "Data Docs"}
        job = found["SageMaker job / endpoint"].rsplit("/", 1)[1]
        assert job in dq_jobs
        status, page = http_get(found["SageMaker job / endpoint"], {"Accept": "text/html"})
        assert status == 200 and "Completed" in page and "validated" in page
        status, page = http_get(found["CloudWatch logs"])
        assert status == 200 and f"partition {day}: validated" in page
        docs = found["Data Docs"]
        assert docs == f"/mlops/data-docs/transactions/validations/dt={day}/{job}.html"
        status, page = http_get(airflow + docs)
        assert status == 200, page[:2000]
        assert f"transactions-{day}" in page and "distance_from_home_km" in page
        # nothing from a CDN, no script; GX's own styles from the installed package
        assert not re.search(r"(src|href)=\"https?://(?!greatexpectations\.io)", page)
        assert "<script" not in page
        assert "/mlops/data-docs/static/styles/data_docs_default_styles.css" in page

    # -- the dataset's one site: its index lists both runs, its static files are served --------
    status, index = http_get(f"{airflow}/mlops/data-docs/transactions/")
    assert status == 200
    for job, day in zip(dq_jobs, DAYS, strict=True):  # names sort by day
        assert f"<tr><td>{day}</td><td><a href='/mlops/data-docs/transactions/" in index
        assert job in index
    assert index.count("<td class='passed'>passed</td>") == 2
    status, css = http_get(f"{airflow}/mlops/data-docs/static/styles/data_docs_default_styles.css")
    assert status == 200 and "{" in css
    status, _ = http_get(f"{airflow}/mlops/data-docs/transactions/", login=False)
    assert status == 401  # behind the Airflow login, as the UI
    status, datasets = http_get(f"{airflow}/mlops/data-docs/")
    assert status == 200 and "/mlops/data-docs/transactions/" in datasets
    # the UI's navigation lists the sites (Browse → Data Docs)
    status, body = http_get(f"{airflow}/api/v2/plugins")
    [plugin] = [p for p in json.loads(body)["plugins"] if p["name"] == "mlops"]
    [docs_nav] = [v for v in plugin["external_views"] if v["name"] == "Data Docs"]
    assert (docs_nav["href"], docs_nav["destination"]) == ("/mlops/data-docs/", "nav")
    # one page per run in the site, nothing else: no copy of the static files per run
    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="quality/data_docs/")["Contents"]
    ]
    assert sorted(k.rsplit("/", 1)[1] for k in keys) == sorted(f"{j}.html" for j in dq_jobs)
    assert not [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=bucket, Prefix="quality/runs/").get("Contents", [])
        if "/data_docs/" in o["Key"]
    ]
