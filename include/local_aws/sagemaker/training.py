"""Training jobs: script mode through the SageMaker training toolkit, as in the framework
containers, or the request's ContainerEntrypoint; each in a private /opt/ml."""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from pathlib import Path
from typing import Any

from local_aws.sagemaker import api, builtins, images, s3io, warm
from local_aws.sagemaker.api import (
    create_record,
    list_page,
    now,
    operation,
    pick,
    shape_response,
)
from local_aws.sagemaker.backend import Backend
from local_aws.sagemaker.cloudwatch import put_metrics
from local_aws.sagemaker.errors import ResourceInUse, ValidationException
from local_aws.sagemaker.jobs import (
    Job,
    JobEnded,
    SpotInterruption,
    failure_reason,
    max_runtime,
    request_stop,
)
from local_aws.sagemaker.processing import container_command, could_not_start

KIND = "training-jobs"
HOST = "algo-1"
# The toolkit waits until every host in resourceconfig.json resolves; "algo-1" does not
# resolve outside SageMaker's network, so the job's host is called localhost on disk.
RESOLVABLE_HOST = "localhost"


@operation("CreateTrainingJob")
def create_training_job(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    name = p["TrainingJobName"]
    arn = backend.arn("training-job", name)
    _check_request(p)
    stamp = now()
    record = dict(
        p,
        TrainingJobArn=arn,
        TrainingJobStatus="InProgress",
        SecondaryStatus="Starting",
        SecondaryStatusTransitions=[
            {
                "Status": "Starting",
                "StartTime": stamp,
                "StatusMessage": "Launching requested ML instances",
            }
        ],
        CreationTime=stamp,
        LastModifiedTime=stamp,
        ModelArtifacts={"S3ModelArtifacts": ""},
    )
    taken = ResourceInUse(
        "Training job names must be unique within an AWS account and region, and a "
        f"training job with this name already exists ({arn})"
    )
    create_record(backend, KIND, name, record, arn=arn, exists=taken)
    backend.start_job(TrainingJob(backend, name))
    return {"TrainingJobArn": arn}


def _check_request(p: dict[str, Any]) -> None:
    # optional in the API model since training plans and serverless jobs; required here
    for field in ("AlgorithmSpecification", "ResourceConfig"):
        if field not in p:
            raise ValidationException(
                f"{field} is required: give the training image (or algorithm) and the "
                "instances to train on"
                if field == "AlgorithmSpecification"
                else f"{field} is required: give InstanceType, InstanceCount and VolumeSizeInGB"
            )
    algo = p["AlgorithmSpecification"]
    if not algo.get("TrainingImage") and not algo.get("AlgorithmName"):
        raise ValidationException(
            "AlgorithmSpecification must name a TrainingImage (or an AlgorithmName)"
        )
    if p.get("EnableManagedSpotTraining"):
        stop = p.get("StoppingCondition", {})
        if "MaxWaitTimeInSeconds" not in stop:
            raise ValidationException(
                "StoppingCondition.MaxWaitTimeInSeconds is required for managed spot training"
            )
        if stop["MaxWaitTimeInSeconds"] < stop.get("MaxRuntimeInSeconds", 0):
            raise ValidationException(
                "StoppingCondition.MaxWaitTimeInSeconds must be greater than or equal to "
                "MaxRuntimeInSeconds"
            )
    for channel in p.get("InputDataConfig", []):
        if channel["ChannelName"] in (".", ".."):
            # the channel's directory is /opt/ml/input/data/<ChannelName>
            raise ValidationException(
                f"InputDataConfig.ChannelName {channel['ChannelName']!r} is not a valid channel "
                "name: use letters, digits, '-', '_' or '.', not '.' or '..' alone"
            )
        source = channel["DataSource"].get("S3DataSource")
        if source is None:
            raise ValidationException(
                f"InputDataConfig channel {channel['ChannelName']!r}: only S3DataSource is "
                "supported by local_aws"
            )
        s3io.split_s3_uri(source["S3Uri"], field=f"InputDataConfig.{channel['ChannelName']}.S3Uri")
    s3io.split_s3_uri(p["OutputDataConfig"]["S3OutputPath"], field="OutputDataConfig.S3OutputPath")
    checkpoint = p.get("CheckpointConfig")
    if checkpoint:
        s3io.split_s3_uri(checkpoint["S3Uri"], field="CheckpointConfig.S3Uri")
        if "LocalPath" in checkpoint:  # raises naming the field when outside /opt/ml/
            Backend.map_opt_ml(
                Path("/"), checkpoint["LocalPath"], field="CheckpointConfig.LocalPath"
            )


def builtin_algorithm(job: dict[str, Any]) -> builtins.Algorithm | None:
    """The built-in algorithm the job runs (by its image, with no script), if any."""
    return builtins.for_job(job["AlgorithmSpecification"], job.get("HyperParameters", {}))


def _entrypoint(job: dict[str, Any]) -> list[str]:
    return list(job["AlgorithmSpecification"].get("ContainerEntrypoint") or [])


@operation("DescribeTrainingJob")
def describe_training_job(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    return shape_response("DescribeTrainingJob", _get(backend, p["TrainingJobName"]))


def _get(backend: Backend, name: str) -> dict[str, Any]:
    record = backend.store.get(KIND, name)
    if record is None:
        raise ValidationException("Requested resource not found.")
    return record


SUMMARY_KEYS = (
    "TrainingJobName",
    "TrainingJobArn",
    "CreationTime",
    "TrainingEndTime",
    "LastModifiedTime",
    "TrainingJobStatus",
    "SecondaryStatus",
)


@operation("ListTrainingJobs")
def list_training_jobs(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    return list_page(
        backend.store.values(KIND),
        p,
        name_key="TrainingJobName",
        status_key="TrainingJobStatus",
        summary=lambda r: pick(r, SUMMARY_KEYS),
        result_key="TrainingJobSummaries",
    )


@operation("StopTrainingJob")
def stop_training_job(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    _get(backend, p["TrainingJobName"])
    request_stop(backend, TrainingJob, p["TrainingJobName"])
    return {}


@api.on_start
def prewarm_toolkit(backend: Backend) -> None:
    warm.TOOLKIT.open(backend.data_dir.resolve())  # the first job does not pay its imports


@api.on_last_shutdown
def stop_toolkit(backend: Backend) -> None:
    warm.TOOLKIT.close(backend.data_dir.resolve())


class TrainingJob(Job):
    kind = KIND
    name_field = "TrainingJobName"
    status_field = "TrainingJobStatus"
    log_group = "/aws/sagemaker/TrainingJobs"
    has_secondary_status = True

    def execute(self) -> None:
        job = self.record()
        self.metrics: dict[str, list[tuple[float, float]]] = {}
        self._definitions = [
            (d["Name"], re.compile(d["Regex"]))
            for d in job["AlgorithmSpecification"].get("MetricDefinitions", [])
        ]
        image = job["AlgorithmSpecification"].get("TrainingImage", "")
        reason = images.unsupported_reason(image, algorithms=True)
        if reason:
            raise JobEnded("Failed", reason)
        if job["AlgorithmSpecification"].get("TrainingInputMode", "File") == "Pipe":
            raise JobEnded(
                "Failed", "ClientError: local_aws supports the File and FastFile input modes"
            )
        hps = job.get("HyperParameters", {})
        algorithm = builtin_algorithm(job)
        if algorithm:  # its own metrics, with no MetricDefinitions needed
            defined = {d[0] for d in self._definitions}
            self._definitions += [
                (d["Name"], re.compile(d["Regex"]))
                for d in algorithm.metric_definitions()
                if d["Name"] not in defined
            ]
        elif "sagemaker_program" not in hps and not _entrypoint(job):
            raise JobEnded(
                "Failed",
                "ClientError: local_aws runs script-mode training or the "
                "AlgorithmSpecification.ContainerEntrypoint: set the sagemaker_program and "
                "sagemaker_submit_directory hyperparameters (the SageMaker SDK's framework "
                "estimators do) or a ContainerEntrypoint (its ModelTrainer does)",
            )
        try:  # where the results go must exist before anything runs, as SageMaker checks
            s3 = self.backend.client("s3")
            s3io.require_bucket(
                s3, job["OutputDataConfig"]["S3OutputPath"], field="OutputDataConfig.S3OutputPath"
            )
            if job.get("CheckpointConfig"):
                s3io.require_bucket(
                    s3, job["CheckpointConfig"]["S3Uri"], field="CheckpointConfig.S3Uri"
                )
        except s3io.InputError as exc:
            raise JobEnded("Failed", f"ClientError: {exc}") from exc
        self.interruptions = 0
        self.run_seconds = 0.0
        self.update(TrainingStartTime=now())
        while True:
            try:
                self._attempt(job)
                break
            except SpotInterruption:
                self.interruptions += 1
                self._save_checkpoints(job)
                self.transition(
                    "Interrupted",
                    "Spot capacity was reclaimed; the job restarts from its last checkpoint",
                )
                self.transition("Starting", "Launching requested ML instances")

        self.check_ended()
        self.transition("Uploading", "Uploading generated training model")
        s3 = self.backend.client("s3")
        out = f"{job['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{self.job_name}/output"
        s3io.upload_tar_gz(s3, self.sandbox / "model", f"{out}/model.tar.gz")
        s3io.upload_tar_gz(s3, self.sandbox / "output" / "data", f"{out}/output.tar.gz")
        self._save_checkpoints(job)
        self.update(ModelArtifacts={"S3ModelArtifacts": f"{out}/model.tar.gz"})

    def _attempt(self, job: dict[str, Any]) -> None:
        base = self.sandbox
        for sub in ("model", "output/data", "input/data", "input/config", "code"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        self.transition("Downloading", "Downloading input data")
        self._write_config(job)
        s3 = self.backend.client("s3")
        for channel in job.get("InputDataConfig", []):
            source = channel["DataSource"]["S3DataSource"]
            dest = base / "input" / "data" / channel["ChannelName"]
            if dest.exists():
                shutil.rmtree(dest)
            try:
                s3io.download(
                    s3, source["S3Uri"], dest, data_type=source.get("S3DataType", "S3Prefix")
                )
            except s3io.InputError as exc:
                raise JobEnded(
                    "Failed", f"ClientError: channel {channel['ChannelName']!r}: {exc}"
                ) from exc
        self._restore_checkpoints(job)
        self.check_ended()

        self.transition("Training", "Training image download completed. Training in progress.")
        stream = f"{self.job_name}/{HOST}-{int(time.time())}"
        logs = self.log_stream(stream)
        env = self.job_env(
            {
                "SAGEMAKER_BASE_DIR": str(base),
                "TRAINING_JOB_NAME": self.job_name,
                "TRAINING_JOB_ARN": job["TrainingJobArn"],
                "SM_LOG_LEVEL": "20",
                **job.get("Environment", {}),
            }
        )
        # None: forked from the warm trainer, which has the toolkit (sagemaker_training.cli.train)
        # and the built-in algorithms' libraries imported
        cmd = None
        algorithm = builtin_algorithm(job)
        if algorithm:
            pass
        elif _entrypoint(job):
            # the image's command as the request overrides it (the SDK v3's ModelTrainer
            # runs its own driver, sm_train.sh, this way)
            cmd = container_command(
                base, job["AlgorithmSpecification"], env, field="AlgorithmSpecification"
            )
        else:
            env["SAGEMAKER_TRAINING_MODULE"] = "local_aws.sagemaker.framework:main"
        started = time.monotonic()
        timeout = max_runtime(job)
        try:
            code, tail = self.run_process(
                cmd,
                env=env,
                cwd=base,
                logs=logs,
                on_line=self._parse_metrics,
                timeout=timeout,
                warm_module=algorithm.module if algorithm else None,
            )
        finally:
            self.run_seconds += time.monotonic() - started
            logs.close()
            self._publish_metrics()
        not_started = could_not_start(code, tail)
        if not_started:
            raise JobEnded("Failed", not_started)
        failure = base / "output" / "failure"
        if code != 0 and algorithm and failure.is_file():
            # the algorithm tells a ClientError (bad input) from its own failure
            text = failure.read_text(errors="replace").strip()
            if text.startswith("ClientError:"):
                raise JobEnded("Failed", text)
        if code != 0:
            raise JobEnded("Failed", failure_reason("AlgorithmError", code, tail, failure))

    def _write_config(self, job: dict[str, Any]) -> None:
        config = self.sandbox / "input" / "config"
        hps = job.get("HyperParameters", {})
        (config / "hyperparameters.json").write_text(json.dumps(hps))
        channels = {
            c["ChannelName"]: {
                "TrainingInputMode": c.get("InputMode")
                or job["AlgorithmSpecification"].get("TrainingInputMode", "File"),
                "S3DistributionType": c["DataSource"]["S3DataSource"].get(
                    "S3DataDistributionType", "FullyReplicated"
                ),
                "RecordWrapperType": c.get("RecordWrapperType", "None"),
                **({"ContentType": c["ContentType"]} if "ContentType" in c else {}),
            }
            for c in job.get("InputDataConfig", [])
        }
        (config / "inputdataconfig.json").write_text(json.dumps(channels))
        instance_type = job["ResourceConfig"].get("InstanceType", "local")
        (config / "resourceconfig.json").write_text(
            json.dumps(
                {
                    "current_host": RESOLVABLE_HOST,
                    "current_instance_type": instance_type,
                    "current_group_name": "homogeneousCluster",
                    "hosts": [RESOLVABLE_HOST],
                    "instance_groups": [
                        {
                            "instance_group_name": "homogeneousCluster",
                            "instance_type": instance_type,
                            "hosts": [RESOLVABLE_HOST],
                        }
                    ],
                    "network_interface_name": "lo",
                }
            )
        )
        (config / "trainingjobconfig.json").write_text(
            json.dumps({k: v for k, v in job.items() if not k.startswith("__")}, default=str)
        )

    # -- metrics ---------------------------------------------------------------------------
    def _parse_metrics(self, line: str) -> None:
        for name, regex in self._definitions:
            match = regex.search(line)
            if not match:
                continue
            try:
                value = float(match.group(1) if match.groups() else match.group(0))
            except (ValueError, IndexError):
                continue
            if math.isfinite(value):
                self.metrics.setdefault(name, []).append((time.time(), value))

    def _publish_metrics(self) -> None:
        data = [
            {
                "MetricName": name,
                "Value": value,
                "Timestamp": stamp,
                "Dimensions": [{"Name": "Host", "Value": f"{self.job_name}/{HOST}"}],
            }
            for name, points in self.metrics.items()
            for stamp, value in points
        ]
        put_metrics(self.backend.client("cloudwatch"), "/aws/sagemaker/TrainingJobs", data)
        self.update(
            FinalMetricDataList=[
                {"MetricName": name, "Value": points[-1][1], "Timestamp": points[-1][0]}
                for name, points in self.metrics.items()
            ]
        )

    # -- checkpoints (managed spot) --------------------------------------------------------
    def _checkpoint_dir(self, job: dict[str, Any]) -> Path:
        local = job.get("CheckpointConfig", {}).get("LocalPath", "/opt/ml/checkpoints")
        return self.backend.map_opt_ml(self.sandbox, local, field="CheckpointConfig.LocalPath")

    def _restore_checkpoints(self, job: dict[str, Any]) -> None:
        config = job.get("CheckpointConfig")
        if not config:
            return
        s3 = self.backend.client("s3")
        bucket, prefix = s3io.split_s3_uri(config["S3Uri"], field="CheckpointConfig.S3Uri")
        target = self._checkpoint_dir(job)
        target.mkdir(parents=True, exist_ok=True)
        if s3io.list_keys(s3, bucket, prefix.rstrip("/") + "/"):
            try:
                s3io.download(s3, config["S3Uri"].rstrip("/") + "/", target)
            except s3io.InputError as exc:
                raise JobEnded("Failed", f"ClientError: CheckpointConfig.S3Uri: {exc}") from exc

    def _save_checkpoints(self, job: dict[str, Any]) -> None:
        config = job.get("CheckpointConfig")
        if not config:
            return
        source = self._checkpoint_dir(job)
        if source.exists():
            s3io.upload_dir(self.backend.client("s3"), source, config["S3Uri"])

    def final_fields(self, status: str) -> dict[str, Any]:
        record = self.record()
        end = now()
        start = record.get("TrainingStartTime", record["CreationTime"])
        fields: dict[str, Any] = {"TrainingEndTime": end}
        seconds = max(1, math.ceil(end - start))
        fields["TrainingTimeInSeconds"] = seconds
        if record.get("EnableManagedSpotTraining"):
            # Spot bills only the time the job held capacity, at the spot discount.
            run = max(1, math.ceil(getattr(self, "run_seconds", seconds)))
            fields["BillableTimeInSeconds"] = max(
                1, math.ceil(run * (1 - self.backend.spot_discount))
            )
        else:
            fields["BillableTimeInSeconds"] = seconds
        return fields
