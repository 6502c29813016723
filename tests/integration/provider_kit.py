"""Running test-local DAGs with dag.test() and reading what a user sees of the run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from tests.conftest import serialize_dag


def run_dag(dag_id: str, *task_factories: Callable[[], Any]) -> Any:
    """Build a DAG from ``task_factories`` (chained in order), sync it and ``dag.test()`` it.

    Returns the finished DagRun. Each factory builds one task inside the DAG context.
    """
    from airflow.sdk import DAG, chain

    with DAG(dag_id, schedule=None, start_date=dt.datetime(2026, 1, 1)) as dag:
        tasks = [factory() for factory in task_factories]
        chain(*tasks)
    serialize_dag(dag)
    return dag.test()


def xcom(run: Any, task_id: str) -> Any:
    """The return value a task pushed to XCom, as a downstream task would pull it."""
    ti = run.get_task_instance(task_id)
    assert ti is not None, f"no task instance {task_id!r} in {run.run_id}"
    return ti.xcom_pull(task_ids=task_id)


def states(run: Any) -> dict[str, str | None]:
    """task_id -> final state of each task instance in the run."""
    return {ti.task_id: ti.state for ti in run.get_task_instances()}
