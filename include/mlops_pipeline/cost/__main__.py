"""``python -m mlops_pipeline.cost``: the cost records of a DAG's runs, and what a backfill
will cost.

    python -m mlops_pipeline.cost report --dag-id model_build [--since 2026-03-01]
    python -m mlops_pipeline.cost estimate --dag-id batch_inference \\
        --from-date 2026-01-01 --to-date 2026-01-31

Records are read from ``s3://<MLOPS_BUCKET>/<MLOPS_COST_PREFIX>/<dag_id>/`` through the
settings' AWS connection (``aws_default``: the same one the DAGs use).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from typing import Any


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _s3(settings: Any) -> Any:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=settings.aws_conn_id).get_conn()


def main(argv: Sequence[str] | None = None, s3: Any = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_pipeline.cost", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="the cost of each run of a DAG")
    report.add_argument("--dag-id", required=True)
    report.add_argument("--since", type=_date, help="runs started on or after (YYYY-MM-DD)")
    report.add_argument("--json", action="store_true", help="the records, as JSON lines")
    estimate = commands.add_parser("estimate", help="what a backfill will cost")
    estimate.add_argument("--dag-id", required=True)
    estimate.add_argument("--from-date", type=_date, required=True)
    estimate.add_argument("--to-date", type=_date, required=True)
    estimate.add_argument(
        "--runs-per-day", type=int, default=1, help="runs per logical day (1 for @daily)"
    )
    estimate.add_argument(
        "--history", type=int, default=60, help="how many recent runs to rest on (default 60)"
    )
    refresh = commands.add_parser(
        "refresh-prices", help="a new price table from the AWS Price List API (real AWS)"
    )
    refresh.add_argument(
        "--regions",
        default="",
        help="comma-separated (default: the regions of the current table)",
    )
    refresh.add_argument(
        "--output", default="", help="where to write it (default: the bundled prices.json)"
    )
    args = parser.parse_args(argv)
    if args.command == "refresh-prices":
        return refresh_prices(args.regions, args.output)

    import json

    from mlops_pipeline.config import load_settings
    from mlops_pipeline.cost import estimate as estimating
    from mlops_pipeline.cost import record

    settings = load_settings()
    s3 = s3 or _s3(settings)
    if args.command == "report":
        since = dt.datetime.combine(args.since, dt.time(), tzinfo=dt.UTC) if args.since else None
        records = record.read_all(s3, settings.bucket, settings.cost_prefix, args.dag_id, since)
        if args.json:
            for r in records:
                print(json.dumps(r))
        else:
            print(record.table(records))
        return 0
    try:
        runs = estimating.runs_between(args.from_date, args.to_date, args.runs_per_day)
    except ValueError as exc:
        parser.error(str(exc))
    history = record.read_all(
        s3, settings.bucket, settings.cost_prefix, args.dag_id, last=args.history
    )
    found = estimating.estimate(history, runs)
    if found is None:
        print(
            f"no earlier successful run of {args.dag_id} with a known cost under "
            f"s3://{settings.bucket}/{settings.cost_prefix}/{args.dag_id}/: run it once "
            "(or a short backfill) first",
            file=sys.stderr,
        )
        return 2
    print(found.text(args.dag_id, args.from_date, args.to_date))
    prices = {(r["prices"]["as_of"], r["prices"]["source"]) for r in history}
    for as_of, source in sorted(prices):
        print(f"prices as of {as_of}; source: {source}")
    return 0


def refresh_prices(regions_arg: str, output: str, pricing: Any = None) -> int:
    import json
    from importlib import resources

    from mlops_pipeline.config import load_settings
    from mlops_pipeline.cost import prices, refresh

    current = prices.load(load_settings().price_table)
    regions = [r.strip() for r in regions_arg.split(",") if r.strip()] or sorted(current.hourly)
    if pricing is None:
        import boto3

        # the Price List API is served from us-east-1 (and a few others), for every region
        pricing = boto3.client("pricing", region_name="us-east-1")
    table = refresh.build_table(refresh.fetch(pricing, regions), current, dt.date.today())
    missing = [r for r in regions if r not in table["hourly"]]
    if missing:
        print(
            f"the Price List API gave no SageMaker instance rates for {', '.join(missing)}: "
            "nothing written (check the region names and the pricing:GetProducts permission)",
            file=sys.stderr,
        )
        return 1
    prices.parse(table, origin="refreshed table")  # what is written can be read back
    target = output or str(resources.files("mlops_pipeline.cost").joinpath("prices.json"))
    with open(target, "w") as fh:
        json.dump(table, fh, indent=1)
        fh.write("\n")
    counts = {r: sum(len(v) for v in k.values()) for r, k in table["hourly"].items()}
    print(f"wrote {target}: prices as of {table['as_of']}, rates per region {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
