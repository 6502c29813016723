"""Experiments, trials and trial components, and the ones SageMaker creates by itself.

A hyperparameter tuning job gets the experiment ``<tuning job>-aws-tuning-job`` with, for each
child training job, the trial ``<training job>-aws-trial`` holding the trial component
``<training job>-aws-training-job``, as AWS creates them. A component made for a job reports
that job's status when described or listed.
"""

from __future__ import annotations

from typing import Any

from local_aws.sagemaker.api import create_record, list_page, now, operation, pick, shape_response
from local_aws.sagemaker.backend import Backend
from local_aws.sagemaker.errors import ResourceNotFound, ValidationException

EXPERIMENTS = "experiments"
TRIALS = "trials"
COMPONENTS = "trial-components"
_JOB_KINDS = {"SageMakerTrainingJob": ("training-jobs", "TrainingJobStatus")}


def _taken(kind: str, arn: str) -> ValidationException:
    return ValidationException(f"{kind} with name already exists: {arn}")


def _get(backend: Backend, store: str, name: str, what: str) -> dict[str, Any]:
    record = backend.store.get(store, name)
    if record is None:
        arn = backend.arn(what.lower().replace(" ", "-"), name.lower())
        raise ResourceNotFound(f"{what} '{arn}' does not exist.")
    return record


def _stamp(backend: Backend) -> dict[str, Any]:
    stamp = now()
    return {"CreationTime": stamp, "LastModifiedTime": stamp}


# -- experiments -----------------------------------------------------------------------------
@operation("CreateExperiment")
def create_experiment(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    return _create_experiment(backend, p)


def _create_experiment(
    backend: Backend, p: dict[str, Any], source: dict[str, str] | None = None
) -> dict[str, Any]:
    name = p["ExperimentName"]
    arn = backend.arn("experiment", name.lower())
    record = dict(p, ExperimentArn=arn, DisplayName=p.get("DisplayName", name), **_stamp(backend))
    if source:
        record["Source"] = source
    create_record(backend, EXPERIMENTS, name, record, arn=arn, exists=_taken("Experiment", arn))
    return {"ExperimentArn": arn}


@operation("DescribeExperiment")
def describe_experiment(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    record = _get(backend, EXPERIMENTS, p["ExperimentName"], "Experiment")
    return shape_response("DescribeExperiment", record)


@operation("ListExperiments")
def list_experiments(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    return list_page(
        backend.store.values(EXPERIMENTS),
        p,
        name_key="ExperimentName",
        summary=lambda r: {
            **pick(r, ("ExperimentArn", "ExperimentName", "DisplayName")),
            **({"ExperimentSource": r["Source"]} if "Source" in r else {}),
            **pick(r, ("CreationTime", "LastModifiedTime")),
        },
        result_key="ExperimentSummaries",
    )


@operation("DeleteExperiment")
def delete_experiment(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    name = p["ExperimentName"]
    with backend.store.lock:
        record = _get(backend, EXPERIMENTS, name, "Experiment")
        if any(t["ExperimentName"] == name for t in backend.store.values(TRIALS)):
            raise ValidationException(
                f"Experiment {name} has trials: delete them first (DeleteTrial), as on AWS"
            )
        backend.store.delete(EXPERIMENTS, name)
    backend.tags.drop(record["ExperimentArn"])
    return {"ExperimentArn": record["ExperimentArn"]}


# -- trials ----------------------------------------------------------------------------------
@operation("CreateTrial")
def create_trial(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    return _create_trial(backend, p)


def _create_trial(
    backend: Backend, p: dict[str, Any], source: dict[str, str] | None = None
) -> dict[str, Any]:
    name = p["TrialName"]
    _get(backend, EXPERIMENTS, p["ExperimentName"], "Experiment")
    arn = backend.arn("experiment-trial", name.lower())
    record = dict(p, TrialArn=arn, DisplayName=p.get("DisplayName", name), **_stamp(backend))
    if source:
        record["Source"] = source
    create_record(backend, TRIALS, name, record, arn=arn, exists=_taken("Trial", arn))
    return {"TrialArn": arn}


@operation("DescribeTrial")
def describe_trial(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    return shape_response("DescribeTrial", _get(backend, TRIALS, p["TrialName"], "Trial"))


@operation("ListTrials")
def list_trials(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    component = p.get("TrialComponentName")
    if component:
        _get(backend, COMPONENTS, component, "Trial component")
    trials = [
        t
        for t in backend.store.values(TRIALS)
        if (not p.get("ExperimentName") or t["ExperimentName"] == p["ExperimentName"])
        and (not component or t["TrialName"] in _component_trials(backend, component))
    ]
    return list_page(
        trials,
        {k: v for k, v in p.items() if k not in ("ExperimentName", "TrialComponentName")},
        name_key="TrialName",
        summary=lambda r: {
            **pick(r, ("TrialArn", "TrialName", "DisplayName")),
            **({"TrialSource": r["Source"]} if "Source" in r else {}),
            **pick(r, ("CreationTime", "LastModifiedTime")),
        },
        result_key="TrialSummaries",
    )


@operation("DeleteTrial")
def delete_trial(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    name = p["TrialName"]
    with backend.store.lock:
        record = _get(backend, TRIALS, name, "Trial")
        if any(name in c.get("Trials", []) for c in backend.store.values(COMPONENTS)):
            raise ValidationException(
                f"Trial {name} has trial components: disassociate them first "
                "(DisassociateTrialComponent), as on AWS"
            )
        backend.store.delete(TRIALS, name)
    backend.tags.drop(record["TrialArn"])
    return {"TrialArn": record["TrialArn"]}


# -- trial components ------------------------------------------------------------------------
@operation("CreateTrialComponent")
def create_trial_component(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    return _create_trial_component(backend, p)


def _create_trial_component(
    backend: Backend, p: dict[str, Any], source: dict[str, str] | None = None
) -> dict[str, Any]:
    name = p["TrialComponentName"]
    arn = backend.arn("experiment-trial-component", name.lower())
    record = dict(p, TrialComponentArn=arn, DisplayName=p.get("DisplayName", name), Trials=[])
    record.update(_stamp(backend))
    if source:
        record["Source"] = source
    create_record(backend, COMPONENTS, name, record, arn=arn, exists=_taken("Trial component", arn))
    return {"TrialComponentArn": arn}


def _component_trials(backend: Backend, name: str) -> list[str]:
    return list((backend.store.get(COMPONENTS, name) or {}).get("Trials", []))


def _with_status(backend: Backend, record: dict[str, Any]) -> dict[str, Any]:
    """A job's component reports the job's status (and its times) as it is now."""
    source = record.get("Source") or {}
    kind = _JOB_KINDS.get(source.get("SourceType", ""))
    if kind is None:
        return record
    job = backend.store.get(kind[0], source["SourceArn"].rsplit("/", 1)[1]) or {}
    status = job.get(kind[1])
    if status is None:
        return record
    shown = dict(record, Status={"PrimaryStatus": status})
    if job.get("TrainingStartTime"):
        shown["StartTime"] = job["TrainingStartTime"]
    if job.get("TrainingEndTime"):
        shown["EndTime"] = job["TrainingEndTime"]
    return shown


@operation("DescribeTrialComponent")
def describe_trial_component(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    record = _get(backend, COMPONENTS, p["TrialComponentName"], "Trial component")
    return shape_response("DescribeTrialComponent", _with_status(backend, record))


@operation("ListTrialComponents")
def list_trial_components(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    trials: set[str] | None = None
    if p.get("TrialName"):
        trials = {_get(backend, TRIALS, p["TrialName"], "Trial")["TrialName"]}
    elif p.get("ExperimentName"):
        _get(backend, EXPERIMENTS, p["ExperimentName"], "Experiment")
        trials = {
            t["TrialName"]
            for t in backend.store.values(TRIALS)
            if t["ExperimentName"] == p["ExperimentName"]
        }
    components = [
        _with_status(backend, c)
        for c in backend.store.values(COMPONENTS)
        if (trials is None or trials & set(c.get("Trials", [])))
        and (not p.get("SourceArn") or (c.get("Source") or {}).get("SourceArn") == p["SourceArn"])
    ]
    keys = ("TrialComponentName", "TrialComponentArn", "DisplayName")
    times = ("Status", "StartTime", "EndTime", "CreationTime", "LastModifiedTime")
    return list_page(
        components,
        {k: v for k, v in p.items() if k not in ("ExperimentName", "TrialName", "SourceArn")},
        name_key="TrialComponentName",
        summary=lambda r: {
            **pick(r, keys),
            **({"TrialComponentSource": r["Source"]} if "Source" in r else {}),
            **pick(r, times),
        },
        result_key="TrialComponentSummaries",
    )


@operation("AssociateTrialComponent")
def associate_trial_component(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    return _association(backend, p, add=True)


@operation("DisassociateTrialComponent")
def disassociate_trial_component(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    return _association(backend, p, add=False)


def _association(backend: Backend, p: dict[str, Any], *, add: bool) -> dict[str, Any]:
    name, trial = p["TrialComponentName"], p["TrialName"]
    with backend.store.lock:
        component = _get(backend, COMPONENTS, name, "Trial component")
        trial_arn = _get(backend, TRIALS, trial, "Trial")["TrialArn"]
        linked = [t for t in component.get("Trials", []) if t != trial] + ([trial] if add else [])
        backend.store.update(COMPONENTS, name, {"Trials": linked, "LastModifiedTime": now()})
    return {"TrialComponentArn": component["TrialComponentArn"], "TrialArn": trial_arn}


@operation("DeleteTrialComponent")
def delete_trial_component(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    name = p["TrialComponentName"]
    with backend.store.lock:
        record = _get(backend, COMPONENTS, name, "Trial component")
        if record.get("Trials"):
            raise ValidationException(
                f"Trial component {name} is associated with trials {record['Trials']}: "
                "disassociate it first (DisassociateTrialComponent), as on AWS"
            )
        backend.store.delete(COMPONENTS, name)
    backend.tags.drop(record["TrialComponentArn"])
    return {"TrialComponentArn": record["TrialComponentArn"]}


# -- what SageMaker records by itself ----------------------------------------------------------
def record_tuning_child(backend: Backend, tuning_job: dict[str, Any], training_arn: str) -> None:
    """The experiment of a tuning job (made at its first child), a trial for the child and
    the child's trial component in it."""
    tuning_name = tuning_job["HyperParameterTuningJobName"]
    experiment = f"{tuning_name}-aws-tuning-job"
    child = training_arn.rsplit("/", 1)[1]
    with backend.store.lock:
        if not backend.store.exists(EXPERIMENTS, experiment):
            _create_experiment(
                backend,
                {"ExperimentName": experiment},
                source={
                    "SourceArn": tuning_job["HyperParameterTuningJobArn"],
                    "SourceType": "SageMakerTuningJob",
                },
            )
        job_source = {"SourceArn": training_arn, "SourceType": "SageMakerTrainingJob"}
        trial = f"{child}-aws-trial"
        _create_trial(backend, {"TrialName": trial, "ExperimentName": experiment}, job_source)
        component = f"{child}-aws-training-job"
        _create_trial_component(backend, {"TrialComponentName": component}, job_source)
        _association(backend, {"TrialComponentName": component, "TrialName": trial}, add=True)
