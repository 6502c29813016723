"""``--verify-signatures``: check each request's Signature Version 4 against local keys.

By default local_aws, like moto, accepts any credentials (it only requires that a request
be signed at all, see :mod:`local_aws.guard`). With verification on, the signature is
recomputed with the secret configured for the request's access key id, by botocore's own
signer (the canonical request, string to sign and signing key of
:class:`botocore.auth.SigV4Auth`), and a request that does not match is refused with the
error AWS gives: ``SignatureDoesNotMatch``, or ``InvalidClientTokenId`` (S3:
``InvalidAccessKeyId``) for an unknown key; a request signed more than 15 minutes away from
the server's clock gets ``RequestTimeTooSkewed`` (S3) or ``InvalidSignatureException``
("Signature expired"), as on AWS.

A key may carry a session token (STS temporary credentials): then a request signed with it
must send that token (``X-Amz-Security-Token``), and a request with a key that has none
must send none; otherwise it is refused as AWS refuses a bad token: ``InvalidToken`` (S3),
``UnrecognizedClientException`` (JSON protocols), ``InvalidClientTokenId`` (query protocol).

Keys come from an AWS shared-credentials file (``[profile]`` sections with
``aws_access_key_id``, ``aws_secret_access_key`` and optionally ``aws_session_token``, as
``~/.aws/credentials``).
"""

from __future__ import annotations

import configparser
import datetime as dt
import functools
import hashlib
import hmac
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import HTTPHeaders
from botocore.credentials import Credentials

from local_aws import chunksig
from local_aws.guard import is_json_protocol

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
#: Bodies hashed in memory to check a signature (services other than S3, which always
#: sends the body's hash in x-amz-content-sha256). Larger ones are refused.
MAX_HASHED_BODY = 64 << 20


@dataclass(frozen=True)
class Refusal:
    status: str
    code: str
    message: str


@dataclass(frozen=True)
class LocalKey:
    """A key that --verify-signatures accepts: its secret, and the session token requests
    signed with it must carry (temporary credentials), if any."""

    secret: str
    session_token: str | None = None


def local_keys(keys: Mapping[str, str | LocalKey]) -> dict[str, LocalKey]:
    """Access key id -> LocalKey, from values that are a LocalKey or a secret alone."""
    return {k: v if isinstance(v, LocalKey) else LocalKey(v) for k, v in keys.items()}


def load_credentials(path: str | Path) -> dict[str, LocalKey]:
    """Access key id -> its secret and session token, from a shared-credentials file."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path) as f:
            parser.read_file(f)
    except FileNotFoundError:
        raise ValueError(f"--credentials-file {path}: no such file") from None
    except configparser.Error as exc:
        raise ValueError(f"--credentials-file {path}: not a credentials file: {exc}") from None
    keys: dict[str, LocalKey] = {}
    for section in parser.sections():
        key_id = parser.get(section, "aws_access_key_id", fallback="").strip()
        secret = parser.get(section, "aws_secret_access_key", fallback="").strip()
        token = parser.get(section, "aws_session_token", fallback="").strip()
        if key_id and secret:
            keys[key_id] = LocalKey(secret, token or None)
        elif key_id or secret:
            raise ValueError(
                f"--credentials-file {path}: [{section}] needs both aws_access_key_id and "
                "aws_secret_access_key"
            )
    if not keys:
        raise ValueError(
            f"--credentials-file {path}: no [profile] with aws_access_key_id and "
            "aws_secret_access_key"
        )
    return keys


def _parse_authorization(value: str) -> dict[str, str] | None:
    algorithm, _, rest = value.partition(" ")
    if algorithm != ALGORITHM:
        return None
    fields = {}
    for part in rest.split(","):
        name, _, val = part.strip().partition("=")
        fields[name] = val
    if not {"Credential", "SignedHeaders", "Signature"} <= fields.keys():
        return None
    return fields


def _header(environ: dict[str, Any], name: str) -> str | None:
    if name == "content-type":
        return environ.get("CONTENT_TYPE")
    if name == "content-length":
        return environ.get("CONTENT_LENGTH")
    return environ.get("HTTP_" + name.upper().replace("-", "_"))


def _body_sha256(environ: dict[str, Any]) -> str | None:
    """Hash the body and put it back for the app; None if too large to hold."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    data = stream.read(int(length)) if length else stream.read(MAX_HASHED_BODY + 1)
    if len(data) > MAX_HASHED_BODY:
        return None
    environ["wsgi.input"] = io.BytesIO(data)
    environ["CONTENT_LENGTH"] = str(len(data))
    return hashlib.sha256(data).hexdigest()


class Verifier:
    def __init__(self, keys: Mapping[str, str | LocalKey]):
        self.keys = local_keys(keys)

    def check(self, environ: dict[str, Any], service_hint: str | None = None) -> Refusal | None:
        """None if the request's signature is right, else how to refuse it."""
        query = environ.get("QUERY_STRING", "")
        authorization = environ.get("HTTP_AUTHORIZATION")
        presigned = authorization is None
        if presigned:
            params = dict(parse_qsl(query, keep_blank_values=True))
            if params.get("X-Amz-Algorithm") != ALGORITHM:
                return self._unsupported()
            fields = {
                "Credential": params.get("X-Amz-Credential", ""),
                "SignedHeaders": params.get("X-Amz-SignedHeaders", ""),
                "Signature": params.get("X-Amz-Signature", ""),
            }
            timestamp = params.get("X-Amz-Date", "")
            token = params.get("X-Amz-Security-Token")
            refusal = _expired(timestamp, params.get("X-Amz-Expires", ""))
            if refusal is not None:
                return refusal
            query = "&".join(p for p in query.split("&") if not p.startswith("X-Amz-Signature="))
        else:
            parsed = _parse_authorization(authorization or "")
            if parsed is None:
                return self._unsupported()
            fields = parsed
            timestamp = environ.get("HTTP_X_AMZ_DATE", "")
            token = environ.get("HTTP_X_AMZ_SECURITY_TOKEN")
        scope = fields["Credential"].split("/")
        if len(scope) != 5 or scope[4] != "aws4_request":
            return Refusal("400 Bad Request", "IncompleteSignature", "malformed Credential")
        key_id, date, region, service, _ = scope
        is_s3 = service == "s3"
        key = self.keys.get(key_id)
        if key is None:
            if is_s3:
                return Refusal(
                    "403 Forbidden",
                    "InvalidAccessKeyId",
                    "The AWS Access Key Id you provided does not exist in our records.",
                )
            return Refusal(
                "403 Forbidden",
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
            )
        if not _token_matches(key.session_token, token):
            return _bad_token(is_s3, environ)
        if not timestamp.startswith(date):
            return self._mismatch(is_s3)
        signer = (S3SigV4Auth if is_s3 else SigV4Auth)(
            Credentials(key_id, key.secret), service, region
        )
        signed = [h for h in fields["SignedHeaders"].split(";") if h]
        headers = HTTPHeaders()
        for name in signed:
            value = _header(environ, name)
            if value is None:
                return self._mismatch(is_s3)
            headers[name] = value
        payload = _header(environ, "x-amz-content-sha256")
        if payload is None:
            payload = UNSIGNED_PAYLOAD if presigned and is_s3 else _body_sha256(environ)
            if payload is None:
                return Refusal(
                    "400 Bad Request",
                    "InvalidRequest",
                    f"a body over {MAX_HASHED_BODY} bytes needs an x-amz-content-sha256 header",
                )
        raw_path = str(environ.get("RAW_URI") or environ.get("PATH_INFO", "/")).split("?", 1)[0]
        canonical = "\n".join(
            [
                environ.get("REQUEST_METHOD", "GET").upper(),
                signer._normalize_url_path(raw_path),
                signer._canonical_query_string_url(urlsplit("?" + query)),
                signer.canonical_headers(headers) + "\n",
                ";".join(signed),
                payload,
            ]
        )
        request = _Timestamped(timestamp)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if not hmac.compare_digest(expected, fields["Signature"]):
            return self._mismatch(is_s3)
        if not presigned:  # a presigned URL has its own window: X-Amz-Expires (_expired)
            refusal = _skewed(timestamp, is_s3)
            if refusal is None and payload in (chunksig.SIGNED, chunksig.SIGNED_TRAILER):
                # the seed covers the headers only: its chunks are checked as they stream
                environ[chunksig.ENVIRON_KEY] = chunksig.Seed(
                    sign=functools.partial(signer.signature, request=request),
                    timestamp=timestamp,
                    scope=signer.credential_scope(request),
                    signature=fields["Signature"],
                    trailer=payload == chunksig.SIGNED_TRAILER,
                )
            return refusal
        return None

    @staticmethod
    def _mismatch(is_s3: bool) -> Refusal:
        message = chunksig.MISMATCH
        if not is_s3:
            message += " Consult the service documentation for details."
        return Refusal("403 Forbidden", "SignatureDoesNotMatch", message)

    @staticmethod
    def _unsupported() -> Refusal:
        return Refusal(
            "400 Bad Request",
            "IncompleteSignature",
            "local_aws --verify-signatures checks AWS Signature Version 4 (AWS4-HMAC-SHA256) "
            "only: sign with it (boto3, the AWS CLI and the SDKs do)",
        )


def _token_matches(expected: str | None, sent: str | None) -> bool:
    """A key's session token must come with it, and a key without one takes none."""
    if expected is None or sent is None:
        return expected is None and sent is None
    return hmac.compare_digest(expected.encode(), sent.encode())


def _bad_token(is_s3: bool, environ: dict[str, Any]) -> Refusal:
    """AWS's answer to a session token that is not the key's, in each protocol's words."""
    if is_s3:
        return Refusal(
            "400 Bad Request",
            "InvalidToken",
            "The provided token is malformed or otherwise invalid.",
        )
    code = "UnrecognizedClientException" if is_json_protocol(environ) else "InvalidClientTokenId"
    return Refusal("403 Forbidden", code, "The security token included in the request is invalid.")


class _Timestamped:
    """What botocore's signer reads of a request to build the string to sign."""

    def __init__(self, timestamp: str):
        self.context = {"timestamp": timestamp}


def _expired(timestamp: str, expires: str) -> Refusal | None:
    try:
        signed_at = dt.datetime.strptime(timestamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        seconds = int(expires)
    except ValueError:
        return Refusal("400 Bad Request", "AuthorizationQueryParametersError", "bad X-Amz-Date")
    if dt.datetime.now(dt.UTC) > signed_at + dt.timedelta(seconds=seconds):
        return Refusal("403 Forbidden", "AccessDenied", "Request has expired")
    return None


#: How far a signed request's X-Amz-Date may be from the server's clock, as on AWS.
MAX_SKEW = dt.timedelta(minutes=15)


def _skewed(timestamp: str, is_s3: bool) -> Refusal | None:
    """AWS refuses a request signed more than 15 minutes before or after its own clock (a
    replayed or mis-clocked request), in S3's words or the other services'."""
    now = dt.datetime.now(dt.UTC)
    try:
        signed_at = dt.datetime.strptime(timestamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return Refusal("403 Forbidden", "IncompleteSignature", f"bad X-Amz-Date {timestamp!r}")
    if abs(now - signed_at) <= MAX_SKEW:
        return None
    if is_s3:
        return Refusal(
            "403 Forbidden",
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.",
        )
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    if signed_at < now:
        earliest = (now - MAX_SKEW).strftime("%Y%m%dT%H%M%SZ")
        message = (
            f"Signature expired: {timestamp} is now earlier than {earliest} ({stamp} - 15 min.)"
        )
    else:
        latest = (now + MAX_SKEW).strftime("%Y%m%dT%H%M%SZ")
        message = (
            f"Signature not yet current: {timestamp} is still later than {latest} "
            f"({stamp} + 15 min.)"
        )
    return Refusal("400 Bad Request", "InvalidSignatureException", message)
