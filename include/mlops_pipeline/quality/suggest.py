"""Constraint suggestion: profile a partition and draft a GX suite for a human to review.

Rules after Deequ's default set, each recorded in the expectation's ``meta.suggested_by``:

- complete_if_complete: a column with no nulls must have none (Error)
- retain_completeness: a partly null column keeps at least the lower end of the 95 %
  confidence interval of its completeness (Error)
- categorical_range: a text column with few distinct values keeps to them (Error)
- non_negative: a numeric column without negatives stays non-negative (Error)
- unique: a text or integer column whose values are all distinct is a key (Error)
- range: a numeric column stays within its observed min and max (Warning: ranges drift)

The draft passes on the partition it came from by construction; review and tighten it.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

# a text column is categorical when it has at most this many values, each used often
CATEGORICAL_MAX = 50
CATEGORICAL_RATIO = 0.1
RETAIN_MIN = 0.2
Z_95 = 1.96
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_PARTITION = re.compile(r"dt=\d{4}-\d{2}-\d{2}")


def infer_columns(df: pd.DataFrame) -> dict[str, str]:
    """Column types (string | int | float | timestamp) of a frame read as text."""
    import pandas as pd

    columns = {}
    for column in df.columns:
        values = df[column].dropna()
        if values.empty:
            columns[str(column)] = "string"
            continue
        numbers = pd.to_numeric(values, errors="coerce")
        if numbers.notna().all():
            columns[str(column)] = "int" if bool((numbers % 1 == 0).all()) else "float"
            continue
        if values.astype(str).str.match(_ISO_DATE).all():
            stamps = pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
            if stamps.notna().all():
                columns[str(column)] = "timestamp"
                continue
        columns[str(column)] = "string"
    return columns


def suggest(
    df: pd.DataFrame,
    columns: Mapping[str, str],
    *,
    dataset: str,
    source: str | None = None,
    profile: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A GX 1.x suite (dict, ready for JSON) drafted from ``df``'s profile."""
    if profile is None:
        from mlops_pipeline.containers.dq_data import profile as compute

        profile = compute(df, dict(columns))
    rows = int(profile["row_count"])
    expectations: list[dict[str, Any]] = [
        _exp(
            "expect_table_columns_to_match_set",
            {"column_set": list(columns), "exact_match": True},
            "schema",
        ),
        _exp("expect_table_row_count_to_be_between", {"min_value": 1}, "not_empty"),
    ]
    keys = []
    for column, kind in columns.items():
        stats = profile["columns"][column]
        completeness = stats.get("completeness") or 0.0
        if completeness >= 1.0:
            expectations.append(
                _exp(
                    "expect_column_values_to_not_be_null",
                    {"column": column},
                    "complete_if_complete",
                )
            )
        elif completeness >= RETAIN_MIN:
            expectations.append(
                _exp(
                    "expect_column_values_to_not_be_null",
                    {"column": column, "mostly": retained_completeness(completeness, rows)},
                    "retain_completeness",
                    observed=completeness,
                )
            )
        distinct = stats.get("distinct_count") or 0
        non_null = round(completeness * rows)
        if kind in ("string", "int") and non_null and distinct == non_null and rows > 1:
            keys.append(column)
            expectations.append(
                _exp("expect_column_values_to_be_unique", {"column": column}, "unique")
            )
        if kind == "string" and _categorical(distinct, non_null, stats):
            expectations.append(
                _exp(
                    "expect_column_values_to_be_in_set",
                    {"column": column, "value_set": sorted(stats["frequencies"])},
                    "categorical_range",
                )
            )
        if kind == "int" and 0 < distinct <= 2 and stats.get("frequencies"):
            values = sorted(int(float(v)) for v in stats["frequencies"])
            if set(values) <= {0, 1}:
                expectations.append(
                    _exp(
                        "expect_column_values_to_be_in_set",
                        {"column": column, "value_set": [0, 1]},
                        "categorical_range",
                    )
                )
        if kind in ("int", "float") and stats.get("min") is not None:
            low, high = stats["min"], stats["max"]
            if low >= 0:
                expectations.append(
                    _exp(
                        "expect_column_values_to_be_between",
                        {"column": column, "min_value": 0},
                        "non_negative",
                    )
                )
            if kind == "int":
                low, high = int(low), int(high)
            expectations.append(
                _exp(
                    "expect_column_values_to_be_between",
                    {"column": column, "min_value": low, "max_value": high},
                    "range",
                    severity="warning",
                )
            )
    meta: dict[str, Any] = {
        "dataset": dataset,
        "columns": dict(columns),
        "key": keys[:1],
        "suggested_from": source,
        "suggested_rows": rows,
        "suggested_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
    }
    if source and _PARTITION.search(source):
        meta["partition_uri"] = _PARTITION.sub("dt={partition}", source, count=1)
    return {
        "name": dataset,
        "meta": meta,
        "notes": {
            "format": "markdown",
            "content": [
                "Draft suggested by `python -m mlops_pipeline.quality suggest` from "
                f"{source or 'a partition'} ({rows:,} rows): review every expectation, "
                "its bounds and its severity before the gate uses it."
            ],
        },
        "expectations": expectations,
    }


def retained_completeness(completeness: float, rows: int) -> float:
    """Lower end of the 95 % interval of a completeness, rounded down to 2 decimals."""
    spread = Z_95 * math.sqrt(completeness * (1 - completeness) / max(rows, 1))
    return max(0.0, math.floor((completeness - spread) * 100) / 100)


def _categorical(distinct: int, non_null: int, stats: Mapping[str, Any]) -> bool:
    return (
        bool(stats.get("frequencies"))
        and 0 < distinct <= CATEGORICAL_MAX
        and distinct <= max(1, non_null * CATEGORICAL_RATIO)
    )


def _exp(
    kind: str,
    kwargs: dict[str, Any],
    rule: str,
    *,
    severity: str = "critical",
    observed: Any = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"suggested_by": rule}
    if observed is not None:
        meta["observed"] = observed
    return {"type": kind, "kwargs": kwargs, "meta": meta, "severity": severity}
