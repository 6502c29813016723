"""Hyperparameter tuning jobs: a coordinator thread that runs real child training jobs.

Children go through CreateTrainingJob's own handler, so each is an ordinary training job
(DescribeTrainingJob, ListTrainingJobs, logs, metrics, artifacts) with ``TuningJobArn`` set.
The values to try come from ``tuning_strategies``; the objective is read from each child's
``FinalMetricDataList``, which the training job fills from its MetricDefinitions.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from local_aws.sagemaker import builtins, experiments, training, tuning_strategies
from local_aws.sagemaker.api import (
    create_record,
    list_page,
    now,
    on_shutdown,
    operation,
    pick,
    shape_response,
)
from local_aws.sagemaker.backend import SERVER_STOPPED_REASON, Backend
from local_aws.sagemaker.errors import (
    AWSError,
    ResourceInUse,
    ResourceNotFound,
    ValidationException,
)
from local_aws.sagemaker.jobs import TERMINAL, Job, JobEnded, request_stop
from local_aws.sagemaker.service_model import validate_request

log = logging.getLogger(__name__)

KIND = "tuning-jobs"
# SageMaker passes the objective metric's name to every child as this hyperparameter; the
# training toolkit knows it and keeps it out of the script's command line.
TUNING_METRIC_PARAM = "_tuning_objective_metric"
POLL_SECONDS = 0.1
STOP_CHILDREN_TIMEOUT = 30.0
# The children's fields a tuning job copies from its TrainingJobDefinition as they are.
_COPIED_FIELDS = (
    "InputDataConfig",
    "VpcConfig",
    "OutputDataConfig",
    "StoppingCondition",
    "EnableNetworkIsolation",
    "EnableInterContainerTrafficEncryption",
    "EnableManagedSpotTraining",
    "RetryStrategy",
    "Environment",
)
_RESOURCE_FIELDS = ("InstanceType", "InstanceCount", "VolumeSizeInGB", "VolumeKmsKeyId")


def _zero_counters() -> tuple[dict[str, int], dict[str, int]]:
    return (
        {
            "Completed": 0,
            "InProgress": 0,
            "RetryableError": 0,
            "NonRetryableError": 0,
            "Stopped": 0,
        },
        {"Succeeded": 0, "Pending": 0, "Failed": 0},
    )


# -- the request, read once ------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """What a CreateHyperParameterTuningJob request asks for, validated."""

    config: dict[str, Any]  # HyperParameterTuningJobConfig with the objective and ranges in it
    definition: dict[str, Any]  # the TrainingJobDefinition the children are made from
    metric: str
    objective_type: str
    max_jobs: int
    max_parallel: int
    max_runtime: int | None
    target: float | None
    max_not_improving: int | None


def plan_for(p: dict[str, Any]) -> Plan:
    """Validate a create request (or a stored record) the way SageMaker does; raise if not."""
    name = p["HyperParameterTuningJobName"]
    definitions = p.get("TrainingJobDefinitions") or []
    if "TrainingJobDefinition" in p and definitions:
        raise ValidationException(
            "Specify either TrainingJobDefinition or TrainingJobDefinitions, not both."
        )
    if "TrainingJobDefinition" in p:
        definition = p["TrainingJobDefinition"]
        where = "TrainingJobDefinition"
    elif definitions:
        definition = definitions[0]
        where = "TrainingJobDefinitions[0]"
    else:
        raise ValidationException(
            "TrainingJobDefinition is required: describe the training jobs to launch in "
            "TrainingJobDefinition (or TrainingJobDefinitions)."
        )
    if p.get("Autotune"):
        raise ValidationException(
            "Autotune is not supported by local_aws: remove Autotune and give the "
            "ParameterRanges and ResourceLimits yourself."
        )

    config = dict(p["HyperParameterTuningJobConfig"])
    # With TrainingJobDefinitions the objective and ranges live in each definition.
    objective = config.get("HyperParameterTuningJobObjective") or definition.get("TuningObjective")
    if not objective:
        raise ValidationException(
            "HyperParameterTuningJobConfig.HyperParameterTuningJobObjective is required: name "
            f"the MetricName to optimise and its Type (or set {where}.TuningObjective)."
        )
    config["HyperParameterTuningJobObjective"] = objective
    if not config.get("ParameterRanges") and definition.get("HyperParameterRanges"):
        config["ParameterRanges"] = definition["HyperParameterRanges"]
    try:
        tuning_strategies.validate_config(config)
    except ValueError as exc:
        raise ValidationException(str(exc)) from exc

    metric = objective["MetricName"]
    algorithm = definition["AlgorithmSpecification"]
    defined = [d["Name"] for d in algorithm.get("MetricDefinitions", [])]
    builtin = builtins.for_job(algorithm, definition.get("StaticHyperParameters", {}))
    if builtin:  # the algorithm's own metrics need no definitions
        defined += [d["Name"] for d in builtin.metric_definitions()]
    if metric not in defined:
        raise ValidationException(
            f"The objective metric {metric!r} is not defined in "
            f"{where}.AlgorithmSpecification.MetricDefinitions (defined: "
            f"{', '.join(map(repr, defined)) or 'none'}): add a MetricDefinition named {metric!r} "
            "whose Regex captures the value from the training log."
        )

    ranges = config.get("ParameterRanges") or {}
    tuned = {
        r["Name"]
        for field in (
            "IntegerParameterRanges",
            "ContinuousParameterRanges",
            "CategoricalParameterRanges",
        )
        for r in ranges.get(field) or []
    }
    both = sorted(tuned & set(definition.get("StaticHyperParameters", {})))
    if both:
        raise ValidationException(
            f"{where}.StaticHyperParameters sets {', '.join(map(repr, both))}, which "
            "ParameterRanges also tunes: a hyperparameter is either static or tuned; remove it "
            "from one of them."
        )

    limits = config["ResourceLimits"]
    if config["Strategy"] == "Grid":
        max_jobs = tuning_strategies.grid_size(config)
    elif "MaxNumberOfTrainingJobs" in limits:
        max_jobs = limits["MaxNumberOfTrainingJobs"]
    else:
        raise ValidationException(
            "HyperParameterTuningJobConfig.ResourceLimits.MaxNumberOfTrainingJobs is required "
            f"for the {config['Strategy']} strategy (only Grid derives it from the grid): set "
            "how many training jobs the tuning job may launch."
        )
    if (
        "ResourceConfig" not in definition
        and "HyperParameterTuningResourceConfig" not in definition
    ):
        raise ValidationException(
            f"{where}.ResourceConfig (or HyperParameterTuningResourceConfig) is required: give "
            "the InstanceType, InstanceCount and VolumeSizeInGB of the training jobs."
        )
    criteria = config.get("TuningJobCompletionCriteria") or {}
    result = Plan(
        config=config,
        definition=definition,
        metric=metric,
        objective_type=objective["Type"],
        max_jobs=max_jobs,
        max_parallel=limits["MaxParallelTrainingJobs"],
        max_runtime=limits.get("MaxRuntimeInSeconds"),
        target=criteria.get("TargetObjectiveMetricValue"),
        max_not_improving=(criteria.get("BestObjectiveNotImproving") or {}).get(
            "MaxNumberOfTrainingJobsNotImproving"
        ),
    )
    # A child request that CreateTrainingJob would refuse is the tuning request's error.
    sample = _sample_values(config)
    child = child_request(result, f"{name}-001-00000000", sample, tags=[])
    validate_request("CreateTrainingJob", child)
    training._check_request(child)
    return result


def _sample_values(config: dict[str, Any]) -> dict[str, str]:
    ranges = config.get("ParameterRanges") or {}
    values = {r["Name"]: r["Values"][0] for r in ranges.get("CategoricalParameterRanges") or []}
    for field in ("IntegerParameterRanges", "ContinuousParameterRanges"):
        values.update({r["Name"]: r["MinValue"] for r in ranges.get(field) or []})
    return values


def child_request(
    plan: Plan, name: str, tuned: dict[str, str], *, tags: list[dict[str, str]]
) -> dict[str, Any]:
    """The CreateTrainingJob request for one child: the definition plus the tuned values."""
    d = plan.definition
    algorithm = {
        k: v
        for k, v in d["AlgorithmSpecification"].items()
        if k in ("TrainingImage", "TrainingInputMode", "AlgorithmName", "MetricDefinitions")
    }
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": algorithm,
        "RoleArn": d["RoleArn"],
        "HyperParameters": {
            **d.get("StaticHyperParameters", {}),
            **tuned,
            TUNING_METRIC_PARAM: plan.metric,
        },
    }
    request.update({k: d[k] for k in _COPIED_FIELDS if k in d})
    if "ResourceConfig" in d:
        request["ResourceConfig"] = d["ResourceConfig"]
    else:
        hpt = d["HyperParameterTuningResourceConfig"]
        source = (hpt.get("InstanceConfigs") or [hpt])[0]
        request["ResourceConfig"] = {k: source[k] for k in _RESOURCE_FIELDS if k in source}
    if "CheckpointConfig" in d:
        # Children run side by side: one shared checkpoint prefix would let a child resume
        # from another's state, so each gets its own below it.
        checkpoint = dict(d["CheckpointConfig"])
        checkpoint["S3Uri"] = f"{checkpoint['S3Uri'].rstrip('/')}/{name}"
        request["CheckpointConfig"] = checkpoint
    if tags:
        request["Tags"] = tags
    return request


# -- operations ------------------------------------------------------------------------------
@operation("CreateHyperParameterTuningJob")
def create_hyper_parameter_tuning_job(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    name = p["HyperParameterTuningJobName"]
    arn = backend.arn("hyper-parameter-tuning-job", name)
    plan_for(p)
    stamp = now()
    status_counters, objective_counters = _zero_counters()
    record = dict(
        p,
        HyperParameterTuningJobArn=arn,
        HyperParameterTuningJobStatus="InProgress",
        CreationTime=stamp,
        LastModifiedTime=stamp,
        TrainingJobStatusCounters=status_counters,
        ObjectiveStatusCounters=objective_counters,
        ConsumedResources={"RuntimeInSeconds": 0},
        # children inherit the tags given at creation
        __tags=p.get("Tags", []),
        __children=[],
    )
    taken = ResourceInUse(
        f"A hyperparameter tuning job with the name, {name}, already exists. "
        "Choose a different name."
    )
    create_record(backend, KIND, name, record, arn=arn, exists=taken)
    if p.get("WarmStartConfig"):
        log.warning(
            "tuning job %s: WarmStartConfig is ignored by local_aws; it starts without the "
            "parent jobs' results",
            name,
        )
    if p["HyperParameterTuningJobConfig"].get("TrainingJobEarlyStoppingType") == "Auto":
        log.warning("tuning job %s: local_aws does not stop training jobs early", name)
    if len(p.get("TrainingJobDefinitions") or []) > 1:
        log.warning(
            "tuning job %s: local_aws runs only the first of %d TrainingJobDefinitions",
            name,
            len(p["TrainingJobDefinitions"]),
        )
    backend.start_job(TuningJob(backend, name))
    return {"HyperParameterTuningJobArn": arn}


def _get(backend: Backend, name: str) -> dict[str, Any]:
    record = backend.store.get(KIND, name)
    if record is None:
        raise ResourceNotFound(
            f"Amazon SageMaker can't find a tuning job called {name}. Type another name."
        )
    return record


@operation("DescribeHyperParameterTuningJob")
def describe_hyper_parameter_tuning_job(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    return shape_response(
        "DescribeHyperParameterTuningJob", _get(backend, p["HyperParameterTuningJobName"])
    )


@operation("ListHyperParameterTuningJobs")
def list_hyper_parameter_tuning_jobs(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    return list_page(
        backend.store.values(KIND),
        {"SortBy": "Name", "SortOrder": "Ascending", "MaxResults": 10, **p},
        name_key="HyperParameterTuningJobName",
        status_key="HyperParameterTuningJobStatus",
        summary=_tuning_job_summary,
        result_key="HyperParameterTuningJobSummaries",
    )


def _tuning_job_summary(r: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "HyperParameterTuningJobName",
        "HyperParameterTuningJobArn",
        "HyperParameterTuningJobStatus",
        "CreationTime",
        "HyperParameterTuningEndTime",
        "LastModifiedTime",
        "TrainingJobStatusCounters",
        "ObjectiveStatusCounters",
    )
    summary = pick(r, keys)
    summary["Strategy"] = r["HyperParameterTuningJobConfig"]["Strategy"]
    summary["ResourceLimits"] = r["HyperParameterTuningJobConfig"]["ResourceLimits"]
    return summary


@operation("StopHyperParameterTuningJob")
def stop_hyper_parameter_tuning_job(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    _get(backend, p["HyperParameterTuningJobName"])
    request_stop(backend, TuningJob, p["HyperParameterTuningJobName"])
    return {}


@operation("ListTrainingJobsForHyperParameterTuningJob")
def list_training_jobs_for_hyper_parameter_tuning_job(
    backend: Backend, p: dict[str, Any]
) -> dict[str, Any]:
    record = _get(backend, p["HyperParameterTuningJobName"])
    items = children_summaries(backend, record)
    if p.get("StatusEquals"):
        items = [s for s in items if s["TrainingJobStatus"] == p["StatusEquals"]]
    sort_by = p.get("SortBy", "Name")
    if sort_by == "FinalObjectiveMetricValue":
        # as documented: jobs without an objective value are not listed under this sort
        items = [s for s in items if "FinalHyperParameterTuningJobObjectiveMetric" in s]
    key = {
        "Name": lambda s: s["TrainingJobName"],
        "CreationTime": lambda s: s["CreationTime"],
        "Status": lambda s: s["TrainingJobStatus"],
        "FinalObjectiveMetricValue": lambda s: s["FinalHyperParameterTuningJobObjectiveMetric"][
            "Value"
        ],
    }[sort_by]
    items.sort(key=key, reverse=p.get("SortOrder", "Ascending") == "Descending")
    try:
        start = int(p.get("NextToken") or 0)
    except ValueError as exc:
        raise ValidationException("Invalid pagination token: NextToken") from exc
    limit = int(p.get("MaxResults") or 10)
    response: dict[str, Any] = {"TrainingJobSummaries": items[start : start + limit]}
    if start + limit < len(items):
        response["NextToken"] = str(start + limit)
    return response


# -- the children's results ------------------------------------------------------------------
def objective_value(child: dict[str, Any], metric: str) -> float | None:
    for datum in child.get("FinalMetricDataList", []):
        if datum["MetricName"] == metric and math.isfinite(datum["Value"]):
            return float(datum["Value"])
    return None


def _objective_status(child: dict[str, Any], value: float | None) -> str:
    status = child["TrainingJobStatus"]
    if status not in TERMINAL:
        return "Pending"
    # A stopped job that reported its metric counts, as SageMaker's early-stopped jobs do.
    return "Succeeded" if status in ("Completed", "Stopped") and value is not None else "Failed"


def children_summaries(backend: Backend, record: dict[str, Any]) -> list[dict[str, Any]]:
    """HyperParameterTrainingJobSummary of each child, in launch order."""
    objective = record["HyperParameterTuningJobConfig"].get(
        "HyperParameterTuningJobObjective"
    ) or _definition(record).get("TuningObjective", {})
    definition_name = _definition(record).get("DefinitionName")
    summaries = []
    for entry in record.get("__children", []):
        child = backend.store.get(training.KIND, entry["TrainingJobName"])
        if child is None:
            continue
        value = objective_value(child, objective.get("MetricName", ""))
        summary: dict[str, Any] = {
            k: child[k]
            for k in (
                "TrainingJobName",
                "TrainingJobArn",
                "CreationTime",
                "TrainingStartTime",
                "TrainingEndTime",
                "TrainingJobStatus",
                "FailureReason",
            )
            if child.get(k) is not None
        }
        summary["TuningJobName"] = record["HyperParameterTuningJobName"]
        summary["TunedHyperParameters"] = entry["TunedHyperParameters"]
        if definition_name:
            summary["TrainingJobDefinitionName"] = definition_name
        if value is not None:
            summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
                "Type": objective.get("Type"),
                "MetricName": objective["MetricName"],
                "Value": value,
            }
        summary["ObjectiveStatus"] = _objective_status(child, value)
        summaries.append(summary)
    return summaries


def _definition(record: dict[str, Any]) -> dict[str, Any]:
    if "TrainingJobDefinition" in record:
        return record["TrainingJobDefinition"]
    return (record.get("TrainingJobDefinitions") or [{}])[0]


def _is_retryable(reason: str | None) -> bool:
    # SageMaker retries only its own internal errors; client and algorithm errors are final.
    return (reason or "").startswith("InternalServerError")


def progress_fields(summaries: list[dict[str, Any]], objective_type: str) -> dict[str, Any]:
    """Counters, BestTrainingJob and completion details from the children's summaries."""
    status, objective = _zero_counters()
    for s in summaries:
        state = s["TrainingJobStatus"]
        if state == "Failed":
            status[
                "RetryableError" if _is_retryable(s.get("FailureReason")) else "NonRetryableError"
            ] += 1
        elif state in ("InProgress", "Stopping"):
            status["InProgress"] += 1
        elif state in status:
            status[state] += 1
        objective[s["ObjectiveStatus"]] += 1
    fields: dict[str, Any] = {
        "TrainingJobStatusCounters": status,
        "ObjectiveStatusCounters": objective,
    }
    history = [(s["TunedHyperParameters"], _value(s)) for s in summaries]
    index = tuning_strategies.best(history, objective_type)
    if index is not None:
        fields["BestTrainingJob"] = summaries[index]
        fields["TuningJobCompletionDetails"] = {
            "NumberOfTrainingJobsObjectiveNotImproving": _not_improving(summaries, objective_type)
        }
    return fields


def _value(summary: dict[str, Any]) -> float | None:
    if summary["ObjectiveStatus"] != "Succeeded":
        return None
    return float(summary["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])


def _not_improving(summaries: list[dict[str, Any]], objective_type: str) -> int:
    """How many evaluated jobs, in the order they ended, came after the last improvement."""
    sign = 1.0 if objective_type == "Maximize" else -1.0
    ended = sorted(
        (s for s in summaries if _value(s) is not None),
        key=lambda s: s.get("TrainingEndTime", s["CreationTime"]),
    )
    best = -math.inf
    count = 0
    for s in ended:
        value = sign * (_value(s) or 0.0)
        if value > best:
            best, count = value, 0
        else:
            count += 1
    return count


# -- the coordinator -------------------------------------------------------------------------
class TuningJob(Job):
    """Launches children as slots free up, collects their objectives, keeps the record current.

    It polls the children's records rather than waiting on their threads, so a stop, the
    runtime limit and the server's shutdown are all noticed within one poll.
    """

    kind = KIND
    name_field = "HyperParameterTuningJobName"
    status_field = "HyperParameterTuningJobStatus"

    def __init__(self, backend: Backend, name: str):
        super().__init__(backend, name)
        self._wake = threading.Event()
        self._shutdown = threading.Event()
        self._running: dict[str, dict[str, str]] = {}  # child name -> tuned values
        self._history: list[tuple[dict[str, str], float | None]] = []
        self._last_progress: dict[str, Any] = {}

    def execute(self) -> None:
        record = self.record()
        self.plan = plan_for(record)
        strategy = tuning_strategies.make_strategy(self.plan.config)
        tags = record.get("__tags", [])
        limit = self.plan.max_runtime
        deadline = time.monotonic() + limit if limit else math.inf
        launched = len(record.get("__children", []))
        exhausted = False
        while True:
            if self._collect():
                self._refresh()
            if self._shutdown.is_set():
                raise JobEnded("Failed", SERVER_STOPPED_REASON)
            if self._end_request is not None:
                self._stop_children()
                raise self._end_request
            if time.monotonic() >= deadline:
                log.info("tuning job %s reached its MaxRuntimeInSeconds", self.job_name)
                self._stop_children()
                break
            done = launched >= self.plan.max_jobs or exhausted or self._criteria_met()
            free = self.plan.max_parallel - len(self._running)
            if not done and free > 0:
                suggestions = strategy.suggest(
                    self._history, min(free, self.plan.max_jobs - launched)
                )
                # Nothing new to try and nothing running: the search space is used up.
                exhausted = not suggestions and not self._running
                for tuned in suggestions:
                    launched += 1
                    self._launch(launched, tuned, tags)
                if suggestions:
                    self._refresh()
            if done and not self._running:
                break
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()
        self._refresh()
        if "BestTrainingJob" not in self.record():
            raise JobEnded("Failed", self._no_success_reason())

    # -- children ------------------------------------------------------------------------------
    def _launch(self, index: int, tuned: dict[str, str], tags: list[dict[str, str]]) -> None:
        name = f"{self.job_name}-{index:03d}-{secrets.token_hex(4)}"
        request = validate_request(
            "CreateTrainingJob", child_request(self.plan, name, tuned, tags=tags)
        )
        # Not a CreateTrainingJob parameter: set on the record so DescribeTrainingJob shows it.
        request["TuningJobArn"] = self.record()["HyperParameterTuningJobArn"]
        try:
            arn = training.create_training_job(self.backend, request)["TrainingJobArn"]
            experiments.record_tuning_child(self.backend, self.record(), arn)
        except AWSError as exc:
            self._stop_children()
            raise JobEnded(
                "Failed", f"ClientError: could not start training job {name}: {exc.message}"
            ) from exc
        self._running[name] = tuned
        self.backend.store.update(
            KIND,
            self.job_name,
            lambda r: r["__children"].append(
                {"TrainingJobName": name, "TunedHyperParameters": tuned}
            ),
        )

    def _collect(self) -> bool:
        """Move children that ended from running to the history; True if any did."""
        changed = False
        for name, tuned in list(self._running.items()):
            child = self.backend.store.get(training.KIND, name)
            if child is None or child["TrainingJobStatus"] not in TERMINAL:
                continue
            del self._running[name]
            value = objective_value(child, self.plan.metric)
            ok = _objective_status(child, value) == "Succeeded"
            self._history.append((tuned, value if ok else None))
            changed = True
        return changed

    def _stop_children(self) -> None:
        for name in list(self._running):
            try:
                training.stop_training_job(self.backend, {"TrainingJobName": name})
            except AWSError:
                log.exception("could not stop training job %s", name)
        deadline = time.monotonic() + STOP_CHILDREN_TIMEOUT
        while self._running and time.monotonic() < deadline and not self._shutdown.is_set():
            self._collect()
            time.sleep(POLL_SECONDS)
        if self._running:
            log.warning("tuning job %s: children still running: %s", self.job_name, self._running)
        self._refresh()

    # -- progress --------------------------------------------------------------------------------
    def _criteria_met(self) -> bool:
        values = [v for _, v in self._history if v is not None]
        if not values:
            return False
        best = max(values) if self.plan.objective_type == "Maximize" else min(values)
        target = self.plan.target
        if target is not None and (
            best >= target if self.plan.objective_type == "Maximize" else best <= target
        ):
            return True
        details = self._last_progress.get("TuningJobCompletionDetails", {})
        limit = self.plan.max_not_improving
        return (
            limit is not None
            and details.get("NumberOfTrainingJobsObjectiveNotImproving", 0) >= limit
        )

    def _refresh(self) -> None:
        fields = progress_fields(
            children_summaries(self.backend, self.record()), self.plan.objective_type
        )
        if fields != self._last_progress:
            self._last_progress = fields
            self.update(**fields, ConsumedResources=self._consumed())

    def _consumed(self) -> dict[str, int]:
        return {"RuntimeInSeconds": int(now() - self.record()["CreationTime"])}

    def _no_success_reason(self) -> str:
        summaries = children_summaries(self.backend, self.record())
        failed = [s for s in summaries if s.get("FailureReason")]
        reason = (
            f"No training job succeeded after {len(summaries)} attempts. Please take a look at "
            "the training job failures to get more details."
        )
        if failed:
            last = failed[-1]
            return f"{reason} {last['TrainingJobName']}: {last['FailureReason']}"
        return (
            f"{reason} No training job reported the objective metric {self.plan.metric!r}: "
            "check that its MetricDefinitions Regex matches a line the training script prints."
        )

    def final_fields(self, status: str) -> dict[str, Any]:
        return {"HyperParameterTuningEndTime": now(), "ConsumedResources": self._consumed()}

    # -- control -----------------------------------------------------------------------------
    def _kill(self) -> None:
        # Called by request_end (stop) and by the server's shutdown: wake the loop either way.
        if self._end_request is None:
            self._shutdown.set()
        self._wake.set()


@on_shutdown
def stop_tuning_runners(backend: Backend) -> None:
    """End runners before the server kills running jobs, so none launches a child after."""
    runners = [
        job
        for record in backend.store.values(KIND)
        if (job := backend.running_job(KIND, record["__key"])) is not None
    ]
    for job in runners:
        job._kill()
    for job in runners:
        job.join(timeout=10)
