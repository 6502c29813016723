"""Admin routes under /_local_aws/: health, and faults on request for tests."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from local_aws.sagemaker.errors import ValidationException

if TYPE_CHECKING:
    from local_aws.sagemaker.backend import Backend

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
