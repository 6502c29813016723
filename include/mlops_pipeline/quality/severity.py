"""The gate's verdict from a validation result, and the report a person reads.

GX marks a suite failed when any expectation fails, whatever its severity, so the verdict
is ours: an unmet ``error`` expectation (GX severity ``critical``) or unreadable input fails
the gate; ``warning`` ones pass it with an alert; ``info`` ones are only reported.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CONTRACT = 1
MAX_LISTED = 20


class ResultError(RuntimeError):
    """The validation job's result is missing or not in the contract's shape."""


@dataclass
class Verdict:
    dataset: str
    partition: str
    passed: bool
    status: str  # passed | warning | failed
    problems: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    infos: list[dict[str, Any]] = field(default_factory=list)
    row_count: int | None = None
    evaluated: int = 0
    data_docs_uri: str | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self, result_uri: str | None = None) -> str:
        return render(self, result_uri)

    def to_xcom(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "partition": self.partition,
            "status": self.status,
            "rows": self.row_count,
            "errors": len(self.errors) + len(self.problems),
            "warnings": len(self.warnings),
            "data_docs_uri": self.data_docs_uri,
        }


def check_contract(result: Any) -> dict[str, Any]:
    if not isinstance(result, Mapping):
        raise ResultError("the validation result is not a JSON object")
    if result.get("contract") != CONTRACT:
        raise ResultError(
            f"the validation result has contract {result.get('contract')!r}, expected "
            f"{CONTRACT}: the job's validate.py and this operator are from different versions"
        )
    missing = [k for k in ("dataset", "partition", "status", "expectations") if k not in result]
    if missing:
        raise ResultError(f"the validation result lacks {', '.join(missing)}")
    return dict(result)


def evaluate(result: Mapping[str, Any]) -> Verdict:
    result = check_contract(result)
    verdict = Verdict(
        dataset=str(result["dataset"]),
        partition=str(result["partition"]),
        passed=True,
        status="passed",
        row_count=result.get("row_count"),
        evaluated=len(result["expectations"]),
        data_docs_uri=result.get("data_docs_uri"),
        notes=list(result.get("anomaly_notes") or []),
    )
    if result["status"] != "validated":
        verdict.problems = list(result.get("problems") or []) or [
            {"kind": result["status"], "message": "the job could not validate the partition"}
        ]
    for item in result["expectations"]:
        if item.get("success"):
            continue
        severity = item.get("severity", "error")
        {"warning": verdict.warnings, "info": verdict.infos}.get(severity, verdict.errors).append(
            item
        )
    if verdict.problems or verdict.errors:
        verdict.passed, verdict.status = False, "failed"
    elif verdict.warnings:
        verdict.status = "warning"
    return verdict


# -- rendering ----------------------------------------------------------------------------
def render(verdict: Verdict, result_uri: str | None = None) -> str:
    head = {
        "passed": "PASSED",
        "warning": "PASSED with warnings",
        "failed": "FAILED",
    }[verdict.status]
    counts = []
    if verdict.problems:
        counts.append(_plural(len(verdict.problems), "input problem"))
    counts.append(_plural(len(verdict.errors), "error"))
    counts.append(_plural(len(verdict.warnings), "warning"))
    rows = f", {verdict.row_count:,} rows" if verdict.row_count is not None else ""
    lines = [
        f"Data quality gate {head} for dataset {verdict.dataset!r}, partition "
        f"{verdict.partition}{rows}: {', '.join(counts)} "
        f"({verdict.evaluated} expectations evaluated)"
    ]
    for problem in verdict.problems:
        lines.append(f"  INPUT    {problem.get('kind')}: {problem.get('message')}")
    for label, items in (("ERROR", verdict.errors), ("WARNING", verdict.warnings)):
        for item in items[:MAX_LISTED]:
            lines.append(f"  {label:<8} {describe(item)}")
        if len(items) > MAX_LISTED:
            lines.append(f"  ... and {len(items) - MAX_LISTED} more {label.lower()}s")
    for item in verdict.infos[:MAX_LISTED]:
        lines.append(f"  INFO     {describe(item)}")
    skipped = [n.split(" skipped: ")[0].removeprefix("anomaly check ") for n in verdict.notes]
    skipped = [n for n, note in zip(skipped, verdict.notes, strict=True) if " skipped: " in note]
    if skipped:
        lines.append(f"  note: anomaly checks without enough history yet: {', '.join(skipped)}")
    if verdict.data_docs_uri:
        lines.append(f"Data Docs: {verdict.data_docs_uri}")
    if result_uri:
        lines.append(f"Result: {result_uri}")
    return "\n".join(lines)


def describe(item: Mapping[str, Any]) -> str:
    """One line: what was expected of which column, what was observed, and the bound."""
    anomaly = item.get("anomaly") or {}
    what = item.get("type", "?")
    if anomaly:
        what = f"anomaly in {anomaly.get('metric')} ({anomaly.get('strategy')})"
    elif item.get("column"):
        what = f"{what} on {item['column']}"
    text = f"{what}: observed {observed(item)}; expected {bound(item)}"
    if item.get("exception"):
        text += f"; could not be evaluated: {item['exception']}"
    return text


def observed(item: Mapping[str, Any]) -> str:
    seen = item.get("observed") or {}
    if "unexpected_count" in seen and "element_count" in seen:
        text = (
            f"{seen['unexpected_count']:,} of {seen['element_count']:,} rows "
            f"({_pct(seen.get('unexpected_percent'))}) unexpected"
        )
        if seen.get("unexpected_sample"):
            text += f", e.g. {_short(seen['unexpected_sample'])}"
        return text
    if "value" in seen:
        return _short(seen["value"])
    return "nothing (not evaluated)"


def bound(item: Mapping[str, Any]) -> str:
    b = dict(item.get("bounds") or {})
    anomaly = item.get("anomaly") or {}
    suffix = f" ({anomaly['reason']})" if anomaly.get("reason") else ""
    if "mostly" in b and item.get("type") == "expect_column_values_to_not_be_null":
        return f"non-null in at least {_pct(100 * b['mostly'])} of rows{suffix}"
    if "value_set" in b:
        return f"values in {_short(b['value_set'])}"
    if "regex" in b:
        return f"values matching {b['regex']!r}"
    if "quantile_ranges" in b and isinstance(b["quantile_ranges"], Mapping):
        ranges = b["quantile_ranges"]
        pairs = zip(ranges.get("quantiles", []), ranges.get("value_ranges", []), strict=False)
        return "; ".join(f"q{q:g} in {_interval(r[0], r[1])}" for q, r in pairs) + suffix
    if "min_value" in b or "max_value" in b:
        text = _interval(
            b.get("min_value"),
            b.get("max_value"),
            strict_min=bool(b.get("strict_min")),
            strict_max=bool(b.get("strict_max")),
        )
        if b.get("mostly") not in (None, 1, 1.0):
            text += f" for at least {_pct(100 * b['mostly'])} of rows"
        return text + suffix
    if "column_set" in b:
        return f"exactly the columns {_short(b['column_set'])}"
    if "column_list" in b:
        return f"exactly the columns, in order, {_short(b['column_list'])}"
    if "sum_total" in b:
        return f"a sum of {_num(b['sum_total'], '?')} in every row"
    if item.get("type") == "expect_column_values_to_be_unique":
        return "unique values"
    if item.get("type") == "expect_column_values_to_not_be_null":
        return "no nulls"
    if "or_equal" in b:
        return f"{item.get('column', '').replace(',', ' >= ' if b['or_equal'] else ' > ')}"
    shown = {k: v for k, v in b.items() if v is not None}
    return _short(shown) if shown else "(see Data Docs)"


def _interval(low: Any, high: Any, *, strict_min: bool = False, strict_max: bool = False) -> str:
    left = "(" if strict_min or low is None else "["
    right = ")" if strict_max or high is None else "]"
    return f"{left}{_num(low, '-inf')}, {_num(high, '+inf')}{right}"


def _num(value: Any, missing: str) -> str:
    if value is None:
        return missing
    if isinstance(value, float):
        return f"{value:,.6g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _pct(value: Any) -> str:
    if value is None:
        return "?%"
    return f"{float(value):.3g}%"


def _short(value: Any, limit: int = 160) -> str:
    if isinstance(value, float):
        return f"{value:,.6g}"
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
