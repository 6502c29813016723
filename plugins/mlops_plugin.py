"""The project's Airflow plugin: what Airflow 3 plugins carry (listeners, UI), not operators,
which stay in the mlops_pipeline package.

- the Releases view: the canary releases' audit records, a FastAPI app under
  ``/mlops/releases`` linked from the UI's navigation (``mlops_pipeline.deploy.releases_view``);
- the cost listener: each DAG run's cost recorded in S3 when the run ends
  (``mlops_pipeline.cost.listener``);
- the Cost view: a FastAPI app under ``/mlops/cost`` and its entries in the UI's navigation
  and on DAG and run pages (``mlops_pipeline.cost.view``);
- Data Docs: each dataset's site under ``/mlops/data-docs``, its static files from the
  installed great_expectations (``mlops_pipeline.quality.docs_view``);
- the task links of the SageMaker tasks: the job, endpoint or model package, its
  CloudWatch logs, a validation's Data Docs page (``mlops_pipeline.links``).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from mlops_pipeline.cost import listener as cost_listener
from mlops_pipeline.cost import view as cost_view
from mlops_pipeline.deploy.releases_view import create_app as create_releases_app
from mlops_pipeline.links import DataDocsLink, SageMakerLogsLink, SageMakerResourceLink
from mlops_pipeline.quality import docs_view

RELEASES_PREFIX = "/mlops/releases"


class MlopsPlugin(AirflowPlugin):
    name = "mlops"
    listeners = [cost_listener]
    fastapi_apps = [
        {"app": create_releases_app(), "url_prefix": RELEASES_PREFIX, "name": "Releases"},
        {"app": cost_view.create_app(), "url_prefix": cost_view.URL_PREFIX, "name": "Cost"},
        {"app": docs_view.create_app(), "url_prefix": docs_view.URL_PREFIX, "name": "Data Docs"},
    ]
    operator_extra_links = [SageMakerResourceLink(), SageMakerLogsLink(), DataDocsLink()]
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
        {
            "name": "Data Docs",
            "href": f"{docs_view.URL_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "data-docs",
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
