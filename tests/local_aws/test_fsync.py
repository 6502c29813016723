"""The fsync policy: --fsync always makes each write durable before it is answered;
interval does within a second; a bad policy is refused by name."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from local_aws.journal import INLINE_LIMIT, Journal
from tests.local_aws.test_journal import Run, isolated_moto  # noqa: F401  (autouse fixture)


@pytest.fixture
def fsynced(monkeypatch) -> list[str]:
    """The files fsynced, by path. A power loss cannot be staged here, so the test watches
    what reaches the disk instead: os.fsync is wrapped (and still called)."""
    paths: list[str] = []
    lock = threading.Lock()
    real = os.fsync

    def spy(fd: int) -> None:
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            path = "?"
        real(fd)
        with lock:
            paths.append(path)

    monkeypatch.setattr(os, "fsync", spy)
    return paths


def test_always_fsyncs_the_record_and_body_before_answering(tmp_path: Path, fsynced) -> None:
    with Run(tmp_path / "journal", fsync="always") as run:
        s3 = run.client("s3")
        s3.create_bucket(Bucket="durable")
        before = len(fsynced)
        s3.put_object(Bucket="durable", Key="big", Body=b"x" * (INLINE_LIMIT + 1))
        after_put = list(fsynced[before:])
    log = str(tmp_path / "journal" / "journal.log")
    assert log in after_put
    assert any("/blobs/" in path for path in after_put)  # the body, before the record
    assert after_put.index(log) > min(i for i, p in enumerate(after_put) if "/blobs/" in p)


def test_interval_fsyncs_within_the_interval(tmp_path: Path, fsynced) -> None:
    with Run(tmp_path / "journal", fsync="interval", fsync_interval=0.2) as run:
        s3 = run.client("s3")
        s3.create_bucket(Bucket="soon")
        del fsynced[:]
        s3.put_object(Bucket="soon", Key="big", Body=b"x" * (INLINE_LIMIT + 1))
        log = str(tmp_path / "journal" / "journal.log")
        deadline = time.monotonic() + 30
        while not (log in fsynced and any("/blobs/" in path for path in fsynced)):
            assert time.monotonic() < deadline, f"the flusher fsynced only {fsynced}"
            time.sleep(0.05)


def test_a_bad_policy_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fsync must be one of always, interval, never"):
        Journal(tmp_path / "journal", fsync="sometimes")
    result = subprocess.run(
        [sys.executable, "-m", "local_aws", "serve", "--port", "0", "--fsync", "sometimes"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "--fsync: invalid choice: 'sometimes'" in result.stderr
