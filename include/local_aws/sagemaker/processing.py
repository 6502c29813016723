"""Processing jobs: the container contract of SageMaker Processing, with the job's sandbox
standing in for /opt/ml.

The framework images' processing runs ``ContainerEntrypoint + ContainerArguments`` (the
SageMaker SDK's ScriptProcessor/SKLearnProcessor set ``["python3", "/opt/ml/processing/
input/code/<script>"]``); here ``python3`` is local_aws's interpreter and every /opt/ml/
path in the command line points into the sandbox, which SAGEMAKER_BASE_DIR also names.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from local_aws.sagemaker import images, private_opt_ml, s3io
from local_aws.sagemaker.api import (
    create_record,
    list_page,
    now,
    operation,
    pick,
    shape_response,
)
from local_aws.sagemaker.backend import Backend
from local_aws.sagemaker.cloudwatch import LogStream
from local_aws.sagemaker.errors import ResourceInUse, ValidationException
from local_aws.sagemaker.jobs import (
    FAILURE_REASON_MAX,
    Job,
    JobEnded,
    max_runtime,
    request_stop,
)
from local_aws.sagemaker.private_opt_ml import CANNOT_RUN

KIND = "processing-jobs"
HOST = "algo-1"
# Distributed processing code resolves the hosts in resourceconfig.json; "algo-1" does
# not resolve outside SageMaker's network, so the file names the host localhost.
RESOLVABLE_HOST = "localhost"
EXIT_MESSAGE_MAX = 1024  # "the first 1 KB" of /opt/ml/output/message
_PYTHON = re.compile(r"python(3(\.\d+)?)?")
NO_ENTRYPOINT = (
    "ClientError: local_aws runs a processing job's AppSpecification.ContainerEntrypoint; "
    "without Docker it cannot run the image's own ENTRYPOINT. Set ContainerEntrypoint, e.g. "
    '["python3", "/opt/ml/processing/input/code/preprocess.py"] (the SageMaker SDK\'s '
    "ScriptProcessor and SKLearnProcessor do)"
)


@operation("CreateProcessingJob")
def create_processing_job(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    name = p["ProcessingJobName"]
    arn = backend.arn("processing-job", name)
    _check_request(p)
    stamp = now()
    record = dict(
        p,
        ProcessingJobArn=arn,
        ProcessingJobStatus="InProgress",
        CreationTime=stamp,
        LastModifiedTime=stamp,
    )
    # SageMaker's wording for every job kind's duplicate name
    taken = ResourceInUse(
        "Job name must be unique within an AWS account and region, and a job with "
        f"this name already exists ({arn})"
    )
    create_record(backend, KIND, name, record, arn=arn, exists=taken)
    backend.start_job(ProcessingJob(backend, name))
    return {"ProcessingJobArn": arn}


def _is_opt_ml(path: str) -> bool:
    return path == "/opt/ml" or path.startswith("/opt/ml/")


def _check_request(p: dict[str, Any]) -> None:
    """Refuse at once what the job could never run here, naming the field."""
    sandbox = Path("/sandbox")  # only to validate the mapping; nothing is written
    input_paths: dict[Path, str] = {}
    names: set[str] = set()
    for i, item in enumerate(p.get("ProcessingInputs", []), 1):
        field = f"ProcessingInputs.{i}"
        if item["InputName"] in names:
            raise ValidationException(
                f"{field}.InputName {item['InputName']!r} is used by another input: "
                "input names must be unique"
            )
        names.add(item["InputName"])
        if "DatasetDefinition" in item:
            raise ValidationException(
                f"{field}.DatasetDefinition is not supported by local_aws (it has no Athena "
                "or Redshift): run the query beforehand and pass its result as an S3Input"
            )
        source = item.get("S3Input")
        if source is None:
            raise ValidationException(f"{field}: an input needs an S3Input")
        if not source.get("LocalPath"):
            raise ValidationException(
                f"{field}.S3Input.LocalPath is required: the path under /opt/ml/processing/ "
                "the input is downloaded to"
            )
        local = Backend.map_opt_ml(sandbox, source["LocalPath"], field=f"{field}.S3Input.LocalPath")
        if local in input_paths:
            raise ValidationException(
                f"{field}.S3Input.LocalPath {source['LocalPath']!r} is also the LocalPath of "
                f"{input_paths[local]}: each input needs its own LocalPath"
            )
        input_paths[local] = field
        s3io.split_s3_uri(source["S3Uri"], field=f"{field}.S3Input.S3Uri")
        if source.get("S3InputMode", "File") != "File":
            raise ValidationException(
                f"{field}.S3Input.S3InputMode {source['S3InputMode']!r} is not supported by "
                "local_aws: use File"
            )
        if source.get("S3CompressionType", "None") != "None":
            raise ValidationException(
                f"{field}.S3Input.S3CompressionType Gzip needs Pipe mode, which local_aws does "
                "not support: use None"
            )
    names.clear()
    output_paths: set[Path] = set()
    outputs = p.get("ProcessingOutputConfig", {}).get("Outputs", [])
    for i, item in enumerate(outputs, 1):
        field = f"ProcessingOutputConfig.Outputs.{i}"
        if item["OutputName"] in names:
            raise ValidationException(
                f"{field}.OutputName {item['OutputName']!r} is used by another output: "
                "output names must be unique"
            )
        names.add(item["OutputName"])
        target = item.get("S3Output")
        if target is None:
            raise ValidationException(
                f"{field}: local_aws supports S3Output only (no FeatureStoreOutput or "
                "app-managed outputs)"
            )
        if not target.get("LocalPath"):
            raise ValidationException(
                f"{field}.S3Output.LocalPath is required: the path under /opt/ml/processing/ "
                "whose files are uploaded"
            )
        local = Backend.map_opt_ml(
            sandbox, target["LocalPath"], field=f"{field}.S3Output.LocalPath"
        )
        if local in input_paths or local in output_paths:
            raise ValidationException(
                f"{field}.S3Output.LocalPath {target['LocalPath']!r} is already used by another "
                "input or output: give each its own LocalPath"
            )
        output_paths.add(local)
        s3io.split_s3_uri(target["S3Uri"], field=f"{field}.S3Output.S3Uri")
    app = p["AppSpecification"]
    for key in ("ContainerEntrypoint", "ContainerArguments"):
        for i, arg in enumerate(app.get(key, []), 1):
            map_argument(sandbox, arg, field=f"AppSpecification.{key}.{i}")


def map_argument(sandbox: Path, arg: str, *, field: str) -> str:
    """Point an /opt/ml/ path (alone, or as ``--flag=/opt/ml/...``) into the sandbox."""
    flag, sep, value = arg.partition("=")
    if _is_opt_ml(arg):
        flag, sep, value = "", "", arg
    elif not (sep and _is_opt_ml(value)):
        return arg
    mapped = str(Backend.map_opt_ml(sandbox, value, field=field))
    # keep a trailing slash: scripts may join paths by concatenation
    if value.endswith("/") and not mapped.endswith("/"):
        mapped += "/"
    return f"{flag}{sep}{mapped}"


def container_command(
    sandbox: Path, spec: dict[str, Any], env: dict[str, str], *, field: str
) -> list[str]:
    """The command of ``spec``'s ContainerEntrypoint + ContainerArguments, as the image runs it.

    ``python3`` is local_aws's interpreter (the framework images' Python, with the same
    libraries); other programs are the machine's own. /opt/ml paths in the command line also
    point into the sandbox, for hosts where jobs cannot have a private /opt/ml.
    """
    entrypoint = spec["ContainerEntrypoint"]
    args = [
        map_argument(sandbox, a, field=f"{field}.ContainerEntrypoint.{i}")
        for i, a in enumerate(entrypoint[1:], 2)
    ] + [
        map_argument(sandbox, a, field=f"{field}.ContainerArguments.{i}")
        for i, a in enumerate(spec.get("ContainerArguments", []), 1)
    ]
    executable = entrypoint[0]
    if _PYTHON.fullmatch(os.path.basename(executable)):
        executable = sys.executable
    elif _is_opt_ml(executable):
        executable = map_argument(sandbox, executable, field=f"{field}.ContainerEntrypoint.1")
    elif shutil.which(executable, path=env.get("PATH")) is None:
        raise JobEnded(
            "Failed",
            f"ClientError: ContainerEntrypoint executable {executable!r} is not available "
            "on the local machine; local_aws runs python3 and the machine's own programs",
        )
    return [executable, *args]


def could_not_start(code: int, tail: list[str]) -> str | None:
    """The FailureReason when the launcher could not exec the entrypoint (missing, no
    execute bit), else None."""
    if code == private_opt_ml.EXEC_FAILED and tail and tail[-1].startswith(CANNOT_RUN):
        return "ClientError: could not start the ContainerEntrypoint: " + tail[-1].removeprefix(
            CANNOT_RUN
        )
    return None


@operation("DescribeProcessingJob")
def describe_processing_job(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    return shape_response("DescribeProcessingJob", _get(backend, p["ProcessingJobName"]))


def _get(backend: Backend, name: str) -> dict[str, Any]:
    record = backend.store.get(KIND, name)
    if record is None:
        # a ValidationException, as SageMaker answers (the Airflow provider relies on it)
        raise ValidationException(f"Could not find requested job with name {name}")
    return record


SUMMARY_KEYS = (
    "ProcessingJobName",
    "ProcessingJobArn",
    "CreationTime",
    "ProcessingEndTime",
    "LastModifiedTime",
    "ProcessingJobStatus",
    "FailureReason",
    "ExitMessage",
)


@operation("ListProcessingJobs")
def list_processing_jobs(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    return list_page(
        backend.store.values(KIND),
        p,
        name_key="ProcessingJobName",
        status_key="ProcessingJobStatus",
        summary=lambda r: pick(r, SUMMARY_KEYS),
        result_key="ProcessingJobSummaries",
    )


@operation("StopProcessingJob")
def stop_processing_job(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    _get(backend, p["ProcessingJobName"])
    request_stop(backend, ProcessingJob, p["ProcessingJobName"])
    return {}


class ProcessingJob(Job):
    kind = KIND
    name_field = "ProcessingJobName"
    status_field = "ProcessingJobStatus"
    log_group = "/aws/sagemaker/ProcessingJobs"
    has_secondary_status = False  # Processing has no SecondaryStatus in its API

    def execute(self) -> None:
        job = self.record()
        app = job["AppSpecification"]
        reason = images.unsupported_reason(app["ImageUri"])
        if reason:
            raise JobEnded("Failed", reason)
        if not app.get("ContainerEntrypoint"):
            raise JobEnded("Failed", NO_ENTRYPOINT)
        self.update(ProcessingStartTime=now())
        (self.sandbox / "output").mkdir(parents=True, exist_ok=True)
        self._write_config(job)
        s3 = self.backend.client("s3")
        for i, item in enumerate(job.get("ProcessingOutputConfig", {}).get("Outputs", []), 1):
            if "S3Output" in item:  # checked before anything runs, as SageMaker does
                try:
                    s3io.require_bucket(
                        s3,
                        item["S3Output"]["S3Uri"],
                        field=f"ProcessingOutputConfig.Outputs.{i}.S3Output.S3Uri",
                    )
                except s3io.InputError as exc:
                    raise JobEnded("Failed", f"ClientError: {exc}") from exc
        self._download_inputs(job)
        for _, local, _ in self._outputs(job):
            local.mkdir(parents=True, exist_ok=True)
        self.check_ended()

        env = self.job_env({**job.get("Environment", {}), "SAGEMAKER_BASE_DIR": str(self.sandbox)})
        cmd = container_command(self.sandbox, app, env, field="AppSpecification")
        logs = self.log_stream(f"{self.job_name}/{HOST}-{int(time.time())}")
        try:
            self._notices(job, logs)
            try:
                code, tail = self.run_process(
                    cmd,
                    env=env,
                    cwd=self.sandbox,
                    logs=logs,
                    timeout=max_runtime(job),
                )
            except OSError as exc:  # e.g. an entrypoint script without the execute bit
                raise JobEnded(
                    "Failed", f"ClientError: could not start the ContainerEntrypoint: {exc}"
                ) from exc
        finally:
            logs.close()
        not_started = could_not_start(code, tail)
        if not_started:
            raise JobEnded("Failed", not_started)
        if code != 0:
            raise JobEnded("Failed", algorithm_error(code, tail))
        message = self.sandbox / "output" / "message"
        if message.is_file():
            try:
                message.read_bytes().decode("utf-8")
            except UnicodeDecodeError as exc:
                raise JobEnded(
                    "Failed", "ClientError: /opt/ml/output/message is not UTF-8 encoded text"
                ) from exc
        self.check_ended()
        self._upload_outputs(job)

    # -- the container's view --------------------------------------------------------------
    def _write_config(self, job: dict[str, Any]) -> None:
        config = self.sandbox / "config"
        config.mkdir(parents=True, exist_ok=True)
        keys = (
            "ProcessingJobArn",
            "ProcessingJobName",
            "AppSpecification",
            "Environment",
            "ProcessingInputs",
            "ProcessingOutputConfig",
            "ProcessingResources",
            "NetworkConfig",
            "RoleArn",
            "StoppingCondition",
            "ExperimentConfig",
        )
        (config / "processingjobconfig.json").write_text(
            json.dumps({k: job[k] for k in keys if k in job}, indent=2)
        )
        (config / "resourceconfig.json").write_text(
            json.dumps({"current_host": RESOLVABLE_HOST, "hosts": [RESOLVABLE_HOST]})
        )

    def _notices(self, job: dict[str, Any], logs: LogStream) -> None:
        """Tell the user, in the job's own log, where local_aws differs from the real thing."""
        count = job["ProcessingResources"]["ClusterConfig"].get("InstanceCount", 1)
        if count > 1:
            logs.write(
                f"local_aws: InstanceCount is {count}; the job runs on one instance (algo-1)"
            )
        for name, _, target in self._outputs(job):
            if target.get("S3UploadMode") == "Continuous":
                logs.write(
                    f"local_aws: output {name!r} has S3UploadMode Continuous; local_aws "
                    "uploads it once, at the end of the job"
                )

    # -- data in and out -------------------------------------------------------------------
    def _download_inputs(self, job: dict[str, Any]) -> None:
        s3 = self.backend.client("s3")
        for i, item in enumerate(job.get("ProcessingInputs", []), 1):
            source = item["S3Input"]
            dest = self.backend.map_opt_ml(
                self.sandbox, source["LocalPath"], field=f"ProcessingInputs.{i}.S3Input.LocalPath"
            )
            try:
                s3io.download(
                    s3, source["S3Uri"], dest, data_type=source.get("S3DataType", "S3Prefix")
                )
            except s3io.InputError as exc:
                raise JobEnded(
                    "Failed", f"ClientError: input {item['InputName']!r}: {exc}"
                ) from exc
            except ClientError as exc:
                raise JobEnded(
                    "Failed",
                    f"ClientError: input {item['InputName']!r} could not be downloaded from "
                    f"{source['S3Uri']}: {exc}",
                ) from exc

    def _outputs(self, job: dict[str, Any]) -> list[tuple[str, Path, dict[str, Any]]]:
        outputs = job.get("ProcessingOutputConfig", {}).get("Outputs", [])
        return [
            (
                item["OutputName"],
                self.backend.map_opt_ml(
                    self.sandbox,
                    item["S3Output"]["LocalPath"],
                    field=f"ProcessingOutputConfig.Outputs.{i}.S3Output.LocalPath",
                ),
                item["S3Output"],
            )
            for i, item in enumerate(outputs, 1)
        ]

    def _upload_outputs(self, job: dict[str, Any]) -> None:
        s3 = self.backend.client("s3")
        for name, local, target in self._outputs(job):
            try:
                s3io.upload_dir(s3, local, target["S3Uri"])
            except ClientError as exc:
                raise JobEnded(
                    "Failed",
                    f"ClientError: output {name!r} could not be uploaded to "
                    f"{target['S3Uri']}: {exc}",
                ) from exc

    def final_fields(self, status: str) -> dict[str, Any]:
        fields: dict[str, Any] = {"ProcessingEndTime": now()}
        message = self.sandbox / "output" / "message"
        if message.is_file():
            with message.open("rb") as fh:
                text = fh.read(EXIT_MESSAGE_MAX).decode("utf-8", errors="ignore")
            if text:
                fields["ExitMessage"] = text
        return fields


def algorithm_error(code: int, tail: list[str]) -> str:
    """FailureReason for a non-zero exit: SageMaker's words, the exit code and the last
    output, trimmed from the front so the exception line at the end always survives."""
    head = f"AlgorithmError: See job logs for more information. ExitCode {code}\n"
    last = "\n".join(tail[-10:])
    room = FAILURE_REASON_MAX - len(head)
    if len(last) > room:
        last = "..." + last[-(room - 3) :]
    return head + last
