"""The training_features suite against what preprocess.py really writes.

preprocess.py runs for real: a Processing job on local_aws, from the request model_build
sends (jobs.preprocess_request, the published job code, a manifest of the window), writing
to the layout of jobs.build_paths. Its train split (label first, no header) then goes
through the gate as a DAG runs it (DataQualityOperator in dag.test()), as written and
spoiled; more spoilings run the validation job's code in-process on the same bytes.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlops_pipeline import code, datagen, jobs, naming
from mlops_pipeline.config import load_settings
from mlops_pipeline.containers import validate
from mlops_pipeline.quality import anomaly, severity, suites
from mlops_pipeline.quality.history import MetricHistoryStore
from mlops_pipeline.quality.request import split_s3_uri
from tests.conftest import unique, wait_for
from tests.quality.conftest import ROOT, load, write_partition

DAY = dt.date(2026, 3, 3)  # the model_build run's logical date: its window ends here
DAYS, ROWS = 3, 400
SUITE = "training_features"


# -- what the suite declares ----------------------------------------------------------------------
def test_suite_needs_no_key_and_names_only_declared_columns():
    suite = load(SUITE)
    meta = suite["meta"]
    assert meta["header"] is False and not meta.get("key")
    declared = set(meta["columns"])
    for item in suite["expectations"]:
        kwargs = item["kwargs"]
        named = [kwargs.get("column"), kwargs.get("column_A"), kwargs.get("column_B")]
        named += kwargs.get("column_list") or []
        assert {n for n in named if n} <= declared, item
    ordered = [e for e in suite["expectations"] if e["type"].endswith("_match_ordered_list")]
    assert [e["kwargs"]["column_list"] for e in ordered] == [list(meta["columns"])]


def test_without_input_uri_the_gate_says_to_pass_it():
    """A model_build run's train split is <prefix>/<run key>/features/train/: no date names it."""
    with pytest.raises(suites.SuiteError, match="pass input_uri explicitly"):
        suites.partition_uri(load(SUITE), load_settings({}), DAY.isoformat())


@pytest.mark.parametrize("dataset", ["transactions", SUITE, "predictions"])
def test_anomaly_checks_profile_numeric_columns_of_the_suite(dataset):
    config = anomaly.load_config(str(suites.anomaly_path(ROOT, dataset)))
    columns = load(dataset)["meta"]["columns"]
    for check in config.checks:
        column = check.metric.column
        if column is None:
            continue
        assert column in columns, f"{dataset}: {check.metric.key} names an unknown column"
        if check.metric.metric in ("mean", "stddev", "min", "max", "quantile"):
            assert columns[column] in ("int", "float"), check.metric.key


def test_a_headerless_file_of_blank_lines_is_an_empty_partition(tmp_path):
    result, verdict = run_job_code(tmp_path, b"\n\n")
    assert [p["kind"] for p in result["problems"]] == ["empty_partition"]
    assert not verdict.passed


# -- preprocess for real ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Preprocessed:
    features: str  # s3://<bucket>/model-build/<run key>/features
    header: list[str]
    train: bytes
    rows: int

    def uri(self, part: str) -> str:
        return f"{self.features}/{part}"


def read(s3: Any, uri: str) -> bytes:
    bucket, key = split_s3_uri(uri)
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.fixture(scope="module")
def preprocessed(s3, sm) -> Preprocessed:
    bucket = unique("training-features")
    s3.create_bucket(Bucket=bucket)
    settings = load_settings({"MLOPS_BUCKET": bucket})
    start = DAY - dt.timedelta(days=DAYS - 1)
    keys = [
        split_s3_uri(
            datagen.write_partition(s3, bucket, start + dt.timedelta(days=i), ROWS, seed=3).uri
        )[1]
        for i in range(DAYS)
    ]
    run_id = unique(f"scheduled__{DAY}")
    logical = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
    run = jobs.JobRun("model_build", run_id, "preprocess", naming.run_key(logical, run_id))
    paths = jobs.build_paths(settings, run.key)
    manifest_bucket, manifest_key = split_s3_uri(paths.manifest)
    s3.put_object(
        Bucket=manifest_bucket,
        Key=manifest_key,
        Body=json.dumps(jobs.manifest(settings, keys)).encode(),
    )
    request = jobs.preprocess_request(
        settings,
        run,
        name=naming.job_name("model_build", "preprocess", run.key),
        code_uri=code.publish(s3, settings).code_uri,
        manifest_uri=paths.manifest,
        start=start.isoformat(),
        end=DAY.isoformat(),
    )
    sm.create_processing_job(**request)
    job = wait_for(
        lambda: sm.describe_processing_job(ProcessingJobName=request["ProcessingJobName"]),
        "ProcessingJobStatus",
        timeout=300,
    )
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    features = paths.features("train").rsplit("/", 1)[0]
    report = json.loads(read(s3, f"{features}/metadata/report.json"))
    return Preprocessed(
        features=features,
        header=read(s3, f"{features}/metadata/header.csv").decode().strip().split(","),
        train=read(s3, f"{features}/train/train.csv"),
        rows=report["splits"]["train"]["rows"],
    )


@pytest.mark.slow
def test_meta_columns_are_header_csv_in_order(preprocessed):
    columns = load(SUITE)["meta"]["columns"]
    assert list(columns) == preprocessed.header
    first = preprocessed.train.decode().splitlines()[0].split(",")
    assert len(first) == len(preprocessed.header) and first[0] in ("0", "1")
    assert preprocessed.rows >= 100


# -- the gate, as a DAG runs it ---------------------------------------------------------------------
@pytest.fixture
def env(aws_conn, bucket, monkeypatch):
    """The gate's own bucket (runs, history); the data stays where preprocess wrote it."""
    monkeypatch.setenv("MLOPS_BUCKET", bucket)
    monkeypatch.setenv("MLOPS_CHECK_INTERVAL_SECONDS", "1")
    return bucket


def run_gate(dag_id: str, bucket: str, input_uri: str):
    """The gate on a train split, then the step that must only run after it."""
    from airflow.sdk import DAG, task

    from mlops_pipeline.operators.data_quality import DataQualityOperator
    from tests.conftest import serialize_dag

    with DAG(dag_id, schedule=None, start_date=dt.datetime(2026, 1, 1)) as dag:
        gate = DataQualityOperator(
            task_id="validate_training_features", dataset=SUITE, input_uri=input_uri
        )

        @task
        def tune() -> None:
            import boto3

            boto3.client("s3").put_object(Bucket=bucket, Key="tuned/marker", Body=b"x")

        gate >> tune()
    serialize_dag(dag)
    return dag.test(logical_date=dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC))


def tuned(s3, bucket: str) -> bool:
    return "Contents" in s3.list_objects_v2(Bucket=bucket, Prefix="tuned/")


@pytest.mark.slow
def test_the_train_split_preprocess_writes_passes_the_gate(env, s3, preprocessed, capfd):
    run = run_gate("t_tf_real_split", env, preprocessed.uri("train"))

    assert run.state == "success" and tuned(s3, env)
    out = capfd.readouterr().out
    expectations = len(load(SUITE)["expectations"])
    assert (
        f"Data quality gate PASSED for dataset '{SUITE}', partition {DAY}, "
        f"{preprocessed.rows:,} rows: 0 errors, 0 warnings ({expectations} expectations "
        "evaluated)"
    ) in out
    entry = MetricHistoryStore(s3, env).get(SUITE, DAY.isoformat())
    assert (
        entry is not None
        and entry.status == "passed"
        and entry.metrics["row_count"] == preprocessed.rows
    )
    assert entry.metrics["columns"]["channel_other"]["mean"] == 0.0


def spoil(body: bytes, changes: dict[tuple[int, str], str], header: list[str]) -> bytes:
    """``body`` with field ``column`` of row ``row`` set to each value (rows from 0)."""
    lines = body.decode().splitlines()
    for (row, column), value in changes.items():
        fields = lines[row].split(",")
        fields[header.index(column)] = value
        lines[row] = ",".join(fields)
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.slow
def test_a_spoiled_train_split_fails_the_gate_naming_the_expectations(env, s3, preprocessed, capfd):
    body = spoil(preprocessed.train, {(3, "is_fraud"): "2", (5, "amount"): ""}, preprocessed.header)
    s3.put_object(Bucket=env, Key="spoiled/train/train.csv", Body=body)

    run = run_gate("t_tf_spoiled_split", env, f"s3://{env}/spoiled/train")

    assert run.state == "failed" and not tuned(s3, env)
    out = capfd.readouterr().out
    rows = f"{preprocessed.rows:,}"
    assert f"Data quality gate FAILED for dataset '{SUITE}', partition {DAY}" in out
    assert "2 errors, 0 warnings" in out
    assert (
        f"ERROR    expect_column_values_to_be_in_set on is_fraud: observed 1 of {rows} rows "
    ) in out
    assert "e.g. [2]; expected values in [0, 1]" in out
    assert (
        f"ERROR    expect_column_values_to_not_be_null on amount: observed 1 of {rows} rows "
    ) in out


# -- more spoilings of the same bytes, through the validation job's code in-process ---------------
def run_job_code(
    tmp_path: Path, body: bytes, suite: dict[str, Any] | None = None
) -> tuple[dict[str, Any], severity.Verdict]:
    data = write_partition(tmp_path / "data", body, name="train.csv")
    result = validate.validate(
        str(data),
        suite or load(SUITE),
        {"dataset": SUITE, "partition": DAY.isoformat()},
        str(tmp_path / "out"),
        docs=False,
    )
    return result, severity.evaluate(result)


Change = Callable[[bytes, list[str]], bytes]


def _fields(changes: dict[tuple[int, str], str]) -> Change:
    return lambda body, header: spoil(body, changes, header)


def _columns(edit: Callable[[list[str]], list[str]]) -> Change:
    """Every row's fields passed through ``edit``."""

    def change(body: bytes, header: list[str]) -> bytes:
        return "".join(
            ",".join(edit(line.split(","))) + "\n" for line in body.decode().splitlines()
        ).encode()

    return change


SPOILED = {
    "label of 2": (_fields({(0, "is_fraud"): "2"}), "expect_column_values_to_be_in_set:is_fraud"),
    "no fraud at all": (
        _columns(lambda fields: ["0", *fields[1:]]),
        "expect_column_max_to_be_between:is_fraud",
    ),
    "missing log_distance": (
        _fields({(7, "log_distance"): ""}),
        "expect_column_values_to_not_be_null:log_distance",
    ),
    "negative 1h count": (
        _fields({(2, "txn_count_1h"): "-1"}),
        "expect_column_values_to_be_between:txn_count_1h",
    ),
    "1h count above the 24h count": (
        _fields({(4, "txn_count_1h"): "99"}),
        "expect_column_pair_values_a_to_be_greater_than_b:txn_count_24h,txn_count_1h",
    ),
    "two merchants in one row": (
        _fields({(1, "merchant_grocery"): "1", (1, "merchant_gas"): "1"}),
        "expect_multicolumn_sum_to_equal:merchant_grocery,merchant_restaurants,merchant_gas,"
        "merchant_travel,merchant_electronics,merchant_online_retail,merchant_entertainment,"
        "merchant_health,merchant_other",
    ),
    "one-hot of 2": (
        _fields({(6, "channel_atm"): "2"}),
        "expect_column_values_to_be_in_set:channel_atm",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SPOILED))
def test_a_spoiled_train_split_fails_the_expectation_that_guards_it(tmp_path, preprocessed, name):
    change, key = SPOILED[name]
    result, verdict = run_job_code(tmp_path, change(preprocessed.train, preprocessed.header))

    assert result["status"] == "validated"
    failed = {f"{e['type']}:{e['column']}": e for e in verdict.errors}
    assert key in failed, sorted(failed)
    assert not verdict.passed and failed[key]["exception"] is None
    assert key.split(":")[1].split(",")[0] in severity.describe(failed[key])


@pytest.mark.slow
def test_a_missing_or_extra_column_is_an_input_problem_not_a_silent_shift(tmp_path, preprocessed):
    gas = preprocessed.header.index("merchant_gas")
    dropped = _columns(lambda fields: fields[:gas] + fields[gas + 1 :])
    extra = _columns(lambda fields: [*fields, "0"])
    for label, change, kind, width in (
        ("dropped", dropped, "missing_columns", 33),
        ("extra", extra, "extra_columns", 35),
    ):
        result, verdict = run_job_code(
            tmp_path / label, change(preprocessed.train, preprocessed.header)
        )
        assert result["status"] == "invalid_input" and not verdict.passed
        assert [p["kind"] for p in result["problems"]] == [kind]
        assert (
            f"train.csv has {width} field(s) per row where the schema declares 34"
            in (result["problems"][0]["message"])
        )


@pytest.mark.slow
def test_meta_columns_out_of_file_order_fail_the_gate(tmp_path, preprocessed):
    """Two float columns swapped in meta.columns still parse: the ordered list catches it."""
    suite = load(SUITE)
    names = list(suite["meta"]["columns"])
    i, j = names.index("hour_sin"), names.index("hour_cos")
    names[i], names[j] = names[j], names[i]
    suite["meta"]["columns"] = {n: suite["meta"]["columns"][n] for n in names}

    result, verdict = run_job_code(tmp_path, preprocessed.train, suite)

    assert [e["type"] for e in verdict.errors] == ["expect_table_columns_to_match_ordered_list"]
    assert "expected exactly the columns, in order" in verdict.summary()
