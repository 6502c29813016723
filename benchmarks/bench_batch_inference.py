"""batch_inference on local_aws.

The transform step alone: raw card transactions scored by the packaged model with
JoinSource=Input and filters (exactly the DAG's request), against the same work in one
process (read the raw CSV, engineer preprocess's features, predict, join the ids, write).

The whole DAG, ``airflow dags test batch_inference <day>`` as a user runs it, against a
local_aws server process of its own (so its memory is its own), on one partition of
DAG_BASE_ROWS and of 10x that: wall time, Airflow's share of the DAG run (as model_build's:
first task start to last task end, less the union of the SageMaker jobs' own
[CreationTime, end] intervals; here the worker's own work, publish's row-for-row check and
drift's PSI, is on Airflow's side), and the peak memory (VmHWM, sampled from /proc) of every
process involved: the local_aws server, the transform agent, the model server, the gates'
processing jobs and the Airflow process (``dags test`` runs the tasks in it: the worker).
The base is 100k rows, so 10x is the issue's 1M-row partition end to end. The flatness
target is on the four processes the issue names (server, transform agent, model server,
Airflow); the gates' processing jobs load the partition into pandas to validate it (as a
Deequ job holds its Spark partitions), so their row is reported without that target.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from benchmarks.harness import Row, airflow_environment, run_window

ROWS = 1_000_000
DAG_BASE_ROWS = 100_000  # 10x: the 1M-row partition end to end
DAY = dt.date(2026, 3, 10)
ROLES = ("local_aws server", "transform agent", "model server", "processing jobs", "Airflow")


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
    return transform_rows(aws, rows) + dag_rows(DAG_BASE_ROWS)


def transform_rows(aws: Any, rows: int = ROWS) -> list[Row]:
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


# -- the whole DAG -----------------------------------------------------------------------------
class PeakMemory:
    """Samples /proc every ``interval`` s: per role, the highest VmHWM (a process's own peak
    RSS) of any process in it. Roles follow the process tree: the server, its transform
    agent (``local_aws.sagemaker.transform``), model servers (children of the serving
    zygote, or cold ``local_aws.sagemaker.serving``), the other job processes under the
    server (the gates' processing jobs), and the Airflow process with its children."""

    def __init__(self, server_pid: int, interval: float = 0.2) -> None:
        self.server_pid = server_pid
        self.airflow_pid: int | None = None
        self.peak_kb = dict.fromkeys(ROLES, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.interval = interval

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        procs: dict[int, tuple[int, str, int]] = {}  # pid -> (ppid, cmdline, VmHWM kB)
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/status") as fh:
                    status = dict(line.split(":", 1) for line in fh if ":" in line)
                with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                    cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            hwm = int(status.get("VmHWM", "0 kB").split()[0])
            procs[int(entry.name)] = (int(status["PPid"]), cmdline, hwm)
        for pid, (_, cmdline, hwm) in procs.items():
            role = self._role(pid, cmdline, procs)
            if role is not None:
                self.peak_kb[role] = max(self.peak_kb[role], hwm)

    def _role(self, pid: int, cmdline: str, procs: dict[int, tuple[int, str, int]]) -> str | None:
        if pid == self.server_pid:
            return "local_aws server"
        chain, at = [], pid
        while at in procs and at > 1 and len(chain) < 16:
            at = procs[at][0]
            chain.append(at)
        if self.airflow_pid is not None and (pid == self.airflow_pid or self.airflow_pid in chain):
            return "Airflow"
        if self.server_pid not in chain:
            return None
        if "local_aws.sagemaker.transform" in cmdline:
            return "transform agent"
        parent = procs.get(chain[0], (0, "", 0))[1]
        if "local_aws.sagemaker.serving" in cmdline or "warm_serving" in parent:
            return "model server"
        if "warm_serving" in cmdline or "warm_child" in cmdline:
            return None  # the zygotes: they fork servers and jobs, and serve nothing
        return "processing jobs"


def dag_rows(base: int) -> list[Row]:
    results = {rows: _dag_run(rows) for rows in (base, base * 10)}
    small, large = results[base], results[base * 10]
    out = [
        Row(
            f"batch_inference DAG end to end, {base * 10:,} rows (airflow dags test)",
            large["wall"],
            "s",
            baseline=large["jobs"],
            baseline_name="the SageMaker jobs' own time",
        ),
        Row(
            "  rows scored per second, whole DAG",
            base * 10 / large["wall"],
            "rows/s",
        ),
        Row(
            "  the DAG run, first task start to last task end",
            large["run"],
            "s",
            baseline=large["in_run"],
            baseline_name="the jobs' own time",
        ),
        Row(
            "Airflow's share of the batch_inference run (worker's publish + drift included)",
            large["share"] * 100,
            "%",
            baseline=small["share"] * 100,
            baseline_name=f"at {base:,} rows",
        ),
    ]
    for role in ROLES:
        low, high = small["peak_mb"][role], large["peak_mb"][role]
        flat = role != "processing jobs"  # the gates hold the partition: see the docstring
        out.append(
            Row(
                f"peak memory, {role}, {base * 10:,} rows (10x)",
                high,
                "MB",
                baseline=low,
                baseline_name=f"at {base:,} rows",
                target="flat in input size (<= 1.5x)" if flat else "",
                ok=(high <= 1.5 * low if low else None) if flat else None,
            )
        )
    return out


def _dag_run(rows: int) -> dict[str, Any]:
    """One ``airflow dags test batch_inference`` of a fresh partition of ``rows`` rows on a
    local_aws server process of its own."""
    from mlops_pipeline import datagen
    from tests.batchkit import register_package
    from tests.conftest import ServerProcess

    with tempfile.TemporaryDirectory(prefix="bench-bi-dag-") as tmp:
        server = ServerProcess(Path(tmp) / "local-aws").start()
        try:
            assert server.proc is not None
            s3, sm = server.client("s3"), server.client("sagemaker")
            bucket = f"bench-bi-dag-{uuid.uuid4().hex[:8]}"
            group = f"bench-{uuid.uuid4().hex[:6]}"
            s3.create_bucket(Bucket=bucket)
            register_package(s3, sm, bucket, group)
            datagen.write_partition(s3, bucket, DAY, rows, seed=11)
            home = Path(tmp) / "airflow"
            home.mkdir()
            aws = SimpleNamespace(url=server.url, region="us-east-1")
            env = airflow_environment(str(home), aws, bucket, group)
            airflow = str(Path(sys.executable).with_name("airflow"))
            subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
            created_after = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
            with PeakMemory(server.proc.pid) as memory:
                started = time.perf_counter()
                proc = subprocess.Popen(
                    [airflow, "dags", "test", "batch_inference", DAY.isoformat()],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                memory.airflow_pid = proc.pid
                output, _ = proc.communicate()
                wall = time.perf_counter() - started
            state, first, last = run_window(home / "airflow.db", "batch_inference")
            if proc.returncode != 0 or state != "success":
                tail = "\n".join(output.splitlines()[-40:])
                raise RuntimeError(f"batch_inference ended {state} in the benchmark:\n{tail}")
            intervals = _job_intervals(sm, created_after)
        finally:
            server.stop()
    from benchmarks.bench_model_build import _union

    in_run = _union([(max(a, first), min(b, last)) for a, b in intervals if b > first and a < last])
    return {
        "wall": wall,
        "jobs": _union(intervals),
        "run": last - first,
        "in_run": in_run,
        "share": (last - first - in_run) / (last - first),
        "peak_mb": {role: kb / 1024 for role, kb in memory.peak_kb.items()},
    }


def _job_intervals(sm: Any, after: dt.datetime) -> list[tuple[float, float]]:
    """[CreationTime, end] of every processing job (the gates) and transform job since
    ``after``."""
    intervals = []
    for page in sm.get_paginator("list_processing_jobs").paginate(CreationTimeAfter=after):
        for summary in page["ProcessingJobSummaries"]:
            job = sm.describe_processing_job(ProcessingJobName=summary["ProcessingJobName"])
            intervals.append(
                (job["CreationTime"].timestamp(), job["ProcessingEndTime"].timestamp())
            )
    for page in sm.get_paginator("list_transform_jobs").paginate(CreationTimeAfter=after):
        for summary in page["TransformJobSummaries"]:
            job = sm.describe_transform_job(TransformJobName=summary["TransformJobName"])
            intervals.append((job["CreationTime"].timestamp(), job["TransformEndTime"].timestamp()))
    return intervals
