"""The declarative canary plan: steps of candidate traffic, each baked before it is judged.

Written as ``"10%:5m,50%:10m,100%"`` (weight, then bake; the last step may omit its bake) or
as JSON, ``[{"weight": 10, "bake": "5m"}, {"weight": 100}]`` (a bake may also be a number
of seconds). Every rule is checked before any traffic moves, and an error names the
setting and the fix.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from mlops_pipeline.config import SettingsError

FIELD = "MLOPS_DEPLOY_CANARY_PLAN"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
EXAMPLE = '"10%:5m,50%:10m,100%" or [{"weight": 10, "bake": "5m"}, {"weight": 100}]'


class PlanError(SettingsError):
    """The plan cannot run; the message names the setting, the step and the fix."""


@dataclass(frozen=True)
class Step:
    weight: int  # percent of the endpoint's traffic on the candidate
    bake_seconds: float  # how long the step serves before it is judged (0: not judged)

    def describe(self) -> str:
        return f"{self.weight}% for {duration_text(self.bake_seconds)}"


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]

    def to_json(self) -> list[dict[str, Any]]:
        return [{"weight": s.weight, "bake_seconds": s.bake_seconds} for s in self.steps]

    def describe(self) -> str:
        return " → ".join(s.describe() if s.bake_seconds else f"{s.weight}%" for s in self.steps)


def duration_text(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def parse_duration(text: Any, where: str) -> float:
    if isinstance(text, bool):
        raise PlanError(f"{where}: a bake is a duration like 30s, 5m or 1h, not {text!r}")
    if isinstance(text, int | float):
        value = float(text)
    else:
        match = _DURATION.match(str(text).strip().lower())
        if not match:
            raise PlanError(f"{where}: bake {text!r} is not a duration: write e.g. 30s, 5m or 1h")
        value = float(match.group(1)) * _UNITS[match.group(2)]
    if value < 0:
        raise PlanError(f"{where}: bake {text!r} is negative")
    return value


def _weight(raw: Any, where: str) -> int:
    text = str(raw).strip().rstrip("%").strip()
    try:
        value = float(text)
    except ValueError:
        raise PlanError(f"{where}: weight {raw!r} is not a percentage: write e.g. 10%") from None
    if value != int(value):
        raise PlanError(f"{where}: weight {raw!r} must be a whole percentage")
    return int(value)


def _raw_steps(text: str) -> list[tuple[Any, Any]]:
    stripped = text.strip()
    if not stripped:
        raise PlanError(f"{FIELD} is empty: give the steps, e.g. {EXAMPLE}")
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except ValueError as error:
            raise PlanError(f"{FIELD} is not valid JSON ({error}): e.g. {EXAMPLE}") from None
        raw = []
        for i, item in enumerate(items, 1):
            if not isinstance(item, dict) or "weight" not in item:
                raise PlanError(
                    f"{FIELD} step {i}: {item!r} must be an object with a weight: e.g. {EXAMPLE}"
                )
            unknown = set(item) - {"weight", "bake"}
            if unknown:
                raise PlanError(
                    f"{FIELD} step {i}: unknown key(s) {', '.join(sorted(unknown))}: "
                    "use weight and bake"
                )
            raw.append((item["weight"], item.get("bake")))
        return raw
    raw = []
    for part in stripped.split(","):
        weight, _, bake = part.strip().partition(":")
        raw.append((weight, bake.strip() or None))
    return raw


def parse_plan(text: str, *, metric_period_seconds: float) -> Plan:
    """The plan in ``text``; PlanError naming the step and the fix when it cannot run."""
    steps: list[Step] = []
    for i, (raw_weight, raw_bake) in enumerate(_raw_steps(text), 1):
        where = f"{FIELD} step {i}"
        weight = _weight(raw_weight, where)
        bake = 0.0 if raw_bake is None else parse_duration(raw_bake, where)
        steps.append(Step(weight, bake))
    return validate_plan(Plan(tuple(steps)), metric_period_seconds=metric_period_seconds)


def validate_plan(plan: Plan, *, metric_period_seconds: float) -> Plan:
    steps = plan.steps
    for i, step in enumerate(steps, 1):
        where = f"{FIELD} step {i} ({step.weight}%)"
        if not 0 < step.weight <= 100:
            raise PlanError(f"{where}: a weight is a percentage above 0 and at most 100")
        if i > 1 and step.weight <= steps[i - 2].weight:
            raise PlanError(
                f"{where}: weights must increase from step to step (step {i - 1} is "
                f"{steps[i - 2].weight}%): order the steps, e.g. {EXAMPLE}"
            )
        last = i == len(steps)
        if not last and step.weight == 100:
            raise PlanError(f"{where}: only the last step may send 100% to the candidate")
        needs_bake = not last or step.bake_seconds > 0
        if needs_bake and step.bake_seconds < metric_period_seconds:
            raise PlanError(
                f"{where}: bake {duration_text(step.bake_seconds)} is shorter than the metric "
                f"period ({duration_text(metric_period_seconds)}, "
                "MLOPS_DEPLOY_METRIC_PERIOD_SECONDS), so no complete datapoint could judge it: "
                "bake at least one period"
            )
    if not steps or steps[-1].weight != 100:
        end = f"{steps[-1].weight}%" if steps else "nothing"
        raise PlanError(
            f"{FIELD}: the weights end at {end}, not 100%: add a last step of 100% so the "
            f"candidate is promoted, e.g. {EXAMPLE}"
        )
    return plan


def native_deployment(plan: Plan, alarms: list[str], timeout_seconds: int) -> dict[str, Any]:
    """The plan as SageMaker's DeploymentConfig: one canary step then the rest (CANARY), or
    equal steps with one bake (LINEAR); rolled back when an alarm fires."""
    steps = plan.steps
    first = steps[0]
    if len(steps) == 2:
        routing: dict[str, Any] = {
            "Type": "CANARY",
            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": first.weight},
            "WaitIntervalInSeconds": int(first.bake_seconds),
        }
    elif (
        all(
            s.weight == first.weight * i and s.bake_seconds == first.bake_seconds
            for i, s in enumerate(steps[:-1], 1)
        )
        and 100 - steps[-2].weight <= first.weight
    ):
        routing = {
            "Type": "LINEAR",
            "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": first.weight},
            "WaitIntervalInSeconds": int(first.bake_seconds),
        }
    elif len(steps) == 1:
        routing = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": int(first.bake_seconds)}
    else:
        raise PlanError(
            f"{FIELD}={plan.describe()!r}: native mode (MLOPS_DEPLOY_CANARY_MODE=native, "
            "SageMaker's BlueGreenUpdatePolicy) takes one canary step then 100% (e.g. "
            "10%:5m,100%) or equal steps with one bake (e.g. 25%:5m,50%:5m,75%:5m,100%); "
            "use the stepped mode for other plans"
        )
    if routing["WaitIntervalInSeconds"] > 3600:
        raise PlanError(f"{FIELD}: native mode bakes at most 1 h per step (SageMaker's limit)")
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": 0,
            "MaximumExecutionTimeoutInSeconds": max(600, min(28800, timeout_seconds)),
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": a} for a in alarms]},
    }
