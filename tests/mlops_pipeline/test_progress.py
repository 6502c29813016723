"""Progress in the task log: the provider's per-poll status line only when it changes, and
a job's CloudWatch Logs streams read incrementally (real moto Logs in local_aws)."""

from __future__ import annotations

import logging
import time
import uuid

from airflow.providers.amazon.aws.utils.waiter_with_logging import _LazyStatusFormatter

from mlops_pipeline import progress


def test_the_waiters_status_line_is_logged_only_when_it_changes(caplog):
    waiter_log = logging.getLogger(progress.WAITER_LOGGER)
    only_changes = progress.OnlyChanges("Training job tj")
    waiter_log.addFilter(only_changes)
    queries = ["TrainingJobStatus", "SecondaryStatus"]
    polls = [("InProgress", "Starting")] * 3 + [("InProgress", "Training")] * 50
    try:
        with caplog.at_level(logging.INFO, logger=progress.WAITER_LOGGER):
            for status, secondary in polls:
                response = {"TrainingJobStatus": status, "SecondaryStatus": secondary}
                # the provider's own line, as async_wait logs it on every poll
                waiter_log.info(
                    "%s: %s", "Training job tj", _LazyStatusFormatter(queries, response)
                )
            waiter_log.info("%s: %s", "Training job other", "InProgress")  # another job's
            waiter_log.info("%s: %s", "Training job other", "InProgress")
    finally:
        waiter_log.removeFilter(only_changes)
    assert caplog.messages == [
        "Training job tj: InProgress - Starting",
        "Training job tj: InProgress - Training",
        "Training job other: InProgress",
        "Training job other: InProgress",
    ]


def test_status_changes():
    changes = progress.StatusChanges()
    assert [changes.line(s) for s in ("Creating", "Creating", "Updating", "Creating")] == [
        "Creating",
        None,
        "Updating",
        "Creating",
    ]


def test_the_follower_returns_each_line_once_as_streams_grow(logs):
    job = f"job-{uuid.uuid4().hex[:8]}"
    group = progress.log_group("Processing")
    follower = progress.LogFollower.for_job("Processing", job)
    assert follower.poll(logs) == []  # no stream yet (the group may not exist either)

    try:
        logs.create_log_group(logGroupName=group)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    stream = f"{job}/algo-1-1"
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    logs.create_log_stream(logGroupName=group, logStreamName=f"{job}x/algo-1-1")  # not ours

    def put(stream: str, *lines: str) -> None:
        events = [
            {"timestamp": int(time.time() * 1000) + i, "message": m} for i, m in enumerate(lines)
        ]
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)

    put(stream, "one", "two")
    put(f"{job}x/algo-1-1", "someone else's")
    assert follower.poll(logs) == ["one", "two"]
    assert follower.poll(logs) == []
    put(stream, "three")
    assert follower.poll(logs) == ["three"]


def test_a_tuning_jobs_lines_are_its_childrens_labelled(logs):
    job = f"tune-{uuid.uuid4().hex[:8]}"
    group = progress.log_group("Tuning")
    try:
        logs.create_log_group(logGroupName=group)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    for child in ("001-aaaa", "002-bbbb"):
        stream = f"{job}-{child}/algo-1-1"
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        logs.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[{"timestamp": int(time.time() * 1000), "message": f"auc of {child}"}],
        )
    lines = progress.LogFollower.for_job("Tuning", job).poll(logs)
    assert sorted(lines) == [
        "[001-aaaa/algo-1-1] auc of 001-aaaa",
        "[002-bbbb/algo-1-1] auc of 002-bbbb",
    ]


def test_where_each_kind_logs():
    follower = progress.LogFollower.for_job("endpoint", "fraud-staging")
    assert (follower.group, follower.prefix, follower.labelled) == (
        "/aws/sagemaker/Endpoints/fraud-staging",
        "",
        True,
    )
    follower = progress.LogFollower.for_job("Transform", "bi-transform-1")
    assert (follower.group, follower.prefix, follower.labelled) == (
        "/aws/sagemaker/TransformJobs",
        "bi-transform-1/",
        False,
    )
