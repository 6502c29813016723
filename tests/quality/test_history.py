"""The metric history in S3 (local_aws), keyed by dataset and partition date."""

from __future__ import annotations

import datetime as dt

import pytest

from mlops_pipeline.quality.history import HistoryError, MetricHistoryStore


def test_entries_before_a_date_oldest_first_without_failed_days(s3, bucket):
    store = MetricHistoryStore(s3, bucket)
    for day, rows, status in [
        ("2026-01-01", 100, "passed"),
        ("2026-01-03", 300, "warning"),
        ("2026-01-02", 7, "failed"),
        ("2026-01-05", 500, "passed"),  # today itself
        ("2026-01-06", 600, "passed"),  # later than today: a backfill must not see it
    ]:
        store.put("transactions", day, {"row_count": rows}, status=status)
    store.put("predictions", "2026-01-04", {"row_count": 1}, status="passed")

    past = store.before("transactions", "2026-01-05")
    assert [(e.partition, e.metrics["row_count"]) for e in past] == [
        ("2026-01-01", 100),
        ("2026-01-03", 300),
    ]
    assert len(store.before("transactions", "2026-01-05", include_failed=True)) == 3
    assert [e.partition for e in store.before("transactions", "2026-01-05", days=3)] == [
        "2026-01-03"
    ]


def test_a_rerun_replaces_only_its_own_date(s3, bucket):
    store = MetricHistoryStore(s3, bucket)
    store.put("transactions", "2026-01-01", {"row_count": 1}, status="passed")
    store.put("transactions", "2026-01-02", {"row_count": 2}, status="failed", job_name="a")
    store.put("transactions", "2026-01-02", {"row_count": 3}, status="passed", job_name="b")

    assert store.get("transactions", "2026-01-02").metrics == {"row_count": 3}
    assert store.get("transactions", "2026-01-01").metrics == {"row_count": 1}
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(keys) == [
        "quality/history/transactions/dt=2026-01-01.json",
        "quality/history/transactions/dt=2026-01-02.json",
    ]


def test_entries_record_when_and_which_job(s3, bucket):
    store = MetricHistoryStore(s3, bucket, prefix="dq/history")
    now = dt.datetime(2026, 1, 6, 3, 0, tzinfo=dt.UTC)
    store.put(
        "t", "2026-01-05T00:00:00+00:00", {"row_count": 1}, status="passed", job_name="j", now=now
    )
    entry = store.get("t", "2026-01-05")
    assert (entry.partition, entry.job_name, entry.recorded_at) == (
        "2026-01-05",
        "j",
        "2026-01-06T03:00:00+00:00",
    )
    assert store.uri("t", "2026-01-05") == f"s3://{bucket}/dq/history/t/dt=2026-01-05.json"


def test_a_malformed_entry_names_the_object_and_the_fix(s3, bucket):
    s3.put_object(Bucket=bucket, Key="quality/history/t/dt=2026-01-01.json", Body=b"{not json")
    with pytest.raises(HistoryError, match=r"dt=2026-01-01.json is malformed .* rerun"):
        MetricHistoryStore(s3, bucket).before("t", "2026-01-02")


def test_partition_must_be_a_date(s3, bucket):
    with pytest.raises(ValueError, match="partition 'latest' is not a date"):
        MetricHistoryStore(s3, bucket).key("t", "latest")
