"""Hyperparameter tuning jobs: real child training jobs, driven through boto3.

Each child runs a tiny script-mode job whose objective is -(alpha - 0.3)**2, so the best value
of ``alpha`` is known. Every child is a whole training job, so the searches are kept small.
"""

from __future__ import annotations

import itertools
import re
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import ROLE_ARN, SKLEARN_IMAGE, unique, wait_for
from tests.jobkit import upload_source

# The toolkit passes one-letter hyperparameters as "-x", so the tuned one is "alpha".
TRAIN = """
import argparse, time

parser = argparse.ArgumentParser()
parser.add_argument("--alpha", type=float, default=0.0)
parser.add_argument("--shift", type=float, default=0.0)
parser.add_argument("--sleep", type=float, default=0.0)
args, _ = parser.parse_known_args()
if args.alpha > 0.9:
    raise ValueError(f"alpha={args.alpha} is out of the model's range")
time.sleep(args.sleep)
print(f"objective={-(args.alpha - 0.3) ** 2 + args.shift:.6f}", flush=True)
"""
METRICS = [{"Name": "objective", "Regex": r"objective=(-?[0-9.]+)"}]


@pytest.fixture(scope="module")
def source(s3) -> tuple[str, str]:
    bucket = unique("tuning")
    s3.create_bucket(Bucket=bucket)
    return bucket, upload_source(s3, bucket, "code/sourcedir.tar.gz", {"train.py": TRAIN})


def tuning_request(
    name: str,
    source: tuple[str, str],
    *,
    strategy: str = "Random",
    ranges: dict[str, Any],
    max_jobs: int | None = None,
    max_parallel: int = 2,
    objective_type: str = "Maximize",
    static: dict[str, str] | None = None,
    metrics: list[dict[str, str]] = METRICS,
    **extra: Any,
) -> dict[str, Any]:
    bucket, uri = source
    limits: dict[str, int] = {"MaxParallelTrainingJobs": max_parallel}
    if max_jobs is not None:
        limits["MaxNumberOfTrainingJobs"] = max_jobs
    request: dict[str, Any] = {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": strategy,
            "HyperParameterTuningJobObjective": {"Type": objective_type, "MetricName": "objective"},
            "ResourceLimits": limits,
            "ParameterRanges": ranges,
            "TrainingJobEarlyStoppingType": "Off",
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": {
                # JSON-encoded, as the SageMaker SDK sends them
                "sagemaker_program": '"train.py"',
                "sagemaker_submit_directory": f'"{uri}"',
                **(static or {}),
            },
            "AlgorithmSpecification": {
                "TrainingImage": SKLEARN_IMAGE,
                "TrainingInputMode": "File",
                "MetricDefinitions": metrics,
            },
            "RoleArn": ROLE_ARN,
            "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/output"},
            "ResourceConfig": {
                "InstanceType": "ml.m5.large",
                "InstanceCount": 1,
                "VolumeSizeInGB": 5,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 120},
        },
    }
    request.update(extra)
    return request


def continuous_alpha() -> dict[str, Any]:
    return {
        "ContinuousParameterRanges": [
            {"Name": "alpha", "MinValue": "0.0", "MaxValue": "0.9", "ScalingType": "Linear"}
        ]
    }


def grid_alpha(*values: str) -> dict[str, Any]:
    return {"CategoricalParameterRanges": [{"Name": "alpha", "Values": list(values)}]}


def wait_tuning(sm, name: str, timeout: float = 90) -> dict[str, Any]:
    return wait_for(
        lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
        "HyperParameterTuningJobStatus",
        timeout=timeout,
    )


def children(sm, name: str, **params: Any) -> list[dict[str, Any]]:
    pages = sm.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job").paginate(
        HyperParameterTuningJobName=name, **params
    )
    return [s for page in pages for s in page["TrainingJobSummaries"]]


def objective(summary: dict[str, Any]) -> float:
    return summary["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]


def test_random_search_keeps_parallel_limit_and_reports_best(sm, source):
    name = unique("rand")
    tags = [{"Key": "airflow_dag_id", "Value": "model_build"}]
    sm.create_hyper_parameter_tuning_job(
        **tuning_request(
            name,
            source,
            ranges=continuous_alpha(),
            max_jobs=4,
            max_parallel=2,
            # long enough that a poll every 50 ms sees two children running side by side
            static={"sleep": "0.5"},
            Tags=tags,
        )
    )

    # Watch the children the way a user would, through ListTrainingJobs.
    peak = 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        running = sm.list_training_jobs(NameContains=name, StatusEquals="InProgress")
        peak = max(peak, len(running["TrainingJobSummaries"]))
        status = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        if status["HyperParameterTuningJobStatus"] != "InProgress":
            break
        time.sleep(0.05)
    job = wait_tuning(sm, name)

    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    assert peak == 2  # ran side by side, never more than MaxParallelTrainingJobs
    assert job["TrainingJobStatusCounters"] == {
        "Completed": 4,
        "InProgress": 0,
        "RetryableError": 0,
        "NonRetryableError": 0,
        "Stopped": 0,
    }
    assert job["ObjectiveStatusCounters"] == {"Succeeded": 4, "Pending": 0, "Failed": 0}
    assert job["CreationTime"] <= job["HyperParameterTuningEndTime"] <= job["LastModifiedTime"]
    assert job["ConsumedResources"]["RuntimeInSeconds"] >= 1

    summaries = children(sm, name)
    assert len(summaries) == 4
    assert [s["TrainingJobName"] for s in summaries] == sorted(
        s["TrainingJobName"] for s in summaries
    )
    for index, summary in enumerate(summaries, start=1):
        assert re.fullmatch(rf"{name}-{index:03d}-[0-9a-f]{{8}}", summary["TrainingJobName"])
        alpha = float(summary["TunedHyperParameters"]["alpha"])
        assert 0.0 <= alpha <= 0.9
        assert objective(summary) == pytest.approx(-((alpha - 0.3) ** 2), abs=1e-6)
        assert summary["ObjectiveStatus"] == "Succeeded"

    best = job["BestTrainingJob"]
    expected = max(summaries, key=objective)
    assert best["TrainingJobName"] == expected["TrainingJobName"]
    assert best["TunedHyperParameters"] == expected["TunedHyperParameters"]
    assert best["FinalHyperParameterTuningJobObjectiveMetric"] == {
        "Type": "Maximize",
        "MetricName": "objective",
        "Value": objective(expected),
    }
    assert best["ObjectiveStatus"] == "Succeeded" and best["TrainingJobStatus"] == "Completed"
    assert best["TrainingStartTime"] <= best["TrainingEndTime"]

    # The best child is an ordinary training job that knows its tuning job.
    child = sm.describe_training_job(TrainingJobName=best["TrainingJobName"])
    assert child["TuningJobArn"] == job["HyperParameterTuningJobArn"]
    assert child["HyperParameters"]["alpha"] == best["TunedHyperParameters"]["alpha"]
    assert child["HyperParameters"]["_tuning_objective_metric"] == "objective"
    assert child["HyperParameters"]["sagemaker_program"] == '"train.py"'
    assert child["FinalMetricDataList"][0]["Value"] == objective(expected)
    assert child["ModelArtifacts"]["S3ModelArtifacts"].endswith(
        f"/{best['TrainingJobName']}/output/model.tar.gz"
    )
    assert sm.list_tags(ResourceArn=child["TrainingJobArn"])["Tags"] == tags
    assert sm.list_tags(ResourceArn=job["HyperParameterTuningJobArn"])["Tags"] == tags

    first = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, MaxResults=3
    )
    assert len(first["TrainingJobSummaries"]) == 3 and "NextToken" in first
    listed = sm.list_hyper_parameter_tuning_jobs(NameContains=name)[
        "HyperParameterTuningJobSummaries"
    ]
    assert [(s["HyperParameterTuningJobName"], s["Strategy"]) for s in listed] == [(name, "Random")]
    assert listed[0]["TrainingJobStatusCounters"]["Completed"] == 4


def test_grid_runs_every_combination_once(sm, source):
    name = unique("grid")
    sm.create_hyper_parameter_tuning_job(
        **tuning_request(
            name,
            source,
            strategy="Grid",
            max_parallel=4,
            ranges={
                "CategoricalParameterRanges": [
                    {"Name": "alpha", "Values": ["0.1", "0.3"]},
                    # Grid takes categorical ranges only: integers are listed as values
                    {"Name": "shift", "Values": ["0", "1"]},
                ]
            },
        )
    )
    job = wait_tuning(sm, name)

    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    summaries = children(sm, name)
    combos = sorted(
        (s["TunedHyperParameters"]["alpha"], s["TunedHyperParameters"]["shift"]) for s in summaries
    )
    assert combos == sorted(itertools.product(["0.1", "0.3"], ["0", "1"]))
    assert job["TrainingJobStatusCounters"]["Completed"] == 4
    assert job["BestTrainingJob"]["TunedHyperParameters"] == {"alpha": "0.3", "shift": "1"}
    assert objective(job["BestTrainingJob"]) == pytest.approx(1.0)


def test_minimize_and_maximize_pick_different_best(sm, source):
    names = {kind: unique(kind.lower()[:3]) for kind in ("Maximize", "Minimize")}
    for kind, name in names.items():
        sm.create_hyper_parameter_tuning_job(
            **tuning_request(
                name,
                source,
                strategy="Grid",
                objective_type=kind,
                ranges=grid_alpha("0.8", "0.3"),
            )
        )
    best = {}
    for kind, name in names.items():
        job = wait_tuning(sm, name)
        assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
        best[kind] = job["BestTrainingJob"]
        assert best[kind]["FinalHyperParameterTuningJobObjectiveMetric"]["Type"] == kind

    assert best["Maximize"]["TunedHyperParameters"] == {"alpha": "0.3"}
    assert objective(best["Maximize"]) == pytest.approx(0.0)
    assert best["Minimize"]["TunedHyperParameters"] == {"alpha": "0.8"}
    assert objective(best["Minimize"]) == pytest.approx(-0.25)


def test_failed_child_is_counted_and_the_search_goes_on(sm, source):
    name = unique("fail1")
    sm.create_hyper_parameter_tuning_job(
        **tuning_request(
            name,
            source,
            strategy="Grid",
            max_parallel=1,
            # one at a time, in the grid's order: 0.95 fails (the script raises) first
            ranges=grid_alpha("0.95", "0.25", "0.5"),
        )
    )
    job = wait_tuning(sm, name)

    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    assert job["TrainingJobStatusCounters"]["Completed"] == 2
    assert job["TrainingJobStatusCounters"]["NonRetryableError"] == 1
    assert job["TrainingJobStatusCounters"]["RetryableError"] == 0
    assert job["ObjectiveStatusCounters"] == {"Succeeded": 2, "Pending": 0, "Failed": 1}
    assert job["BestTrainingJob"]["TunedHyperParameters"] == {"alpha": "0.25"}

    by_alpha = {s["TunedHyperParameters"]["alpha"]: s for s in children(sm, name)}
    failed = by_alpha["0.95"]
    assert failed["TrainingJobStatus"] == "Failed" and failed["ObjectiveStatus"] == "Failed"
    assert "out of the model's range" in failed["FailureReason"]
    assert "FinalHyperParameterTuningJobObjectiveMetric" not in failed
    assert by_alpha["0.25"]["CreationTime"] >= failed["TrainingEndTime"]

    # Sorted by objective: jobs without one are not listed (as documented).
    ranked = children(sm, name, SortBy="FinalObjectiveMetricValue", SortOrder="Descending")
    assert [s["TunedHyperParameters"]["alpha"] for s in ranked] == ["0.25", "0.5"]
    ranked = children(sm, name, SortBy="FinalObjectiveMetricValue", SortOrder="Ascending")
    assert [s["TunedHyperParameters"]["alpha"] for s in ranked] == ["0.5", "0.25"]
    only_failed = children(sm, name, StatusEquals="Failed")
    assert [s["TrainingJobName"] for s in only_failed] == [failed["TrainingJobName"]]


def test_all_children_failing_fails_the_tuning_job(sm, source):
    name = unique("failall")
    sm.create_hyper_parameter_tuning_job(
        **tuning_request(name, source, strategy="Grid", ranges=grid_alpha("0.95", "0.99"))
    )
    job = wait_tuning(sm, name)

    assert job["HyperParameterTuningJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("No training job succeeded after 2 attempts.")
    assert "out of the model's range" in job["FailureReason"]  # a child's own reason
    assert job["TrainingJobStatusCounters"]["NonRetryableError"] == 2
    assert job["ObjectiveStatusCounters"]["Failed"] == 2
    assert "BestTrainingJob" not in job


def test_target_objective_value_stops_launching(sm, source):
    name = unique("target")
    request = tuning_request(name, source, ranges=continuous_alpha(), max_jobs=5, max_parallel=1)
    # every alpha in [0, 0.9] scores above -1, so the first child reaches the target
    request["HyperParameterTuningJobConfig"]["TuningJobCompletionCriteria"] = {
        "TargetObjectiveMetricValue": -1.0
    }
    sm.create_hyper_parameter_tuning_job(**request)
    job = wait_tuning(sm, name)

    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    assert len(children(sm, name)) == 1
    assert job["TuningJobCompletionDetails"]["NumberOfTrainingJobsObjectiveNotImproving"] == 0


def test_stop_stops_the_children(sm, source):
    name = unique("stop")
    request = tuning_request(
        name, source, ranges=continuous_alpha(), max_jobs=4, max_parallel=2, static={"sleep": "60"}
    )
    sm.create_hyper_parameter_tuning_job(**request)

    def training_children() -> dict[str, str]:
        # both children are in their script (sleeping) once their SecondaryStatus is Training
        secondary = [
            sm.describe_training_job(TrainingJobName=s["TrainingJobName"])["SecondaryStatus"]
            for s in children(sm, name)
        ]
        return {"Status": "Training" if secondary == ["Training"] * 2 else "InProgress"}

    wait_for(training_children, "Status", timeout=30)
    time.sleep(0.5)
    started = time.monotonic()
    sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    seen = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert seen["HyperParameterTuningJobStatus"] in ("Stopping", "Stopped")
    job = wait_tuning(sm, name, timeout=30)

    assert job["HyperParameterTuningJobStatus"] == "Stopped"
    assert time.monotonic() - started < 45  # the children did not sleep their 60 s out
    summaries = children(sm, name)
    assert len(summaries) == 2  # nothing launched after the stop
    assert {s["TrainingJobStatus"] for s in summaries} == {"Stopped"}
    assert job["TrainingJobStatusCounters"]["Stopped"] == 2
    assert job["TrainingJobStatusCounters"]["InProgress"] == 0
    for summary in summaries:
        child = sm.describe_training_job(TrainingJobName=summary["TrainingJobName"])
        assert child["TrainingJobStatus"] == "Stopped"

    with pytest.raises(ClientError) as err:
        sm.create_hyper_parameter_tuning_job(**request)
    assert err.value.response["Error"]["Code"] == "ResourceInUse"
    assert f"with the name, {name}, already exists" in err.value.response["Error"]["Message"]


def _validation_error(sm, request: dict[str, Any]) -> str:
    with pytest.raises(ClientError) as err:
        sm.create_hyper_parameter_tuning_job(**request)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as missing:
        sm.describe_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=request["HyperParameterTuningJobName"]
        )
    assert missing.value.response["Error"]["Code"] == "ResourceNotFound"  # nothing was created
    return err.value.response["Error"]["Message"]


def test_objective_metric_must_be_defined(sm, source):
    request = tuning_request(
        unique("val"),
        source,
        ranges=continuous_alpha(),
        max_jobs=2,
        metrics=[{"Name": "loss", "Regex": r"loss=([0-9.]+)"}],
    )
    message = _validation_error(sm, request)
    assert "'objective'" in message and "MetricDefinitions" in message and "'loss'" in message


def test_invalid_ranges_are_refused(sm, source):
    log_from_zero = {
        "ContinuousParameterRanges": [
            {"Name": "alpha", "MinValue": "0", "MaxValue": "1", "ScalingType": "Logarithmic"}
        ]
    }
    message = _validation_error(
        sm, tuning_request(unique("val"), source, ranges=log_from_zero, max_jobs=2)
    )
    assert "ContinuousParameterRanges[0]" in message and "MinValue > 0" in message

    integer_grid = {"IntegerParameterRanges": [{"Name": "k", "MinValue": "1", "MaxValue": "3"}]}
    message = _validation_error(
        sm, tuning_request(unique("val"), source, strategy="Grid", ranges=integer_grid)
    )
    assert "Grid" in message and "CategoricalParameterRanges" in message

    message = _validation_error(
        sm,
        tuning_request(
            unique("val"), source, ranges=continuous_alpha(), max_jobs=2, static={"alpha": "0.5"}
        ),
    )
    assert "StaticHyperParameters" in message and "'alpha'" in message

    message = _validation_error(
        sm, tuning_request(unique("val"), source, ranges=continuous_alpha())
    )
    assert "MaxNumberOfTrainingJobs" in message


def test_unknown_tuning_job_is_not_found(sm):
    for call in (
        sm.describe_hyper_parameter_tuning_job,
        sm.stop_hyper_parameter_tuning_job,
        sm.list_training_jobs_for_hyper_parameter_tuning_job,
    ):
        with pytest.raises(ClientError) as err:
            call(HyperParameterTuningJobName="no-such-tuning-job")
        assert err.value.response["Error"]["Code"] == "ResourceNotFound"
        assert err.value.response["Error"]["Message"] == (
            "Amazon SageMaker can't find a tuning job called no-such-tuning-job. Type another name."
        )


def test_name_longer_than_32_characters_is_refused(sm, source):
    with pytest.raises(ClientError) as err:
        sm.create_hyper_parameter_tuning_job(
            **tuning_request("t" * 33, source, ranges=continuous_alpha(), max_jobs=1)
        )
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "hyperParameterTuningJobName" in err.value.response["Error"]["Message"]
    assert (
        "Member must have length less than or equal to 32" in err.value.response["Error"]["Message"]
    )
