"""batch_inference end to end: dag.test() of dags/batch_inference.py against local_aws.

One bucket and one Approved package (a real small model, tests/batchkit.py) serve the
module; each test scores days of its own. Nothing is mocked: the gate's GX jobs, the
transform job (model server and agent), publish and drift run as they do in production.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_pipeline import datagen
from mlops_pipeline.datagen import Corruption
from tests.batchkit import Package, expected_scores, register_package
from tests.conftest import serialize_dag, unique

pytestmark = pytest.mark.slow

DAGS = Path(__file__).resolve().parents[2] / "dags"
ROWS = 1500
SEED = 11  # the training days' seed: scored days look like training unless drifted


@dataclass
class World:
    bucket: str
    group: str
    package: Package
    env: dict[str, str]


@dataclass
class Run:
    dag_run: Any
    output: str

    def state(self, task_id: str) -> str | None:
        return self.dag_run.get_task_instance(task_id).state

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        return self.dag_run.get_task_instance(task_id).xcom_pull(task_ids=task_id, key=key)


@pytest.fixture(scope="module")
def world(local_aws, aws_conn) -> Iterator[World]:
    s3, sm = local_aws.client("s3"), local_aws.client("sagemaker")
    bucket, group = unique("bi-dag"), unique("card-fraud")
    s3.create_bucket(Bucket=bucket)
    package = register_package(s3, sm, bucket, group)
    env = {
        "MLOPS_BUCKET": bucket,
        "MLOPS_MODEL_PACKAGE_GROUP": group,
        "MLOPS_CHECK_INTERVAL_SECONDS": "0.5",
        "MLOPS_PARTITION_POKE_SECONDS": "0.5",
    }
    yield World(bucket, group, package, env)


def write_day(s3, bucket: str, day: str, **kwargs: Any) -> None:
    datagen.write_partition(s3, bucket, dt.date.fromisoformat(day), ROWS, seed=SEED, **kwargs)


def load_dag(dag_id: str = "batch_inference"):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / f"{dag_id}.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)


@pytest.fixture
def capture(capfd, caplog):
    """What a run prints, and what it logs: an earlier test may have left Airflow's logging
    writing to a stream captured elsewhere, so task log lines are read from the records too."""
    return capfd, caplog


def run_day(capture, env: dict[str, str], day: str) -> Run:
    capfd, caplog = capture
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        dag = load_dag()
        for task in dag.tasks:  # a failure here is a test failure, not a retry
            task.retries = 0
        capfd.readouterr()
        caplog.clear()
        dag_run = dag.test(logical_date=dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC))
        output = capfd.readouterr()
    return Run(dag_run, output.out + output.err + caplog.text)


def published(s3, bucket: str, day: str) -> dict[str, bytes]:
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=f"predictions/dt={day}/")
    return {
        o["Key"].rsplit("/", 1)[-1]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        for o in listing.get("Contents", [])
    }


def published_by(s3, bucket: str, day: str) -> str:
    """The run id every published object of the day names in its metadata (one for all)."""
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=f"predictions/dt={day}/")
    ids = {
        s3.head_object(Bucket=bucket, Key=o["Key"])["Metadata"].get("run-id")
        for o in listing.get("Contents", [])
    }
    assert len(ids) == 1, ids
    return ids.pop()


def transform_jobs(sm, day: str) -> list[str]:
    found = sm.list_transform_jobs(NameContains=f"transform-{day.replace('-', '')}-")
    return [j["TransformJobName"] for j in found["TransformJobSummaries"]]


def raw_frame(s3, bucket: str, day: str) -> pd.DataFrame:
    body = s3.get_object(Bucket=bucket, Key=datagen.partition_key(dt.date.fromisoformat(day)))
    return pd.read_csv(body["Body"], dtype=str, keep_default_na=False, na_values=[""])


# -- the happy days ------------------------------------------------------------------------------
def test_three_days_publish_rerun_is_identical_and_bad_input_keeps_the_last_good(
    world, s3, sm, capture
):
    days = ["2026-03-10", "2026-03-11", "2026-03-12"]
    for day in days:
        write_day(s3, world.bucket, day)
    runs = {day: run_day(capture, world.env, day) for day in days}
    for day, run in runs.items():
        assert run.dag_run.state == "success", run.output[-3000:]
        files = published(s3, world.bucket, day)
        assert sorted(files) == ["_manifest.json", "part-00000.csv"]
        manifest = json.loads(files["_manifest.json"])
        assert manifest["model_package_arn"] == world.package.arn
        assert manifest["rows"] == ROWS and "run_id" not in manifest
        assert published_by(s3, world.bucket, day) == run.dag_run.run_id
        assert manifest["model_version"] == f"{world.group}/{world.package.version}"
        assert len(transform_jobs(sm, day)) == 1

    # every score stays with its transaction: the output joins back to the input row for row
    day = days[1]
    raw = raw_frame(s3, world.bucket, day)
    scores = pd.read_csv(io.BytesIO(published(s3, world.bucket, day)["part-00000.csv"]))
    assert list(scores.columns) == ["transaction_id", "score", "model_version"]
    assert scores["transaction_id"].tolist() == raw["transaction_id"].tolist()
    # the transform's model scores exactly what the model scores in-process (%.8g on the
    # way out: within 1e-7)
    assert np.allclose(scores["score"], expected_scores(world.package, raw), atol=1e-7, rtol=0)

    # a rerun of a date under a new run id (dag.test() makes a new run each time): the
    # same bytes, manifest included, and no second transform job; the objects' metadata
    # names the run that published them
    before = published(s3, world.bucket, day)
    job = transform_jobs(sm, day)
    again = run_day(capture, world.env, day)
    assert again.dag_run.state == "success", again.output[-3000:]
    assert again.dag_run.run_id != runs[day].dag_run.run_id
    after = published(s3, world.bucket, day)
    assert after == before
    assert published_by(s3, world.bucket, day) == again.dag_run.run_id
    assert transform_jobs(sm, day) == job
    assert "already completed (started by an earlier try): using it" in again.output

    # the day's data turn out broken: the gate stops the rerun, the last good output stays
    write_day(s3, world.bucket, day, corruptions=[Corruption.parse("nulls:amount:0.2")])
    broken = run_day(capture, world.env, day)
    assert broken.state("validate_input") == "failed"
    assert broken.state("transform") in (None, "upstream_failed")
    assert "amount" in broken.output and "Data quality gate FAILED" in broken.output
    assert published(s3, world.bucket, day) == before
    assert transform_jobs(sm, day) == job


def test_a_corrupt_partition_stops_at_validate_input_and_publishes_nothing(world, s3, sm, capture):
    day = "2026-03-14"
    write_day(s3, world.bucket, day, corruptions=[Corruption.parse("missing_column:amount")])
    run = run_day(capture, world.env, day)
    assert run.dag_run.state == "failed"
    assert run.state("wait_for_partition") == "success"
    assert run.state("validate_input") == "failed"
    assert "lacks column(s) amount" in run.output
    assert published(s3, world.bucket, day) == {}
    assert transform_jobs(sm, day) == []


def test_a_missing_partition_times_out_naming_it(world, capture):
    day = "2026-03-20"  # never written
    env = {
        **world.env,
        "MLOPS_PARTITION_TIMEOUT_SECONDS": "2",
        # dag.test() runs a deferred trigger inline, without its timeout: poke instead
        "MLOPS_PARTITION_SENSOR_DEFERRABLE": "false",
    }
    run = run_day(capture, env, day)
    assert run.state("wait_for_partition") == "failed"
    assert run.state("validate_input") in (None, "upstream_failed")
    assert f"partition {day} is missing" in run.output
    assert f"raw/transactions/dt={day}/_SUCCESS did not appear within 2 s" in run.output
    assert "(the prefix is empty)" in run.output


def test_a_future_date_fails_at_once(world, capture):
    day = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=3)).isoformat()
    run = run_day(capture, world.env, day)
    assert run.state("wait_for_partition") == "failed"
    assert f"partition {day} is in the future" in run.output


def test_without_an_approved_package_resolve_model_fails_clearly(world, s3, capture):
    day = "2026-03-15"
    write_day(s3, world.bucket, day)
    env = {**world.env, "MLOPS_MODEL_PACKAGE_GROUP": unique("no-approved")}
    run = run_day(capture, env, day)
    assert run.state("validate_input") == "success"
    assert run.state("resolve_model") == "failed"
    assert "has no Approved model package" in run.output
    assert published(s3, world.bucket, day) == {}


def test_a_model_image_the_local_profile_cannot_run_fails_naming_it(world, s3, sm, capture):
    day = "2026-03-18"
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/custom-fraud:latest"
    group = unique("custom-image")
    register_package(s3, sm, world.bucket, group, image=image)
    write_day(s3, world.bucket, day)
    run = run_day(capture, {**world.env, "MLOPS_MODEL_PACKAGE_GROUP": group}, day)
    assert run.state("transform") == "failed"
    assert "ended Failed" in run.output and "custom-fraud" in run.output
    assert run.state("publish") in (None, "upstream_failed")
    assert published(s3, world.bucket, day) == {}


# -- drift ---------------------------------------------------------------------------------------
def drift_events(dag_run) -> list[Any]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == "card_fraud_drift")
            .where(AssetEvent.source_run_id == dag_run.run_id)
        ).all()
        return [dict(e.extra or {}) for e in events]


def unpause(dag_id: str) -> None:
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.get(DagModel, dag_id).is_paused = False


def queued_for(dag_id: str) -> int:
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return session.scalar(
            select(func.count())
            .select_from(AssetDagRunQueue)
            .where(AssetDagRunQueue.target_dag_id == dag_id)
        )


def test_injected_drift_emits_the_asset_event_that_queues_model_build(world, s3, capture):
    # model_build, scheduled on card_fraud_drift, is known to the metadata DB as the DAG
    # processor would make it known
    with pytest.MonkeyPatch.context() as patch:
        for key, value in world.env.items():
            patch.setenv(key, value)
        serialize_dag(load_dag("model_build"))
    unpause("model_build")

    calm, drifted = "2026-03-16", "2026-03-17"
    write_day(s3, world.bucket, calm)
    write_day(s3, world.bucket, drifted, drift=datagen.Drift(2.0))
    quiet = run_day(capture, world.env, calm)
    assert quiet.dag_run.state == "success", quiet.output[-3000:]
    assert quiet.xcom("detect_drift")["drifted"] is False
    assert drift_events(quiet.dag_run) == []
    queued = queued_for("model_build")

    run = run_day(capture, world.env, drifted)
    assert run.dag_run.state == "success", run.output[-3000:]
    assert run.xcom("detect_drift")["drifted"] is True
    [event] = drift_events(run.dag_run)
    assert event["partition"] == drifted
    assert event["model_package_arn"] == world.package.arn
    assert set(event["top_features"][:2]) == {"amount", "channel"}
    assert "DRIFT on 2026-03-17" in run.output and "retraining requested" in run.output
    # and an alert (no Slack connection here: the log and the alerts file) names the features
    assert f"ALERT batch_inference: data drift on {drifted}" in run.output
    assert "amount: PSI" in run.output
    assert queued_for("model_build") == queued + 1
    # the report and the history entry are there for the record
    report = json.loads(
        s3.get_object(Bucket=world.bucket, Key=f"batch-inference/drift/dt={drifted}/drift.json")[
            "Body"
        ].read()
    )
    assert report["drifted"] is True and report["psi"]["amount"] > 0.2
    history = json.loads(
        s3.get_object(Bucket=world.bucket, Key=f"quality/history/drift/dt={drifted}.json")[
            "Body"
        ].read()
    )
    assert history["status"] == "drift" and history["metrics"]["top_features"]
