"""Who may read the plugin's pages: the same users, and the same DAGs, as the Airflow UI.

Airflow mounts a plugin's FastAPI app on the api-server as it is, with no authentication of
its own: without this, anyone who reaches the api-server reads every run's cost and every
release. The pages are opened from the UI (its JWT cookie comes along) or called with a
Bearer token from ``/auth/token``, exactly as the REST API is; the auth manager then decides,
DAG by DAG, what the user may see.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def login_required() -> Any:
    """A FastAPI dependency for a whole app: 401 without a valid login."""
    from airflow.api_fastapi.core_api.security import requires_authenticated
    from fastapi import Depends

    return Depends(requires_authenticated())


def current_user() -> Any:
    """A FastAPI dependency giving the logged-in user (for per-DAG checks)."""
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import Depends

    return Depends(get_user)


def may_read_runs(user: Any, dag_id: str) -> bool:
    """Whether ``user`` may read ``dag_id``'s runs (what the cost and release pages show)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import (
        DagAccessEntity,
        DagDetails,
    )

    return get_auth_manager().is_authorized_dag(
        method="GET", access_entity=DagAccessEntity.RUN, details=DagDetails(id=dag_id), user=user
    )


def readable(user: Any, dag_ids: Iterable[str]) -> list[str]:
    return [d for d in dag_ids if may_read_runs(user, d)]


def forbid_unless_readable(user: Any, dag_id: str) -> None:
    from fastapi import HTTPException

    if not may_read_runs(user, dag_id):
        raise HTTPException(status_code=403, detail=f"you may not read the runs of {dag_id}")


def s3_reader(factory: Any = None) -> Any:
    """What a plugin page reads S3 with: ``factory()`` when given (tests), else a client on
    the settings' AWS connection, made per request (the connection may change meanwhile)."""

    def s3() -> Any:
        if factory is not None:
            return factory()
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        from mlops_pipeline.config import load_settings

        return AwsBaseHook(aws_conn_id=load_settings().aws_conn_id, client_type="s3").get_conn()

    return s3
