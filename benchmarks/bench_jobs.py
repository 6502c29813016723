"""Job overhead: a no-op training job's Create → Completed time minus the script's own time."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.harness import Row

NOOP = """
import time, os
started = time.time()
open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w").write("noop")
print(f"script_seconds={time.time() - started:.6f}", flush=True)
"""


def run(aws: Any, repeats: int = 5) -> list[Row]:
    from tests.jobkit import training_request, upload_source

    s3, sm = aws.client("s3"), aws.client("sagemaker")
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    source = upload_source(s3, bucket, "code/noop.tar.gz", {"train.py": NOOP})
    s3.put_object(Bucket=bucket, Key="train/x.csv", Body=b"1\n")

    overheads = []
    for i in range(repeats):
        name = f"bench-noop-{uuid.uuid4().hex[:6]}-{i}"
        request = training_request(
            name,
            bucket,
            source,
            channels={"train": f"s3://{bucket}/train/"},
            metric_definitions=[{"Name": "script_seconds", "Regex": r"script_seconds=([0-9.]+)"}],
        )
        started = time.perf_counter()
        sm.create_training_job(**request)
        while True:
            job = sm.describe_training_job(TrainingJobName=name)
            if job["TrainingJobStatus"] != "InProgress":
                break
            time.sleep(0.02)
        total = time.perf_counter() - started
        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
        script = job["FinalMetricDataList"][0]["Value"]
        overheads.append(total - script)

    # Baseline: the irreducible part, starting the same script as a bare Python process.
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "train.py"
        script.write_text(NOOP)
        bare = []
        for _ in range(repeats):
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, str(script)],
                env={"SM_MODEL_DIR": tmp},
                check=True,
                capture_output=True,
            )
            bare.append(time.perf_counter() - started)
    overhead = statistics.median(overheads)
    return [
        Row(
            f"training job overhead (no-op, median of {repeats})",
            overhead,
            "s",
            baseline=statistics.median(bare),
            baseline_name="bare python start",
            target="<= 1 s",
            ok=overhead <= 1.0,
        )
    ]
