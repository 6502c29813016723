"""The project's Airflow plugin: the Releases view (a FastAPI app under /mlops/releases,
linked from the UI's navigation) and the task links to SageMaker jobs and endpoints
(registered here so the UI can rebuild them from serialized DAGs). Operators stay in the mlops_pipeline package: Airflow 3
plugins carry UI and listeners, not operators."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from mlops_pipeline.deploy.releases_view import create_app
from mlops_pipeline.links import SageMakerResourceLink

RELEASES_PREFIX = "/mlops/releases"


class MlopsPlugin(AirflowPlugin):
    name = "mlops"
    fastapi_apps = [{"app": create_app(), "url_prefix": RELEASES_PREFIX, "name": "Releases"}]
    external_views = [
        {
            "name": "Releases",
            "href": f"{RELEASES_PREFIX}/",
            "destination": "nav",
            "url_route": "releases",
        }
    ]
    operator_extra_links = [SageMakerResourceLink()]
