"""batch_inference's pure parts: requests, names, the output check, the manifest, the
approved-package lookup (against local_aws's registry) and raw-row scoring in inference.py."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pandas as pd
import pytest

from mlops_pipeline import batch, datagen, jobs, registry
from mlops_pipeline.config import load_settings
from tests.batchkit import TRAIN_DAYS, expected_scores, register_package
from tests.conftest import unique
from tests.pipeline.test_jobs import validate

SETTINGS = load_settings({"MLOPS_BUCKET": "bkt"})
RUN = jobs.JobRun("batch_inference", "scheduled__2026-03-10T00:00:00+00:00", "transform", "k")
PACKAGE = {
    "ModelPackageArn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/card-fraud/3",
    "ModelPackageGroupName": "card-fraud",
    "ModelPackageVersion": 3,
    "InferenceSpecification": {
        "Containers": [
            {
                "Image": SETTINGS.xgboost_image,
                "ModelDataUrl": "s3://bkt/model.tar.gz",
                "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
            }
        ]
    },
}


def test_transform_request_is_valid_and_joins_scores_to_their_ids():
    name = "batch-inference-transform-20260310-abc123"
    request = batch.transform_request(
        SETTINGS,
        RUN,
        name=name,
        model_name=batch.model_name(PACKAGE),
        model_version="card-fraud/3",
        partition="2026-03-10",
    )
    validate("CreateTransformJob", request)
    source = request["TransformInput"]["DataSource"]["S3DataSource"]
    # a prefix that ends mid-name: the day's data files, never its _SUCCESS marker
    assert source["S3Uri"] == "s3://bkt/raw/transactions/dt=2026-03-10/part-"
    assert request["DataProcessing"] == {
        "InputFilter": "$[1:12]",
        "JoinSource": "Input",
        "OutputFilter": "$[0,-2,-1]",
    }
    assert request["TransformOutput"]["S3OutputPath"] == (
        f"s3://bkt/batch-inference/staging/dt=2026-03-10/{name}"
    )
    assert request["Environment"] == {"MLOPS_MODEL_VERSION": "card-fraud/3"}
    assert {t["Key"] for t in request["Tags"]} == {
        "airflow_dag_id",
        "airflow_run_id",
        "airflow_task_id",
    }
    model = registry.model_request(
        SETTINGS, name=batch.model_name(PACKAGE), package=PACKAGE, tags=RUN.tags
    )
    validate("CreateModel", model)
    assert model["PrimaryContainer"]["ModelDataUrl"] == "s3://bkt/model.tar.gz"


def test_the_raw_columns_the_filter_sends_are_what_inference_reads():
    from mlops_pipeline.containers import inference

    columns = list(datagen.COLUMNS)
    assert columns[1:12] == inference.RAW_INPUT
    assert batch.OUTPUT_COLUMNS == ("transaction_id", inference.SCORE_COLUMN, "model_version")


def test_names_are_stable_valid_and_change_with_model_or_data():
    key = batch.job_key("2026-03-10", PACKAGE["ModelPackageArn"], ["a:1", "b:2"])
    assert key == batch.job_key("2026-03-10", PACKAGE["ModelPackageArn"], ["b:2", "a:1"])
    assert key.startswith("20260310-")
    assert key != batch.job_key("2026-03-10", PACKAGE["ModelPackageArn"], ["a:1", "b:3"])
    assert key != batch.job_key("2026-03-10", PACKAGE["ModelPackageArn"] + "x", ["a:1", "b:2"])
    name = batch.model_name({**PACKAGE, "ModelPackageGroupName": "g" * 80})
    assert len(name) <= 63 and re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name)
    assert batch.model_version(PACKAGE) == "card-fraud/3"


INPUT = (
    "transaction_id,event_time,amount\ntx-1,2026-03-10T00:00:01Z,5\ntx-2,2026-03-10T00:00:02Z,7\n"
)
OUTPUT = "transaction_id,score,model_version\ntx-1,0.01,card-fraud/3\ntx-2,0.5,card-fraud/3\n"


def lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def test_the_output_check_counts_hashes_and_matches_ids_row_for_row():
    import hashlib

    checked = batch.check_output(lines(INPUT), lines(OUTPUT), "out")
    assert checked == batch.CheckedOutput(
        2, hashlib.sha256(OUTPUT.encode()).hexdigest(), len(OUTPUT.encode())
    )
    # through an S3-like streaming body too
    assert (
        batch.check_output(
            batch.text_lines(io.BytesIO(INPUT.encode())),
            batch.text_lines(io.BytesIO(OUTPUT.encode())),
            "out",
        )
        == checked
    )


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (OUTPUT.replace("tx-2", "tx-9"), "row 2 scores 'tx-9' where the input has 'tx-2'"),
        ("\n".join(OUTPUT.splitlines()[:2]) + "\n", "ends after 1 rows"),
        (OUTPUT + "tx-3,0.1,card-fraud/3\n", "more rows than the input's 2"),
        (OUTPUT.replace("0.5", "1.5"), "outside \\[0, 1\\]"),
        (OUTPUT.replace("transaction_id,score", "id,score"), "not the header"),
    ],
)
def test_the_output_check_names_what_is_wrong(output, message):
    with pytest.raises(batch.OutputMismatch, match=message):
        batch.check_output(lines(INPUT), lines(output), "s3://b/out")


def test_the_manifest_has_no_clock_and_no_run_id_in_it():
    """A rerun under a new run id must write the same bytes: nothing run-specific inside."""
    checked = batch.check_output(lines(INPUT), lines(OUTPUT), "out")
    make = lambda: batch.manifest(  # noqa: E731
        partition="2026-03-10",
        package=PACKAGE,
        transform_job="job",
        input_uri="s3://bkt/raw/transactions/dt=2026-03-10/part-",
        files=[("predictions/dt=2026-03-10/part-00000.csv", checked)],
    )
    assert make() == make()
    document = json.loads(make())
    assert document["model_package_arn"] == PACKAGE["ModelPackageArn"]
    assert document["rows"] == document["input"]["rows"] == 2
    assert document["files"][0]["sha256"] == checked.sha256
    assert "run_id" not in document and RUN.run_id not in make().decode()


def test_the_latest_approved_package_or_a_clear_error(s3, sm, bucket):
    group = unique("bi-registry")
    with pytest.raises(batch.NoApprovedModel, match=f"{group}.*no Approved model package"):
        batch.approved_package(sm, group)  # no group at all
    pending = register_package(s3, sm, bucket, group, approve=False)
    with pytest.raises(batch.NoApprovedModel, match="approve its package"):
        batch.approved_package(sm, group)
    first = register_package(s3, sm, bucket, group)
    second = register_package(s3, sm, bucket, group)
    assert batch.approved_package(sm, group)["ModelPackageArn"] == second.arn
    assert pending.arn != first.arn != second.arn
    # model_deploy's fallback reads the same registry: the newest version awaiting review
    from mlops_pipeline.deploy.approval import NothingToApprove, newest_pending

    assert newest_pending(sm, group) == pending.arn
    with pytest.raises(NothingToApprove, match="no package of group .* is PendingManualApproval"):
        newest_pending(sm, unique("bi-no-group"))


def test_inference_scores_raw_rows_with_the_training_features(tmp_path, s3, sm, bucket):
    """The handlers read raw rows as batch transform sends them (InputFilter $[1:12], the
    header line included) and answer the header with the output's column names."""
    from mlops_pipeline.containers import inference

    package = register_package(s3, sm, bucket, unique("bi-raw"))
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "xgboost-model").write_bytes(bytes(package.booster.save_raw("ubj")))
    names = package.booster.feature_names
    (model_dir / "features.json").write_text(json.dumps({"features": names}))
    (model_dir / "vocabulary.json").write_text(json.dumps(package.vocabulary))
    model = inference.model_fn(str(model_dir))

    body = datagen.render_partition(TRAIN_DAYS[0], 50, seed=5).decode()
    raw = pd.read_csv(io.StringIO(body), dtype=str, keep_default_na=False, na_values=[""])
    sent = "".join(",".join(line.split(",")[1:12]) + "\n" for line in body.splitlines())
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_MODEL_VERSION", "card-fraud/7")
        text = inference.output_fn(
            inference.predict_fn(inference.input_fn(sent, "text/csv"), model), "text/csv"
        )
    out = text.splitlines()
    assert out[0] == "score,model_version" and len(out) == 51
    scores = np.array([float(line.split(",")[0]) for line in out[1:]])
    assert {line.split(",")[1] for line in out[1:]} == {"card-fraud/7"}
    # %.8g on the way out: equal to in-process scoring within 1e-7
    assert np.allclose(scores, expected_scores(package, raw), atol=1e-7, rtol=0)
    # engineered feature rows still work as before (model_deploy's endpoints send them)
    features = ",".join(["0"] * len(names))
    assert len(inference.predict_fn(inference.input_fn(features, "text/csv"), model)) == 1
