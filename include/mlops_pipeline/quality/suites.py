"""The GX file project: where the suites and anomaly files are, and loading them.

``great_expectations/gx/expectations/<suite>.json`` are GX 1.x suites (reviewable JSON;
``gx.get_context(mode="file", project_root_dir="great_expectations")`` opens them). Each
suite's ``meta`` declares what the validation job needs to read a partition: ``dataset``,
``columns`` (name -> string | int | float | timestamp; in file order when ``header`` is
false, i.e. the files have no header line), ``key`` and ``partition_uri``.
``great_expectations/anomaly/<dataset>.yml`` holds the dataset's anomaly checks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mlops_pipeline.config import Settings

TYPES = ("string", "int", "float", "timestamp")


class SuiteError(ValueError):
    """A suite file is missing or lacks what validation needs; the message says what."""


def project_root(settings: Settings | None = None) -> Path:
    """``settings.gx_root`` when set, else great_expectations/ of this repository."""
    if settings is not None and settings.gx_root:
        return Path(settings.gx_root)
    # include/mlops_pipeline/quality/suites.py -> repository root
    return Path(__file__).resolve().parents[3] / "great_expectations"


def suite_path(root: Path, suite: str) -> Path:
    return root / "gx" / "expectations" / f"{suite}.json"


def anomaly_path(root: Path, dataset: str) -> Path:
    return root / "anomaly" / f"{dataset}.yml"


def load_suite(root: Path, suite: str) -> dict[str, Any]:
    path = suite_path(root, suite)
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.json")) if path.parent.is_dir() else []
        raise SuiteError(
            f"no suite {suite!r} at {path} (known suites: {', '.join(known) or 'none'}); "
            "write one, or draft it with `python -m mlops_pipeline.quality suggest`"
        )
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise SuiteError(f"suite file {path} is not valid JSON: {exc}") from None
    check_suite(data, str(path))
    return data


def check_suite(data: Any, where: str) -> None:
    if not isinstance(data, dict) or not isinstance(data.get("expectations"), list):
        raise SuiteError(f"{where} is not a GX suite (no 'expectations' list)")
    meta = data.get("meta") or {}
    columns = meta.get("columns")
    if not isinstance(columns, dict) or not columns:
        raise SuiteError(
            f"{where}: meta.columns is required (column name -> one of {', '.join(TYPES)}); "
            "the validation job reads the partition with it"
        )
    wrong = {c: t for c, t in columns.items() if t not in TYPES}
    if wrong:
        raise SuiteError(f"{where}: meta.columns has unknown types {wrong}: use {', '.join(TYPES)}")
    for i, item in enumerate(data["expectations"], 1):
        if not isinstance(item, dict) or "type" not in item:
            raise SuiteError(f"{where}: expectation {i} has no 'type'")
        if item.get("severity", "critical") not in ("critical", "warning", "info"):
            raise SuiteError(
                f"{where}: expectation {i} ({item['type']}) has severity "
                f"{item.get('severity')!r}: use critical (Error), warning or info"
            )


def partition_uri(suite: dict[str, Any], settings: Settings, partition: str) -> str:
    """The partition's S3 prefix from the suite's ``meta.partition_uri`` template."""
    template = (suite.get("meta") or {}).get("partition_uri")
    if not template:
        raise SuiteError(
            f"suite {suite.get('name')!r} has no meta.partition_uri: pass input_uri explicitly"
        )
    path = template.format(partition=partition, dt=partition)
    return path if path.startswith("s3://") else settings.s3_uri(path).rstrip("/") + "/"


def write_suite(path: str | os.PathLike[str], suite: dict[str, Any]) -> None:
    """Write a suite the way GX's file store does (sorted keys, two-space indent)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(suite, indent=2, sort_keys=True) + "\n")
