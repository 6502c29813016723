"""batch_inference's transform step: raw card transactions scored by the packaged model with
JoinSource=Input and filters (exactly the DAG's request), against the same work in one
process (read the raw CSV, engineer preprocess's features, predict, join the ids, write).

Not yet here (issue 9): the whole DAG on one 1M-row partition, the peak memory of every
process at 1x and 10x, and Airflow's share of the run's wall time.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.harness import Row

ROWS = 1_000_000
DAY = dt.date(2026, 3, 10)


def in_process(package: Any, path: Path, out: Path) -> float:
    """The ceiling: what the transform does, in one process with nothing in between."""
    import numpy as np
    import pandas as pd
    import xgboost as xgb

    from mlops_pipeline.containers import preprocess

    started = time.perf_counter()
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    frame = raw.copy()
    frame["event_time"] = preprocess.parse_times(frame["event_time"])
    for column in preprocess.NUMERIC_RAW:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    features = preprocess.engineer(frame, package.vocabulary)
    scores = package.booster.predict(
        xgb.DMatrix(features.to_numpy(np.float32), feature_names=list(features.columns))
    )
    pd.DataFrame({"transaction_id": raw["transaction_id"], "score": scores}).to_csv(
        out, index=False, float_format="%.8g"
    )
    return time.perf_counter() - started


def run(aws: Any, rows: int = ROWS) -> list[Row]:
    from benchmarks.bench_transform import _data_phase
    from mlops_pipeline import batch, datagen, jobs, registry
    from mlops_pipeline.config import load_settings
    from tests.batchkit import register_package

    s3, sm = aws.client("s3"), aws.client("sagemaker")
    bucket, group = f"bench-bi-{uuid.uuid4().hex[:8]}", f"bench-{uuid.uuid4().hex[:6]}"
    s3.create_bucket(Bucket=bucket)
    package = register_package(s3, sm, bucket, group)
    datagen.write_partition(s3, bucket, DAY, rows, seed=11)
    with tempfile.TemporaryDirectory(prefix="bench-bi-") as name:
        path = Path(name) / "part-00000.csv"
        s3.download_file(bucket, datagen.partition_key(DAY), str(path))
        baseline_s = min(in_process(package, path, Path(name) / "out.csv") for _ in range(2))

    settings = load_settings({"MLOPS_BUCKET": bucket, "MLOPS_MODEL_PACKAGE_GROUP": group})
    described = sm.describe_model_package(ModelPackageName=package.arn)
    model = batch.model_name(described)
    sm.create_model(**registry.model_request(settings, name=model, package=described, tags=[]))
    run_ = jobs.JobRun("batch_inference", "bench", "transform", uuid.uuid4().hex[:6])
    name = f"bench-bi-transform-{run_.key}"
    request = batch.transform_request(
        settings,
        run_,
        name=name,
        model_name=model,
        model_version=batch.model_version(described),
        partition=DAY.isoformat(),
    )
    started = time.perf_counter()
    sm.create_transform_job(**request)
    while True:
        job = sm.describe_transform_job(TransformJobName=name)
        if job["TransformJobStatus"] != "InProgress":
            break
        time.sleep(0.1)
    wall = time.perf_counter() - started
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    records, data_s = _data_phase(aws, name)
    assert records == rows + 1, records  # the header line is a record too
    baseline_rate = rows / baseline_s
    return [
        Row(
            f"batch_inference transform, {rows:,} raw rows: features in the model, "
            "JoinSource=Input + filters",
            rows / data_s,
            "rows/s",
            baseline=baseline_rate,
            baseline_name="in-process read_csv+features+predict+join+to_csv",
            target=">= 0.6x baseline",
            ok=rows / data_s >= 0.6 * baseline_rate,
        ),
        Row(
            f"batch_inference transform end to end (Create -> Completed), {rows:,} raw rows",
            rows / wall,
            "rows/s",
            baseline=baseline_rate,
            baseline_name="in-process read_csv+features+predict+join+to_csv",
        ),
    ]
