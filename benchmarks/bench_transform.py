"""Batch transform: throughput against in-process pandas + predict on the same rows, and the
peak memory of the transform's processes as the input grows tenfold."""

from __future__ import annotations

import re
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.harness import Row

ROWS = 1_000_000  # the throughput run
SMALL_ROWS, LARGE_ROWS = 200_000, 2_000_000  # the memory runs: 1x and 10x input
FEATURES = 10
DECIMALS = 8  # 0.dddddddd: 11 bytes a value, ~110 MB for ROWS
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
_DATA_PHASE = re.compile(r"transformed \d+ of \d+ objects: (\d+) records, .* in ([0-9.]+)s")


def write_csv(path: Path, rows: int, seed: int = 0, *, ids: bool = False) -> None:
    """Uniform [0, 1) features as fixed-width text, built as one byte array (pandas' to_csv
    would take longer than the transform it feeds); ``ids`` puts a 7-digit id first."""
    import numpy as np

    rng = np.random.default_rng(seed)
    width = DECIMALS + 3  # "0." + digits + separator
    with path.open("wb") as out:
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            cells = np.empty((n, FEATURES, width), dtype=np.uint8)
            cells[:, :, 0] = ord("0")
            cells[:, :, 1] = ord(".")
            cells[:, :, 2:-1] = rng.integers(ord("0"), ord("9") + 1, (n, FEATURES, DECIMALS))
            cells[:, :, -1] = ord(",")
            cells[:, -1, -1] = ord("\n")
            if not ids:
                out.write(cells.tobytes())
                continue
            numbers = np.arange(start, start + n)[:, None] // 10 ** np.arange(6, -1, -1) % 10
            id_cells = np.full((n, 8), ord(","), dtype=np.uint8)
            id_cells[:, :7] = numbers + ord("0")
            out.write(np.hstack([id_cells, cells.reshape(n, -1)]).tobytes())


def train(path: Path) -> Any:
    import pandas as pd
    import xgboost as xgb

    x = pd.read_csv(path, header=None, nrows=20_000).to_numpy()
    y = (x[:, :5].sum(axis=1) > x[:, 5:].sum(axis=1)).astype(int)
    params = {"max_depth": 6, "objective": "binary:logistic", "eta": 0.3}
    return xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=100)


def in_process(booster: Any, path: Path, out: Path) -> tuple[float, Any]:
    """The ceiling: read_csv + predict + to_csv in one process, nothing in between."""
    import pandas as pd
    import xgboost as xgb

    started = time.perf_counter()
    frame = pd.read_csv(path, header=None)
    predictions = booster.predict(xgb.DMatrix(frame))
    pd.Series(predictions).to_csv(out, header=False, index=False)
    return time.perf_counter() - started, predictions


class PeakRSS:
    """Peak resident memory (VmHWM) of the processes a transform job runs: its agent and its
    model server, found among this process's children by the job's name."""

    def __init__(self, job: str):
        self.job = job
        self.peaks: dict[int, tuple[str, int]] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._done.wait(0.05):
            for child in me.children(recursive=True):
                try:
                    cmdline = " ".join(child.cmdline())
                    if self.job not in cmdline:
                        continue
                    role = "agent" if "sagemaker.transform" in cmdline else "model server"
                    status = Path(f"/proc/{child.pid}/status").read_text()
                except (psutil.Error, OSError):
                    continue
                match = re.search(r"VmHWM:\s+(\d+) kB", status)
                if match:
                    peak = int(match.group(1)) * 1024
                    self.peaks[child.pid] = (role, max(peak, self.peaks.get(child.pid, ("", 0))[1]))

    def total(self) -> int:
        return sum(peak for _, peak in self.peaks.values())

    def by_role(self) -> dict[str, int]:
        roles: dict[str, int] = {}
        for role, peak in self.peaks.values():
            roles[role] = roles.get(role, 0) + peak
        return roles


def _model_tarball(booster: Any, tmp: Path) -> bytes:
    from tests.jobkit import tar_gz

    booster.save_model(str(tmp / "xgboost-model.json"))
    # "xgboost-model": what the XGBoost algorithm container loads
    return tar_gz({"xgboost-model": (tmp / "xgboost-model.json").read_bytes()})


def _transform(
    aws: Any, model: str, bucket: str, prefix: str, **extra: Any
) -> tuple[dict[str, Any], float, PeakRSS]:
    sm = aws.client("sagemaker")
    name = f"bench-transform-{uuid.uuid4().hex[:6]}"
    with PeakRSS(name) as rss:
        started = time.perf_counter()
        sm.create_transform_job(
            TransformJobName=name,
            ModelName=model,
            # two requests in flight: one per core of this machine, as one sets it on SageMaker
            MaxConcurrentTransforms=2,
            MaxPayloadInMB=6,
            BatchStrategy="MultiRecord",
            TransformInput={
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/{prefix}/"}
                },
                "ContentType": "text/csv",
                "SplitType": "Line",
            },
            TransformOutput={
                "S3OutputPath": f"s3://{bucket}/out/{name}",
                "Accept": "text/csv",
                "AssembleWith": "Line",
            },
            TransformResources={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
            **extra,
        )
        deadline = time.monotonic() + 300
        while True:
            job = sm.describe_transform_job(TransformJobName=name)
            if job["TransformJobStatus"] != "InProgress" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        wall = time.perf_counter() - started
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    return job, wall, rss


def _data_phase(aws: Any, job: str) -> tuple[int, float]:
    """Records and seconds from the agent's last data-log line: the input streamed, scored
    and the output uploaded, once the model server was up."""
    logs = aws.client("logs")
    group = "/aws/sagemaker/TransformJobs"
    streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=f"{job}/")
    [stream] = [
        s["logStreamName"]
        for s in streams["logStreams"]
        if s["logStreamName"].endswith("/data-log")
    ]
    events = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)
    for event in reversed(events["events"]):
        match = _DATA_PHASE.search(event["message"])
        if match:
            return int(match.group(1)), float(match.group(2))
    raise AssertionError(f"no summary line in {stream}")


def run(aws: Any) -> list[Row]:
    import numpy as np

    s3, sm = aws.client("s3"), aws.client("sagemaker")
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    with tempfile.TemporaryDirectory(prefix="bench-transform-") as name:
        tmp = Path(name)
        inputs = (
            ("rows-1m", ROWS, False),
            ("with-ids", ROWS, True),
            ("small", SMALL_ROWS, False),
            ("large", LARGE_ROWS, False),
        )
        for prefix, rows, ids in inputs:
            path = tmp / f"{prefix}.csv"
            write_csv(path, rows, ids=ids)
            s3.upload_file(str(path), bucket, f"{prefix}/data.csv")
            if prefix == "rows-1m":
                booster = train(path)
                baseline_s, expected = min(
                    (in_process(booster, path, tmp / "baseline.out") for _ in range(2)),
                    key=lambda r: r[0],
                )
            path.unlink()
        s3.put_object(Bucket=bucket, Key="model/model.tar.gz", Body=_model_tarball(booster, tmp))
    model = f"bench-xgb-{uuid.uuid4().hex[:6]}"
    sm.create_model(
        ModelName=model,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{bucket}/model/model.tar.gz"},
    )

    job, wall, _ = _transform(aws, model, bucket, "rows-1m")
    records, data_s = _data_phase(aws, job["TransformJobName"])
    out = s3.get_object(Bucket=bucket, Key=f"out/{job['TransformJobName']}/data.csv.out")
    scores = np.loadtxt(out["Body"].iter_lines(), dtype=np.float32)
    assert records == ROWS and len(scores) == ROWS, (records, len(scores))
    assert np.allclose(scores, expected, atol=1e-6), "transform predictions differ from in-process"
    # the batch_inference shape: the id stays out of the model and comes back beside the score
    joined, _, _ = _transform(
        aws,
        model,
        bucket,
        "with-ids",
        DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"},
    )
    join_records, join_s = _data_phase(aws, joined["TransformJobName"])
    out = s3.get_object(Bucket=bucket, Key=f"out/{joined['TransformJobName']}/data.csv.out")
    pairs = np.loadtxt(out["Body"].iter_lines(), delimiter=",", dtype=np.float64)
    assert join_records == ROWS and (pairs[:, 0] == np.arange(ROWS)).all()
    assert np.allclose(pairs[:, 1], expected, atol=1e-6), "joined predictions differ"
    _, _, rss_small = _transform(aws, model, bucket, "small")
    _, _, rss_large = _transform(aws, model, bucket, "large")

    baseline_rate = ROWS / baseline_s
    small_mb, large_mb = rss_small.total() / 2**20, rss_large.total() / 2**20

    def parts(rss: PeakRSS) -> str:
        return ", ".join(
            f"{role} {peak / 2**20:.0f}" for role, peak in sorted(rss.by_role().items())
        )

    return [
        Row(
            "transform throughput, 1M rows x 10 CSV, xgboost (streaming, scoring, upload)",
            ROWS / data_s,
            "rows/s",
            baseline=baseline_rate,
            baseline_name="in-process read_csv+predict+to_csv",
            target=">= 0.5x baseline",
            ok=ROWS / data_s >= 0.5 * baseline_rate,
        ),
        Row(
            "transform throughput with InputFilter $[1:] + JoinSource + OutputFilter $[0,-1]",
            ROWS / join_s,
            "rows/s",
            baseline=baseline_rate,
            baseline_name="in-process read_csv+predict+to_csv",
        ),
        Row(
            "transform end to end, Create -> Completed, 1M rows (incl. model server start)",
            ROWS / wall,
            "rows/s",
            baseline=baseline_rate,
            baseline_name="in-process read_csv+predict+to_csv",
        ),
        Row(
            f"transform peak RSS, {LARGE_ROWS // 10**6}M rows ({parts(rss_large)} MB)",
            large_mb,
            "MB",
            baseline=small_mb,
            baseline_name=f"{SMALL_ROWS // 1000}k rows: {parts(rss_small)} MB",
            target="<= 1.2x",
            ok=large_mb <= 1.2 * small_mb,
        ),
    ]
