"""Find one DAG run's SageMaker jobs and endpoints by their Airflow tags.

Every job and endpoint the DAGs create carries ``airflow_dag_id``, ``airflow_run_id`` and
``airflow_task_id`` tags (tuning children inherit their tuning job's, as on AWS). SageMaker
has no tag filter on its List* calls, so the finder lists each kind created while the run
was running (``CreationTimeAfter``/``Before``, with a margin for clock skew), reads each
candidate's tags (ListTags) and describes the run's own. The per-resource calls run on a
few threads: a run of 50 jobs is about a hundred small calls.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from mlops_pipeline.cost.model import JOB_KINDS

DAG_TAG, RUN_TAG, TASK_TAG = "airflow_dag_id", "airflow_run_id", "airflow_task_id"
SKEW = dt.timedelta(minutes=2)
# the most resources whose tags one record reads: a busy account's long run is recorded
# as incomplete rather than holding the listener's thread for minutes
MAX_CANDIDATES = 2000

# kind -> (List* operation, summaries key, ARN key, Describe* operation, name parameter)
_LISTS: dict[str, tuple[str, str, str, str, str]] = {
    "training": (
        "list_training_jobs",
        "TrainingJobSummaries",
        "TrainingJobArn",
        "describe_training_job",
        "TrainingJobName",
    ),
    "processing": (
        "list_processing_jobs",
        "ProcessingJobSummaries",
        "ProcessingJobArn",
        "describe_processing_job",
        "ProcessingJobName",
    ),
    "transform": (
        "list_transform_jobs",
        "TransformJobSummaries",
        "TransformJobArn",
        "describe_transform_job",
        "TransformJobName",
    ),
}


@dataclass(frozen=True)
class Found:
    kind: str  # training | processing | transform | endpoint | release (cost.releases)
    task_id: str
    description: Mapping[str, Any]
    config: Mapping[str, Any] | None = None  # an endpoint's current DescribeEndpointConfig


def _pages(sm: Any, operation: str, key: str, **params: Any) -> Iterator[dict[str, Any]]:
    for page in sm.get_paginator(operation).paginate(**params):
        yield from page[key]


def _tags(sm: Any, arn: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for page in sm.get_paginator("list_tags").paginate(ResourceArn=arn):
        tags.update({t["Key"]: t.get("Value", "") for t in page["Tags"]})
    return tags


def find_run(
    sm: Any,
    dag_id: str,
    run_id: str,
    start: dt.datetime,
    end: dt.datetime,
    *,
    workers: int = 8,
    max_candidates: int = MAX_CANDIDATES,
) -> tuple[list[Found], int]:
    """The run's jobs (every kind) and endpoints, each with its task id and description,
    and how many resources created in the run's span were left unexamined (over
    ``max_candidates``; 0 normally)."""
    after, before = start - SKEW, end + SKEW
    candidates: list[tuple[str, str, Callable[[], dict[str, Any]]]] = []
    for kind in JOB_KINDS:
        list_op, key, arn_key, describe_op, name_param = _LISTS[kind]
        for summary in _pages(sm, list_op, key, CreationTimeAfter=after, CreationTimeBefore=before):
            name = summary[name_param]
            candidates.append(
                (
                    kind,
                    summary[arn_key],
                    functools.partial(getattr(sm, describe_op), **{name_param: name}),
                )
            )
    # endpoints live longer than the run that created them: every endpoint is a candidate,
    # its tags say which run it belongs to
    for summary in _pages(sm, "list_endpoints", "Endpoints"):
        candidates.append(
            (
                "endpoint",
                summary["EndpointArn"],
                functools.partial(sm.describe_endpoint, EndpointName=summary["EndpointName"]),
            )
        )

    def examine(item: tuple[str, str, Callable[[], dict[str, Any]]]) -> Found | None:
        kind, arn, describe = item
        tags = _tags(sm, arn)
        if tags.get(DAG_TAG) != dag_id or tags.get(RUN_TAG) != run_id[:256]:
            return None
        description = describe()
        config = None
        if kind == "endpoint":
            config = sm.describe_endpoint_config(
                EndpointConfigName=description["EndpointConfigName"]
            )
        return Found(kind, tags.get(TASK_TAG, ""), description, config)

    skipped = max(0, len(candidates) - max_candidates)
    candidates = candidates[:max_candidates]
    if not candidates:
        return [], skipped
    try:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(candidates)))) as pool:
            results = list(pool.map(examine, candidates))
    except RuntimeError as exc:
        # a process finishing its run (``airflow dags test``) records the cost while the
        # interpreter shuts down, when no new thread may start: one at a time, then
        if "interpreter shutdown" not in str(exc):
            raise
        results = [examine(c) for c in candidates]
    return [f for f in results if f is not None], skipped


def find_releases(
    sm: Any, s3: Any, bucket: str, prefix: str, dag_id: str, run_id: str, start: dt.datetime
) -> list[Found]:
    """The canary releases this run made on endpoints that earlier runs created, each with
    the ProductionVariants of every endpoint config it used (see ``cost.releases``)."""
    from botocore.exceptions import ClientError

    from mlops_pipeline.cost.releases import records_of_run

    found = []
    for release in records_of_run(s3, bucket, prefix, dag_id, run_id, start - SKEW):
        if not release.get("baseline"):
            continue  # a first deployment: the endpoint's own tags name this run
        names = {release["candidate"]["config"], release["baseline"]["config"]}
        names.discard("")
        if release.get("canary_config"):
            names.add(release["canary_config"])
        variants: dict[str, Any] = {}
        task_id = ""
        for name in sorted(names):
            try:
                config = sm.describe_endpoint_config(EndpointConfigName=name)
            except ClientError:
                continue  # deleted since: that phase is costed as nothing, and says so below
            variants[name] = config["ProductionVariants"]
            task_id = task_id or _tags(sm, config["EndpointConfigArn"]).get(TASK_TAG, "")
        missing = sorted(names - variants.keys())
        found.append(Found("release", task_id, release, {"variants": variants, "missing": missing}))
    return found
