"""The project's Airflow plugin: what Airflow 3 plugins carry (listeners, UI), not operators.

- the cost listener: each DAG run's cost recorded in S3 when the run ends, and an alert
  for a run that fails without a failed task (``mlops_pipeline.cost.listener``);
- the Cost view: a FastAPI app under ``/mlops/cost`` and its entry in the UI's navigation
  (``mlops_pipeline.cost.view``).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from mlops_pipeline.cost import listener as cost_listener
from mlops_pipeline.cost import view as cost_view


class MlopsPlugin(AirflowPlugin):
    name = "mlops"
    listeners = [cost_listener]
    fastapi_apps = [
        {"app": cost_view.create_app(), "url_prefix": cost_view.URL_PREFIX, "name": "Cost"}
    ]
    external_views = [
        {
            "name": "Cost",
            "href": f"{cost_view.URL_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "cost",
        },
        # the UI fills in {DAG_ID} and {RUN_ID} on a DAG's and a run's page
        {
            "name": "Cost",
            "href": f"{cost_view.URL_PREFIX}/?dag_id={{DAG_ID}}",
            "destination": "dag",
            "url_route": "dag-cost",
        },
        {
            "name": "Cost",
            "href": f"{cost_view.URL_PREFIX}/run?dag_id={{DAG_ID}}&run_id={{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "run-cost",
        },
    ]
