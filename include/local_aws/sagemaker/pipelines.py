"""SageMaker Pipelines: pipelines, and executions that run their steps over the same jobs.

An execution runs every step whose dependencies (DependsOn, and the steps its arguments read)
have succeeded, several at once; a Condition step adds the steps of the branch it takes; a
Fail step, or a failed step, fails the execution once the steps still running have ended.
Statuses: Executing → Succeeded | Failed, or Stopping → Stopped. Each execution is a trial
of the pipeline's experiment, as with PipelineExperimentConfig's defaults.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
from typing import Any

from local_aws.sagemaker import api, experiments, s3io
from local_aws.sagemaker.api import create_record, list_page, now, operation, pick, shape_response
from local_aws.sagemaker.backend import SERVER_STOPPED_REASON, Backend
from local_aws.sagemaker.errors import AWSError, ResourceNotFound, ValidationException
from local_aws.sagemaker.pipeline_definition import (
    DefinitionError,
    dependencies,
    evaluate,
    parse_definition,
    path_tokens,
    resolve,
    walk,
)
from local_aws.sagemaker.service_model import validate_request

log = logging.getLogger(__name__)

PIPELINES = "pipelines"
EXECUTIONS = "pipeline-executions"
POLL_SECONDS = 0.1
STEP_FAILURE = "Step failure: One or multiple steps failed."

# step type → (create, name field, describe, status field, metadata key, stop)
JOB_STEPS = {
    "Processing": (
        "CreateProcessingJob", "ProcessingJobName", "DescribeProcessingJob",
        "ProcessingJobStatus", "ProcessingJob", "StopProcessingJob",
    ),
    "Training": (
        "CreateTrainingJob", "TrainingJobName", "DescribeTrainingJob",
        "TrainingJobStatus", "TrainingJob", "StopTrainingJob",
    ),
    "Tuning": (
        "CreateHyperParameterTuningJob", "HyperParameterTuningJobName",
        "DescribeHyperParameterTuningJob", "HyperParameterTuningJobStatus", "TuningJob",
        "StopHyperParameterTuningJob",
    ),
    "Transform": (
        "CreateTransformJob", "TransformJobName", "DescribeTransformJob",
        "TransformJobStatus", "TransformJob", "StopTransformJob",
    ),
}  # fmt: skip
_KINDS = {
    "CreateProcessingJob": "processing-jobs",
    "CreateTrainingJob": "training-jobs",
    "CreateHyperParameterTuningJob": "tuning-jobs",
    "CreateTransformJob": "transform-jobs",
}


# -- pipelines -----------------------------------------------------------------------------
def _definition(p: dict[str, Any]) -> str:
    if p.get("PipelineDefinition"):
        text = str(p["PipelineDefinition"])
    elif p.get("PipelineDefinitionS3Location"):
        raise ValidationException(
            "PipelineDefinitionS3Location is not supported by local_aws: pass the definition "
            "itself as PipelineDefinition"
        )
    else:
        raise ValidationException("PipelineDefinition is required")
    try:
        parse_definition(text)
    except DefinitionError as exc:
        raise ValidationException(str(exc)) from exc
    return text


def _get_pipeline(backend: Backend, name: str) -> dict[str, Any]:
    record = backend.store.get(PIPELINES, name.rsplit("/", 1)[-1])
    if record is None:
        raise ResourceNotFound(f"Pipeline '{backend.arn('pipeline', name)}' does not exist.")
    return record


@operation("CreatePipeline")
def create_pipeline(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    name = p["PipelineName"]
    arn = backend.arn("pipeline", name)
    stamp = now()
    record = dict(
        p,
        PipelineArn=arn,
        PipelineDefinition=_definition(p),
        PipelineDisplayName=p.get("PipelineDisplayName", name),
        PipelineStatus="Active",
        CreationTime=stamp,
        LastModifiedTime=stamp,
    )
    record.pop("ClientRequestToken", None)
    taken = ValidationException(f"Pipeline names must be unique: {arn} already exists")
    create_record(backend, PIPELINES, name, record, arn=arn, exists=taken)
    return {"PipelineArn": arn}


@operation("UpdatePipeline")
def update_pipeline(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    record = _get_pipeline(backend, p["PipelineName"])
    changes: dict[str, Any] = {"LastModifiedTime": now()}
    if p.get("PipelineDefinition") or p.get("PipelineDefinitionS3Location"):
        changes["PipelineDefinition"] = _definition(p)
    for key in (
        "PipelineDisplayName",
        "PipelineDescription",
        "RoleArn",
        "ParallelismConfiguration",
    ):
        if key in p:
            changes[key] = p[key]
    backend.store.update(PIPELINES, record["PipelineName"], changes)
    return {"PipelineArn": record["PipelineArn"]}


@operation("DescribePipeline")
def describe_pipeline(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    return shape_response("DescribePipeline", _get_pipeline(backend, p["PipelineName"]))


@operation("ListPipelines")
def list_pipelines(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "PipelineArn", "PipelineName", "PipelineDisplayName", "PipelineDescription",
        "RoleArn", "CreationTime", "LastModifiedTime", "LastExecutionTime",
    )  # fmt: skip
    return list_page(
        backend.store.values(PIPELINES),
        {**p, "NameContains": p.get("PipelineNamePrefix")},
        name_key="PipelineName",
        summary=lambda r: pick(r, keys),
        result_key="PipelineSummaries",
    )


@operation("DeletePipeline")
def delete_pipeline(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    record = _get_pipeline(backend, p["PipelineName"])
    backend.store.delete(PIPELINES, record["PipelineName"])
    backend.tags.drop(record["PipelineArn"])
    return {"PipelineArn": record["PipelineArn"]}


# -- executions ------------------------------------------------------------------------------
def _get_execution(backend: Backend, arn: str) -> dict[str, Any]:
    record = backend.store.get(EXECUTIONS, arn)
    if record is None:
        raise ResourceNotFound(f"Pipeline execution '{arn}' does not exist.")
    return record


def _parameters(definition: dict[str, Any], given: list[dict[str, str]]) -> dict[str, Any]:
    declared = {d["Name"]: d for d in definition.get("Parameters", [])}
    unknown = sorted({g["Name"] for g in given} - set(declared))
    if unknown:
        raise ValidationException(
            f"PipelineParameters {unknown} are not parameters of the pipeline "
            f"(it declares {sorted(declared)})"
        )
    values = {g["Name"]: g["Value"] for g in given}
    typed: dict[str, Any] = {}
    for name, spec in declared.items():
        raw = values.get(name, spec.get("DefaultValue"))
        if raw is None:
            raise ValidationException(f"PipelineParameters: {name!r} has no default: give a value")
        kind = spec.get("Type", "String")
        try:
            typed[name] = (
                int(raw)
                if kind == "Integer"
                else float(raw)
                if kind == "Float"
                else str(raw).lower() == "true"
                if kind == "Boolean"
                else raw
            )
        except ValueError as exc:
            raise ValidationException(f"PipelineParameters: {name!r} is not a {kind}") from exc
    return typed


@operation("StartPipelineExecution")
def start_pipeline_execution(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    pipeline = _get_pipeline(backend, p["PipelineName"])
    definition = parse_definition(pipeline["PipelineDefinition"])
    parameters = _parameters(definition, p.get("PipelineParameters", []))
    execution_id = secrets.token_hex(6)
    arn = f"{pipeline['PipelineArn']}/execution/{execution_id}"
    stamp = now()
    experiment = {"ExperimentName": pipeline["PipelineName"], "TrialName": execution_id}
    record = {
        "PipelineArn": pipeline["PipelineArn"],
        "PipelineExecutionArn": arn,
        "PipelineExecutionDisplayName": p.get("PipelineExecutionDisplayName", f"execution-{stamp}"),
        "PipelineExecutionStatus": "Executing",
        "PipelineExperimentConfig": experiment,
        "CreationTime": stamp,
        "LastModifiedTime": stamp,
        "__parameters": [{"Name": k, "Value": str(v)} for k, v in parameters.items()],
        "__steps": [],
    }
    if p.get("PipelineExecutionDescription"):
        record["PipelineExecutionDescription"] = p["PipelineExecutionDescription"]
    backend.store.create(EXECUTIONS, arn, record)
    backend.store.update(PIPELINES, pipeline["PipelineName"], {"LastExecutionTime": stamp})
    _record_trial(backend, pipeline, execution_id)
    runner = Execution(backend, pipeline, arn, execution_id, definition, parameters)
    backend.extensions.setdefault(__name__, {})[arn] = runner
    runner.start()
    return {"PipelineExecutionArn": arn}


def _record_trial(backend: Backend, pipeline: dict[str, Any], execution_id: str) -> None:
    source = {"SourceArn": pipeline["PipelineArn"], "SourceType": "SageMakerPipeline"}
    with backend.store.lock:
        if not backend.store.exists(experiments.EXPERIMENTS, pipeline["PipelineName"]):
            experiments._create_experiment(
                backend, {"ExperimentName": pipeline["PipelineName"]}, source=source
            )
        experiments._create_trial(
            backend,
            {"TrialName": execution_id, "ExperimentName": pipeline["PipelineName"]},
            source,
        )


@operation("DescribePipelineExecution")
def describe_pipeline_execution(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    record = _get_execution(backend, p["PipelineExecutionArn"])
    return shape_response("DescribePipelineExecution", record)


@operation("ListPipelineExecutions")
def list_pipeline_executions(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    pipeline = _get_pipeline(backend, p["PipelineName"])
    records = [
        dict(r, StartTime=r["CreationTime"], PipelineExecutionFailureReason=r.get("FailureReason"))
        for r in backend.store.values(EXECUTIONS)
        if r["PipelineArn"] == pipeline["PipelineArn"]
    ]
    keys = (
        "PipelineExecutionArn", "StartTime", "PipelineExecutionStatus",
        "PipelineExecutionDescription", "PipelineExecutionDisplayName",
        "PipelineExecutionFailureReason",
    )  # fmt: skip
    return list_page(
        records,
        {k: v for k, v in p.items() if k != "PipelineName"},
        name_key="PipelineExecutionArn",
        summary=lambda r: pick(r, keys),
        result_key="PipelineExecutionSummaries",
    )


@operation("ListPipelineExecutionSteps")
def list_pipeline_execution_steps(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    record = _get_execution(backend, p["PipelineExecutionArn"])
    steps = sorted(record["__steps"], key=lambda s: s["StartTime"], reverse=True)
    if p.get("SortOrder") == "Ascending":
        steps.reverse()
    return {"PipelineExecutionSteps": steps}


@operation("ListPipelineParametersForExecution")
def list_pipeline_parameters_for_execution(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    record = _get_execution(backend, p["PipelineExecutionArn"])
    return {"PipelineParameters": record["__parameters"]}


@operation("StopPipelineExecution")
def stop_pipeline_execution(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    arn = p["PipelineExecutionArn"]
    with backend.store.lock:
        record = _get_execution(backend, arn)
        if record["PipelineExecutionStatus"] == "Executing":
            backend.store.update(
                EXECUTIONS, arn, {"PipelineExecutionStatus": "Stopping", "LastModifiedTime": now()}
            )
    runner = backend.extensions.get(__name__, {}).get(arn)
    if runner is not None:
        runner.stop_requested.set()
    return {"PipelineExecutionArn": arn}


@api.on_start
def fail_executions_left_running(backend: Backend) -> None:
    for record in list(backend.store.values(EXECUTIONS)):
        if record["PipelineExecutionStatus"] in ("Executing", "Stopping"):
            backend.store.update(
                EXECUTIONS,
                record["__key"],
                {
                    "PipelineExecutionStatus": "Failed",
                    "FailureReason": SERVER_STOPPED_REASON,
                    "LastModifiedTime": now(),
                },
            )


@api.on_shutdown
def stop_executions(backend: Backend) -> None:
    runners = list(backend.extensions.get(__name__, {}).values())
    for runner in runners:
        runner.shutting_down = True
        runner.stop_requested.set()
    for runner in runners:
        runner.join(timeout=15)


class StepFailed(Exception):
    def __init__(self, reason: str, metadata: dict[str, Any] | None = None):
        super().__init__(reason)
        self.reason, self.metadata = reason, metadata or {}


class Execution(threading.Thread):
    """Runs one pipeline execution's steps; each step in a thread of its own."""

    def __init__(
        self,
        backend: Backend,
        pipeline: dict[str, Any],
        arn: str,
        execution_id: str,
        definition: dict[str, Any],
        parameters: dict[str, Any],
    ):
        super().__init__(name=f"pipeline-execution:{execution_id}", daemon=True)
        self.backend, self.pipeline, self.arn = backend, pipeline, arn
        self.execution_id, self.definition, self.parameters = execution_id, definition, parameters
        self.stop_requested = threading.Event()
        self.shutting_down = False
        self.properties: dict[str, dict[str, Any]] = {}  # succeeded step → describe response
        self.property_files: dict[str, str] = {}  # "Step.File" → S3 URI
        self.jobs: dict[str, tuple[str, str]] = {}  # running step → (stop operation, job name)
        self._changed = threading.Condition()

    # -- expressions ---------------------------------------------------------------------------
    def get(self, path: str) -> Any:
        tokens = path_tokens(path)
        head = tokens[0]
        if head == "Parameters" and len(tokens) == 2:
            if tokens[1] not in self.parameters:
                raise DefinitionError(f"{path}: the pipeline has no such parameter")
            return self.parameters[str(tokens[1])]
        if head == "Execution" and len(tokens) == 2:
            record = self.backend.store.get(EXECUTIONS, self.arn) or {}
            return {
                "PipelineExecutionId": self.execution_id,
                "PipelineExecutionArn": self.arn,
                "PipelineName": self.pipeline["PipelineName"],
                "PipelineArn": self.pipeline["PipelineArn"],
                "StartDateTime": time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.get("CreationTime", now()))
                ),
                "CurrentDateTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }[str(tokens[1])]
        if head == "Steps" and len(tokens) >= 3:
            step = str(tokens[1])
            if tokens[2] == "PropertyFiles" and len(tokens) == 4:
                return self.property_files[f"{step}.{tokens[3]}"]
            if step not in self.properties:
                raise DefinitionError(f"{path}: step {step!r} has not succeeded")
            return walk(self.properties[step], tokens[2:], path)
        raise DefinitionError(f"cannot evaluate {{'Get': {path!r}}}")

    def read_json(self, uri: str) -> Any:
        bucket, key = s3io.split_s3_uri(uri)
        body = self.backend.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        return json.loads(body)

    def resolve(self, value: Any) -> Any:
        return resolve(value, self.get, self.read_json)

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> None:
        pending = {s["Name"]: s for s in self.definition["Steps"]}
        running: dict[str, threading.Thread] = {}
        outcomes: dict[str, str] = {}  # step → Succeeded | Failed | Stopped
        try:
            while pending or running:
                with self._changed:
                    for name in [n for n, t in running.items() if not t.is_alive()]:
                        running.pop(name)
                    stopping = self.stop_requested.is_set()
                    failed = any(o != "Succeeded" for o in outcomes.values())
                    if stopping:
                        for stop, job in list(self.jobs.values()):
                            self._call(stop, {self._name_field(stop): job}, quiet=True)
                    if not stopping and not failed:
                        for name, step in list(pending.items()):
                            deps = dependencies(step)
                            if deps <= {n for n, o in outcomes.items() if o == "Succeeded"}:
                                pending.pop(name)
                                thread = threading.Thread(
                                    target=self._run_step,
                                    args=(step, outcomes, pending),
                                    name=f"pipeline-step:{name}",
                                    daemon=True,
                                )
                                running[name] = thread
                                thread.start()
                    if not running:
                        break  # what is left waits on steps that failed or never ran
                    self._changed.wait(POLL_SECONDS)
        except Exception as exc:  # a fault of ours: the execution fails, never hangs
            log.exception("pipeline execution %s", self.arn)
            self._finish("Failed", f"InternalServerError: {type(exc).__name__}: {exc}")
            return
        if self.stop_requested.is_set():
            reason = SERVER_STOPPED_REASON if self.shutting_down else None
            self._finish("Failed" if self.shutting_down else "Stopped", reason)
        elif any(o != "Succeeded" for o in outcomes.values()):
            self._finish("Failed", STEP_FAILURE)
        else:
            self._finish("Succeeded", None)

    def _finish(self, status: str, reason: str | None) -> None:
        fields: dict[str, Any] = {"PipelineExecutionStatus": status, "LastModifiedTime": now()}
        if reason:
            fields["FailureReason"] = reason
        self.backend.store.update(EXECUTIONS, self.arn, fields)
        self.backend.extensions.get(__name__, {}).pop(self.arn, None)

    def _record_step(self, name: str, fields: dict[str, Any]) -> None:
        def change(record: dict[str, Any]) -> None:
            for step in record["__steps"]:
                if step["StepName"] == name:
                    step.update(fields)
                    return
            record["__steps"].append({"StepName": name, **fields})

        self.backend.store.update(EXECUTIONS, self.arn, change)

    def _run_step(
        self, step: dict[str, Any], outcomes: dict[str, str], pending: dict[str, Any]
    ) -> None:
        name = step["Name"]
        branch: list[dict[str, Any]] = []
        self._record_step(
            name,
            {
                "StepDisplayName": step.get("DisplayName", name),
                "StartTime": now(),
                "StepStatus": "Executing",
                "AttemptCount": 1,
            },
        )
        try:
            metadata, branch = self._execute(step)
            outcome = "Succeeded"
            fields: dict[str, Any] = {"Metadata": metadata}
        except StepFailed as exc:
            stopped = self.stop_requested.is_set()
            outcome = "Stopped" if stopped else "Failed"
            fields = {"Metadata": exc.metadata, "FailureReason": exc.reason[:1024]}
        except (DefinitionError, AWSError, KeyError, ValueError) as exc:
            outcome = "Failed"
            message = exc.message if isinstance(exc, AWSError) else str(exc)
            fields = {"FailureReason": f"ClientError: {message}"[:1024]}
        self._record_step(name, {**fields, "StepStatus": outcome, "EndTime": now()})
        with self._changed:
            for child in branch:  # a Condition's chosen branch runs next
                pending[child["Name"]] = child
            outcomes[name] = outcome
            self._changed.notify_all()

    def _execute(self, step: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Run ``step``; its metadata, and the steps it adds (a Condition's branch)."""
        name, kind = step["Name"], step.get("Type", "")
        arguments = step.get("Arguments", {})
        if kind in JOB_STEPS:
            return self._job_step(step), []
        if kind == "Condition":
            outcome = all(self.resolve_condition(c) for c in arguments.get("Conditions", []))
            branch = arguments.get("IfSteps" if outcome else "ElseSteps", [])
            return {"Condition": {"Outcome": str(outcome)}}, branch
        if kind == "Fail":
            message = str(self.resolve(arguments.get("ErrorMessage", "")))
            raise StepFailed(message, {"Fail": {"ErrorMessage": message}})
        if kind == "Model":
            request = self.resolve(arguments)
            request.setdefault("ModelName", self._job_name(name, 63))
            self._call("CreateModel", request)
            self.properties[name] = self._call("DescribeModel", {"ModelName": request["ModelName"]})
            return {"Model": {"Arn": self.properties[name]["ModelArn"]}}, []
        if kind == "RegisterModel":
            created = self._call("CreateModelPackage", self.resolve(arguments))
            arn = created["ModelPackageArn"]
            self.properties[name] = self._call("DescribeModelPackage", {"ModelPackageName": arn})
            return {"RegisterModel": {"Arn": arn}}, []
        raise DefinitionError(f"step {name!r}: local_aws does not run {kind!r} steps")

    def resolve_condition(self, condition: dict[str, Any]) -> bool:
        return evaluate(condition, self.get, self.read_json)

    def _job_step(self, step: dict[str, Any]) -> dict[str, Any]:
        name = step["Name"]
        create, name_field, describe, status_field, key, stop = JOB_STEPS[step["Type"]]
        request = self.resolve(step.get("Arguments", {}))
        job = self._job_name(name, 32 if step["Type"] == "Tuning" else 63)
        request[name_field] = job
        created = self._call(create, request)
        arn = next(v for k, v in created.items() if k.endswith("Arn"))
        metadata = {key: {"Arn": arn}}
        self._record_step(name, {"Metadata": metadata})
        self.jobs[name] = (stop, job)
        try:
            while True:
                record = self.backend.store.get(_KINDS[create], job) or {}
                if record.get(status_field) in ("Completed", "Failed", "Stopped"):
                    break
                time.sleep(POLL_SECONDS)
        finally:
            self.jobs.pop(name, None)
        described = self._call(describe, {name_field: job})
        if described[status_field] != "Completed":
            reason = described.get("FailureReason") or f"the job ended {described[status_field]}"
            raise StepFailed(f"{described[status_field]}: {reason}", metadata)
        if step["Type"] == "Tuning":
            listed = self._call(
                "ListTrainingJobsForHyperParameterTuningJob",
                {
                    "HyperParameterTuningJobName": job,
                    "SortBy": "FinalObjectiveMetricValue",
                    "SortOrder": "Descending",
                },
            )
            described["TrainingJobSummaries"] = listed["TrainingJobSummaries"]
        for spec in step.get("PropertyFiles", []):
            outputs = described.get("ProcessingOutputConfig", {}).get("Outputs", [])
            uri = walk(outputs, [spec["OutputName"], "S3Output", "S3Uri"], spec["OutputName"])
            self.property_files[f"{name}.{spec['PropertyFileName']}"] = (
                f"{uri.rstrip('/')}/{spec['FilePath']}"
            )
        self.properties[name] = described
        return metadata

    def _job_name(self, step: str, limit: int) -> str:
        # lower case, as in the ARN SageMaker shows for the job (names inside ARNs are)
        clean = re.sub(r"[^a-z0-9-]+", "-", step.lower()).strip("-") or "step"
        suffix = secrets.token_hex(4)
        if limit <= 32:  # tuning job names: no room for the execution id
            return f"{clean[: limit - len(suffix) - 1]}-{suffix}"
        return f"pipelines-{self.execution_id}-{clean}"[: limit - len(suffix) - 1] + f"-{suffix}"

    @staticmethod
    def _name_field(stop: str) -> str:
        return next(spec[1] for spec in JOB_STEPS.values() if spec[5] == stop)

    def _call(self, operation_name: str, params: dict[str, Any], quiet: bool = False) -> Any:
        try:
            return api.OPERATIONS[operation_name](
                self.backend, validate_request(operation_name, params)
            )
        except AWSError:
            if quiet:
                return None
            raise
