"""Names: valid for SageMaker, stable across retries, distinct across runs."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from botocore.session import get_session

from mlops_pipeline.naming import airflow_tags, job_name, run_key

NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
DAY = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def test_same_run_same_name_and_different_runs_differ():
    key = run_key(DAY, "scheduled__2026-03-01T00:00:00+00:00")
    assert key.startswith("20260301-")
    assert job_name("model_build", "preprocess", key) == job_name("model_build", "preprocess", key)
    other = run_key(DAY, "manual__2026-03-01T10:00:00+00:00")
    assert other != key
    assert run_key(None, "manual__x") == run_key(None, "manual__x")


def test_names_are_valid_sagemaker_names_within_limits():
    key = run_key(DAY, "r")
    long_dag = "a_very_long_dag_id_that_keeps_going_and_going_well_past_any_limit_at_all"
    for kind, limit in (("default", 63), ("tuning", 32)):
        for attempt in (1, 2, 13):
            name = job_name(long_dag, "tune", key, kind=kind, attempt=attempt)
            assert len(name) <= limit and NAME.fullmatch(name), name
    assert job_name("model_build", "tune", key, kind="tuning", attempt=2).endswith("-r2")


def test_names_match_the_service_model_pattern():
    model = get_session().get_service_model("sagemaker")
    shape = model.operation_model("CreateHyperParameterTuningJob").input_shape
    member = shape.members["HyperParameterTuningJobName"]
    name = job_name("model_build", "tune", run_key(DAY, "r"), kind="tuning")
    assert len(name) <= member.metadata["max"]
    assert re.fullmatch(member.metadata["pattern"], name)


def test_step_too_long_is_a_clear_error():
    with pytest.raises(ValueError, match="too long for a tuning job name"):
        job_name("d", "x" * 40, "20260301-abcdef", kind="tuning")


def test_tags_name_dag_run_and_task():
    tags = airflow_tags("model_build", "manual__1", "tune")
    assert {t["Key"]: t["Value"] for t in tags} == {
        "airflow_dag_id": "model_build",
        "airflow_run_id": "manual__1",
        "airflow_task_id": "tune",
    }
