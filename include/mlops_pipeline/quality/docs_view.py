"""Data Docs in the Airflow UI: the plugin's FastAPI app (mounted at ``/mlops/data-docs``)
serving each dataset's one site from S3.

A validation job writes only its own page (about 60 KB) to
``s3://<bucket>/<quality prefix>/data_docs/<dataset>/validations/dt=<date>/<job>.html``;
this app adds what a GX site would copy into every run (about 4 MB):

- ``GET /``: the datasets; ``GET /<dataset>/``: the site's index, its runs newest first
  with their verdict;
- ``GET /<dataset>/validations/…``: a run's page, its links to GX's static files pointed at
  ``GET /static/…``, served from the installed great_expectations package. GX's pages
  load Bootstrap, jQuery and Vega from CDNs; those tags are dropped (offline they fail, and
  nothing is fetched from a third party), and a few lines of CSS keep the layout readable.

The pages are job output shown on Airflow's origin, so they are served with every script
removed and a Content-Security-Policy that allows none.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

URL_PREFIX = "/mlops/data-docs"
SITE_FOLDER = "data_docs"
MAX_RUNS = 200
CSP = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; script-src 'none'; base-uri 'none'; form-action 'none'; sandbox"
)
_CDN_TAG = re.compile(
    r"<link\b[^>]*\bhref=\"https?://[^\"]*\"[^>]*>|<script\b[^>]*>.*?</script>",
    re.IGNORECASE | re.DOTALL,
)
_STATIC = re.compile(r"(?:\.\./)+static/")
_INDEX = re.compile(r"href=\"(?:\.\./)+(?:index\.html|expectations/[^\"]*)\"")
_GX_LOGO = re.compile(r"src=\"https://great-expectations-web-assets[^\"]*\"")
# Bootstrap's grid and table basics, for pages whose Bootstrap is not loaded
FALLBACK_CSS = (
    "body{font-family:sans-serif;margin:0 1em}.container-fluid{padding:0 1em}"
    ".row{display:flex;flex-wrap:wrap}.col-md-2{flex:0 0 16%;max-width:16%}"
    ".col-md-10,.col-md-9{flex:1 1 0;min-width:0}.collapse:not(.show){display:none}"
    "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;"
    "padding:4px 8px;text-align:left;vertical-align:top}.card{border:1px solid #ddd;"
    "border-radius:4px;margin:1em 0;padding:.5em}.sticky{position:sticky;top:0}"
    "img{max-width:100%}.d-none{display:none}"
)


def gx_static_dir() -> Path:
    """GX's static folder, found without importing GX (seconds of import in the api-server)."""
    import importlib.util

    spec = importlib.util.find_spec("great_expectations")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("great_expectations is not installed: no Data Docs static files")
    return Path(spec.origin).parent / "render" / "view" / "static"


def static_file(relative: str) -> Path | None:
    """A file of GX's static folder; None for anything outside it or missing."""
    root = gx_static_dir().resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def site_prefix(quality_prefix: str, dataset: str) -> str:
    return f"{quality_prefix.strip('/')}/{SITE_FOLDER}/{dataset}/"


def valid_dataset(dataset: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9_.-]+", dataset)) and dataset not in (".", "..")


def valid_page(page: str) -> bool:
    parts = PurePosixPath(page).parts
    return (
        len(parts) >= 2
        and parts[0] == "validations"
        and page.endswith(".html")
        and all(p not in ("..", ".") and valid_dataset(p.replace("=", "")) for p in parts)
    )


def rewrite_page(body: str, dataset: str, prefix: str = URL_PREFIX) -> str:
    """A stored GX page as this site serves it: no CDN or scripts, static files from the
    installed package, "home" links to the dataset's index."""
    body = _CDN_TAG.sub("", body)
    body = _STATIC.sub(f"{prefix}/static/", body)
    body = _INDEX.sub(f'href="{prefix}/{dataset}/"', body)
    body = _GX_LOGO.sub(f'src="{prefix}/static/images/logo-long.png"', body)
    head = (
        f'<link rel="stylesheet" href="{prefix}/static/styles/data_docs_default_styles.css">'
        f"<style>{FALLBACK_CSS}</style>"
    )
    return body.replace("</head>", head + "</head>", 1) if "</head>" in body else head + body


@dataclass(frozen=True)
class RunPage:
    page: str  # relative to the site: validations/dt=<date>/<job>.html
    partition: str
    job: str
    written: str  # ISO time the page was stored
    size: int
    status: str | None = None  # the gate's verdict, when the run's result is readable


def list_runs(s3: Any, bucket: str, prefix: str) -> list[RunPage]:
    """The site's pages, newest first (at most MAX_RUNS)."""
    runs: list[RunPage] = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{prefix}validations/"
    ):
        for o in page.get("Contents", []):
            relative = o["Key"][len(prefix) :]
            parts = relative.split("/")
            if len(parts) != 3 or not relative.endswith(".html"):
                continue
            runs.append(
                RunPage(
                    page=relative,
                    partition=parts[1].removeprefix("dt="),
                    job=parts[2].removesuffix(".html"),
                    written=o["LastModified"].isoformat(timespec="seconds"),
                    size=int(o["Size"]),
                )
            )
    runs.sort(key=lambda r: (r.partition, r.written), reverse=True)
    return runs[:MAX_RUNS]


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;font-size:13px}"
        ".failed{color:#c0392b}.passed{color:#1e8449}.warning{color:#b9770e}"
        f"</style></head><body>{body}</body></html>"
    )


def render_datasets(datasets: list[str], prefix: str = URL_PREFIX) -> str:
    if not datasets:
        items = "<p>No Data Docs yet: a data-quality task writes its dataset's first page.</p>"
    else:
        items = "<ul>" + "".join(
            f"<li><a href='{prefix}/{html.escape(d)}/'>{html.escape(d)}</a></li>" for d in datasets
        )
        items += "</ul>"
    return _page("Data Docs", f"<h1>Data Docs</h1>{items}")


def render_index(dataset: str, runs: list[RunPage], prefix: str = URL_PREFIX) -> str:
    name = html.escape(dataset)
    rows = []
    for r in runs:
        status = html.escape(r.status or "-")
        rows.append(
            f"<tr><td>{html.escape(r.partition)}</td>"
            f"<td><a href='{prefix}/{name}/{html.escape(r.page)}'>{html.escape(r.job)}</a></td>"
            f"<td class='{status}'>{status}</td><td>{html.escape(r.written)}</td>"
            f"<td>{r.size:,}</td></tr>"
        )
    table = (
        "<table><tr><th>partition</th><th>validation job</th><th>verdict</th>"
        "<th>written</th><th>bytes</th></tr>" + "".join(rows) + "</table>"
        if rows
        else "<p>No validations of this dataset yet.</p>"
    )
    return _page(
        f"Data Docs: {dataset}",
        f"<p><a href='{prefix}/'>Data Docs</a></p><h1>Data Docs: {name}</h1>"
        f"<p>{len(runs)} validation run(s), newest partition first.</p>{table}",
    )


def run_status(s3: Any, bucket: str, quality_prefix: str, dataset: str, run: RunPage) -> str:
    """The verdict of a run from its result.json (the gate's reading of it), or ``unknown``."""
    from mlops_pipeline.quality import severity

    key = f"{quality_prefix.strip('/')}/runs/{dataset}/dt={run.partition}/{run.job}/output/result.json"
    try:
        result = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        return severity.evaluate(result).status
    except Exception:  # noqa: BLE001 - the index still lists the page
        return "unknown"


def create_app(s3_factory: Callable[[], Any] | None = None) -> Any:
    """The FastAPI app; ``s3_factory`` gives an S3 client (default: the settings' aws
    connection through the Amazon provider's hook)."""
    import dataclasses

    from fastapi import FastAPI, HTTPException
    from fastapi.responses import FileResponse, HTMLResponse

    from mlops_pipeline import ui_auth
    from mlops_pipeline.config import load_settings

    s3_client = ui_auth.s3_reader(s3_factory)

    # validation results show the data's values: the Airflow login, as for the UI
    app = FastAPI(title="Data Docs", dependencies=[ui_auth.login_required()])
    headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}

    @app.get("/", response_class=HTMLResponse)
    def datasets() -> HTMLResponse:
        settings = load_settings()
        folder = f"{settings.quality_prefix.strip('/')}/{SITE_FOLDER}/"
        found: list[str] = []
        for page in (
            s3_client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=settings.bucket, Prefix=folder, Delimiter="/")
        ):
            found += [p["Prefix"][len(folder) :].strip("/") for p in page.get("CommonPrefixes", [])]
        return HTMLResponse(render_datasets(sorted(found)), headers=headers)

    @app.get("/static/{path:path}")
    def static(path: str) -> FileResponse:
        file = static_file(path)
        if file is None:
            raise HTTPException(404, f"no static file {path!r} in great_expectations")
        return FileResponse(file, headers={"Cache-Control": "max-age=86400"})

    @app.get("/{dataset}/", response_class=HTMLResponse)
    def index(dataset: str) -> HTMLResponse:
        if not valid_dataset(dataset):
            raise HTTPException(404, f"no dataset {dataset!r}")
        settings = load_settings()
        s3 = s3_client()
        prefix = site_prefix(settings.quality_prefix, dataset)
        runs = [
            dataclasses.replace(
                r, status=run_status(s3, settings.bucket, settings.quality_prefix, dataset, r)
            )
            for r in list_runs(s3, settings.bucket, prefix)
        ]
        return HTMLResponse(render_index(dataset, runs), headers=headers)

    @app.get("/{dataset}/{page:path}", response_class=HTMLResponse)
    def run_page(dataset: str, page: str) -> HTMLResponse:
        if not (valid_dataset(dataset) and valid_page(page)):
            raise HTTPException(404, f"no Data Docs page {page!r} of {dataset!r}")
        settings = load_settings()
        s3 = s3_client()
        key = site_prefix(settings.quality_prefix, dataset) + page
        try:
            body = s3.get_object(Bucket=settings.bucket, Key=key)["Body"].read().decode()
        except s3.exceptions.NoSuchKey:
            raise HTTPException(
                404,
                f"no Data Docs page s3://{settings.bucket}/{key} (yet): the page is written "
                "when the validation job ends",
            ) from None
        return HTMLResponse(rewrite_page(body, dataset), headers=headers)

    return app
