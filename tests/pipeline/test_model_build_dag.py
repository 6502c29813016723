"""model_build end to end: dag.test() of dags/model_build.py against local_aws, small data.

One happy run carries three stories at once, to keep CI time modest: the registered package
(metrics, drift baseline, lineage); a tune task whose tries give up waiting and are retried,
re-attaching to the one tuning job; and a spot interruption of a training job, which
resumes from its checkpoint. Two more runs stop early: a corrupt partition at the gate,
and a tuning job whose training jobs all fail.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlops_pipeline import code, datagen, naming
from mlops_pipeline.datagen import Corruption
from tests.conftest import admin, unique
from tests.jobkit import TRAINING_LOGS, log_lines

pytestmark = pytest.mark.slow

DAGS = Path(__file__).resolve().parents[2] / "dags"
DAY = dt.datetime(2026, 3, 7, tzinfo=dt.UTC)  # the run's logical date: the window's last day
WINDOW = ("2026-03-05", "2026-03-06", "2026-03-07")
ROWS = 3000
# small and quick, yet long enough (no early stopping) for a checkpoint and an interruption
HYPERPARAMETERS = {
    "num_round": "600",
    "early_stopping_rounds": "0",
    "checkpoint_frequency": "50",
    "eval_metric": "aucpr",
    "nthread": "1",
}
RANGES = {"max_depth": "int:2:3", "eta": "continuous:0.01:0.05"}


@dataclass
class Run:
    dag_run: Any
    bucket: str
    group: str
    output: str  # what the run printed (the task logs), when captured

    @property
    def key(self) -> str:
        return naming.run_key(DAY, self.dag_run.run_id)

    def state(self, task_id: str) -> str | None:
        states = {ti.state for ti in self.dag_run.get_task_instances() if ti.task_id == task_id}
        assert len(states) == 1, f"{task_id}: {states}"
        return states.pop()

    def xcom(self, task_id: str) -> Any:
        return self.dag_run.get_task_instance(task_id).xcom_pull(task_ids=task_id)


def environment(bucket: str, group: str, **extra: str) -> dict[str, str]:
    return {
        "MLOPS_BUCKET": bucket,
        "MLOPS_MODEL_PACKAGE_GROUP": group,
        "MLOPS_CHECK_INTERVAL_SECONDS": "1",
        "MLOPS_TRAINING_WINDOW_DAYS": str(len(WINDOW)),
        "MLOPS_TUNING_MAX_JOBS": "2",
        "MLOPS_TUNING_MAX_PARALLEL": "2",
        "MLOPS_STATIC_HYPERPARAMETERS": json.dumps(HYPERPARAMETERS),
        "MLOPS_TUNING_RANGES": json.dumps(RANGES),
        # a few thousand rows leave ~20 fraud cases in the test split: noisy metrics, so
        # the bar is low here; the gate's logic has its own tests
        "MLOPS_GATE_THRESHOLDS": json.dumps({"pr_auc": ">=0.10", "auc": ">=0.60"}),
        **extra,
    }


def write_data(s3: Any, bucket: str, broken_day: str | None = None, spec: str = "") -> None:
    s3.create_bucket(Bucket=bucket)
    for day in WINDOW:
        corruptions = [Corruption.parse(spec)] if day == broken_day else []
        datagen.write_partition(
            s3, bucket, dt.date.fromisoformat(day), ROWS, seed=11, corruptions=corruptions
        )


def load_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / "model_build.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag("model_build")


def run_model_build(capfd, env: dict[str, str], s3, prepare=None) -> Run:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        dag = load_dag()
        for task in dag.tasks:  # a failure here is a test failure, not a retry
            task.retries = 0
        if prepare:
            prepare(dag)
        if capfd is not None:
            capfd.readouterr()
        dag_run = dag.test(logical_date=DAY)
        output = capfd.readouterr() if capfd is not None else None
    printed = output.out + output.err if output is not None else ""
    return Run(dag_run, env["MLOPS_BUCKET"], env["MLOPS_MODEL_PACKAGE_GROUP"], printed)


# -- the happy run -------------------------------------------------------------------------------
def interrupt_first_checkpointed_child(
    local_aws, logs, sm, stop: threading.Event, hit: list
) -> None:
    """Interrupt (spot) the first training job that has logged a checkpoint, once."""
    while not stop.is_set():
        jobs = sm.list_training_jobs(StatusEquals="InProgress", NameContains="model-build-tune")
        for summary in jobs["TrainingJobSummaries"]:
            name = summary["TrainingJobName"]
            try:
                lines = log_lines(logs, TRAINING_LOGS, name)
            except logs.exceptions.ResourceNotFoundException:
                continue  # no log group before the first job writes
            if any(line.startswith("checkpoint saved") for line in lines):
                try:
                    admin(local_aws, f"/_local_aws/faults/training-jobs/{name}/interrupt-spot")
                except urllib.error.HTTPError:
                    continue  # it finished in between: try the next one
                hit.append(name)
                return
        time.sleep(0.2)


@pytest.fixture(scope="module")
def happy(local_aws, aws_conn, s3, sm, logs) -> Iterator[Run]:
    bucket, group = unique("model-build"), unique("card-fraud")
    write_data(s3, bucket)

    def prepare(dag) -> None:
        # each try of tune gives up waiting after ~2 s, as a worker lost mid-wait would, and
        # is retried: every retry must find the running tuning job, not start another
        tune = dag.task_dict["tune"]
        tune.retries = 60
        tune.retry_delay = dt.timedelta(0)
        tune.max_ingestion_time = 2

    stop, interrupted = threading.Event(), []
    watcher = threading.Thread(
        target=interrupt_first_checkpointed_child,
        args=(local_aws, logs, sm, stop, interrupted),
        daemon=True,
    )
    watcher.start()
    try:
        run = run_model_build(None, environment(bucket, group), s3, prepare)
    finally:
        stop.set()
        watcher.join(timeout=10)
    run.interrupted = interrupted  # type: ignore[attr-defined]
    yield run


def test_the_run_registers_one_package_pending_approval(happy, sm):
    assert happy.dag_run.state == "success", happy.output[-5000:]
    packages = sm.list_model_packages(ModelPackageGroupName=happy.group)["ModelPackageSummaryList"]
    assert len(packages) == 1
    assert packages[0]["ModelApprovalStatus"] == "PendingManualApproval"
    assert happy.xcom("register")["model_package_arn"] == packages[0]["ModelPackageArn"]


def test_the_package_points_at_its_metrics_baseline_and_model(happy, sm, s3):
    arn = happy.xcom("register")["model_package_arn"]
    package = sm.describe_model_package(ModelPackageName=arn)
    evaluation = read_json(s3, package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"])
    metrics = evaluation["binary_classification_metrics"]
    assert metrics["pr_auc"]["value"] >= 0.10 and metrics["auc"]["value"] >= 0.60
    assert (
        0 <= metrics["recall"]["value"] <= 1
        and evaluation["threshold"]["chosen_on"] == "validation"
    )
    baseline_uri = package["DriftCheckBaselines"]["ModelDataQuality"]["Statistics"]["S3Uri"]
    baseline = read_json(s3, baseline_uri)
    assert baseline["dataset"] == "train" and baseline["rows"] > 0
    assert f"/model-build/{happy.key}/features/metadata/baseline.json" in baseline_uri

    tuning = sm.describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=happy.xcom("tune")["job_name"]
    )
    best = tuning["BestTrainingJob"]["TrainingJobName"]
    model = sm.describe_training_job(TrainingJobName=best)["ModelArtifacts"]["S3ModelArtifacts"]
    container = package["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == model
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"


def test_the_demo_summary_reads_what_the_run_left(happy, local_aws, tmp_path, monkeypatch):
    from mlops_pipeline import demo
    from mlops_pipeline.config import load_settings

    for key, value in environment(happy.bucket, happy.group).items():
        monkeypatch.setenv(key, value)
    run = demo.Demo(
        load_settings(), local_aws.url, tmp_path, DAY.date(), len(WINDOW), ROWS, started=0
    )
    demo.collect(run)
    text = demo.summary(run)

    arn = happy.xcom("register")["model_package_arn"]
    assert arn in text
    assert f"{len(WINDOW)} partitions {WINDOW[0]}..{WINDOW[-1]}" in text
    assert "training features (suite 'training_features', after preprocess): " in text
    assert "training rows, passed" in text or "training rows, warning" in text
    assert happy.xcom("tune")["job_name"] in text
    # the reports are copied next to the run's log
    assert (tmp_path / "reports" / "evaluation.json").is_file()
    assert (tmp_path / "reports" / "baseline.json").is_file()


def test_the_package_records_its_lineage(happy, sm):
    package = sm.describe_model_package(
        ModelPackageName=happy.xcom("register")["model_package_arn"]
    )
    lineage = package["CustomerMetadataProperties"]
    tune = happy.xcom("tune")
    assert lineage == {
        "dag_id": "model_build",
        "run_id": happy.dag_run.run_id,
        "data_window_start": WINDOW[0],
        "data_window_end": WINDOW[-1],
        "code_version": code.version_of(code.collect()),
        "tuning_job": tune["job_name"],
        "training_job": tune["best_training_job"],
    }


def test_every_job_carries_the_airflow_tags(happy, sm):
    run_id = happy.dag_run.run_id
    tune = happy.xcom("tune")
    # job ARN -> the task that started it
    expected = {
        happy.xcom("preprocess")["job_arn"]: "preprocess",
        tune["job_arn"]: "tune",
        happy.xcom("evaluate")["job_arn"]: "evaluate",
    }
    children = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tune["job_name"]
    )["TrainingJobSummaries"]
    expected.update({c["TrainingJobArn"]: "tune" for c in children})
    # the data-quality gates' validation jobs too
    gates = [ti for ti in happy.dag_run.get_task_instances() if ti.task_id.startswith("validate_")]
    assert len(gates) == len(WINDOW) + 1
    for ti in gates:
        name = ti.xcom_pull(task_ids=ti.task_id, map_indexes=ti.map_index)["job_name"]
        expected[sm.describe_processing_job(ProcessingJobName=name)["ProcessingJobArn"]] = (
            ti.task_id
        )
    for arn, task in expected.items():
        tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]}
        assert tags == {
            "airflow_dag_id": "model_build",
            "airflow_run_id": run_id,
            "airflow_task_id": task,
        }, arn


def test_xcom_carries_names_arns_and_uris_only(happy):
    assert set(happy.xcom("tune")) == {"job_name", "job_arn", "best_training_job", "model_uri"}
    assert set(happy.xcom("preprocess")) == {
        "job_name",
        "job_arn",
        "train_uri",
        "validation_uri",
        "test_uri",
        "metadata_uri",
    }
    for task in ("preprocess", "tune", "evaluate", "register", "package_code"):
        for value in happy.xcom(task).values():
            assert isinstance(value, str | int | None) and len(str(value)) < 300, (task, value)


def test_retried_tune_reattaches_to_the_one_tuning_job(happy, sm):
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session

    name = happy.xcom("tune")["job_name"]
    assert name == f"model-build-tune-{happy.key}"
    jobs = sm.list_hyper_parameter_tuning_jobs(NameContains=happy.key)
    assert [j["HyperParameterTuningJobName"] for j in jobs["HyperParameterTuningJobSummaries"]] == [
        name
    ]
    created = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)[
        "CreationTime"
    ]
    tune = happy.dag_run.get_task_instance("tune")
    with create_session() as session:
        earlier = (
            session.query(TaskInstanceHistory)
            .filter_by(dag_id="model_build", run_id=happy.dag_run.run_id, task_id="tune")
            .all()
        )
    assert tune.try_number > 1 and len(earlier) == tune.try_number - 1, "tune was never retried"
    # the try that succeeded started after the job existed: it re-attached, it did not create
    assert tune.start_date > created
    assert all(t.state == "failed" for t in earlier)
    children = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name
    )
    assert len(children["TrainingJobSummaries"]) == 2


def test_spot_interruption_resumes_from_the_checkpoint(happy, sm, logs):
    assert happy.interrupted, "no training job was interrupted: it finished before a checkpoint"
    name = happy.interrupted[0]
    job = sm.describe_training_job(TrainingJobName=name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert "Interrupted" in [t["Status"] for t in job["SecondaryStatusTransitions"]]
    lines = log_lines(logs, TRAINING_LOGS, name)
    resumed = [line for line in lines if line.startswith("resuming from checkpoint at round")]
    assert len(resumed) == 1 and int(resumed[0].rsplit(" ", 1)[1]) % 50 == 0
    assert job["CheckpointConfig"]["S3Uri"].startswith(
        f"s3://{happy.bucket}/model-build/{happy.key}/checkpoints"
    )


# -- its cost (the plugin's listener) -------------------------------------------------------------
def test_the_cost_record_lists_exactly_this_runs_jobs(happy, sm, s3):
    """The plugin's listener recorded the run's cost when it ended: every SageMaker job the
    run started (gates, preprocess, evaluate, the tuning children), none of another run."""
    from mlops_pipeline.cost import listener, prices

    assert listener.wait_idle(timeout=120), "the cost listener is still busy"
    listing = s3.list_objects_v2(Bucket=happy.bucket, Prefix="cost/model_build/")
    keys = [o["Key"] for o in listing.get("Contents", [])]
    assert len(keys) == 1, keys
    record = read_json(s3, f"s3://{happy.bucket}/{keys[0]}")
    assert record["run_id"] == happy.dag_run.run_id and record["state"] == "success"

    tune = happy.xcom("tune")
    expected = {
        happy.xcom("preprocess")["job_name"]: "preprocess",
        happy.xcom("evaluate")["job_name"]: "evaluate",
    }
    children = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tune["job_name"]
    )["TrainingJobSummaries"]
    expected.update({c["TrainingJobName"]: "tune" for c in children})
    for ti in happy.dag_run.get_task_instances():
        if ti.task_id.startswith("validate_"):
            report = ti.xcom_pull(task_ids=ti.task_id, map_indexes=ti.map_index)
            expected[report["job_name"]] = ti.task_id
    assert {j["name"]: j["task_id"] for j in record["jobs"]} == expected

    table = prices.load()
    for job in record["jobs"]:
        assert job["hourly_rate"] == table.rate("us-east-1", job["kind"], "ml.m5.large")
        assert job["total_usd"] > 0, job
        if job["kind"] == "training":
            described = sm.describe_training_job(TrainingJobName=job["name"])
            assert job["spot"] and job["billable_seconds"] == described["BillableTimeInSeconds"]
            assert job["parent"] == tune["job_name"]
    assert record["total_usd"] == pytest.approx(
        sum(j["total_usd"] for j in record["jobs"]), rel=1e-9
    )
    assert record["spot_savings_usd"] > 0  # local_aws bills spot at its discount
    assert record["prices"]["as_of"] == table.as_of


def test_the_demo_prints_the_cost_of_the_run(happy, local_aws, tmp_path, monkeypatch):
    from mlops_pipeline import demo
    from mlops_pipeline.config import load_settings
    from mlops_pipeline.cost import listener

    assert listener.wait_idle(timeout=120)
    for key, value in environment(happy.bucket, happy.group).items():
        monkeypatch.setenv(key, value)
    run = demo.Demo(
        load_settings(), local_aws.url, tmp_path, DAY.date(), len(WINDOW), ROWS, started=0
    )
    demo.collect_cost(run)
    text = demo.cost_summary(run)
    assert f"model_build run {happy.dag_run.run_id} (success) cost $" in text
    assert f"s3://{happy.bucket}/cost/model_build/" in text


# -- runs that stop ------------------------------------------------------------------------------
def test_a_corrupt_partition_stops_at_the_gate_before_any_training(
    local_aws, aws_conn, s3, sm, capfd
):
    bucket, group = unique("model-build-bad"), unique("card-fraud")
    write_data(s3, bucket, broken_day=WINDOW[1], spec="negative_amounts:0.05")
    run = run_model_build(capfd, environment(bucket, group), s3)

    assert run.dag_run.state == "failed"
    assert (
        f"Data quality gate FAILED for dataset 'transactions', partition {WINDOW[1]}" in run.output
    )
    for task in ("preprocess", "tune", "evaluate", "quality_gate", "register"):
        assert run.state(task) == "upstream_failed", task
    assert not sm.list_hyper_parameter_tuning_jobs(NameContains=run.key)[
        "HyperParameterTuningJobSummaries"
    ]
    assert not sm.list_training_jobs(NameContains=run.key)["TrainingJobSummaries"]
    assert not sm.list_processing_jobs(NameContains=f"preprocess-{run.key}")[
        "ProcessingJobSummaries"
    ]
    features = f"model-build/{run.key}/features/"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=features)


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "waiting-in-task"])
def test_a_failing_tuning_job_fails_the_run_with_the_reason(
    local_aws, aws_conn, s3, sm, capfd, caplog, deferrable
):
    bucket, group = unique("model-build-fail"), unique("card-fraud")
    write_data(s3, bucket)
    broken = {**HYPERPARAMETERS, "num_round": "0"}  # train.py refuses it
    env = environment(bucket, group, MLOPS_STATIC_HYPERPARAMETERS=json.dumps(broken))

    def prepare(dag) -> None:
        dag.task_dict["tune"].deferrable = deferrable

    run = run_model_build(capfd, env, s3, prepare)

    assert run.dag_run.state == "failed"
    assert run.state("preprocess") == "success"
    assert run.state("tune") == "failed"
    for task in ("evaluate", "quality_gate", "register"):
        assert run.state(task) == "upstream_failed", task
    name = f"model-build-tune-{run.key}"
    assert f"SageMaker Tuning job {name} ended Failed: No training job succeeded" in run.output
    # SageMaker's reason says only "ExecuteUserScriptError"; the task log adds the script's own
    assert "train.py: error: num_round must be >= 1, got 0" in run.output
    # while it ran, the wait showed how far the tuning job was (the trigger, run in-process
    # by dag.test(), logs through the standard logging that pytest captures)
    assert re.search(
        rf"Tuning job {name}: InProgress - training jobs: \d+ done, \d+ running",
        run.output + caplog.text,
    )
    packages = sm.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    assert packages == []


# -- helpers -------------------------------------------------------------------------------------
def read_json(s3: Any, uri: str) -> Any:
    bucket, key = uri[5:].split("/", 1)
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_the_quality_gate_refuses_a_regression_against_the_approved_model(
    aws_conn, s3, sm, bucket, capfd, monkeypatch
):
    """quality_gate on its own: the approved version's evaluation.json against the candidate's."""
    from airflow.sdk import DAG

    from mlops_pipeline.operators.registration import ModelQualityGateOperator
    from tests.conftest import serialize_dag

    group = unique("card-fraud")
    monkeypatch.setenv("MLOPS_BUCKET", bucket)
    monkeypatch.setenv("MLOPS_MODEL_PACKAGE_GROUP", group)

    def report(pr_auc: float, auc: float) -> dict:
        return {
            "binary_classification_metrics": {"pr_auc": {"value": pr_auc}, "auc": {"value": auc}}
        }

    s3.put_object(
        Bucket=bucket, Key="approved/evaluation.json", Body=json.dumps(report(0.80, 0.95))
    )
    s3.put_object(
        Bucket=bucket, Key="candidate/evaluation.json", Body=json.dumps(report(0.60, 0.93))
    )
    sm.create_model_package_group(ModelPackageGroupName=group)
    approved = sm.create_model_package(
        ModelPackageGroupName=group,
        InferenceSpecification={
            "Containers": [{"Image": "img", "ModelDataUrl": f"s3://{bucket}/m.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        ModelApprovalStatus="Approved",
        ModelMetrics={
            "ModelQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": f"s3://{bucket}/approved/evaluation.json",
                }
            }
        },
    )["ModelPackageArn"]

    with DAG("t_model_quality_gate", schedule=None, start_date=dt.datetime(2026, 1, 1)) as dag:
        ModelQualityGateOperator(
            task_id="quality_gate", evaluation_uri=f"s3://{bucket}/candidate/", retries=0
        )
    serialize_dag(dag)
    run = dag.test()

    assert run.state == "failed"
    out = capfd.readouterr().out
    assert f"quality gate FAILED (compared with approved {approved})" in out
    assert "pr_auc = 0.6000 regresses from the approved model's 0.8000 by more than 0.0200" in out
    # the absolute thresholds hold: the regression alone stops it
    assert "auc = 0.9300 meets its threshold" in out
