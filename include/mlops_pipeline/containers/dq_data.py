"""Reading a partition against its declared schema, and profiling it (pandas only).

Part of the validation job's code (uploaded beside validate.py) and imported by the
pipeline's suggestion CLI, so it depends on pandas, numpy and the standard library only.

Reading never raises on bad data: every problem (no files, an empty partition, a file that
is not CSV, a missing or extra column, values of the wrong type) comes back as a
:class:`Problem` naming the file and column, so the gate can say what is wrong.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

TYPES = ("string", "int", "float", "timestamp")
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
# columns with at most this many distinct values get a frequency table (category shares)
MAX_CATEGORIES = 50
SAMPLE = 5
# SageMaker/Spark markers and hidden files are not data
_IGNORED_PREFIXES = ("_", ".")


@dataclass(frozen=True)
class Problem:
    kind: str  # missing_partition | empty_partition | unparsable_file | missing_columns |
    # extra_columns | wrong_types
    message: str
    file: str | None = None
    column: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def data_files(root: str) -> list[str]:
    """Data files under ``root`` (recursively, sorted), skipping markers and hidden files."""
    found = []
    for directory, _, names in os.walk(root):
        for name in names:
            if not name.startswith(_IGNORED_PREFIXES):
                found.append(os.path.join(directory, name))
    return sorted(found)


def read_partition(
    files: list[str], columns: dict[str, str], *, root: str | None = None, header: bool = True
) -> tuple[pd.DataFrame | None, list[Problem]]:
    """One DataFrame typed per ``columns`` (name -> type), or the problems that prevent it.

    Without ``header`` (e.g. SageMaker's label-first training CSVs), ``columns`` names the
    fields in file order.
    """
    import pandas as pd

    unknown = {c: t for c, t in columns.items() if t not in TYPES}
    if unknown:
        raise ValueError(f"unknown column types {unknown}: use one of {', '.join(TYPES)}")
    if not files:
        return None, [Problem("missing_partition", "the partition has no data files")]
    frames, problems = [], []
    for path in files:
        name = os.path.relpath(path, root) if root else os.path.basename(path)
        frame, found = _read_file(path, name, columns, header)
        problems.extend(found)
        if frame is not None:
            frames.append(frame)
    if problems:
        return None, problems
    df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    if len(df) == 0:
        return None, [
            Problem(
                "empty_partition",
                f"the partition has no rows ({len(files)} file(s) with a header only or empty)",
            )
        ]
    return df, []


def _read_file(
    path: str, name: str, columns: dict[str, str], header: bool = True
) -> tuple[pd.DataFrame | None, list[Problem]]:
    import pandas as pd

    if os.path.getsize(path) == 0:
        return pd.DataFrame({c: [] for c in columns}), []
    with open(path, "rb") as fh:
        head = fh.read(65536)
    compression = "infer"
    if head[:2] == b"\x1f\x8b":
        compression = "gzip"  # gzip without a .gz name still reads
    else:
        try:
            # a multi-byte character may be cut at the end of the sample
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:
                return None, [
                    Problem(
                        "unparsable_file",
                        f"{name} is not UTF-8 text (byte {exc.start}): is it binary or "
                        "compressed under a .csv name?",
                        file=name,
                    )
                ]
    options: dict[str, Any] = {
        "compression": compression,
        # only an empty field is missing: "NA" is Namibia's country code, not a null
        "keep_default_na": False,
        "na_values": [""],
    }
    try:
        if header:
            found = list(pd.read_csv(path, nrows=0, **options).columns)
            problems = _header_problems(name, found, columns)
        else:
            # no names to compare: at least the width must be the schema's, or every
            # column after a missing or extra one would be read as its neighbour
            options.update(header=None)
            try:
                width = pd.read_csv(path, nrows=1, **options).shape[1]
            except pd.errors.EmptyDataError:  # blank lines only: no rows, like an empty file
                return pd.DataFrame({c: [] for c in columns}), []
            problems = _width_problems(name, width, columns)
            options.update(names=list(columns))
    except Exception as exc:  # noqa: BLE001 - any reader error is a property of the file
        return None, [_unparsable(name, exc)]
    if problems:
        return None, problems
    fast = {c: {"int": "int64", "float": "float64"}.get(t, "str") for c, t in columns.items()}
    try:
        df = pd.read_csv(path, dtype=fast, **options)  # typed in one pass: the common case
    except (ValueError, TypeError, OverflowError):
        try:
            # some value does not fit its type: read as text to say which ones
            df = pd.read_csv(path, dtype=str, **options)
        except Exception as exc:  # noqa: BLE001
            return None, [_unparsable(name, exc)]
    except Exception as exc:  # noqa: BLE001
        return None, [_unparsable(name, exc)]
    return _coerce(df, name, columns)


def _unparsable(name: str, exc: Exception) -> Problem:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return Problem("unparsable_file", f"{name} cannot be parsed as CSV: {text}", file=name)


def _header_problems(name: str, header: list[str], columns: dict[str, str]) -> list[Problem]:
    problems = []
    missing = [c for c in columns if c not in header]
    extra = [c for c in header if c not in columns]
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if missing:
        problems.append(
            Problem(
                "missing_columns",
                f"{name} lacks column(s) {', '.join(missing)} (found: {', '.join(header)})",
                file=name,
                column=",".join(missing),
            )
        )
    if extra or duplicated:
        what = extra + [f"{c} (twice)" for c in duplicated if c not in extra]
        problems.append(
            Problem(
                "extra_columns",
                f"{name} has column(s) {', '.join(what)} that the schema does not declare; "
                "update the suite's meta.columns if the change is intended",
                file=name,
                column=",".join(extra or duplicated),
            )
        )
    return problems


def _width_problems(name: str, width: int, columns: dict[str, str]) -> list[Problem]:
    """A file without a header is read by position: its rows must have one field per column."""
    if width == len(columns):
        return []
    fewer = width < len(columns)
    return [
        Problem(
            "missing_columns" if fewer else "extra_columns",
            f"{name} has {width} field(s) per row where the schema declares {len(columns)} "
            f"columns ({', '.join(columns)}); the file has no header, so its columns are "
            f"matched by position and {'a missing' if fewer else 'an extra'} one would shift "
            "every later column: update the suite's meta.columns if the change is intended",
            file=name,
        )
    ]


def _coerce(
    df: pd.DataFrame, name: str, columns: dict[str, str]
) -> tuple[pd.DataFrame | None, list[Problem]]:
    import pandas as pd

    problems = []
    out = {}
    for column, kind in columns.items():
        series = df[column]
        if kind == "string":
            out[column] = series
            continue
        if kind == "timestamp":
            converted = pd.to_datetime(series, utc=True, format="ISO8601", errors="coerce")
            expected = "ISO-8601 timestamps"
        else:
            if series.dtype.kind in "iuf":
                out[column] = series
                continue
            converted = pd.to_numeric(series, errors="coerce")
            expected = "numbers"
            if kind == "int":
                fractional = converted.notna() & (converted % 1 != 0)
                converted = converted.mask(fractional)
                expected = "whole numbers"
        bad = series.notna() & converted.isna()
        count = int(bad.sum())
        if count:
            examples = [str(v) for v in series[bad].unique()[:SAMPLE]]
            problems.append(
                Problem(
                    "wrong_types",
                    f"{name}: column {column} ({kind}) has {count} value(s) that are not "
                    f"{expected}, e.g. {examples}",
                    file=name,
                    column=column,
                )
            )
            continue
        if kind == "int":
            # a nullable int stays float64: GX and numpy handle NaN there; the not-null
            # expectations report the missing values
            converted = converted.astype("int64" if not converted.isna().any() else "float64")
        out[column] = converted
    if problems:
        return None, problems
    return pd.DataFrame(out), []


# -- profile ------------------------------------------------------------------------------
def profile(df: pd.DataFrame, columns: dict[str, str] | None = None) -> dict[str, Any]:
    """The metrics kept in the history: size, completeness, distinctness, min/max/mean/stddev,
    quantiles and category frequencies, computed once per partition.

    Definitions match the GX metrics that anomaly checks compare them with: distinctness is
    distinct non-null values over non-null values (GX's proportion of unique values),
    quantiles use nearest-rank interpolation (GX's pandas default), stddev is the sample one.
    """
    rows = len(df)
    result: dict[str, Any] = {"row_count": rows, "column_count": len(df.columns), "columns": {}}
    for column in df.columns:
        series = df[column]
        kind = (columns or {}).get(column) or _kind(series)
        non_null = series.dropna()
        count = len(non_null)
        stats: dict[str, Any] = {
            "type": kind,
            "completeness": _num(count / rows) if rows else None,
        }
        # one hash pass gives both the distinct count and the category shares
        counts = non_null.value_counts(sort=True) if count else None
        distinct = len(counts) if counts is not None else 0
        stats["distinct_count"] = distinct
        stats["distinctness"] = _num(distinct / count) if count else None
        if kind in ("int", "float") and count:
            values = non_null.astype("float64")
            stats.update(
                min=_num(values.min()),
                max=_num(values.max()),
                mean=_num(values.mean()),
                stddev=_num(values.std()) if count > 1 else None,
                quantiles={
                    _q(q): _num(v)
                    for q, v in zip(
                        QUANTILES,
                        values.quantile(list(QUANTILES), interpolation="nearest"),
                        strict=True,
                    )
                },
            )
        elif kind == "timestamp" and count:
            stats.update(min=_iso(non_null.min()), max=_iso(non_null.max()))
        if counts is not None and kind != "float" and distinct <= MAX_CATEGORIES:
            stats["frequencies"] = {_key(k): _num(v / count) for k, v in counts.items()}
        result["columns"][str(column)] = stats
    return result


def _kind(series: pd.Series) -> str:
    kind = series.dtype.kind
    if kind in "iub":
        return "int"
    if kind == "f":
        return "float"
    if kind == "M":
        return "timestamp"
    return "string"


def _key(value: Any) -> str:
    if hasattr(value, "isoformat"):
        return _iso(value)
    item = getattr(value, "item", None)
    return str(item() if callable(item) else value)


def _q(q: float) -> str:
    return f"{q:g}"


def _num(value: Any) -> float | None:
    number = float(value)
    return None if math.isnan(number) or math.isinf(number) else number


def _iso(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z")
