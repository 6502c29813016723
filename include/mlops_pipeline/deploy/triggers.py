"""The canary release's waits, on the triggerer: no worker slot is held while an endpoint
updates or a step bakes.

``CanaryTrigger`` waits for the endpoint to be InService (``phase="in_service"``) or for a
bake to end (``phase="bake"``, at the absolute time ``until``, so a triggerer restart
resumes the same bake rather than starting it again). During a bake it can replay sample
rows to every variant (``TargetVariant``), so a quiet endpoint still yields a verdict and
both variants are judged on the same inputs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

TRANSITIONS = ("Creating", "Updating", "SystemUpdating", "RollingBack")
FIRST_POLL_SECONDS = 0.1


def in_service_poll(polls: int, poll_seconds: float) -> float:
    """The wait before the next DescribeEndpoint: short at first (a weight change, or warm
    model servers, are in service in well under a second), growing to ``poll_seconds``
    (a real instance takes minutes: a handful of quick polls cost nothing)."""
    return min(poll_seconds, FIRST_POLL_SECONDS * 1.5**polls)


class CanaryTrigger(BaseTrigger):
    def __init__(
        self,
        *,
        endpoint_name: str,
        phase: str,
        until: float | None = None,
        replay_until: float | None = None,
        replay_seconds: float = 0.0,
        replay_rows: list[str] | None = None,
        replay_variants: list[str] | None = None,
        replay_rate: float = 0.0,
        poll_seconds: float = 15.0,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
    ) -> None:
        super().__init__()
        if phase not in ("in_service", "bake"):
            raise ValueError(f"phase must be in_service or bake, not {phase!r}")
        self.endpoint_name = endpoint_name
        self.phase = phase
        self.until = until
        self.replay_until = replay_until
        self.replay_seconds = replay_seconds
        self.replay_rows = replay_rows or []
        self.replay_variants = replay_variants or []
        self.replay_rate = replay_rate
        self.poll_seconds = poll_seconds
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "endpoint_name": self.endpoint_name,
                "phase": self.phase,
                "until": self.until,
                "replay_until": self.replay_until,
                "replay_seconds": self.replay_seconds,
                "replay_rows": self.replay_rows,
                "replay_variants": self.replay_variants,
                "replay_rate": self.replay_rate,
                "poll_seconds": self.poll_seconds,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
            },
        )

    def _client(self, service: str) -> Any:
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        return AwsBaseHook(
            aws_conn_id=self.aws_conn_id, client_type=service, region_name=self.region_name
        ).get_conn()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            if self.phase == "in_service":
                yield TriggerEvent(await self._in_service())
            else:
                yield TriggerEvent(await self._bake())
        except Exception as error:  # the operator decides; the trigger only reports
            self.log.exception("waiting on endpoint %s failed", self.endpoint_name)
            yield TriggerEvent({"status": "error", "message": f"{type(error).__name__}: {error}"})

    async def _in_service(self) -> dict[str, Any]:
        from mlops_pipeline.progress import StatusChanges

        sm = await asyncio.to_thread(self._client, "sagemaker")
        changes = StatusChanges()  # one line per status, not one per poll
        polls = 0
        while True:
            endpoint = await asyncio.to_thread(
                sm.describe_endpoint, EndpointName=self.endpoint_name
            )
            status = endpoint["EndpointStatus"]
            if status not in TRANSITIONS:
                self.log.info("endpoint %s is %s", self.endpoint_name, status)
                return {
                    "status": "in_service" if status == "InService" else "error",
                    "endpoint_status": status,
                    "message": endpoint.get("FailureReason", ""),
                    "at": time.time(),
                }
            if changes.line(status) is not None:
                self.log.info("endpoint %s: %s", self.endpoint_name, status)
            await asyncio.sleep(in_service_poll(polls, self.poll_seconds))
            polls += 1

    async def _bake(self) -> dict[str, Any]:
        until = float(self.until or time.time())
        replay_until = float(self.replay_until or until)
        replays = []
        if self.replay_rate > 0 and self.replay_rows and self.replay_variants:
            runtime = await asyncio.to_thread(self._client, "sagemaker-runtime")
            # A busy triggerer may start this seconds into the bake: the replay still sends a
            # whole bake of traffic from now, and the wait for its metrics moves with it (the
            # operator takes the new end as the step's window).
            late = time.time() + self.replay_seconds - replay_until
            if late > 0:
                replay_until += late
                until += late
            replays = [
                asyncio.create_task(self._replay(runtime, variant, replay_until))
                for variant in self.replay_variants
            ]
        self.log.info(
            "endpoint %s: baking for %.1f s more%s",
            self.endpoint_name,
            max(0.0, until - time.time()),
            f", replaying {self.replay_rate:g} calls/s to each of {', '.join(self.replay_variants)}"
            if replays
            else "",
        )
        await asyncio.sleep(max(0.0, until - time.time()))
        sent = [await task for task in replays]
        replayed = dict(zip(self.replay_variants, sent, strict=True)) if replays else {}
        return {
            "status": "baked",
            "at": time.time(),
            "replayed": replayed,
            "replay_until": replay_until if replays else None,
        }

    async def _replay(self, runtime: Any, variant: str, until: float) -> list[int]:
        """Send sample rows to ``variant`` at ``replay_rate`` calls/s until ``until``;
        [calls, failed calls]."""
        interval = 1.0 / self.replay_rate
        calls = failed = 0
        next_at = time.time()
        while next_at < until:
            row = self.replay_rows[calls % len(self.replay_rows)]
            try:
                await asyncio.to_thread(self._invoke, runtime, variant, row)
            except Exception:  # a failing variant is what the analysis is for
                failed += 1
            calls += 1
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.time()))
        return [calls, failed]

    def _invoke(self, runtime: Any, variant: str, row: str) -> None:
        runtime.invoke_endpoint(
            EndpointName=self.endpoint_name,
            TargetVariant=variant,
            ContentType="text/csv",
            Body=row.encode(),
        )["Body"].read()
