"""The staging smoke test: sample rows in, one finite score per row out, fast enough."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any


class SmokeError(AssertionError):
    """The staging endpoint did not answer as a model in production must."""


def scores(body: str, rows: int) -> list[float]:
    """The scores in a text/csv response, one per row; SmokeError otherwise."""
    lines = [line.strip() for line in body.strip().splitlines() if line.strip()]
    if len(lines) != rows:
        raise SmokeError(
            f"the response has {len(lines)} lines for {rows} rows: expected one score per row "
            f"(first lines: {lines[:3]})"
        )
    values = []
    for i, line in enumerate(lines, 1):
        try:
            value = float(line)
        except ValueError:
            raise SmokeError(f"line {i} of the response is not a score: {line[:80]!r}") from None
        if not math.isfinite(value):
            raise SmokeError(f"line {i} of the response is {value}, not a finite score")
        values.append(value)
    return values


@dataclass(frozen=True)
class SmokeResult:
    calls: int
    rows: int
    max_latency_ms: float
    mean_score: float

    def text(self) -> str:
        return (
            f"{self.calls} calls, {self.rows} rows scored, slowest call "
            f"{self.max_latency_ms:.1f} ms, mean score {self.mean_score:.4f}"
        )


def smoke_test(runtime: Any, endpoint: str, rows: list[str], max_latency_ms: float) -> SmokeResult:
    """All rows in one call, then each row alone: every call must answer a score per row
    within ``max_latency_ms``."""
    batches = [rows, *([row] for row in rows)]
    slowest, all_scores = 0.0, []
    for batch in batches:
        started = time.perf_counter()
        try:
            response = runtime.invoke_endpoint(
                EndpointName=endpoint,
                ContentType="text/csv",
                Accept="text/csv",
                Body="\n".join(batch).encode(),
            )
            body = response["Body"].read().decode()
        except Exception as error:
            raise SmokeError(
                f"InvokeEndpoint {endpoint} with {len(batch)} rows failed: {error}"
            ) from None
        latency = (time.perf_counter() - started) * 1000
        if latency > max_latency_ms:
            raise SmokeError(
                f"InvokeEndpoint {endpoint} with {len(batch)} rows took {latency:.0f} ms, over "
                f"MLOPS_DEPLOY_SMOKE_MAX_LATENCY_MS={max_latency_ms:g}"
            )
        slowest = max(slowest, latency)
        all_scores += scores(body, len(batch))
    return SmokeResult(len(batches), len(rows), slowest, sum(all_scores) / len(all_scores))
