"""What an alert says, pure: built from a task's context or from figures, rendered as short
Slack blocks and a plain-text fallback. Every free text passes the secrets masker."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_DETAILS = 8
MAX_TEXT = 300  # Slack truncates long sections; an alert points at the log for the rest
# DataQualityOperator's report lines (quality.severity.render) that name a failed check
_DQ_PREFIXES = ("ERROR", "INPUT")


@dataclass(frozen=True)
class Alert:
    kind: str  # task_failure | data_quality | cost | ...
    title: str
    reason: str
    facts: Mapping[str, str] = field(default_factory=dict)  # DAG, Task, Logical date, Try
    details: Sequence[str] = ()  # failed expectations, figures, ...
    link: str | None = None  # the task's log

    def text(self) -> str:
        """The plain-text fallback (notifications, the log, the alerts file)."""
        facts = ", ".join(f"{k}: {v}" for k, v in self.facts.items())
        lines = [self.title, facts, f"Reason: {self.reason}"]
        lines += [f"- {d}" for d in self.details]
        if self.link:
            lines.append(f"Log: {self.link}")
        return "\n".join(line for line in lines if line)

    def blocks(self) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": self.title[:150]}},
        ]
        if self.facts:
            blocks.append(
                {
                    "type": "section",
                    "fields": [
                        {"type": "mrkdwn", "text": f"*{k}*\n{_escape(v)}"}
                        for k, v in list(self.facts.items())[:10]
                    ],
                }
            )
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*Reason*\n{_escape(self.reason)}"},
            }
        )
        if self.details:
            listed = "\n".join(f"• {_escape(d)}" for d in self.details)
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": listed[:2900]}})
        if self.link:
            blocks.append(
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "text": {"type": "plain_text", "text": "Open the log"},
                            "url": self.link,
                        }
                    ],
                }
            )
        return blocks

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title,
            "reason": self.reason,
            "facts": dict(self.facts),
            "details": list(self.details),
            "link": self.link,
        }


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _short(text: str, limit: int = MAX_TEXT) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def first_line(error: BaseException | str | None) -> str:
    text = str(error) if error is not None else ""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return type(error).__name__ if isinstance(error, BaseException) else "(no reason given)"


def data_quality_details(error: BaseException | str | None) -> list[str]:
    """The failed expectations with their observed values, from a data-quality gate's
    report (the lines it marks ERROR or INPUT); [] for any other failure."""
    text = str(error or "")
    if not text.startswith("Data quality gate FAILED"):
        return []
    lines = [ln.strip() for ln in text.splitlines()[1:]]
    found = []
    for line in lines:
        label, _, rest = line.partition(" ")
        if label in _DQ_PREFIXES and rest.strip():
            found.append(rest.strip())
    more = [ln for ln in lines if ln.startswith("... and ")]
    return found[:MAX_DETAILS] + more[:1]


def failure_alert(context: Mapping[str, Any], redact: Callable[[str], str] = str) -> Alert:
    """The alert for a failed task, from its Airflow context."""
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    map_index = getattr(ti, "map_index", -1)
    task = task_id if map_index is None or map_index < 0 else f"{task_id}[{map_index}]"
    logical = context.get("logical_date")
    if isinstance(logical, dt.datetime):
        when = logical.isoformat()
    else:
        when = str(logical) if logical else f"none (run {getattr(ti, 'run_id', '?')})"
    error = context.get("exception")
    details = [_short(redact(d), 200) for d in data_quality_details(error)]
    facts = {
        "DAG": str(dag_id),
        "Task": task,
        "Logical date": when,
        "Try": str(getattr(ti, "try_number", "?")),
    }
    try:
        link = getattr(ti, "log_url", None)
    except Exception:  # the URL needs configuration; an alert without it still goes out
        link = None
    return Alert(
        kind="data_quality" if details else "task_failure",
        title=f"{dag_id}.{task} failed",
        reason=_short(redact(first_line(error))),
        facts=facts,
        details=details,
        link=link,
    )


def rollback_alert(
    dag_id: str,
    endpoint: str,
    step: str,
    metrics: Mapping[str, Any],
    reason: str,
    *,
    task_id: str = "canary_release",
    link: str | None = None,
) -> Alert:
    """A canary release rolled back: at which step, and the metrics that decided it
    (``{"canary error rate": 0.12, "baseline error rate": 0.01, ...}``)."""
    return Alert(
        kind="rollback",
        title=f"{dag_id}: canary on {endpoint} rolled back",
        reason=_short(reason),
        facts={"DAG": dag_id, "Task": task_id, "Endpoint": endpoint, "Step": step},
        details=[
            f"{name}: {_figure(value)}" for name, value in list(metrics.items())[:MAX_DETAILS]
        ],
        link=link,
    )


def drift_alert(
    dag_id: str,
    partition: str,
    features: Sequence[tuple[str, float]],
    threshold: float,
    *,
    statistic: str = "drift score",
    task_id: str = "detect_drift",
    link: str | None = None,
) -> Alert:
    """Scored data drifted from the training baseline: the top features by their score."""
    top = sorted(features, key=lambda f: -f[1])
    drifted = [f for f in top if f[1] > threshold]
    return Alert(
        kind="drift",
        title=f"{dag_id}: data drift on {partition}",
        reason=(
            f"{len(drifted)} feature(s) above the {statistic} threshold {_figure(threshold)}"
            + (f"; top: {drifted[0][0]}" if drifted else "")
        ),
        facts={"DAG": dag_id, "Task": task_id, "Partition": partition},
        details=[f"{name}: {statistic} {_figure(score)}" for name, score in top[:5]],
        link=link,
    )


def _figure(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
