"""Log events live in files of the data dir, and read back as moto would answer.

A real training job writes its lines through local_aws's own LogStream writer; they read
back page by page (GetLogEvents both ways, FilterLogEvents as ``aws logs tail`` pages it)
after the job and after a kill -9 restart, with and without a snapshot in between. The
answers of a server with moto's Logs unpatched are the reference for the paging edge
cases: the same requests, the same pages and tokens.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerProcess, wait_for
from tests.jobkit import training_request, upload_source

GROUP = "/aws/sagemaker/TrainingJobs"
LINES = 12_000  # several PutLogEvents batches, dozens of index blocks
#: A server whose moto keeps log events in its own lists.
_UNPATCHED = (
    "-c",
    "import sys, local_aws.logpatch as p; p.install = lambda d: None; "
    "p.collect_garbage = lambda: 0; from local_aws.cli import main; sys.exit(main())",
)

NOISY = f"""
import sys
for i in range({LINES}):
    print(f"step {{i}} loss={{1 / (i + 1):.6f}}")
sys.stdout.flush()
"""


def _forward(logs: Any, stream: str, limit: int) -> list[str]:
    """Every message of a stream, from the head, as the provider's log reader pages."""
    messages: list[str] = []
    token = None
    while True:
        kwargs = {"nextToken": token} if token else {}
        page = logs.get_log_events(
            logGroupName=GROUP, logStreamName=stream, startFromHead=True, limit=limit, **kwargs
        )
        messages += [event["message"] for event in page["events"]]
        if page["nextForwardToken"] == token:  # AWS: the same token back means the end
            return messages
        token = page["nextForwardToken"]


def _backward(logs: Any, stream: str, limit: int) -> list[str]:
    pages: list[list[str]] = []
    token = None
    while True:
        kwargs = {"nextToken": token} if token else {}
        page = logs.get_log_events(logGroupName=GROUP, logStreamName=stream, limit=limit, **kwargs)
        if not page["events"]:
            return [message for page in reversed(pages) for message in page]
        pages.append([event["message"] for event in page["events"]])
        token = page["nextBackwardToken"]


def _filtered(logs: Any, **kwargs: Any) -> list[tuple[str, str, str]]:
    """(stream, eventId, message) of every event FilterLogEvents pages through."""
    return [
        (event["logStreamName"], event["eventId"], event["message"])
        for page in logs.get_paginator("filter_log_events").paginate(logGroupName=GROUP, **kwargs)
        for event in page["events"]
    ]


def _check_job_logs(logs: Any, job: str) -> None:
    streams = logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix=f"{job}/")
    (stream,) = streams["logStreams"]
    name = stream["logStreamName"]
    messages = _forward(logs, name, limit=1000)
    steps = [m for m in messages if m.startswith("step ")]
    assert steps == [f"step {i} loss={1 / (i + 1):.6f}" for i in range(LINES)]
    assert _backward(logs, name, limit=777) == messages
    events = logs.get_log_events(logGroupName=GROUP, logStreamName=name, startFromHead=True)
    assert stream["firstEventTimestamp"] == events["events"][0]["timestamp"]
    assert stream["lastEventTimestamp"] >= stream["firstEventTimestamp"]
    assert stream["storedBytes"] >= sum(len(m) for m in steps)
    filtered = _filtered(logs, logStreamNames=[name], PaginationConfig={"PageSize": 2500})
    assert [message for _stream, _id, message in filtered] == messages
    assert len({event_id for _stream, event_id, _message in filtered}) == len(messages)
    tail = _filtered(logs, filterPattern=f'"step {LINES - 1} "')
    assert [message for *_, message in tail] == [steps[-1]]


@pytest.mark.parametrize("compact_every", ["0", "3"], ids=["replayed", "snapshotted"])
def test_a_jobs_log_reads_page_by_page_after_the_job_and_after_a_restart(
    tmp_path: Path, compact_every: str
) -> None:
    server = ServerProcess(tmp_path / "aws", args=("--compact-every", compact_every)).start()
    try:
        s3, sm = server.client("s3"), server.client("sagemaker")
        s3.create_bucket(Bucket="noisy")
        s3.put_object(Bucket="noisy", Key="data/x.csv", Body=b"1,2\n")
        source = upload_source(s3, "noisy", "code/noisy.tar.gz", {"train.py": NOISY})
        sm.create_training_job(**training_request("noisy", "noisy", source))
        job = wait_for(
            lambda: sm.describe_training_job(TrainingJobName="noisy"), "TrainingJobStatus"
        )
        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
        _check_job_logs(server.client("logs"), "noisy")
        server.stop(signal.SIGKILL)
        server.start()
        _check_job_logs(server.client("logs"), "noisy")
        # the files the replay wrote again replaced the old ones: one file per stream
        assert len(list((tmp_path / "aws" / "log-events").glob("*.events"))) == len(
            server.client("logs").describe_log_streams(logGroupName=GROUP)["logStreams"]
        )
    finally:
        server.stop()


def _write_edge_cases(logs: Any, now: int) -> None:
    """Two streams with equal timestamps across batches, and a batch older than the
    stream's newest event (which the file must merge, not append)."""
    logs.create_log_group(logGroupName=GROUP)
    for stream in ("a", "b"):
        logs.create_log_stream(logGroupName=GROUP, logStreamName=stream)
    batches = [
        ("a", [(now + i // 3, f"a{i}") for i in range(0, 900)]),  # ties, many index blocks
        ("b", [(now + i, f"b{i}") for i in range(0, 600, 2)]),
        ("a", [(now + 100 + i, f"a-late{i}") for i in range(400)]),  # older than a's newest
        ("b", [(now + 299, "b-tie")]),  # ties with a's events in a merged FilterLogEvents
        ("a", [(now + 5000, "a-last")]),
    ]
    for stream, events in batches:
        logs.put_log_events(
            logGroupName=GROUP,
            logStreamName=stream,
            logEvents=[{"timestamp": ts, "message": message} for ts, message in events],
        )


def _seen(page: dict[str, Any]) -> list[tuple[int, str]]:
    # not ingestionTime: each server's own clock
    return [(event["timestamp"], event["message"]) for event in page["events"]]


def _answers(logs: Any) -> list[Any]:
    """The pages a client sees for a set of GetLogEvents and FilterLogEvents requests."""
    first = logs.get_log_events(logGroupName=GROUP, logStreamName="a", startFromHead=True)
    now = first["events"][0]["timestamp"]
    answers: list[Any] = []
    for stream in ("a", "b"):
        for kwargs in (
            {"startFromHead": True, "limit": 100},
            {"limit": 33},
            {"startFromHead": True, "startTime": now + 150, "endTime": now + 290, "limit": 50},
            {"startTime": now + 299, "limit": 7},
            {"endTime": now + 10, "startFromHead": True},
        ):
            page = logs.get_log_events(logGroupName=GROUP, logStreamName=stream, **kwargs)
            answers.append((_seen(page), page["nextForwardToken"], page["nextBackwardToken"]))
            for token in (page["nextForwardToken"], page["nextBackwardToken"]):
                more = logs.get_log_events(
                    logGroupName=GROUP, logStreamName=stream, nextToken=token, **kwargs
                )
                answers.append((_seen(more), more["nextForwardToken"], more["nextBackwardToken"]))
    for kwargs in (
        {},
        {"interleaved": True},
        {"startTime": now + 200, "endTime": now + 300, "interleaved": True},
        {"filterPattern": "late"},
        {"logStreamNames": ["b"]},
    ):
        pages = logs.get_paginator("filter_log_events").paginate(
            logGroupName=GROUP, PaginationConfig={"PageSize": 97}, **kwargs
        )
        # event ids are the server's own: compared as the order they come in
        events = [event for page in pages for event in page["events"]]
        ids = {event["eventId"]: n for n, event in enumerate(events)}
        answers.append(
            [(e["logStreamName"], e["message"], e["timestamp"], ids[e["eventId"]]) for e in events]
        )
    streams = logs.describe_log_streams(logGroupName=GROUP)["logStreams"]
    answers.append(
        [
            (
                s["logStreamName"],
                s["firstEventTimestamp"],
                s["lastEventTimestamp"],
                s["storedBytes"],
            )
            for s in streams
        ]
    )
    return answers


def test_pages_tokens_and_order_are_motos_own_and_survive_a_snapshot(tmp_path: Path) -> None:
    now = int(time.time() * 1000) - 600_000
    reference = ServerProcess(tmp_path / "moto", launcher=_UNPATCHED).start()
    try:
        _write_edge_cases(reference.client("logs"), now)
        expected = _answers(reference.client("logs"))
    finally:
        reference.stop()
    server = ServerProcess(tmp_path / "aws", args=("--compact-every", "2")).start()
    try:
        _write_edge_cases(server.client("logs"), now)
        assert _answers(server.client("logs")) == expected
        server.stop(signal.SIGKILL)
        server.start()
        assert _answers(server.client("logs")) == expected
    finally:
        server.stop()


def test_an_invalid_token_gets_the_answers_moto_gives(tmp_path: Path) -> None:
    from botocore.exceptions import ClientError

    server = ServerProcess(tmp_path / "aws").start()
    try:
        logs = server.client("logs")
        logs.create_log_group(logGroupName=GROUP)
        logs.create_log_stream(logGroupName=GROUP, logStreamName="s")
        with pytest.raises(ClientError) as caught:
            logs.get_log_events(logGroupName=GROUP, logStreamName="s", nextToken="x/y")
        assert caught.value.response["Error"]["Code"] == "InvalidParameterException"
        page = logs.filter_log_events(logGroupName=GROUP, nextToken="not-a-token")
        assert page["events"] == [] and "nextToken" not in page
    finally:
        server.stop()
