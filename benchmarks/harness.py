"""The benchmark table: every row is a measured figure, its baseline and the target."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Row:
    name: str
    value: float
    unit: str
    baseline: float | None = None  # same unit, measured in the same run
    baseline_name: str = ""
    target: str = ""
    ok: bool | None = None  # whether the target is met (None: no target)

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline  # type: ignore[operator]


def render(rows: list[Row]) -> str:
    header = ("benchmark", "value", "baseline", "ratio", "target", "met")
    lines = [header]
    for r in rows:
        lines.append(
            (
                r.name,
                f"{r.value:,.3f} {r.unit}",
                f"{r.baseline:,.3f} {r.unit} ({r.baseline_name})"
                if r.baseline is not None
                else "-",
                f"{r.ratio:.2f}x" if r.ratio is not None else "-",
                r.target or "-",
                {True: "yes", False: "NO", None: "-"}[r.ok],
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for i, line in enumerate(lines):
        out.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def airflow_environment(
    home: str, aws: Any, bucket: str, group: str, **mlops: str
) -> dict[str, str]:
    """The environment of an ``airflow dags test`` subprocess against ``aws`` (a LocalAWS):
    its own Airflow home and SQLite DB, aws_default on local_aws, the local profile, and
    ``mlops`` as MLOPS_<NAME> settings. Nothing of the caller's Airflow, AWS or settings."""
    connection = {
        "conn_type": "aws",
        # no common word: Airflow masks a connection's password in every log line
        "login": "local-aws-key-id",
        "password": "local-aws-not-a-secret",
        "extra": {"endpoint_url": aws.url, "region_name": aws.region},
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_", "AWS_"))}
    env.update(
        AIRFLOW_HOME=home,
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        # as scripts/env.sh sets it for make demo / make up
        AIRFLOW__AWS__SESSION_FACTORY="mlops_pipeline.aws_session.SharedLoaderSessionFactory",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW_CONN_AWS_DEFAULT=json.dumps(connection),
        MLOPS_PROFILE="local",
        MLOPS_BUCKET=bucket,
        MLOPS_MODEL_PACKAGE_GROUP=group,
        **{f"MLOPS_{name.upper()}": value for name, value in mlops.items()},
    )
    return env


def run_window(database: Path, dag_id: str) -> tuple[str, float, float]:
    """The state of ``dag_id``'s one run in an ``airflow dags test`` SQLite database, and its
    first task start and last task end (epoch seconds): the span Airflow's share is of."""
    with sqlite3.connect(database) as db:
        [state] = db.execute("select state from dag_run where dag_id = ?", (dag_id,)).fetchone()
        first, last = db.execute(
            "select min(start_date), max(end_date) from task_instance where dag_id = ?",
            (dag_id,),
        ).fetchone()

    def epoch(value: str) -> float:
        stamp = dt.datetime.fromisoformat(value)
        return (stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)).timestamp()

    return state, epoch(first), epoch(last)
