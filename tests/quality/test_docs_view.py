"""Data Docs as the plugin serves them: a stored GX page without CDN tags or scripts, its
static files from the installed GX package, paths that stay inside the site.
(tests/pipeline/test_task_pages.py serves real pages through a real api-server.)"""

from __future__ import annotations

import datetime as dt

from mlops_pipeline.quality import docs_view

STORED = """<html><head>
<link rel="shortcut icon" href="../../../static/images/favicon.ico"/>
<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>
<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>
</head><body>
<a href="../../../../index.html">Home</a>
<a href="../../../../expectations/transactions.html">suite</a>
<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=1">
<script>$(function(){ console.log("inline"); });</script>
<td>amount</td></body></html>"""


def test_a_stored_page_is_served_without_cdn_or_scripts():
    page = docs_view.rewrite_page(STORED, "transactions")
    assert "https://" not in page and "<script" not in page
    assert 'href="/mlops/data-docs/static/images/favicon.ico"' in page
    assert 'href="/mlops/data-docs/static/styles/data_docs_default_styles.css"' in page
    assert page.count('href="/mlops/data-docs/transactions/"') == 2  # home and suite links
    assert 'src="/mlops/data-docs/static/images/logo-long.png"' in page
    assert "<td>amount</td>" in page


def test_static_files_come_from_the_installed_package_and_nowhere_else():
    for name in (
        "styles/data_docs_default_styles.css",
        "images/logo-long.png",
        "images/favicon.ico",
    ):
        assert docs_view.static_file(name) is not None, name
    assert docs_view.static_file("../__init__.py") is None
    assert docs_view.static_file("/etc/passwd") is None
    assert docs_view.static_file("styles/missing.css") is None


def test_only_pages_of_the_site_are_served():
    assert docs_view.valid_page("validations/dt=2026-01-05/dq-transactions-20260105-ab-t1.html")
    for bad in (
        "validations/../../runs/x/output/result.json",
        "validations/dt=2026-01-05/x.json",
        "../secrets.html",
        "validations/dt=2026-01-05/<x>.html",
        "index.html",
    ):
        assert not docs_view.valid_page(bad), bad
    assert docs_view.valid_dataset("training_features")
    assert not docs_view.valid_dataset("..") and not docs_view.valid_dataset("a/b")


def test_the_index_lists_runs_newest_first_escaped():
    when = dt.datetime(2026, 1, 6, 3, tzinfo=dt.UTC).isoformat()
    runs = [
        docs_view.RunPage(
            "validations/dt=2026-01-06/dq-b.html", "2026-01-06", "dq-b", when, 61000, "failed"
        ),
        docs_view.RunPage(
            "validations/dt=2026-01-05/dq-<a>.html", "2026-01-05", "dq-<a>", when, 60000, "passed"
        ),
    ]
    page = docs_view.render_index("transactions", runs)
    assert page.index("2026-01-06") < page.index("2026-01-05")
    assert "<td class='failed'>failed</td>" in page and "61,000" in page
    assert "dq-&lt;a&gt;" in page and "dq-<a>" not in page
    assert "No validations" in docs_view.render_index("x", [])
