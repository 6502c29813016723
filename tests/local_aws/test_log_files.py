"""The event files of deleted log streams and groups go when they are deleted, not at the
next restart; a file a snapshot on disk still refers to stays until a newer snapshot is in
place, so a kill -9 in between restarts with every event of the streams that are left."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from tests.conftest import ServerProcess
from tests.local_aws.test_compaction import wait_until


def event_files(data_dir: Path) -> set[str]:
    return {path.name for path in (data_dir / "log-events").glob("*.events")}


def snapshots(data_dir: Path) -> set[str]:
    return {path.name for path in (data_dir / "moto").glob("snapshot-*")}


def put(logs: Any, group: str, stream: str, *messages: str) -> None:
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": now, "message": m} for m in messages],
    )


def messages(logs: Any, group: str, stream: str) -> list[str]:
    page = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)
    return [event["message"] for event in page["events"]]


def test_deleted_streams_and_groups_take_their_event_files_with_them(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, args=("--compact-every", "0")).start()  # no snapshot
    try:
        logs = server.client("logs")
        for group, stream in (("g", "a"), ("g", "b"), ("h", "c"), ("h", "d")):
            if stream in ("a", "c"):
                logs.create_log_group(logGroupName=group)
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
            put(logs, group, stream, f"{stream} 1", f"{stream} 2")
        assert len(event_files(data_dir)) == 4
        logs.delete_log_stream(logGroupName="g", logStreamName="a")
        assert len(event_files(data_dir)) == 3
        logs.delete_log_group(logGroupName="h")
        assert len(event_files(data_dir)) == 1
        assert messages(logs, "g", "b") == ["b 1", "b 2"]
    finally:
        server.stop(signal.SIGKILL)
    server = ServerProcess(data_dir).start()
    try:
        logs = server.client("logs")
        assert [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]] == ["g"]
        assert messages(logs, "g", "b") == ["b 1", "b 2"]
    finally:
        server.stop()


def test_a_file_the_snapshot_on_disk_refers_to_stays_until_a_newer_one(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, args=("--compact-every", "4")).start()
    try:
        logs = server.client("logs")
        logs.create_log_group(logGroupName="g")
        for stream in ("kept", "deleted"):
            logs.create_log_stream(logGroupName="g", logStreamName=stream)
            put(logs, "g", stream, f"{stream} 1")
        wait_until(lambda: len(snapshots(data_dir)) == 1, "a compaction")
        first = snapshots(data_dir)
        logs.delete_log_stream(logGroupName="g", logStreamName="deleted")
        assert len(event_files(data_dir)) == 2  # the snapshot on disk still has it
    finally:
        server.stop(signal.SIGKILL)
    # the snapshot, then the deletion replayed: the file was there to load
    server = ServerProcess(data_dir, args=("--compact-every", "4")).start()
    try:
        logs = server.client("logs")
        streams = logs.describe_log_streams(logGroupName="g")["logStreams"]
        assert [s["logStreamName"] for s in streams] == ["kept"]
        assert messages(logs, "g", "kept") == ["kept 1"]
        for i in range(4):  # records enough for the next compaction
            put(logs, "g", "kept", f"kept {i + 2}")
        wait_until(lambda: snapshots(data_dir) not in (set(), first), "the next compaction")
        wait_until(lambda: len(event_files(data_dir)) == 1, "the deleted stream's file to go")
    finally:
        server.stop(signal.SIGKILL)
    server = ServerProcess(data_dir).start()
    try:
        logs = server.client("logs")
        assert messages(logs, "g", "kept") == [f"kept {i + 1}" for i in range(5)]
    finally:
        server.stop()
