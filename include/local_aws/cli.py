"""``local-aws``: serve the embedded AWS, and inject faults into a running one."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import urllib.error
import urllib.request
from typing import Any

from local_aws.guard import TOKEN_HEADER, read_token

DEFAULT_URL = "http://127.0.0.1:4566"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="local-aws", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run local_aws in the foreground")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4566)
    serve.add_argument("--data-dir", default=".local-aws")
    serve.add_argument("--region", default="us-east-1")
    serve.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="allow binding an address other than loopback (there is no authentication)",
    )
    serve.add_argument("--keep-sandboxes", action="store_true", help="keep job dirs after success")
    serve.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow cross-origin requests from this web origin (repeatable; default: none)",
    )
    serve.add_argument(
        "--fsync",
        choices=["always", "interval", "never"],
        default="interval",
        help="when the journal is fsynced: before each write is answered (always), every "
        "second (interval: a machine crash may lose the last second of writes; a crash of "
        "local_aws alone loses nothing), or when the OS decides (never). Default: interval",
    )
    serve.add_argument(
        "--compact-every",
        type=int,
        default=None,
        metavar="RECORDS",
        help="snapshot the state and drop the journal's records after this many writes, so "
        "a restart replays at most that many (default: 1000; 0: never)",
    )
    serve.add_argument(
        "--verify-signatures",
        action="store_true",
        help="check every request's SigV4 signature against the keys of --credentials-file "
        "(default: any credentials work, as with moto)",
    )
    serve.add_argument(
        "--credentials-file",
        metavar="PATH",
        help="AWS shared-credentials file whose [profile] keys --verify-signatures accepts",
    )

    for name in ("health", "fault"):
        p = sub.add_parser(
            name, help="check a running local_aws" if name == "health" else "inject a fault"
        )
        p.add_argument("--endpoint-url", default=DEFAULT_URL)
        p.add_argument(
            "--data-dir",
            default=".local-aws",
            help="the server's data dir, where its admin token is (default: .local-aws)",
        )
        if name == "fault":
            faults = p.add_subparsers(dest="fault", required=True)
            t = faults.add_parser(
                "throttle", help="answer a fraction of SageMaker calls with ThrottlingException"
            )
            t.add_argument("--fraction", type=float, required=True)
            t.add_argument("--operations", help="comma-separated operation names (default: all)")
            f = faults.add_parser("fail-job", help="fail a running job")
            f.add_argument("kind", choices=["training-jobs", "processing-jobs", "transform-jobs"])
            f.add_argument("name")
            f.add_argument("--reason")
            s = faults.add_parser(
                "interrupt-spot", help="reclaim a managed spot training job's capacity"
            )
            s.add_argument("name")
            v = faults.add_parser("variant", help="make an endpoint variant fail or slow down")
            v.add_argument("endpoint")
            v.add_argument("variant")
            v.add_argument("--error-rate", type=float, default=0.0)
            v.add_argument("--latency-ms", type=float, default=0.0)
            v.add_argument("--status", type=int, default=500)
            faults.add_parser("clear", help="remove every fault")

    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "health":
        return _admin(args.endpoint_url, "GET", "/_local_aws/health", token="")
    try:
        token = read_token(args.data_dir)
    except FileNotFoundError as exc:
        print(f"local-aws: {exc}", file=sys.stderr)
        return 1
    return _fault(args, token)


def _serve(args: argparse.Namespace) -> int:
    from local_aws.journal import JournalError
    from local_aws.server import LocalAWS
    from local_aws.sigv4 import load_credentials

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        keys = None
        if args.verify_signatures:
            if not args.credentials_file:
                raise ValueError(
                    "--verify-signatures needs --credentials-file PATH (an AWS credentials "
                    "file, like ~/.aws/credentials, with the keys to accept)"
                )
            keys = load_credentials(args.credentials_file)
        elif args.credentials_file:
            raise ValueError("--credentials-file is only read with --verify-signatures")
        aws = LocalAWS(
            args.data_dir,
            host=args.host,
            port=args.port,
            region=args.region,
            allow_non_loopback=args.allow_non_loopback,
            keep_sandboxes=args.keep_sandboxes,
            cors_origins=tuple(args.cors_origin),
            fsync=args.fsync,
            compact_every=args.compact_every,
            verify_signatures=keys,
        )
        aws.start()
    except (ValueError, OSError, JournalError) as exc:
        print(f"local-aws: {exc}", file=sys.stderr)
        return 2
    print(f"local_aws serving on {aws.url} (data in {aws.data_dir})", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    print("local_aws stopping", flush=True)
    aws.stop()
    return 0


def _fault(args: argparse.Namespace, token: str) -> int:
    url = args.endpoint_url
    if args.fault == "throttle":
        ops = args.operations.split(",") if args.operations else None
        return _admin(
            url,
            "POST",
            "/_local_aws/faults/throttle",
            {"fraction": args.fraction, "operations": ops},
            token=token,
        )
    if args.fault == "fail-job":
        path = f"/_local_aws/faults/{args.kind}/{args.name}/fail"
        return _admin(url, "POST", path, {"reason": args.reason}, token=token)
    if args.fault == "interrupt-spot":
        path = f"/_local_aws/faults/training-jobs/{args.name}/interrupt-spot"
        return _admin(url, "POST", path, token=token)
    if args.fault == "variant":
        body = {"error_rate": args.error_rate, "latency_ms": args.latency_ms, "status": args.status}
        path = f"/_local_aws/faults/endpoints/{args.endpoint}/variants/{args.variant}"
        return _admin(url, "POST", path, body, token=token)
    return _admin(url, "DELETE", "/_local_aws/faults", token=token)


def _admin(
    url: str, method: str, path: str, body: dict[str, Any] | None = None, *, token: str
) -> int:
    data = json.dumps(body or {}).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers[TOKEN_HEADER] = token
    request = urllib.request.Request(
        url + path, data=data if method != "GET" else None, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            print(response.read().decode())
            return 0
    except urllib.error.HTTPError as exc:
        print(f"local-aws: {exc.code}: {exc.read().decode()}", file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(
            f"local-aws: cannot reach {url}: {exc.reason} (is `local-aws serve` running?)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
