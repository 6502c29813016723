"""The WSGI app for ``sagemaker`` (JSON protocol), ``sagemaker-runtime`` and admin routes."""

from __future__ import annotations

import importlib
import json
import logging
import re
from typing import Any

from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Request, Response
from werkzeug.wsgi import get_input_stream

from local_aws.sagemaker import admin, api
from local_aws.sagemaker.backend import Backend
from local_aws.sagemaker.errors import AWSError, ThrottlingException, ValidationException
from local_aws.sagemaker.service_model import validate_request

log = logging.getLogger(__name__)

# Each module registers its operations on import; the list is the API's table of contents.
RESOURCE_MODULES = (
    "tags",
    "training",
    "processing",
    "transform",
    "tuning",
    "models",
    "endpoints",
    "registry",
    "notebooks",
    "experiments",
    "pipelines",
)

_INVOKE = re.compile(r"^/endpoints/(?P<name>[^/]+)/(?P<action>invocations|async-invocations)$")


def load_resource_modules() -> list[str]:
    loaded = []
    for name in RESOURCE_MODULES:
        try:
            importlib.import_module(f"local_aws.sagemaker.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"local_aws.sagemaker.{name}":
                raise
            continue
        loaded.append(name)
    return loaded


class SageMakerApp:
    def __init__(self, backend: Backend):
        self.backend = backend
        self.modules = load_resource_modules()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        try:
            invoke = _INVOKE.match(path)
            if invoke is not None:  # the hot path: no werkzeug Request or Response built
                return self._invoke(environ, invoke, start_response)
            request = Request(environ)
            if request.path.startswith("/_local_aws/"):
                response = admin.handle(self.backend, request)
            else:
                response = self._call(request)
        except AWSError as exc:
            response = error_response(exc)
        except Exception as exc:  # never a bare 500 page: an AWS-shaped error with the cause
            log.exception("unhandled error in %s", path)
            response = error_response(
                AWSError(f"{type(exc).__name__}: {exc}", code="InternalFailure", status=500)
            )
        return response(environ, start_response)

    def _call(self, request: Request) -> Response:
        target = request.headers.get("X-Amz-Target", "")
        service, _, operation = target.partition(".")
        if service != "SageMaker" or not operation:
            raise ValidationException(
                f"Missing or unknown X-Amz-Target {target!r}", code="UnknownOperationException"
            )
        if self.backend.faults.should_throttle(operation):
            raise ThrottlingException("Rate exceeded")
        try:
            body = json.loads(request.get_data() or b"{}")
            params = validate_request(operation, body)
        except ValueError as exc:
            raise ValidationException(f"The request body is not valid JSON: {exc}") from exc
        except RecursionError as exc:  # JSON nested past any shape the API has
            raise ValidationException(
                "The request body is nested too deeply", code="SerializationException"
            ) from exc
        handler = api.OPERATIONS.get(operation)
        if handler is None:
            raise AWSError(
                f"local_aws does not implement SageMaker {operation} yet",
                code="UnknownOperationException",
            )
        result = handler(self.backend, params)
        return Response(
            json.dumps(result, default=str), status=200, content_type="application/x-amz-json-1.1"
        )

    def _invoke(self, environ: dict[str, Any], match: re.Match[str], start_response: Any) -> Any:
        if self.backend.faults.should_throttle("InvokeEndpoint"):
            raise ThrottlingException("Rate exceeded")
        runtime = importlib.import_module("local_aws.sagemaker.runtime")
        # PATH_INFO carries the path's UTF-8 bytes as latin-1 (WSGI); werkzeug's Request.path
        # decodes them the same way
        name = match.group("name").encode("latin-1").decode("utf-8", "replace")
        status, headers, body = runtime.invoke_endpoint(
            self.backend,
            name,
            get_input_stream(environ).read(),
            runtime.request_headers(environ),
        )
        start_response(
            f"{status} {HTTP_STATUS_CODES.get(status, 'UNKNOWN')}",
            [*headers.items(), ("Content-Length", str(len(body)))],
        )
        return [body]


def error_response(exc: AWSError) -> Response:
    body: dict[str, Any] = {"__type": exc.code, "message": exc.message}
    body.update(getattr(exc, "extra", {}) or {})
    return Response(
        json.dumps(body),
        status=exc.status,
        content_type="application/x-amz-json-1.1",
        headers={"x-amzn-ErrorType": exc.code},
    )
