"""Admin routes under /_local_aws/: health, a resource's description (what the AWS
console's page for it shows: an HTML page for a browser, JSON otherwise; the target of
the pipeline's task links offline, with its log at ``.../logs``), and faults on request
for tests."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from local_aws.sagemaker.errors import ValidationException

if TYPE_CHECKING:
    from local_aws.sagemaker.backend import Backend

# the console's path segment → (local_aws record kind, the Describe* operation shaping it)
DESCRIBED = {
    "training-jobs": ("training-jobs", "DescribeTrainingJob"),
    "processing-jobs": ("processing-jobs", "DescribeProcessingJob"),
    "transform-jobs": ("transform-jobs", "DescribeTransformJob"),
    "hyper-tuning-jobs": ("tuning-jobs", "DescribeHyperParameterTuningJob"),
    "endpoints": ("endpoints", "DescribeEndpoint"),
    "model-packages": ("model-packages", "DescribeModelPackage"),
}
JOB_KINDS = {
    "training-jobs": "TrainingJobStatus",
    "processing-jobs": "ProcessingJobStatus",
    "transform-jobs": "TransformJobStatus",
}


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, content_type="application/json")


def handle(backend: Backend, request: Request) -> Response:
    parts = [p for p in request.path.split("/") if p][1:]  # drop "_local_aws"
    body = request.get_json(silent=True) or {}
    if parts == ["health"]:
        # the data dir tells a checkout whether this server is its own (scripts/env.sh)
        return _json(
            {"status": "ok", "running_jobs": len(backend.jobs), "data_dir": str(backend.data_dir)}
        )
    if len(parts) >= 3 and parts[0] == "describe" and request.method == "GET":
        # a model package's name is <group>/<version>
        size = 2 if parts[1] == "model-packages" else 1
        name, tail = "/".join(parts[2 : 2 + size]), parts[2 + size :]
        if tail not in ([], ["logs"]):
            return _json({"message": f"no admin route {request.path}"}, 404)
        return _describe(backend, parts[1], name, request, logs=tail == ["logs"])
    if parts[:1] != ["faults"]:
        return _json({"message": f"no admin route {request.path}"}, 404)
    rest = parts[1:]
    try:
        if not rest and request.method == "DELETE":
            backend.faults.clear()
            return _json({"cleared": True})
        if not rest:
            return _json(
                {
                    "throttle_fraction": backend.faults.throttle_fraction,
                    "variants": {
                        f"{e}/{v}": vars(f) for (e, v), f in backend.faults.variants.items()
                    },
                }
            )
        if rest == ["throttle"]:
            backend.faults.set_throttle(
                float(body.get("fraction", 0)), body.get("operations"), body.get("seed")
            )
            return _json({"throttle_fraction": backend.faults.throttle_fraction})
        if len(rest) == 3 and rest[0] in JOB_KINDS and rest[2] == "fail":
            reason = body.get("reason") or "AlgorithmError: failed on request (local_aws fault)"
            if not backend.end_job(rest[0], rest[1], "Failed", reason):
                return _json({"message": f"{rest[0]} {rest[1]} is not running"}, 409)
            return _json({"failed": rest[1]})
        if len(rest) == 3 and rest[0] == "training-jobs" and rest[2] == "interrupt-spot":
            job = backend.running_job("training-jobs", rest[1])
            record = backend.store.get("training-jobs", rest[1]) or {}
            if job is None:
                return _json({"message": f"training job {rest[1]} is not running"}, 409)
            if not record.get("EnableManagedSpotTraining"):
                return _json({"message": f"training job {rest[1]} is not a managed spot job"}, 409)
            job.interrupt_spot()
            return _json({"interrupted": rest[1]})
        if len(rest) == 4 and rest[0] == "endpoints" and rest[2] == "variants":
            fault = backend.faults.set_variant(
                rest[1],
                rest[3],
                error_rate=float(body.get("error_rate", 0)),
                latency_ms=float(body.get("latency_ms", 0)),
                status=int(body.get("status", 500)),
            )
            return _json(vars(fault))
    except (ValueError, TypeError, ValidationException) as exc:
        return _json({"message": str(exc)}, 400)
    return _json({"message": f"no admin route {request.path}"}, 404)


def _wants_html(request: Request) -> bool:
    asked = request.args.get("format")
    if asked:
        return asked == "html"
    return "text/html" in request.headers.get("Accept", "")


def _html(body: str, status: int = 200) -> Response:
    return Response(
        body,
        status=status,
        content_type="text/html; charset=utf-8",
        # read-only pages of user content: no scripts, no framing, no sniffing
        headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
        },
    )


def _describe(
    backend: Backend, segment: str, name: str, request: Request, *, logs: bool = False
) -> Response:
    from local_aws.sagemaker import views
    from local_aws.sagemaker.api import shape_response

    if segment not in DESCRIBED:
        return _json(
            {"message": f"no described kind {segment!r}: use one of {', '.join(DESCRIBED)}"}, 404
        )
    kind, operation = DESCRIBED[segment]
    key = backend.arn("model-package", name) if segment == "model-packages" else name
    record = backend.store.get(kind, key)
    if record is None:
        return _json({"message": f"{segment} {name} does not exist"}, 404)
    if logs and segment not in views.LOGS:
        return _json({"message": f"{segment} have no logs"}, 404)
    description = shape_response(operation, record)
    if logs:
        lines = views.log_tail(backend.client("logs"), segment, name, views.LOG_PAGE)
        return _html(views.render_logs(segment, name, lines))
    if not _wants_html(request):
        return Response(
            json.dumps(description, indent=1, default=str), content_type="application/json"
        )
    children = None
    if segment == "hyper-tuning-jobs":
        from local_aws.sagemaker.tuning import children_summaries

        children = children_summaries(backend, record)
    lines = views.log_tail(backend.client("logs"), segment, name, views.LOG_TAIL)
    return _html(
        views.render_resource(segment, name, description, log_lines=lines, children=children)
    )
