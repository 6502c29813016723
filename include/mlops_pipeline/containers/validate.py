"""Data-quality validation job: read one partition, profile it, run its GX suite, write the
result, the metrics and Data Docs.

Runs as a SageMaker Processing job (``python3 validate.py --data-dir ... --config-dir ...
--output-dir ...``), with dq_data.py and dq_gx.py beside it. Paths come as arguments, so
the same script runs under /opt/ml on SageMaker and in local_aws's sandbox.

Bad data never fails the job: the job succeeds and its result says what is wrong, so the
gate (not a retry) decides. The job fails only when it cannot do its work at all (GX
missing and not installable, a malformed config, a bug), with the reason in its log.

The result (``<output-dir>/result.json``) is the contract with the gate::

    {"contract": 1, "dataset", "partition", "suite", "input_uri",
     "status": "validated" | "invalid_input",
     "problems": [{"kind", "message", "file"?, "column"?}],       # invalid_input only
     "row_count", "gx_success",
     "expectations": [{"id", "type", "column", "severity": "error" | "warning" | "info",
                       "success", "observed": {...}, "bounds": {...}, "description",
                       "anomaly": {...} | null, "exception": str | null}],
     "metrics": {...profile...}, "anomaly_notes": [str],
     "data_docs_uri", "data_docs_index_uri", "metrics_uri", "timings": {...}}
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Any

if __package__:
    from . import dq_data, dq_gx
else:  # run as a script from the job's code directory
    import dq_data  # type: ignore[no-redef]
    import dq_gx  # type: ignore[no-redef]

CONTRACT = 1
log = logging.getLogger("validate")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="the partition's files")
    parser.add_argument("--config-dir", required=True, help="holds suite.json and params.json")
    parser.add_argument("--output-dir", required=True, help="result.json, metrics.json, docs")
    parser.add_argument("--gx-requirement", default=dq_gx.DEFAULT_GX_REQUIREMENT)
    parser.add_argument("--docs-dir", help="where the Data Docs page goes (default: output)")
    parser.add_argument("--no-docs", action="store_true", help="skip Data Docs (benchmarks)")
    return parser.parse_args(argv)


def validate(
    data_dir: str,
    suite: dict[str, Any],
    params: dict[str, Any],
    output_dir: str,
    *,
    docs: bool = True,
    docs_dir: str | None = None,
) -> dict[str, Any]:
    """Validate the partition in ``data_dir``; write and return the result document.

    The Data Docs page goes to ``docs_dir`` (default ``<output_dir>/data_docs``) as
    ``params["docs_name"]``; ``params["docs_uri"]``/``["docs_site_uri"]`` say where it and
    its dataset's site are in S3 (the job's docs output).
    """
    os.makedirs(output_dir, exist_ok=True)
    meta = suite.get("meta") or {}
    columns = meta.get("columns")
    if not isinstance(columns, dict) or not columns:
        raise ValueError(
            f"suite {suite.get('name')!r} has no meta.columns (column -> type): the job needs "
            "the schema to read the partition"
        )
    output_uri = (params.get("output_uri") or "").rstrip("/")
    result: dict[str, Any] = {
        "contract": CONTRACT,
        "dataset": params.get("dataset") or meta.get("dataset"),
        "partition": params.get("partition"),
        "suite": suite.get("name"),
        "input_uri": params.get("input_uri"),
        "status": "validated",
        "problems": [],
        "row_count": None,
        "gx_success": None,
        "expectations": [],
        "metrics": None,
        "anomaly_notes": list(params.get("anomaly_notes") or []),
        "data_docs_uri": None,
        "data_docs_index_uri": None,
        "metrics_uri": f"{output_uri}/metrics.json" if output_uri else None,
        "timings": {},
    }
    started = time.perf_counter()
    files = dq_data.data_files(data_dir)
    df, problems = dq_data.read_partition(
        files, columns, root=data_dir, header=bool(meta.get("header", True))
    )
    result["timings"]["read_s"] = round(time.perf_counter() - started, 3)
    if df is None:
        result["status"] = "invalid_input"
        result["problems"] = [p.to_dict() for p in problems]
        return _write(output_dir, result)
    result["row_count"] = len(df)

    started = time.perf_counter()
    metrics = dq_data.profile(df, columns)
    result["metrics"] = metrics
    result["timings"]["profile_s"] = round(time.perf_counter() - started, 3)
    with open(os.path.join(output_dir, "metrics.json"), "w") as fh:
        json.dump(metrics, fh, indent=1)

    started = time.perf_counter()
    docs_name = params.get("docs_name") or "validation.html"
    page = os.path.join(docs_dir or os.path.join(output_dir, "data_docs"), docs_name)
    outcome = dq_gx.run_suite(
        df,
        suite,
        extra_expectations=params.get("expectations") or [],
        parameters=params.get("parameters") or {},
        docs_page=page if docs else None,
        run_name=f"{result['dataset']}-{result['partition']}",
        result_format=params.get("result_format", "BASIC"),
    )
    result["timings"]["validate_s"] = round(time.perf_counter() - started, 3)
    result["gx_success"] = outcome["success"]
    result["expectations"] = outcome["expectations"]
    result["statistics"] = outcome["statistics"]
    if outcome["docs_page"] and params.get("docs_uri"):
        result["data_docs_uri"] = params["docs_uri"]
        result["data_docs_index_uri"] = params.get("docs_site_uri")
    elif outcome["docs_page"] and output_uri and not docs_dir:
        result["data_docs_uri"] = f"{output_uri}/data_docs/{docs_name}"
    return _write(output_dir, result)


def _write(output_dir: str, result: dict[str, Any]) -> dict[str, Any]:
    with open(os.path.join(output_dir, "result.json"), "w") as fh:
        json.dump(result, fh, indent=1)
    return result


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # GX's own INFO lines (registries, temp dirs) would bury the job's in the task log
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    args = parse_args(argv)
    try:
        dq_gx.ensure_gx(args.gx_requirement)
        with open(os.path.join(args.config_dir, "suite.json")) as fh:
            suite = json.load(fh)
        with open(os.path.join(args.config_dir, "params.json")) as fh:
            params = json.load(fh)
        result = validate(
            args.data_dir,
            suite,
            params,
            args.output_dir,
            docs=not args.no_docs,
            docs_dir=args.docs_dir,
        )
    except Exception as exc:
        # SageMaker shows /opt/ml/output/message as the job's ExitMessage
        base = os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")
        message = f"validation could not run: {type(exc).__name__}: {exc}"
        try:
            os.makedirs(os.path.join(base, "output"), exist_ok=True)
            with open(os.path.join(base, "output", "message"), "w") as fh:
                fh.write(message[:1000])
        except OSError:
            pass
        log.exception(message)
        return 1
    failed = [e for e in result["expectations"] if not e["success"]]
    log.info(
        "dataset %s partition %s: %s, %s rows, %d expectation(s), %d unmet, problems: %s",
        result["dataset"],
        result["partition"],
        result["status"],
        result["row_count"],
        len(result["expectations"]),
        len(failed),
        [p["message"] for p in result["problems"]] or "none",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
