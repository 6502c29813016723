"""The writes that take the journal's lock late: CompleteMultipartUpload joins its parts and
a large PutObject copies its body while other writes go on; a write that changes what they
read meanwhile makes them run again under the lock, so nothing a client was told is lost or
different after a restart.

"Meanwhile" is made certain with events (the join or the copy waits for the test), never
with sleeps.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from local_aws.journal import CRASH_AT_ENV, INLINE_LIMIT
from tests.conftest import ServerProcess
from tests.local_aws.test_journal import Run, isolated_moto  # noqa: F401  (autouse fixture)

MiB = 1 << 20
FIRST_PART = os.urandom(5 * MiB)  # S3's smallest part but the last
LAST_PART = b"the last part"


class Held:
    """Makes the first call of a function wait for the test: ``reached`` is set when it
    got there, and it goes on once ``release`` is set."""

    def __init__(self, real: Callable[..., Any], when: Callable[..., bool] = lambda *a: True):
        self.real, self.when = real, when
        self.reached, self.release = threading.Event(), threading.Event()
        self._taken = threading.Lock()
        self._done = False
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._taken:
            self.calls += 1
            hold = not self._done and self.when(*args, **kwargs)
            self._done = self._done or hold
        if hold:
            self.reached.set()
            if not self.release.wait(60):
                raise TimeoutError("the test never released the held call")
        return self.real(*args, **kwargs)


class Background:
    """A client call on its own thread; ``result()`` gives its answer or raises its error."""

    def __init__(self, call: Callable[[], Any]):
        self._answer: list[Any] = []
        self._error: list[BaseException] = []

        def run() -> None:
            try:
                self._answer.append(call())
            except BaseException as exc:
                self._error.append(exc)

        self._thread = threading.Thread(target=run)
        self._thread.start()

    def result(self) -> Any:
        self._thread.join(60)
        assert not self._thread.is_alive(), "the call never finished"
        if self._error:
            raise self._error[0]
        return self._answer[0]


@pytest.fixture
def held_join(monkeypatch: pytest.MonkeyPatch) -> Iterator[Held]:
    """The first CompleteMultipartUpload's join waits for the test (local_aws's own join,
    file to file, as the server runs it)."""
    from local_aws import s3join, s3stream

    s3stream.install()
    s3join.install()
    held = Held(s3join._join)
    monkeypatch.setattr(s3join, "_join", held)
    yield held
    held.release.set()


def start_upload(s3: Any, bucket: str, key: str) -> tuple[str, list[dict[str, Any]]]:
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    for number, body in ((1, FIRST_PART), (2, LAST_PART)):
        etag = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=body
        )["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    return upload, parts


def complete(s3: Any, bucket: str, key: str, upload: str, parts: list[dict[str, Any]]) -> Any:
    return s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )


def once(run: Run) -> Any:
    """A client that does not retry: a first answer that was wrong is not hidden by a retry."""
    return run.client("s3", config=Config(retries={"total_max_attempts": 1}))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read(s3: Any, bucket: str, key: str) -> str:
    return sha(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def uploads(s3: Any, bucket: str) -> list[str]:
    return [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def test_writes_go_on_while_a_completion_joins_its_parts(tmp_path: Path, held_join: Held) -> None:
    journal_dir = tmp_path / "journal"
    with Run(journal_dir) as run:
        s3 = run.client("s3")
        s3.create_bucket(Bucket="join")
        upload, parts = start_upload(s3, "join", "model.tar.gz")
        other, other_parts = start_upload(s3, "join", "other")
        completion = Background(lambda: complete(once(run), "join", "model.tar.gz", upload, parts))
        assert held_join.reached.wait(60), "the completion never reached its join"
        # each of these would wait for the join if it held the journal's lock
        s3.put_object(Bucket="join", Key="small", Body=b"1")
        s3.put_object(Bucket="join", Key="model.tar.gz.sha256", Body=b"2")
        s3.delete_object(Bucket="join", Key="small")
        complete(s3, "join", "other", other, other_parts)  # a completion of another upload
        s3.abort_multipart_upload(
            Bucket="join",
            Key="x",
            UploadId=s3.create_multipart_upload(Bucket="join", Key="x")["UploadId"],
        )
        held_join.release.set()
        etag = completion.result()["ETag"]
        # joined once each, not again under the lock: nothing it read had changed
        assert held_join.calls == 2
        assert read(s3, "join", "model.tar.gz") == sha(FIRST_PART + LAST_PART)
        assert uploads(s3, "join") == []
        live = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="join")["Contents"])
    assert live == ["model.tar.gz", "model.tar.gz.sha256", "other"]
    with Run(journal_dir) as run:
        s3 = run.client("s3")
        assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket="join")["Contents"]) == live
        assert s3.head_object(Bucket="join", Key="model.tar.gz")["ETag"] == etag
        assert read(s3, "join", "model.tar.gz") == sha(FIRST_PART + LAST_PART)
        assert read(s3, "join", "other") == sha(FIRST_PART + LAST_PART)


def test_a_part_replaced_during_the_join_fails_the_completion_as_if_it_came_first(
    tmp_path: Path, held_join: Held
) -> None:
    journal_dir = tmp_path / "journal"
    with Run(journal_dir) as run:
        s3 = run.client("s3")
        s3.create_bucket(Bucket="race")
        upload, parts = start_upload(s3, "race", "k")
        completion = Background(lambda: complete(once(run), "race", "k", upload, parts))
        assert held_join.reached.wait(60)
        new_last = s3.upload_part(
            Bucket="race", Key="k", UploadId=upload, PartNumber=2, Body=b"another last part"
        )["ETag"]
        held_join.release.set()
        with pytest.raises(ClientError, match="InvalidPart"):
            completion.result()
        assert uploads(s3, "race") == [upload]
        # and the upload is still completable with the part it has now
        complete(s3, "race", "k", upload, [parts[0], {"PartNumber": 2, "ETag": new_last}])
    with Run(journal_dir) as run:
        s3 = run.client("s3")
        assert read(s3, "race", "k") == sha(FIRST_PART + b"another last part")
        assert uploads(s3, "race") == []


def test_a_completion_retried_during_its_join_succeeds_once(
    tmp_path: Path, held_join: Held
) -> None:
    """A client that timed out sends its CompleteMultipartUpload again: the second one
    completes while the first is in its join, and the first then answers as S3 does for
    an upload completed already (the same object), instead of failing or completing twice."""
    journal_dir = tmp_path / "journal"
    with Run(journal_dir) as run:
        s3 = run.client("s3")
        s3.create_bucket(Bucket="again")
        upload, parts = start_upload(s3, "again", "k")
        first = Background(lambda: complete(once(run), "again", "k", upload, parts))
        assert held_join.reached.wait(60)
        second = complete(s3, "again", "k", upload, parts)
        held_join.release.set()
        assert first.result()["ETag"] == second["ETag"]
        assert read(s3, "again", "k") == sha(FIRST_PART + LAST_PART)
        versions = s3.list_object_versions(Bucket="again")["Versions"]
    with Run(journal_dir) as run:
        s3 = run.client("s3")
        assert s3.list_object_versions(Bucket="again")["Versions"] == versions
        assert read(s3, "again", "k") == sha(FIRST_PART + LAST_PART)


def test_an_abort_during_the_join_makes_the_completion_fail(
    tmp_path: Path, held_join: Held
) -> None:
    from local_aws import s3fixes

    s3fixes.install()  # as LocalAWS does at start: moto alone answers 500 for a gone upload
    journal_dir = tmp_path / "journal"
    with Run(journal_dir) as run:
        s3 = run.client("s3")
        s3.create_bucket(Bucket="aborted")
        upload, parts = start_upload(s3, "aborted", "k")
        completion = Background(lambda: complete(once(run), "aborted", "k", upload, parts))
        assert held_join.reached.wait(60)
        s3.abort_multipart_upload(Bucket="aborted", Key="k", UploadId=upload)
        held_join.release.set()
        with pytest.raises(ClientError, match="NoSuchUpload"):  # as after an abort, on S3
            completion.result()
        assert "Contents" not in s3.list_objects_v2(Bucket="aborted")
    with Run(journal_dir) as run:
        s3 = run.client("s3")
        assert "Contents" not in s3.list_objects_v2(Bucket="aborted")
        assert uploads(s3, "aborted") == []


@pytest.mark.parametrize("second", ["large", "small"])
def test_concurrent_puts_of_a_versioned_key_keep_every_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, second: str
) -> None:
    """A large put reads the key's versions without the lock and adds its own once it has
    the lock; another put of the key in between (held there by the test) must not be lost:
    the large put notices and runs again, after it."""
    from local_aws.journal import deferred

    first_body = b"first" + os.urandom(INLINE_LIMIT)
    # the large put, past reading the version list, on its way to take the lock
    held = Held(deferred._hash_before_locking, lambda versions: deferred._pending() is not None)
    monkeypatch.setattr(deferred, "_hash_before_locking", held)
    journal_dir = tmp_path / "journal"
    with Run(journal_dir) as run:
        s3 = run.client("s3")
        s3.create_bucket(Bucket="versions")
        s3.put_bucket_versioning(Bucket="versions", VersioningConfiguration={"Status": "Enabled"})
        first = Background(
            lambda: once(run).put_object(Bucket="versions", Key="k", Body=first_body)
        )
        assert held.reached.wait(60), "the large put never got past its copy"
        second_body = b"second" + (os.urandom(INLINE_LIMIT) if second == "large" else b"")
        second_version = s3.put_object(Bucket="versions", Key="k", Body=second_body)["VersionId"]
        held.release.set()
        first_version = first.result()["VersionId"]
        listed = s3.list_object_versions(Bucket="versions")["Versions"]
        assert [(v["VersionId"], v["IsLatest"]) for v in listed] == [
            (first_version, True),
            (second_version, False),
        ]
        for version, body in ((first_version, first_body), (second_version, second_body)):
            got = s3.get_object(Bucket="versions", Key="k", VersionId=version)["Body"].read()
            assert got == body
    with Run(journal_dir) as run:
        s3 = run.client("s3")
        assert s3.list_object_versions(Bucket="versions")["Versions"] == listed
        assert s3.get_object(Bucket="versions", Key="k")["Body"].read() == first_body


def test_a_conditional_large_put_sees_a_put_made_during_its_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If-None-Match: * checks that the key is absent before the body is copied; a put of
    the key during the copy makes it fail, as it would have after that put (and does in
    the journal's replay)."""
    from moto.s3 import models

    held = Held(models.FakeKey.__init__, lambda self, *a, **kw: kw.get("name") == "k")
    monkeypatch.setattr(models.FakeKey, "__init__", lambda *args, **kwargs: held(*args, **kwargs))
    journal_dir = tmp_path / "journal"
    with Run(journal_dir) as run:
        s3 = run.client("s3")
        s3.create_bucket(Bucket="cond")
        body = os.urandom(INLINE_LIMIT + 1)
        conditional = Background(
            lambda: once(run).put_object(Bucket="cond", Key="k", Body=body, IfNoneMatch="*")
        )
        assert held.reached.wait(60)
        s3.put_object(Bucket="cond", Key="k", Body=b"there first")
        held.release.set()
        with pytest.raises(ClientError, match="PreconditionFailed"):
            conditional.result()
        assert s3.get_object(Bucket="cond", Key="k")["Body"].read() == b"there first"
    monkeypatch.setattr(models.FakeKey, "__init__", held.real)
    with Run(journal_dir) as run:
        assert run.client("s3").get_object(Bucket="cond", Key="k")["Body"].read() == b"there first"


@pytest.mark.parametrize("step", ["applied", "journaled"])
def test_kill_9_during_a_completion_leaves_the_object_whole_or_the_upload_completable(
    tmp_path: Path, step: str
) -> None:
    """Killed once moto has the object but the journal not (as anywhere before, the join
    included: nothing of it is on disk), or once it is journaled but not answered."""
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, env={CRASH_AT_ENV: step}).start()
    try:
        s3 = server.client("s3", Config(retries={"total_max_attempts": 1}))
        s3.create_bucket(Bucket="crash")
        upload, parts = start_upload(s3, "crash", "k")
        with pytest.raises((EndpointConnectionError, ConnectionClosedError)):
            complete(s3, "crash", "k", upload, parts)
        server.wait_killed()
    finally:
        server.stop()
    server = ServerProcess(data_dir).start()
    try:
        s3 = server.client("s3")
        if step == "applied":
            assert "Contents" not in s3.list_objects_v2(Bucket="crash")
            assert len(uploads(s3, "crash")) == 1  # listed by the id the replay gave it
            complete(s3, "crash", "k", upload, parts)  # the id the client has still works
        else:
            assert uploads(s3, "crash") == []
        assert read(s3, "crash", "k") == sha(FIRST_PART + LAST_PART)
    finally:
        server.stop()
