"""Requests are checked against botocore's own SageMaker service model.

A bad request gets a ValidationException that names the field, in AWS's wording, the
way SageMaker itself answers; never a 500 or a hang.
"""

from __future__ import annotations

import base64
import functools
import re
from typing import Any

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape
from botocore.validate import ParamValidator

from local_aws.sagemaker.errors import ValidationException


@functools.cache
def service_model(name: str = "sagemaker") -> ServiceModel:
    session = botocore.session.get_session()
    return session.get_service_model(name)


def operation_model(operation: str, service: str = "sagemaker") -> OperationModel:
    model = service_model(service)
    if operation not in model.operation_names:
        raise ValidationException(
            f"Unknown operation {operation!r} for {service}",
            code="UnknownOperationException",
        )
    return model.operation_model(operation)


def validate_request(operation: str, params: Any, service: str = "sagemaker") -> dict[str, Any]:
    """Validate a decoded JSON request; return it with blobs decoded. Raises ValidationException."""
    op = operation_model(operation, service)
    if not isinstance(params, dict):
        raise ValidationException("The request body must be a JSON object.")
    shape = op.input_shape
    if shape is None:
        return params
    params = _decode_blobs(params, shape)
    report = ParamValidator().validate(params, shape)
    problems: list[str] = []
    if report.has_errors():
        problems.extend(line for line in report.generate_report().splitlines() if line.strip())
    problems.extend(_constraint_errors(params, shape, ""))
    if problems:
        count = len(problems)
        raise ValidationException(
            f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(problems)
        )
    return params


def _decode_blobs(value: Any, shape: Shape) -> Any:
    if shape.type_name == "blob" and isinstance(value, str):
        try:
            return base64.b64decode(value)
        except ValueError:
            return value
    if shape.type_name == "structure" and isinstance(value, dict):
        members = shape.members
        return {k: (_decode_blobs(v, members[k]) if k in members else v) for k, v in value.items()}
    if shape.type_name == "list" and isinstance(value, list):
        return [_decode_blobs(v, shape.member) for v in value]
    if shape.type_name == "map" and isinstance(value, dict):
        return {k: _decode_blobs(v, shape.value) for k, v in value.items()}
    return value


def _constraint_errors(value: Any, shape: Shape, path: str) -> list[str]:
    """The checks botocore's client-side validator leaves to the service: max, pattern, enum."""
    errors: list[str] = []
    meta = shape.metadata
    where = path or "request"
    if shape.type_name == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(
                f"Value '{_clip(value)}' at '{where}' failed to satisfy constraint: "
                f"Member must have length less than or equal to {meta['max']}"
            )
        pattern = meta.get("pattern")
        if pattern and not _matches(pattern, value):
            errors.append(
                f"Value '{_clip(value)}' at '{where}' failed to satisfy constraint: "
                f"Member must satisfy regular expression pattern: {pattern}"
            )
        enum = shape.enum
        if enum and value not in enum:
            errors.append(
                f"Value '{_clip(value)}' at '{where}' failed to satisfy constraint: "
                f"Member must satisfy enum value set: [{', '.join(enum)}]"
            )
    elif shape.type_name == "structure" and isinstance(value, dict):
        members = shape.members
        for key, item in value.items():
            if key in members:
                errors.extend(_constraint_errors(item, members[key], _join(path, key)))
    elif shape.type_name == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(
                f"Value at '{where}' failed to satisfy constraint: "
                f"Member must have length less than or equal to {meta['max']}"
            )
        for i, item in enumerate(value):
            errors.extend(_constraint_errors(item, shape.member, f"{where}.{i + 1}"))
    elif shape.type_name == "map" and isinstance(value, dict):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(
                f"Value at '{where}' failed to satisfy constraint: "
                f"Map must have at most {meta['max']} entries"
            )
        for key, item in value.items():
            errors.extend(_constraint_errors(key, shape.key, f"{where}.key"))
            errors.extend(_constraint_errors(item, shape.value, f"{where}.{key}"))
    elif shape.type_name in ("integer", "long", "float", "double") and isinstance(
        value, (int, float)
    ):
        if "max" in meta and value > meta["max"]:
            errors.append(
                f"Value '{value}' at '{where}' failed to satisfy constraint: "
                f"Member must have value less than or equal to {meta['max']}"
            )
    return errors


def _join(path: str, key: str) -> str:
    # AWS names fields lowerCamelCase in its messages, e.g. 'trainingJobName'.
    key = key[:1].lower() + key[1:]
    return f"{path}.{key}" if path else key


def _clip(value: str, limit: int = 80) -> str:
    return value if len(value) <= limit else value[:limit] + "..."


@functools.lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    # Java-style patterns from the model; \p{...} classes are not in Python's re.
    translated = (
        pattern.replace(r"\p{XDigit}", "0-9A-Fa-f")
        .replace(r"\p{Alpha}", "A-Za-z")
        .replace(r"\p{Alnum}", "A-Za-z0-9")
        .replace(r"\p{L}", r"\w")  # a superset (adds digits and _): lenient, never wrong
        .replace(r"\p{Z}", r"\s")
        .replace(r"\p{N}", r"\d")
    )
    try:
        return re.compile(translated, re.DOTALL)
    except re.error:
        return None


def _matches(pattern: str, value: str) -> bool:
    compiled = _compiled(pattern)
    if compiled is None:
        return True  # a pattern Python cannot express: leave it to the real service
    return compiled.fullmatch(value) is not None


def output_members(operation: str, service: str = "sagemaker") -> frozenset[str]:
    """The top-level member names of an operation's response (to shape Describe* output)."""
    return _output_members(service, operation)


@functools.cache
def _output_members(service: str, operation: str) -> frozenset[str]:
    shape = operation_model(operation, service).output_shape
    return frozenset(shape.members) if shape is not None else frozenset()
