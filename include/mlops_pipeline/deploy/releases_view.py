"""The Releases view: every canary release's steps, weights, metrics and verdict, read
from the audit records in S3. Served by the project's Airflow plugin (plugins/) as a
FastAPI app; ``/api`` answers the same data as JSON.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from mlops_pipeline.config import Settings

DEPLOY_DAG_ID = "model_deploy"  # the DAG whose runs the releases are

CHART_WIDTH, CHART_HEIGHT = 260, 90


def load_releases(s3: Any, settings: Settings) -> list[dict[str, Any]]:
    """Every release record under the settings' prefix, newest first."""
    prefix = f"{settings.deploy_prefix}/releases/"
    records = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=settings.bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if item["Key"].endswith(".json"):
                body = s3.get_object(Bucket=settings.bucket, Key=item["Key"])["Body"].read()
                record = json.loads(body)
                record["audit_uri"] = f"s3://{settings.bucket}/{item['Key']}"
                records.append(record)
    return sorted(records, key=lambda r: r.get("started_at") or 0, reverse=True)


def chart(release: dict[str, Any]) -> str:
    """An SVG of the candidate's weight (bars) and 5XX rate (dots, red when the step
    failed) per step."""
    steps = release.get("steps", [])
    if not steps:
        return ""
    width = CHART_WIDTH / len(steps)
    candidate = release["candidate"]["variant"]
    parts = [
        f'<svg width="{CHART_WIDTH}" height="{CHART_HEIGHT + 14}" role="img" '
        'aria-label="weight and 5XX rate per step">'
    ]
    for i, step in enumerate(steps):
        x = i * width
        height = CHART_HEIGHT * step["weight"] / 100
        parts.append(
            f'<rect x="{x + 4:.1f}" y="{CHART_HEIGHT - height:.1f}" width="{width - 8:.1f}" '
            f'height="{height:.1f}" fill="#9ecae1"><title>step {step["step"]}: '
            f"{step['weight']}%</title></rect>"
        )
        rate = ((step.get("metrics") or {}).get(candidate) or {}).get("error_rate")
        if rate is not None:
            passed = (step.get("verdict") or {}).get("passed")
            parts.append(
                f'<circle cx="{x + width / 2:.1f}" cy="{CHART_HEIGHT * (1 - min(rate, 1)):.1f}" '
                f'r="4" fill="{"#31a354" if passed else "#de2d26"}"><title>5XX rate '
                f"{rate:.3f}</title></circle>"
            )
        parts.append(
            f'<text x="{x + width / 2:.1f}" y="{CHART_HEIGHT + 12}" font-size="10" '
            f'text-anchor="middle">{step["weight"]}%</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


# what the steps column says of a release that took no canary step (an empty cell read as
# a release that never started)
NO_STEPS = {
    "creating": "first deployment: creating the endpoint with the candidate alone",
    "created": "first deployment: the endpoint was created serving the candidate alone (no canary)",
    "unchanged": "the endpoint already served this package: nothing changed",
}


def _number(value: float | None) -> str:
    return "no data" if value is None else f"{value:.4g}"


def render(releases: Sequence[dict[str, Any]]) -> str:
    rows = []
    for r in releases:
        steps = []
        for s in r.get("steps", []):
            verdict = s.get("verdict") or {}
            word = "not judged" if not verdict else ("passed" if verdict["passed"] else "FAILED")
            checks = "; ".join(
                f"{c['metric']} = {_number(c['value'])} (bound {c['bound']:.4g})"
                for c in verdict.get("checks", [])
            )
            steps.append(
                f"<li>step {s['step']}: {s['weight']}% — {word}"
                + (f"<br><small>{html.escape(checks)}</small>" if checks else "")
                + "</li>"
            )
        baseline = r.get("baseline") or {}
        rows.append(
            "<tr>"
            f"<td>{html.escape(r['endpoint'])}<br><small>{html.escape(r['release_id'])}</small></td>"
            f"<td><b>{html.escape(r['status'])}</b>"
            + (f"<br><small>{html.escape(r['reason'])}</small>" if r.get("reason") else "")
            + "</td>"
            f"<td>{html.escape(r['candidate']['variant'])}<br><small>"
            f"{html.escape(r['candidate'].get('package_arn') or '')}</small></td>"
            f"<td>{html.escape(baseline.get('variant', '-'))}<br><small>"
            f"{html.escape(baseline.get('package_arn') or '')}</small></td>"
            + (
                f"<td><ul>{''.join(steps)}</ul></td>"
                if steps
                else f"<td>{html.escape(NO_STEPS.get(r['status'], 'no step yet'))}</td>"
            )
            + f"<td>{chart(r)}</td>"
            "</tr>"
        )
    body = (
        "".join(rows)
        if rows
        else '<tr><td colspan="6">No releases yet: run model_deploy.</td></tr>'
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Releases</title>"
        "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:6px;vertical-align:top}small{color:#555}</style>"
        "</head><body><h2>Canary releases</h2><table><tr><th>endpoint / release</th>"
        "<th>status</th><th>candidate</th><th>baseline</th><th>steps</th>"
        f"<th>weight (bars) and 5XX rate (dots)</th></tr>{body}</table></body></html>"
    )


def create_app(s3_factory: Any = None) -> Any:
    """The FastAPI app; ``s3_factory`` builds the S3 client (default: aws_default's)."""
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse

    from mlops_pipeline import ui_auth
    from mlops_pipeline.config import load_settings

    s3 = ui_auth.s3_reader(s3_factory)

    # releases are model_deploy's runs: who may read those may read them
    app = FastAPI(title="Canary releases", dependencies=[ui_auth.login_required()])
    user_dependency = ui_auth.current_user()

    @app.get("/", response_class=HTMLResponse)
    def page(user: Any = user_dependency) -> str:
        ui_auth.forbid_unless_readable(user, DEPLOY_DAG_ID)
        return render(load_releases(s3(), load_settings()))

    @app.get("/api")
    def api(user: Any = user_dependency) -> list[dict[str, Any]]:
        ui_auth.forbid_unless_readable(user, DEPLOY_DAG_ID)
        return load_releases(s3(), load_settings())

    return app
