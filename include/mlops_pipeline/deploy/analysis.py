"""Canary analysis: the candidate variant against the baseline over the same window.

Inputs are CloudWatch's per-variant datapoints (``AWS/SageMaker``: Invocations,
Invocation5XXErrors, ModelLatency in microseconds); the output is a verdict naming, for
every check, the metric, its value and its bound. No data is a failure, never a pass: a
candidate that served too few calls has not shown it works.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from mlops_pipeline.config import Settings, SettingsError

METRICS = ("Invocations", "Invocation5XXErrors", "ModelLatency")


@dataclass(frozen=True)
class Bounds:
    min_invocations: int
    max_error_rate_increase: float
    max_latency_ratio: float
    latency_slack_ms: float
    max_latency_ms: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Bounds:
        bounds = cls(
            min_invocations=settings.deploy_min_invocations,
            max_error_rate_increase=settings.deploy_max_error_rate_increase,
            max_latency_ratio=settings.deploy_max_latency_ratio,
            latency_slack_ms=settings.deploy_latency_slack_ms,
            max_latency_ms=settings.deploy_max_latency_ms,
        )
        problems = [
            ("MLOPS_DEPLOY_MIN_INVOCATIONS", bounds.min_invocations < 1, "at least 1"),
            (
                "MLOPS_DEPLOY_MAX_ERROR_RATE_INCREASE",
                not 0 <= bounds.max_error_rate_increase <= 1,
                "a rate between 0 and 1",
            ),
            ("MLOPS_DEPLOY_MAX_LATENCY_RATIO", bounds.max_latency_ratio < 1, "at least 1"),
            ("MLOPS_DEPLOY_LATENCY_SLACK_MS", bounds.latency_slack_ms < 0, "0 or more"),
            ("MLOPS_DEPLOY_MAX_LATENCY_MS", bounds.max_latency_ms <= 0, "above 0"),
        ]
        for name, bad, rule in problems:
            if bad:
                raise SettingsError(f"{name}={getattr(bounds, _field(name))!r}: it must be {rule}")
        return bounds


def _field(env_name: str) -> str:
    return env_name.removeprefix("MLOPS_DEPLOY_").lower()


@dataclass(frozen=True)
class VariantStats:
    invocations: float
    errors_5xx: float
    latency_ms: float | None  # mean ModelLatency; None without datapoints

    @property
    def error_rate(self) -> float | None:
        return self.errors_5xx / self.invocations if self.invocations else None


def variant_stats(datapoints: Mapping[str, Iterable[Mapping[str, Any]]]) -> VariantStats:
    """One variant's totals over a window from GetMetricStatistics datapoints (Sum and
    SampleCount) of each metric in METRICS; metrics without datapoints count as none."""

    def total(metric: str, stat: str) -> float:
        return float(sum(point.get(stat, 0.0) for point in datapoints.get(metric, ())))

    samples = total("ModelLatency", "SampleCount")
    latency = total("ModelLatency", "Sum") / samples / 1000.0 if samples else None
    return VariantStats(total("Invocations", "Sum"), total("Invocation5XXErrors", "Sum"), latency)


@dataclass(frozen=True)
class Check:
    metric: str
    value: float | None
    bound: float
    passed: bool
    detail: str

    def text(self) -> str:
        value = "no data" if self.value is None else f"{self.value:.4g}"
        verdict = "ok" if self.passed else "FAILED"
        return f"{self.metric} = {value} (bound {self.bound:.4g}: {self.detail}) {verdict}"


@dataclass(frozen=True)
class Verdict:
    step: int  # 1-based
    weight: int
    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failed(self) -> Check | None:
        return next((c for c in self.checks if not c.passed), None)

    def reason(self) -> str:
        check = self.failed
        if check is None:
            return f"step {self.step} ({self.weight}%) passed"
        value = "no data" if check.value is None else f"{check.value:.4g}"
        return (
            f"step {self.step} ({self.weight}%): {check.metric} = {value}, bound "
            f"{check.bound:.4g} ({check.detail})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "weight": self.weight,
            "passed": self.passed,
            "reason": self.reason(),
            "checks": [asdict(c) for c in self.checks],
        }


def analyse(
    step: int, weight: int, candidate: VariantStats, baseline: VariantStats | None, bounds: Bounds
) -> Verdict:
    """The checks of one bake. ``baseline`` is None (or without calls) when the baseline
    served nothing in the window (a 100% step): the candidate is then held to the absolute
    bounds alone."""
    checks = [
        Check(
            "Invocations",
            candidate.invocations,
            bounds.min_invocations,
            candidate.invocations >= bounds.min_invocations,
            "the candidate's calls in the bake, at least (no data fails)",
        )
    ]
    base_rate = baseline.error_rate if baseline is not None else None
    rate = candidate.error_rate
    allowed = (base_rate or 0.0) + bounds.max_error_rate_increase
    checks.append(
        Check(
            "Invocation5XXErrors rate",
            rate,
            allowed,
            rate is not None and rate <= allowed + 1e-12,
            f"at most the baseline's {base_rate:.4g} + {bounds.max_error_rate_increase:g}"
            if base_rate is not None
            else f"at most {bounds.max_error_rate_increase:g} (no baseline calls)",
        )
    )
    latency = candidate.latency_ms
    base_latency = baseline.latency_ms if baseline is not None else None
    if base_latency is not None:
        relative = base_latency * bounds.max_latency_ratio + bounds.latency_slack_ms
        checks.append(
            Check(
                "ModelLatency ms (relative)",
                latency,
                relative,
                latency is not None and latency <= relative,
                f"at most the baseline's {base_latency:.4g} ms × {bounds.max_latency_ratio:g}"
                f" + {bounds.latency_slack_ms:g} ms",
            )
        )
    checks.append(
        Check(
            "ModelLatency ms (absolute)",
            latency,
            bounds.max_latency_ms,
            latency is not None and latency <= bounds.max_latency_ms,
            "at most MLOPS_DEPLOY_MAX_LATENCY_MS",
        )
    )
    return Verdict(step, weight, tuple(checks))
