"""The Airflow Assets that connect the DAGs.

``card_fraud_drift``: batch_inference's detect_drift publishes an event on it when the
scored data drift from the model's training baseline; model_build is scheduled on it, so
drift retrains the model. An event may carry ``extra={"partition": "YYYY-MM-DD"}``, the day
that drifted: model_build then trains on the window ending that day.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops_pipeline.config import Settings, load_settings

if TYPE_CHECKING:
    from airflow.sdk import Asset

DRIFT_ASSET_NAME = "card_fraud_drift"
DRIFT_PREFIX = "monitoring/drift/card-fraud"


def drift_asset(settings: Settings | None = None) -> Asset:
    from airflow.sdk import Asset

    settings = settings or load_settings()
    return Asset(name=DRIFT_ASSET_NAME, uri=settings.s3_uri(DRIFT_PREFIX))
