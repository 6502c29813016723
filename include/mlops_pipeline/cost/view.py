"""The Cost view of the Airflow UI: the plugin's FastAPI app (mounted by the api-server at
``/mlops/cost``) and its page, rendered from the runs' records in S3.

``GET /``: every DAG's recent runs with their cost, per task and per instance type, the
spot savings and a trend chart (inline SVG: nothing loaded from a CDN);
``GET /run?dag_id=…&run_id=…``: one run's jobs with their usage, rate and cost;
``GET /api/runs?dag_id=…&limit=…``: the records as JSON.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mlops_pipeline.cost.record import money

URL_PREFIX = "/mlops/cost"
DEFAULT_LIMIT = 30


def dag_ids(s3: Any, bucket: str, prefix: str) -> list[str]:
    folder = f"{prefix.strip('/')}/"
    found: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=folder, Delimiter="/"
    ):
        found += [p["Prefix"][len(folder) :].strip("/") for p in page.get("CommonPrefixes", [])]
    return sorted(found)


def _chart(records: Sequence[Mapping[str, Any]], width: int = 480, height: int = 80) -> str:
    values = [float(r["known_usd"]) for r in records]
    if not values:
        return ""
    top = max(values) or 1.0
    bar = width / len(values)
    bars = []
    for i, (r, v) in enumerate(zip(records, values, strict=True)):
        h = max(1.0, v / top * (height - 4))
        label = html.escape(f"{r['start'][:16]} {r['run_id']}: {money(v)}")
        colour = "#c0392b" if r["state"] != "success" else "#2e86c1"
        bars.append(
            f'<rect x="{i * bar + 1:.1f}" y="{height - h:.1f}" width="{max(1.0, bar - 2):.1f}" '
            f'height="{h:.1f}" fill="{colour}"><title>{label}</title></rect>'
        )
    return (
        f'<svg class="trend" width="{width}" height="{height}" role="img" '
        f'aria-label="cost of the last {len(values)} runs">{"".join(bars)}</svg>'
    )


def _breakdown(groups: Mapping[str, float | None]) -> str:
    return ", ".join(
        f"{html.escape(k)} {money(v)}"
        for k, v in sorted(groups.items(), key=lambda kv: -(kv[1] or 0))
    )


def render(by_dag: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """The page: one section per DAG, newest run first."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Cost</title><style>",
        "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;font-size:13px}"
        ".num{text-align:right}.unknown{color:#c0392b}",
        "</style></head><body><h1>Cost of DAG runs</h1>",
    ]
    sources: set[tuple[str, str]] = set()
    if not by_dag:
        parts.append("<p>No cost records yet: they are written when a DAG run ends.</p>")
    for dag_id, records in sorted(by_dag.items()):
        sources |= {(r["prices"]["as_of"], r["prices"]["source"]) for r in records}
        known = sum(float(r["known_usd"]) for r in records)
        saved = sum(float(r.get("spot_savings_usd") or 0) for r in records)
        parts.append(
            f"<h2 id='{html.escape(dag_id)}'>{html.escape(dag_id)}</h2>"
            f"<p>{len(records)} recent run(s): {money(known)} known cost, managed spot saved "
            f"{money(saved)}</p>{_chart(records)}"
            "<table><tr><th>run start</th><th>run id</th><th>state</th><th>jobs</th>"
            "<th class='num'>cost</th><th class='num'>spot saved</th><th>per task</th>"
            "<th>per instance type</th></tr>"
        )
        for r in reversed(records):
            total = money(r["total_usd"])
            if r["unknown_cost_jobs"]:
                total = (
                    f"{money(r['known_usd'])} <span class='unknown'>+ unknown "
                    f"({len(r['unknown_cost_jobs'])} job(s))</span>"
                )
            parts.append(
                f"<tr><td>{html.escape(r['start'][:19])}</td><td>{html.escape(r['run_id'])}</td>"
                f"<td>{html.escape(r['state'])}</td><td class='num'>{len(r['jobs'])}</td>"
                f"<td class='num'>{total}</td>"
                f"<td class='num'>{money(r.get('spot_savings_usd') or 0)}</td>"
                f"<td>{_breakdown(r['by_task'])}</td>"
                f"<td>{_breakdown(r['by_instance_type'])}</td></tr>"
            )
        parts.append("</table>")
    for as_of, source in sorted(sources):
        parts.append(
            f"<p><small>Prices as of {html.escape(as_of)}; {html.escape(source)}</small></p>"
        )
    parts.append("</body></html>")
    return "".join(parts)


_JOB_COLUMNS = (
    ("job", "name"),
    ("task", "task_id"),
    ("kind", "kind"),
    ("status", "status"),
    ("instance type", "instance_type"),
    ("count", "instance_count"),
    ("seconds", "seconds"),
    ("billed s", "billable_seconds"),
    ("$/hour", "hourly_rate"),
)


def render_run(rec: Mapping[str, Any] | None, dag_id: str, run_id: str) -> str:
    """One run: every job (or endpoint variant) with its usage, rate and cost."""
    title = html.escape(f"{dag_id} / {run_id}")
    head = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Cost of {title}</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;font-size:13px}"
        ".unknown{color:#c0392b}</style></head><body>"
        f"<h1>Cost of {title}</h1>"
    )
    if rec is None:
        return (
            head
            + "<p>No cost record for this run (yet): it is written when the run ends.</p></body></html>"
        )
    total = money(rec["total_usd"])
    if rec["unknown_cost_jobs"]:
        total = f"{money(rec['known_usd'])} <span class='unknown'>+ unknown</span>"
    rows = [
        "<table><tr>",
        *(f"<th>{h}</th>" for h, _ in _JOB_COLUMNS),
        "<th>cost</th><th>spot saved</th></tr>",
    ]
    for job in rec["jobs"]:
        cells = []
        for _, key in _JOB_COLUMNS:
            value = job.get(key)
            cells.append(f"<td>{html.escape('-' if value is None else str(value))}</td>")
        cost = job["total_usd"]
        shown = money(cost) if cost is not None else "<span class='unknown'>unknown</span>"
        rows.append(
            f"<tr>{''.join(cells)}<td>{shown}</td><td>{money(job['spot_savings_usd'])}</td></tr>"
        )
    rows.append("</table>")
    return (
        head + f"<p>{html.escape(rec['state'])}; total {total}; managed spot saved "
        f"{money(rec.get('spot_savings_usd') or 0)}; per task: {_breakdown(rec['by_task'])}; "
        f"per instance type: {_breakdown(rec['by_instance_type'])}</p>"
        + "".join(rows)
        + f"<p><small>Record {html.escape(rec.get('uri') or '')}; prices as of "
        f"{html.escape(rec['prices']['as_of'])}; {html.escape(rec['prices']['source'])}</small></p>"
        "</body></html>"
    )


def create_app(s3_factory: Callable[[], Any] | None = None) -> Any:
    """The FastAPI app; ``s3_factory`` gives an S3 client (default: the settings' aws
    connection through the Amazon provider's hook)."""
    from fastapi import FastAPI, Query
    from fastapi.responses import HTMLResponse

    from mlops_pipeline import ui_auth
    from mlops_pipeline.config import load_settings
    from mlops_pipeline.cost import record

    s3_client = ui_auth.s3_reader(s3_factory)

    def records(user: Any, dag_id: str | None, limit: int) -> dict[str, list[dict[str, Any]]]:
        settings = load_settings()
        s3 = s3_client()
        if dag_id:
            ui_auth.forbid_unless_readable(user, dag_id)
            dags = [dag_id]
        else:  # only the DAGs the user may read in the UI
            dags = ui_auth.readable(user, dag_ids(s3, settings.bucket, settings.cost_prefix))
        return {
            d: record.read_all(s3, settings.bucket, settings.cost_prefix, d, last=limit)
            for d in dags
        }

    app = FastAPI(title="Cost of DAG runs", dependencies=[ui_auth.login_required()])
    user_dependency = ui_auth.current_user()

    @app.get("/", response_class=HTMLResponse)
    def page(
        dag_id: str | None = None,
        limit: int = Query(DEFAULT_LIMIT, ge=1, le=500),
        user: Any = user_dependency,
    ) -> str:
        return render(records(user, dag_id, limit))

    @app.get("/run", response_class=HTMLResponse)
    def run_page(dag_id: str, run_id: str, user: Any = user_dependency) -> str:
        ui_auth.forbid_unless_readable(user, dag_id)
        settings = load_settings()
        rec = record.find(s3_client(), settings.bucket, settings.cost_prefix, dag_id, run_id)
        return render_run(rec, dag_id, run_id)

    @app.get("/api/runs")
    def runs(
        dag_id: str | None = None,
        limit: int = Query(DEFAULT_LIMIT, ge=1, le=500),
        user: Any = user_dependency,
    ) -> dict[str, Any]:
        return {"dags": records(user, dag_id, limit)}

    return app
