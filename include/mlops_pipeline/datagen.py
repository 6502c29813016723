"""Synthetic daily card transactions with a fraud label, written as date partitions to S3.

Each day is ``s3://<bucket>/raw/transactions/dt=YYYY-MM-DD/part-00000.csv`` (CSV with a
header, the shared schema in :data:`COLUMNS`) and, written last, an empty ``_SUCCESS``
marker that says the day is complete (what batch_inference waits for). The data are a pure function of
``(seed, day, rows, fraud_rate, drift)``: the same arguments give the same bytes, on any
machine, whatever else was generated before.

Fraud is drawn first (about ``fraud_rate`` of the rows) and the features are drawn given
the label, so the rate is controlled and the signal is known: fraud happens more at
night, online and at ATMs, far from home and abroad, in bursts (high velocity counts), on
new cards, at electronics/online-retail/travel merchants, and for larger amounts. A
quarter of the fraud is "camouflaged" (drawn like legitimate traffic), so no model is
perfect.

Knobs for tests and the demo:

- :class:`Drift` shifts amounts up, the channel mix toward online and the fraud rate up,
  scaled by one ``strength``;
- :class:`Corruption` spoils a partition the way real feeds break (see :data:`CORRUPTIONS`).
  Corruptions draw from their own random stream, so a corrupted day equals the clean day
  except where the corruption claims to differ.

Days are generated in chunks of :data:`CHUNK_ROWS` and uploaded as a multipart stream, so
memory stays flat however many rows a day holds.

CLI (the endpoint comes from ``AWS_ENDPOINT_URL`` when set, e.g. local_aws)::

    python -m mlops_pipeline.datagen --bucket B --start 2026-01-01 --days 7 --rows 5000 \\
        [--seed 0] [--drift 0.5] [--corrupt nulls:amount] [--corrupt duplicate_ids:0.02]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

COLUMNS: tuple[str, ...] = (
    "transaction_id",
    "event_time",
    "card_id",
    "amount",
    "merchant_category",
    "channel",
    "country",
    "hour",
    "card_age_days",
    "txn_count_1h",
    "txn_count_24h",
    "distance_from_home_km",
    "is_fraud",
)
MERCHANT_CATEGORIES: tuple[str, ...] = (
    "grocery",
    "restaurants",
    "gas",
    "travel",
    "electronics",
    "online_retail",
    "entertainment",
    "health",
)
CHANNELS: tuple[str, ...] = ("pos", "online", "atm", "contactless")
HOME_COUNTRIES: tuple[str, ...] = ("DE", "FR", "NL", "BE", "ES", "IT", "AT", "PL", "SE", "IE")
FOREIGN_COUNTRIES: tuple[str, ...] = (
    *HOME_COUNTRIES,
    "US",
    "GB",
    "CH",
    "PT",
    "DK",
    "TR",
    "AE",
    "TH",
    "BR",
    "MX",
)
RAW_PREFIX = "raw/transactions"
SUCCESS_MARKER = "_SUCCESS"
# Part of the data's identity: each chunk has its own random stream, so changing this
# changes the generated rows.
CHUNK_ROWS = 100_000
DEFAULT_FRAUD_RATE = 0.02
DEFAULT_CARDS = 10_000
# Cards are renewed on a cycle; card_age_days counts days since the last renewal, so any
# date has the same share of new cards.
CARD_CYCLE_DAYS = 1500
NEW_CARD_DAYS = 30
CAMOUFLAGED_FRAUD = 0.25
MULTIPART_PART_BYTES = 8 * 1024 * 1024  # S3 wants parts of at least 5 MiB (but the last)

# Probabilities in the order of MERCHANT_CATEGORIES / CHANNELS.
_LEGIT_MERCHANTS = (0.24, 0.17, 0.11, 0.05, 0.06, 0.17, 0.11, 0.09)
_FRAUD_MERCHANTS = (0.05, 0.04, 0.06, 0.17, 0.30, 0.26, 0.08, 0.04)
_MEDIAN_AMOUNT = (35.0, 28.0, 50.0, 220.0, 180.0, 55.0, 40.0, 45.0)
_LEGIT_CHANNELS = (0.42, 0.20, 0.05, 0.33)
_FRAUD_CHANNELS = (0.12, 0.55, 0.25, 0.08)
_DRIFTED_CHANNELS = (0.20, 0.55, 0.05, 0.20)  # where drift moves legitimate traffic
# fmt: off
_LEGIT_HOURS = (1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 4, 5, 5.5, 6,
                7, 6.5, 6, 6, 6.5, 7.5, 8, 7.5, 6, 4.5, 3, 1.8)
_FRAUD_HOURS = (4, 4.5, 5, 5, 4.5, 3.5, 2.5, 2.5, 3, 3, 3, 3,
                3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3.5, 4)
# fmt: on

# Separate random streams per purpose, so one knob never shifts another's draws.
_CARDS, _ROWS, _CORRUPT = 1, 2, 3


class DatagenError(ValueError):
    """Bad generator arguments; the message names the argument and the fix."""


@dataclass(frozen=True)
class Drift:
    """A shift of the data away from the training distribution, scaled by ``strength``.

    At strength 1: amounts x1.5 (log-scale shift 0.4), half of legitimate traffic follows an
    online-heavy channel mix, and the fraud rate doubles. 0 is no drift.
    """

    strength: float = 0.0
    amount: bool = True
    channels: bool = True
    fraud_rate: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.strength <= 5:
            raise DatagenError(f"drift strength must be between 0 and 5, got {self.strength}")

    @property
    def amount_log_shift(self) -> float:
        return 0.4 * self.strength if self.amount else 0.0

    @property
    def channel_mix(self) -> float:
        return min(1.0, 0.5 * self.strength) if self.channels else 0.0

    @property
    def fraud_rate_factor(self) -> float:
        return 1.0 + self.strength if self.fraud_rate else 1.0


# kind -> (what it does, spec syntax)
CORRUPTIONS: dict[str, tuple[str, str]] = {
    "nulls": ("blank values in a column", "nulls:COLUMN[:FRACTION]"),
    "negative_amounts": ("amounts made negative", "negative_amounts[:FRACTION]"),
    "unknown_categories": (
        "values outside the allowed set in merchant_category or channel",
        "unknown_categories[:COLUMN[:FRACTION]]",
    ),
    "duplicate_ids": (
        "rows replaced by copies of other rows (same transaction_id)",
        "duplicate_ids[:FRACTION]",
    ),
    "missing_column": ("a column left out of the file", "missing_column:COLUMN"),
    "extra_column": ("a column the schema does not have", "extra_column[:NAME]"),
    "wrong_types": ("text in a numeric column", "wrong_types[:COLUMN[:FRACTION]]"),
    "unparsable": ("a file that is not UTF-8 CSV at all", "unparsable"),
    "empty": ("a partition with a header and no rows", "empty"),
}
NUMERIC_COLUMNS = (
    "amount",
    "hour",
    "card_age_days",
    "txn_count_1h",
    "txn_count_24h",
    "distance_from_home_km",
    "is_fraud",
)
UNKNOWN_VALUES = {"merchant_category": "crypto_exchange", "channel": "telepathy"}
WRONG_TYPE_VALUES = ("n/a", "12,50 EUR", "abc")


@dataclass(frozen=True)
class Corruption:
    kind: str
    column: str | None = None
    fraction: float = 0.05

    def __post_init__(self) -> None:
        if self.kind not in CORRUPTIONS:
            raise DatagenError(
                f"unknown corruption {self.kind!r}: use one of "
                + ", ".join(spec for _, spec in CORRUPTIONS.values())
            )
        if not 0 < self.fraction <= 1:
            raise DatagenError(
                f"corruption {self.kind}: fraction must be in (0, 1], got {self.fraction}"
            )
        column = self.column
        if self.kind in ("nulls", "missing_column"):
            if column not in COLUMNS:
                raise DatagenError(
                    f"corruption {self.kind} needs a schema column, got {column!r}: use one of "
                    + ", ".join(COLUMNS)
                )
        elif self.kind == "unknown_categories" and column not in UNKNOWN_VALUES:
            raise DatagenError(
                f"corruption unknown_categories applies to merchant_category or channel, "
                f"got {column!r}"
            )
        elif self.kind == "wrong_types" and column not in NUMERIC_COLUMNS:
            raise DatagenError(
                f"corruption wrong_types applies to a numeric column ({', '.join(NUMERIC_COLUMNS)})"
                f", got {column!r}"
            )
        elif self.kind == "extra_column" and column in COLUMNS:
            raise DatagenError(f"corruption extra_column: {column!r} is already a schema column")

    @classmethod
    def parse(cls, spec: str) -> Corruption:
        """``kind[:arg[:fraction]]``, e.g. ``nulls:amount:0.2`` or ``duplicate_ids:0.01``."""
        kind, *args = spec.strip().split(":")
        if kind not in CORRUPTIONS:
            raise DatagenError(
                f"unknown corruption {spec!r}: use one of "
                + ", ".join(syntax for _, syntax in CORRUPTIONS.values())
            )
        syntax = CORRUPTIONS[kind][1]
        takes_column = "COLUMN" in syntax or "NAME" in syntax
        takes_fraction = "FRACTION" in syntax
        column: str | None = None
        fraction: float | None = None
        if takes_column and args and not _is_number(args[0]):
            column = args.pop(0)
        if takes_fraction and args:
            if not _is_number(args[0]):
                raise DatagenError(f"corruption {spec!r}: {args[0]!r} is not a fraction ({syntax})")
            fraction = float(args.pop(0))
        if args:
            raise DatagenError(f"corruption {spec!r} has extra parts: the syntax is {syntax}")
        defaults = {
            "unknown_categories": "merchant_category",
            "wrong_types": "amount",
            "extra_column": "debug_note",
        }
        if column is None:
            column = defaults.get(kind)
        return cls(kind, column, 0.05 if fraction is None else fraction)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class PartitionInfo:
    day: dt.date
    uri: str
    rows: int
    fraud: int
    bytes: int

    @property
    def fraud_rate(self) -> float:
        return self.fraud / self.rows if self.rows else 0.0


def partition_key(day: dt.date, prefix: str = RAW_PREFIX) -> str:
    return f"{prefix.strip('/')}/dt={day:%Y-%m-%d}/part-00000.csv"


def marker_key(day: dt.date, prefix: str = RAW_PREFIX) -> str:
    return f"{prefix.strip('/')}/dt={day:%Y-%m-%d}/{SUCCESS_MARKER}"


# -- generation --------------------------------------------------------------------------------


def _rng(seed: int, *stream: int) -> np.random.Generator:
    import numpy as np

    return np.random.default_rng(np.random.SeedSequence([seed, *stream]))


def _probabilities(weights: Sequence[float]) -> np.ndarray:
    import numpy as np

    array = np.asarray(weights, dtype=float)
    return array / array.sum()


@dataclass(frozen=True)
class _Cards:
    ids: np.ndarray
    phase: np.ndarray  # day ordinal (mod the cycle) of the last renewal
    home: np.ndarray  # index into HOME_COUNTRIES
    activity: np.ndarray  # relative spending frequency, sums to 1


def _cards(seed: int, count: int) -> _Cards:
    import numpy as np

    rng = _rng(seed, _CARDS, count)
    home_weights = _probabilities((30, 20, 10, 8, 9, 9, 5, 4, 3, 2))
    activity = rng.lognormal(0.0, 0.8, count)
    return _Cards(
        ids=np.array([f"card-{i:06d}" for i in range(count)], dtype=object),
        phase=rng.integers(0, CARD_CYCLE_DAYS, count),
        home=rng.choice(len(HOME_COUNTRIES), count, p=home_weights),
        activity=activity / activity.sum(),
    )


def _check(day: dt.date, rows: int, seed: int, fraud_rate: float) -> None:
    if not isinstance(day, dt.date):
        raise DatagenError(f"day must be a datetime.date, got {day!r}")
    if rows < 0:
        raise DatagenError(f"rows must be >= 0, got {rows}")
    if seed < 0:
        raise DatagenError(f"seed must be >= 0, got {seed}")
    if not 0 < fraud_rate < 0.5:
        raise DatagenError(f"fraud_rate must be in (0, 0.5), got {fraud_rate}")


def iter_day(
    day: dt.date,
    rows: int,
    *,
    seed: int = 0,
    fraud_rate: float = DEFAULT_FRAUD_RATE,
    drift: Drift | float | None = None,
    cards: int = DEFAULT_CARDS,
) -> Iterator[pd.DataFrame]:
    """The day's clean rows, in chunks of at most CHUNK_ROWS, each sorted by event_time."""
    _check(day, rows, seed, fraud_rate)
    drift = _as_drift(drift)
    pool = _cards(seed, cards)
    for index, start in enumerate(range(0, rows, CHUNK_ROWS)):
        size = min(CHUNK_ROWS, rows - start)
        rng = _rng(seed, _ROWS, day.toordinal(), index)
        yield _chunk(rng, day, start, size, pool, fraud_rate * drift.fraud_rate_factor, drift)


def generate_day(
    day: dt.date,
    rows: int,
    *,
    seed: int = 0,
    fraud_rate: float = DEFAULT_FRAUD_RATE,
    drift: Drift | float | None = None,
    cards: int = DEFAULT_CARDS,
) -> pd.DataFrame:
    """The whole day as one DataFrame (for tests and small days)."""
    import pandas as pd

    chunks = list(iter_day(day, rows, seed=seed, fraud_rate=fraud_rate, drift=drift, cards=cards))
    if not chunks:
        return _empty_frame()
    return pd.concat(chunks, ignore_index=True)


def _as_drift(drift: Drift | float | None) -> Drift:
    if drift is None:
        return Drift()
    if isinstance(drift, Drift):
        return drift
    return Drift(float(drift))


def _empty_frame() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({name: pd.Series(dtype=object) for name in COLUMNS})


def _chunk(
    rng: np.random.Generator,
    day: dt.date,
    start: int,
    size: int,
    cards: _Cards,
    fraud_rate: float,
    drift: Drift,
) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    fraud = rng.random(size) < fraud_rate
    # camouflaged fraud is drawn like legitimate traffic in every respect
    looks_fraud = fraud & (rng.random(size) >= CAMOUFLAGED_FRAUD)
    n_odd = int(looks_fraud.sum())

    def pick(legit: np.ndarray, odd: np.ndarray) -> np.ndarray:
        out = legit.copy()
        out[looks_fraud] = odd
        return out

    # cards: fraudsters favour freshly issued cards
    age_all = (day.toordinal() - cards.phase) % CARD_CYCLE_DAYS
    odd_weights = 1.0 + 12.0 * (age_all < NEW_CARD_DAYS)
    card = pick(
        rng.choice(len(cards.ids), size, p=cards.activity),
        rng.choice(len(cards.ids), n_odd, p=odd_weights / odd_weights.sum()),
    )
    card_age = age_all[card]

    hour = pick(
        rng.choice(24, size, p=_probabilities(_LEGIT_HOURS)),
        rng.choice(24, n_odd, p=_probabilities(_FRAUD_HOURS)),
    )
    seconds = hour * 3600 + rng.integers(0, 3600, size)

    legit_channels = _probabilities(_LEGIT_CHANNELS)
    if drift.channel_mix:
        legit_channels = (1 - drift.channel_mix) * legit_channels + drift.channel_mix * (
            _probabilities(_DRIFTED_CHANNELS)
        )
    channel = pick(
        rng.choice(len(CHANNELS), size, p=legit_channels),
        rng.choice(len(CHANNELS), n_odd, p=_probabilities(_FRAUD_CHANNELS)),
    )
    merchant = pick(
        rng.choice(len(MERCHANT_CATEGORIES), size, p=_probabilities(_LEGIT_MERCHANTS)),
        rng.choice(len(MERCHANT_CATEGORIES), n_odd, p=_probabilities(_FRAUD_MERCHANTS)),
    )
    atm = channel == CHANNELS.index("atm")

    median = np.asarray(_MEDIAN_AMOUNT)[merchant]
    amount = median * rng.lognormal(0.0, 0.7, size)
    amount[looks_fraud] *= rng.lognormal(0.6, 0.5, n_odd)
    amount *= np.exp(drift.amount_log_shift)
    # cash withdrawals come in round amounts
    amount[atm] = np.maximum(20.0, np.round(amount[atm] * 1.5 / 10.0) * 10.0)
    amount = np.round(np.maximum(amount, 0.5), 2)

    abroad = pick(rng.random(size) < 0.06, rng.random(n_odd) < 0.5)
    foreign = rng.integers(0, len(FOREIGN_COUNTRIES), size)
    home = np.asarray(HOME_COUNTRIES, dtype=object)[cards.home[card]]
    country = np.where(abroad, np.asarray(FOREIGN_COUNTRIES, dtype=object)[foreign], home)
    abroad = country != home  # a "foreign" draw may land on the home country
    distance = pick(rng.exponential(8.0, size), rng.exponential(80.0, n_odd))
    distance = np.where(abroad, 300.0 + rng.exponential(1500.0, size), distance)
    distance = np.round(distance, 2)

    count_1h = pick(rng.poisson(0.25, size), rng.poisson(2.2, n_odd))
    count_24h = count_1h + pick(rng.poisson(2.0, size), rng.poisson(4.0, n_odd))

    order = np.argsort(seconds, kind="stable")
    midnight = np.datetime64(day.isoformat(), "s")
    times = np.datetime_as_string(midnight + seconds[order].astype("timedelta64[s]"), unit="s")
    stamp = day.strftime("%Y%m%d")
    frame = pd.DataFrame(
        {
            "transaction_id": [f"tx-{stamp}-{i:08d}" for i in range(start, start + size)],
            "event_time": np.char.add(times.astype(str), "Z"),
            "card_id": cards.ids[card[order]],
            "amount": amount[order],
            "merchant_category": np.asarray(MERCHANT_CATEGORIES, dtype=object)[merchant[order]],
            "channel": np.asarray(CHANNELS, dtype=object)[channel[order]],
            "country": country[order],
            "hour": hour[order].astype(np.int64),
            "card_age_days": card_age[order].astype(np.int64),
            "txn_count_1h": count_1h[order].astype(np.int64),
            "txn_count_24h": count_24h[order].astype(np.int64),
            "distance_from_home_km": distance[order],
            "is_fraud": fraud[order].astype(np.int64),
        }
    )
    return frame


# -- corruption ----------------------------------------------------------------------------------


def corrupt(
    frame: pd.DataFrame, corruptions: Iterable[Corruption], rng: np.random.Generator
) -> pd.DataFrame:
    """Apply row- and column-level corruptions to one chunk (file-level ones are elsewhere)."""
    import numpy as np

    frame = frame.copy()
    size = len(frame)

    def rows(fraction: float) -> np.ndarray:
        if size == 0:
            return np.zeros(0, dtype=np.int64)
        count = max(1, int(round(fraction * size)))
        return np.sort(rng.choice(size, min(count, size), replace=False))

    for c in corruptions:
        if c.kind == "nulls":
            assert c.column is not None
            frame[c.column] = frame[c.column].astype(object)
            frame.loc[rows(c.fraction), c.column] = None
        elif c.kind == "negative_amounts":
            picked = rows(c.fraction)
            frame.loc[picked, "amount"] = -frame.loc[picked, "amount"]
        elif c.kind == "unknown_categories":
            assert c.column is not None
            frame.loc[rows(c.fraction), c.column] = UNKNOWN_VALUES[c.column]
        elif c.kind == "duplicate_ids":
            if size < 2:
                continue
            targets = rows(c.fraction)
            # copy rows from elsewhere in the chunk: whole-row replays, as a retried export does
            sources = rng.choice(np.setdiff1d(np.arange(size), targets), len(targets))
            for name in frame.columns:
                values = frame[name].to_numpy(copy=True)
                values[targets] = values[sources]
                frame[name] = values
        elif c.kind == "missing_column":
            frame = frame.drop(columns=[c.column])
        elif c.kind == "extra_column":
            assert c.column is not None
            frame[c.column] = rng.choice(["ok", "retry", "manual"], size)
        elif c.kind == "wrong_types":
            assert c.column is not None
            picked = rows(c.fraction)
            frame[c.column] = frame[c.column].astype(object)
            frame.loc[picked, c.column] = rng.choice(WRONG_TYPE_VALUES, len(picked))
    return frame


def iter_partition(
    day: dt.date,
    rows: int,
    *,
    seed: int = 0,
    fraud_rate: float = DEFAULT_FRAUD_RATE,
    drift: Drift | float | None = None,
    corruptions: Sequence[Corruption] = (),
    cards: int = DEFAULT_CARDS,
    stats: dict[str, int] | None = None,
) -> Iterator[bytes]:
    """The partition file's bytes, chunk by chunk (header first). ``stats`` collects the
    written row and fraud counts."""
    kinds = {c.kind for c in corruptions}
    counts = stats if stats is not None else {}
    counts.update(rows=0, fraud=0)
    if "unparsable" in kinds:
        # invalid UTF-8 with NUL bytes: no CSV reader makes rows of it
        garbage = _rng(seed, _CORRUPT, day.toordinal()).bytes(4096)
        yield b"\x1f\x8b\x08\x00\xff\xfe\x00" + garbage
        return
    row_level = [c for c in corruptions if c.kind not in ("unparsable", "empty")]
    if "empty" in kinds:
        header = corrupt(_empty_frame(), row_level, _rng(seed, _CORRUPT, day.toordinal()))
        yield (",".join(header.columns) + "\n").encode()
        return
    first = True
    chunks = iter_day(day, rows, seed=seed, fraud_rate=fraud_rate, drift=drift, cards=cards)
    for index, frame in enumerate(chunks):
        if row_level:
            frame = corrupt(frame, row_level, _rng(seed, _CORRUPT, day.toordinal(), index))
        counts["rows"] += len(frame)
        if "is_fraud" in frame:
            counts["fraud"] += int((frame["is_fraud"].astype(str) == "1").sum())
        yield frame.to_csv(index=False, header=first, lineterminator="\n").encode()
        first = False
    if first:  # zero rows asked for: still a valid file
        yield (",".join(COLUMNS) + "\n").encode()


def render_partition(day: dt.date, rows: int, **kwargs: Any) -> bytes:
    """The whole partition file in memory (for tests and small days)."""
    return b"".join(iter_partition(day, rows, **kwargs))


# -- S3 ------------------------------------------------------------------------------------------


class _S3Stream:
    """Bytes to one S3 object: a single PUT when small, a multipart upload when large."""

    def __init__(self, s3: Any, bucket: str, key: str, part_bytes: int):
        if part_bytes < 5 * 1024 * 1024:
            raise DatagenError(
                f"part_bytes must be at least 5 MiB (S3's minimum), got {part_bytes}"
            )
        self.s3, self.bucket, self.key, self.part_bytes = s3, bucket, key, part_bytes
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []
        self.size = 0

    def write(self, data: bytes) -> None:
        self.buffer += data
        self.size += len(data)
        while len(self.buffer) >= self.part_bytes:
            self._flush_part(self.part_bytes)

    def _flush_part(self, size: int) -> None:
        if self.upload_id is None:
            created = self.s3.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ContentType="text/csv"
            )
            self.upload_id = created["UploadId"]
        number = len(self.parts) + 1
        part = self.s3.upload_part(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=bytes(self.buffer[:size]),
        )
        self.parts.append({"PartNumber": number, "ETag": part["ETag"]})
        del self.buffer[:size]

    def close(self) -> None:
        if self.upload_id is None:
            self.s3.put_object(
                Bucket=self.bucket, Key=self.key, Body=bytes(self.buffer), ContentType="text/csv"
            )
            return
        if self.buffer:
            self._flush_part(len(self.buffer))
        self.s3.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
        )

    def abort(self) -> None:
        if self.upload_id is not None:
            self.s3.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
            )


def write_partition(
    s3: Any,
    bucket: str,
    day: dt.date,
    rows: int,
    *,
    prefix: str = RAW_PREFIX,
    seed: int = 0,
    fraud_rate: float = DEFAULT_FRAUD_RATE,
    drift: Drift | float | None = None,
    corruptions: Sequence[Corruption] = (),
    cards: int = DEFAULT_CARDS,
    part_bytes: int = MULTIPART_PART_BYTES,
) -> PartitionInfo:
    """Generate one day and write it to ``s3://bucket/<prefix>/dt=YYYY-MM-DD/part-00000.csv``,
    replacing what was there (a rerun of a date overwrites that date only)."""
    key = partition_key(day, prefix)
    stream = _S3Stream(s3, bucket, key, part_bytes)
    stats: dict[str, int] = {}
    try:
        for data in iter_partition(
            day,
            rows,
            seed=seed,
            fraud_rate=fraud_rate,
            drift=drift,
            corruptions=corruptions,
            cards=cards,
            stats=stats,
        ):
            stream.write(data)
        stream.close()
    except BaseException:
        stream.abort()
        raise
    # last, as Spark and Hadoop jobs do: readers wait for it, never for a half-written day
    s3.put_object(Bucket=bucket, Key=marker_key(day, prefix), Body=b"")
    return PartitionInfo(day, f"s3://{bucket}/{key}", stats["rows"], stats["fraud"], stream.size)


def write_partitions(
    s3: Any,
    bucket: str,
    start: dt.date,
    days: int,
    rows: int,
    **kwargs: Any,
) -> list[PartitionInfo]:
    """``days`` consecutive partitions from ``start``; keyword arguments as write_partition."""
    if days < 1:
        raise DatagenError(f"days must be >= 1, got {days}")
    return [
        write_partition(s3, bucket, start + dt.timedelta(days=i), rows, **kwargs)
        for i in range(days)
    ]


# -- CLI -----------------------------------------------------------------------------------------


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: use YYYY-MM-DD") from None


def _corruption(text: str) -> Corruption:
    try:
        return Corruption.parse(text)
    except DatagenError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m mlops_pipeline.datagen",
        description="Write synthetic daily card-transaction partitions to S3.",
    )
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--start", type=_date, required=True, help="first day, YYYY-MM-DD")
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--rows", type=int, default=5000, help="rows per day")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prefix", default=RAW_PREFIX)
    parser.add_argument("--fraud-rate", type=float, default=DEFAULT_FRAUD_RATE)
    parser.add_argument("--drift", type=float, default=0.0, help="drift strength, 0 = none")
    parser.add_argument(
        "--corrupt",
        type=_corruption,
        action="append",
        default=[],
        metavar="SPEC",
        help="; ".join(f"{syntax}: {what}" for what, syntax in CORRUPTIONS.values()),
    )
    parser.add_argument("--create-bucket", action="store_true", help="create the bucket first")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import boto3

    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
    s3 = boto3.session.Session().client("s3", endpoint_url=endpoint, region_name=region)
    if args.create_bucket:
        try:
            s3.create_bucket(Bucket=args.bucket)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
    try:
        drift = Drift(args.drift)
        for i in range(args.days):
            info = write_partition(
                s3,
                args.bucket,
                args.start + dt.timedelta(days=i),
                args.rows,
                prefix=args.prefix,
                seed=args.seed,
                fraud_rate=args.fraud_rate,
                drift=drift,
                corruptions=args.corrupt,
            )
            print(
                f"{info.uri} rows={info.rows} fraud={info.fraud} "
                f"({info.fraud_rate:.2%}) bytes={info.bytes}",
                flush=True,
            )
    except DatagenError as error:
        print(f"datagen: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
