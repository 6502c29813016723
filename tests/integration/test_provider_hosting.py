"""The unmodified Amazon provider's Model, EndpointConfig and Endpoint operators and the
endpoint sensor against local_aws: real model servers behind the endpoints they create."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from tests.conftest import unique
from tests.integration.provider_kit import run_dag, states, xcom
from tests.jobkit import Artifacts, endpoint_config_request, model_request, upload_artifacts

# A two-row CSV batch per call
ROWS = [[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]]


@pytest.fixture(scope="module")
def artifacts(s3) -> Artifacts:
    return upload_artifacts(s3, "provider-hosting")


@pytest.fixture
def endpoints(sm) -> Iterator[list[str]]:
    """Names of endpoints a test creates; deleted afterwards so their model servers stop."""
    names: list[str] = []
    yield names
    for name in names:
        try:
            sm.delete_endpoint(EndpointName=name)
        except sm.exceptions.ClientError:
            pass


def model_config(art: Artifacts, which: str, *, code: str | None = None) -> dict[str, Any]:
    """A CreateModel request as the SageMaker SDK's SKLearnModel builds it."""
    return model_request(unique(f"op-model-{which}"), art.data[which], code or art.code)


def endpoint_config_config(model_name: str) -> dict[str, Any]:
    return endpoint_config_request(unique("op-config"), {"AllTraffic": (model_name, 1.0)})


def predict(runtime: Any, endpoint: str) -> list[float]:
    body = "\n".join(",".join(map(str, row)) for row in ROWS).encode()
    response = runtime.invoke_endpoint(EndpointName=endpoint, Body=body, ContentType="text/csv")
    return [float(line) for line in response["Body"].read().decode().split()]


def in_process(model: LinearRegression) -> list[float]:
    # the container casts CSV input to float32 before predict
    return model.predict(np.array(ROWS, dtype=np.float32)).tolist()


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_deploy_then_create_again_updates_the_endpoint_in_place(
    aws_conn, sm, runtime, artifacts, endpoints, deferrable, capfd, caplog
):
    """operation="create" on an existing endpoint falls back to UpdateEndpoint; the provider
    recognises the case only by SageMaker's "Cannot create already existing endpoint"."""
    from airflow.providers.amazon.aws.operators.sagemaker import (
        SageMakerEndpointConfigOperator,
        SageMakerEndpointOperator,
        SageMakerModelOperator,
    )
    from airflow.providers.amazon.aws.sensors.sagemaker import SageMakerEndpointSensor

    endpoint = unique("op-endpoint")
    endpoints.append(endpoint)
    model_a = model_config(artifacts, "a")
    config_a = endpoint_config_config(model_a["ModelName"])
    model_b = model_config(artifacts, "b")
    config_b = endpoint_config_config(model_b["ModelName"])
    common = {"aws_conn_id": "aws_default"}
    waiting = {"check_interval": 1, "deferrable": deferrable, **common}

    run = run_dag(
        f"t_hosting_{'deferrable' if deferrable else 'sync'}",
        lambda: SageMakerModelOperator(task_id="model", config=model_a, **common),
        lambda: SageMakerEndpointConfigOperator(task_id="config", config=config_a, **common),
        lambda: SageMakerEndpointOperator(
            task_id="deploy",
            config={"EndpointName": endpoint, "EndpointConfigName": config_a["EndpointConfigName"]},
            **waiting,
        ),
        # model_deploy's second run: everything new, but the endpoint name is the same
        lambda: SageMakerEndpointOperator(
            task_id="redeploy",
            config={
                "Model": model_b,
                "EndpointConfig": config_b,
                "Endpoint": {
                    "EndpointName": endpoint,
                    "EndpointConfigName": config_b["EndpointConfigName"],
                    "Tags": [{"Key": "airflow_dag_id", "Value": "model_deploy"}],
                },
            },
            operation="create",
            **waiting,
        ),
        lambda: SageMakerEndpointSensor(
            task_id="watch",
            endpoint_name=endpoint,
            mode="poke",
            poke_interval=1,
            timeout=60,
            **common,
        ),
    )
    out = capfd.readouterr().out
    assert run.state == "success", out[-3000:]

    described = sm.describe_endpoint(EndpointName=endpoint)
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == config_b["EndpointConfigName"]
    # model b really serves now
    assert predict(runtime, endpoint) == pytest.approx(in_process(artifacts.models["b"]), rel=1e-5)
    assert f"cannot create already existing endpoint {endpoint}, updating it" in out
    assert "Provided tags will be ignored in the update operation" in out
    assert "job currently InService" in out  # the sensor's poke log
    if deferrable:  # both endpoint tasks deferred; dag.test() runs triggers in line
        assert caplog.text.count("[DAG TEST] running trigger in line") == 2

    # XCom: each operator returns the describe responses of what it made
    model_x = xcom(run, "model")["Model"]
    assert model_x["ModelName"] == model_a["ModelName"]
    assert model_x["PrimaryContainer"]["ModelDataUrl"] == artifacts.data["a"]
    assert model_x["ModelArn"] == sm.describe_model(ModelName=model_a["ModelName"])["ModelArn"]
    config_x = xcom(run, "config")["EndpointConfig"]
    assert config_x["EndpointConfigName"] == config_a["EndpointConfigName"]
    assert config_x["ProductionVariants"][0]["ModelName"] == model_a["ModelName"]
    deployed = xcom(run, "deploy")
    assert deployed["Endpoint"]["EndpointStatus"] == "InService"
    assert deployed["Endpoint"]["EndpointConfigName"] == config_a["EndpointConfigName"]
    assert deployed["EndpointConfig"]["EndpointConfigName"] == config_a["EndpointConfigName"]
    redeployed = xcom(run, "redeploy")
    assert redeployed["Endpoint"]["EndpointStatus"] == "InService"
    assert redeployed["Endpoint"]["EndpointConfigName"] == config_b["EndpointConfigName"]
    [variant] = redeployed["EndpointConfig"]["ProductionVariants"]
    assert variant["ModelName"] == model_b["ModelName"]
    # the tags of the first create stay; the redeploy's were dropped by the provider
    assert sm.list_tags(ResourceArn=described["EndpointArn"])["Tags"] == []


def test_an_endpoint_that_cannot_serve_fails_the_tasks(aws_conn, sm, artifacts, endpoints, capfd):
    """The deferrable operator and the sensor name the FailureReason; the sync waiter
    only says the endpoint reached Failed (the provider's behaviour on AWS too)."""
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerEndpointOperator
    from airflow.providers.amazon.aws.sensors.sagemaker import SageMakerEndpointSensor

    broken = model_config(artifacts, "a", code=artifacts.broken_code)
    names = {"deferrable": unique("op-broken-d"), "sync": unique("op-broken-s")}
    endpoints.extend(names.values())
    config = endpoint_config_config(broken["ModelName"])

    def deploy(task_id: str, endpoint: str, full: bool, deferrable: bool) -> Any:
        spec = {"EndpointName": endpoint, "EndpointConfigName": config["EndpointConfigName"]}
        return SageMakerEndpointOperator(
            task_id=task_id,
            config={"Model": broken, "EndpointConfig": config, "Endpoint": spec} if full else spec,
            check_interval=1,
            deferrable=deferrable,
            aws_conn_id="aws_default",
            trigger_rule="all_done",
        )

    run = run_dag(
        "t_hosting_broken",
        lambda: deploy("deploy_deferrable", names["deferrable"], True, True),
        lambda: deploy("deploy_sync", names["sync"], False, False),
        lambda: SageMakerEndpointSensor(
            task_id="watch",
            endpoint_name=names["sync"],
            mode="poke",
            poke_interval=1,
            timeout=60,
            aws_conn_id="aws_default",
            trigger_rule="all_done",
        ),
    )
    out = capfd.readouterr().out
    assert states(run) == {
        "deploy_deferrable": "failed",
        "deploy_sync": "failed",
        "watch": "failed",
    }
    for name in names.values():
        failed = sm.describe_endpoint(EndpointName=name)
        assert failed["EndpointStatus"] == "Failed"
        assert "weights file is corrupt: retrain the model" in failed["FailureReason"]
    assert "Error while running job: {'status': 'failed'" in out  # deferrable
    assert "Waiter EndpointInService failed: Waiter encountered a terminal failure state" in out
    assert "Sagemaker job failed for the following reason:" in out  # sensor
    assert out.count("weights file is corrupt: retrain the model") >= 2
