"""EventFile against a plain sorted list: the order, ranges and snapshots moto's list gives."""

from __future__ import annotations

import pickle
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_aws.logevents import BLOCK, EventFile


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[Path]:
    saved, EventFile.directory = EventFile.directory, tmp_path
    try:
        yield tmp_path
    finally:
        EventFile.directory = saved


def _batches(seed: int) -> list[list[tuple[int, str]]]:
    """Chronological batches, some of them older than what came before, many ties."""
    rng = random.Random(seed)
    batches, clock, n = [], 1_000, 0
    for _ in range(40):
        start = clock - rng.choice([0, 0, 0, 3, 50, 900])  # now and then a late batch
        size = rng.randint(1, 3 * BLOCK)
        stamps = sorted(start + rng.randint(0, size // 2) for _ in range(size))
        batches.append([(ts, f"m{n + i}") for i, ts in enumerate(stamps)])
        n += size
        clock = max(clock, stamps[-1])
    return batches


def _write(events: EventFile, batches: list[list[tuple[int, str]]]) -> list[tuple[int, str]]:
    """Append the batches; return what moto's list would hold, stably sorted."""
    reference: list[tuple[int, str]] = []
    for batch in batches:
        events.append([{"timestamp": ts, "message": m} for ts, m in batch], ingestion_time=7)
        reference += batch
    return sorted(reference, key=lambda event: event[0])


def _got(events: EventFile, first: int, stop: int) -> list[tuple[int, str]]:
    return [(e.timestamp, e.message) for e in events.read(first, stop)]


@pytest.mark.parametrize("seed", range(5))
def test_order_and_time_ranges_are_a_stable_sorts(directory: Path, seed: int) -> None:
    events = EventFile()
    reference = _write(events, _batches(seed))
    assert len(events) == len(reference)
    assert _got(events, 0, len(events)) == reference
    assert events.first_ts == reference[0][0] and events.last_ts == reference[-1][0]
    rng = random.Random(seed)
    for _ in range(50):
        start, end = sorted(rng.randint(900, reference[-1][0] + 10) for _ in range(2))
        first, stop = events.index_range(start, end)
        assert _got(events, first, stop) == [e for e in reference if start <= e[0] <= end]
    a, b = sorted(rng.randint(0, len(reference)) for _ in range(2))
    assert _got(events, a, b) == reference[a:b]
    ids = [e.event_id for e in events]
    assert len(set(ids)) == len(ids)


def test_a_snapshot_cuts_back_what_came_after_it(directory: Path) -> None:
    events = EventFile()
    batches = _batches(11)
    reference = _write(events, batches[:20])
    state = pickle.dumps(events)
    _write(events, [[(10**9, "after the snapshot")]])  # appended to the same file
    restored = pickle.loads(state)
    assert _got(restored, 0, len(restored)) == reference
    more = _write(restored, batches[20:])
    assert _got(restored, 0, len(restored)) == sorted(reference + more, key=lambda e: e[0])
    # ids after a restore continue past the snapshot's
    assert len({e.event_id for e in restored}) == len(restored)
