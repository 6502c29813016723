"""A run's cost against its DAG's budget (settings) and against its own history (the
data-quality anomaly strategies: online normal over earlier runs); either breach alerts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlops_pipeline.config import SettingsError
from mlops_pipeline.cost.record import money

if TYPE_CHECKING:
    from mlops_pipeline.config import Settings
    from mlops_pipeline.notifications import Alert


def budget_of(settings: Settings, dag_id: str) -> float | None:
    raw = settings.cost_budgets.get(dag_id)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(
            f"MLOPS_COST_BUDGETS[{dag_id!r}] = {raw!r} is not a number of USD per run, "
            'e.g. {"model_build": "2.50"}'
        ) from None
    if value < 0:
        raise SettingsError(f"MLOPS_COST_BUDGETS[{dag_id!r}] must be >= 0")
    return value


def findings(
    record: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    budget: float | None,
    deviation_factor: float = 3.0,
) -> list[str]:
    """What is wrong with this run's cost ([] when nothing): over budget, or above the
    history's mean + k·σ (Deequ's online normal; skipped until enough runs exist)."""
    from mlops_pipeline.quality.anomaly import Bounds, OnlineNormal

    cost = float(record["known_usd"])
    out = []
    if budget is not None and cost > budget:
        out.append(f"cost {money(cost)} is over the budget of {money(budget)} per run")
    series = [float(r["known_usd"]) for r in history if r.get("run_id") != record.get("run_id")]
    strategy = OnlineNormal(lower_deviation_factor=None, upper_deviation_factor=deviation_factor)
    bounds = strategy.bounds(series)
    if isinstance(bounds, Bounds) and not bounds.contains(cost):
        out.append(
            f"cost {money(cost)} is anomalous: above {money(bounds.upper)} "
            f"({bounds.reason}, from the last {len(series)} runs)"
        )
    return out


def alert_for(record: Mapping[str, Any], found: Sequence[str], budget: float | None) -> Alert:
    from mlops_pipeline.notifications import Alert

    top = sorted(
        ((t, v) for t, v in record["by_task"].items() if v is not None), key=lambda x: -x[1]
    )[:3]
    return Alert(
        kind="cost",
        title=f"{record['dag_id']} run cost alert",
        reason=found[0],
        facts={
            "DAG": record["dag_id"],
            "Run": record["run_id"],
            "Cost": money(record["known_usd"])
            + (" + unknown" if record["unknown_cost_jobs"] else ""),
            "Budget": money(budget) if budget is not None else "none",
        },
        details=[*found[1:], *(f"{t}: {money(v)}" for t, v in top), f"record: {record['uri']}"],
    )


def check_and_alert(s3: Any, settings: Settings, record: Mapping[str, Any]) -> list[str]:
    from mlops_pipeline.cost.record import read_all
    from mlops_pipeline.notifications import send

    budget = budget_of(settings, record["dag_id"])
    history = read_all(
        s3,
        settings.bucket,
        settings.cost_prefix,
        record["dag_id"],
        last=settings.cost_anomaly_history_runs + 1,
    )
    history = [h for h in history if h["start"] < record["start"]]
    found = findings(record, history, budget, settings.cost_anomaly_deviation_factor)
    if found:
        send(alert_for(record, found, budget), settings)
    return found
