"""Task links to the SageMaker job or endpoint a task started: the AWS console's page on
AWS; offline, where the aws_default connection names an ``endpoint_url``, that endpoint's
own description page of the resource (``/_local_aws/describe/<kind>/<name>``).

The provider's BaseAwsLink pattern: the operator persists the link's parts in XCom when it
knows the resource; the UI formats the link from them. Registered by the project's plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink

if TYPE_CHECKING:
    from airflow.sdk import Context

# the console's URL segment per resource kind
KINDS = {
    "processing": "processing-jobs",
    "training": "training-jobs",
    "tuning": "hyper-tuning-jobs",
    "transform": "transform-jobs",
    "endpoint": "endpoints",
}


class SageMakerResourceLink(BaseAwsLink):
    name: ClassVar[str] = "SageMaker job / endpoint"
    key: ClassVar[str] = "mlops_sagemaker_resource"
    format_str: ClassVar[str] = (
        BASE_AWS_CONSOLE_LINK + "/sagemaker/home?region={region_name}#/{kind}/{resource}"
    )

    def format_link(self, **kwargs: Any) -> str:
        if kwargs.get("endpoint_url"):
            base = str(kwargs["endpoint_url"]).rstrip("/")
            return f"{base}/_local_aws/describe/{kwargs['kind']}/{kwargs['resource']}"
        return super().format_link(**kwargs)


def persist_link(context: Context, operator: Any, kind: str, resource: str) -> None:
    """Record the link of ``resource`` (a job or endpoint name) for ``operator``'s task."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    try:
        hook = AwsBaseHook(
            aws_conn_id=getattr(operator, "aws_conn_id", "aws_default"), client_type="sagemaker"
        )
        region = hook.conn_region_name or "us-east-1"
        partition = hook.conn_partition
        endpoint_url = hook.conn_config.endpoint_url
    except Exception:  # a link must never fail the task
        return
    SageMakerResourceLink.persist(
        context=context,
        operator=operator,
        region_name=region,
        aws_partition=partition,
        kind=KINDS[kind],
        resource=resource,
        endpoint_url=endpoint_url,
    )
