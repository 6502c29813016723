"""
### model_build: train, evaluate and register the card-fraud model

```
validate_training_data  the data-quality gate (GX in a Processing job), one task per day
→ preprocess            Processing job: clean, features, time-based train/validation/test
                        split, baseline statistics for drift
→ validate_training_features  the gate again, on what preprocess wrote (suite
                        training_features): never train on a broken feature matrix
→ tune                  HyperParameterTuningJob over train.py (XGBoost script mode); the
                        objective is read from the training log by a MetricDefinition
→ evaluate              Processing job: PR-AUC, ROC-AUC, precision/recall at the chosen
                        threshold, calibration → evaluation.json
→ quality_gate          absolute thresholds from settings, no regression against the
                        currently approved model
→ register              ModelPackage in the group, PendingManualApproval, with metrics,
                        drift baseline and lineage (dag_id, run_id, data window, code version);
                        its Asset event (card_fraud_model_package) triggers model_deploy
```

**Schedule.** Triggered by the `card_fraud_drift` Asset, which batch_inference's
detect_drift publishes when scored data drift from the model's training baseline; or
manually (`airflow dags trigger model_build`, the UI, or `airflow dags test model_build
YYYY-MM-DD`). Retraining on drift rather than on a calendar spends compute when it can
change something; a manual run covers new features and code.

**Data window.** `training_window_days` daily partitions of `raw/transactions` ending at the
drifted day (the asset event's `partition`), else the run's logical date, else the last
complete day. Every day of the window passes the gate before anything is trained; the
days are checked in parallel, each against the metric history before the window, so no
verdict depends on which day finished first.

**Idempotence.** Jobs are named from the DAG and run (`model-build-tune-20260107-1a2b3c`);
a retried task re-attaches to its job (running or finished) instead of starting another,
and a re-registration returns the same package version. Settings come from the environment
(`MLOPS_*`, see `mlops_pipeline.config`); only the `aws_default` connection tells local_aws
from AWS.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import chain, dag, task

from mlops_pipeline import jobs
from mlops_pipeline.assets import drift_asset, drifted_partition, model_package_asset
from mlops_pipeline.notifications import alerting_args
from mlops_pipeline.operators.data_quality import DataQualityOperator
from mlops_pipeline.operators.job_watch import job_run
from mlops_pipeline.operators.registration import (
    ModelQualityGateOperator,
    RegisterModelPackageOperator,
)
from mlops_pipeline.operators.sagemaker import ProcessingJobOperator, TuningJobOperator


@dag(
    schedule=[drift_asset()],
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    description="Train, evaluate and register the card-fraud model on SageMaker (on drift or by hand)",
    doc_md=__doc__,
    tags=["ml", "card-fraud", "sagemaker", "training"],
    # every failed task alerts (Slack, else the alerts file): mlops_pipeline.notifications
    default_args={**alerting_args(), "retries": 1, "retry_delay": dt.timedelta(minutes=1)},
)
def model_build():
    @task
    def select_data_window(**context) -> list[str]:
        """The window's partition dates (the gate maps over them); its start, end and a
        manifest of its files for the preprocess job go to XCom keys of their own."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        from mlops_pipeline import rawdata
        from mlops_pipeline.config import load_settings

        settings = load_settings()
        dag_run, ti = context["dag_run"], context["ti"]
        window = jobs.data_window(
            settings.training_window_days,
            end=drifted_partition(context["triggering_asset_events"]),
            logical_date=dag_run.logical_date,
            run_after=dag_run.run_after,
        )
        manifest_uri = jobs.build_paths(settings, job_run(context).key).manifest
        rawdata.write_manifest(S3Hook().get_conn(), settings, window.partitions, manifest_uri)
        ti.xcom_push("start", window.start.isoformat())
        ti.xcom_push("end", window.end.isoformat())
        ti.xcom_push("manifest_uri", manifest_uri)
        return window.partitions

    @task(multiple_outputs=True)
    def package_code() -> dict:
        """containers/ to S3 at its content hash: the code version of everything below."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        from mlops_pipeline import code
        from mlops_pipeline.config import load_settings

        return code.publish(S3Hook().get_conn(), load_settings()).to_xcom()

    window = select_data_window()
    source = package_code()

    validate_training_data = DataQualityOperator.partial(
        task_id="validate_training_data",
        dataset="transactions",
        # the days are checked in parallel: each compares with the history before the
        # window, never with a window day that happened to finish first
        history_before=window["start"],
    ).expand(partition=window)

    preprocess = ProcessingJobOperator(
        task_id="preprocess",
        request=jobs.preprocess_request,
        request_args={
            "code_uri": source["code_uri"],
            "manifest_uri": window["manifest_uri"],
            "start": window["start"],
            "end": window["end"],
        },
    )
    validate_training_features = DataQualityOperator(
        task_id="validate_training_features",
        dataset="training_features",
        partition=window["end"],
        input_uri=preprocess.output["train_uri"],
    )
    tune = TuningJobOperator(
        task_id="tune",
        request=jobs.tuning_request,
        request_args={
            "sourcedir_uri": source["sourcedir_uri"],
            "train_uri": preprocess.output["train_uri"],
            "validation_uri": preprocess.output["validation_uri"],
            "metadata_uri": preprocess.output["metadata_uri"],
        },
    )
    evaluate = ProcessingJobOperator(
        task_id="evaluate",
        request=jobs.evaluate_request,
        request_args={
            "code_uri": source["code_uri"],
            "model_uri": tune.output["model_uri"],
            "test_uri": preprocess.output["test_uri"],
            "validation_uri": preprocess.output["validation_uri"],
        },
    )
    quality_gate = ModelQualityGateOperator(
        task_id="quality_gate", evaluation_uri=evaluate.output["evaluation_uri"]
    )
    register = RegisterModelPackageOperator(
        task_id="register",
        outlets=[model_package_asset()],  # schedules model_deploy
        request=jobs.model_package_request,
        request_args={
            "model_uri": tune.output["model_uri"],
            "sourcedir_uri": source["sourcedir_uri"],
            "code_version": source["code_version"],
            "evaluation_uri": quality_gate.output["evaluation_uri"],
            "metadata_uri": preprocess.output["metadata_uri"],
            "window_start": window["start"],
            "window_end": window["end"],
            "training_job": tune.output["best_training_job"],
            "tuning_job": tune.output["job_name"],
        },
    )

    chain(
        window,
        validate_training_data,
        preprocess,
        validate_training_features,
        tune,
        evaluate,
        quality_gate,
        register,
    )


model_build()
