"""A large UploadPart takes the journal's lock late: its part is built (the body copied) while
other writes go on, and stored once the lock is held. An abort, a completion or a deletion
of the bucket meanwhile makes it fail as it would have after them (and does in the
journal's replay); a kill -9 leaves the upload completable without the part or with it whole.

"Meanwhile" is made certain with events (the part's build waits for the test), never with
sleeps.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from local_aws.journal import CRASH_AT_ENV, INLINE_LIMIT
from tests.conftest import ServerProcess
from tests.local_aws.test_journal import Run, isolated_moto  # noqa: F401  (autouse fixture)
from tests.local_aws.test_journal_deferred import (
    FIRST_PART,
    LAST_PART,
    Background,
    Held,
    complete,
    once,
    read,
    sha,
    start_upload,
    uploads,
)

MiB = 1 << 20
#: past the journal's inline limit: the body goes to a blob, and the part locks late
LARGE_PART = os.urandom(max(INLINE_LIMIT + 1, 5 * MiB))
#: past s3stream's STREAM_PUT_MIN: the server copies it file to file
STREAMED_PART = os.urandom(9 * MiB)


def etag_of(body: bytes) -> str:
    return f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'


def parts_of(s3: Any, bucket: str, key: str, upload: str) -> list[tuple[int, str]]:
    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload).get("Parts", [])
    return [(p["PartNumber"], p["ETag"]) for p in listed]


class HeldPart(Held):
    """:class:`Held`, counting the part keys built (a part built again is a second copy)."""

    built = 0


@pytest.fixture
def held_part(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldPart]:
    """The first part key built by a late-locking UploadPart waits for the test (before its
    body is copied into it; the lock is not held there)."""
    from moto.s3 import models

    from local_aws import s3fixes
    from local_aws.journal import deferred

    s3fixes.install()  # NoSuchUpload for an upload that is gone, as the server answers

    def late_part(self: Any, name: Any = None, *args: Any, **kwargs: Any) -> bool:
        return isinstance(name, int) and deferred._pending() is not None

    held = HeldPart(models.FakeKey.__init__, late_part)

    def init(self: Any, name: Any = None, *args: Any, **kwargs: Any) -> None:
        held.built += isinstance(name, int)
        held(self, name, *args, **kwargs)

    monkeypatch.setattr(models.FakeKey, "__init__", init)
    yield held
    held.release.set()


def upload_part(s3: Any, upload: str, number: int, body: bytes, key: str = "k") -> str:
    answer = s3.upload_part(Bucket="parts", Key=key, UploadId=upload, PartNumber=number, Body=body)
    return str(answer["ETag"])


def test_writes_go_on_while_a_large_part_is_copied(tmp_path: Path, held_part: HeldPart) -> None:
    journal_dir = tmp_path / "journal"
    with Run(journal_dir) as run:
        s3 = run.client("s3")
        s3.create_bucket(Bucket="parts")
        upload = s3.create_multipart_upload(Bucket="parts", Key="k")["UploadId"]
        large = Background(lambda: upload_part(once(run), upload, 1, LARGE_PART))
        assert held_part.reached.wait(60), "the part never reached its copy"
        # each of these would wait for the copy if the part held the journal's lock
        s3.put_object(Bucket="parts", Key="small", Body=b"1")
        upload_part(s3, upload, 2, LAST_PART)  # another part of the same upload
        replaced = upload_part(s3, upload, 1, b"part 1, replaced by the large one")
        other, other_parts = start_upload(s3, "parts", "other")
        complete(s3, "parts", "other", other, other_parts)
        held_part.release.set()
        assert large.result() == etag_of(LARGE_PART)
        # built once: nothing it read (its upload) had changed, so no second copy
        assert held_part.built == 5
        # stored after the small part 1 it replaced, as the journal has them
        listed = parts_of(s3, "parts", "k", upload)
        assert listed == [(1, etag_of(LARGE_PART)), (2, etag_of(LAST_PART))]
        with pytest.raises(ClientError, match="InvalidPart"):
            complete(s3, "parts", "k", upload, [{"PartNumber": 1, "ETag": replaced}])
    with Run(journal_dir) as run:
        s3 = run.client("s3")
        assert parts_of(s3, "parts", "k", upload) == listed
        parts = [{"PartNumber": n, "ETag": e} for n, e in listed]
        complete(s3, "parts", "k", upload, parts)
        assert read(s3, "parts", "k") == sha(LARGE_PART + LAST_PART)
        assert read(s3, "parts", "small") == sha(b"1")
        assert read(s3, "parts", "other") == sha(FIRST_PART + LAST_PART)


def test_a_part_whose_reads_changed_during_its_copy_runs_again_with_the_same_answer(
    tmp_path: Path, held_part: HeldPart
) -> None:
    """moto reads the upload's key (its ACL) for an UploadPart: a put of that key during
    the copy makes the part stale, and it runs again under the lock (a second copy) with
    the answer it would have had."""
    journal_dir = tmp_path / "journal"
    with Run(journal_dir) as run:
        s3 = run.client("s3")
        s3.create_bucket(Bucket="parts")
        upload = s3.create_multipart_upload(Bucket="parts", Key="k")["UploadId"]
        late = Background(lambda: upload_part(once(run), upload, 1, LARGE_PART))
        assert held_part.reached.wait(60), "the part never reached its copy"
        s3.put_object(Bucket="parts", Key="k", Body=b"an object of the same key")
        held_part.release.set()
        assert late.result() == etag_of(LARGE_PART)
        assert held_part.built == 2  # dropped, then built again with the lock held
        assert parts_of(s3, "parts", "k", upload) == [(1, etag_of(LARGE_PART))]
    with Run(journal_dir) as run:
        s3 = run.client("s3")
        assert read(s3, "parts", "k") == sha(b"an object of the same key")
        complete(s3, "parts", "k", upload, [{"PartNumber": 1, "ETag": etag_of(LARGE_PART)}])
        assert read(s3, "parts", "k") == sha(LARGE_PART)


@pytest.mark.parametrize("meanwhile", ["abort", "complete", "delete-bucket"])
def test_an_upload_ended_during_a_part_copy_fails_the_part_as_if_it_came_first(
    tmp_path: Path, held_part: HeldPart, meanwhile: str
) -> None:
    journal_dir = tmp_path / "journal"
    with Run(journal_dir) as run:
        s3 = run.client("s3")
        s3.create_bucket(Bucket="parts")
        upload = s3.create_multipart_upload(Bucket="parts", Key="k")["UploadId"]
        last = upload_part(s3, upload, 1, LAST_PART)
        late = Background(lambda: upload_part(once(run), upload, 2, LARGE_PART))
        assert held_part.reached.wait(60), "the part never reached its copy"
        if meanwhile == "abort":
            s3.abort_multipart_upload(Bucket="parts", Key="k", UploadId=upload)
        elif meanwhile == "complete":
            complete(s3, "parts", "k", upload, [{"PartNumber": 1, "ETag": last}])
        else:  # a bucket with only uploads in progress is empty to S3 (and to moto)
            s3.delete_bucket(Bucket="parts")
        held_part.release.set()
        code = "NoSuchBucket" if meanwhile == "delete-bucket" else "NoSuchUpload"
        with pytest.raises(ClientError, match=code):
            late.result()
        state = sorted(b["Name"] for b in s3.list_buckets()["Buckets"])
        if meanwhile != "delete-bucket":
            assert uploads(s3, "parts") == []
            # a completion's object has only the parts it had: the late part is not in it
            objects = [o["Key"] for o in s3.list_objects_v2(Bucket="parts").get("Contents", [])]
            assert objects == (["k"] if meanwhile == "complete" else [])
    with Run(journal_dir) as run:
        s3 = run.client("s3")
        assert sorted(b["Name"] for b in s3.list_buckets()["Buckets"]) == state
        if meanwhile == "complete":
            assert read(s3, "parts", "k") == sha(LAST_PART)
            assert uploads(s3, "parts") == []


@pytest.mark.parametrize("step", ["part-copied", "part-applied", "part-journaled"])
def test_kill_9_during_a_large_part_leaves_the_upload_completable(
    tmp_path: Path, step: str
) -> None:
    """Killed once the part's body is copied (nothing stored), once moto stored the part but
    the journal does not have it, or once it is journaled but not answered: after a restart
    the upload is there, with the part whole or without it, and completes."""
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, env={CRASH_AT_ENV: step}).start()
    try:
        s3 = server.client("s3", Config(retries={"total_max_attempts": 1}))
        s3.create_bucket(Bucket="parts")
        upload = s3.create_multipart_upload(Bucket="parts", Key="k")["UploadId"]
        last = upload_part(s3, upload, 2, LAST_PART)  # small: journaled under the lock
        with pytest.raises((EndpointConnectionError, ConnectionClosedError)):
            upload_part(s3, upload, 1, STREAMED_PART)
        server.wait_killed()
    finally:
        server.stop()
    server = ServerProcess(data_dir).start()
    try:
        s3 = server.client("s3")
        assert len(uploads(s3, "parts")) == 1  # listed by the id the replay gave it
        listed = parts_of(s3, "parts", "k", upload)
        if step == "part-journaled":
            assert listed == [(1, etag_of(STREAMED_PART)), (2, last)]
            expected = STREAMED_PART + LAST_PART
        else:
            assert listed == [(2, last)]
            expected = LAST_PART
        complete(s3, "parts", "k", upload, [{"PartNumber": n, "ETag": e} for n, e in listed])
        assert read(s3, "parts", "k") == sha(expected)
    finally:
        server.stop()
