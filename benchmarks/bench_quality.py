"""Data-quality validation: GX on 1M rows × the transactions suite, against raw pandas
computing the same metrics in the same process (target: at most 3× pandas).

The GX figure is what the validation job spends in GX for one partition once the data is
in memory: context, suite, batch, run (Data Docs off). The pandas figure computes, for each
expectation of the suite, the metric GX needs to decide it (null counts, out-of-range
counts, duplicates, regex mismatches, means, quantiles, ...), with nothing else.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from typing import Any

from benchmarks.harness import Row

ROWS = 1_000_000
REPEATS = 3
WINDOW = {
    "partition_start": "2026-01-05T00:00:00Z",
    "partition_end": "2026-01-05T23:59:59.999999Z",
}


def run(aws: Any = None, rows: int = ROWS) -> list[Row]:

    from mlops_pipeline.containers import dq_data, dq_gx, validate
    from mlops_pipeline.quality import suites
    from tests.quality.data import to_csv, transactions

    suite = suites.load_suite(suites.project_root(), "transactions")
    columns = suite["meta"]["columns"]
    raw = transactions(rows)
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        data = os.path.join(tmp, "data")
        os.makedirs(data)
        with open(os.path.join(data, "part-00000.csv"), "wb") as fh:
            fh.write(to_csv(raw))
        del raw
        df, problems = dq_data.read_partition(dq_data.data_files(data), columns)
        assert df is not None, problems

        started = time.perf_counter()
        dq_gx.ensure_gx()
        import great_expectations  # noqa: F401 - timed: the job pays it once

        import_s = time.perf_counter() - started

        def gx_run() -> dict[str, Any]:
            return dq_gx.run_suite(df, suite, parameters=dict(WINDOW))

        outcome = gx_run()  # warm: first-run imports inside GX
        assert outcome["success"], [e for e in outcome["expectations"] if not e["success"]]
        gx_s = _median(gx_run)
        pandas_s = _median(lambda: pandas_metrics(df, suite, WINDOW))

        started = time.perf_counter()
        validate.validate(
            data,
            suite,
            {"dataset": "transactions", "partition": "2026-01-05", "parameters": WINDOW},
            os.path.join(tmp, "out"),
        )
        job_s = time.perf_counter() - started
        with open(os.path.join(tmp, "out", "result.json")) as fh:
            timings = json.load(fh)["timings"]
        # what a run stores of Data Docs: its page alone, against the whole GX site (index,
        # fonts, images, styles) that every run wrote before the per-dataset site
        docs_bytes = _bytes(os.path.join(tmp, "out", "data_docs"))
        site = os.path.join(tmp, "site")
        dq_gx._run_suite(df, suite, [], dict(WINDOW), site, "transactions-2026-01-05", "BASIC")
        site_bytes = _bytes(site)
    count = len(suite["expectations"])
    ratio = gx_s / pandas_s
    label = f"{rows:,} rows x {count} expectations"
    return [
        Row(
            f"GX validation, {label} (median of {REPEATS})",
            gx_s,
            "s",
            baseline=pandas_s,
            baseline_name="raw pandas, same metrics",
            target="<= 3x pandas",
            ok=ratio <= 3.0,
        ),
        Row("GX import (once per job)", import_s, "s"),
        Row(
            "Data Docs stored per validation run (its page in the dataset's site)",
            docs_bytes / 1024,
            "KiB",
            baseline=site_bytes / 1024,
            baseline_name="a whole GX site per run",
            target="<= 200 KiB",
            ok=docs_bytes <= 200 * 1024,
        ),
        Row(
            f"validation job work, {label} (read CSV {timings['read_s']:.2f} s, profile "
            f"{timings['profile_s']:.2f} s, GX + Data Docs {timings['validate_s']:.2f} s)",
            job_s,
            "s",
        ),
    ]


def _bytes(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs)


def _median(fn: Any) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def pandas_metrics(df: Any, suite: dict[str, Any], parameters: dict[str, Any]) -> list[Any]:
    """Per expectation, the metric GX computes to decide it, in plain pandas."""
    import pandas as pd

    out: list[Any] = []
    for e in suite["expectations"]:
        kind, kw = e["type"], dict(e["kwargs"])
        for key, value in list(kw.items()):
            if isinstance(value, dict) and "$PARAMETER" in value:
                kw[key] = parameters[value["$PARAMETER"]]
        col = df[kw["column"]] if "column" in kw else None
        if kind == "expect_table_columns_to_match_set":
            out.append(set(df.columns) == set(kw["column_set"]))
        elif kind == "expect_table_row_count_to_be_between":
            out.append(len(df))
        elif kind == "expect_column_values_to_be_unique":
            out.append(int(col.duplicated(keep=False).sum()))
        elif kind == "expect_column_values_to_not_be_null":
            out.append(int(col.isna().sum()))
        elif kind == "expect_column_values_to_be_between":
            values = col.dropna()
            low, high = kw.get("min_value"), kw.get("max_value")
            if col.dtype.kind == "M":
                low = pd.Timestamp(low) if low is not None else None
                high = pd.Timestamp(high) if high is not None else None
            bad = pd.Series(False, index=values.index)
            if low is not None:
                bad |= values <= low if kw.get("strict_min") else values < low
            if high is not None:
                bad |= values >= high if kw.get("strict_max") else values > high
            out.append(int(bad.sum()))
        elif kind == "expect_column_values_to_be_in_set":
            out.append(int((~col.dropna().isin(kw["value_set"])).sum()))
        elif kind == "expect_column_values_to_match_regex":
            out.append(int((~col.dropna().str.contains(kw["regex"], regex=True)).sum()))
        elif kind == "expect_column_pair_values_a_to_be_greater_than_b":
            a, b = df[kw["column_A"]], df[kw["column_B"]]
            out.append(int((a < b).sum() if kw.get("or_equal") else (a <= b).sum()))
        elif kind == "expect_column_mean_to_be_between":
            out.append(col.mean())
        elif kind == "expect_column_stdev_to_be_between":
            out.append(col.std())
        elif kind == "expect_column_quantile_values_to_be_between":
            quantiles = kw["quantile_ranges"]["quantiles"]
            out.append(col.quantile(quantiles, interpolation="nearest").tolist())
        else:
            raise ValueError(f"no pandas baseline for {kind}: add one")
    return out
