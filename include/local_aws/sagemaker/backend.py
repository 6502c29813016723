"""The SageMaker backend's shared state: records, tags, faults, running jobs, AWS clients."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from local_aws.sagemaker import api, orphans
from local_aws.sagemaker.errors import ValidationException
from local_aws.sagemaker.faults import Faults
from local_aws.sagemaker.store import Store
from local_aws.sagemaker.tags import Tags

if TYPE_CHECKING:
    from local_aws.sagemaker.jobs import Job

log = logging.getLogger(__name__)

ACCOUNT_ID = "123456789012"  # moto's default account, so ARNs agree across services
# The credentials jobs and the server itself use against local_aws (it checks none).
LOCAL_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
SERVER_STOPPED_REASON = (
    "InternalServerError: the local_aws server stopped while this job was running; "
    "start the job again under a new name"
)


class Backend:
    def __init__(
        self,
        data_dir: Path,
        endpoint_url: str,
        *,
        region: str = "us-east-1",
        spot_discount: float = 0.7,
        keep_sandboxes: bool = False,
        credentials: dict[str, str] | None = None,
    ):
        self.data_dir = Path(data_dir)
        # what local_aws's own clients and its jobs sign with (a key of its own when
        # signatures are verified)
        self.credentials = dict(credentials or LOCAL_CREDENTIALS)
        self.endpoint_url = endpoint_url
        self.region = region
        self.account_id = ACCOUNT_ID
        self.spot_discount = spot_discount
        self.keep_sandboxes = keep_sandboxes
        self.store = Store(self.data_dir / "sagemaker")
        self.tags = Tags(self.store)
        self.faults = Faults()
        self.jobs: dict[tuple[str, str], Job] = {}
        self._jobs_lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        # state owned by resource modules (e.g. running model servers), by module name
        self.extensions: dict[str, Any] = {}

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        # Before any hook starts a process of this server's (zygotes, restored endpoints):
        # the sweep would take them for the killed server's.
        reaped = orphans.reap(self.data_dir.resolve())
        if reaped:
            log.warning("killed %d processes a previous server left running", reaped)
        for hook in api.START_HOOKS:
            hook(self)

    def shutdown(self) -> None:
        self._run_hooks(api.SHUTDOWN_HOOKS)
        with self._jobs_lock:
            running = list(self.jobs.values())
        for job in running:
            # Jobs cannot outlive the server: they end Failed with a reason that says why
            # (one whose thread does not finish in time is failed at the next start).
            job.request_end("Failed", SERVER_STOPPED_REASON)
        for job in running:
            job.join(timeout=10)
        self._run_hooks(api.LAST_SHUTDOWN_HOOKS)
        # Whatever the stops above missed (a process a model or a script started in a
        # session of its own, a job whose thread did not finish) must not outlive us.
        left = orphans.reap(self.data_dir.resolve())
        if left:
            log.warning("killed %d processes still running after the stop", left)

    def _run_hooks(self, hooks: list[api.Hook]) -> None:
        for hook in hooks:
            try:
                hook(self)
            except Exception:
                log.exception("shutdown hook %s failed", hook.__name__)

    # -- naming ----------------------------------------------------------------------------
    def arn(self, resource: str, name: str) -> str:
        # SageMaker lower-cases names inside ARNs.
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:{resource}/{name.lower()}"

    # -- AWS clients against local_aws itself ----------------------------------------------
    def client(self, service: str) -> Any:
        with self._clients_lock:
            if service not in self._clients:
                self._clients[service] = boto3.session.Session().client(
                    service,
                    endpoint_url=self.endpoint_url,
                    region_name=self.region,
                    config=Config(retries={"max_attempts": 5, "mode": "standard"}),
                    **self.credentials,
                )
            return self._clients[service]

    def aws_env(self) -> dict[str, str]:
        """Environment that points a job's own boto3 (and the toolkit's) at local_aws."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.credentials["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": self.credentials["aws_secret_access_key"],
        }

    # -- sandboxes -------------------------------------------------------------------------
    def sandbox_dir(self, kind: str, name: str) -> Path:
        return self.data_dir / "sandboxes" / kind / name

    @staticmethod
    def map_opt_ml(sandbox: Path, path: str, *, field: str) -> Path:
        """Map a container path under /opt/ml/ into the job's sandbox; refuse anything else."""
        normalized = os.path.normpath(path)
        if normalized != "/opt/ml" and not normalized.startswith("/opt/ml/"):
            raise ValidationException(
                f"{field} must be a path under /opt/ml/ (got {path!r}): local_aws maps only "
                "/opt/ml/ into the job's sandbox"
            )
        return sandbox / os.path.relpath(normalized, "/opt/ml")

    # -- jobs ------------------------------------------------------------------------------
    def start_job(self, job: Job) -> None:
        with self._jobs_lock:
            self.jobs[(job.kind, job.job_name)] = job
        job.start()

    def job_finished(self, job: Job) -> None:
        with self._jobs_lock:
            self.jobs.pop((job.kind, job.job_name), None)

    def running_job(self, kind: str, name: str) -> Job | None:
        with self._jobs_lock:
            return self.jobs.get((kind, name))

    def end_job(self, kind: str, name: str, status: str, reason: str | None) -> bool:
        job = self.running_job(kind, name)
        if job is None:
            return False
        job.request_end(status, reason)
        return True


@api.on_start
def fail_jobs_left_running(backend: Backend) -> None:
    """A job that was running when the server stopped cannot resume: it ends Failed
    (whatever of it still ran was killed by ``Backend.start``)."""
    for kind, status_field in (
        ("training-jobs", "TrainingJobStatus"),
        ("processing-jobs", "ProcessingJobStatus"),
        ("transform-jobs", "TransformJobStatus"),
        ("tuning-jobs", "HyperParameterTuningJobStatus"),
    ):
        for record in backend.store.values(kind):
            if record.get(status_field) in ("InProgress", "Stopping"):
                fields: dict[str, Any] = {
                    status_field: "Failed",
                    "FailureReason": SERVER_STOPPED_REASON,
                    "LastModifiedTime": api.now(),
                }
                if "SecondaryStatus" in record:
                    fields["SecondaryStatus"] = "Failed"
                backend.store.update(kind, record["__key"], fields)
                log.warning(
                    "%s %s was running when the server stopped: Failed", kind, record["__key"]
                )
