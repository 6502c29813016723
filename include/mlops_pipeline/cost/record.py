"""One DAG run's cost record: computed from what the finder found, stored as JSON in S3
(``s3://<bucket>/<cost_prefix>/<dag_id>/<run start>_<run id>.json``), summarised in a line,
and read back for reports and estimates."""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlops_pipeline.cost import model, releases
from mlops_pipeline.cost.finder import Found
from mlops_pipeline.cost.prices import PriceTable

SCHEMA = 1


@dataclass(frozen=True)
class RunInfo:
    dag_id: str
    run_id: str
    state: str
    start: dt.datetime
    end: dt.datetime
    logical_date: dt.datetime | None = None


def usages(found: Iterable[Found], window: RunInfo) -> list[model.Usage]:
    out: list[model.Usage] = []
    for f in found:
        if f.kind == "endpoint":
            d, config = f.description, f.config or {}
            types = {v["VariantName"]: v for v in config.get("ProductionVariants", [])}
            variants = [
                {**types.get(v["VariantName"], {}), **v} for v in d.get("ProductionVariants", [])
            ] or list(types.values())
            spans = model.config_spans(
                d["EndpointName"], [(d["CreationTime"], f.task_id, variants)]
            )
            out.extend(model.variant_usage(spans, window.start, window.end))
        elif f.kind == "release":
            configs = (f.config or {}).get("variants", {})
            history = releases.phases(f.description, configs, f.task_id)
            spans = model.config_spans(f.description["endpoint"], history)
            out.extend(model.variant_usage(spans, window.start, window.end))
            for name in (f.config or {}).get("missing", []):
                # a config deleted since the release: its instances are unknown, so the
                # run's cost is unknown, never silently lower
                out.append(
                    model.Usage(
                        name=f"{f.description['endpoint']}/{name}",
                        kind="hosting",
                        task_id=f.task_id,
                        instance_type="unknown: endpoint config deleted",
                        instance_count=1,
                        seconds=0.0,
                        status="ConfigDeleted",
                        parent=f.description["endpoint"],
                    )
                )
        else:
            out.append(model.usage_of(f.kind, f.description, f.task_id, window.end))  # type: ignore[arg-type]
    return out


def build(
    run: RunInfo, found: Sequence[Found], table: PriceTable, region: str, *, uri: str = ""
) -> dict[str, Any]:
    costs = [model.cost(u, table, region) for u in usages(found, run)]
    costs.sort(key=lambda c: (c.usage.task_id, c.usage.kind, c.usage.name))
    return {
        "schema": SCHEMA,
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "state": run.state,
        "logical_date": run.logical_date.isoformat() if run.logical_date else None,
        "start": run.start.isoformat(),
        "end": run.end.isoformat(),
        "region": region,
        "prices": {"as_of": table.as_of, "source": table.source, "currency": table.currency},
        "jobs": [c.to_json() for c in costs],
        **model.totals(costs).to_json(),
        "uri": uri,
    }


def key(prefix: str, dag_id: str, run_id: str, start: dt.datetime) -> str:
    """Sorted by the run's start within the DAG's folder, so ``--since`` needs no reads."""
    safe = urllib.parse.quote(run_id, safe="")
    return f"{prefix.strip('/')}/{dag_id}/{start.astimezone(dt.UTC):%Y%m%dT%H%M%S}_{safe}.json"


def write(s3: Any, bucket: str, object_key: str, record: Mapping[str, Any]) -> str:
    s3.put_object(
        Bucket=bucket,
        Key=object_key,
        Body=json.dumps(record, indent=1).encode(),
        ContentType="application/json",
    )
    return f"s3://{bucket}/{object_key}"


def read_all(
    s3: Any,
    bucket: str,
    prefix: str,
    dag_id: str,
    since: dt.datetime | None = None,
    *,
    last: int | None = None,
) -> list[dict[str, Any]]:
    """The DAG's records, oldest first; ``since`` keeps runs started at or after it,
    ``last`` the latest that many."""
    folder = f"{prefix.strip('/')}/{dag_id}/"
    first = f"{folder}{since.astimezone(dt.UTC):%Y%m%dT%H%M%S}" if since else ""
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder):
        keys += [o["Key"] for o in page.get("Contents", []) if o["Key"] >= first]
    keys.sort()
    if last is not None:
        keys = keys[-last:] if last > 0 else []
    return [json.loads(s3.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in keys]


def find(s3: Any, bucket: str, prefix: str, dag_id: str, run_id: str) -> dict[str, Any] | None:
    """One run's record, or None when there is none (yet)."""
    folder = f"{prefix.strip('/')}/{dag_id}/"
    suffix = f"_{urllib.parse.quote(run_id, safe='')}.json"
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder):
        for item in page.get("Contents", []):
            if item["Key"].endswith(suffix):
                return json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
    return None


def money(value: float | None, currency: str = "USD") -> str:
    if value is None:
        return "unknown"
    return f"${value:,.4f}" if currency == "USD" else f"{value:,.4f} {currency}"


def summary(record: Mapping[str, Any]) -> str:
    """One line for the log and XCom: the total, what it rests on, and where the record is."""
    jobs = record["jobs"]
    kinds: dict[str, int] = {}
    for j in jobs:
        kinds[j["kind"]] = kinds.get(j["kind"], 0) + 1
    counted = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no SageMaker jobs"
    total = money(record["total_usd"])
    if record["unknown_cost_jobs"]:
        total = (
            f"{money(record['known_usd'])} + unknown for {len(record['unknown_cost_jobs'])} "
            f"job(s) ({', '.join(record['unknown_cost_jobs'][:3])}: instance type not in the "
            "price table, or its endpoint config deleted)"
        )
    savings = record.get("spot_savings_usd") or 0
    text = f"{record['dag_id']} run {record['run_id']} ({record['state']}) cost {total}"
    text += f" — {counted}"
    if savings:
        text += f"; managed spot saved {money(savings)}"
    text += f"; prices as of {record['prices']['as_of']}"
    if record.get("unexamined_resources"):
        text += (
            f"; INCOMPLETE: {record['unexamined_resources']} resources created meanwhile were "
            "not examined"
        )
    if record.get("uri"):
        text += f"; record {record['uri']}"
    return text


def table(records: Sequence[Mapping[str, Any]]) -> str:
    """The runs as a text table (the CLI's ``report``), with the price table's date and
    source under it."""
    rows = [("run start", "run id", "state", "jobs", "cost", "spot saved", "by task")]
    for r in records:
        by_task = ", ".join(f"{t} {money(v)}" for t, v in sorted(r["by_task"].items()))
        total = money(r["total_usd"])
        if r["unknown_cost_jobs"]:
            total = f"{money(r['known_usd'])} + unknown"
        rows.append(
            (
                r["start"][:19],
                r["run_id"],
                r["state"],
                str(len(r["jobs"])),
                total,
                money(r.get("spot_savings_usd") or 0),
                by_task or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if records:
        known = sum(r["known_usd"] for r in records)
        lines.append(f"{len(records)} run(s), {money(known)} in known costs")
        sources = {(r["prices"]["as_of"], r["prices"]["source"]) for r in records}
        for as_of, source in sorted(sources):
            lines.append(f"prices as of {as_of}; source: {source}")
    else:
        lines.append("no cost records")
    return "\n".join(line.rstrip() for line in lines)


def collect(
    sm: Any, s3: Any, settings: Any, run: RunInfo, table: PriceTable | None = None
) -> dict[str, Any]:
    """Find the run's resources, cost them, store the record in S3; the record."""
    from mlops_pipeline.cost import finder, prices

    table = table or prices.load(settings.price_table)
    found, skipped = finder.find_run(sm, run.dag_id, run.run_id, run.start, run.end)
    found += finder.find_releases(
        sm, s3, settings.bucket, settings.deploy_prefix, run.dag_id, run.run_id, run.start
    )
    object_key = key(settings.cost_prefix, run.dag_id, run.run_id, run.start)
    record = build(run, found, table, settings.region, uri=f"s3://{settings.bucket}/{object_key}")
    record["unexamined_resources"] = skipped  # > 0: the record may miss some of the run's jobs
    write(s3, settings.bucket, object_key, record)
    return record
