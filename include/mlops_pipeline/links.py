"""Task links to what a task started: the SageMaker job, endpoint or model package, its
CloudWatch logs, and for a data-quality task its Data Docs page.

On AWS the job and log links open the AWS console; offline, where the aws_default
connection names an ``endpoint_url``, they open that endpoint's own read-only pages
(``/_local_aws/describe/<kind>/<name>`` and ``.../logs``). Data Docs are served by the
project's plugin in both cases (``mlops_pipeline.quality.docs_view``).

The provider's BaseAwsLink pattern: the operator persists the link's parts in XCom when it
knows the resource; the task formats the links from them when it ends (Airflow 3 stores
the URLs in XCom for the UI). Registered by the project's plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink
from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.types import TaskInstanceKey

# the console's URL segment per resource kind
KINDS = {
    "processing": "processing-jobs",
    "training": "training-jobs",
    "tuning": "hyper-tuning-jobs",
    "transform": "transform-jobs",
    "endpoint": "endpoints",
    "model-package": "model-packages",
}
# the CloudWatch Logs group and the streams' name prefix of each kind ({name}: the resource)
LOGS = {
    "processing-jobs": ("/aws/sagemaker/ProcessingJobs", "{name}/"),
    "training-jobs": ("/aws/sagemaker/TrainingJobs", "{name}/"),
    "hyper-tuning-jobs": ("/aws/sagemaker/TrainingJobs", "{name}-"),  # its children's
    "transform-jobs": ("/aws/sagemaker/TransformJobs", "{name}/"),
    "endpoints": ("/aws/sagemaker/Endpoints/{name}", ""),
}
DATA_DOCS_PREFIX = "/mlops/data-docs"


def _local(kwargs: dict[str, Any], *tail: str) -> str:
    base = str(kwargs["endpoint_url"]).rstrip("/")
    path = "/".join(quote(str(p), safe="/") for p in (kwargs["kind"], kwargs["resource"], *tail))
    return f"{base}/_local_aws/describe/{path}"


class SageMakerResourceLink(BaseAwsLink):
    name: ClassVar[str] = "SageMaker job / endpoint"
    key: ClassVar[str] = "mlops_sagemaker_resource"
    format_str: ClassVar[str] = (
        BASE_AWS_CONSOLE_LINK + "/sagemaker/home?region={region_name}#/{kind}/{resource}"
    )

    def format_link(self, **kwargs: Any) -> str:
        if kwargs.get("endpoint_url"):
            return _local(kwargs)
        return super().format_link(**kwargs)


def _console_escape(value: str) -> str:
    # the CloudWatch console's fragment encodes twice and writes % as $
    return quote(quote(value, safe=""), safe="").replace("%", "$")


class SageMakerLogsLink(BaseAwsLink):
    """The resource's CloudWatch log streams (the same persisted parts as the resource link)."""

    name: ClassVar[str] = "CloudWatch logs"
    key: ClassVar[str] = SageMakerResourceLink.key
    format_str: ClassVar[str] = (
        BASE_AWS_CONSOLE_LINK + "/cloudwatch/home?region={region_name}#logsV2:log-groups/"
        "log-group/{group}{filter}"
    )

    def format_link(self, **kwargs: Any) -> str:
        if kwargs.get("kind") not in LOGS:
            return ""  # a model package has no logs
        if kwargs.get("endpoint_url"):
            return _local(kwargs, "logs")
        group, prefix = (p.format(name=kwargs["resource"]) for p in LOGS[kwargs["kind"]])
        stream_filter = _console_escape(f"?logStreamNameFilter={prefix}") if prefix else ""
        return super().format_link(
            **{**kwargs, "group": _console_escape(group), "filter": stream_filter}
        )


class DataDocsLink(BaseOperatorLink):
    """A validation's Data Docs page, served by the plugin from the dataset's site."""

    name = "Data Docs"
    key: ClassVar[str] = "mlops_data_docs"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        parts = XCom.get_value(key=self.key, ti_key=ti_key)
        if not parts:
            return ""
        return data_docs_url(parts["dataset"], parts["page"])


def data_docs_url(dataset: str, page: str = "") -> str:
    """The plugin's URL of a dataset's site (or one page of it), under Airflow's base URL."""
    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback="") or ""
    root = base.rstrip("/") if base.startswith("http") else ""
    return f"{root}{DATA_DOCS_PREFIX}/{quote(dataset)}/{quote(page, safe='/=')}"


def persist_link(context: Context, operator: Any, kind: str, resource: str) -> None:
    """Record the links of ``resource`` (a job, endpoint or model package) for ``operator``'s
    task: its page and its logs."""
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


def persist_data_docs(context: Context, dataset: str, page: str) -> None:
    """Record the Data Docs page of a validation (relative to its dataset's site)."""
    context["ti"].xcom_push(key=DataDocsLink.key, value={"dataset": dataset, "page": page})


def model_package_name(arn: str) -> str:
    """``arn:…:model-package/<group>/<version>`` → ``<group>/<version>``."""
    return arn.split(":model-package/", 1)[-1]
