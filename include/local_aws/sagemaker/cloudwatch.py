"""Job output into CloudWatch Logs, and metrics into CloudWatch, through moto over HTTP.

Writes go through local_aws's own endpoint (not moto's Python objects) so they take the
same path as any client's: journaled, hence persisted across restarts.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

# CloudWatch Logs limits: 10,000 events or 1 MiB per PutLogEvents call.
_MAX_BATCH_EVENTS = 5000
_MAX_BATCH_BYTES = 900_000
_FLUSH_SECONDS = 0.25


def ensure_log_group(logs: Any, group: str) -> None:
    try:
        logs.create_log_group(logGroupName=group)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass


class LogStream:
    """A buffered, thread-safe writer of lines to one CloudWatch Logs stream.

    Lines are flushed every quarter second while a job runs, so the provider's
    ``print_log`` (and ``aws logs tail``) shows output as it is produced.
    """

    def __init__(self, logs: Any, group: str, stream: str):
        self.logs, self.group, self.stream = logs, group, stream
        self._buffer: list[dict[str, Any]] = []
        self._size = 0
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._closed = threading.Event()
        ensure_log_group(logs, group)
        try:
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
        except logs.exceptions.ResourceAlreadyExistsException:
            pass
        self._thread = threading.Thread(target=self._flusher, name=f"logs:{stream}", daemon=True)
        self._thread.start()

    def write(self, line: str) -> None:
        line = line.rstrip("\n") or " "
        with self._lock:
            self._buffer.append({"timestamp": int(time.time() * 1000), "message": line})
            self._size += len(line) + 26
            full = len(self._buffer) >= _MAX_BATCH_EVENTS or self._size >= _MAX_BATCH_BYTES
        if full:
            self.flush()

    def flush(self) -> None:
        # one batch at a time, in order: a batch that overtook an older one would make the
        # server merge it into the stream's sorted events instead of appending it
        with self._send_lock:
            with self._lock:
                batch, self._buffer, self._size = self._buffer, [], 0
            if not batch:
                return
            try:
                self.logs.put_log_events(
                    logGroupName=self.group, logStreamName=self.stream, logEvents=batch
                )
            except Exception:  # a lost log batch must never fail the job itself
                log.exception("could not write %d log events to %s", len(batch), self.stream)

    def _flusher(self) -> None:
        while not self._closed.wait(_FLUSH_SECONDS):
            self.flush()

    def close(self) -> None:
        self._closed.set()
        self._thread.join()
        self.flush()


def put_metrics(
    cloudwatch: Any, namespace: str, data: list[dict[str, Any]], *, quiet: bool = True
) -> None:
    """PutMetricData in chunks of the API's 1000-datum limit."""
    for start in range(0, len(data), 1000):
        try:
            cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[start : start + 1000])
        except Exception:
            if not quiet:
                raise
            log.exception("could not publish %d metrics to %s", len(data), namespace)
