"""Great Expectations inside the validation job: one batch, one suite run, Data Docs.

Part of the validation job's code; depends on GX, pandas and the standard library only.
GX is imported lazily so :func:`ensure_gx` can install it first in an image without it.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("validate")

DEFAULT_GX_REQUIREMENT = "great-expectations==1.24.1"
SEVERITIES = {"critical": "error", "warning": "warning", "info": "info"}
SITE = "quality"
# kwargs that say where an expectation looks, not what it requires
_DOMAIN_KWARGS = ("column", "column_A", "column_B", "column_list", "batch_id")
_RUNTIME_KWARGS = ("result_format", "catch_exceptions", "include_config")
SAMPLE = 5


class GXUnavailable(RuntimeError):
    """GX is not importable and could not be installed."""


def ensure_gx(requirement: str = DEFAULT_GX_REQUIREMENT) -> None:
    """Import GX; in an image without it (the stock SageMaker images), pip-install it once."""
    # no usage statistics from inside jobs, and no progress bars in their logs
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        importlib.import_module("great_expectations")
        return
    except ImportError:
        pass
    log.info("great_expectations is not installed in this image: pip install %s", requirement)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-input", requirement],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise GXUnavailable(
            f"great_expectations is not installed in the image and `pip install {requirement}` "
            f"failed ({' / '.join(tail)}); without internet access from the job, use an image "
            "with GX installed (MLOPS_QUALITY_IMAGE)"
        )
    importlib.invalidate_caches()
    importlib.import_module("great_expectations")


_PATCHED = False


def apply_workarounds() -> None:
    """Fixes for GX 1.24 behaviour found by the tests; each is behaviour-preserving.

    - ExpectColumnQuantileValuesToBeBetween returns numpy bools in ``success`` and
      ``success_details``; with numpy 2 the results store cannot serialise them (TypeError:
      Object of type bool is not JSON serializable), so the whole run fails.
    - The same expectation sets the ``quantiles`` of its column.quantile_values metric after
      the metric's cache id was computed, so two quantile expectations on one column share
      the first one's values (a check of q0.99 is judged on the suite's [q0.5, q0.99]).
      The metric is rebuilt with its quantiles, so its id includes them.
    - Mean, stddev and sum metrics scan every value in Python looking for Decimal objects
      (about 0.1 s per metric per million rows); only object columns can hold Decimals.
    - Each batch is fingerprinted by hashing the whole DataFrame (about 0.5 s per million
      rows), only to fill an informational batch marker.
    """
    global _PATCHED
    if _PATCHED:
        return
    import great_expectations.execution_engine.pandas_execution_engine as engine
    import great_expectations.util as gx_util
    from great_expectations.expectations.core.expect_column_quantile_values_to_be_between import (
        ExpectColumnQuantileValuesToBeBetween,
    )

    validate = ExpectColumnQuantileValuesToBeBetween._validate

    def _validate_with_plain_bools(self, *args, **kwargs):
        out = validate(self, *args, **kwargs)
        out["success"] = bool(out["success"])
        details = (out.get("result") or {}).get("details") or {}
        if "success_details" in details:
            details["success_details"] = [bool(x) for x in details["success_details"]]
        return out

    ExpectColumnQuantileValuesToBeBetween._validate = _validate_with_plain_bools  # type: ignore[method-assign]

    dependencies = ExpectColumnQuantileValuesToBeBetween.get_validation_dependencies

    def _dependencies_keyed_by_quantiles(self, *args, **kwargs):
        from great_expectations.validator.metric_configuration import MetricConfiguration

        out = dependencies(self, *args, **kwargs)
        metric = out.get_metric_configuration("column.quantile_values")
        if metric is not None:
            out.set_metric_configuration(
                "column.quantile_values",
                MetricConfiguration(
                    metric.metric_name,
                    dict(metric.metric_domain_kwargs),
                    dict(metric.metric_value_kwargs),
                ),
            )
        return out

    ExpectColumnQuantileValuesToBeBetween.get_validation_dependencies = (  # type: ignore[method-assign]
        _dependencies_keyed_by_quantiles
    )

    contains_decimal = gx_util.does_ndarray_contain_decimal_dtype

    def _object_columns_only(data):
        return data.dtype == object and contains_decimal(data)

    gx_util.does_ndarray_contain_decimal_dtype = _object_columns_only  # type: ignore[assignment]
    engine.HASH_THRESHOLD = 0
    _PATCHED = True


def run_suite(
    df: pd.DataFrame,
    suite: dict[str, Any],
    *,
    extra_expectations: list[dict[str, Any]] | None = None,
    parameters: dict[str, Any] | None = None,
    docs_page: str | None = None,
    run_name: str | None = None,
    result_format: str = "BASIC",
) -> dict[str, Any]:
    """Validate ``df`` against ``suite`` (GX suite JSON) plus ``extra_expectations``.

    Returns ``{"success", "expectations": [...], "statistics", "docs_page"}`` in the shape of
    the validation result contract (see validate.py). With ``docs_page`` (a file path) the
    run's Data Docs validation page is written there, and only that page: the site's
    index and static files (4 MB of fonts and images) come from the site that serves the
    pages (mlops_pipeline.quality.docs_view), not from every run.
    """
    import tempfile

    if not docs_page:
        return _run_suite(df, suite, extra_expectations, parameters, None, run_name, result_format)
    with tempfile.TemporaryDirectory(prefix="data-docs-") as site:
        outcome = _run_suite(
            df, suite, extra_expectations, parameters, site, run_name, result_format
        )
        if outcome["docs_page"]:
            os.makedirs(os.path.dirname(os.path.abspath(docs_page)), exist_ok=True)
            shutil.copyfile(os.path.join(site, outcome["docs_page"]), docs_page)
            outcome["docs_page"] = docs_page
    return outcome


def _run_suite(
    df: pd.DataFrame,
    suite: dict[str, Any],
    extra_expectations: list[dict[str, Any]] | None,
    parameters: dict[str, Any] | None,
    docs_dir: str | None,
    run_name: str | None,
    result_format: str,
) -> dict[str, Any]:
    from great_expectations.core.run_identifier import RunIdentifier

    import great_expectations as gx

    apply_workarounds()
    context = gx.get_context(mode="ephemeral")
    _drop_default_docs_site(context)
    try:
        context.variables.progress_bars = {"globally": False}  # type: ignore[assignment]
    except Exception:  # noqa: BLE001 - cosmetic only
        pass
    if docs_dir:
        context.add_data_docs_site(
            site_name=SITE,
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": docs_dir,
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    name = suite.get("name") or "suite"
    expectations = [_config(e) for e in suite.get("expectations", [])]
    expectations += [_config(e) for e in extra_expectations or []]
    gx_suite = context.suites.add(
        gx.ExpectationSuite(name=name, expectations=expectations, meta=suite.get("meta") or {})
    )
    batch = (
        context.data_sources.add_pandas("partition")
        .add_dataframe_asset(name)
        .add_batch_definition_whole_dataframe("whole partition")
    )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=batch, suite=gx_suite)
    )
    result = definition.run(
        batch_parameters={"dataframe": df},
        expectation_parameters=parameters or {},
        result_format=result_format,  # type: ignore[arg-type]
        run_id=RunIdentifier(run_name=run_name) if run_name else None,
    )
    docs_page = None
    if docs_dir:
        context.build_data_docs(site_names=[SITE])
        docs_page = _validation_page(docs_dir)
    return {
        "success": bool(result.success),
        "expectations": [_summarise(r, parameters or {}) for r in result.results],
        "statistics": _json_safe(dict(result.statistics)),
        "docs_page": docs_page,
    }


def _drop_default_docs_site(context: Any) -> None:
    """An ephemeral context makes an empty temp dir for a docs site nobody builds: remove it."""
    sites = dict(context.variables.data_docs_sites or {})
    default = sites.pop("local_site", None)
    if default is None:
        return
    context.variables.data_docs_sites = sites
    base = (default.get("store_backend") or {}).get("base_directory")
    if base and os.path.isdir(base) and not os.listdir(base):
        os.rmdir(base)


def _config(expectation: dict[str, Any]) -> dict[str, Any]:
    """A suite file's expectation as ExpectationSuite takes it (ids are the store's business)."""
    return {k: v for k, v in expectation.items() if k not in ("id", "rendered_content")}


def _validation_page(docs_dir: str) -> str | None:
    pages = []
    for directory, _, names in os.walk(os.path.join(docs_dir, "validations")):
        pages += [os.path.join(directory, n) for n in names if n.endswith(".html")]
    return os.path.relpath(max(pages, key=os.path.getmtime), docs_dir) if pages else None


def _summarise(r: Any, parameters: dict[str, Any]) -> dict[str, Any]:
    config = r.expectation_config
    kwargs = dict(config.kwargs)
    meta = dict(config.meta or {})
    severity = getattr(config, "severity", None)
    severity = getattr(severity, "value", severity) or "critical"
    # a table expectation's column_list is what it requires, a multicolumn one's its domain
    table = str(config.type).startswith("expect_table_")
    column = kwargs.get("column")
    if column is None and "column_A" in kwargs:
        column = f"{kwargs['column_A']},{kwargs['column_B']}"
    elif column is None and "column_list" in kwargs and not table:
        column = ",".join(kwargs["column_list"])
    bounds = {
        k: _resolve(v, parameters)
        for k, v in kwargs.items()
        if (k not in _DOMAIN_KWARGS or (table and k == "column_list")) and k not in _RUNTIME_KWARGS
    }
    result = dict(r.result or {})
    observed: dict[str, Any] = {}
    if "observed_value" in result:
        observed["value"] = result["observed_value"]
    for key in ("element_count", "unexpected_count", "unexpected_percent", "missing_count"):
        if key in result:
            observed[key] = result[key]
    if result.get("partial_unexpected_list"):
        distinct: list[Any] = []
        for value in result["partial_unexpected_list"]:
            if value not in distinct:
                distinct.append(value)
        observed["unexpected_sample"] = distinct[:SAMPLE]
    exception = None
    info = r.exception_info or {}
    if info.get("raised_exception"):
        exception = info.get("exception_message")
    else:
        # metric failures come back keyed by metric id
        for value in info.values() if isinstance(info, dict) else ():
            if isinstance(value, dict) and value.get("raised_exception"):
                exception = value.get("exception_message")
                break
    return _json_safe(
        {
            "id": config.id,
            "type": config.type,
            "column": column,
            "severity": SEVERITIES.get(str(severity), "error"),
            "success": bool(r.success),
            "observed": observed,
            "bounds": bounds,
            "description": getattr(config, "description", None) or meta.get("description"),
            "anomaly": meta.get("anomaly"),
            "exception": exception,
        }
    )


def _resolve(value: Any, parameters: dict[str, Any]) -> Any:
    if isinstance(value, dict) and set(value) == {"$PARAMETER"}:
        return parameters.get(value["$PARAMETER"])
    return value


def _json_safe(value: Any) -> Any:
    """Plain JSON types: numpy scalars, sets, timestamps and NaN/inf (as None) included."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_json_safe(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    item = getattr(value, "item", None)
    if callable(item):  # numpy scalar
        try:
            return _json_safe(item())
        except (TypeError, ValueError):
            pass
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "to_json_dict"):
        return _json_safe(value.to_json_dict())
    return str(value)
