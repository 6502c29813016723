"""The cost model, pure: SageMaker Describe* responses → usage → cost.

Per job: billed seconds (``BillableTimeInSeconds``, else the job's own span) × instance
count × the hourly rate for the region, job kind and instance type, plus its ML storage
volume for the span. Managed spot: SageMaker already bills only ``BillableTimeInSeconds``
(the interrupted and discounted share removed) at the on-demand rate, so the savings are
what the training time would have cost on demand minus what was billed. Endpoints: the
instance-hours of each variant inside a window. A rate the table lacks makes the cost
unknown (``None``), never zero.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlops_pipeline.cost.prices import Kind, PriceTable

JOB_KINDS: tuple[Kind, ...] = ("training", "processing", "transform")
SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class Usage:
    """What one job (or one endpoint variant during a window) held, and for how long."""

    name: str
    kind: Kind
    task_id: str
    instance_type: str
    instance_count: int
    seconds: float  # the span: start → end (a training job's TrainingTimeInSeconds)
    billable_seconds: float | None = None  # SageMaker's BillableTimeInSeconds, when given
    spot: bool = False
    volume_gb: float = 0.0
    status: str = ""
    parent: str | None = None  # the tuning job of a tuning child; the endpoint of a variant

    @property
    def billed_seconds(self) -> float:
        return self.seconds if self.billable_seconds is None else self.billable_seconds


@dataclass(frozen=True)
class Cost:
    usage: Usage
    rate: float | None  # on-demand USD per instance-hour; None: not in the table
    compute: float | None
    on_demand: float | None  # what the compute would have cost without spot
    storage: float | None

    @property
    def total(self) -> float | None:
        if self.compute is None or self.storage is None:
            return None
        return self.compute + self.storage

    @property
    def spot_savings(self) -> float:
        if self.compute is None or self.on_demand is None:
            return 0.0
        return max(0.0, self.on_demand - self.compute)

    def to_json(self) -> dict[str, Any]:
        u = self.usage
        return {
            "name": u.name,
            "kind": u.kind,
            "task_id": u.task_id,
            "parent": u.parent,
            "status": u.status,
            "instance_type": u.instance_type,
            "instance_count": u.instance_count,
            "seconds": u.seconds,
            "billable_seconds": u.billable_seconds,
            "spot": u.spot,
            "volume_gb": u.volume_gb,
            "hourly_rate": self.rate,
            "compute_usd": self.compute,
            "storage_usd": self.storage,
            "total_usd": self.total,
            "spot_savings_usd": self.spot_savings,
        }


def cost(usage: Usage, table: PriceTable, region: str) -> Cost:
    rate = table.rate(region, usage.kind, usage.instance_type)
    if rate is None:
        compute = on_demand = None
    else:
        per_second = rate * usage.instance_count / SECONDS_PER_HOUR
        compute = usage.billed_seconds * per_second
        on_demand = (usage.seconds if usage.spot else usage.billed_seconds) * per_second
    storage: float | None = 0.0
    if usage.volume_gb:
        gb_hour = table.storage_rate(region)
        storage = (
            None
            if gb_hour is None
            else usage.volume_gb * usage.instance_count * usage.seconds / SECONDS_PER_HOUR * gb_hour
        )
    return Cost(usage, rate, compute, on_demand, storage)


# -- from Describe* responses ---------------------------------------------------------------------
def _time(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _span(start: Any, end: Any, until: dt.datetime) -> float:
    """Seconds from start to end; a job still running is counted up to ``until``."""
    begin = _time(start)
    if begin is None:
        return 0.0
    finish = _time(end) or until
    return max(0.0, (finish - begin).total_seconds())


def usage_of(kind: Kind, d: Mapping[str, Any], task_id: str, until: dt.datetime) -> Usage:
    """A Describe{Training,Processing,Transform}Job response as usage."""
    if kind == "training":
        resources = d.get("ResourceConfig") or {}
        if resources.get("InstanceGroups"):  # heterogeneous cluster: one type per group
            groups = resources["InstanceGroups"]
            types = {g["InstanceType"] for g in groups}
            resources = {
                "InstanceType": types.pop() if len(types) == 1 else "+".join(sorted(types)),
                "InstanceCount": sum(g["InstanceCount"] for g in groups),
                "VolumeSizeInGB": resources.get("VolumeSizeInGB", 0),
            }
        seconds = d.get("TrainingTimeInSeconds")
        if seconds is None:
            seconds = _span(d.get("TrainingStartTime"), d.get("TrainingEndTime"), until)
        parent = d.get("TuningJobArn")
        return Usage(
            name=d["TrainingJobName"],
            kind=kind,
            task_id=task_id,
            instance_type=resources.get("InstanceType", "?"),
            instance_count=int(resources.get("InstanceCount", 1)),
            seconds=float(seconds),
            billable_seconds=_float(d.get("BillableTimeInSeconds")),
            spot=bool(d.get("EnableManagedSpotTraining")),
            volume_gb=float(resources.get("VolumeSizeInGB") or 0),
            status=d.get("TrainingJobStatus", ""),
            parent=parent.rsplit("/", 1)[-1] if parent else None,
        )
    if kind == "processing":
        cluster = (d.get("ProcessingResources") or {}).get("ClusterConfig") or {}
        return Usage(
            name=d["ProcessingJobName"],
            kind=kind,
            task_id=task_id,
            instance_type=cluster.get("InstanceType", "?"),
            instance_count=int(cluster.get("InstanceCount", 1)),
            seconds=_span(
                d.get("ProcessingStartTime") or d.get("CreationTime"),
                d.get("ProcessingEndTime"),
                until,
            ),
            volume_gb=float(cluster.get("VolumeSizeInGB") or 0),
            status=d.get("ProcessingJobStatus", ""),
        )
    if kind == "transform":
        resources = d.get("TransformResources") or {}
        return Usage(
            name=d["TransformJobName"],
            kind=kind,
            task_id=task_id,
            instance_type=resources.get("InstanceType", "?"),
            instance_count=int(resources.get("InstanceCount", 1)),
            seconds=_span(
                d.get("TransformStartTime") or d.get("CreationTime"),
                d.get("TransformEndTime"),
                until,
            ),
            status=d.get("TransformJobStatus", ""),
        )
    raise ValueError(f"{kind!r} is not a job kind: use one of {', '.join(JOB_KINDS)}")


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


# -- endpoints -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class VariantSpan:
    """One production variant of an endpoint config, live from ``start`` to ``end`` (None:
    still live)."""

    endpoint: str
    variant: str
    instance_type: str
    instance_count: int
    start: dt.datetime
    end: dt.datetime | None
    task_id: str = ""


def variant_usage(
    spans: Iterable[VariantSpan], window_start: dt.datetime, window_end: dt.datetime
) -> list[Usage]:
    """Instance-hours of each variant inside the window: two variants live at once (a
    canary beside its baseline) are both counted for their overlap."""
    out = []
    for s in spans:
        start = max(_time(s.start) or window_start, window_start)
        end = min(_time(s.end) or window_end, window_end)
        seconds = max(0.0, (end - start).total_seconds())
        if not seconds:
            continue
        out.append(
            Usage(
                name=f"{s.endpoint}/{s.variant}",
                kind="hosting",
                task_id=s.task_id,
                instance_type=s.instance_type,
                instance_count=s.instance_count,
                seconds=seconds,
                status="InService" if s.end is None else "Replaced",
                parent=s.endpoint,
            )
        )
    return out


def config_spans(
    endpoint: str,
    configs: Sequence[tuple[dt.datetime, str, Sequence[Mapping[str, Any]]]],
    deleted: dt.datetime | None = None,
) -> list[VariantSpan]:
    """An endpoint's config history ``[(applied at, task id, ProductionVariants), ...]`` as
    variant spans: each config is live until the next one is applied (or the endpoint is
    deleted). Serverless variants (no instances) are left out."""
    ordered = sorted(configs, key=lambda c: c[0])
    spans = []
    for index, (applied, task_id, variants) in enumerate(ordered):
        until = ordered[index + 1][0] if index + 1 < len(ordered) else deleted
        for v in variants:
            if "InstanceType" not in v:
                continue
            spans.append(
                VariantSpan(
                    endpoint=endpoint,
                    variant=v["VariantName"],
                    instance_type=v["InstanceType"],
                    instance_count=int(
                        v.get("CurrentInstanceCount", v.get("InitialInstanceCount", 1))
                    ),
                    start=applied,
                    end=until,
                    task_id=task_id,
                )
            )
    return spans


# -- a run's total ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Totals:
    known_usd: float
    unknown: tuple[str, ...]  # jobs whose cost is unknown (instance type not in the table)
    spot_savings_usd: float
    by_task: Mapping[str, float | None]
    by_instance_type: Mapping[str, float | None]

    @property
    def total_usd(self) -> float | None:
        return None if self.unknown else self.known_usd

    def to_json(self) -> dict[str, Any]:
        return {
            "total_usd": self.total_usd,
            "known_usd": self.known_usd,
            "unknown_cost_jobs": list(self.unknown),
            "spot_savings_usd": self.spot_savings_usd,
            "by_task": dict(self.by_task),
            "by_instance_type": dict(self.by_instance_type),
        }


def totals(costs: Iterable[Cost]) -> Totals:
    """Sums per run, task and instance type; a group with an unknown cost is None."""
    known, unknown, savings = 0.0, [], 0.0
    by_task: dict[str, float | None] = {}
    by_type: dict[str, float | None] = {}
    for c in costs:
        total = c.total
        if total is None:
            unknown.append(c.usage.name)
        else:
            known += total
        savings += c.spot_savings
        for groups, key in ((by_task, c.usage.task_id), (by_type, c.usage.instance_type)):
            previous = groups.get(key, 0.0)
            groups[key] = None if previous is None or total is None else previous + total
    return Totals(known, tuple(unknown), savings, by_task, by_type)
