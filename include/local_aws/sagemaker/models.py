"""Models and endpoint configurations: plain records, checked the way SageMaker checks them.

Like SageMaker, CreateModel accepts any image; an image local_aws cannot run shows up when
an endpoint or transform job uses the model (it fails with the reason).
"""

from __future__ import annotations

from typing import Any

from local_aws.sagemaker.api import create_record, list_page, now, operation, pick, shape_response
from local_aws.sagemaker.backend import Backend
from local_aws.sagemaker.errors import ValidationException

MODELS = "models"
CONFIGS = "endpoint-configs"


# -- models ---------------------------------------------------------------------------------
@operation("CreateModel")
def create_model(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    name = p["ModelName"]
    arn = backend.arn("model", name)
    if not p.get("PrimaryContainer") and not p.get("Containers"):
        raise ValidationException(
            "Either PrimaryContainer or Containers must be specified: give the model's "
            "container (Image, ModelDataUrl, Environment)"
        )
    if p.get("PrimaryContainer") and p.get("Containers"):
        raise ValidationException(
            "PrimaryContainer and Containers are mutually exclusive: give one of them"
        )
    container = primary_container(p)
    if not container.get("Image") and not container.get("ModelPackageName"):
        raise ValidationException(
            "The model's container must name an Image (e.g. from "
            "sagemaker.image_uris.retrieve('sklearn', region, version))"
        )
    record = dict(p, ModelArn=arn, CreationTime=now())
    taken = ValidationException(f'Cannot create already existing model "{arn}".')
    create_record(backend, MODELS, name, record, arn=arn, exists=taken)
    return {"ModelArn": arn}


def primary_container(model: dict[str, Any]) -> dict[str, Any]:
    """The container that serves: PrimaryContainer, else the first of Containers."""
    return dict(model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0])


def get_model(backend: Backend, name: str) -> dict[str, Any]:
    record = backend.store.get(MODELS, name)
    if record is None:
        raise ValidationException(f'Could not find model "{backend.arn("model", name)}".')
    return record


@operation("DescribeModel")
def describe_model(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    return shape_response("DescribeModel", get_model(backend, p["ModelName"]))


@operation("ListModels")
def list_models(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    return list_page(
        backend.store.values(MODELS),
        p,
        name_key="ModelName",
        summary=lambda r: pick(r, ("ModelName", "ModelArn", "CreationTime")),
        result_key="Models",
    )


@operation("DeleteModel")
def delete_model(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    # As in SageMaker, endpoints already running the model keep running.
    record = get_model(backend, p["ModelName"])
    backend.store.delete(MODELS, p["ModelName"])
    backend.tags.drop(record["ModelArn"])
    return {}


# -- endpoint configurations -----------------------------------------------------------------
@operation("CreateEndpointConfig")
def create_endpoint_config(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    name = p["EndpointConfigName"]
    arn = backend.arn("endpoint-config", name)
    variants = p["ProductionVariants"]
    if not variants:
        raise ValidationException("ProductionVariants must hold at least one variant")
    seen: set[str] = set()
    for i, variant in enumerate(variants, 1):
        where = f"ProductionVariants.{i} ({variant['VariantName']})"
        if variant["VariantName"] in seen:
            raise ValidationException(
                f"{where}: variant names must be unique within an endpoint configuration"
            )
        seen.add(variant["VariantName"])
        if not variant.get("ModelName"):
            raise ValidationException(f"{where}: ModelName is required")
        get_model(backend, variant["ModelName"])
        if "ServerlessConfig" not in variant and (
            not variant.get("InstanceType") or not variant.get("InitialInstanceCount")
        ):
            raise ValidationException(
                f"{where}: give InstanceType and InitialInstanceCount (or a ServerlessConfig)"
            )
        if variant.get("InitialVariantWeight", 1.0) < 0:
            raise ValidationException(f"{where}: InitialVariantWeight must not be negative")
    record = dict(
        p,
        EndpointConfigArn=arn,
        CreationTime=now(),
        ProductionVariants=[{"InitialVariantWeight": 1.0, **v} for v in variants],
    )
    taken = ValidationException(f'Cannot create already existing endpoint configuration "{arn}".')
    create_record(backend, CONFIGS, name, record, arn=arn, exists=taken)
    return {"EndpointConfigArn": arn}


def get_endpoint_config(backend: Backend, name: str) -> dict[str, Any]:
    record = backend.store.get(CONFIGS, name)
    if record is None:
        arn = backend.arn("endpoint-config", name)
        raise ValidationException(f'Could not find endpoint configuration "{arn}".')
    return record


@operation("DescribeEndpointConfig")
def describe_endpoint_config(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    return shape_response(
        "DescribeEndpointConfig", get_endpoint_config(backend, p["EndpointConfigName"])
    )


@operation("ListEndpointConfigs")
def list_endpoint_configs(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    return list_page(
        backend.store.values(CONFIGS),
        p,
        name_key="EndpointConfigName",
        summary=lambda r: pick(r, ("EndpointConfigName", "EndpointConfigArn", "CreationTime")),
        result_key="EndpointConfigs",
    )


@operation("DeleteEndpointConfig")
def delete_endpoint_config(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    # Endpoints keep a copy of what they run, so deleting their config does not stop them.
    record = get_endpoint_config(backend, p["EndpointConfigName"])
    backend.store.delete(CONFIGS, p["EndpointConfigName"])
    backend.tags.drop(record["EndpointConfigArn"])
    return {}
