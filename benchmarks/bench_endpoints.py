"""InvokeEndpoint: latency added over calling the same predict in-process, and router
throughput over two weighted variants."""

from __future__ import annotations

import io
import statistics
import tarfile
import threading
import time
import uuid
from typing import Any

from benchmarks.harness import Row

INFERENCE = """
import os
import joblib
import numpy as np

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def predict_fn(data, model):
    return model.predict(np.atleast_2d(data))
"""
ROW = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"


def _model() -> Any:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.RandomState(0)
    x = rng.rand(500, 10)
    return LogisticRegression().fit(x, (x.sum(axis=1) > 5).astype(int))


def _tarball(model: Any) -> bytes:
    import joblib

    raw = io.BytesIO()
    joblib.dump(model, raw)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("model.joblib")
        info.size = len(raw.getvalue())
        tar.addfile(info, io.BytesIO(raw.getvalue()))
    return buffer.getvalue()


def _deploy(aws: Any, bucket: str, variants: dict[str, float]) -> str:
    from tests.jobkit import upload_source

    s3, sm = aws.client("s3"), aws.client("sagemaker")
    code = upload_source(s3, bucket, "code/inference.tar.gz", {"inference.py": INFERENCE})
    name = f"bench-{uuid.uuid4().hex[:6]}"
    config_variants = []
    for variant, weight in variants.items():
        model = f"{name}-{variant}"
        sm.create_model(
            ModelName=model,
            ExecutionRoleArn=ROLE,
            PrimaryContainer={
                "Image": IMAGE,
                "ModelDataUrl": f"s3://{bucket}/model.tar.gz",
                "Environment": {
                    "SAGEMAKER_PROGRAM": "inference.py",
                    "SAGEMAKER_SUBMIT_DIRECTORY": code,
                },
            },
        )
        config_variants.append(
            {
                "VariantName": variant,
                "ModelName": model,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": weight,
            }
        )
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=config_variants)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    deadline = time.monotonic() + 180
    while (status := sm.describe_endpoint(EndpointName=name)["EndpointStatus"]) == "Creating":
        if time.monotonic() > deadline:
            raise TimeoutError(f"endpoint {name} still Creating")
        time.sleep(0.2)
    if status != "InService":
        raise RuntimeError(f"endpoint {name} is {status}")
    return name


def run(aws: Any, calls: int = 2000, seconds: float = 10.0) -> list[Row]:
    import numpy as np

    s3, runtime = aws.client("s3"), aws.client("sagemaker-runtime")
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    model = _model()
    s3.put_object(Bucket=bucket, Key="model.tar.gz", Body=_tarball(model))
    single = _deploy(aws, bucket, {"AllTraffic": 1.0})

    row = np.array([[float(v) for v in ROW.split(",")]])
    for _ in range(100):  # warm both paths
        runtime.invoke_endpoint(EndpointName=single, ContentType="text/csv", Body=ROW)
        model.predict(row)
    remote, local = [], []
    for _ in range(calls):
        started = time.perf_counter()
        runtime.invoke_endpoint(EndpointName=single, ContentType="text/csv", Body=ROW)[
            "Body"
        ].read()
        remote.append(time.perf_counter() - started)
        started = time.perf_counter()
        model.predict(row)
        local.append(time.perf_counter() - started)
    remote_ms = statistics.median(remote) * 1000
    local_ms = statistics.median(local) * 1000
    added = remote_ms - local_ms

    two = _deploy(aws, bucket, {"blue": 3.0, "green": 1.0})
    counts: dict[str, int] = {}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def hammer() -> None:
        client = aws.client("sagemaker-runtime")
        while time.monotonic() < stop_at:
            variant = client.invoke_endpoint(EndpointName=two, ContentType="text/csv", Body=ROW)[
                "InvokedProductionVariant"
            ]
            with lock:
                counts[variant] = counts.get(variant, 0) + 1

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    total = sum(counts.values())
    # Baseline for throughput: the same 4 clients calling one variant's model server
    # alone cannot be reached through boto3 here, so compare with one variant's endpoint.
    counts_single = 0
    stop_at = time.monotonic() + seconds

    def hammer_single() -> None:
        nonlocal counts_single
        client = aws.client("sagemaker-runtime")
        while time.monotonic() < stop_at:
            client.invoke_endpoint(EndpointName=single, ContentType="text/csv", Body=ROW)
            with lock:
                counts_single += 1

    threads = [threading.Thread(target=hammer_single) for _ in range(4)]
    started_single = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed_single = time.perf_counter() - started_single
    blue_share = counts.get("blue", 0) / max(total, 1)
    return [
        Row(
            f"InvokeEndpoint p50 added latency ({calls} calls)",
            added,
            "ms",
            baseline=local_ms,
            baseline_name="in-process predict p50",
            target="<= 3 ms added",
            ok=added <= 3.0,
        ),
        Row(
            f"router throughput, 2 variants 3:1 (blue got {blue_share:.0%})",
            total / elapsed,
            "req/s",
            baseline=counts_single / elapsed_single,
            baseline_name="1 variant",
            target="reported",
        ),
    ]
