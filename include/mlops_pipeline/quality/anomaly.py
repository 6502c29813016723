"""Anomaly detection on metric history, after Deequ's strategies.

A declarative file per dataset (``great_expectations/anomaly/<dataset>.yml``) lists checks:
a metric of the partition profile (row count, a column's completeness, distinctness,
mean, stddev, min, max or a quantile), a strategy, and a severity. Before each validation
the strategy turns the metric's history (earlier partitions) into bounds; each bounded
check becomes a GX expectation whose bounds are runtime expectation parameters, so today's
value is judged by GX like every other expectation and shows up in Data Docs.

Strategies (Deequ's names and semantics):

- ``relative_rate_of_change``: ``max_rate_decrease`` ≤ today / previous ≤ ``max_rate_increase``
- ``absolute_change``: ``max_rate_decrease`` ≤ today − previous ≤ ``max_rate_increase``
  (decreases are negative numbers, as in Deequ)
- ``simple_threshold``: ``lower_bound`` ≤ today ≤ ``upper_bound``
- ``online_normal``: mean − ``lower_deviation_factor``·σ ≤ today ≤ mean + ``upper_deviation_factor``·σ
  over the history, after skipping the first ``ignore_start_percentage`` of the series as
  warm-up and, with ``ignore_anomalies``, leaving earlier anomalies out of mean and σ.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]
GX_SEVERITY: dict[str, str] = {"error": "critical", "warning": "warning", "info": "info"}
METRICS = ("row_count", "completeness", "distinctness", "mean", "stddev", "min", "max", "quantile")
COLUMN_METRICS = METRICS[1:]


class AnomalyConfigError(ValueError):
    """The anomaly file is malformed; the message names the check and the fix."""


@dataclass(frozen=True)
class Bounds:
    lower: float | None
    upper: float | None
    reason: str  # how they were derived, for the report

    def contains(self, value: float) -> bool:
        return (self.lower is None or value >= self.lower) and (
            self.upper is None or value <= self.upper
        )


@dataclass(frozen=True)
class NoBounds:
    """Not enough history yet: the check is skipped, and the report says why."""

    reason: str


# -- strategies ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RelativeRateOfChange:
    max_rate_decrease: float | None = None
    max_rate_increase: float | None = None
    name = "relative_rate_of_change"

    def __post_init__(self) -> None:
        if self.max_rate_decrease is None and self.max_rate_increase is None:
            raise AnomalyConfigError(
                f"{self.name} needs max_rate_decrease and/or max_rate_increase"
            )
        if self.max_rate_decrease is not None and self.max_rate_decrease < 0:
            raise AnomalyConfigError(
                f"{self.name}: max_rate_decrease is a ratio >= 0 (0.5 allows halving)"
            )

    def bounds(self, history: Sequence[float]) -> Bounds | NoBounds:
        if not history:
            return NoBounds("no earlier value to compare with")
        previous = history[-1]
        lows = [] if self.max_rate_decrease is None else [previous * self.max_rate_decrease]
        highs = [] if self.max_rate_increase is None else [previous * self.max_rate_increase]
        # a negative previous value flips the ratios' order
        lower, upper = _ordered(lows[0] if lows else None, highs[0] if highs else None)
        return Bounds(lower, upper, f"previous value {_fmt(previous)} × allowed rate")


@dataclass(frozen=True)
class AbsoluteChange:
    max_rate_decrease: float | None = None
    max_rate_increase: float | None = None
    name = "absolute_change"

    def __post_init__(self) -> None:
        if self.max_rate_decrease is None and self.max_rate_increase is None:
            raise AnomalyConfigError(
                f"{self.name} needs max_rate_decrease and/or max_rate_increase"
            )
        if self.max_rate_decrease is not None and self.max_rate_decrease > 0:
            raise AnomalyConfigError(
                f"{self.name}: max_rate_decrease is a change <= 0, as in Deequ (e.g. -0.02)"
            )

    def bounds(self, history: Sequence[float]) -> Bounds | NoBounds:
        if not history:
            return NoBounds("no earlier value to compare with")
        previous = history[-1]
        lower = None if self.max_rate_decrease is None else previous + self.max_rate_decrease
        upper = None if self.max_rate_increase is None else previous + self.max_rate_increase
        return Bounds(lower, upper, f"previous value {_fmt(previous)} + allowed change")


@dataclass(frozen=True)
class SimpleThreshold:
    lower_bound: float | None = None
    upper_bound: float | None = None
    name = "simple_threshold"

    def __post_init__(self) -> None:
        if self.lower_bound is None and self.upper_bound is None:
            raise AnomalyConfigError(f"{self.name} needs lower_bound and/or upper_bound")
        if (
            self.lower_bound is not None
            and self.upper_bound is not None
            and self.lower_bound > self.upper_bound
        ):
            raise AnomalyConfigError(f"{self.name}: lower_bound is above upper_bound")

    def bounds(self, history: Sequence[float]) -> Bounds | NoBounds:
        return Bounds(self.lower_bound, self.upper_bound, "fixed threshold")


@dataclass(frozen=True)
class OnlineNormal:
    lower_deviation_factor: float | None = 3.0
    upper_deviation_factor: float | None = 3.0
    ignore_start_percentage: float = 0.1
    ignore_anomalies: bool = True
    # Deequ has no such floor, but its bounds would be a single value after one day, and σ
    # of a few days is itself noise: with 3 days of a 2 % fraud rate, 4σ spanned ±0.1
    # points where the daily binomial noise alone is ±0.2; a week is the least to judge by
    min_history: int = 7
    name = "online_normal"

    def __post_init__(self) -> None:
        if self.lower_deviation_factor is None and self.upper_deviation_factor is None:
            raise AnomalyConfigError(
                f"{self.name} needs lower_deviation_factor and/or upper_deviation_factor"
            )
        for factor in (self.lower_deviation_factor, self.upper_deviation_factor):
            if factor is not None and factor < 0:
                raise AnomalyConfigError(f"{self.name}: deviation factors are >= 0")
        if not 0 <= self.ignore_start_percentage < 1:
            raise AnomalyConfigError(f"{self.name}: ignore_start_percentage is in [0, 1)")
        if self.min_history < 1:
            raise AnomalyConfigError(f"{self.name}: min_history is at least 1")

    def bounds(self, history: Sequence[float]) -> Bounds | NoBounds:
        series = list(history)
        if len(series) < self.min_history:
            return NoBounds(f"needs {self.min_history} earlier values, has {len(series)}")
        # today's point is the series' last: within the warm-up share, it is not judged
        skip = (len(series) + 1) * self.ignore_start_percentage
        if len(series) < skip:
            return NoBounds(f"warm-up: the first {self.ignore_start_percentage:.0%} of the series")
        mean, std, used = self._running(series, skip)
        if used < self.min_history:
            return NoBounds(f"needs {self.min_history} earlier values, has {used}")
        lower = (
            None
            if self.lower_deviation_factor is None
            else mean - self.lower_deviation_factor * std
        )
        upper = (
            None
            if self.upper_deviation_factor is None
            else mean + self.upper_deviation_factor * std
        )
        return Bounds(lower, upper, f"mean {_fmt(mean)} ± k·σ (σ {_fmt(std)}, {used} values)")

    def _running(self, series: list[float], skip: float) -> tuple[float, float, int]:
        """Welford's running mean and (population) variance, as Deequ's OnlineNormalStrategy,
        leaving out values it flags as anomalies once past the warm-up."""
        mean = var_sum = 0.0
        count = 0
        for index, value in enumerate(series):
            if count and index >= skip and self.ignore_anomalies:
                std = math.sqrt(var_sum / count)
                low = (
                    None
                    if self.lower_deviation_factor is None
                    else mean - self.lower_deviation_factor * std
                )
                high = (
                    None
                    if self.upper_deviation_factor is None
                    else mean + self.upper_deviation_factor * std
                )
                if count >= self.min_history and not Bounds(low, high, "").contains(value):
                    continue
            count += 1
            delta = value - mean
            mean += delta / count
            var_sum += delta * (value - mean)
        return mean, math.sqrt(var_sum / count) if count else 0.0, count


Strategy = RelativeRateOfChange | AbsoluteChange | SimpleThreshold | OnlineNormal
STRATEGIES: dict[str, type[Any]] = {
    s.name: s for s in (RelativeRateOfChange, AbsoluteChange, SimpleThreshold, OnlineNormal)
}


def _ordered(a: float | None, b: float | None) -> tuple[float | None, float | None]:
    if a is not None and b is not None and a > b:
        return b, a
    return a, b


def _fmt(value: float) -> str:
    return f"{value:,.6g}"


# -- metrics ------------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricRef:
    metric: str
    column: str | None = None
    quantile: float | None = None

    @property
    def key(self) -> str:
        """A readable name: ``row_count``, ``completeness(amount)``, ``quantile(amount, 0.99)``."""
        if self.metric == "row_count":
            return "row_count"
        if self.metric == "quantile":
            return f"quantile({self.column}, {self.quantile:g})"
        return f"{self.metric}({self.column})"

    def value(self, metrics: Mapping[str, Any]) -> float | None:
        """This metric in a profile (dq_data.profile's shape); None when absent."""
        if self.metric == "row_count":
            found = metrics.get("row_count")
        else:
            column = (metrics.get("columns") or {}).get(self.column) or {}
            if self.metric == "quantile":
                found = (column.get("quantiles") or {}).get(f"{self.quantile:g}")
            else:
                found = column.get(self.metric)
        if isinstance(found, bool) or not isinstance(found, int | float):
            return None
        return float(found)


@dataclass(frozen=True)
class AnomalyCheck:
    metric: MetricRef
    strategy: Strategy
    severity: Severity = "error"
    description: str | None = None


@dataclass(frozen=True)
class AnomalyConfig:
    dataset: str
    checks: tuple[AnomalyCheck, ...]
    history_days: int = 90


def parse_config(raw: Mapping[str, Any], *, source: str = "anomaly config") -> AnomalyConfig:
    """Validate the declarative file's content; errors name the check and the fix."""
    if not isinstance(raw, Mapping):
        raise AnomalyConfigError(f"{source}: expected a mapping with 'dataset' and 'checks'")
    dataset = raw.get("dataset")
    if not isinstance(dataset, str) or not dataset:
        raise AnomalyConfigError(f"{source}: 'dataset' (the suite's dataset name) is required")
    history_days = raw.get("history_days", 90)
    if not isinstance(history_days, int) or history_days < 1:
        raise AnomalyConfigError(f"{source}: history_days must be a whole number >= 1")
    checks = []
    for i, item in enumerate(raw.get("checks") or [], 1):
        where = f"{source}: check {i}"
        if not isinstance(item, Mapping):
            raise AnomalyConfigError(f"{where}: expected a mapping")
        item = dict(item)
        metric = item.pop("metric", None)
        column = item.pop("column", None)
        quantile = item.pop("quantile", None)
        severity = item.pop("severity", "error")
        description = item.pop("description", None)
        strategy_name = item.pop("strategy", None)
        if metric not in METRICS:
            raise AnomalyConfigError(
                f"{where}: metric {metric!r} is not one of {', '.join(METRICS)}"
            )
        if metric in COLUMN_METRICS and not column:
            raise AnomalyConfigError(f"{where}: metric {metric} needs a column")
        if metric == "row_count" and column:
            raise AnomalyConfigError(f"{where}: row_count takes no column")
        if metric == "quantile" and not (isinstance(quantile, int | float) and 0 <= quantile <= 1):
            raise AnomalyConfigError(f"{where}: metric quantile needs quantile: <0..1>")
        if severity not in GX_SEVERITY:
            raise AnomalyConfigError(
                f"{where}: severity {severity!r} is not one of {', '.join(GX_SEVERITY)}"
            )
        if strategy_name not in STRATEGIES:
            raise AnomalyConfigError(
                f"{where}: strategy {strategy_name!r} is not one of {', '.join(STRATEGIES)}"
            )
        try:
            strategy = STRATEGIES[strategy_name](**item)
        except TypeError as exc:
            raise AnomalyConfigError(f"{where}: {strategy_name}: {exc}") from None
        except AnomalyConfigError as exc:
            raise AnomalyConfigError(f"{where}: {exc}") from None
        checks.append(
            AnomalyCheck(
                MetricRef(metric, column, float(quantile) if quantile is not None else None),
                strategy,
                severity,
                description,
            )
        )
    return AnomalyConfig(dataset, tuple(checks), history_days)


def load_config(path: str) -> AnomalyConfig:
    import yaml

    with open(path) as fh:
        try:
            raw = yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            raise AnomalyConfigError(f"{path} is not valid YAML: {exc}") from None
    return parse_config(raw or {}, source=path)


# -- from bounds to GX --------------------------------------------------------------------
@dataclass
class AnomalyPlan:
    """What the validation job gets: extra expectations with $PARAMETER bounds, their values,
    and one note per check for the report."""

    expectations: list[dict[str, Any]] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def plan(config: AnomalyConfig, history: Sequence[Mapping[str, Any]]) -> AnomalyPlan:
    """Bounds for each check from ``history`` (metric profiles, oldest first)."""
    out = AnomalyPlan()
    for index, check in enumerate(config.checks, 1):
        series = [v for v in (check.metric.value(h) for h in history) if v is not None]
        found = check.strategy.bounds(series)
        label = f"{check.metric.key} ({check.strategy.name})"
        if isinstance(found, NoBounds):
            out.notes.append(f"anomaly check {label} skipped: {found.reason}")
            continue
        expectation = _expectation(check, found, index, out.parameters)
        if expectation is None:
            out.notes.append(f"anomaly check {label} skipped: no bound applies")
            continue
        expectation["meta"] = {
            "anomaly": {
                "metric": check.metric.key,
                "strategy": check.strategy.name,
                "history_points": len(series),
                "lower": found.lower,
                "upper": found.upper,
                "reason": found.reason,
            }
        }
        expectation["severity"] = GX_SEVERITY[check.severity]
        expectation["description"] = check.description or f"anomaly check on {label}"
        out.expectations.append(expectation)
        out.notes.append(
            f"anomaly check {label}: bounds {_range(found)} from {len(series)} earlier value(s)"
        )
    return out


def _range(bounds: Bounds) -> str:
    low = "-inf" if bounds.lower is None else _fmt(bounds.lower)
    high = "+inf" if bounds.upper is None else _fmt(bounds.upper)
    return f"[{low}, {high}]"


def parameter_name(index: int, check: AnomalyCheck, side: str) -> str:
    # GX parses $PARAMETER values as expressions: keep names plain identifiers
    slug = re.sub(r"\W+", "_", check.metric.key).strip("_")
    return f"anomaly_{index}_{slug}_{side}"


_BETWEEN = {
    "row_count": "expect_table_row_count_to_be_between",
    "distinctness": "expect_column_proportion_of_unique_values_to_be_between",
    "mean": "expect_column_mean_to_be_between",
    "stddev": "expect_column_stdev_to_be_between",
    "min": "expect_column_min_to_be_between",
    "max": "expect_column_max_to_be_between",
}


def _expectation(
    check: AnomalyCheck, bounds: Bounds, index: int, parameters: dict[str, Any]
) -> dict[str, Any] | None:
    ref = check.metric
    domain = {} if ref.column is None else {"column": ref.column}
    if ref.metric == "completeness":
        # completeness cannot exceed 1: only its lower bound (a null-rate jump) constrains
        if bounds.lower is None or bounds.lower <= 0:
            return None
        name = parameter_name(index, check, "min")
        parameters[name] = min(max(bounds.lower, 0.0), 1.0)
        return {
            "type": "expect_column_values_to_not_be_null",
            "kwargs": {**domain, "mostly": {"$PARAMETER": name}},
        }
    if ref.metric == "quantile":
        name = parameter_name(index, check, "range")
        parameters[name] = {
            "quantiles": [ref.quantile],
            "value_ranges": [[bounds.lower, bounds.upper]],
        }
        return {
            "type": "expect_column_quantile_values_to_be_between",
            "kwargs": {**domain, "quantile_ranges": {"$PARAMETER": name}},
        }
    kwargs: dict[str, Any] = dict(domain)
    for side, value in (("min", bounds.lower), ("max", bounds.upper)):
        if value is not None:
            name = parameter_name(index, check, side)
            parameters[name] = value
            kwargs[f"{side}_value"] = {"$PARAMETER": name}
    return {"type": _BETWEEN[ref.metric], "kwargs": kwargs}
