"""What a request is: its service, whether it mutates, its ids; and what of it is secret."""

from __future__ import annotations

import gzip
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote

from local_aws.journal.records import _Body, _Response

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

_READ_ONLY_PREFIXES = (
    "Get",
    "Describe",
    "List",
    "Filter",
    "Head",
    "Query",
    "Test",
    "Search",
    "BatchGet",
    "Lookup",
    "Simulate",
    "Validate",
    "Check",
    "Estimate",
    "Preview",
    "Select",
    "Scan",
    "Decode",
)

# Unsigned JSON requests carry no credential scope; their target prefix names the service.
_TARGET_SERVICES = {
    "Logs_20140328": "logs",
    "GraniteServiceVersion20100801": "monitoring",
    "AnyScaleFrontendService": "application-autoscaling",
}

# Hop-by-hop or recomputed on replay; everything else is kept, since S3 stores headers
# such as Cache-Control or Content-Disposition and checksums must match the body.
_DROPPED_ENVIRON_KEYS = frozenset(
    {
        "HTTP_CONNECTION",
        "HTTP_KEEP_ALIVE",
        "HTTP_TRANSFER_ENCODING",
        "HTTP_TE",
        "HTTP_EXPECT",
        "HTTP_UPGRADE",
        "HTTP_PROXY_CONNECTION",
        "HTTP_CONTENT_LENGTH",
    }
)
_PRESERVED_NAMES_KEY = "moto.preserved_header_names"  # moto.core.request, server mode

# Never on disk: the client's signature and session token. The credential scope stays, since
# replay routes by it (service, region; the access key id picks moto's account).
_SECRET_HEADERS = frozenset({"HTTP_X_AMZ_SECURITY_TOKEN"})
_SECRET_QUERY = frozenset({"X-Amz-Signature", "X-Amz-Security-Token", "Signature"})
_SIGNATURE = re.compile(r"Signature=[0-9a-fA-F]+")


def _without_secrets(headers: dict[str, str]) -> dict[str, str]:
    kept = {k: v for k, v in headers.items() if k not in _SECRET_HEADERS}
    if "HTTP_AUTHORIZATION" in kept:
        kept["HTTP_AUTHORIZATION"] = _SIGNATURE.sub(
            "Signature=redacted", kept["HTTP_AUTHORIZATION"]
        )
    return kept


def _query_without_secrets(query: str) -> str:
    if not any(name in query for name in _SECRET_QUERY):
        return query
    return "&".join(part for part in query.split("&") if part.split("=", 1)[0] not in _SECRET_QUERY)


_S3_ID_PARAM = re.compile(r"(?:^|(?<=&))(uploadId|versionId)=([^&]*)")
_UPLOAD_ID = re.compile(rb"<UploadId>([^<]+)</UploadId>")
_CBOR_PATH = re.compile(r"^/service/[^/]+/operation/([^/]+)$")


# -- request inspection ---------------------------------------------------------------


def _path(environ: WSGIEnvironment) -> str:
    path = environ.get("PATH_INFO", "")
    return path.decode("latin-1") if isinstance(path, bytes) else str(path)


def _credential_scope_service(credential: str) -> str | None:
    parts = credential.split("/")
    return parts[3].lower() if len(parts) >= 5 else None


def _service(environ: WSGIEnvironment) -> str | None:
    """The service moto will route the request to, by the same clues moto uses."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    start = auth.find("Credential=")
    if start >= 0:
        service = _credential_scope_service(auth[start + 11 :].split(",", 1)[0].strip())
        if service:
            return service
    query = environ.get("QUERY_STRING", "")
    if "X-Amz-Credential=" in query:  # a presigned URL
        for key, value in parse_qsl(query):
            if key == "X-Amz-Credential":
                service = _credential_scope_service(value)
                if service:
                    return service
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return _TARGET_SERVICES.get(target.split(".", 1)[0], "unknown")
    return None


def _query_keys(environ: WSGIEnvironment) -> set[str]:
    return {k for k, _ in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)}


def _target_action(environ: WSGIEnvironment) -> str | None:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return str(target).rsplit(".", 1)[-1]
    match = _CBOR_PATH.match(_path(environ))  # smithy rpc-v2-cbor puts it in the path
    return match.group(1) if match else None


def _is_form(environ: WSGIEnvironment) -> bool:
    return str(environ.get("CONTENT_TYPE", "")).startswith("application/x-www-form-urlencoded")


def _form_action(body: _Body, environ: WSGIEnvironment) -> str | None:
    if body.inline is None:
        return None
    data = body.inline
    if "gzip" in str(environ.get("HTTP_CONTENT_ENCODING", "")):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError):
            return None
    for key, value in parse_qsl(data.decode("utf-8", errors="replace")):
        if key == "Action":
            return value
    return None


def _query_action(environ: WSGIEnvironment) -> str | None:
    for key, value in parse_qsl(environ.get("QUERY_STRING", "")):
        if key == "Action":
            return value
    return None


def _rewrite_ids(query: str, mapping: dict[str, str]) -> str:
    def swap(match: re.Match[str]) -> str:
        value = unquote(match.group(2))
        return f"{match.group(1)}={quote(mapping.get(value, value), safe='')}"

    return _S3_ID_PARAM.sub(swap, query)


def _rewrite_copy_source(source: str, mapping: dict[str, str]) -> str:
    path, sep, query = source.partition("?")
    return path + sep + _rewrite_ids(query, mapping) if sep else source


def _s3_ids(meta: dict[str, Any], response: _Response) -> dict[str, str]:
    """The random ids moto gave this S3 request, which later requests may refer to."""
    ids: dict[str, str] = {}
    if meta["method"] == "POST" and "uploads" in {
        k for k, _ in parse_qsl(meta["query"], keep_blank_values=True)
    }:
        match = _UPLOAD_ID.search(response.body)
        if match:
            ids["upload_id"] = match.group(1).decode()
    version = response.header("x-amz-version-id")
    if version and version != "null":
        ids["version_id"] = version
    return ids


def _describe(meta: dict[str, Any]) -> str:
    target = meta.get("headers", {}).get("HTTP_X_AMZ_TARGET")
    what = target or f"{meta.get('path', '?')}?{meta.get('query', '')}".rstrip("?")
    return f"{meta.get('method', '?')} {meta.get('service', '?')} {what}"


def _streamed_body_put(environ: WSGIEnvironment, service: str, body: _Body | None) -> bool:
    """An S3 PUT to a key (not a bucket call, not a copy) whose body went to a blob."""
    return (
        service == "s3"
        and body is not None
        and body.blob is not None
        and environ.get("REQUEST_METHOD") == "PUT"
        and "HTTP_X_AMZ_COPY_SOURCE" not in environ
        and _path(environ).strip("/").count("/") >= 1  # /bucket/key, not a bucket call
    )


def _large_put(service: str, environ: WSGIEnvironment, body: _Body | None) -> bool:
    """A plain PutObject whose body went to a blob: it takes the lock late."""
    return _streamed_body_put(environ, service, body) and _query_keys(environ) <= {"x-id"}


def _part_upload(service: str, environ: WSGIEnvironment, body: _Body | None) -> bool:
    """An UploadPart whose body went to a blob (as :func:`_large_put` decides for a put):
    it takes the lock late too, once its part is built and is to be stored."""
    return _streamed_body_put(environ, service, body) and (
        {"partNumber", "uploadId"} <= _query_keys(environ) <= {"partNumber", "uploadId", "x-id"}
    )


def _completion(service: str, environ: WSGIEnvironment) -> bool:
    """CompleteMultipartUpload (the one S3 POST with an uploadId): the other write that
    takes the lock late, once its parts are joined."""
    return (
        service == "s3"
        and environ.get("REQUEST_METHOD") == "POST"
        and "uploadId" in _query_keys(environ)
        and _path(environ).strip("/").count("/") >= 1
    )
