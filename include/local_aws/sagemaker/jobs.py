"""What every SageMaker job shares: status bookkeeping, a sandbox, a watched subprocess.

A job is a thread in the server process. Its user code runs in a subprocess (its own
process group, so a stop kills the whole tree) whose output streams to CloudWatch Logs, in
a mount namespace of its own where the job's sandbox is /opt/ml (:mod:`private_opt_ml`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local_aws.sagemaker import private_opt_ml
from local_aws.sagemaker.api import now
from local_aws.sagemaker.cloudwatch import LogStream
from local_aws.sagemaker.orphans import DATA_DIR_MARK
from local_aws.sagemaker.warm import TOOLKIT, WarmProcess

if TYPE_CHECKING:
    from local_aws.sagemaker.backend import Backend

log = logging.getLogger(__name__)

TERMINAL = frozenset({"Completed", "Failed", "Stopped"})
FAILURE_REASON_MAX = 1024  # the API's limit on FailureReason
DEFAULT_MAX_RUNTIME = 86_400  # SageMaker's limit when a request sets none: one day
# SIGTERM, then SIGKILL for what is left: SageMaker waits 120 s; local jobs stop sooner.
STOP_GRACE_SECONDS = 5.0


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def max_runtime(job: dict[str, Any]) -> float:
    """How long the job may run: its StoppingCondition, else SageMaker's default."""
    return float(
        (job.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds") or DEFAULT_MAX_RUNTIME
    )


class JobEnded(Exception):
    """Ends a job early with a terminal status and reason (stop, failure, fault)."""

    def __init__(self, status: str, reason: str | None, secondary: str | None = None):
        super().__init__(reason or status)
        self.status, self.reason, self.secondary = status, reason, secondary


class SpotInterruption(Exception):
    """The (simulated) spot capacity was reclaimed while the job ran."""


class Job(threading.Thread):
    kind = ""  # store kind, e.g. "training-jobs"
    name_field = ""  # e.g. "TrainingJobName"
    status_field = ""  # e.g. "TrainingJobStatus"
    log_group = ""  # e.g. "/aws/sagemaker/TrainingJobs"
    has_secondary_status = False

    def __init__(self, backend: Backend, name: str):
        super().__init__(name=f"{self.kind}:{name}", daemon=True)
        self.backend = backend
        self.job_name = name
        self._proc: subprocess.Popen[str] | WarmProcess | None = None
        self._proc_lock = threading.Lock()
        self._end_request: JobEnded | None = None
        self._spot_interrupt = threading.Event()
        self.sandbox = backend.sandbox_dir(self.kind, name)

    # -- state -----------------------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        record = self.backend.store.get(self.kind, self.job_name)
        assert record is not None
        return record

    def update(self, **fields: Any) -> dict[str, Any]:
        fields.setdefault("LastModifiedTime", now())
        return self.backend.store.update(self.kind, self.job_name, fields)

    def transition(self, status: str, message: str) -> None:
        """Record a SecondaryStatus transition (training and tuning jobs show these)."""
        stamp = now()

        def change(record: dict[str, Any]) -> None:
            transitions = record.setdefault("SecondaryStatusTransitions", [])
            if transitions and "EndTime" not in transitions[-1]:
                transitions[-1]["EndTime"] = stamp
            transitions.append({"Status": status, "StartTime": stamp, "StatusMessage": message})
            record["SecondaryStatus"] = status
            record["LastModifiedTime"] = stamp

        self.backend.store.update(self.kind, self.job_name, change)

    # -- lifecycle ---------------------------------------------------------------------------
    def run(self) -> None:
        started = time.monotonic()
        try:
            if self.sandbox.exists():
                shutil.rmtree(self.sandbox)
            self.sandbox.mkdir(parents=True, mode=0o700)  # job data and config: ours alone
            self.execute()
            self.check_ended()
            self.finish("Completed", None)
        except JobEnded as end:
            self.finish(end.status, end.reason, end.secondary)
        except Exception as exc:  # anything unexpected is the job's failure, not the server's
            log.exception("%s %s failed", self.kind, self.job_name)
            self.finish("Failed", f"InternalServerError: {type(exc).__name__}: {exc}")
        finally:
            log.info(
                "%s %s ended after %.2fs", self.kind, self.job_name, time.monotonic() - started
            )
            self.backend.job_finished(self)

    def execute(self) -> None:
        raise NotImplementedError

    def finish(self, status: str, reason: str | None, secondary: str | None = None) -> None:
        fields: dict[str, Any] = {self.status_field: status}
        if reason:
            fields["FailureReason"] = reason[:FAILURE_REASON_MAX]
        fields.update(self.final_fields(status))
        self.update(**fields)
        if self.has_secondary_status:
            messages = {
                "Completed": "Job completed",
                "Failed": (reason or "Job failed")[:200],
                "Stopped": "Job stopped",
            }
            self.transition(secondary or status, messages[status])
            # the terminal transition has no duration
            self.backend.store.update(
                self.kind,
                self.job_name,
                lambda r: r["SecondaryStatusTransitions"][-1].__setitem__(
                    "EndTime", r["SecondaryStatusTransitions"][-1]["StartTime"]
                ),
            )
        if status == "Completed" and not self.backend.keep_sandboxes:
            shutil.rmtree(self.sandbox, ignore_errors=True)

    def final_fields(self, status: str) -> dict[str, Any]:
        """Fields a subclass sets when the job ends (end time, billing, artifacts)."""
        return {}

    # -- control from other threads -----------------------------------------------------------
    def request_end(self, status: str, reason: str | None, secondary: str | None = None) -> None:
        self._end_request = JobEnded(status, reason, secondary)
        self._kill()

    def interrupt_spot(self) -> None:
        self._spot_interrupt.set()
        self._kill()

    def check_ended(self) -> None:
        if self._end_request is not None:
            raise self._end_request

    def _kill(self) -> None:
        with self._proc_lock:
            proc = self._proc
        if proc is not None:
            # in the background: Stop* answers at once, as on AWS
            threading.Thread(
                target=stop_group,
                args=(proc,),
                kwargs={"timeout": STOP_GRACE_SECONDS},
                name=f"stop:{self.job_name}",
                daemon=True,
            ).start()

    # -- the user's process -------------------------------------------------------------------
    def log_stream(self, stream: str) -> LogStream:
        return LogStream(self.backend.client("logs"), self.log_group, stream)

    def run_process(
        self,
        cmd: list[str] | None,
        *,
        env: dict[str, str],
        cwd: Path,
        logs: LogStream,
        on_line: Callable[[str], None] | None = None,
        timeout: float | None = None,
        warm_module: str | None = None,
    ) -> tuple[int, list[str]]:
        """Run ``cmd`` (None: forked from the warm trainer: the training toolkit, or the
        ``main()`` of ``warm_module``), stream its output.

        Returns the exit code and the last lines of output.
        """
        self.check_ended()
        tail: deque[str] = deque(maxlen=30)
        proc: subprocess.Popen[str] | WarmProcess
        host_opt_ml = HostOptMl.watch()
        if cmd is None:
            proc = WarmProcess(
                env,
                cwd,
                sandbox=self.sandbox,
                module=warm_module,
                via=TOOLKIT.get(self.backend.data_dir.resolve()),
            )
        else:
            proc = spawn(cmd, cwd=cwd, env=env, sandbox=self.sandbox)
        with self._proc_lock:
            self._proc = proc
        if self._end_request is not None or self._spot_interrupt.is_set():
            self._kill()  # a stop that arrived while the process was starting
        timer = None
        if timeout:
            timer = threading.Timer(timeout, self._runtime_exceeded)
            timer.daemon = True
            timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                logs.write(line)
                tail.append(line.rstrip("\n"))
                if on_line:
                    on_line(line)
            code = proc.wait()
            if self._end_request is not None or self._spot_interrupt.is_set():
                # stopped: the job ends once the last process of its group has (the stop
                # thread SIGKILLs what ignores SIGTERM)
                wait_until(lambda: not group_alive(proc.pid), STOP_GRACE_SECONDS + 5)
        finally:
            if timer:
                timer.cancel()
            with self._proc_lock:
                self._proc = None
        if self._spot_interrupt.is_set():
            self._spot_interrupt.clear()
            raise SpotInterruption()
        self.check_ended()
        if host_opt_ml is not None and host_opt_ml.changed():
            raise JobEnded(
                "Failed",
                "ClientError: the job wrote to /opt/ml on the host: local_aws could not give it "
                f"a private /opt/ml here ({isolation_unavailable()}); use the paths in the SM_* "
                "and SAGEMAKER_BASE_DIR environment variables, or run local_aws where Linux "
                "mount namespaces are allowed",
            )
        return code, list(tail)

    def _runtime_exceeded(self) -> None:
        self.request_end(
            "Stopped" if self.has_secondary_status else "Failed",
            "The job exceeded its StoppingCondition.MaxRuntimeInSeconds and was stopped",
            "MaxRuntimeExceeded",
        )

    def job_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of user code: the machine's basics plus AWS pointed at local_aws."""
        return {**base_env(self.backend), **(extra or {})}


def request_stop(backend: Backend, job: type[Job], name: str) -> None:
    """Stop*: an InProgress job turns Stopping and its thread ends it Stopped; a job that has
    ended already keeps its status."""
    with backend.store.lock:
        # check-then-set under the lock, so a job finishing meanwhile keeps its own status
        record = backend.store.get(job.kind, name)
        if record is None or record[job.status_field] != "InProgress":
            return
        backend.store.update(
            job.kind, name, {job.status_field: "Stopping", "LastModifiedTime": now()}
        )
    backend.end_job(job.kind, name, "Stopped", None)


# What a job takes from the server's environment: the machine's basics, never the rest (a
# container on SageMaker sees its own Environment, not the caller's secrets).
_PASSED_ENV = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM"}
    | {"TMPDIR", "TEMP", "TMP", "LD_LIBRARY_PATH", "VIRTUAL_ENV", "PYTHONPATH"}
    | {"SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "NO_PROXY", "no_proxy"}
    | {"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"}
)
# locale, BLAS/OpenMP tuning the machine needs (OPENBLAS_CORETYPE on some CPUs), pip's index
_PASSED_ENV_PREFIXES = ("LC_", "OPENBLAS_", "OMP_", "MKL_", "PIP_", "UV_")


def base_env(backend: Backend) -> dict[str, str]:
    """The machine's basics plus AWS pointed at local_aws, as a framework container sees it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k in _PASSED_ENV or k.startswith(_PASSED_ENV_PREFIXES)
    }
    env.update(backend.aws_env())
    env["PYTHONUNBUFFERED"] = "1"
    env[DATA_DIR_MARK] = str(backend.data_dir.resolve())  # found by the next server if orphaned
    # User code runs on this interpreter, like a framework image's python3.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


# -- processes of user code (jobs and model servers) -----------------------------------------
def spawn(
    cmd: list[str], *, cwd: Path, env: dict[str, str], sandbox: Path | None = None
) -> subprocess.Popen[str]:
    """Start ``cmd`` with its output as text lines on ``stdout`` (stderr merged).

    With a ``sandbox``, the process sees that directory at /opt/ml and no other job's.
    """
    if sandbox is not None:
        cmd = in_private_opt_ml(sandbox, cmd)
    return subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        bufsize=1,
        start_new_session=True,  # its own process group: a stop kills the whole tree
    )


def in_private_opt_ml(sandbox: Path, cmd: list[str]) -> list[str]:
    """``cmd`` run through the launcher that makes ``sandbox`` its /opt/ml (then execs it)."""
    return [sys.executable, "-I", "-S", private_opt_ml.__file__, str(sandbox), *cmd]


_isolation: list[str | None] = []  # the probe's answer, once per server process
_isolation_lock = threading.Lock()


def isolation_unavailable() -> str | None:
    """None when job processes get a private /opt/ml here, else the reason they cannot."""
    with _isolation_lock:
        if not _isolation:
            with tempfile.TemporaryDirectory(prefix="opt-ml-probe-") as tmp:
                Path(tmp, "probe").touch()
                probe = subprocess.run(
                    in_private_opt_ml(Path(tmp), ["/bin/sh", "-c", "test -e /opt/ml/probe"]),
                    capture_output=True,
                    text=True,
                )
            notice = probe.stdout.strip() or probe.stderr.strip()
            _isolation.append(
                None if probe.returncode == 0 else notice or f"exit code {probe.returncode}"
            )
            if _isolation[0]:
                log.warning("job processes share the host's /opt/ml: %s", _isolation[0])
        return _isolation[0]


class HostOptMl:
    """What the host's /opt/ml holds, to tell whether a job wrote there (no isolation only)."""

    def __init__(self) -> None:
        self.before = self.state()

    @classmethod
    def watch(cls) -> HostOptMl | None:
        return None if isolation_unavailable() is None else cls()

    @staticmethod
    def state() -> list[tuple[str, int, int]] | None:
        root = Path(private_opt_ml.OPT_ML)
        if not root.exists():
            return None
        found = []
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                path = os.path.join(folder, name)
                with contextlib.suppress(OSError):
                    st = os.lstat(path)
                    found.append((path, st.st_mtime_ns, st.st_size))
        return sorted(found)

    def changed(self) -> bool:
        return self.state() != self.before


def signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        # not (yet) a group leader, or already gone
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(proc: subprocess.Popen[str] | WarmProcess, *, timeout: float) -> None:
    """SIGTERM the process's group; SIGKILL what of it is left after ``timeout``.

    The whole group, not only its leader: the toolkit exits on SIGTERM at once, while the
    user's script it started may ignore the signal and would run on.
    """
    deadline = time.monotonic() + timeout
    signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if group_alive(proc.pid):
        signal_group(proc.pid, signal.SIGKILL)


def failure_reason(prefix: str, code: int, tail: list[str], failure_file: Path | None) -> str:
    """SageMaker's FailureReason: the container's failure file, else the exit code and output."""
    if failure_file is not None and failure_file.exists():
        text = failure_file.read_text(errors="replace").strip()
        if text:
            return f"{prefix}: {text}"
    last = "\n".join(tail[-10:])
    return f"{prefix}: ExitCode {code}\n{last}"
