"""Run every benchmark against a fresh local_aws and print one table."""

from __future__ import annotations

import argparse
import sys
import tempfile

from benchmarks import (
    bench_batch_inference,
    bench_cost,
    bench_deploy,
    bench_endpoints,
    bench_jobs,
    bench_journal,
    bench_make_up,
    bench_model_build,
    bench_parity,
    bench_quality,
    bench_s3_memory,
    bench_scheduler,
    bench_transform,
    bench_tuning,
)
from benchmarks.harness import Row, render

SUITES = {
    "jobs": bench_jobs.run,
    "endpoints": bench_endpoints.run,
    "transform": bench_transform.run,
    "tuning": bench_tuning.run,
    "quality": bench_quality.run,
    "model_build": bench_model_build.run,
    "parity": bench_parity.run,
    "model_deploy": bench_deploy.run,
    "cost": bench_cost.run,
    "batch_inference": bench_batch_inference.run,
    "journal": bench_journal.run,
    "scheduler": bench_scheduler.run,
    "make_up": bench_make_up.run,
    "s3_memory": bench_s3_memory.run,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--only", choices=sorted(SUITES), action="append")
    args = parser.parse_args(argv)

    from local_aws.server import LocalAWS

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, LocalAWS(tmp, port=0) as aws:
        for name, suite in SUITES.items():
            if args.only and name not in args.only:
                continue
            print(f"running {name} ...", file=sys.stderr, flush=True)
            rows.extend(suite(aws))
    print(render(rows))
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
