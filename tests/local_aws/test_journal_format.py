"""A data dir written by a newer local_aws is refused with what to do, and left untouched.

The files are made by hand, as a newer version would write them: a snapshot whose header
names a later format, and a journal record of a later format after records of today's.
"""

from __future__ import annotations

import json
import os
import pickle
import zlib
from pathlib import Path

import pytest

from local_aws.journal import JournalError
from local_aws.journal.records import _FORMAT, _FRAME, _MAGIC
from local_aws.snapshot import BODY_LIMIT
from tests.local_aws.test_journal import Run, isolated_moto  # noqa: F401  (autouse fixture)

FUTURE = 99


def files(journal_dir: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(journal_dir)): path.read_bytes()
        for path in sorted(journal_dir.rglob("*"))
        if path.is_file()
    }


def refused(journal_dir: Path, readable: int) -> None:
    before = files(journal_dir)
    message = (
        rf"written by a newer local_aws \(format {FUTURE}\); this one reads up to format "
        rf"{readable}: upgrade local_aws, or start with another --data-dir"
    )
    run = Run(journal_dir)
    with pytest.raises(JournalError, match=message):
        run.__enter__()
    run.journal.close()
    assert files(journal_dir) == before  # nothing dropped, truncated or cleaned up


def test_a_snapshot_of_a_newer_format_is_refused_by_its_format(tmp_path: Path) -> None:
    journal_dir = tmp_path / "journal"
    with Run(journal_dir) as run:
        s3 = run.client("s3")
        s3.create_bucket(Bucket="kept")
        s3.put_object(Bucket="kept", Key="big", Body=os.urandom(BODY_LIMIT + 1))
        assert run.journal.compact()
    (snapshot,) = journal_dir.glob("snapshot-*")
    # a newer local_aws, whatever moto it runs: the moto version must not be what is named
    snapshot.write_bytes(pickle.dumps({"format": FUTURE, "moto": "99.0.0"}) + b"unreadable")
    refused(journal_dir, readable=2)


def test_a_journal_record_of_a_newer_format_is_refused_not_skipped(tmp_path: Path) -> None:
    journal_dir = tmp_path / "journal"
    with Run(journal_dir) as run:
        s3 = run.client("s3")
        s3.create_bucket(Bucket="kept")
        s3.put_object(Bucket="kept", Key="k", Body=b"before")
    meta = json.dumps({"v": FUTURE, "ts": 0, "service": "s3", "method": "PUT"}).encode()
    body = b"a change only the newer version understands"
    with open(journal_dir / "journal.log", "ab") as log:
        log.write(_FRAME.pack(_MAGIC, len(meta), len(body), zlib.crc32(body, zlib.crc32(meta))))
        log.write(meta + body)
    refused(journal_dir, readable=_FORMAT)
