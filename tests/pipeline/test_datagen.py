"""The synthetic transaction generator: schema, reproducibility, fraud signal, drift, corruption."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pandas as pd
import pytest

from mlops_pipeline import datagen
from mlops_pipeline.datagen import (
    CHANNELS,
    COLUMNS,
    MERCHANT_CATEGORIES,
    Corruption,
    DatagenError,
    Drift,
    render_partition,
)

DAY = dt.date(2026, 1, 5)
ROWS = 4000


def read(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def clean_bytes() -> bytes:
    return render_partition(DAY, ROWS, seed=3)


@pytest.fixture(scope="module")
def big_day() -> pd.DataFrame:
    # large enough that rates and medians per class are stable
    return datagen.generate_day(DAY, 40_000, seed=11)


def test_partition_follows_the_schema(clean_bytes):
    frame = read(clean_bytes)
    assert tuple(frame.columns) == COLUMNS
    assert len(frame) == ROWS
    assert frame["transaction_id"].is_unique
    times = pd.to_datetime(frame["event_time"], format="%Y-%m-%dT%H:%M:%SZ", utc=True)
    assert (times.dt.date == DAY).all()
    assert times.is_monotonic_increasing
    assert (frame["hour"].astype(int) == times.dt.hour).all()
    assert (frame["amount"].astype(float) > 0).all()
    assert set(frame["merchant_category"]) <= set(MERCHANT_CATEGORIES)
    assert set(frame["channel"]) <= set(CHANNELS)
    assert frame["country"].str.fullmatch(r"[A-Z]{2}").all()
    assert (frame["card_age_days"].astype(int) >= 0).all()
    one, day = frame["txn_count_1h"].astype(int), frame["txn_count_24h"].astype(int)
    assert (one >= 0).all() and (day >= one).all()
    assert (frame["distance_from_home_km"].astype(float) >= 0).all()
    assert set(frame["is_fraud"]) == {"0", "1"}
    # cards recur, as a card pool does
    assert frame["card_id"].nunique() < ROWS


def test_same_seed_and_day_give_the_same_bytes(clean_bytes):
    assert render_partition(DAY, ROWS, seed=3) == clean_bytes
    assert render_partition(DAY, ROWS, seed=4) != clean_bytes
    assert render_partition(DAY + dt.timedelta(days=1), ROWS, seed=3) != clean_bytes
    # no drift is no drift, however it is spelled
    assert render_partition(DAY, ROWS, seed=3, drift=Drift(0.0)) == clean_bytes
    assert render_partition(DAY, ROWS, seed=3, drift=0) == clean_bytes


def test_card_age_advances_one_day_per_day():
    today = datagen.generate_day(DAY, 3000, seed=5)
    tomorrow = datagen.generate_day(DAY + dt.timedelta(days=1), 3000, seed=5)
    merged = (
        today.groupby("card_id")["card_age_days"]
        .first()
        .to_frame("today")
        .join(
            tomorrow.groupby("card_id")["card_age_days"].first().to_frame("tomorrow"), how="inner"
        )
    )
    assert len(merged) > 100
    # every card is a day older, unless it was renewed overnight (age back to 0)
    renewed = merged["tomorrow"] == 0
    assert ((merged["tomorrow"] == merged["today"] + 1) | renewed).all()


def test_fraud_rate_is_in_range_and_follows_the_knob(big_day):
    assert 0.01 <= big_day["is_fraud"].mean() <= 0.03
    rare = datagen.generate_day(DAY, 40_000, seed=11, fraud_rate=0.01)
    assert 0.007 <= rare["is_fraud"].mean() <= 0.013


def test_fraud_carries_a_realistic_signal(big_day):
    fraud = big_day[big_day["is_fraud"] == 1]
    legit = big_day[big_day["is_fraud"] == 0]
    night = big_day["hour"].isin([0, 1, 2, 3, 4, 5])
    assert big_day.loc[night, "is_fraud"].mean() > 2 * big_day.loc[~night, "is_fraud"].mean()
    risky_channel = big_day["channel"].isin(["online", "atm"])
    assert (
        fraud["channel"].isin(["online", "atm"]).mean()
        > 2 * risky_channel[big_day["is_fraud"] == 0].mean()
    )
    assert fraud["merchant_category"].eq("electronics").mean() > 3 * (
        legit["merchant_category"].eq("electronics").mean()
    )
    assert fraud["amount"].median() > 1.5 * legit["amount"].median()
    assert fraud["distance_from_home_km"].median() > 5 * legit["distance_from_home_km"].median()
    assert fraud["txn_count_1h"].mean() > 3 * legit["txn_count_1h"].mean()
    new = datagen.NEW_CARD_DAYS
    assert (fraud["card_age_days"] < new).mean() > 3 * (legit["card_age_days"] < new).mean()
    # camouflaged fraud keeps the classes overlapping: plenty of fraud looks ordinary
    ordinary = (fraud["txn_count_1h"] == 0) & (fraud["distance_from_home_km"] < 30)
    assert ordinary.mean() > 0.1


def test_drift_shifts_amounts_channels_and_fraud_rate(big_day):
    drifted = datagen.generate_day(DAY, 40_000, seed=11, drift=1.0)
    assert drifted["amount"].median() > 1.3 * big_day["amount"].median()
    online = drifted["channel"].eq("online").mean()
    assert online > big_day["channel"].eq("online").mean() + 0.1
    assert drifted["is_fraud"].mean() > 1.6 * big_day["is_fraud"].mean()
    # each part can be switched off
    only_amount = datagen.generate_day(
        DAY, 40_000, seed=11, drift=Drift(1.0, channels=False, fraud_rate=False)
    )
    assert only_amount["channel"].eq("online").mean() == pytest.approx(
        big_day["channel"].eq("online").mean(), abs=0.01
    )
    assert only_amount["is_fraud"].mean() == pytest.approx(big_day["is_fraud"].mean(), abs=0.003)
    # stronger drift moves further
    strong = datagen.generate_day(DAY, 40_000, seed=11, drift=2.0)
    assert strong["amount"].median() > drifted["amount"].median()


def corrupted(spec: str) -> bytes:
    return render_partition(DAY, ROWS, seed=3, corruptions=[Corruption.parse(spec)])


def test_nulls_blank_the_fraction_of_one_column_and_nothing_else(clean_bytes):
    clean, broken = read(clean_bytes), read(corrupted("nulls:amount:0.1"))
    blank = broken["amount"] == ""
    assert blank.sum() == 0.1 * ROWS
    assert (clean.loc[~blank, "amount"] == broken.loc[~blank, "amount"]).all()
    other = [c for c in COLUMNS if c != "amount"]
    pd.testing.assert_frame_equal(clean[other], broken[other])


def test_negative_amounts(clean_bytes):
    clean, broken = read(clean_bytes), read(corrupted("negative_amounts:0.02"))
    negative = broken["amount"].astype(float) < 0
    assert negative.sum() == 0.02 * ROWS
    assert (
        broken.loc[negative, "amount"].astype(float) == -clean.loc[negative, "amount"].astype(float)
    ).all()


@pytest.mark.parametrize("column", ["merchant_category", "channel"])
def test_unknown_categories(column):
    broken = read(corrupted(f"unknown_categories:{column}:0.05"))
    allowed = MERCHANT_CATEGORIES if column == "merchant_category" else CHANNELS
    assert (~broken[column].isin(allowed)).sum() == 0.05 * ROWS


def test_duplicate_ids_replay_whole_rows():
    broken = read(corrupted("duplicate_ids:0.01"))
    assert len(broken) == ROWS
    duplicated = broken["transaction_id"].duplicated(keep=False)
    assert broken["transaction_id"].duplicated().sum() >= 0.01 * ROWS * 0.9
    # the replayed rows are identical to their originals, not just their ids
    assert broken[duplicated].duplicated(keep=False).all()


def test_missing_and_extra_columns():
    missing = read(corrupted("missing_column:country"))
    assert "country" not in missing.columns and len(missing) == ROWS
    extra = read(corrupted("extra_column"))
    assert list(extra.columns) == [*COLUMNS, "debug_note"]
    named = read(corrupted("extra_column:source_system"))
    assert "source_system" in named.columns


def test_wrong_types_put_text_in_a_numeric_column():
    broken = read(corrupted("wrong_types:amount:0.03"))
    numbers = pd.to_numeric(broken["amount"], errors="coerce")
    assert numbers.isna().sum() == 0.03 * ROWS
    counts = read(corrupted("wrong_types:txn_count_1h"))
    assert pd.to_numeric(counts["txn_count_1h"], errors="coerce").isna().sum() == 0.05 * ROWS


def test_unparsable_file_is_not_csv():
    data = corrupted("unparsable")
    with pytest.raises((UnicodeDecodeError, pd.errors.ParserError)):
        pd.read_csv(io.BytesIO(data))


def test_empty_partition_has_a_header_and_no_rows():
    frame = read(corrupted("empty"))
    assert list(frame.columns) == list(COLUMNS) and frame.empty


def test_corruptions_combine_and_are_reproducible():
    specs = [Corruption.parse("nulls:country:0.02"), Corruption.parse("negative_amounts")]
    first = render_partition(DAY, ROWS, seed=3, corruptions=specs)
    assert first == render_partition(DAY, ROWS, seed=3, corruptions=specs)
    frame = read(first)
    assert (frame["country"] == "").sum() == 80
    assert (frame["amount"].str.startswith("-")).sum() == 200


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("bogus", "unknown corruption 'bogus'"),
        ("nulls", "needs a schema column"),
        ("nulls:colour", "needs a schema column, got 'colour'"),
        ("nulls:amount:2", "fraction must be in (0, 1]"),
        ("negative_amounts:lots", "'lots' is not a fraction"),
        ("unknown_categories:country", "applies to merchant_category or channel"),
        ("wrong_types:country", "applies to a numeric column"),
        ("extra_column:amount", "already a schema column"),
        ("empty:1:2", "extra parts"),
    ],
)
def test_bad_corruption_specs_say_what_is_wrong(spec, message):
    with pytest.raises(DatagenError) as error:
        Corruption.parse(spec)
    assert message in str(error.value)


def test_bad_arguments_name_the_argument():
    with pytest.raises(DatagenError, match="rows must be >= 0"):
        datagen.generate_day(DAY, -1)
    with pytest.raises(DatagenError, match="fraud_rate must be in"):
        datagen.generate_day(DAY, 10, fraud_rate=0.7)
    with pytest.raises(DatagenError, match="drift strength"):
        Drift(-1)


def test_days_stream_in_chunks_without_changing_the_schema():
    chunks = list(datagen.iter_day(DAY, datagen.CHUNK_ROWS + 10, seed=1))
    assert [len(c) for c in chunks] == [datagen.CHUNK_ROWS, 10]
    ids = pd.concat(chunks)["transaction_id"]
    assert ids.is_unique
    data = render_partition(DAY, datagen.CHUNK_ROWS + 10, seed=1)
    assert data.count(b"transaction_id") == 1  # one header, not one per chunk
    assert data.count(b"\n") == datagen.CHUNK_ROWS + 11


def test_write_partitions_to_s3(s3, bucket):
    infos = datagen.write_partitions(
        s3, bucket, DAY, 2, 1500, seed=2, corruptions=[Corruption.parse("nulls:amount:0.1")]
    )
    assert [i.uri for i in infos] == [
        f"s3://{bucket}/raw/transactions/dt=2026-01-05/part-00000.csv",
        f"s3://{bucket}/raw/transactions/dt=2026-01-06/part-00000.csv",
    ]
    body = s3.get_object(Bucket=bucket, Key="raw/transactions/dt=2026-01-05/part-00000.csv")[
        "Body"
    ].read()
    frame = read(body)
    assert len(frame) == infos[0].rows == 1500
    assert (frame["amount"] == "").sum() == 150
    assert infos[0].fraud == (frame["is_fraud"] == "1").sum()
    assert infos[0].bytes == len(body)
    # a rerun of a date overwrites that date's partition only
    datagen.write_partition(s3, bucket, DAY, 10, seed=2)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="raw/")["Contents"]]
    assert sorted(keys) == [
        "raw/transactions/dt=2026-01-05/_SUCCESS",
        "raw/transactions/dt=2026-01-05/part-00000.csv",
        "raw/transactions/dt=2026-01-06/_SUCCESS",
        "raw/transactions/dt=2026-01-06/part-00000.csv",
    ]
    again = s3.get_object(Bucket=bucket, Key="raw/transactions/dt=2026-01-05/part-00000.csv")
    assert len(read(again["Body"].read())) == 10


def test_large_days_go_up_as_a_multipart_stream(s3, bucket):
    part = 5 * 1024 * 1024
    info = datagen.write_partition(s3, bucket, DAY, 60_000, seed=4, part_bytes=part)
    head = s3.head_object(Bucket=bucket, Key=datagen.partition_key(DAY), PartNumber=1)
    assert head["PartsCount"] == 2 and info.bytes > part
    body = s3.get_object(Bucket=bucket, Key=datagen.partition_key(DAY))["Body"].read()
    assert body == render_partition(DAY, 60_000, seed=4)


def test_cli_writes_partitions_through_the_configured_endpoint(local_aws, s3, capsys):
    name = f"datagen-cli-{np.random.randint(1_000_000)}"
    code = datagen.main(
        [
            "--bucket",
            name,
            "--create-bucket",
            "--start",
            "2026-02-27",
            "--days",
            "3",
            "--rows",
            "500",
            "--drift",
            "0.5",
            "--corrupt",
            "duplicate_ids:0.02",
        ]
    )
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [
        f"s3://{name}/raw/transactions/dt={day}/part-00000.csv"
        for day in ("2026-02-27", "2026-02-28", "2026-03-01")
    ]
    assert all("rows=500 " in line for line in lines)
    frame = read(
        s3.get_object(Bucket=name, Key="raw/transactions/dt=2026-03-01/part-00000.csv")[
            "Body"
        ].read()
    )
    assert frame["transaction_id"].duplicated().sum() > 0


def test_cli_rejects_bad_arguments_with_the_syntax(capsys):
    with pytest.raises(SystemExit) as exit_:
        datagen.main(["--bucket", "b", "--start", "2026-13-01"])
    assert exit_.value.code == 2
    assert "is not a date: use YYYY-MM-DD" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        datagen.main(["--bucket", "b", "--start", "2026-01-01", "--corrupt", "nulls"])
    assert "needs a schema column" in capsys.readouterr().err
