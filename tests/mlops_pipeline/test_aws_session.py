"""The shared-loader session factory, through the provider's own [aws] session_factory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = """
    import json
    from airflow.providers.amazon.aws.hooks import base_aws
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

    a, b = SageMakerHook().conn, SageMakerHook().conn
    s3 = S3Hook().get_conn()
    s3.create_bucket(Bucket="shared-loader")
    print(json.dumps({
        "factory": base_aws.SessionFactory.__name__,
        "same_loader": a._loader is b._loader is s3._loader,
        "separate_clients": a is not b,
        "listed": len(b.list_processing_jobs()["ProcessingJobSummaries"]) >= 0,
        "buckets": [x["Name"] for x in s3.list_buckets()["Buckets"]],
    }))
"""


def run(env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("shared", [True, False])
def test_hooks_work_against_local_aws_with_and_without_the_factory(aws_conn, shared):
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__AWS__SESSION_FACTORY"}
    if shared:
        env["AIRFLOW__AWS__SESSION_FACTORY"] = (
            "mlops_pipeline.aws_session.SharedLoaderSessionFactory"
        )
    out = run(env)
    assert out["factory"] == ("SharedLoaderSessionFactory" if shared else "BaseSessionFactory")
    assert out["separate_clients"] and out["listed"]
    assert "shared-loader" in out["buckets"]
    # the point of it: the second SageMaker client does not parse the service model again
    assert out["same_loader"] is shared
