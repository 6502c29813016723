"""The validation ProcessingJob: its S3 layout, uploaded files and CreateProcessingJob request.

One run of a gate lives under ``s3://<bucket>/<prefix>/runs/<dataset>/dt=<date>/<job>/``:
``code/`` (validate.py and its helpers), ``config/`` (suite.json, params.json) and
``output/`` (result.json, metrics.json). Every run has its own job name, so a rerun never
overwrites an earlier run's evidence.

Its Data Docs page goes to its dataset's one site, ``s3://<bucket>/<prefix>/data_docs/
<dataset>/validations/dt=<date>/<job>.html``, which accumulates the runs; the plugin serves
the site with its index and static files (``mlops_pipeline.quality.docs_view``).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from mlops_pipeline.config import Settings
from mlops_pipeline.jobs import s3_input, s3_output, secure_processing

CODE_FILES = ("validate.py", "dq_data.py", "dq_gx.py")
CONTAINERS = Path(__file__).resolve().parents[1] / "containers"
PROCESSING = "/opt/ml/processing"
MAX_NAME = 63


def job_name(dataset: str, partition: str, *, run_key: str, try_number: int = 1) -> str:
    """``dq-<dataset>-<yyyymmdd>-<hash of run_key>-t<try>``, at most 63 characters.

    ``run_key`` (dag_id/run_id/task_id) makes names unique across DAGs and runs; the try
    number keeps a retry from colliding with the job of the failed try.
    """
    digest = hashlib.sha1(run_key.encode()).hexdigest()[:8]
    day = partition[:10].replace("-", "")
    tail = f"-{day}-{digest}-t{try_number}"
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", dataset).strip("-") or "data"
    return f"dq-{slug[: MAX_NAME - 3 - len(tail)]}{tail}".replace("--", "-")


def run_uri(settings: Settings, dataset: str, partition: str, name: str) -> str:
    return settings.s3_uri(settings.quality_prefix, "runs", dataset, f"dt={partition[:10]}", name)


def docs_site_uri(settings: Settings, dataset: str) -> str:
    return settings.s3_uri(settings.quality_prefix, "data_docs", dataset)


def docs_page(partition: str, name: str) -> str:
    """A run's page, relative to its dataset's site."""
    return f"validations/dt={partition[:10]}/{name}.html"


def docs_params(settings: Settings, dataset: str, partition: str, name: str) -> dict[str, str]:
    """What validate.py needs to name its page and say where it is (the job's params)."""
    site = docs_site_uri(settings, dataset)
    return {
        "docs_name": f"{name}.html",
        "docs_uri": f"{site}/{docs_page(partition, name)}",
        "docs_site_uri": f"{site}/",
    }


def history_prefix(settings: Settings) -> str:
    return f"{settings.quality_prefix.strip('/')}/history"


def build_request(
    *,
    name: str,
    settings: Settings,
    input_uri: str,
    run: str,
    tags: list[dict[str, str]] | None = None,
    max_runtime_seconds: int = 3600,
    volume_gb: int = 30,
    instance_type: str | None = None,
    docs_uri: str | None = None,
) -> dict[str, Any]:
    """CreateProcessingJob for validate.py over ``input_uri`` (an S3 prefix); with
    ``docs_uri`` (the prefix of the run's page in its dataset's site) the page goes there."""
    run = run.rstrip("/")
    request: dict[str, Any] = {
        "ProcessingJobName": name,
        "RoleArn": settings.role_arn,
        "AppSpecification": {
            "ImageUri": settings.quality_image,
            "ContainerEntrypoint": ["python3", f"{PROCESSING}/input/code/validate.py"],
            "ContainerArguments": [
                "--data-dir",
                f"{PROCESSING}/input/data",
                "--config-dir",
                f"{PROCESSING}/input/config",
                "--output-dir",
                f"{PROCESSING}/output",
                "--gx-requirement",
                settings.quality_gx_requirement,
            ],
        },
        "ProcessingInputs": [
            s3_input("data", input_uri, f"{PROCESSING}/input/data"),
            s3_input("code", f"{run}/code/", f"{PROCESSING}/input/code"),
            s3_input("config", f"{run}/config/", f"{PROCESSING}/input/config"),
        ],
        "ProcessingOutputConfig": {
            "Outputs": [s3_output("result", f"{PROCESSING}/output", f"{run}/output")]
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": instance_type or settings.processing_instance_type,
                "VolumeSizeInGB": volume_gb,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_seconds},
        # no usage statistics from inside jobs, no progress bars in their logs
        "Environment": {"GX_ANALYTICS_ENABLED": "false", "TQDM_DISABLE": "1"},
    }
    if docs_uri:
        request["AppSpecification"]["ContainerArguments"] += ["--docs-dir", f"{PROCESSING}/docs"]
        request["ProcessingOutputConfig"]["Outputs"].append(
            s3_output("docs", f"{PROCESSING}/docs", docs_uri)
        )
    secure_processing(request, settings)
    if tags:  # naming.airflow_tags(), as every job of the pipeline carries
        request["Tags"] = tags
    return request


def upload_job_files(s3: Any, run: str, *, suite: dict[str, Any], params: dict[str, Any]) -> None:
    """Put the job's code (from containers/) and its config under ``run``."""
    bucket, prefix = split_s3_uri(run.rstrip("/") + "/")
    for file in CODE_FILES:
        s3.put_object(
            Bucket=bucket, Key=f"{prefix}code/{file}", Body=(CONTAINERS / file).read_bytes()
        )
    for file, content in (("suite.json", suite), ("params.json", params)):
        s3.put_object(
            Bucket=bucket,
            Key=f"{prefix}config/{file}",
            Body=json.dumps(content, indent=1).encode(),
            ContentType="application/json",
        )


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key
