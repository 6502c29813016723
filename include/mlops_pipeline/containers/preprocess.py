"""Preprocessing job: raw card-transaction partitions → model-ready CSVs, vocabulary, baseline.

Runs as a SageMaker Processing job in the scikit-learn framework image (pandas, numpy),
``python3 preprocess.py --input-dir ... --train-dir ...``; every path is an argument (or
defaults under ``$SAGEMAKER_BASE_DIR``, /opt/ml on SageMaker). Self-contained: Python 3.8+,
pandas >= 1.1, numpy >= 1.19; nothing from the pipeline package.

``--mode fit`` (training):

1. reads every CSV under ``--input-dir`` (partitions ``dt=YYYY-MM-DD/…``, optionally only
   those within ``--start-date``..``--end-date``); a file that is not CSV, or lacks a schema
   column, fails the job naming the file; extra columns are dropped;
2. cleans: duplicate transaction_ids and invalid rows are dropped, each reason counted and
   logged; more than ``--max-invalid-fraction`` invalid rows fails the job;
3. splits by event_time: train < validation < test in time (every row of the validation
   and test windows is later than every training row: no leakage from the future);
4. engineers features with a vocabulary fitted on the training split only (fixed schema
   categories one-hot plus an ``other`` column, countries ordinal by training frequency);
5. writes ``train/train.csv``, ``validation/validation.csv``, ``test/test.csv``: label first,
   no header (the SageMaker XGBoost convention); to ``--metadata-dir``: ``header.csv``
   (the column names), ``vocabulary.json``, ``baseline.json`` (statistics of the training
   split for drift detection) and ``report.json``; optionally ``--keys-dir``: the
   transaction_id and event_time of every row of each split, in the same order.

``--mode transform`` (scoring): cleans the input the same way and writes
``features.csv`` (no label, no header; the inference input) and ``keys.csv`` to
``--output-dir``, encoded with a given ``--vocabulary``.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import math
import os
import re
import sys
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger("preprocess")

LABEL = "is_fraud"
RAW_COLUMNS = [
    "transaction_id",
    "event_time",
    "card_id",
    "amount",
    "merchant_category",
    "channel",
    "country",
    "hour",
    "card_age_days",
    "txn_count_1h",
    "txn_count_24h",
    "distance_from_home_km",
    LABEL,
]
MERCHANT_CATEGORIES = [
    "grocery",
    "restaurants",
    "gas",
    "travel",
    "electronics",
    "online_retail",
    "entertainment",
    "health",
]
CHANNELS = ["pos", "online", "atm", "contactless"]
INTEGER_COLUMNS = ["hour", "card_age_days", "txn_count_1h", "txn_count_24h"]
NUMERIC_RAW = ["amount", *INTEGER_COLUMNS, "distance_from_home_km"]
CATEGORICAL_RAW = ["merchant_category", "channel", "country"]
NIGHT_HOURS = [22, 23, 0, 1, 2, 3, 4, 5]
NEW_CARD_DAYS = 30
OTHER = "__other__"
QUANTILES = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]
_PARTITION = re.compile(r"dt=(\d{4}-\d{2}-\d{2})")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


class PreprocessError(Exception):
    """Input the job cannot use; the message names the file or column and the fix."""


def base_dir(*parts: str) -> str:
    return os.path.join(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"), *parts)


# -- reading -------------------------------------------------------------------------------------


def partition_date(path: str) -> str | None:
    match = _PARTITION.search(path)
    return match.group(1) if match else None


def find_files(
    input_dir: str, start: str | None = None, end: str | None = None
) -> list[tuple[str, str | None]]:
    """(path, partition date) of every file under input_dir within [start, end]."""
    if not os.path.isdir(input_dir):
        raise PreprocessError(f"input directory {input_dir} does not exist")
    found = []
    for path in sorted(glob.glob(os.path.join(input_dir, "**", "*"), recursive=True)):
        if not os.path.isfile(path) or os.path.basename(path).startswith((".", "_")):
            continue
        day = partition_date(os.path.relpath(path, input_dir))
        if day is not None and ((start and day < start) or (end and day > end)):
            continue
        found.append((path, day))
    return found


def read_partition(path: str, label: str, require_label: bool = True) -> pd.DataFrame:
    """One raw file as strings (empty cells as NaN); schema problems raise naming the file."""
    required = [c for c in RAW_COLUMNS if require_label or c != LABEL]
    try:
        frame = pd.read_csv(
            path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8"
        )
    except pd.errors.EmptyDataError:
        log.warning("%s is empty (zero bytes): skipped", label)
        return pd.DataFrame({c: pd.Series(dtype=object) for c in required})
    except (UnicodeDecodeError, pd.errors.ParserError, ValueError) as error:
        raise PreprocessError(
            f"{label} is not a readable UTF-8 CSV file ({type(error).__name__}: "
            f"{str(error)[:200]}): regenerate or remove the partition"
        ) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise PreprocessError(
            f"{label} lacks column(s) {', '.join(missing)} (it has: {', '.join(frame.columns)}): "
            "fix the export so every partition follows the transactions schema"
        )
    extra = [c for c in frame.columns if c not in RAW_COLUMNS]
    if extra:
        log.warning("%s has extra column(s) %s: ignored", label, ", ".join(extra))
    if frame.empty:
        log.warning("%s has no rows", label)
    return frame[[c for c in RAW_COLUMNS if c in frame.columns]]


def read_inputs(
    input_dir: str, start: str | None, end: str | None, require_label: bool = True
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    files = find_files(input_dir, start, end)
    if not files:
        window = f" within {start or '…'}..{end or '…'}" if (start or end) else ""
        raise PreprocessError(f"no input files under {input_dir}{window}")
    frames, read = [], []
    for path, day in files:
        label = os.path.relpath(path, input_dir)
        frame = read_partition(path, label, require_label)
        frame["_partition"] = day
        frames.append(frame)
        read.append({"file": label, "partition": day, "rows": int(len(frame))})
        log.info("read %s: %d rows", label, len(frame))
    return pd.concat(frames, ignore_index=True), read


# -- cleaning ------------------------------------------------------------------------------------


def parse_times(values: pd.Series) -> pd.Series:
    if int(pd.__version__.split(".")[0]) >= 2:
        return pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    # pandas 1.x infers ISO-8601 by itself; it would read format="ISO8601" as a strptime
    # pattern and, with errors="coerce", turn every timestamp into NaT
    return pd.to_datetime(values, utc=True, errors="coerce")


def clean(raw: pd.DataFrame, require_label: bool = True) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Typed, valid, de-duplicated rows and the count of rows dropped for each reason.

    A row is counted under the first reason that applies, in the order checked.
    """
    frame = raw.copy()
    for column in ("transaction_id", "card_id", "merchant_category", "channel", "country"):
        frame[column] = frame[column].str.strip()
    frame["event_time"] = parse_times(frame["event_time"])
    for column in NUMERIC_RAW + ([LABEL] if LABEL in frame else []):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")

    original = raw.copy()
    invalid = pd.Series("", index=frame.index, dtype=object)

    def flag(mask: pd.Series, reason: str) -> None:
        invalid[mask & (invalid == "")] = reason

    checked = [c for c in RAW_COLUMNS if c in frame]
    for column in checked:
        flag(original[column].isna(), f"missing {column}")
    for column in NUMERIC_RAW + ([LABEL] if LABEL in frame else []):
        flag(frame[column].isna() & original[column].notna(), f"{column} not a number")
    flag(frame["event_time"].isna() & original["event_time"].notna(), "event_time not a timestamp")
    flag(frame["amount"] <= 0, "amount not positive")
    for column in INTEGER_COLUMNS:
        value = frame[column]
        flag((value < 0) | (value != np.floor(value)), f"{column} not a whole number >= 0")
    flag(frame["distance_from_home_km"] < 0, "distance_from_home_km negative")
    flag(frame["hour"] > 23, "hour outside 0..23")
    flag(frame["hour"] != frame["event_time"].dt.hour, "hour differs from event_time's hour")
    flag(frame["txn_count_24h"] < frame["txn_count_1h"], "txn_count_24h < txn_count_1h")
    if LABEL in frame:
        flag(~frame[LABEL].isin([0, 1]), f"{LABEL} not 0 or 1")
    flag(~frame["country"].fillna("").str.match(_COUNTRY), "country not ISO-3166 alpha-2")
    day = frame["event_time"].dt.strftime("%Y-%m-%d")
    flag(
        frame["_partition"].notna() & (day != frame["_partition"]),
        "event_time outside its partition's day",
    )

    # among otherwise valid rows, the first occurrence of a transaction_id wins
    ids = frame["transaction_id"].where(invalid == "")
    invalid[ids.notna() & ids.duplicated(keep="first")] = "duplicate transaction_id"

    reasons = invalid[invalid != ""].value_counts().sort_index()
    kept = frame[invalid == ""].copy()
    for column in INTEGER_COLUMNS + ([LABEL] if LABEL in kept else []):
        kept[column] = kept[column].astype("int64")
    unknown = {
        column: int((~kept[column].isin(allowed)).sum())
        for column, allowed in (("merchant_category", MERCHANT_CATEGORIES), ("channel", CHANNELS))
    }
    report = {
        "rows_read": int(len(frame)),
        "rows_kept": int(len(kept)),
        "rows_dropped": int((invalid != "").sum()),
        "dropped_by_reason": {str(k): int(v) for k, v in reasons.items()},
        "unknown_categories_kept_as_other": unknown,
    }
    return kept.drop(columns=["_partition"]), report


# -- splitting -----------------------------------------------------------------------------------


def utc_timestamp(text: str | None) -> pd.Timestamp | None:
    if not text:
        return None
    stamp = pd.Timestamp(text)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def time_split(
    frame: pd.DataFrame,
    train_fraction: float,
    validation_fraction: float,
    validation_start: pd.Timestamp | None = None,
    test_start: pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """train < validation < test by event_time; a timestamp never straddles two splits."""
    ordered = frame.sort_values(["event_time", "transaction_id"], kind="mergesort")
    times = ordered["event_time"]
    if validation_start is None or test_start is None:
        n = len(ordered)
        if validation_start is None:
            validation_start = times.iloc[min(n - 1, int(n * train_fraction))]
        if test_start is None:
            index = min(n - 1, int(n * (train_fraction + validation_fraction)))
            test_start = max(times.iloc[index], validation_start)
    if test_start < validation_start:
        raise PreprocessError(
            f"--test-start {test_start} is before --validation-start {validation_start}"
        )
    train = ordered[times < validation_start]
    validation = ordered[(times >= validation_start) & (times < test_start)]
    test = ordered[times >= test_start]
    for name, part in (("train", train), ("validation", validation), ("test", test)):
        if part.empty:
            raise PreprocessError(
                f"the {name} split is empty (boundaries: validation from {validation_start}, "
                f"test from {test_start}, data {times.iloc[0]}..{times.iloc[-1]}): widen the "
                "date window or change the split fractions"
            )
    return train, validation, test


# -- features ------------------------------------------------------------------------------------


def fit_vocabulary(train: pd.DataFrame, min_country_count: int) -> dict[str, Any]:
    counts = train["country"].value_counts()
    common = counts[counts >= min_country_count]
    # by frequency, ties by code: the same data always give the same codes
    codes = sorted(common.index, key=lambda c: (-int(common[c]), c))
    total = float(len(train))
    return {
        "version": 1,
        "label": LABEL,
        "merchant_category": list(MERCHANT_CATEGORIES),
        "channel": list(CHANNELS),
        "country": {
            "codes": [OTHER, *codes],  # ordinal = position; 0 is every other country
            "frequency": {c: round(int(common[c]) / total, 8) for c in codes},
            "min_count": min_country_count,
        },
        "night_hours": NIGHT_HOURS,
        "new_card_days": NEW_CARD_DAYS,
        "features": feature_names(),
    }


def feature_names() -> list[str]:
    return [
        "amount",
        "log_amount",
        "hour",
        "hour_sin",
        "hour_cos",
        "is_night",
        "day_of_week",
        "is_weekend",
        "card_age_days",
        "log_card_age",
        "is_new_card",
        "txn_count_1h",
        "txn_count_24h",
        "velocity_ratio",
        "amount_per_daily_txn",
        "distance_from_home_km",
        "log_distance",
        "country_code",
        "country_frequency",
        *[f"merchant_{c}" for c in MERCHANT_CATEGORIES],
        "merchant_other",
        *[f"channel_{c}" for c in CHANNELS],
        "channel_other",
    ]


def engineer(frame: pd.DataFrame, vocabulary: dict[str, Any]) -> pd.DataFrame:
    """Model features, in vocabulary["features"] order, as float64."""
    amount = frame["amount"].astype(float)
    hour = frame["hour"].astype(float)
    age = frame["card_age_days"].astype(float)
    c1h = frame["txn_count_1h"].astype(float)
    c24h = frame["txn_count_24h"].astype(float)
    distance = frame["distance_from_home_km"].astype(float)
    dow = frame["event_time"].dt.day_of_week.astype(float)
    country = vocabulary["country"]
    ordinal = {code: i for i, code in enumerate(country["codes"])}
    out = {
        "amount": amount,
        "log_amount": np.log1p(amount),
        "hour": hour,
        "hour_sin": np.sin(2 * math.pi * hour / 24),
        "hour_cos": np.cos(2 * math.pi * hour / 24),
        "is_night": hour.isin(vocabulary["night_hours"]).astype(float),
        "day_of_week": dow,
        "is_weekend": (dow >= 5).astype(float),
        "card_age_days": age,
        "log_card_age": np.log1p(age),
        "is_new_card": (age < vocabulary["new_card_days"]).astype(float),
        "txn_count_1h": c1h,
        "txn_count_24h": c24h,
        # share of the last day's card activity that happened in the last hour: bursts
        "velocity_ratio": c1h / np.maximum(c24h, 1.0),
        "amount_per_daily_txn": amount / (c24h + 1.0),
        "distance_from_home_km": distance,
        "log_distance": np.log1p(distance),
        "country_code": frame["country"].map(ordinal).fillna(0).astype(float),
        "country_frequency": frame["country"].map(country["frequency"]).fillna(0).astype(float),
    }
    for column, prefix in (("merchant_category", "merchant"), ("channel", "channel")):
        known = vocabulary[column]
        for value in known:
            out[f"{prefix}_{value}"] = (frame[column] == value).astype(float)
        out[f"{prefix}_other"] = (~frame[column].isin(known)).astype(float)
    features = pd.DataFrame(out, index=frame.index)
    return features[vocabulary["features"]]


# -- baseline statistics -------------------------------------------------------------------------


def numeric_stats(values: pd.Series) -> dict[str, Any]:
    """count, missing, mean, std, min, max, quantiles and a decile histogram.

    The histogram's edges are the training deciles (duplicates merged); bins are
    right-closed, (-inf, e1], (e1, e2], ..., (ek, +inf), so a day's fractions in the same
    bins give a population stability index against these.
    """
    present = values.dropna().astype(float)
    if present.empty:
        return {"count": 0, "missing": int(values.isna().sum())}
    edges = np.unique(np.quantile(present, np.linspace(0.1, 0.9, 9)))
    bins = np.searchsorted(edges, present.to_numpy(), side="left")
    fractions = np.bincount(bins, minlength=len(edges) + 1) / float(len(present))
    return {
        "count": int(len(present)),
        "missing": int(values.isna().sum()),
        "mean": float(present.mean()),
        "std": float(present.std(ddof=0)),
        "min": float(present.min()),
        "max": float(present.max()),
        "quantiles": {f"p{round(q * 100):02d}": float(present.quantile(q)) for q in QUANTILES},
        "histogram": {
            "edges": [float(e) for e in edges],
            "fractions": [round(float(f), 8) for f in fractions],
        },
    }


def categorical_stats(values: pd.Series, top: int = 50) -> dict[str, Any]:
    counts = values.value_counts()
    total = float(len(values))
    head = counts.iloc[:top]
    frequencies = {str(k): round(int(v) / total, 8) for k, v in head.items()}
    rest = int(counts.iloc[top:].sum())
    if rest:
        frequencies[OTHER] = round(rest / total, 8)
    return {"count": int(total), "distinct": int(len(counts)), "frequencies": frequencies}


def baseline(train: pd.DataFrame, features: pd.DataFrame) -> dict[str, Any]:
    return {
        "dataset": "train",
        "rows": int(len(train)),
        "event_time": {
            "min": train["event_time"].min().isoformat(),
            "max": train["event_time"].max().isoformat(),
        },
        "label": {"name": LABEL, "rate": float(train[LABEL].mean())},
        "numeric": {c: numeric_stats(train[c]) for c in NUMERIC_RAW},
        "categorical": {c: categorical_stats(train[c]) for c in CATEGORICAL_RAW},
        "features": {c: numeric_stats(features[c]) for c in features.columns},
    }


# -- writing -------------------------------------------------------------------------------------


def write_matrix(path: str, features: pd.DataFrame, label: pd.Series | None) -> None:
    table = features if label is None else pd.concat([label.rename(LABEL), features], axis=1)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    table.to_csv(path, header=False, index=False, float_format="%.10g")


def write_keys(path: str, frame: pd.DataFrame) -> None:
    keys = pd.DataFrame(
        {
            "transaction_id": frame["transaction_id"],
            "event_time": frame["event_time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )
    os.makedirs(os.path.dirname(path), exist_ok=True)
    keys.to_csv(path, index=False)


def write_json(path: str, data: Any) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=False)


def exit_message(text: str) -> None:
    """SageMaker shows /opt/ml/output/message as the job's ExitMessage (first 1 KB)."""
    try:
        os.makedirs(base_dir("output"), exist_ok=True)
        with open(base_dir("output", "message"), "w") as handle:
            handle.write(text[:1024])
    except OSError:
        log.warning("could not write the exit message")


def check_invalid_fraction(report: dict[str, Any], limit: float) -> None:
    read = report["rows_read"]
    if read == 0:
        raise PreprocessError("the input holds no rows: every partition is empty")
    share = report["rows_dropped"] / float(read)
    if share > limit:
        reasons = ", ".join(f"{k}: {v}" for k, v in report["dropped_by_reason"].items())
        raise PreprocessError(
            f"{share:.1%} of the {read} rows are invalid, above --max-invalid-fraction "
            f"{limit:.1%} ({reasons}): the data-quality gate should have stopped this input"
        )
    if report["rows_kept"] == 0:
        raise PreprocessError("no valid rows left after cleaning")


def run_fit(args: argparse.Namespace) -> dict[str, Any]:
    raw, files = read_inputs(args.input_dir, args.start_date, args.end_date)
    frame, report = clean(raw)
    for reason, count in report["dropped_by_reason"].items():
        log.info("dropped %d rows: %s", count, reason)
    check_invalid_fraction(report, args.max_invalid_fraction)
    train, validation, test = time_split(
        frame,
        args.train_fraction,
        args.validation_fraction,
        utc_timestamp(args.validation_start),
        utc_timestamp(args.test_start),
    )
    vocabulary = fit_vocabulary(train, args.min_country_count)
    splits = {"train": train, "validation": validation, "test": test}
    dirs = {"train": args.train_dir, "validation": args.validation_dir, "test": args.test_dir}
    summary: dict[str, Any] = {}
    train_features = None
    for name, part in splits.items():
        features = engineer(part, vocabulary)
        if name == "train":
            train_features = features
        write_matrix(os.path.join(dirs[name], f"{name}.csv"), features, part[LABEL])
        if args.keys_dir:
            write_keys(os.path.join(args.keys_dir, f"{name}.csv"), part)
        summary[name] = {
            "rows": int(len(part)),
            "positives": int(part[LABEL].sum()),
            "fraud_rate": float(part[LABEL].mean()),
            "event_time_min": part["event_time"].min().isoformat(),
            "event_time_max": part["event_time"].max().isoformat(),
        }
        if summary[name]["positives"] == 0:
            log.warning("the %s split has no fraud rows: its metrics will be undefined", name)
        log.info(
            "%s: %d rows, %d fraud, %s .. %s",
            name,
            len(part),
            summary[name]["positives"],
            summary[name]["event_time_min"],
            summary[name]["event_time_max"],
        )
    assert train_features is not None
    with open(os.path.join(_made(args.metadata_dir), "header.csv"), "w") as handle:
        handle.write(",".join([LABEL, *vocabulary["features"]]) + "\n")
    write_json(os.path.join(args.metadata_dir, "vocabulary.json"), vocabulary)
    write_json(os.path.join(args.metadata_dir, "baseline.json"), baseline(train, train_features))
    report.update(files=files, splits=summary)
    write_json(os.path.join(args.metadata_dir, "report.json"), report)
    exit_message(
        f"train={summary['train']['rows']} validation={summary['validation']['rows']} "
        f"test={summary['test']['rows']} dropped={report['rows_dropped']}"
    )
    return report


def run_transform(args: argparse.Namespace) -> dict[str, Any]:
    if not args.vocabulary:
        raise PreprocessError("--mode transform needs --vocabulary (vocabulary.json of the model)")
    with open(args.vocabulary) as handle:
        vocabulary = json.load(handle)
    raw, files = read_inputs(args.input_dir, args.start_date, args.end_date, require_label=False)
    frame, report = clean(raw, require_label=False)
    for reason, count in report["dropped_by_reason"].items():
        log.info("dropped %d rows: %s", count, reason)
    check_invalid_fraction(report, args.max_invalid_fraction)
    frame = frame.sort_values(["event_time", "transaction_id"], kind="mergesort")
    write_matrix(os.path.join(args.output_dir, "features.csv"), engineer(frame, vocabulary), None)
    write_keys(os.path.join(args.output_dir, "keys.csv"), frame)
    report.update(files=files)
    write_json(os.path.join(args.output_dir, "report.json"), report)
    exit_message(f"rows={report['rows_kept']} dropped={report['rows_dropped']}")
    return report


def _made(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    processing = base_dir("processing")
    parser.add_argument("--mode", choices=["fit", "transform"], default="fit")
    parser.add_argument("--input-dir", default=os.path.join(processing, "input", "raw"))
    parser.add_argument("--start-date", help="first partition (YYYY-MM-DD) to read")
    parser.add_argument("--end-date", help="last partition (YYYY-MM-DD) to read, inclusive")
    parser.add_argument("--train-dir", default=os.path.join(processing, "train"))
    parser.add_argument("--validation-dir", default=os.path.join(processing, "validation"))
    parser.add_argument("--test-dir", default=os.path.join(processing, "test"))
    parser.add_argument("--metadata-dir", default=os.path.join(processing, "metadata"))
    parser.add_argument("--keys-dir", help="write transaction_id/event_time per split here")
    parser.add_argument("--output-dir", default=os.path.join(processing, "output"))
    parser.add_argument("--vocabulary", help="vocabulary.json to encode with (transform mode)")
    parser.add_argument("--train-fraction", type=float, default=0.7)
    parser.add_argument("--validation-fraction", type=float, default=0.15)
    parser.add_argument("--validation-start", help="ISO timestamp; overrides the fractions")
    parser.add_argument("--test-start", help="ISO timestamp; overrides the fractions")
    parser.add_argument("--min-country-count", type=int, default=20)
    parser.add_argument("--max-invalid-fraction", type=float, default=0.2)
    args = parser.parse_args(argv)
    if not (0 < args.train_fraction < 1 and 0 < args.validation_fraction < 1):
        parser.error("--train-fraction and --validation-fraction must be between 0 and 1")
    if args.train_fraction + args.validation_fraction >= 1:
        parser.error("--train-fraction + --validation-fraction must leave room for a test split")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = parse_args(argv)
    if args.mode == "fit":
        report = run_fit(args)
    else:
        report = run_transform(args)
    print(json.dumps({k: v for k, v in report.items() if k != "files"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
