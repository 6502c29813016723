"""The project's Airflow plugin: what Airflow 3 plugins carry (listeners, UI), not operators.

- the cost listener: each DAG run's cost recorded in S3 when the run ends
  (``mlops_pipeline.cost.listener``)
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from mlops_pipeline.cost import listener as cost_listener


class MlopsPlugin(AirflowPlugin):
    name = "mlops"
    listeners = [cost_listener]
