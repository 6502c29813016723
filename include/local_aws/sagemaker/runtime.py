"""SageMaker Runtime InvokeEndpoint: route to a variant's model server, publish its metrics.

This is the hot path, so it reads only in-memory state (the endpoint's Router), forwards
over a keep-alive connection and counts the call in memory; metrics reach CloudWatch as
statistic sets, one per variant and second, every few seconds (not one PutMetricData per
request) and at once before any metric read (``flush_metrics``, called by the server on
GetMetricStatistics / GetMetricData): a reader never waits for the next flush to see the
calls made so far, and an idle server publishes nothing.
"""

from __future__ import annotations

import http.client
import threading
import time
from typing import TYPE_CHECKING, Any

from local_aws.sagemaker.cloudwatch import put_metrics
from local_aws.sagemaker.endpoints import KIND, LOG_GROUP, LiveEndpoint, Router, registry
from local_aws.sagemaker.errors import AWSError, ModelError

if TYPE_CHECKING:
    from local_aws.sagemaker.backend import Backend

NAMESPACE = "AWS/SageMaker"
METRICS_EXTENSION = "endpoint-metrics"
FLUSH_SECONDS = 3.0
RESTORE_WAIT_SECONDS = 120.0  # an InService endpoint whose servers restart after a restart
_FORWARDED = (
    ("content-type", "Content-Type"),
    ("accept", "Accept"),
    ("x-amzn-sagemaker-custom-attributes", "X-Amzn-SageMaker-Custom-Attributes"),
    ("x-amzn-sagemaker-inference-id", "X-Amzn-SageMaker-Inference-Id"),
)
_TARGET_VARIANT = "x-amzn-sagemaker-target-variant"
# lower-case header name -> its WSGI environ key, for every header InvokeEndpoint reads
_ENVIRON_KEYS = {
    name: "CONTENT_TYPE" if name == "content-type" else "HTTP_" + name.upper().replace("-", "_")
    for name in [*(key for key, _ in _FORWARDED), _TARGET_VARIANT]
}
_MESSAGE_MAX = 1000


def validation_error(message: str) -> AWSError:
    # SageMaker Runtime calls it ValidationError (botocore: runtime.exceptions.ValidationError).
    return AWSError(message, code="ValidationError", status=400)


def request_headers(environ: dict[str, Any]) -> dict[str, str]:
    """The request headers InvokeEndpoint reads, by lower-case name, from a WSGI environ
    (as werkzeug's ``Request.headers`` has them: an empty Content-Type is no header)."""
    headers = {}
    for name, key in _ENVIRON_KEYS.items():
        value = environ.get(key)
        if value is not None and (value or key != "CONTENT_TYPE"):
            headers[name] = value
    return headers


def invoke_endpoint(
    backend: Backend, endpoint_name: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    """``headers``: the request's, by lower-case name (:func:`request_headers`)."""
    started = time.perf_counter()
    live = registry(backend).live.get(endpoint_name)
    router = live.router if live is not None else None
    if router is None:
        router = _wait_for_router(backend, endpoint_name, live)
    variant = router.pick(headers.get(_TARGET_VARIANT))
    forward = {name: headers[key] for key, name in _FORWARDED if key in headers}

    fault = backend.faults.variants.get((endpoint_name, variant.name))
    model_started = time.perf_counter()
    response_headers: list[tuple[str, str]] = []
    if fault is not None and fault.latency_ms > 0:
        time.sleep(fault.latency_ms / 1000.0)
    if fault is not None and fault.error_rate > 0 and backend.faults.roll(fault.error_rate):
        status, data = fault.status, b"injected fault: local_aws made this variant fail"
    else:
        try:
            status, response_headers, data = variant.server.invoke(body, forward)
        except TimeoutError:
            status, data = 0, b"Your invocation timed out while waiting for a response"
        except (OSError, http.client.HTTPException) as exc:
            status, data = 0, f"The model server did not answer: {exc}".encode()
    model_us = (time.perf_counter() - model_started) * 1e6
    metrics = _metrics(backend)
    if status >= 400 or status == 0:
        metrics.record(endpoint_name, variant.name, variant.instances, status, model_us, started)
        raise _model_error(backend, endpoint_name, variant.server.log_stream_arn, status, data)

    result = {"x-Amzn-Invoked-Production-Variant": variant.name}
    for key, value in response_headers:
        lowered = key.lower()
        if lowered == "content-type":
            result["Content-Type"] = value
        elif lowered == "x-amzn-sagemaker-custom-attributes":
            result["X-Amzn-SageMaker-Custom-Attributes"] = value
    result.setdefault("Content-Type", "application/octet-stream")
    metrics.record(endpoint_name, variant.name, variant.instances, status, model_us, started)
    return 200, result, data


def _wait_for_router(backend: Backend, name: str, live: LiveEndpoint | None) -> Router:
    record = backend.store.get(KIND, name)
    if record is None:
        raise validation_error(f"Endpoint {name} of account {backend.account_id} not found.")
    if live is not None and record["EndpointStatus"] in ("InService", "Updating"):
        # its model servers are coming back after a restart: wait for them, bounded
        live.restored.wait(RESTORE_WAIT_SECONDS)
        if live.router is not None:
            return live.router
        record = backend.store.get(KIND, name) or record
    reason = f" ({record['FailureReason']})" if record.get("FailureReason") else ""
    raise validation_error(
        f"Endpoint {record['EndpointArn']} is not in service: its status is "
        f"{record['EndpointStatus']}{reason}. Invoke it once DescribeEndpoint shows InService."
    )


def _model_error(
    backend: Backend, endpoint: str, log_stream_arn: str, status: int, data: bytes
) -> ModelError:
    message = data.decode("utf-8", "replace").strip()[:_MESSAGE_MAX]
    side = "client" if 400 <= status < 500 else "server"
    region = backend.region
    error = ModelError(
        f'Received {side} error ({status}) from primary with message "{message}". See '
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#logEventViewer:group={LOG_GROUP}/{endpoint} in account {backend.account_id} "
        "for more information."
    )
    error.extra = {  # type: ignore[attr-defined]
        "OriginalStatusCode": status,
        "OriginalMessage": message,
        "LogStreamArn": log_stream_arn,
    }
    return error


# -- metrics -----------------------------------------------------------------------------------
class _Window:
    __slots__ = ("stamp", "instances", "count", "e4", "e5", "model", "overhead")

    def __init__(self, stamp: float, instances: int):
        self.stamp = stamp  # the second its calls ended in
        self.instances = instances
        self.count = self.e4 = self.e5 = 0
        self.model = [0.0, float("inf"), 0.0]  # sum, min, max
        self.overhead = [0.0, float("inf"), 0.0]


def _add(stat: list[float], value: float) -> None:
    stat[0] += value
    if value < stat[1]:
        stat[1] = value
    if value > stat[2]:
        stat[2] = value


class InvocationMetrics:
    """Per-variant invocation metrics, aggregated in memory per second and flushed as
    statistic sets stamped with that second, so a datapoint lies in the window its calls
    were made in, whenever it is flushed."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self._lock = threading.Lock()
        # held from taking the windows to their PutMetricData: a flush before a read waits
        # for one under way, so the read sees its datapoints too
        self._flushing = threading.Lock()
        self._windows: dict[tuple[str, str, int], _Window] = {}
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="endpoint-metrics", daemon=True)
        self._thread.start()

    def record(
        self,
        endpoint: str,
        variant: str,
        instances: int,
        status: int,
        model_us: float,
        started: float,
    ) -> None:
        overhead_us = max(0.0, (time.perf_counter() - started) * 1e6 - model_us)
        second = int(time.time())
        key = (endpoint, variant, second)
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = _Window(float(second), instances)
            window.count += 1
            if 400 <= status < 500:
                window.e4 += 1
            elif status >= 500 or status == 0:
                window.e5 += 1
            _add(window.model, model_us)
            _add(window.overhead, overhead_us)

    def flush(self) -> None:
        with self._flushing:
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            windows, self._windows = self._windows, {}
        data: list[dict[str, Any]] = []
        for (endpoint, variant, _), w in windows.items():
            dims = [
                {"Name": "EndpointName", "Value": endpoint},
                {"Name": "VariantName", "Value": variant},
            ]
            n = w.count
            per_instance = n / max(1, w.instances)
            data += [
                _datum("Invocations", dims, w.stamp, (n, n, 1, 1)),
                # errors as 0/1 samples, so Average is the error rate (as in SageMaker)
                _datum("Invocation4XXErrors", dims, w.stamp, _rate(n, w.e4)),
                _datum("Invocation5XXErrors", dims, w.stamp, _rate(n, w.e5)),
                _datum(
                    "InvocationsPerInstance", dims, w.stamp, (1, per_instance) + (per_instance,) * 2
                ),
                _datum("ModelLatency", dims, w.stamp, (n, *w.model), "Microseconds"),
                _datum("OverheadLatency", dims, w.stamp, (n, *w.overhead), "Microseconds"),
            ]
        if data:
            put_metrics(self.backend.client("cloudwatch"), NAMESPACE, data)

    def _run(self) -> None:
        while not self._closed.wait(FLUSH_SECONDS):
            self.flush()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=FLUSH_SECONDS + 5)
        self.flush()


def _rate(samples: int, errors: int) -> tuple[float, ...]:
    return (samples, errors, 0 if errors < samples else 1, 1 if errors else 0)


def _datum(
    name: str,
    dims: list[dict[str, str]],
    stamp: float,
    stats: tuple[float, ...],
    unit: str = "None",
) -> dict[str, Any]:
    count, total, low, high = stats
    return {
        "MetricName": name,
        "Dimensions": dims,
        "Timestamp": stamp,
        "StatisticValues": {"SampleCount": count, "Sum": total, "Minimum": low, "Maximum": high},
        "Unit": unit,
    }


def flush_metrics(backend: Backend) -> None:
    """Publish the invocation metrics counted so far (none counted yet: nothing to do)."""
    metrics = backend.extensions.get(METRICS_EXTENSION)
    if metrics is not None:
        metrics.flush()


def _metrics(backend: Backend) -> InvocationMetrics:
    metrics = backend.extensions.get(METRICS_EXTENSION)
    if metrics is None:
        with registry(backend).lock:
            metrics = backend.extensions.get(METRICS_EXTENSION)
            if metrics is None:
                metrics = backend.extensions[METRICS_EXTENSION] = InvocationMetrics(backend)
    return metrics
