"""The model quality gate: absolute thresholds, and no regression against the approved model.

Pure: it takes the candidate's metrics and (optionally) the approved model's, and says
whether the candidate may be registered, with every reason spelled out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Threshold:
    metric: str
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    compared_with: str | None = None  # the approved model package ARN, when there was one

    def summary(self) -> str:
        head = "quality gate passed" if self.passed else "quality gate FAILED"
        if self.compared_with:
            head += f" (compared with approved {self.compared_with})"
        return "\n".join([head, *(f"- {r}" for r in self.reasons)])


def flatten_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """{"binary_classification_metrics": {"pr_auc": {"value": 0.8}}} → {"pr_auc": 0.8}.

    Accepts SageMaker's model-quality JSON (metrics under a problem-type key, each with a
    ``value``) as well as a flat {name: number} mapping.
    """
    flat: dict[str, float] = {}

    def walk(node: Mapping[str, Any]) -> None:
        for name, value in node.items():
            if isinstance(value, bool):
                continue
            if isinstance(value, (int, float)):
                flat.setdefault(name, float(value))
            elif isinstance(value, Mapping):
                if isinstance(value.get("value"), (int, float)) and not isinstance(
                    value.get("value"), bool
                ):
                    flat[name] = float(value["value"])
                else:
                    walk(value)

    walk(report)
    return flat


def evaluate_gate(
    candidate: Mapping[str, float],
    thresholds: list[Threshold],
    *,
    approved: Mapping[str, float] | None = None,
    approved_arn: str | None = None,
    no_regression: tuple[str, ...] = (),
    tolerance: float = 0.0,
) -> GateResult:
    """Check ``candidate`` against thresholds and, per ``no_regression`` metric, the approved
    model (higher is better for those; ``tolerance`` is the absolute drop allowed)."""
    reasons: list[str] = []
    failed = False
    for t in thresholds:
        value = candidate.get(t.metric)
        if value is None:
            failed = True
            reasons.append(f"{t.metric}: missing from the evaluation report")
            continue
        if t.minimum is not None and value < t.minimum:
            failed = True
            reasons.append(f"{t.metric} = {value:.4f} is below the minimum {t.minimum:.4f}")
        elif t.maximum is not None and value > t.maximum:
            failed = True
            reasons.append(f"{t.metric} = {value:.4f} is above the maximum {t.maximum:.4f}")
        else:
            reasons.append(f"{t.metric} = {value:.4f} meets its threshold")
    if approved is not None:
        for metric in no_regression:
            new, old = candidate.get(metric), approved.get(metric)
            if new is None or old is None:
                reasons.append(f"{metric}: cannot compare (missing in candidate or approved model)")
                continue
            if new < old - tolerance:
                failed = True
                reasons.append(
                    f"{metric} = {new:.4f} regresses from the approved model's {old:.4f}"
                    + (f" by more than {tolerance:.4f}" if tolerance else "")
                )
            else:
                reasons.append(f"{metric} = {new:.4f} vs approved {old:.4f}: no regression")
    else:
        reasons.append("no approved model yet: nothing to compare against")
    return GateResult(passed=not failed, reasons=reasons, compared_with=approved_arn)
