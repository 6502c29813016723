"""docker-compose.yaml, Dockerfile and .env.example, checked without a Docker engine (none
runs on these machines): the file parses, it has every service of Airflow 3's official
Celery topology, one image from this repository runs every Airflow component with commands
Airflow has, and the environment names only settings the code reads."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_pipeline.config import REQUIRED_ON_AWS, Settings

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL = {
    "postgres",
    "redis",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
}
COMMANDS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-worker": "celery worker",
    "airflow-triggerer": "triggerer",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def test_every_service_of_the_official_topology_with_a_healthcheck(compose):
    services = compose["services"]
    assert OFFICIAL <= set(services)
    for name in OFFICIAL - {"airflow-init"}:
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
        assert services[name].get("restart") == "always", name
    # Airflow starts once the database and the broker are healthy and init has migrated
    for name in COMMANDS:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["airflow-init"]["condition"] == "service_completed_successfully"


def test_one_image_of_this_repository_runs_airflows_own_commands(compose):
    from airflow.cli.cli_config import core_commands

    services = compose["services"]
    images = {services[n]["image"] for n in COMMANDS} | {services["airflow-init"]["image"]}
    assert len(images) == 1 and "airflow-sagemaker-mlops" in images.pop()
    assert all(services[n]["build"] == "." for n in COMMANDS)
    known = {c.name for c in core_commands}
    for name, command in COMMANDS.items():
        assert services[name]["command"] == command
        assert command.split()[0] in known | {"celery"}, command
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    # tasks reach the api-server by its service name, on the port it listens on
    assert (
        env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    )
    assert services["airflow-apiserver"]["ports"] == ["127.0.0.1:8080:8080"]  # loopback only


def test_the_environment_names_only_settings_the_code_reads(compose):
    readable = {f"MLOPS_{f.name.upper()}" for f in fields(Settings)} | {"MLOPS_PROFILE"}
    env = compose["services"]["airflow-worker"]["environment"]
    named = {k for k in env if k.startswith("MLOPS_")}
    example = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert named <= readable, named - readable
    assert {k for k in example if k.startswith("MLOPS_")} <= readable
    # what the aws profile requires is there to fill in
    assert {f"MLOPS_{name.upper()}" for name in REQUIRED_ON_AWS} <= named & example


def test_no_credentials_in_files():
    secret = re.compile(r"AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN)\s*[:=]\s*\S")
    for name in ("docker-compose.yaml", ".env.example", "Dockerfile"):
        assert not secret.search((ROOT / name).read_text()), name


def test_the_image_is_the_pinned_airflow_on_python_311():
    pinned = re.search(
        r"^apache-airflow==(\S+)$", (ROOT / "requirements.txt").read_text(), re.MULTILINE
    )
    assert pinned is not None
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"FROM apache/airflow:{pinned.group(1)}-python3.11" in dockerfile
    assert "requirements.txt" in dockerfile


def test_local_aws_is_an_optional_service_on_the_compose_network_only(compose):
    service = compose["services"]["local-aws"]
    assert service["profiles"] == ["local"]
    assert "ports" not in service  # nothing published: reachable from the stack alone
    assert service["entrypoint"] == ["local-aws"]
    assert "--allow-non-loopback" in service["command"]


def _pins(name: str) -> dict[str, str]:
    text = (ROOT / name).read_text()
    return {
        k.lower(): v
        for k, v in re.findall(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==(\S+)", text, re.M)
    }


def test_the_image_carries_runtime_pins_only_and_development_shares_them():
    runtime, development = _pins("requirements.txt"), _pins("requirements-dev.txt")
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "requirements-dev" not in dockerfile
    for tool in ("pytest", "pytest-timeout", "ruff", "mypy", "sagemaker", "playwright"):
        assert tool not in runtime, f"{tool} is a development tool: requirements-dev.in"
    for tool in ("pytest", "ruff", "mypy"):
        assert tool in development
    # one environment: a package both need has one version
    shared = runtime.keys() & development.keys()
    assert {p: (runtime[p], development[p]) for p in shared if runtime[p] != development[p]} == {}
    # what Airflow loads at run time is pinned in the file we ask from, like Airflow itself
    asked = (ROOT / "requirements.in").read_text()
    for provider in ("amazon", "slack", "standard"):
        assert re.search(rf"^apache-airflow-providers-{provider}(\[[^\]]*\])?==", asked, re.M)
