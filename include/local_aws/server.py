"""One process, one loopback port: moto for the services it does well, ours for SageMaker.

Requests are routed by the SigV4 credential scope in the Authorization header: scope
``sagemaker`` (SageMaker and SageMaker Runtime both sign with it) goes to our app, every
other service to moto's server app, unmodified, behind a journal that persists it.

One thing happens on the way to moto: a CloudWatch metric read (GetMetricStatistics,
GetMetricData) first publishes the endpoint invocation metrics local_aws has counted in
memory, so a reader sees every call made before it asked, as on AWS once the period's
datapoints are in.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket
import threading
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from werkzeug.serving import BaseWSGIServer, make_server

from local_aws.gaps import operation, signing_service

if TYPE_CHECKING:
    from local_aws.sigv4 import LocalKey

log = logging.getLogger(__name__)

METRIC_READS = frozenset({"GetMetricStatistics", "GetMetricData"})


class Dispatcher:
    def __init__(self, moto_app: Any, sagemaker_app: Any, before_metric_read: Any = None):
        self.moto_app = moto_app
        self.sagemaker_app = sagemaker_app
        self.before_metric_read = before_metric_read

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        service = signing_service(environ)
        if service == "sagemaker" or environ.get("PATH_INFO", "").startswith("/_local_aws/"):
            return self.sagemaker_app(environ, start_response)
        reads_metrics = service == "monitoring" and operation(environ) in METRIC_READS
        if reads_metrics and self.before_metric_read is not None:
            self.before_metric_read()
        return self.moto_app(environ, start_response)


def moto_serves(moto_app: Any) -> Any:
    """Whether moto has a backend for a signed request's service (as its dispatcher decides)."""

    def serves(environ: dict[str, Any]) -> bool:
        host = moto_app.infer_service_region_host(environ, environ.get("PATH_INFO", ""))
        return host is not None and moto_app.get_backend_for_host(host) is not None

    return serves


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def reset_moto() -> None:
    """Forget moto's in-memory state (its backends are process-wide singletons)."""
    from moto.core.base_backend import BackendDict
    from moto.core.model_instances import reset_model_data

    BackendDict.reset()
    reset_model_data()


class LocalAWS:
    """The embedded AWS. ``with LocalAWS(data_dir) as aws: boto3.client(..., endpoint_url=aws.url)``"""

    def __init__(
        self,
        data_dir: str | Path = ".local-aws",
        *,
        host: str = "127.0.0.1",
        port: int = 4566,
        allow_non_loopback: bool = False,
        region: str = "us-east-1",
        keep_sandboxes: bool = False,
        cors_origins: tuple[str, ...] = (),
        fsync: str = "interval",
        compact_every: int | None = None,
        verify_signatures: Mapping[str, str | LocalKey] | None = None,
    ):
        from local_aws.journal import COMPACT_EVERY, FSYNC_POLICIES

        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_POLICIES)}, not {fsync!r}")
        if compact_every is not None and compact_every < 0:
            raise ValueError(f"compact_every must be >= 0 (0: never compact), not {compact_every}")
        if not is_loopback(host):
            if not allow_non_loopback:
                raise ValueError(
                    f"refusing to bind {host}: local_aws checks no credentials, so it binds "
                    "loopback only; pass allow_non_loopback=True (--allow-non-loopback) to override"
                )
            warnings.warn(
                f"local_aws is binding {host}: anyone who can reach it can read and write "
                "its S3 and run code through SageMaker jobs",
                stacklevel=2,
            )
        self.data_dir = Path(data_dir).resolve()
        self.host, self.port, self.region = host, port, region
        self.keep_sandboxes = keep_sandboxes
        self.cors_origins = tuple(cors_origins)
        self.fsync = fsync
        # access key id -> secret (or LocalKey: secret and session token); None: any
        # credentials work (as with moto)
        self.verify_signatures = dict(verify_signatures) if verify_signatures is not None else None
        self.credentials = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
        if self.verify_signatures is not None:
            if not self.verify_signatures:
                raise ValueError("verify_signatures needs at least one access key id and secret")
            # local_aws's own clients and its jobs sign with a key nobody else knows
            self.credentials = {
                "aws_access_key_id": "LOCALAWS" + secrets.token_hex(6).upper(),
                "aws_secret_access_key": secrets.token_urlsafe(30),
            }
        self.compact_every = COMPACT_EVERY if compact_every is None else compact_every
        self.admin_token = ""
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.backend: Any = None
        self.journal: Any = None
        self._routing: Any = None
        self._connections: Any = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address
        return f"http://{host}:{self.port}"

    def start(self) -> LocalAWS:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        from local_aws import gaps, guard, logpatch, s3fixes, s3join, s3stream
        from local_aws.journal import Journal, fast_moto_routing
        from local_aws.keepalive import Connections, KeepAliveHandler
        from local_aws.sagemaker.app import SageMakerApp
        from local_aws.sagemaker.backend import Backend

        self.data_dir.mkdir(parents=True, exist_ok=True)
        s3stream.install()  # GetObject answers in chunks from the object's file
        s3join.install()  # CompleteMultipartUpload joins the parts file to file
        logpatch.install(self.data_dir / "log-events")  # log events on disk, not in lists
        logpatch.free_request_bodies()
        # moto rescans its package for every request it routes; the list never changes
        self._routing = fast_moto_routing()
        s3fixes.install()
        self._routing.__enter__()
        # One line per request drowns everything else; errors still show.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        moto_app = DomainDispatcherApplication(create_backend_app)
        self.journal = Journal(
            self.data_dir / "moto", fsync=self.fsync, compact_every=self.compact_every
        )
        # only once the journal's lock is ours: a second server started on a data dir in use
        # must not replace the running one's token (its CLI and clients read that file)
        self.admin_token = guard.write_token(self.data_dir)
        # large PutObject/UploadPart bodies reach moto's keys file to file, replayed ones too
        s3_app = s3stream.wrap(moto_app)
        started = time.perf_counter()
        replayed = self.journal.replay(s3_app)
        logpatch.collect_garbage()  # the files the replay wrote again, deleted streams'
        if replayed:
            log.info(
                "restored %d S3/Logs/CloudWatch/IAM changes from %s in %.3fs",
                replayed,
                self.data_dir,
                time.perf_counter() - started,
            )
        dispatcher = Dispatcher(gaps.wrap(self.journal.wrap(s3_app), moto_serves(moto_app)), None)
        verifier = None
        if self.verify_signatures is not None:
            from local_aws.sigv4 import Verifier

            internal = self.credentials
            verifier = Verifier(
                {
                    **self.verify_signatures,
                    internal["aws_access_key_id"]: internal["aws_secret_access_key"],
                }
            )
        guarded = guard.wrap(
            dispatcher, token=self.admin_token, cors_origins=self.cors_origins, verifier=verifier
        )
        self._server = make_server(
            self.host, self.port, guarded, threaded=True, request_handler=KeepAliveHandler
        )
        self._connections = Connections()
        self._server.local_aws_connections = self._connections  # type: ignore[attr-defined]
        self._server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = self._server.server_address[1]
        self.backend = Backend(
            self.data_dir,
            self.url,
            region=self.region,
            keep_sandboxes=self.keep_sandboxes,
            credentials=self.credentials,
        )
        dispatcher.sagemaker_app = SageMakerApp(self.backend)
        backend = self.backend

        def flush_endpoint_metrics() -> None:
            from local_aws.sagemaker.runtime import flush_metrics

            flush_metrics(backend)

        dispatcher.before_metric_read = flush_endpoint_metrics
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="local-aws", daemon=True
        )
        self._thread.start()
        self.backend.start()
        return self

    def stop(self) -> None:
        if self.backend is not None:
            self.backend.shutdown()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._connections.close_all()  # kept-alive ones outlive the server's loop
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.journal is not None:
            self.journal.close()
        if self._routing is not None:
            self._routing.__exit__(None, None, None)
            self._routing = None
        self._server = self._thread = None
        reset_moto()

    def __enter__(self) -> LocalAWS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, service: str, **kwargs: Any) -> Any:
        import boto3

        kwargs.setdefault("region_name", self.region)
        kwargs.setdefault("aws_access_key_id", self.credentials["aws_access_key_id"])
        kwargs.setdefault("aws_secret_access_key", self.credentials["aws_secret_access_key"])
        return boto3.session.Session().client(service, endpoint_url=self.url, **kwargs)
