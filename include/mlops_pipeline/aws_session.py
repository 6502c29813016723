"""A session factory for the Amazon provider that shares one botocore data loader.

Every hook builds a new boto3 session, and every session parses the service models again:
SageMaker's is a multi-megabyte JSON document, about 0.3 s of CPU per client. The
provider already shares one loader between its async (trigger) sessions for that reason
(and for memory, boto/botocore#3078); this does the same for the synchronous ones, so a
process that runs several tasks (``airflow dags test``, the demo, a worker running tasks
in-process) parses each model once.

Enable it with the provider's own extension point, before the provider is imported::

    AIRFLOW__AWS__SESSION_FACTORY=mlops_pipeline.aws_session.SharedLoaderSessionFactory

Only unauthenticated static data is shared (the loader reads botocore's JSON files);
credentials, region and endpoint stay per session.
"""

from __future__ import annotations

from typing import Any

import boto3
import botocore.session
from airflow.providers.amazon.aws.hooks.base_aws import BaseSessionFactory

_LOADER = botocore.loaders.create_loader()


class SharedLoaderSessionFactory(BaseSessionFactory):
    """BaseSessionFactory whose synchronous sessions share one botocore data loader."""

    def _create_basic_session(self, session_kwargs: dict[str, Any]) -> boto3.session.Session:
        core = botocore.session.get_session()
        core.register_component("data_loader", _LOADER)
        return boto3.session.Session(botocore_session=core, **session_kwargs)
