"""What a backfill will cost, from the history of the DAG's runs: a range, and how many
runs it rests on."""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlops_pipeline.cost.record import money

MIN_FOR_PERCENTILES = 5  # below this, the range is the history's min..max


@dataclass(frozen=True)
class Estimate:
    runs: int  # in the backfill
    history: int  # earlier runs it rests on
    per_run_low: float
    per_run_typical: float
    per_run_high: float
    first: str = ""  # the oldest and newest run it rests on (run start)
    last: str = ""
    left_out: int = 0  # earlier runs with an unknown cost or not successful

    @property
    def low(self) -> float:
        return self.runs * self.per_run_low

    @property
    def typical(self) -> float:
        return self.runs * self.per_run_typical

    @property
    def high(self) -> float:
        return self.runs * self.per_run_high

    def text(self, dag_id: str, start: dt.date, end: dt.date) -> str:
        lines = [
            f"{dag_id} backfill {start}..{end}: {self.runs} run(s), estimated "
            f"{money(self.low)} .. {money(self.high)} (typical {money(self.typical)})",
            f"  per run {money(self.per_run_low)} .. {money(self.per_run_high)} "
            f"(median {money(self.per_run_typical)}), from {self.history} earlier successful "
            f"run(s) started {self.first[:10]}..{self.last[:10]}",
        ]
        if self.history < MIN_FOR_PERCENTILES:
            lines.append(
                f"  few runs to rest on (< {MIN_FOR_PERCENTILES}): the range is their min..max"
            )
        if self.left_out:
            lines.append(f"  {self.left_out} run(s) left out (failed, or a cost unknown)")
        return "\n".join(lines)


def runs_between(start: dt.date, end: dt.date, per_day: int = 1) -> int:
    if end < start:
        raise ValueError(f"--to-date {end} is before --from-date {start}")
    return ((end - start).days + 1) * per_day


def estimate(history: Sequence[Mapping[str, Any]], runs: int) -> Estimate | None:
    """None when no earlier successful run has a known cost."""
    usable = [r for r in history if r.get("state") == "success" and r.get("total_usd") is not None]
    if not usable:
        return None
    costs = sorted(float(r["total_usd"]) for r in usable)
    if len(costs) >= MIN_FOR_PERCENTILES:
        deciles = statistics.quantiles(costs, n=10, method="inclusive")
        low, high = deciles[0], deciles[-1]
    else:
        low, high = costs[0], costs[-1]
    starts = sorted(str(r.get("start", "")) for r in usable)
    return Estimate(
        runs=runs,
        history=len(usable),
        per_run_low=low,
        per_run_typical=statistics.median(costs),
        per_run_high=high,
        first=starts[0],
        last=starts[-1],
        left_out=len(history) - len(usable),
    )
