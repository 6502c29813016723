"""Models, endpoint configs, endpoints and InvokeEndpoint: real model servers behind boto3."""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError
from sklearn.linear_model import LinearRegression

from tests.conftest import ROLE_ARN, SKLEARN_IMAGE, ServerProcess, admin, unique, wait_for
from tests.jobkit import (
    Artifacts,
    endpoint_config_request,
    model_request,
    upload_artifacts,
    upload_source,
)

ROW = [1.0, 2.0, 3.0]


@pytest.fixture(scope="module")
def artifacts(s3) -> Artifacts:
    return upload_artifacts(s3)


def create_model(
    sm: Any, art: Artifacts, which: str = "a", *, code: str | None = None, **container: Any
) -> str:
    name = unique(f"model-{which}")
    sm.create_model(**model_request(name, art.data[which], code or art.code, **container))
    return name


def create_config(sm: Any, variants: dict[str, tuple[str, float]]) -> str:
    """variants: variant name -> (model name, initial weight)."""
    name = unique("config")
    sm.create_endpoint_config(**endpoint_config_request(name, variants))
    return name


def describe(sm: Any, endpoint: str) -> dict[str, Any]:
    return wait_for(lambda: sm.describe_endpoint(EndpointName=endpoint), "EndpointStatus")


def deploy(sm: Any, config: str, **kwargs: Any) -> str:
    endpoint = unique("endpoint")
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config, **kwargs)
    assert sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "Creating"
    done = describe(sm, endpoint)
    assert done["EndpointStatus"] == "InService", done.get("FailureReason")
    return endpoint


def predict(runtime: Any, endpoint: str, row: list[float] = ROW, **kwargs: Any) -> float:
    body = ",".join(map(str, row)).encode()
    response = runtime.invoke_endpoint(
        EndpointName=endpoint, Body=body, ContentType="text/csv", **kwargs
    )
    return float(response["Body"].read())


def in_process(model: LinearRegression, rows: list[list[float]]) -> np.ndarray:
    # the container casts CSV and JSON input to float32 before predict
    return model.predict(np.array(rows, dtype=np.float32))


@pytest.fixture(scope="module")
def served(sm, artifacts) -> str:
    """One InService endpoint (model a, variant AllTraffic) shared by the read-only tests."""
    config = create_config(sm, {"AllTraffic": (create_model(sm, artifacts, "a"), 1.0)})
    return deploy(sm, config)


def model_server_processes(marker: str) -> list[int]:
    """pids of model servers whose working directory (their sandbox) mentions ``marker``:
    warm ones, forked from the serving zygote, and cold ``python -m`` ones alike."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if "local_aws.sagemaker" in cmdline and marker in cwd:
            pids.append(int(entry.name))
    return pids


# -- serving -----------------------------------------------------------------------------------
def test_endpoint_serves_csv_and_json_like_in_process(sm, runtime, logs, artifacts, served):
    endpoint = sm.describe_endpoint(EndpointName=served)
    assert endpoint["EndpointArn"].endswith(f":endpoint/{served}")
    [variant] = endpoint["ProductionVariants"]
    assert variant["VariantName"] == "AllTraffic"
    assert variant["DeployedImages"][0]["SpecifiedImage"] == SKLEARN_IMAGE
    assert (variant["CurrentWeight"], variant["DesiredWeight"]) == (1.0, 1.0)
    assert (variant["CurrentInstanceCount"], variant["DesiredInstanceCount"]) == (1, 1)
    assert endpoint["LastModifiedTime"] >= endpoint["CreationTime"]
    listed = sm.list_endpoints(NameContains=served, StatusEquals="InService")["Endpoints"]
    assert [e["EndpointName"] for e in listed] == [served]

    model = artifacts.models["a"]
    rows = [ROW, [0.0, 0.0, 0.0], [-1.5, 4.0, 0.25]]
    expected = in_process(model, rows)

    csv = runtime.invoke_endpoint(
        EndpointName=served,
        Body="\n".join(",".join(map(str, r)) for r in rows).encode(),
        ContentType="text/csv",
        Accept="text/csv",
        CustomAttributes="trace=1",
    )
    assert csv["ContentType"].startswith("text/csv")
    assert csv["InvokedProductionVariant"] == "AllTraffic"
    got = [float(line) for line in csv["Body"].read().decode().split()]
    assert got == pytest.approx(expected.tolist(), rel=1e-6)

    answer = runtime.invoke_endpoint(
        EndpointName=served,
        Body=json.dumps(rows).encode(),
        ContentType="application/json",
        Accept="application/json",
    )
    assert answer["ContentType"].startswith("application/json")
    assert json.loads(answer["Body"].read()) == pytest.approx(expected.tolist(), rel=1e-6)

    streams = logs.describe_log_streams(logGroupName=f"/aws/sagemaker/Endpoints/{served}")
    [stream] = streams["logStreams"]
    assert stream["logStreamName"].startswith("AllTraffic/i-")

    # the latency this adds is measured by `make bench` (bench_endpoints), never asserted in a test


def test_weighted_routing_target_variant_and_weight_updates(sm, runtime, artifacts):
    config = create_config(
        sm,
        {
            "Blue": (create_model(sm, artifacts, "a"), 1.0),
            "Green": (create_model(sm, artifacts, "b"), 3.0),
        },
    )
    endpoint = deploy(sm, config)
    expected = {
        "Blue": in_process(artifacts.models["a"], [ROW])[0],
        "Green": in_process(artifacts.models["b"], [ROW])[0],
    }

    def invoke(**kwargs: Any) -> str:
        response = runtime.invoke_endpoint(
            EndpointName=endpoint, Body=b"1,2,3", ContentType="text/csv", **kwargs
        )
        variant = response["InvokedProductionVariant"]
        assert float(response["Body"].read()) == pytest.approx(expected[variant], rel=1e-6)
        return variant

    split = Counter(invoke() for _ in range(400))
    # expected 300 (sd 8.7): a band of ±60 is ~7 sd, so it cannot flake
    assert 240 <= split["Green"] <= 360, split
    assert split["Blue"] + split["Green"] == 400

    assert {invoke(TargetVariant="Blue") for _ in range(20)} == {"Blue"}
    with pytest.raises(ClientError) as err:
        invoke(TargetVariant="Purple")
    assert err.value.response["Error"]["Code"] == "ValidationError"
    assert "Purple" in err.value.response["Error"]["Message"]

    sm.update_endpoint_weights_and_capacities(
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[
            {"VariantName": "Blue", "DesiredWeight": 0.0},
            {"VariantName": "Green", "DesiredWeight": 1.0, "DesiredInstanceCount": 2},
        ],
    )
    updated = describe(sm, endpoint)
    assert updated["EndpointStatus"] == "InService"
    weights = {v["VariantName"]: v for v in updated["ProductionVariants"]}
    assert weights["Blue"]["CurrentWeight"] == 0.0
    assert weights["Green"]["CurrentInstanceCount"] == 2
    assert {invoke() for _ in range(50)} == {"Green"}
    # a variant with weight 0 gets no traffic, but can still be targeted
    assert invoke(TargetVariant="Blue") == "Blue"

    with pytest.raises(ClientError) as err:
        sm.update_endpoint_weights_and_capacities(
            EndpointName=endpoint,
            DesiredWeightsAndCapacities=[{"VariantName": "Purple", "DesiredWeight": 1.0}],
        )
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "'Purple'" in err.value.response["Error"]["Message"]
    sm.delete_endpoint(EndpointName=endpoint)


def test_update_endpoint_swaps_model_and_rolls_back_a_broken_config(sm, runtime, artifacts):
    model_a = create_model(sm, artifacts, "a")
    endpoint = deploy(sm, create_config(sm, {"AllTraffic": (model_a, 1.0)}))
    before = predict(runtime, endpoint)
    assert before == pytest.approx(in_process(artifacts.models["a"], [ROW])[0], rel=1e-6)

    config_b = create_config(sm, {"AllTraffic": (create_model(sm, artifacts, "b"), 1.0)})
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=config_b)
    updating = sm.describe_endpoint(EndpointName=endpoint)
    assert updating["EndpointStatus"] == "Updating"
    assert updating["PendingDeploymentSummary"]["EndpointConfigName"] == config_b
    # the old fleet keeps serving while the new one starts
    assert predict(runtime, endpoint) == pytest.approx(before)
    with pytest.raises(ClientError) as err:
        sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=config_b)
    assert "Cannot update in-progress endpoint" in err.value.response["Error"]["Message"]

    swapped = describe(sm, endpoint)
    assert swapped["EndpointStatus"] == "InService", swapped.get("FailureReason")
    assert swapped["EndpointConfigName"] == config_b
    assert "PendingDeploymentSummary" not in swapped
    after = predict(runtime, endpoint)
    assert after == pytest.approx(in_process(artifacts.models["b"], [ROW])[0], rel=1e-6)
    assert after != pytest.approx(before)

    broken = create_model(sm, artifacts, "a", code=artifacts.broken_code)
    sm.update_endpoint(
        EndpointName=endpoint,
        EndpointConfigName=create_config(sm, {"AllTraffic": (broken, 1.0)}),
    )
    rolled_back = describe(sm, endpoint)
    assert rolled_back["EndpointStatus"] == "InService"
    assert rolled_back["EndpointConfigName"] == config_b
    assert "weights file is corrupt" in rolled_back["FailureReason"]
    assert predict(runtime, endpoint) == pytest.approx(after)
    sm.delete_endpoint(EndpointName=endpoint)


def test_blue_green_canary_shifts_traffic_and_alarm_rolls_back(sm, runtime, cloudwatch, artifacts):
    endpoint = deploy(
        sm, create_config(sm, {"AllTraffic": (create_model(sm, artifacts, "a"), 1.0)})
    )
    old = predict(runtime, endpoint)
    config_b = create_config(sm, {"AllTraffic": (create_model(sm, artifacts, "b"), 1.0)})
    alarm = unique("canary-alarm")
    cloudwatch.put_metric_alarm(
        AlarmName=alarm,
        Namespace="AWS/SageMaker",
        MetricName="Invocation5XXErrors",
        Dimensions=[{"Name": "EndpointName", "Value": endpoint}],
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    canary = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50},
                "WaitIntervalInSeconds": 3,
            }
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": alarm}]},
    }
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=config_b, DeploymentConfig=canary)

    deadline = time.monotonic() + 120
    while True:
        pending = sm.describe_endpoint(EndpointName=endpoint).get("PendingDeploymentSummary")
        status = (pending or {}).get("ProductionVariants", [{}])[0].get("VariantStatus", [{}])
        if status[0].get("StatusMessage", "").startswith("50%"):
            break
        assert time.monotonic() < deadline, "the canary step never started"
        time.sleep(0.05)
    during = Counter(round(predict(runtime, endpoint), 6) for _ in range(40))
    assert len(during) == 2, f"both fleets should serve during the canary bake: {during}"

    done = describe(sm, endpoint)
    assert done["EndpointStatus"] == "InService", done.get("FailureReason")
    assert done["EndpointConfigName"] == config_b
    assert (
        done["LastDeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"]
        == "CANARY"
    )
    new = predict(runtime, endpoint)
    assert new != pytest.approx(old)

    # the alarm fires during the next canary: traffic goes back to the serving fleet
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="test")
    config_a = create_config(sm, {"AllTraffic": (create_model(sm, artifacts, "a"), 1.0)})
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=config_a, DeploymentConfig=canary)
    rolled_back = describe(sm, endpoint)
    assert rolled_back["EndpointStatus"] == "InService"
    assert rolled_back["EndpointConfigName"] == config_b
    assert alarm in rolled_back["FailureReason"]
    assert {round(predict(runtime, endpoint), 6) for _ in range(10)} == {round(new, 6)}
    sm.delete_endpoint(EndpointName=endpoint)


# -- failures --------------------------------------------------------------------------------
def test_endpoints_that_cannot_serve_fail_with_the_reason(sm, s3, runtime, artifacts):
    cases = {
        "weights file is corrupt: retrain the model": create_model(
            sm, artifacts, "a", code=artifacts.broken_code
        ),
        "cannot run image": create_model(
            sm, artifacts, "a", Image="123456789012.dkr.ecr.us-east-1.amazonaws.com/custom:1"
        ),
        "Failed to download model data": create_model(
            sm, artifacts, "a", ModelDataUrl=f"s3://{artifacts.bucket}/nothing/model.tar.gz"
        ),
    }
    endpoints = {}
    for reason, model in cases.items():
        endpoints[reason] = unique("endpoint-fail")
        config = create_config(sm, {"AllTraffic": (model, 1.0)})
        sm.create_endpoint(EndpointName=endpoints[reason], EndpointConfigName=config)
    for reason, endpoint in endpoints.items():
        failed = describe(sm, endpoint)
        assert failed["EndpointStatus"] == "Failed"
        assert reason in failed["FailureReason"]
        with pytest.raises(ClientError) as err:
            predict(runtime, endpoint)
        assert err.value.response["Error"]["Code"] == "ValidationError"
        assert "Failed" in err.value.response["Error"]["Message"]
        with pytest.raises(ClientError) as err:
            sm.update_endpoint(EndpointName=endpoint, EndpointConfigName="anything")
        assert err.value.response["Error"]["Code"] == "ValidationException"
        if "corrupt" in reason:  # SageMaker's wording, with the cause from the log
            assert "did not pass the ping health check" in failed["FailureReason"]
        sm.delete_endpoint(EndpointName=endpoint)


def test_variant_fault_is_a_model_error_counted_in_cloudwatch(
    local_aws, runtime, cloudwatch, served
):
    def set_fault(error_rate: float) -> None:
        admin(
            local_aws,
            f"/_local_aws/faults/endpoints/{served}/variants/AllTraffic",
            {"error_rate": error_rate, "latency_ms": 100 * error_rate, "status": 503},
        )

    started = time.time() - 60
    set_fault(1.0)
    try:
        for _ in range(5):
            began = time.monotonic()
            with pytest.raises(ClientError) as err:
                predict(runtime, served)
            assert time.monotonic() - began >= 0.1  # the fault's added latency
            error = err.value.response
            assert error["Error"]["Code"] == "ModelError"
            assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
            assert error["OriginalStatusCode"] == 503
            assert "injected fault" in error["OriginalMessage"]
            assert (
                f"/aws/sagemaker/Endpoints/{served}:log-stream:AllTraffic/i-"
                in (error["LogStreamArn"])
            )
    finally:
        set_fault(0.0)
    assert predict(runtime, served) > 0

    def total(metric: str, statistic: str = "Sum") -> float:
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/SageMaker",
            MetricName=metric,
            Dimensions=[
                {"Name": "EndpointName", "Value": served},
                {"Name": "VariantName", "Value": "AllTraffic"},
            ],
            StartTime=started,
            EndTime=time.time() + 60,
            Period=60,
            Statistics=[statistic],
        )["Datapoints"]
        if statistic == "Maximum":
            return max((p[statistic] for p in points), default=0.0)
        return sum(p[statistic] for p in points)

    deadline = time.monotonic() + 20
    while total("Invocation5XXErrors") < 5:
        assert time.monotonic() < deadline, "Invocation5XXErrors never reached CloudWatch"
        time.sleep(0.5)
    assert total("Invocation5XXErrors") == 5
    assert total("Invocations") >= 6
    assert total("ModelLatency", "Maximum") >= 100_000  # microseconds, as SageMaker reports
    assert total("OverheadLatency", "SampleCount") >= 6
    assert total("Invocation4XXErrors") == 0


def test_a_metric_read_sees_every_call_made_before_it_in_its_second(runtime, cloudwatch, served):
    """A canary analysis reads right after its bake: the datapoints must be in already
    (local_aws publishes them before the read), each stamped with the second of its call."""
    start = math.floor(time.time()) + 1
    wait_for_clock(start)  # no call of an earlier test shares a second with these
    for _ in range(7):
        predict(runtime, served)
    end = time.time()
    wait_for_clock(math.floor(end) + 1)  # the last second is over: nothing more lands in it

    def read(begin: float, until: float) -> list[dict[str, Any]]:
        return cloudwatch.get_metric_statistics(
            Namespace="AWS/SageMaker",
            MetricName="Invocations",
            Dimensions=[
                {"Name": "EndpointName", "Value": served},
                {"Name": "VariantName", "Value": "AllTraffic"},
            ],
            StartTime=begin,
            EndTime=until,
            Period=1,
            Statistics=["Sum"],
        )["Datapoints"]

    points = read(start, math.floor(end) + 1)  # the first read, no waiting for a flush
    assert sum(p["Sum"] for p in points) == 7
    for point in points:
        assert start <= point["Timestamp"].timestamp() <= end


def wait_for_clock(at: float) -> None:
    while time.time() < at:
        time.sleep(min(0.05, max(0.0, at - time.time())))


def test_duplicate_and_missing_resources_get_sagemakers_errors(sm, runtime, artifacts, served):
    def error(call: Any, **kwargs: Any) -> tuple[str, str]:
        with pytest.raises(ClientError) as err:
            call(**kwargs)
        return err.value.response["Error"]["Code"], err.value.response["Error"]["Message"]

    arn = "arn:aws:sagemaker:us-east-1:123456789012"
    model = create_model(sm, artifacts, "a")
    described = sm.describe_model(ModelName=model)
    assert described["PrimaryContainer"]["ModelDataUrl"] == artifacts.data["a"]
    assert model in [m["ModelName"] for m in sm.list_models(NameContains=model)["Models"]]
    assert error(
        sm.create_model,
        ModelName=model,
        PrimaryContainer={"Image": SKLEARN_IMAGE},
        ExecutionRoleArn=ROLE_ARN,
    ) == ("ValidationException", f'Cannot create already existing model "{arn}:model/{model}".')
    assert error(sm.describe_model, ModelName="no-such-model") == (
        "ValidationException",
        f'Could not find model "{arn}:model/no-such-model".',
    )

    config = create_config(sm, {"AllTraffic": (model, 1.0)})
    assert (
        sm.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"][0]["ModelName"]
        == model
    )
    assert error(
        sm.create_endpoint_config,
        EndpointConfigName=config,
        ProductionVariants=[
            {
                "VariantName": "v",
                "ModelName": model,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    ) == (
        "ValidationException",
        f'Cannot create already existing endpoint configuration "{arn}:endpoint-config/{config}".',
    )
    assert error(sm.describe_endpoint_config, EndpointConfigName="no-such-config") == (
        "ValidationException",
        f'Could not find endpoint configuration "{arn}:endpoint-config/no-such-config".',
    )
    assert error(
        sm.create_endpoint_config,
        EndpointConfigName=unique("config"),
        ProductionVariants=[
            {
                "VariantName": "v",
                "ModelName": "no-such-model",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    ) == ("ValidationException", f'Could not find model "{arn}:model/no-such-model".')

    code, message = error(sm.create_endpoint, EndpointName=served, EndpointConfigName=config)
    assert code == "ValidationException"
    assert message.startswith("Cannot create already existing endpoint")
    assert message == f'Cannot create already existing endpoint "{arn}:endpoint/{served}".'
    assert error(sm.describe_endpoint, EndpointName="no-such-endpoint") == (
        "ValidationException",
        f'Could not find endpoint "{arn}:endpoint/no-such-endpoint".',
    )
    assert error(sm.delete_endpoint, EndpointName="no-such-endpoint")[0] == "ValidationException"
    assert (
        error(
            sm.create_endpoint, EndpointName=unique("endpoint"), EndpointConfigName="no-such-config"
        )[1]
        == f'Could not find endpoint configuration "{arn}:endpoint-config/no-such-config".'
    )
    assert error(
        runtime.invoke_endpoint, EndpointName="no-such-endpoint", Body=b"1", ContentType="text/csv"
    ) == ("ValidationError", "Endpoint no-such-endpoint of account 123456789012 not found.")

    sm.delete_endpoint_config(EndpointConfigName=config)
    sm.delete_model(ModelName=model)
    assert error(sm.delete_model, ModelName=model)[0] == "ValidationException"
    assert error(sm.delete_endpoint_config, EndpointConfigName=config)[0] == "ValidationException"


def test_delete_endpoint_stops_its_model_servers(local_aws, sm, runtime, artifacts):
    config = create_config(sm, {"AllTraffic": (create_model(sm, artifacts, "a"), 1.0)})
    endpoint = deploy(sm, config)
    marker = os.path.join("sandboxes", "endpoints", endpoint, "")
    assert len(model_server_processes(marker)) == 1
    sm.delete_endpoint(EndpointName=endpoint)
    assert model_server_processes(marker) == []
    with pytest.raises(ClientError) as err:
        sm.describe_endpoint(EndpointName=endpoint)
    assert err.value.response["Error"]["Message"].startswith("Could not find endpoint")
    with pytest.raises(ClientError) as err:
        predict(runtime, endpoint)
    assert err.value.response["Error"]["Message"].endswith("not found.")
    assert endpoint not in [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]]
    # the config and model are untouched: the same endpoint name can be deployed again
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    assert describe(sm, endpoint)["EndpointStatus"] == "InService"
    sm.delete_endpoint(EndpointName=endpoint)


WHERE_AM_I = """
import json, os

def model_fn(model_dir):
    return {"files": sorted(os.listdir("/opt/ml/model"))}

def transform_fn(model, body, content_type, accept):
    with open("/proc/%d/cmdline" % os.getppid(), "rb") as fh:
        parent = fh.read().replace(b"\\0", b" ").decode()
    info = {**model, "opt_ml": sorted(os.listdir("/opt/ml")), "who": os.environ.get("WHO"),
            "parent": parent, "cwd": os.getcwd()}
    return json.dumps(info), "application/json"
"""


def test_model_servers_fork_warm_each_in_its_own_opt_ml(s3, sm, runtime, artifacts):
    """Model servers start from the serving zygote (no imports to pay), yet each is what a
    cold container would be: its own /opt/ml with its model and code, its Environment."""
    code = upload_source(s3, artifacts.bucket, "code/where.tar.gz", {"inference.py": WHERE_AM_I})
    seen = []
    for who in ("first", "second"):
        name = unique(f"model-{who}")
        request = model_request(name, artifacts.data["a" if who == "first" else "b"], code)
        request["PrimaryContainer"]["Environment"]["WHO"] = who
        sm.create_model(**request)
        endpoint = deploy(sm, create_config(sm, {"AllTraffic": (name, 1.0)}))
        response = runtime.invoke_endpoint(
            EndpointName=endpoint, Body=b"1,2,3", ContentType="text/csv"
        )
        seen.append(json.loads(response["Body"].read()))
        marker = os.path.join("sandboxes", "endpoints", endpoint, "")
        assert len(model_server_processes(marker)) == 1
    for who, info in zip(("first", "second"), seen, strict=True):
        assert info["who"] == who
        assert "local_aws.sagemaker.warm_serving" in info["parent"]  # forked, not started cold
        assert "model.joblib" in info["files"]
        assert {"model", "code"} <= set(info["opt_ml"])
    assert seen[0]["cwd"] != seen[1]["cwd"]  # a sandbox each


# -- restart -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_endpoints_serve_again_after_a_restart(tmp_path):
    server = ServerProcess(tmp_path / "data").start()
    try:
        s3, sm, runtime = (server.client(s) for s in ("s3", "sagemaker", "sagemaker-runtime"))
        art = upload_artifacts(s3)
        config = create_config(sm, {"AllTraffic": (create_model(sm, art, "a"), 1.0)})
        serving = deploy(sm, config)
        before = predict(runtime, serving)
        creating = unique("endpoint")
        sm.create_endpoint(EndpointName=creating, EndpointConfigName=config)
        server.stop()  # SIGTERM while `creating` is still Creating
        marker = str(tmp_path / "data")
        # warm model servers are the zygote's children: they end as it does, within moments
        deadline = time.monotonic() + 30
        while model_server_processes(marker):
            assert time.monotonic() < deadline, "model servers outlived the server"
            time.sleep(0.2)

        server.start()
        assert sm.describe_endpoint(EndpointName=serving)["EndpointStatus"] == "InService"
        assert predict(runtime, serving) == pytest.approx(before)
        finished = describe(sm, creating)
        assert finished["EndpointStatus"] == "InService", finished.get("FailureReason")
        assert predict(runtime, creating) == pytest.approx(before)
    finally:
        server.stop()
    deadline = time.monotonic() + 30
    while model_server_processes(str(tmp_path / "data")):
        assert time.monotonic() < deadline, "model servers outlived the server"
        time.sleep(0.2)


def test_the_description_page_shows_what_describe_endpoint_does(local_aws, sm, served):
    """/_local_aws/describe/<console kind>/<name>: the target of task links offline."""
    import urllib.error
    import urllib.request

    with urllib.request.urlopen(f"{local_aws.url}/_local_aws/describe/endpoints/{served}") as page:
        shown = json.loads(page.read())
    described = sm.describe_endpoint(EndpointName=served)
    assert shown["EndpointName"] == served and shown["EndpointArn"] == described["EndpointArn"]
    assert shown["EndpointStatus"] == described["EndpointStatus"]
    assert "_Fleet" not in shown  # private state stays private
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{local_aws.url}/_local_aws/describe/endpoints/nothing-here")
    assert missing.value.code == 404
