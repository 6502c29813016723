"""The Releases view: the plugin's FastAPI app over audit records in local_aws's S3,
mounted by Airflow's own api-server app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_pipeline.deploy.plan import parse_plan
from mlops_pipeline.deploy.release import Variant, new_release
from tests.conftest import unique

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"


@pytest.fixture
def records(s3, monkeypatch):
    bucket = unique("releases")
    s3.create_bucket(Bucket=bucket)
    monkeypatch.setenv("MLOPS_BUCKET", bucket)
    release = new_release(
        release_id="20260307-abc123",
        endpoint="card-fraud",
        candidate=Variant("v2", "m2", "arn:aws:sagemaker:us-east-1:1:model-package/g/2", "c2"),
        baseline=Variant("v1", "m1", "arn:aws:sagemaker:us-east-1:1:model-package/g/1", "c1"),
        plan=parse_plan("10%:2s,100%", metric_period_seconds=1),
        bounds={},
        canary_config="canary",
        failure_budget=0,
        now=1000.0,
    )
    release.begin_step(1, 1000.0)
    release.serving(1001.0)
    verdict = {
        "passed": False,
        "reason": "step 1 (10%): Invocation5XXErrors rate = 0.5, bound 0.01 (...)",
        "checks": [
            {
                "metric": "Invocation5XXErrors rate",
                "value": 0.5,
                "bound": 0.01,
                "passed": False,
                "detail": "...",
            }
        ],
    }
    release.judge(verdict, {"v2": {"invocations": 20, "error_rate": 0.5}}, 1004.0)
    release.finish("rolled_back", 1010.0)
    key = "model-deploy/releases/card-fraud/20260307-abc123.json"
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(release.to_json()))
    return bucket, key


def login(role: str | None) -> dict[str, str]:
    """A Bearer token from Airflow's own auth manager (the simple one, as `make up` runs it)
    for a user of that role (None: a user with no permissions)."""
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    token = init_auth_manager().generate_jwt(SimpleAuthManagerUser(username="ann", role=role))
    return {"Authorization": f"Bearer {token}"}


def test_the_view_lists_releases_with_steps_and_chart(records, s3, airflow_db):
    from fastapi.testclient import TestClient

    from mlops_pipeline.deploy.releases_view import create_app

    client = TestClient(create_app(lambda: s3), headers=login("viewer"))
    page = client.get("/")
    assert page.status_code == 200
    assert "card-fraud" in page.text and "rolled_back" in page.text
    assert "step 1: 10% — FAILED" in page.text
    assert "Invocation5XXErrors rate = 0.5 (bound 0.01)" in page.text
    assert "<svg" in page.text and "5XX rate 0.500" in page.text
    [record] = client.get("/api").json()
    assert (
        record["status"] == "rolled_back"
        and record["audit_uri"] == f"s3://{records[0]}/{records[1]}"
    )


def test_the_view_needs_the_airflow_login(records, s3, airflow_db):
    from fastapi.testclient import TestClient

    from mlops_pipeline.deploy.releases_view import create_app

    anonymous = TestClient(create_app(lambda: s3))
    for path in ("/", "/api"):
        response = anonymous.get(path)
        assert response.status_code == 401, path
        assert "card-fraud" not in response.text
    forged = TestClient(create_app(lambda: s3), headers={"Authorization": "Bearer not-a-jwt"})
    assert forged.get("/api").status_code == 403
    # logged in, but not allowed to read model_deploy's runs
    nobody = TestClient(create_app(lambda: s3), headers=login(None))
    response = nobody.get("/api")
    assert response.status_code == 403 and "model_deploy" in response.text


def test_the_plugin_is_mounted_by_the_api_server(records, aws_conn, tmp_path):
    """Airflow's api-server app (as `airflow api-server` builds it) with our plugins folder
    answers the Releases view over HTTP, in a fresh process (plugins load once)."""
    script = """
import sys
from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app
client = TestClient(create_app())
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
anonymous = client.get("/mlops/releases/api").status_code
password = SimpleAuthManager.get_passwords()["ann"]  # generated at start, as for `make up`
login = client.post("/auth/token", json={"username": "ann", "password": password})
client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
api = client.get("/mlops/releases/api")
page = client.get("/mlops/releases/")
print(anonymous, api.status_code, page.status_code, len(api.json()), "card-fraud" in page.text)
"""
    env = dict(
        os.environ,
        AIRFLOW__CORE__PLUGINS_FOLDER=str(PLUGINS),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="False",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="ann:viewer",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(tmp_path / "passwords.json"),
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "401 200 200 1 True", done.stdout[-2000:]


def test_a_first_deployment_says_so_instead_of_an_empty_steps_cell():
    from mlops_pipeline.deploy.releases_view import render

    release = new_release(
        release_id="20260307-def456",
        endpoint="card-fraud",
        candidate=Variant("v1", "m1", "arn:aws:sagemaker:us-east-1:1:model-package/g/1", "c1"),
        baseline=None,
        plan=parse_plan("10%:2s,100%", metric_period_seconds=1),
        bounds={},
        canary_config="first",
        failure_budget=0,
        now=1000.0,
    )
    release.finish("created", 1005.0)
    page = render([release.to_json()])
    assert "first deployment: the endpoint was created serving the candidate alone" in page
    assert "<ul></ul>" not in page
