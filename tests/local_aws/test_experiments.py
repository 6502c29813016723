"""Experiments, trials and trial components: the API, and what a tuning job records itself."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.conftest import unique
from tests.local_aws.test_tuning import source, tuning_request, wait_tuning  # noqa: F401


def test_a_tuning_job_records_an_experiment_with_a_trial_per_child(sm, source):  # noqa: F811
    name = unique("exp")
    sm.create_hyper_parameter_tuning_job(
        **tuning_request(
            name,
            source,
            strategy="Grid",
            max_parallel=2,
            ranges={"CategoricalParameterRanges": [{"Name": "alpha", "Values": ["0.1", "0.3"]}]},
        )
    )
    job = wait_tuning(sm, name)
    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")

    experiment = sm.describe_experiment(ExperimentName=f"{name}-aws-tuning-job")
    assert experiment["Source"] == {
        "SourceArn": job["HyperParameterTuningJobArn"],
        "SourceType": "SageMakerTuningJob",
    }
    children = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name
    )["TrainingJobSummaries"]
    trials = sm.list_trials(ExperimentName=f"{name}-aws-tuning-job")["TrialSummaries"]
    assert sorted(t["TrialName"] for t in trials) == sorted(
        f"{c['TrainingJobName']}-aws-trial" for c in children
    )
    components = sm.list_trial_components(ExperimentName=f"{name}-aws-tuning-job")[
        "TrialComponentSummaries"
    ]
    assert sorted(c["TrialComponentName"] for c in components) == sorted(
        f"{c['TrainingJobName']}-aws-training-job" for c in children
    )
    # a job's component reports the job's own status
    assert {c["Status"]["PrimaryStatus"] for c in components} == {"Completed"}
    child = children[0]["TrainingJobName"]
    described = sm.describe_trial_component(TrialComponentName=f"{child}-aws-training-job")
    assert described["Source"]["SourceArn"].endswith(f"training-job/{child}")
    assert described["Source"]["SourceType"] == "SageMakerTrainingJob"
    in_trial = sm.list_trials(TrialComponentName=f"{child}-aws-training-job")["TrialSummaries"]
    assert [t["TrialName"] for t in in_trial] == [f"{child}-aws-trial"]


def test_the_experiments_api_keeps_aws_order_of_deletion(sm):
    experiment, trial, component = unique("e"), unique("t"), unique("c")
    arn = sm.create_experiment(ExperimentName=experiment, Description="fraud model")[
        "ExperimentArn"
    ]
    assert arn == f"arn:aws:sagemaker:us-east-1:123456789012:experiment/{experiment}"
    sm.create_trial(TrialName=trial, ExperimentName=experiment)
    sm.create_trial_component(TrialComponentName=component)
    sm.associate_trial_component(TrialComponentName=component, TrialName=trial)
    listed = sm.list_trial_components(TrialName=trial)["TrialComponentSummaries"]
    assert [c["TrialComponentName"] for c in listed] == [component]
    assert experiment in [e["ExperimentName"] for e in sm.list_experiments()["ExperimentSummaries"]]
    with pytest.raises(ClientError, match="already exists"):
        sm.create_experiment(ExperimentName=experiment)
    with pytest.raises(ClientError, match="has trials"):
        sm.delete_experiment(ExperimentName=experiment)
    with pytest.raises(ClientError, match="has trial components"):
        sm.delete_trial(TrialName=trial)
    with pytest.raises(ClientError, match="is associated with trials"):
        sm.delete_trial_component(TrialComponentName=component)

    sm.disassociate_trial_component(TrialComponentName=component, TrialName=trial)
    sm.delete_trial_component(TrialComponentName=component)
    sm.delete_trial(TrialName=trial)
    assert sm.delete_experiment(ExperimentName=experiment)["ExperimentArn"] == arn
    with pytest.raises(ClientError) as err:
        sm.describe_experiment(ExperimentName=experiment)
    assert err.value.response["Error"]["Code"] == "ResourceNotFound"
    with pytest.raises(ClientError, match="does not exist"):
        sm.create_trial(TrialName=unique("t"), ExperimentName=experiment)
