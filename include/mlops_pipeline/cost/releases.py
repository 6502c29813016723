"""Hosting during a canary release, from the release's audit record.

A release changes an endpoint that an earlier run created, so the endpoint's tags name that
earlier run and the tag search of ``finder`` does not see it; and SageMaker keeps no
history of an endpoint's configs, so the endpoint's description alone cannot tell that two
variants served side by side for a while. The audit record that model_deploy writes
(``<deploy_prefix>/releases/<endpoint>/<id>.json``) has both: which run made the release,
and when each endpoint config took over. This module turns it into config phases that
``model.config_spans`` costs like any endpoint:

- the baseline alone, until the canary config (both variants) was asked for;
- both variants (stepped mode: the canary config; native blue/green: both fleets at once)
  until the release ended;
- then the candidate alone (promoted) or the baseline alone (rolled back).

A first deployment (no baseline) creates the endpoint in the run: its tags find it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

Variants = Sequence[Mapping[str, Any]]
Phase = tuple[dt.datetime, str, Variants]


def _at(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC)


def phases(
    release: Mapping[str, Any], configs: Mapping[str, Variants], task_id: str
) -> list[Phase]:
    """``[(applied at, task id, ProductionVariants), ...]`` of the endpoint during the
    release; ``configs``: endpoint config name -> its ProductionVariants (a config deleted
    since is missing, and its phase holds no variant)."""

    def variants_of(name: str) -> Variants:
        return configs.get(name, [])

    baseline, candidate = release.get("baseline"), release["candidate"]
    if not baseline or release.get("status") == "unchanged":
        return []
    start = _at(release["started_at"])
    out: list[Phase] = [(start, task_id, variants_of(baseline["config"]))]
    steps = release.get("steps") or []
    if release.get("mode") == "native":
        both = [*variants_of(baseline["config"]), *variants_of(candidate["config"])]
        out.append((start, task_id, both))
    elif steps and release.get("canary_config"):
        out.append((_at(steps[0]["requested_at"]), task_id, variants_of(release["canary_config"])))
    else:
        return out  # nothing moved yet
    ended = release.get("ended_at")
    if ended is not None:
        final = {"promoted": candidate, "rolled_back": baseline}.get(release.get("status", ""))
        if final is not None:
            out.append((_at(ended), task_id, variants_of(final["config"])))
    # the first phase only starts the window: a phase at the same instant replaces it
    return [p for i, p in enumerate(out) if i + 1 >= len(out) or out[i + 1][0] > p[0]]


def records_of_run(
    s3: Any, bucket: str, prefix: str, dag_id: str, run_id: str, since: dt.datetime
) -> Iterator[dict[str, Any]]:
    """The release records this run wrote (last written at or after ``since``)."""
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=f"{prefix.strip('/')}/releases/"):
        for item in page.get("Contents", []):
            if not item["Key"].endswith(".json") or item["LastModified"] < since:
                continue
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            record = json.loads(body)
            if record.get("dag_id") == dag_id and record.get("run_id") == run_id:
                yield record
