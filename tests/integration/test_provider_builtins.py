"""The built-in algorithms (k-NN, Linear Learner, XGBoost in algorithm mode) through the
unmodified Amazon provider's operators in dag.test(): a tuning job on the algorithm's own
metric, its best model hosted (Model, EndpointConfig and Endpoint operators) and scored in
batch (Transform operator). One DAG per algorithm, run once; the tests read what it left."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.algokit import CASES, CSV, Case, batch_rows, csv_rows, put_case_data, right_answers
from tests.conftest import ROLE_ARN, unique
from tests.integration.provider_kit import run_dag, xcom
from tests.jobkit import endpoint_config_request

BEST_JOB = "ti.xcom_pull(task_ids='tune')['Tuning']['BestTrainingJob']['TrainingJobName']"


@dataclass
class Run:
    case: Case
    bucket: str
    names: dict[str, str]  # tuning, model, config, endpoint, transform -> resource name
    dag_run: Any


def tuning_config(case: Case, bucket: str, name: str) -> dict[str, Any]:
    """A Grid search with no MetricDefinitions: the algorithm's metric is the objective."""
    tuned, values = case.tuned
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Grid",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": case.objective},
            "ResourceLimits": {"MaxParallelTrainingJobs": 2},
            "ParameterRanges": {
                "CategoricalParameterRanges": [{"Name": tuned, "Values": [str(v) for v in values]}]
            },
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {"TrainingImage": case.image, "TrainingInputMode": "File"},
            "StaticHyperParameters": {
                k: str(v) for k, v in case.hyperparameters.items() if k != tuned
            },
            "InputDataConfig": [
                {
                    "ChannelName": channel,
                    "ContentType": CSV,
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": f"s3://{bucket}/{channel}/",
                        }
                    },
                }
                for channel in ("train", case.held_out)
            ],
            "RoleArn": ROLE_ARN,
            "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/models"},
            "ResourceConfig": {
                "InstanceType": "ml.m5.large",
                "InstanceCount": 1,
                "VolumeSizeInGB": 5,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 300},
        },
    }


def transform_config(bucket: str, name: str, model: str) -> dict[str, Any]:
    return {
        "Transform": {
            "TransformJobName": name,
            "ModelName": model,
            "TransformInput": {
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{bucket}/batch/rows.csv",
                    }
                },
                "ContentType": CSV,
                "SplitType": "Line",
            },
            "TransformOutput": {
                "S3OutputPath": f"s3://{bucket}/scored/",
                "Accept": CSV,
                "AssembleWith": "Line",
            },
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        }
    }


@pytest.fixture(scope="module", params=CASES, ids=[c.algorithm for c in CASES])
def run(request, aws_conn, s3, sm) -> Iterator[Run]:
    """tune -> model (the best child's artefact, found by its job name in the tuning XCom,
    where AWS writes it) -> endpoint config -> endpoint -> transform, in one dag.test()."""
    from airflow.providers.amazon.aws.operators.sagemaker import (
        SageMakerEndpointConfigOperator,
        SageMakerEndpointOperator,
        SageMakerModelOperator,
        SageMakerTransformOperator,
        SageMakerTuningOperator,
    )

    case: Case = request.param
    bucket = unique(f"op-{case.algorithm}")
    s3.create_bucket(Bucket=bucket)
    put_case_data(s3, bucket)
    names = {
        kind: unique(f"op-{case.algorithm[:6]}-{kind}")[:32]
        for kind in ("tuning", "model", "config", "endpoint", "transform")
    }
    model = {
        "ModelName": names["model"],
        "PrimaryContainer": {
            "Image": case.image,
            "ModelDataUrl": f"s3://{bucket}/models/{{{{ {BEST_JOB} }}}}/output/model.tar.gz",
        },
        "ExecutionRoleArn": ROLE_ARN,
    }
    common = {"aws_conn_id": aws_conn}
    dag_run = run_dag(
        f"t_builtin_{case.algorithm.replace('-', '_')}",
        lambda: SageMakerTuningOperator(
            task_id="tune",
            config=tuning_config(case, bucket, names["tuning"]),
            check_interval=1,
            **common,
        ),
        lambda: SageMakerModelOperator(task_id="model", config=model, **common),
        lambda: SageMakerEndpointConfigOperator(
            task_id="config",
            config=endpoint_config_request(names["config"], {"AllTraffic": (names["model"], 1.0)}),
            **common,
        ),
        lambda: SageMakerEndpointOperator(
            task_id="deploy",
            config={"EndpointName": names["endpoint"], "EndpointConfigName": names["config"]},
            check_interval=1,
            **common,
        ),
        lambda: SageMakerTransformOperator(
            task_id="transform",
            config=transform_config(bucket, names["transform"], names["model"]),
            check_interval=1,
            **common,
        ),
    )
    yield Run(case, bucket, names, dag_run)
    try:
        sm.delete_endpoint(EndpointName=names["endpoint"])
    except sm.exceptions.ClientError:
        pass


def test_tuning_operator_finds_the_best_child_by_the_algorithms_metric(run, s3, sm):
    assert run.dag_run.state == "success"
    tuning = xcom(run.dag_run, "tune")["Tuning"]
    assert tuning["HyperParameterTuningJobStatus"] == "Completed"
    assert tuning["TrainingJobStatusCounters"]["Completed"] == 2
    objective = tuning["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]
    assert objective["MetricName"] == run.case.objective
    assert 0.85 < objective["Value"] <= 1.0
    # the best child is the one of the two with the better metric
    children = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=run.names["tuning"]
    )["TrainingJobSummaries"]
    scores = {
        c["TrainingJobName"]: c["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
        for c in children
    }
    assert objective["Value"] == max(scores.values())
    best = tuning["BestTrainingJob"]["TrainingJobName"]
    assert scores[best] == objective["Value"]
    model = xcom(run.dag_run, "model")["Model"]
    assert model["PrimaryContainer"]["ModelDataUrl"] == (
        f"s3://{run.bucket}/models/{best}/output/model.tar.gz"
    )


def test_hosting_and_transform_operators_serve_the_best_model(run, sm, s3, runtime):
    assert run.dag_run.state == "success"
    deployed = xcom(run.dag_run, "deploy")["Endpoint"]
    assert deployed["EndpointStatus"] == "InService"
    assert deployed["EndpointConfigName"] == run.names["config"]
    x, y = batch_rows()
    answer = runtime.invoke_endpoint(
        EndpointName=run.names["endpoint"], Body=csv_rows(x), ContentType=CSV, Accept=CSV
    )
    body = answer["Body"].read().decode()
    assert right_answers(run.case, body, y) >= 0.8 * len(y)  # nearly separable: ~0.9

    transform = xcom(run.dag_run, "transform")["Transform"]
    assert transform["TransformJobStatus"] == "Completed"
    assert transform["ModelName"] == run.names["model"]
    out = s3.get_object(Bucket=run.bucket, Key="scored/rows.csv.out")["Body"].read().decode()
    # the same model on the same rows: the batch's lines are the endpoint's answers
    assert out.splitlines() == run.case.rows(body)
