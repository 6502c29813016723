"""Read-only HTML pages of a resource, what the AWS console shows of it: the target of
the pipeline's task links offline (``/_local_aws/describe/<kind>/<name>`` and ``.../logs``).

A page shows the resource's status and failure reason, its timeline, hyperparameters,
metrics, the S3 artefacts it names, the tail of its log and its whole description. Every
value is escaped: names, hyperparameters and log lines are the user's (and the job's).
"""

from __future__ import annotations

import datetime as dt
import html
import json
from typing import Any
from urllib.parse import quote

LOG_TAIL = 50
LOG_PAGE = 5000
# the console's path segment → (CloudWatch Logs group, the streams' prefix); {name}: resource
LOGS = {
    "training-jobs": ("/aws/sagemaker/TrainingJobs", "{name}/"),
    "processing-jobs": ("/aws/sagemaker/ProcessingJobs", "{name}/"),
    "transform-jobs": ("/aws/sagemaker/TransformJobs", "{name}/"),
    "hyper-tuning-jobs": ("/aws/sagemaker/TrainingJobs", "{name}-"),  # the children's
    "endpoints": ("/aws/sagemaker/Endpoints/{name}", ""),
}
_TIMES = (
    "CreationTime",
    "TrainingStartTime",
    "ProcessingStartTime",
    "TransformStartTime",
    "TrainingEndTime",
    "ProcessingEndTime",
    "TransformEndTime",
    "HyperParameterTuningEndTime",
    "LastModifiedTime",
)
_STATUS_KEYS = (
    "TrainingJobStatus",
    "ProcessingJobStatus",
    "TransformJobStatus",
    "HyperParameterTuningJobStatus",
    "EndpointStatus",
    "ModelPackageStatus",
    "ModelApprovalStatus",
    "SecondaryStatus",
)
_STYLE = (
    "body{font-family:sans-serif;margin:1.5em;max-width:80em}table{border-collapse:collapse}"
    "td,th{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left;font-size:13px;"
    "vertical-align:top}pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:12px}"
    ".Failed,.Stopped{color:#c0392b}.Completed,.InService,.Approved{color:#1e8449}"
)


def e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _time(value: Any) -> str:
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC).isoformat(timespec="seconds")
    return str(value)


def _table(rows: list[tuple[Any, ...]], head: tuple[str, ...]) -> str:
    if not rows:
        return ""
    out = ["<table><tr>", *(f"<th>{e(h)}</th>" for h in head), "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
    return "".join(out) + "</table>"


def s3_uris(value: Any, path: str = "") -> list[tuple[str, str]]:
    """Every ``s3://`` URI in a description, with where it is (the artefacts)."""
    found: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            found += s3_uris(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += s3_uris(v, f"{path}[{i}]")
    elif isinstance(value, str) and value.startswith("s3://"):
        found.append((path, value))
    return found


def log_tail(logs: Any, segment: str, name: str, lines: int) -> list[str]:
    """The last ``lines`` lines of the resource's streams (every stream, oldest first)."""
    if segment not in LOGS:
        return []
    group, prefix = (p.format(name=name) for p in LOGS[segment])
    try:
        kwargs: dict[str, Any] = {"logGroupName": group}
        if prefix:
            kwargs["logStreamNamePrefix"] = prefix
        streams = logs.describe_log_streams(**kwargs)["logStreams"]
    except logs.exceptions.ResourceNotFoundException:
        return []
    out: list[str] = []
    for stream in sorted(streams, key=lambda s: s.get("creationTime", 0)):
        label = stream["logStreamName"].removeprefix(prefix) if len(streams) > 1 else ""
        events = logs.get_log_events(
            logGroupName=group,
            logStreamName=stream["logStreamName"],
            startFromHead=False,
            limit=lines,
        )["events"]
        out += [f"[{label}] {ev['message']}" if label else ev["message"] for ev in events]
    return out[-lines:]


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def render_resource(
    segment: str,
    name: str,
    description: dict[str, Any],
    *,
    log_lines: list[str],
    children: list[dict[str, Any]] | None = None,
) -> str:
    """The resource's page: status, timeline, hyperparameters, metrics, artefacts, log
    tail and its whole description."""
    here = f"/_local_aws/describe/{quote(segment)}/{quote(name, safe='/')}"
    statuses = [(k, description[k]) for k in _STATUS_KEYS if description.get(k)]
    head = " ".join(f"<span class='{e(v)}'>{e(v)}</span>" for _, v in statuses[:1])
    parts = [f"<h1>{e(segment.rstrip('s').replace('-', ' '))} {e(name)} {head}</h1>"]
    parts.append(_table([(k, v) for k, v in statuses], ("status", "value")))
    for key in ("FailureReason", "ExitMessage"):
        if description.get(key):
            parts.append(f"<h2>{e(key)}</h2><pre>{e(description[key])}</pre>")

    timeline = [(k, _time(description[k])) for k in _TIMES if description.get(k)]
    transitions = [
        (
            t.get("Status", ""),
            _time(t.get("StartTime", "")),
            _time(t.get("EndTime", "")),
            t.get("StatusMessage", ""),
        )
        for t in description.get("SecondaryStatusTransitions", [])
    ]
    if timeline or transitions:
        parts.append("<h2>Timeline</h2>" + _table(timeline, ("event", "time")))
        parts.append(_table(transitions, ("status", "start", "end", "message")))

    hyper = description.get("HyperParameters") or (
        description.get("TrainingJobDefinition", {}).get("StaticHyperParameters")
    )
    if hyper:
        parts.append("<h2>Hyperparameters</h2>" + _table(sorted(hyper.items()), ("name", "value")))

    metrics = [
        (m.get("MetricName"), m.get("Value"), _time(m.get("Timestamp", "")))
        for m in description.get("FinalMetricDataList", [])
    ]
    best = description.get("BestTrainingJob")
    if best:
        objective = best.get("FinalHyperParameterTuningJobObjectiveMetric", {})
        metrics.append(
            (
                f"best: {objective.get('MetricName')}",
                objective.get("Value"),
                best["TrainingJobName"],
            )
        )
    if metrics:
        parts.append("<h2>Metrics</h2>" + _table(metrics, ("metric", "value", "at / job")))
    if children:
        rows = [
            (
                c["TrainingJobName"],
                c["TrainingJobStatus"],
                c.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value", "-"),
                ", ".join(f"{k}={v}" for k, v in sorted(c.get("TunedHyperParameters", {}).items())),
            )
            for c in children
        ]
        parts.append(
            "<h2>Training jobs</h2>" + _table(rows, ("job", "status", "objective", "tuned"))
        )
    variants = [
        (v.get("VariantName"), v.get("CurrentWeight"), v.get("CurrentInstanceCount"))
        for v in description.get("ProductionVariants", [])
    ]
    if variants:
        parts.append("<h2>Variants</h2>" + _table(variants, ("variant", "weight", "instances")))

    artefacts = s3_uris(description)
    if artefacts:
        parts.append("<h2>Artefacts</h2>" + _table(artefacts, ("field", "S3 URI")))

    if segment in LOGS:
        parts.append(
            f"<h2>Log (last {LOG_TAIL} lines)</h2><p><a href='{e(here)}/logs'>whole log</a></p>"
            f"<pre>{e(chr(10).join(log_lines)) or '(no log lines yet)'}</pre>"
        )
    parts.append(
        f"<h2>Description</h2><p><a href='{e(here)}?format=json'>as JSON</a></p><details>"
        f"<summary>Describe response</summary><pre>"
        f"{e(json.dumps(description, indent=1, default=str))}</pre></details>"
    )
    return _page(f"{segment} {name}", "".join(parts))


def render_logs(segment: str, name: str, lines: list[str]) -> str:
    here = f"/_local_aws/describe/{quote(segment)}/{quote(name, safe='/')}"
    group, prefix = (p.format(name=name) for p in LOGS[segment])
    return _page(
        f"log of {name}",
        f"<p><a href='{e(here)}'>{e(segment)} {e(name)}</a></p><h1>Log of {e(name)}</h1>"
        f"<p>CloudWatch Logs group {e(group)}, streams {e(prefix or '(all)')}*; "
        f"the last {LOG_PAGE} lines</p><pre>{e(chr(10).join(lines)) or '(no log lines yet)'}</pre>",
    )
