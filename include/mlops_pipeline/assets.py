"""The Airflow Assets that connect the DAGs.

``card_fraud_model_package``: model_build's register publishes an event on it for every
package it registers (``extra={"model_package_arn": ...}``); model_deploy is scheduled on
it, so a new package waits for approval at once.

``card_fraud_drift``: batch_inference's detect_drift publishes an event on it when the
scored data drift from the model's training baseline; model_build is scheduled on it, so
drift retrains the model. An event may carry ``extra={"partition": "YYYY-MM-DD"}``, the day
that drifted: model_build then trains on the window ending that day.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from mlops_pipeline.config import Settings, load_settings

if TYPE_CHECKING:
    from airflow.sdk import Asset

DRIFT_ASSET_NAME = "card_fraud_drift"
MODEL_PACKAGE_ASSET_NAME = "card_fraud_model_package"
DRIFT_PREFIX = "monitoring/drift/card-fraud"


def drift_asset(settings: Settings | None = None) -> Asset:
    from airflow.sdk import Asset

    settings = settings or load_settings()
    return Asset(name=DRIFT_ASSET_NAME, uri=settings.s3_uri(DRIFT_PREFIX))


def model_package_asset() -> Asset:
    from airflow.sdk import Asset

    return Asset(name=MODEL_PACKAGE_ASSET_NAME)


def registered_package(triggering_asset_events: Mapping[Any, Iterable[Any]]) -> str | None:
    """The newest package ARN the triggering registration events name, if any."""
    arns = [
        (event.timestamp, event.extra["model_package_arn"])
        for events in triggering_asset_events.values()
        for event in events
        if (event.extra or {}).get("model_package_arn")
    ]
    return max(arns)[1] if arns else None


def drifted_partition(triggering_asset_events: Mapping[Any, Iterable[Any]]) -> str | None:
    """The latest ``partition`` the triggering drift events name, if any (a manual run has
    no events)."""
    days = [
        event.extra.get("partition")
        for events in triggering_asset_events.values()
        for event in events
        if (event.extra or {}).get("partition")
    ]
    return max(days) if days else None
