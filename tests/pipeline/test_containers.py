"""The container scripts' logic, run in-process on generated data (the jobs themselves are
exercised in test_model_build_jobs.py)."""

from __future__ import annotations

import ast
import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlops_pipeline
from mlops_pipeline import datagen
from mlops_pipeline.datagen import Corruption

CONTAINERS = Path(mlops_pipeline.__file__).parent / "containers"
SCRIPTS = ("preprocess.py", "train.py", "evaluate.py", "inference.py")
# what the SageMaker scikit-learn and XGBoost images provide besides the standard library
IMAGE_PACKAGES = {
    "numpy",
    "pandas",
    "sklearn",
    "xgboost",
    "sagemaker_inference",
    "sagemaker_training",
}
DAY = dt.date(2026, 4, 6)


@pytest.fixture(scope="module", autouse=True)
def sagemaker_base_dir(tmp_path_factory):
    """The scripts write SageMaker's exit message to $SAGEMAKER_BASE_DIR/output (/opt/ml
    when unset): here into a temporary directory, never the host's /opt/ml."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path_factory.mktemp("opt-ml")))
        yield


@pytest.fixture(scope="module")
def preprocess():
    from mlops_pipeline.containers import preprocess

    return preprocess


@pytest.fixture(scope="module")
def inference():
    from mlops_pipeline.containers import inference

    return inference


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_import_only_what_the_framework_images_have(name):
    tree = ast.parse((CONTAINERS / name).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    # the job code travels together (code dir, sourcedir.tar.gz): siblings may import each other
    siblings = {path.stem for path in CONTAINERS.glob("*.py")}
    foreign = imported - IMAGE_PACKAGES - siblings - set(sys.stdlib_module_names)
    assert not foreign, f"{name} imports {foreign}: the framework images do not have them"


def test_preprocess_keeps_the_generators_schema(preprocess):
    """preprocess.py is a single self-contained file (the SDK uploads it alone), so it has
    its own copy of the raw schema: the copy must stay the generator's."""
    assert preprocess.RAW_COLUMNS == list(datagen.COLUMNS)
    assert preprocess.MERCHANT_CATEGORIES == list(datagen.MERCHANT_CATEGORIES)
    assert preprocess.CHANNELS == list(datagen.CHANNELS)


def write_day(root: Path, day: dt.date, rows: int, corruptions: list[str] = ()) -> Path:
    path = root / f"dt={day.isoformat()}" / "part-00000.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        datagen.render_partition(
            day, rows, seed=2, corruptions=[Corruption.parse(c) for c in corruptions]
        )
    )
    return path


def clean_day(preprocess, tmp_path: Path, corruptions: list[str]) -> dict:
    write_day(tmp_path, DAY, 2000, corruptions)
    raw, _ = preprocess.read_inputs(str(tmp_path), None, None)
    _, report = preprocess.clean(raw)
    return report


@pytest.mark.parametrize(
    ("corruption", "reason", "count"),
    [
        ("nulls:amount:0.05", "missing amount", 100),
        ("nulls:event_time:0.01", "missing event_time", 20),
        ("negative_amounts:0.02", "amount not positive", 40),
        ("wrong_types:amount:0.01", "amount not a number", 20),
        ("wrong_types:txn_count_1h:0.01", "txn_count_1h not a number", 20),
        ("duplicate_ids:0.01", "duplicate transaction_id", 20),
    ],
)
def test_cleaning_drops_each_kind_of_bad_row_and_counts_it(
    preprocess, tmp_path, corruption, reason, count
):
    report = clean_day(preprocess, tmp_path, [corruption])
    assert report["dropped_by_reason"] == {reason: count}
    assert report["rows_kept"] == 2000 - count


def test_unknown_categories_are_kept_and_counted(preprocess, tmp_path):
    report = clean_day(preprocess, tmp_path, ["unknown_categories:channel:0.02"])
    assert report["rows_dropped"] == 0
    assert report["unknown_categories_kept_as_other"] == {"merchant_category": 0, "channel": 40}


def test_unreadable_and_incomplete_partitions_fail_naming_the_file(preprocess, tmp_path):
    write_day(tmp_path / "a", DAY, 50, ["unparsable"])
    with pytest.raises(preprocess.PreprocessError, match=r"dt=2026-04-06/part-00000.csv is not a"):
        preprocess.read_inputs(str(tmp_path / "a"), None, None)
    write_day(tmp_path / "b", DAY, 50, ["missing_column:card_id"])
    with pytest.raises(preprocess.PreprocessError, match="lacks column.s. card_id"):
        preprocess.read_inputs(str(tmp_path / "b"), None, None)
    with pytest.raises(preprocess.PreprocessError, match="no input files under .* within"):
        preprocess.read_inputs(str(tmp_path / "b"), "2027-01-01", "2027-01-02")


def test_empty_and_extra_column_partitions_are_read(preprocess, tmp_path):
    write_day(tmp_path, DAY, 100, ["extra_column"])
    write_day(tmp_path, DAY + dt.timedelta(days=1), 100, ["empty"])
    (tmp_path / "dt=2026-04-08").mkdir()
    (tmp_path / "dt=2026-04-08" / "part-00000.csv").write_bytes(b"")  # zero bytes
    raw, files = preprocess.read_inputs(str(tmp_path), None, None)
    assert [f["rows"] for f in files] == [100, 0, 0]
    assert "debug_note" not in raw.columns and len(raw) == 100


def test_too_many_invalid_rows_fail_the_job(preprocess, tmp_path):
    report = clean_day(preprocess, tmp_path, ["nulls:country:0.3"])
    with pytest.raises(preprocess.PreprocessError, match=r"30.0% of the 2000 rows are invalid"):
        preprocess.check_invalid_fraction(report, 0.2)


def test_time_split_never_lets_a_timestamp_straddle_two_splits(preprocess, tmp_path):
    for i in range(2):
        write_day(tmp_path, DAY + dt.timedelta(days=i), 1000)
    raw, _ = preprocess.read_inputs(str(tmp_path), None, None)
    frame, _ = preprocess.clean(raw)
    # many rows sharing one instant, right where the fractions would cut
    frame = frame.sort_values("event_time").reset_index(drop=True)
    frame.loc[1300:1450, "event_time"] = frame.loc[1400, "event_time"]
    train, validation, test = preprocess.time_split(frame, 0.7, 0.15)
    assert train["event_time"].max() < validation["event_time"].min()
    assert validation["event_time"].max() < test["event_time"].min()
    assert len(train) + len(validation) + len(test) == len(frame)
    explicit = preprocess.time_split(
        frame,
        0.7,
        0.15,
        preprocess.utc_timestamp("2026-04-07T00:00:00"),
        preprocess.utc_timestamp("2026-04-07T12:00:00Z"),
    )
    assert explicit[0]["event_time"].max() < pd.Timestamp("2026-04-07", tz="UTC")
    with pytest.raises(preprocess.PreprocessError, match="the validation split is empty"):
        preprocess.time_split(
            frame,
            0.7,
            0.15,
            preprocess.utc_timestamp("2026-04-07T12:00:00"),
            preprocess.utc_timestamp("2026-04-07T12:00:00"),
        )


def test_features_follow_the_vocabulary_fitted_on_training_data(preprocess, tmp_path):
    write_day(tmp_path, DAY, 3000)
    raw, _ = preprocess.read_inputs(str(tmp_path), None, None)
    frame, _ = preprocess.clean(raw)
    vocabulary = preprocess.fit_vocabulary(frame, min_country_count=20)
    features = preprocess.engineer(frame, vocabulary)
    assert list(features.columns) == vocabulary["features"]
    assert features.notna().all().all()
    one_hot = [c for c in features.columns if c.startswith("channel_")]
    assert (features[one_hot].sum(axis=1) == 1).all()
    # an unseen category and a rare country land in the "other" slots, not in an error
    odd = frame.head(2).copy()
    odd["channel"] = ["telepathy", "pos"]
    odd["country"] = ["ZZ", "DE"]
    encoded = preprocess.engineer(odd, vocabulary)
    assert encoded["channel_other"].tolist() == [1.0, 0.0]
    assert encoded["country_code"].tolist() == [0.0, 1.0]
    assert json.loads(json.dumps(vocabulary)) == vocabulary  # stored as plain JSON


@pytest.fixture(scope="module")
def served_model(tmp_path_factory, inference):
    import xgboost as xgb

    directory = tmp_path_factory.mktemp("model")
    rng = np.random.default_rng(0)
    x = rng.random((200, 3))
    booster = xgb.train(
        {"objective": "binary:logistic", "nthread": 1},
        xgb.DMatrix(x, label=(x[:, 0] > 0.5), feature_names=["a", "b", "c"]),
        5,
    )
    (directory / "xgboost-model").write_bytes(booster.save_raw("ubj"))
    (directory / "features.json").write_text(json.dumps({"features": ["a", "b", "c"]}))
    return inference.model_fn(str(directory)), booster


def test_inference_handlers_accept_csv_with_or_without_header_and_json(inference, served_model):
    model, booster = served_model
    import xgboost as xgb

    rows = np.array([[0.1, 0.2, 0.3], [0.9, 0.5, 0.5]])
    expected = booster.predict(xgb.DMatrix(rows, feature_names=["a", "b", "c"]))
    for body in ("0.1,0.2,0.3\n0.9,0.5,0.5\n", "a,b,c\n0.1,0.2,0.3\n0.9,0.5,0.5"):
        scores = inference.predict_fn(inference.input_fn(body, "text/csv"), model)
        assert np.allclose(scores, expected, atol=1e-6)
    text = inference.output_fn(scores, "text/csv")
    assert text.splitlines() == [f"{v:.8g}" for v in scores]
    keyed = json.dumps([{"c": 0.3, "a": 0.1, "b": 0.2}, {"a": 0.9, "b": 0.5, "c": 0.5}])
    scores = inference.predict_fn(inference.input_fn(keyed, "application/json"), model)
    assert np.allclose(scores, expected, atol=1e-6)
    data = inference.input_fn(json.dumps({"instances": rows.tolist()}), "application/json")
    answer = json.loads(inference.output_fn(inference.predict_fn(data, model), "application/json"))
    assert np.allclose(answer["predictions"], expected, atol=1e-6)


def test_inference_errors_say_what_to_send(inference, served_model):
    model, _ = served_model
    with pytest.raises(ValueError, match="needs 3 features, got 4 .*InputFilter"):
        inference.predict_fn(inference.input_fn("1,0.1,0.2,0.3", "text/csv"), model)
    with pytest.raises(ValueError, match="not all numbers.*raw transactions"):
        inference.input_fn("tx-1,2026-01-01T00:00:00Z,card-1", "text/csv")
    with pytest.raises(ValueError, match="lacks feature.s. c"):
        inference.input_fn(json.dumps([{"a": 1, "b": 2}]), "application/json")
    with pytest.raises(Exception, match="application/x-parquet"):
        inference.input_fn(b"PAR1", "application/x-parquet")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, preprocess) -> Path:
    """preprocess.py --mode fit over three generated days, run in-process."""
    root = tmp_path_factory.mktemp("fit")
    for i in range(3):
        write_day(root / "raw", DAY + dt.timedelta(days=i), 1500)
    args = ["--input-dir", str(root / "raw")]
    for output in ("train", "validation", "test", "metadata"):
        args += [f"--{output}-dir", str(root / output)]
    assert preprocess.main(args) == 0
    return root


def test_transform_mode_encodes_new_days_with_the_training_vocabulary(
    preprocess, inference, fitted, tmp_path
):
    write_day(tmp_path / "raw", DAY + dt.timedelta(days=10), 300, ["unknown_categories"])
    vocabulary = fitted / "metadata" / "vocabulary.json"
    args = ["--mode", "transform", "--vocabulary", str(vocabulary)]
    args += ["--input-dir", str(tmp_path / "raw"), "--output-dir", str(tmp_path / "out")]
    assert preprocess.main(args) == 0
    features = pd.read_csv(tmp_path / "out" / "features.csv", header=None)
    keys = pd.read_csv(tmp_path / "out" / "keys.csv")
    names = json.loads(vocabulary.read_text())["features"]
    assert features.shape == (300, len(names)) and len(keys) == 300
    assert keys["event_time"].is_monotonic_increasing
    merchant_other = features[names.index("merchant_other")]
    assert merchant_other.sum() == 15  # the unknown merchant categories, 5% of 300
    # the header the fit wrote names the same columns, label first
    header = (fitted / "metadata" / "header.csv").read_text().strip().split(",")
    assert header == ["is_fraud", *names]


def run_train(train, fitted: Path, out: Path, *extra: str, capsys) -> str:
    args = ["--train", str(fitted / "train"), "--validation", str(fitted / "validation")]
    args += ["--metadata", str(fitted / "metadata"), "--model-dir", str(out / "model")]
    args += ["--output-data-dir", str(out / "data"), "--checkpoint-dir", str(out / "ckpt")]
    args += ["--nthread", "1", "--max_depth", "3", *extra]
    assert train.main(args) == 0
    return capsys.readouterr().out


def test_training_resumes_from_the_latest_checkpoint_in_process(fitted, tmp_path, capsys):
    from mlops_pipeline.containers import train

    out = run_train(
        train,
        fitted,
        tmp_path,
        "--num_round",
        "20",
        "--checkpoint_frequency",
        "5",
        "--early_stopping_rounds",
        "0",
        capsys=capsys,
    )
    assert "resuming" not in out
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "xgboost-checkpoint.000010.json",
        "xgboost-checkpoint.000015.json",
    ]
    # as after a spot interruption: the same job, started again, with more rounds to go
    out = run_train(
        train,
        fitted,
        tmp_path,
        "--num_round",
        "30",
        "--checkpoint_frequency",
        "5",
        "--early_stopping_rounds",
        "0",
        capsys=capsys,
    )
    assert "resuming from checkpoint at round 15" in out
    rounds = [line for line in out.splitlines() if line.startswith("[")]
    assert rounds[0].startswith("[15]#011train-auc:") and rounds[-1].startswith("[29]#011")
    info = json.loads((tmp_path / "model" / "features.json").read_text())
    assert info["rounds"] == 30
    assert "validation:aucpr=" in out


def test_training_hyperparameters_are_checked(fitted, tmp_path, capsys):
    from mlops_pipeline.containers import train

    out = run_train(
        train, fitted, tmp_path, "--num_round", "5", "--scale_pos_weight", "auto", capsys=capsys
    )
    info = json.loads((tmp_path / "model" / "features.json").read_text())
    assert info["params"]["scale_pos_weight"] > 10  # negatives per positive at ~2% fraud
    assert "validation:aucpr=" in out
    with pytest.raises(SystemExit):
        train.main(["--max_dept", "3", "--train", "x", "--validation", "y"])
    assert "unrecognized arguments: --max_dept 3" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main(["--scale_pos_weight", "-2", "--train", "x", "--validation", "y"])
    assert "scale_pos_weight must be a positive number or 'auto'" in capsys.readouterr().err


def test_threshold_for_a_target_precision_or_best_f1():
    from mlops_pipeline.containers import evaluate

    labels = np.array([0, 0, 0, 0, 1, 0, 1, 1, 1, 0])
    scores = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    best = evaluate.choose_threshold(labels, scores, "best_f1", 0.8)
    assert best["value"] == 0.4 and best["validation_recall"] == 1.0
    strict = evaluate.choose_threshold(labels, scores, "target_precision", 0.75)
    # the lowest threshold reaching 75% precision keeps the most recall
    assert strict["value"] == 0.6 and strict["validation_precision"] == 0.75
    assert strict["fallback"] is None
    impossible = evaluate.choose_threshold(labels, scores, "target_precision", 1.0)
    assert impossible["value"] == best["value"]
    assert "no threshold reaches precision 1.0" in impossible["fallback"]
