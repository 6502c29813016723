"""What keeps a web page the user visits from driving local_aws.

local_aws runs code (training jobs) and holds data, on a loopback port that every page in
the user's browser can send requests to. So, in front of every route:

- a request with no AWS signature (no ``Authorization`` header, no presigned query) is
  refused: boto3, the CLI and the SDKs always sign, while a browser's simple cross-origin
  request cannot carry one. Any credentials still work, as with moto.
- no cross-origin access unless the origin was allowed (``--cors-origin``): moto's own
  CORS headers, which echo every ``Origin``, are dropped, and preflights are refused.
- the admin routes (``/_local_aws/...`` faults, moto's ``/moto-api/...`` dashboard and
  reset) need the token the server writes at start to ``<data dir>/admin-token`` (0600);
  ``GET /_local_aws/health`` (readiness) and ``GET /_local_aws/describe/...`` (the job pages
  task links open) stay open.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

TOKEN_FILE = "admin-token"
TOKEN_HEADER = "X-Local-AWS-Token"
_TOKEN_ENVIRON = "HTTP_" + TOKEN_HEADER.upper().replace("-", "_")
# readiness, and the read-only job pages task links open in a browser (GET only)
OPEN_PREFIXES = ("/_local_aws/health", "/_local_aws/describe/")
ADMIN_PREFIXES = ("/_local_aws/", "/moto-api")
_PRESIGNED = ("X-Amz-Signature", "X-Amz-Credential", "Signature", "AWSAccessKeyId")

if TYPE_CHECKING:
    from local_aws.sigv4 import Refusal, Verifier

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def write_token(data_dir: Path) -> str:
    """A new admin token, readable by the server's user only."""
    token = secrets.token_urlsafe(32)
    path = data_dir / TOKEN_FILE
    path.unlink(missing_ok=True)  # a file left by another user keeps its own mode otherwise
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token)
    return token


def read_token(data_dir: str | Path) -> str:
    path = Path(data_dir) / TOKEN_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no admin token at {path}: is `local-aws serve --data-dir {data_dir}` running? "
            "(pass the same --data-dir)"
        ) from None


def is_signed(environ: dict[str, Any]) -> bool:
    if environ.get("HTTP_AUTHORIZATION"):
        return True
    query = parse_qs(environ.get("QUERY_STRING", ""))
    return any(name in query for name in _PRESIGNED)


def _deny(start_response: Callable[..., Any], code: str, message: str) -> list[bytes]:
    # S3's error document: what a browser, curl or an S3 client reads best
    body = (
        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
        f"<Message>{escape(message)}</Message></Error>"
    ).encode()
    start_response(
        "403 Forbidden",
        [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
    )
    return [body]


def is_json_protocol(environ: dict[str, Any]) -> bool:
    """Whether a (non-S3) request speaks a JSON protocol rather than the query protocol."""
    return bool(environ.get("HTTP_X_AMZ_TARGET")) or "json" in environ.get("CONTENT_TYPE", "")


def _refuse(
    start_response: Callable[..., Any], environ: dict[str, Any], refusal: Refusal
) -> list[bytes]:
    """The refusal in the error shape of the request's protocol, as AWS words it."""
    auth = environ.get("HTTP_AUTHORIZATION", "") + environ.get("QUERY_STRING", "")
    content_type = environ.get("CONTENT_TYPE", "")
    if "/s3/aws4_request" in auth or "%2Fs3%2Faws4_request" in auth:
        body = (
            f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{refusal.code}</Code>"
            f"<Message>{escape(refusal.message)}</Message></Error>"
        ).encode()
        content_type = "application/xml"
    elif is_json_protocol(environ):
        body = json.dumps({"__type": refusal.code, "message": refusal.message}).encode()
        content_type = "application/x-amz-json-1.1"
    else:  # the query protocol (IAM, STS, ...)
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{refusal.code}</Code>"
            f"<Message>{escape(refusal.message)}</Message></Error>"
            "<RequestId>local-aws</RequestId></ErrorResponse>"
        ).encode()
        content_type = "text/xml"
    start_response(
        refusal.status, [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    )
    return [body]


def wrap(
    app: WSGIApp,
    *,
    token: str,
    cors_origins: Iterable[str] = (),
    verifier: Verifier | None = None,
) -> WSGIApp:
    origins = frozenset(o.rstrip("/") for o in cors_origins)

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        origin = environ.get("HTTP_ORIGIN")
        allowed = origin is not None and origin.rstrip("/") in origins
        if environ.get("REQUEST_METHOD") == "OPTIONS" and origin is not None:
            if allowed:  # a preflight never carries the signature of the request it asks for
                return app(environ, start_response)
            return _deny(
                start_response,
                "AccessDenied",
                f"cross-origin requests from {origin} are not allowed: start local_aws with "
                f"--cors-origin {origin} to allow them",
            )
        is_open = path.startswith(OPEN_PREFIXES) and environ.get("REQUEST_METHOD") == "GET"
        if path.startswith(ADMIN_PREFIXES) and not is_open:
            given = environ.get(_TOKEN_ENVIRON, "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                return _deny(
                    start_response,
                    "AccessDenied",
                    f"{path} is an admin route: send the token from the data dir's "
                    f"{TOKEN_FILE} file as the {TOKEN_HEADER} header (`local-aws fault` does)",
                )
        elif not path.startswith(ADMIN_PREFIXES) and not is_signed(environ):
            return _deny(
                start_response,
                "AccessDenied",
                "local_aws refuses requests without an AWS signature (an Authorization header "
                "or a presigned URL): use boto3, the AWS CLI or an SDK, with any credentials",
            )
        elif not path.startswith(ADMIN_PREFIXES) and verifier is not None:
            refusal = verifier.check(environ)
            if refusal is not None:
                return _refuse(start_response, environ, refusal)
        if allowed:
            return app(environ, start_response)

        def without_cors(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            kept = [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
            return start_response(status, kept, exc_info)

        return app(environ, without_cors)

    return guarded
