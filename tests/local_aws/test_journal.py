"""The journal: moto's state survives a restart, through real boto3 clients over HTTP.

A "restart" is: stop the server, close the journal, wipe moto's process-global backends,
then build a fresh moto app, replay the journal into it and serve it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from werkzeug.serving import BaseWSGIServer, make_server

from local_aws.journal import Journal, JournalError

REGION = "us-east-1"
MiB = 1 << 20
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sagemaker.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)
POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
)


def reset_moto() -> None:
    from moto.core.base_backend import BackendDict
    from moto.core.model_instances import reset_model_data

    BackendDict.reset()
    reset_model_data()


@pytest.fixture(autouse=True)
def isolated_moto() -> Iterator[None]:
    """Give each test an empty moto, and put back whatever was there before.

    moto's backends are process-wide, and the session's LocalAWS (tests/conftest.py) may
    hold state that later tests rely on; resetting it under them would break them.
    """
    from moto.core.base_backend import BackendDict
    from moto.core.model_instances import model_data

    registry: list[Any] = BackendDict._instances  # type: ignore[misc]
    instances = list(registry)
    stash = [(backend, dict(backend)) for backend in instances]
    for backend in instances:
        backend.clear()
    registry.clear()
    tracked = [
        (model, list(getattr(model, "instances_tracked", [])))
        for models in model_data.values()
        for model in models.values()
    ]
    try:
        yield
    finally:
        reset_moto()
        for backend, accounts in stash:
            backend.update(accounts)
        registry[:] = instances
        for model, instances_tracked in tracked:
            model.instances_tracked = instances_tracked  # type: ignore[attr-defined]


class Run:
    """One lifetime of the server: replay the journal, serve, stop."""

    def __init__(self, journal_dir: Path, **journal_options: Any):
        self.journal_dir = journal_dir
        self.journal_options = journal_options
        self.replayed = -1
        self.replay_seconds = 0.0
        self.url = ""
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Run:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )

        app = DomainDispatcherApplication(create_backend_app)
        self.journal = Journal(self.journal_dir, **self.journal_options)
        started = time.perf_counter()
        self.replayed = self.journal.replay(app)
        self.replay_seconds = time.perf_counter() - started
        self._server = make_server(
            "127.0.0.1",
            0,
            self.journal.wrap(app),
            threaded=True,
            request_handler=MotoRequestHandler,
        )
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self.journal.close()
        reset_moto()

    def client(self, service: str, **kwargs: Any) -> Any:
        return boto3.session.Session().client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            **kwargs,
        )


def journal_size(journal_dir: Path) -> int:
    return (journal_dir / "journal.log").stat().st_size


def snapshot_object(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    response = s3.get_object(Bucket=bucket, Key=key)
    body = response["Body"].read()
    return {
        "sha256": hashlib.sha256(body).hexdigest(),
        "size": len(body),
        "ETag": response["ETag"],
        "Metadata": response["Metadata"],
        "ContentType": response.get("ContentType"),
        "CacheControl": response.get("CacheControl"),
        "LastModified": response["LastModified"],
    }


def test_state_survives_restarts(tmp_path: Path) -> None:
    journal_dir = tmp_path / "journal"
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(9 * MiB))  # over boto3's 8 MiB multipart threshold
    part1 = os.urandom(5 * MiB)  # moto's minimum for a part that is not the last
    part2 = b"the end"
    keys = [
        "small.txt",
        "big.bin",
        "dir/with spaces & +plus%2F.txt",
        "données/ключ.txt",
        "copy.txt",
        "presigned.txt",
    ]
    now = datetime.now(UTC)
    events = [
        {"timestamp": int((now - timedelta(minutes=3 - i)).timestamp() * 1000), "message": m}
        for i, m in enumerate(["epoch 1", "epoch 2", "done"])
    ]

    with Run(journal_dir) as run:
        assert run.replayed == 0
        s3, logs, cw, iam = (run.client(s) for s in ("s3", "logs", "cloudwatch", "iam"))
        aas = run.client("application-autoscaling")

        s3.create_bucket(Bucket="data")
        s3.put_object(
            Bucket="data",
            Key="small.txt",
            Body=b"hello",
            Metadata={"owner": "me", "my_key": "underscored"},
            ContentType="text/plain",
            CacheControl="max-age=60",
        )
        s3.upload_file(str(big), "data", "big.bin")
        s3.put_object(Bucket="data", Key=keys[2], Body=b"odd key")
        s3.put_object(Bucket="data", Key=keys[3], Body="non-ASCII: é".encode())
        url = s3.generate_presigned_url(
            "put_object", Params={"Bucket": "data", "Key": "presigned.txt"}
        )
        with urllib.request.urlopen(urllib.request.Request(url, b"signed", method="PUT")):
            pass
        s3.put_object(Bucket="data", Key="doomed.txt", Body=b"short-lived")
        s3.delete_object(Bucket="data", Key="doomed.txt")
        s3.copy_object(
            Bucket="data", Key="copy.txt", CopySource={"Bucket": "data", "Key": "small.txt"}
        )
        # Left in progress across the restart, to be finished by the next run.
        upload_id = s3.create_multipart_upload(Bucket="data", Key="resumed.bin")["UploadId"]
        etag1 = s3.upload_part(
            Bucket="data", Key="resumed.bin", UploadId=upload_id, PartNumber=1, Body=part1
        )["ETag"]

        logs.create_log_group(logGroupName="/test/job")
        logs.create_log_stream(logGroupName="/test/job", logStreamName="algo-1")
        logs.put_log_events(logGroupName="/test/job", logStreamName="algo-1", logEvents=events)
        cw.put_metric_data(
            Namespace="Test",
            MetricData=[
                {"MetricName": "loss", "Value": 0.25, "Timestamp": now},
                {"MetricName": "untimed", "Value": 7.0},  # moto stamps it: must keep its stamp
            ],
        )
        # Big enough for botocore to gzip the request body.
        cw.put_metric_data(
            Namespace="Test",
            MetricData=[
                {
                    "MetricName": "bulk",
                    "Value": 1.0,
                    "Timestamp": now - timedelta(seconds=i),
                    "Dimensions": [{"Name": "Host", "Value": f"algo-{i}"}],
                }
                for i in range(300)
            ],
        )
        iam.create_role(RoleName="SageMakerExecution", AssumeRolePolicyDocument=TRUST)
        iam.put_role_policy(RoleName="SageMakerExecution", PolicyName="s3", PolicyDocument=POLICY)
        aas.register_scalable_target(
            ServiceNamespace="sagemaker",
            ResourceId="endpoint/ep/variant/AllTraffic",
            ScalableDimension="sagemaker:variant:DesiredInstanceCount",
            MinCapacity=1,
            MaxCapacity=3,
        )
        iam.create_user(UserName="ci")
        access_key = iam.create_access_key(UserName="ci")["AccessKey"]["AccessKeyId"]
        s3.create_bucket(Bucket="versioned")
        s3.put_bucket_versioning(Bucket="versioned", VersioningConfiguration={"Status": "Enabled"})
        v1 = s3.put_object(Bucket="versioned", Key="model", Body=b"v1")["VersionId"]
        v2 = s3.put_object(Bucket="versioned", Key="model", Body=b"v2")["VersionId"]
        mutations = 28

        # Reads, failures and STS leave no trace.
        size = journal_size(journal_dir)
        with pytest.raises(ClientError):
            s3.put_object(Bucket="no-such-bucket", Key="x", Body=b"x")
        with pytest.raises(ClientError):
            iam.create_role(RoleName="SageMakerExecution", AssumeRolePolicyDocument=TRUST)
        before = {key: snapshot_object(s3, "data", key) for key in keys}
        s3.list_objects_v2(Bucket="data")
        logs.describe_log_streams(logGroupName="/test/job")
        log_events = logs.get_log_events(logGroupName="/test/job", logStreamName="algo-1")["events"]
        role = iam.get_role(RoleName="SageMakerExecution")["Role"]
        run.client("sts").get_caller_identity()
        assert journal_size(journal_dir) == size

    assert before["big.bin"]["ETag"].endswith('-2"'), "upload_file did not go multipart"
    assert [e["message"] for e in log_events] == ["epoch 1", "epoch 2", "done"]
    time.sleep(1.1)  # so that anything stamped with the replay's time would show it

    with Run(journal_dir) as run:
        assert run.replayed == mutations
        s3, logs, cw, iam = (run.client(s) for s in ("s3", "logs", "cloudwatch", "iam"))
        for key in keys:
            assert snapshot_object(s3, "data", key) == before[key], key
        assert before["small.txt"]["Metadata"] == {"owner": "me", "my_key": "underscored"}
        with pytest.raises(ClientError) as gone:
            s3.head_object(Bucket="data", Key="doomed.txt")
        assert gone.value.response["Error"]["Code"] == "404"
        assert (
            logs.get_log_events(logGroupName="/test/job", logStreamName="algo-1")["events"]
            == log_events
        )
        for name, value in (("loss", 0.25), ("untimed", 7.0), ("bulk", 300.0)):
            points = cw.get_metric_statistics(
                Namespace="Test",
                MetricName=name,
                StartTime=now - timedelta(minutes=5),
                EndTime=now + timedelta(seconds=30),
                Period=60,
                Statistics=["Sum"],
            )["Datapoints"]
            assert sum(p["Sum"] for p in points) == value, name
        restored = iam.get_role(RoleName="SageMakerExecution")["Role"]
        assert (restored["Arn"], restored["CreateDate"]) == (role["Arn"], role["CreateDate"])
        assert iam.list_role_policies(RoleName="SageMakerExecution")["PolicyNames"] == ["s3"]
        targets = run.client("application-autoscaling").describe_scalable_targets(
            ServiceNamespace="sagemaker"
        )["ScalableTargets"]
        assert [(t["ResourceId"], t["MaxCapacity"]) for t in targets] == [
            ("endpoint/ep/variant/AllTraffic", 3)
        ]

        # The upload begun before the restart is finished with the id the client was given.
        etag2 = s3.upload_part(
            Bucket="data", Key="resumed.bin", UploadId=upload_id, PartNumber=2, Body=part2
        )["ETag"]
        s3.complete_multipart_upload(
            Bucket="data",
            Key="resumed.bin",
            UploadId=upload_id,
            MultipartUpload={
                "Parts": [{"PartNumber": 1, "ETag": etag1}, {"PartNumber": 2, "ETag": etag2}]
            },
        )
        resumed = s3.get_object(Bucket="data", Key="resumed.bin")["Body"].read()
        assert resumed == part1 + part2

        # moto's made-up ids come back too, so clients can go on using them.
        assert [
            k["AccessKeyId"] for k in iam.list_access_keys(UserName="ci")["AccessKeyMetadata"]
        ] == [access_key]
        versions = s3.list_object_versions(Bucket="versioned")["Versions"]
        assert {v["VersionId"] for v in versions} == {v1, v2}
        old = s3.get_object(Bucket="versioned", Key="model", VersionId=v1)["Body"].read()
        assert old == b"v1"
        s3.delete_object(Bucket="versioned", Key="model", VersionId=v1)

    with Run(journal_dir) as run:
        # The records made after the first restart use the first run's upload id, too.
        assert run.replayed == mutations + 3
        s3 = run.client("s3")
        assert s3.get_object(Bucket="data", Key="resumed.bin")["Body"].read() == part1 + part2
        assert s3.list_multipart_uploads(Bucket="data").get("Uploads", []) == []
        for key in keys:
            assert snapshot_object(s3, "data", key) == before[key], key
        assert run.client("iam").get_role(RoleName="SageMakerExecution")["Role"] == role
        versions = s3.list_object_versions(Bucket="versioned")["Versions"]
        assert [(v["VersionId"], v["IsLatest"]) for v in versions] == [(v2, True)]


@pytest.mark.parametrize("damage", ["torn", "garbage"])
def test_damaged_tail_is_ignored(tmp_path: Path, damage: str) -> None:
    journal_dir = tmp_path / "journal"
    with Run(journal_dir) as run:
        s3 = run.client("s3")
        s3.create_bucket(Bucket="bkt")
        s3.put_object(Bucket="bkt", Key="kept", Body=b"kept")
        s3.put_object(Bucket="bkt", Key="last", Body=b"x" * 1000)

    log_path = journal_dir / "journal.log"
    if damage == "torn":  # as if the process died while writing the last record
        with open(log_path, "r+b") as f:
            f.truncate(log_path.stat().st_size - 10)
    else:  # junk after the last complete record
        with open(log_path, "ab") as f:
            f.write(b"\x00\x01not a record")

    with Run(journal_dir) as run:
        assert run.replayed == (2 if damage == "torn" else 3)
        s3 = run.client("s3")
        assert s3.get_object(Bucket="bkt", Key="kept")["Body"].read() == b"kept"
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="bkt")["Contents"]]
        assert keys == (["kept"] if damage == "torn" else ["kept", "last"])
        s3.put_object(Bucket="bkt", Key="after", Body=b"after")

    # The damage was cut off, so what was written after it is replayed too.
    with Run(journal_dir) as run:
        assert run.replayed == (3 if damage == "torn" else 4)
        assert run.client("s3").get_object(Bucket="bkt", Key="after")["Body"].read() == b"after"
    assert bool(list(journal_dir.glob("journal.log.corrupt-*"))) == (damage == "garbage")


def test_big_bodies_are_blobs_and_failed_ones_are_dropped(tmp_path: Path) -> None:
    journal_dir = tmp_path / "journal"
    payload = os.urandom(3 * MiB)
    with Run(journal_dir) as run:
        s3 = run.client("s3")
        s3.create_bucket(Bucket="bkt")
        s3.put_object(Bucket="bkt", Key="big", Body=payload)
        with pytest.raises(ClientError):
            s3.put_object(Bucket="b-missing", Key="big", Body=payload)
        blobs = list((journal_dir / "blobs").iterdir())
        assert [b.stat().st_size for b in blobs] == [len(payload)]
        assert journal_size(journal_dir) < 64 * 1024  # the body is not in the log itself

    with Run(journal_dir) as run:
        assert run.client("s3").get_object(Bucket="bkt", Key="big")["Body"].read() == payload


def test_moto_reset_empties_the_journal(tmp_path: Path) -> None:
    journal_dir = tmp_path / "journal"
    with Run(journal_dir) as run:
        s3 = run.client("s3")
        s3.create_bucket(Bucket="before")
        s3.put_object(Bucket="before", Key="big", Body=os.urandom(2 * MiB))
        request = urllib.request.Request(f"{run.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request) as response:
            assert response.status == 200
        assert journal_size(journal_dir) == 0
        assert list((journal_dir / "blobs").iterdir()) == []
        s3.create_bucket(Bucket="after")

    with Run(journal_dir) as run:
        assert run.replayed == 1
        buckets = run.client("s3").list_buckets()["Buckets"]
        assert [b["Name"] for b in buckets] == ["after"]


def test_one_writer_per_directory(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    try:
        with pytest.raises(JournalError):
            Journal(tmp_path / "journal")
    finally:
        journal.close()
    Journal(tmp_path / "journal").close()


def test_replay_speed(tmp_path: Path) -> None:
    journal_dir = tmp_path / "journal"
    count = 200
    with Run(journal_dir) as run:
        s3 = run.client("s3")
        s3.create_bucket(Bucket="many")
        for i in range(count):
            s3.put_object(Bucket="many", Key=f"k/{i:04d}", Body=f"object {i}".encode())

    with Run(journal_dir) as run:
        print(
            f"\nreplayed {run.replayed} records ({count} small puts) in "
            f"{run.replay_seconds:.3f}s, {run.replay_seconds / run.replayed * 1000:.2f} ms each"
        )
        assert run.replayed == count + 1
        s3 = run.client("s3")
        assert s3.get_object(Bucket="many", Key="k/0199")["Body"].read() == b"object 199"
        assert s3.list_objects_v2(Bucket="many")["KeyCount"] == count
        assert run.replay_seconds < 20


def test_concurrent_writes_replay_in_the_order_moto_applied_them(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    journal_dir = tmp_path / "journal"
    with Run(journal_dir) as run:
        s3, logs = run.client("s3"), run.client("logs")
        s3.create_bucket(Bucket="race")
        logs.create_log_group(logGroupName="race")
        logs.create_log_stream(logGroupName="race", logStreamName="s")

        def write(i: int) -> None:
            s3.put_object(Bucket="race", Key="same", Body=f"writer {i}".encode())
            stamp = int(time.time() * 1000)
            logs.put_log_events(
                logGroupName="race",
                logStreamName="s",
                logEvents=[{"timestamp": stamp, "message": f"event {i}"}],
            )

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(write, range(64)))
        winner = s3.get_object(Bucket="race", Key="same")["Body"].read()
        events = logs.get_log_events(logGroupName="race", logStreamName="s")["events"]

    with Run(journal_dir) as run:
        assert run.replayed == 3 + 2 * 64
        assert run.client("s3").get_object(Bucket="race", Key="same")["Body"].read() == winner
        replayed = run.client("logs").get_log_events(logGroupName="race", logStreamName="s")
        assert replayed["events"] == events


def test_the_journal_keeps_no_signature_or_session_token(local_aws):
    token = "SESSION-TOKEN-" + uuid.uuid4().hex
    s3 = local_aws.client("s3", aws_session_token=token)
    bucket = f"secrets-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="a.txt", Body=b"a")
    journal = b"".join(
        p.read_bytes() for p in (local_aws.data_dir / "moto").rglob("*") if p.is_file()
    )
    assert bucket.encode() in journal  # the writes are there
    assert token.encode() not in journal
    assert re.search(rb"Signature=[0-9a-f]{16}", journal) is None
