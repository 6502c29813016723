"""The release record: every step of a canary release (weights, metrics, verdict, times),
and what to do next, as pure functions of it.

The record is the release's memory. The operator writes it to S3 after every change it
makes, so a release that is interrupted (a worker or triggerer restart, a retried task)
reads it back and goes on from where it stopped: never again from step 1, and never
promoting a step that was not judged.

Status, in order: ``shifting`` (the step's weights are asked for; the endpoint is
updating) → ``baking`` (the step serves until ``bake_until``) → judged: the next step's
``shifting``, or ``promoting`` / ``rolling_back`` → ``promoted`` / ``rolled_back``.
A first deployment is ``creating`` → ``created``; an endpoint that already serves the
package is ``unchanged``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from mlops_pipeline.deploy.plan import Plan, Step

FINAL = ("promoted", "rolled_back", "created", "unchanged")
SCHEMA = 1


@dataclass
class Variant:
    variant: str
    model: str
    package_arn: str | None
    config: str  # the endpoint config that serves this variant alone


@dataclass
class StepRecord:
    step: int  # 1-based index into the plan
    weight: int
    bake_seconds: float
    requested_at: float  # epoch seconds: the weights were asked for
    started_at: float | None = None  # the endpoint served them (InService)
    bake_until: float | None = None
    judged_at: float | None = None
    metrics: dict[str, Any] | None = None  # per variant: invocations, errors, latency
    verdict: dict[str, Any] | None = None


@dataclass
class Release:
    release_id: str
    endpoint: str
    candidate: Variant
    baseline: Variant | None
    plan: list[dict[str, Any]]
    bounds: dict[str, Any]
    canary_config: str | None
    status: str
    started_at: float
    dag_id: str = ""
    run_id: str = ""
    steps: list[StepRecord] = field(default_factory=list)
    failures: int = 0
    failure_budget: int = 0
    ended_at: float | None = None
    reason: str | None = None
    asked: str | None = None  # the endpoint change last asked for, until it shows
    mode: str = "stepped"  # or "native": SageMaker shifts and rolls back by itself
    deployment_config: dict[str, Any] | None = None  # native mode's DeploymentConfig
    schema: int = SCHEMA

    # -- (de)serialisation ---------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Release:
        data = dict(data)
        data["candidate"] = Variant(**data["candidate"])
        data["baseline"] = Variant(**data["baseline"]) if data.get("baseline") else None
        data["steps"] = [StepRecord(**s) for s in data.get("steps", [])]
        return cls(**data)

    # -- reading -------------------------------------------------------------------------------
    @property
    def plan_steps(self) -> list[Step]:
        return [Step(int(s["weight"]), float(s["bake_seconds"])) for s in self.plan]

    @property
    def current(self) -> StepRecord | None:
        return self.steps[-1] if self.steps else None

    @property
    def finished(self) -> bool:
        return self.status in FINAL

    def weights(self, weight: int) -> dict[str, int]:
        """Variant → weight for ``weight`` percent on the candidate."""
        assert self.baseline is not None
        return {self.candidate.variant: weight, self.baseline.variant: 100 - weight}

    def summary(self) -> dict[str, Any]:
        """The short form for XCom: no metrics dump, no describe output."""
        return {
            "release_id": self.release_id,
            "endpoint": self.endpoint,
            "status": self.status,
            "candidate_package": self.candidate.package_arn,
            "previous_package": self.baseline.package_arn if self.baseline else None,
            "steps": [
                f"{s.weight}%: {'passed' if (s.verdict or {}).get('passed') else 'failed'}"
                if s.verdict
                else f"{s.weight}%: not judged"
                for s in self.steps
            ],
            "reason": self.reason,
        }

    # -- changes -------------------------------------------------------------------------------
    def begin_step(self, index: int, now: float) -> StepRecord:
        """Ask for step ``index`` (1-based) of the plan."""
        step = self.plan_steps[index - 1]
        record = StepRecord(index, step.weight, step.bake_seconds, requested_at=now)
        self.steps.append(record)
        self.status = "shifting"
        return record

    def serving(self, now: float) -> StepRecord:
        """The current step's weights serve from ``now``: its bake starts."""
        record = self.current
        assert record is not None
        record.started_at = now
        record.bake_until = now + record.bake_seconds
        self.status = "baking"
        return record

    def judge(self, verdict: dict[str, Any], metrics: dict[str, Any], now: float) -> str:
        """Record the current step's verdict; the next move: ``next``, ``rebake``,
        ``promote`` or ``rollback``."""
        record = self.current
        assert record is not None
        record.verdict, record.metrics, record.judged_at = verdict, metrics, now
        if verdict["passed"]:
            if record.step == len(self.plan):
                self.status = "promoting"
                return "promote"
            return "next"
        self.failures += 1
        if self.failures > self.failure_budget:
            self.status = "rolling_back"
            self.reason = verdict["reason"]
            return "rollback"
        return "rebake"

    def finish(self, status: str, now: float, reason: str | None = None) -> None:
        self.status = status
        self.ended_at = now
        if reason:
            self.reason = reason


def next_step(release: Release) -> int | None:
    """The plan step after the current one that needs its own traffic shift (None: done)."""
    record = release.current
    index = record.step if record else 0
    return index + 1 if index < len(release.plan) else None


def needs_judging(step: StepRecord) -> bool:
    """A step with a bake is judged; the last 100% step without one is not."""
    return step.bake_seconds > 0


def new_release(
    *,
    release_id: str,
    endpoint: str,
    candidate: Variant,
    baseline: Variant | None,
    plan: Plan,
    bounds: dict[str, Any],
    canary_config: str | None,
    failure_budget: int,
    now: float,
    dag_id: str = "",
    run_id: str = "",
) -> Release:
    return Release(
        release_id=release_id,
        endpoint=endpoint,
        candidate=candidate,
        baseline=baseline,
        plan=plan.to_json(),
        bounds=bounds,
        canary_config=canary_config,
        status="creating" if baseline is None else "shifting",
        started_at=now,
        dag_id=dag_id,
        run_id=run_id,
        failure_budget=failure_budget,
    )


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds")


def step_lines(release: Release) -> list[str]:
    """One line per step, for logs and the demo."""
    lines = []
    for s in release.steps:
        metrics = s.metrics or {}
        cand = metrics.get(release.candidate.variant, {})
        verdict = s.verdict or {}
        result = "not judged" if not verdict else ("passed" if verdict.get("passed") else "FAILED")
        line = f"step {s.step}: {s.weight}% on {release.candidate.variant}, {result}"
        if cand:
            rate = cand.get("error_rate")
            latency = cand.get("latency_ms")
            line += (
                f" (candidate {cand.get('invocations', 0):g} calls, 5XX rate "
                f"{'-' if rate is None else f'{rate:.3f}'}, latency "
                f"{'-' if latency is None else f'{latency:.1f} ms'})"
            )
        if verdict and not verdict.get("passed"):
            line += f": {verdict.get('reason')}"
        lines.append(line)
    return lines
