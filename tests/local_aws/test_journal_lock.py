"""One lock for every write, but a large PutObject's body is copied outside it."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from local_aws.journal import INLINE_LIMIT
from tests.local_aws.test_journal import Run, isolated_moto  # noqa: F401  (autouse fixture)


def test_small_writes_go_on_while_a_large_put_is_applied(tmp_path: Path, monkeypatch) -> None:
    from moto.s3 import models

    real_init = models.FakeKey.__init__
    copying, release = threading.Event(), threading.Event()
    copies: list[bytes] = []

    def slow_copy(self: Any, *args: Any, **kwargs: Any) -> None:
        # moto copies a body into its object here; for a gigabyte that takes seconds.
        # Made to wait for the test instead, so that "meanwhile" is certain, not timed.
        if kwargs.get("name") == "large":
            copies.append(b"")
            copying.set()
            if not release.wait(60):
                raise TimeoutError("the test never released the large put")
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(models.FakeKey, "__init__", slow_copy)
    journal_dir = tmp_path / "journal"
    large = os.urandom(INLINE_LIMIT + 1024)
    with Run(journal_dir) as run:
        s3 = run.client("s3")
        s3.create_bucket(Bucket="lock")
        failures: list[BaseException] = []

        def put_large() -> None:
            try:
                run.client("s3").put_object(Bucket="lock", Key="large", Body=large)
            except BaseException as exc:
                failures.append(exc)

        uploader = threading.Thread(target=put_large)
        uploader.start()
        try:
            assert copying.wait(60), "the large put never reached moto"
            # all of these would wait for the large put's copy if it held the lock
            for i in range(5):
                s3.put_object(Bucket="lock", Key=f"small-{i}", Body=b"1")
            s3.delete_object(Bucket="lock", Key="large")  # nothing there yet
            s3.delete_object(Bucket="lock", Key="small-4")
        finally:
            release.set()
            uploader.join(60)
        assert failures == []
        # copied once, not again under the lock: the writes meanwhile were to other keys
        # (the delete of "large" came before it existed, and changed nothing)
        assert len(copies) == 1
        live = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="lock")["Contents"])
    # applied after the delete, so the large object exists, and the journal agrees
    assert live == ["large", "small-0", "small-1", "small-2", "small-3"]
    monkeypatch.setattr(models.FakeKey, "__init__", real_init)
    with Run(journal_dir) as run:
        s3 = run.client("s3")
        assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket="lock")["Contents"]) == live
        assert s3.get_object(Bucket="lock", Key="large")["Body"].read() == large
