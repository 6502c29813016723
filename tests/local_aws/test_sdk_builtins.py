"""The built-in algorithms through the SageMaker SDK v3, unchanged, pointed at local_aws by
environment only (AWS_ENDPOINT_URL): a HyperparameterTuner over a ModelTrainer with the
algorithm's image (``image_uris.retrieve``) and no script, its best model deployed with
ModelBuilder and invoked through the Endpoint it returns, and scored by ModelBuilder's
Transformer.

SDK v3 has no ``Estimator``, ``Model.deploy`` or ``Predictor``: ModelTrainer trains,
HyperparameterTuner tunes, ModelBuilder builds a ``sagemaker.core.resources.Model`` and
deploys an ``Endpoint`` (``endpoint.invoke`` replaces ``predictor.predict``), and
``ModelBuilder.transformer`` gives the Transformer. The tuner, endpoint and transform job
are waited on with ``poll=1`` (the SDK's defaults poll every 5 to 30 s).

No SageMaker config file here, on purpose: with one, the SDK re-validates it against its
JSON schema at every lookup (0.8 s each on this machine, 20 s for one ModelBuilder.build);
every S3 location is given, so no default bucket is needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.algokit import (
    CASES,
    CSV,
    Case,
    batch_rows,
    csv_rows,
    put_case_data,
    right_answers,
    tar_members,
)
from tests.conftest import ROLE_ARN, unique
from tests.jobkit import ensure_execution_role

INSTANCE = "ml.m5.large"


@dataclass
class Tuned:
    case: Case
    bucket: str
    tuner: Any
    best: Any  # the best child, a sagemaker.core.resources.TrainingJob


@pytest.fixture(scope="module")
def data_bucket(local_aws, s3) -> str:
    ensure_execution_role(local_aws.client("iam"))
    bucket = unique("sdk-builtins")
    s3.create_bucket(Bucket=bucket)
    put_case_data(s3, bucket)
    return bucket


@pytest.fixture(scope="module", params=CASES, ids=[c.algorithm for c in CASES])
def tuned(request, local_aws, data_bucket) -> Tuned:
    """One tuning job per algorithm (two children, in parallel), as the SDK starts it."""
    from sagemaker.core import image_uris
    from sagemaker.core.parameter import CategoricalParameter
    from sagemaker.core.resources import TrainingJob
    from sagemaker.core.training.configs import Compute, InputData, OutputDataConfig
    from sagemaker.train import ModelTrainer
    from sagemaker.train.tuner import HyperparameterTuner

    case: Case = request.param
    image = image_uris.retrieve(case.algorithm, local_aws.region, case.version)
    assert image == case.image
    trainer = ModelTrainer(
        training_image=image,
        role=ROLE_ARN,
        compute=Compute(instance_type=INSTANCE, instance_count=1),
        hyperparameters=case.hyperparameters,
        output_data_config=OutputDataConfig(s3_output_path=f"s3://{data_bucket}/models"),
        base_job_name=unique(case.algorithm),
    )
    name, values = case.tuned
    tuner = HyperparameterTuner(
        trainer,
        case.objective,  # the algorithm's own metric: no metric_definitions
        {name: CategoricalParameter(values)},
        strategy="Grid",
        max_parallel_jobs=2,
        base_tuning_job_name=f"sdk-{case.algorithm}"[:20],
    )
    tuner.tune(
        inputs=[
            InputData(channel_name=c, data_source=f"s3://{data_bucket}/{c}/", content_type=CSV)
            for c in ("train", case.held_out)
        ],
        wait=False,
    )
    tuner.latest_tuning_job.wait(poll=1, timeout=300)
    best = TrainingJob.get(training_job_name=tuner.best_training_job())
    return Tuned(case, data_bucket, tuner, best)


def test_tuner_optimises_the_algorithms_own_metric(tuned, s3):
    job = tuned.tuner.describe()
    assert job.hyper_parameter_tuning_job_status == "Completed", job.failure_reason
    assert job.training_job_status_counters.completed == 2
    definition = job.training_job_definition.algorithm_specification
    assert not definition.metric_definitions  # none given: the algorithm's are known
    best = job.best_training_job.final_hyper_parameter_tuning_job_objective_metric
    assert best.metric_name == tuned.case.objective
    assert 0.85 < best.value <= 1.0
    # the best child trained with one of the tuned values, and wrote its model where AWS does
    name, values = tuned.case.tuned
    assert tuned.best.hyper_parameters[name].strip('"') in {str(v) for v in values}
    artifact = tuned.best.model_artifacts.s3_model_artifacts
    assert artifact == (
        f"s3://{tuned.bucket}/models/{tuned.best.training_job_name}/output/model.tar.gz"
    )
    assert list(tar_members(s3, artifact)) == tuned.case.members


@pytest.fixture(scope="module")
def deployed(tuned, tmp_path_factory) -> Iterator[tuple[Any, Any]]:
    """(ModelBuilder, Endpoint) of the best child's model; the endpoint is deleted after."""
    from sagemaker.serve.model_builder import ModelBuilder

    builder = ModelBuilder(
        # its default, a new /tmp/sagemaker/model-builder/<uuid> per builder, stays behind
        model_path=str(tmp_path_factory.mktemp("model-builder")),
        image_uri=tuned.best.algorithm_specification.training_image,
        s3_model_data_url=tuned.best.model_artifacts.s3_model_artifacts,
        role_arn=ROLE_ARN,
        instance_type=INSTANCE,
    )
    builder.build()
    endpoint = builder.deploy(
        endpoint_name=unique(f"sdk-{tuned.case.algorithm}"), initial_instance_count=1, wait=False
    )
    endpoint.wait_for_status("InService", poll=1, timeout=120)
    yield builder, endpoint
    endpoint.delete()


def test_model_builder_deploys_and_transformer_scores_the_best_model(tuned, deployed, s3):
    builder, endpoint = deployed
    x, y = batch_rows()
    answer = endpoint.invoke(body=csv_rows(x), content_type=CSV, accept=CSV)
    assert answer.content_type == CSV
    body = answer.body.read().decode()
    assert right_answers(tuned.case, body, y) >= 0.8 * len(y)  # nearly separable: ~0.9

    output = f"s3://{tuned.bucket}/scored/{tuned.case.algorithm}/"
    transformer = builder.transformer(
        instance_count=1,
        instance_type=INSTANCE,
        output_path=output,
        accept=CSV,
        assemble_with="Line",
    )
    transformer.transform(
        f"s3://{tuned.bucket}/batch/rows.csv",
        content_type=CSV,
        split_type="Line",
        wait=False,
        logs=False,
    )
    job = transformer.latest_transform_job
    job.wait(poll=1, timeout=120)
    assert job.transform_job_status == "Completed", job.failure_reason
    key = f"scored/{tuned.case.algorithm}/rows.csv.out"
    batch = s3.get_object(Bucket=tuned.bucket, Key=key)["Body"].read().decode().splitlines()
    # the same model, the same rows: the batch answers are the endpoint's, line for line
    assert batch == tuned.case.rows(body)
