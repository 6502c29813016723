"""The project's Airflow plugin: what Airflow 3 plugins carry (listeners, UI), not operators,
which stay in the mlops_pipeline package.

- the Releases view: the canary releases' audit records, a FastAPI app under
  ``/mlops/releases`` linked from the UI's navigation (``mlops_pipeline.deploy.releases_view``);
- the cost listener: each DAG run's cost recorded in S3 when the run ends
  (``mlops_pipeline.cost.listener``);
- the Cost view: a FastAPI app under ``/mlops/cost`` and its entries in the UI's navigation
  and on DAG and run pages (``mlops_pipeline.cost.view``).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from mlops_pipeline.cost import listener as cost_listener
from mlops_pipeline.cost import view as cost_view
from mlops_pipeline.deploy.releases_view import create_app as create_releases_app

RELEASES_PREFIX = "/mlops/releases"


class MlopsPlugin(AirflowPlugin):
    name = "mlops"
    listeners = [cost_listener]
    fastapi_apps = [
        {"app": create_releases_app(), "url_prefix": RELEASES_PREFIX, "name": "Releases"},
        {"app": cost_view.create_app(), "url_prefix": cost_view.URL_PREFIX, "name": "Cost"},
    ]
    external_views = [
        {
            "name": "Releases",
            "href": f"{RELEASES_PREFIX}/",
            "destination": "nav",
            "url_route": "releases",
        },
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
