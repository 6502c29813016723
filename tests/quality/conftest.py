"""Fixtures for the data-quality tests: the project's suites and a partition on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlops_pipeline.quality import suites

ROOT = suites.project_root()
WINDOW = {
    "partition_start": "2026-01-05T00:00:00Z",
    "partition_end": "2026-01-05T23:59:59.999999Z",
}


def load(name: str) -> dict[str, Any]:
    return json.loads(suites.suite_path(ROOT, name).read_text())


@pytest.fixture
def transactions_suite() -> dict[str, Any]:
    return load("transactions")


def write_partition(directory: Path, body: bytes, name: str = "part-00000.csv") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(body)
    return directory


def params(**extra: Any) -> dict[str, Any]:
    return {
        "dataset": "transactions",
        "partition": "2026-01-05",
        "output_uri": "s3://bucket/quality/runs/transactions/dt=2026-01-05/job/output",
        "parameters": dict(WINDOW),
        **extra,
    }
