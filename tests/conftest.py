"""Shared fixtures: one real local_aws server per test session, reached by real boto3 clients.

moto's backends are process-wide singletons, so a session has one in-process server;
tests that restart local_aws run it as a separate `local-aws serve` process instead.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Airflow reads its configuration at import: point it at a throwaway home before any test
# imports it. No examples, SQLite, and nothing from the developer's own ~/airflow.
_AIRFLOW_HOME = Path(
    os.environ.get("PYTEST_AIRFLOW_HOME") or tempfile.mkdtemp(prefix="airflow-home-")
)
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "dags")
# the project's plugin (the cost listener) is loaded as the scheduler would load it
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "plugins")
# The api-server's and this process's JWTs (HS512): unset, Airflow makes a 22-byte key, and
# PyJWT warns below 64 bytes (InsecureKeyLengthWarning); api_server below inherits this one.
os.environ.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_urlsafe(64))

from local_aws.server import LocalAWS  # noqa: E402

ROLE_ARN = "arn:aws:iam::123456789012:role/SageMakerExecution"
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


@pytest.fixture(scope="session", autouse=True)
def host_opt_ml_untouched() -> Iterator[None]:
    """Jobs, model servers and the toolkit see /opt/ml only in a namespace of their own:
    after the whole suite, the host's /opt/ml is as it was (absent, on a clean machine)."""
    from local_aws.sagemaker.jobs import HostOptMl

    watch = HostOptMl()
    yield
    assert not watch.changed(), (
        f"something wrote the host's /opt/ml during the tests: {watch.state()}"
    )


@pytest.fixture(scope="session")
def local_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAWS]:
    aws = LocalAWS(tmp_path_factory.mktemp("local-aws"), port=0).start()
    # Clients anywhere in the process (the provider's hooks included) find it by env.
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")}
    os.environ["AWS_ENDPOINT_URL"] = aws.url
    os.environ["AWS_DEFAULT_REGION"] = aws.region
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    yield aws
    listener = sys.modules.get("mlops_pipeline.cost.listener")
    if listener is not None:  # runs that ended last are still being costed against local_aws
        listener.wait_idle(timeout=60)
    aws.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB for dag.test() (about 3 s, once per session)."""
    if not (_AIRFLOW_HOME / ".migrated").exists():
        subprocess.run(
            [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
            check=True,
            capture_output=True,
            env=os.environ.copy(),
        )
        (_AIRFLOW_HOME / ".migrated").touch()
    return _AIRFLOW_HOME


def serialize_dag(dag) -> None:
    """Write a DAG built inside a test to the metadata DB, as the DAG processor would.

    dag.test() in Airflow 3 runs only DAGs it finds serialized; test-local DAGs are not
    in any bundle folder, so they are put in a bag of their own and synced.
    """
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=os.devnull, collect_dags=False)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


@pytest.fixture(scope="session")
def aws_conn(local_aws: LocalAWS, airflow_db: Path) -> str:
    """The aws_default connection, pointed at local_aws: the only thing that differs from AWS."""
    import json

    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(
        {
            "conn_type": "aws",
            "login": "local",
            "password": "local",
            "extra": {"endpoint_url": local_aws.url, "region_name": local_aws.region},
        }
    )
    return "aws_default"


@pytest.fixture(scope="session")
def s3(local_aws: LocalAWS):
    return local_aws.client("s3")


@pytest.fixture(scope="session")
def sm(local_aws: LocalAWS):
    return local_aws.client("sagemaker")


@pytest.fixture(scope="session")
def logs(local_aws: LocalAWS):
    return local_aws.client("logs")


@pytest.fixture(scope="session")
def cloudwatch(local_aws: LocalAWS):
    return local_aws.client("cloudwatch")


@pytest.fixture(scope="session")
def runtime(local_aws: LocalAWS):
    return local_aws.client("sagemaker-runtime")


@pytest.fixture
def bucket(s3) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def admin(aws: Any, path: str, body: dict[str, Any] | None = None, method: str = "POST") -> Any:
    """A local_aws admin call (``/_local_aws/...``: faults, as ``local-aws fault`` makes
    them); its JSON answer. An HTTPError when local_aws refuses it."""
    import json
    import urllib.request

    from local_aws.guard import TOKEN_HEADER, read_token

    request = urllib.request.Request(
        aws.url + path,
        data=json.dumps(body or {}).encode(),
        method=method,
        headers={"Content-Type": "application/json", TOKEN_HEADER: read_token(aws.data_dir)},
    )
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"null")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_for(describe, status_key: str, timeout: float = 120, interval: float = 0.1) -> dict:
    """Poll a Describe* call until the status leaves InProgress/Stopping/Creating/Updating."""
    deadline = time.monotonic() + timeout
    while True:
        response = describe()
        if response[status_key] not in (
            "InProgress",
            "Stopping",
            "Creating",
            "Updating",
            "SystemUpdating",
            "RollingBack",
        ):
            return response
        if time.monotonic() > deadline:
            raise TimeoutError(f"still {response[status_key]} after {timeout}s: {response}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`local-aws serve` as a real process, for restart tests."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        launcher: tuple[str, ...] = ("-m", "local_aws"),
    ):
        self.data_dir = data_dir
        self.args, self.env = args, env
        self.launcher = launcher  # what follows the interpreter, before "serve"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def start(self, timeout: float = 60) -> ServerProcess:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                *self.launcher,
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                *self.args,
            ],
            env={**os.environ, **(self.env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        for line in self.proc.stdout:
            self.output.append(line)
            if "serving on" in line:
                # keep draining, or a full pipe would block the server
                threading.Thread(target=self._drain, daemon=True).start()
                return self
            if time.monotonic() > deadline:
                break
        raise RuntimeError(f"local-aws serve did not start (exit {self.proc.poll()})")

    def stop(self, sig: int | None = None) -> None:
        import signal

        if self.proc is None:
            return
        self.proc.send_signal(sig or signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def wait_killed(self, timeout: float = 60) -> None:
        """Wait for the server to die of a crash switch (``LOCAL_AWS_JOURNAL_CRASH_AT``):
        SIGKILLed by itself, not exited or stopped."""
        import signal

        assert self.proc is not None, "the server was not started"
        assert self.proc.wait(timeout=timeout) == -signal.SIGKILL

    def client(self, service: str, config: Any = None):
        """A client of its own session (thread-safe to use beside others); ``config`` a
        botocore ``Config`` (e.g. one attempt, where a retry would blur what a kill did)."""
        import boto3

        return boto3.session.Session().client(
            service,
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=config,
        )


# api-server base URL -> the passwords file its simple auth manager generated
_PASSWORDS: dict[str, Path] = {}
API_USER = "ann"  # the api_server's one user, a viewer (the plugin's pages need no more)


def api_token(base: str) -> str:
    """A Bearer token for the api_server at ``base``, by the UI's own login route."""
    import json
    import urllib.request

    password = json.loads(_PASSWORDS[base].read_text())[API_USER]
    request = urllib.request.Request(
        f"{base}/auth/token",
        data=json.dumps({"username": API_USER, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["access_token"]


def http_get(
    url: str, headers: dict[str, str] | None = None, *, login: bool = True
) -> tuple[int, str]:
    """(status, body) of a GET; an HTTP error's status and body rather than an exception.
    To an api_server (below) it goes logged in, as the UI's pages do, unless ``login`` is
    False."""
    import urllib.error
    import urllib.request

    headers = dict(headers or {})
    base = next((b for b in _PASSWORDS if url.startswith(b + "/")), None)
    if login and base is not None and "Authorization" not in headers:
        headers["Authorization"] = f"Bearer {api_token(base)}"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@contextlib.contextmanager
def api_server(env: dict[str, str], log_path: Path, timeout: float = 180) -> Iterator[str]:
    """A real `airflow api-server` (core apps, the project's plugin loaded) on a free
    loopback port with one user, API_USER, whose password it generates (``http_get`` logs
    in with it); its base URL once it answers its health check."""
    port = free_port()
    passwords = log_path.with_name(f"passwords-{port}.json")
    env = {
        **os.environ,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{API_USER}:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__PORT": str(port),
        **env,
    }
    airflow = str(Path(sys.executable).with_name("airflow"))
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)]
            + ["--apps", "core", "--workers", "1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        _PASSWORDS[base] = passwords
        deadline = time.monotonic() + timeout
        try:
            while True:
                assert process.poll() is None, log_path.read_text()[-3000:]
                try:
                    if http_get(f"{base}/api/v2/monitor/health", login=False)[0] == 200:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, f"the api-server did not start in {timeout} s"
                time.sleep(0.5)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
