"""What neither moto nor our SageMaker app serves, answered at once the AWS way.

Without this, a call to a service moto lacks, or to an action it has not implemented,
ends in werkzeug's HTML 500 page: botocore cannot parse it, retries it four times with back-off,
and the user reads a parse error. Here such a call gets an AWS-shaped ``NotImplemented``
error (HTTP 501, which botocore does not retry) that names the service and the action.

One action is answered outright: IAM ``SimulatePrincipalPolicy``, which the SageMaker SDK
calls to check its execution role. local_aws enforces no IAM policy, so every action is
``allowed``, which is exactly what the role may do here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/"


def signing_service(environ: dict[str, Any]) -> str | None:
    """The service of the SigV4 credential scope (``Credential=KEY/DATE/REGION/SERVICE/...``)."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    start = auth.find("Credential=")
    if start < 0:
        return None
    parts = auth[start + len("Credential=") :].split(",", 1)[0].split("/")
    return parts[3].lower() if len(parts) >= 5 else None


def _is_form(environ: dict[str, Any]) -> bool:
    return environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded")


def _form(environ: dict[str, Any]) -> dict[str, list[str]]:
    """The query-protocol parameters; the body is put back for whoever reads it next."""
    import io

    size = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(size) if size else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return parse_qs(body.decode("utf-8", "replace"))


def _action(environ: dict[str, Any]) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return target.rsplit(".", 1)[-1]
    return (_form(environ).get("Action") or [""])[0]


def operation(environ: dict[str, Any]) -> str:
    """The action of a signed call in any protocol botocore speaks: the Smithy RPC v2 path
    (``/service/<Service>/operation/<Action>``, CloudWatch's CBOR), the JSON target header
    or the query form's ``Action`` (the body is put back); "" for REST calls."""
    path = environ.get("PATH_INFO", "")
    if path.startswith("/service/") and "/operation/" in path:
        return path.rsplit("/", 1)[-1]
    if _is_form(environ) or "HTTP_X_AMZ_TARGET" in environ:
        return _action(environ)
    return ""


def error(
    environ: dict[str, Any],
    start_response: Callable[..., Any],
    status: int,
    code: str,
    message: str,
) -> list[bytes]:
    """An error botocore parses for any protocol: XML for query services, JSON otherwise."""
    request_id = str(uuid.uuid4())
    if _is_form(environ):
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{escape(code)}</Code>"
            f"<Message>{escape(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        content_type = "text/xml"
    else:
        body = json.dumps({"__type": code, "message": message}).encode()
        content_type = "application/x-amz-json-1.1"
    reason = {501: "Not Implemented"}.get(status, "Error")
    start_response(
        f"{status} {reason}",
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", code),
        ],
    )
    return [body]


def not_served(
    environ: dict[str, Any],
    start_response: Callable[..., Any],
    service: str,
    action: str,
    detail: str,
) -> Any:
    action = action or f"{environ.get('REQUEST_METHOD', 'GET')} {environ.get('PATH_INFO', '/')}"
    return error(
        environ,
        start_response,
        501,
        "NotImplemented",
        f"local_aws does not serve {service}:{action} ({detail}): it runs "
        "SageMaker and SageMaker Runtime itself and the other services through moto",
    )


def simulate_principal_policy(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    form = _form(environ)

    def members(name: str) -> list[str]:
        keys = sorted(
            (k for k in form if k.startswith(f"{name}.member.")),
            key=lambda k: int(k.rsplit(".", 1)[1]),
        )
        return [form[k][0] for k in keys]

    actions, resources = members("ActionNames"), members("ResourceArns") or ["*"]
    results = "".join(
        "<member>"
        f"<EvalActionName>{escape(action)}</EvalActionName>"
        f"<EvalResourceName>{escape(resource)}</EvalResourceName>"
        "<EvalDecision>allowed</EvalDecision>"
        "<MatchedStatements/><MissingContextValues/>"
        "</member>"
        for action in actions
        for resource in resources
    )
    body = (
        f'<SimulatePrincipalPolicyResponse xmlns="{IAM_NS}"><SimulatePrincipalPolicyResult>'
        f"<IsTruncated>false</IsTruncated><EvaluationResults>{results}</EvaluationResults>"
        "</SimulatePrincipalPolicyResult>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        "</SimulatePrincipalPolicyResponse>"
    ).encode()
    start_response("200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
    return [body]


# (signing service, action) → handler, for what moto lacks and AWS callers rely on
ANSWERED: dict[tuple[str, str], Callable[[dict[str, Any], Callable[..., Any]], Any]] = {
    ("iam", "SimulatePrincipalPolicy"): simulate_principal_policy,
}


def wrap(app: WSGIApp, serves: Callable[[dict[str, Any]], bool]) -> WSGIApp:
    """``app`` (moto) behind the answers above; ``serves(environ)`` tells whether moto has
    a backend for the request's service."""

    def gaps(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        service = signing_service(environ)
        if service is None:  # unsigned: moto's own routes, or its S3 fallback
            return app(environ, start_response)
        # query and JSON-target calls are small: name the action now, before moto reads them
        action = _action(environ) if _is_form(environ) or "HTTP_X_AMZ_TARGET" in environ else ""
        handler = ANSWERED.get((service, action))
        if handler is not None:
            return handler(environ, start_response)
        if not serves(environ):
            return not_served(
                environ, start_response, service, action, "moto has no backend for it"
            )
        try:
            return app(environ, start_response)
        except NotImplementedError as exc:  # else werkzeug's HTML 500 page reaches the client
            return not_served(
                environ, start_response, service, action, f"moto does not implement it: {exc}"
            )

    return gaps
