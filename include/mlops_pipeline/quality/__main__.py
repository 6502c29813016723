"""CLI: ``python -m mlops_pipeline.quality suggest --dataset D --input URI --output FILE``.

``--input`` is a partition prefix (``s3://bucket/raw/transactions/dt=2026-01-05/``, read with
boto3, which honours AWS_ENDPOINT_URL e.g. for local_aws) or a local directory.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mlops_pipeline.quality")
    commands = parser.add_subparsers(dest="command", required=True)
    suggest = commands.add_parser(
        "suggest", help="profile a partition and write a draft GX suite for review"
    )
    suggest.add_argument("--dataset", required=True, help="dataset (and suite) name")
    suggest.add_argument("--input", required=True, help="partition: s3:// prefix or directory")
    suggest.add_argument("--output", required=True, help="suite JSON file to write")
    suggest.add_argument("--endpoint-url", default=None, help="S3 endpoint (default: boto3's)")
    suggest.add_argument("--force", action="store_true", help="overwrite an existing file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if os.path.exists(args.output) and not args.force:
        print(
            f"error: {args.output} exists; a draft never replaces a reviewed suite "
            "(pass --force, or write it elsewhere and compare)",
            file=sys.stderr,
        )
        return 2
    try:
        suite = suggest_from(args.input, args.dataset, endpoint_url=args.endpoint_url)
    except SuggestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    from mlops_pipeline.quality.suites import write_suite

    write_suite(args.output, suite)
    print(
        f"wrote {args.output}: {len(suite['expectations'])} suggested expectations for "
        f"{args.dataset} from {suite['meta']['suggested_rows']:,} rows; review it before use"
    )
    return 0


class SuggestError(RuntimeError):
    """The partition cannot be profiled; the message names it and the problem."""


def suggest_from(source: str, dataset: str, *, endpoint_url: str | None = None) -> dict:
    import pandas as pd

    from mlops_pipeline.containers import dq_data
    from mlops_pipeline.quality import suggest

    with tempfile.TemporaryDirectory(prefix="suggest-") as tmp:
        root = _download(source, tmp, endpoint_url) if source.startswith("s3://") else source
        files = dq_data.data_files(root)
        if not files:
            raise SuggestError(f"dataset {dataset}: no data files under {source}")
        try:
            raw = pd.concat(
                [pd.read_csv(f, dtype=str, keep_default_na=False, na_values=[""]) for f in files],
                ignore_index=True,
            )
        except Exception as exc:  # noqa: BLE001 - any reader error is the data's
            raise SuggestError(
                f"dataset {dataset}: {source} cannot be read as CSV: {exc}"
            ) from None
        columns = suggest.infer_columns(raw)
        df, problems = dq_data.read_partition(files, columns, root=root)
        if df is None:
            detail = "; ".join(p.message for p in problems)
            raise SuggestError(f"dataset {dataset}, partition {source}: {detail}")
        return suggest.suggest(df, columns, dataset=dataset, source=source)


def _download(uri: str, target: str, endpoint_url: str | None) -> str:
    import boto3

    from mlops_pipeline.quality.request import split_s3_uri

    bucket, prefix = split_s3_uri(uri if uri.endswith("/") else uri + "/")
    s3 = boto3.client("s3", endpoint_url=endpoint_url) if endpoint_url else boto3.client("s3")
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            relative = item["Key"][len(prefix) :]
            if not relative or relative.endswith("/"):
                continue
            path = os.path.join(target, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            s3.download_file(bucket, item["Key"], path)
    return target


if __name__ == "__main__":
    sys.exit(main())
