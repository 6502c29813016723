"""SageMaker Pipelines through boto3: a definition in the SDK's JSON runs step by step over
real jobs: parameters, a property file read by JsonGet, a Condition with both branches, a
Fail step, data dependencies, stop."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError, WaiterError

from tests.conftest import ROLE_ARN, SKLEARN_IMAGE, unique
from tests.jobkit import processing_request, s3_output, training_request, upload_source
from tests.local_aws.test_sdk_model_trainer import sdk_environment  # noqa: F401

EVALUATE = """
import json, os, sys, time
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 0)
os.makedirs("/opt/ml/processing/evaluation", exist_ok=True)
json.dump({"metrics": {"auc": {"value": 0.9}}},
          open("/opt/ml/processing/evaluation/evaluation.json", "w"))
"""
TRAIN = """
import os
files = sorted(os.listdir(os.environ["SM_CHANNEL_REPORT"]))
print(f"report files: {files}", flush=True)
open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w").write(",".join(files))
"""


def definition(bucket: str, code: str, source: str, sleep: str = "0") -> dict[str, Any]:
    evaluate = processing_request(
        "unused",
        code_uri=code,
        script="evaluate.py",
        arguments=[sleep],
        outputs=[
            s3_output(
                "evaluation",
                "/opt/ml/processing/evaluation",
                {
                    "Std:Join": {
                        "On": "/",
                        "Values": [
                            f"s3://{bucket}/runs",
                            {"Get": "Execution.PipelineExecutionId"},
                            "evaluation",
                        ],
                    }
                },  # fmt: skip
            )
        ],
    )
    del evaluate["ProcessingJobName"]
    train = training_request(
        "unused",
        bucket,
        source,
        channels={
            "report": {
                "Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"
            }
        },
    )
    del train["TrainingJobName"]
    auc = {
        "Std:JsonGet": {
            "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.Evaluation"},
            "Path": "metrics.auc.value",
        }
    }
    return {
        "Version": "2020-12-01",
        "Metadata": {},
        "Parameters": [
            {"Name": "MinAuc", "Type": "Float", "DefaultValue": 0.5},
            {"Name": "Stage", "Type": "String", "DefaultValue": "dev"},
        ],
        # what the SageMaker SDK writes in us-east-1
        "PipelineExperimentConfig": {
            "ExperimentName": {"Get": "Execution.PipelineName"},
            "TrialName": {"Get": "Execution.PipelineExecutionId"},
        },
        "Steps": [
            {
                "Name": "Evaluate",
                "Type": "Processing",
                "Arguments": evaluate,
                "PropertyFiles": [
                    {
                        "PropertyFileName": "Evaluation",
                        "OutputName": "evaluation",
                        "FilePath": "evaluation.json",
                    }
                ],
            },
            {
                "Name": "CheckAuc",
                "Type": "Condition",
                "Arguments": {
                    "Conditions": [
                        {
                            "Type": "GreaterThanOrEqualTo",
                            "LeftValue": auc,
                            "RightValue": {"Get": "Parameters.MinAuc"},
                        },
                        {
                            "Type": "Not",
                            "Condition": {
                                "Type": "In",
                                "QueryValue": {"Get": "Parameters.Stage"},
                                "Values": ["frozen"],
                            },
                        },
                    ],
                    "IfSteps": [{"Name": "Train", "Type": "Training", "Arguments": train}],
                    "ElseSteps": [
                        {
                            "Name": "TooLow",
                            "Type": "Fail",
                            "Arguments": {
                                "ErrorMessage": {
                                    "Std:Join": {
                                        "On": " ",
                                        "Values": [
                                            "auc",
                                            auc,
                                            "is below",
                                            {"Get": "Parameters.MinAuc"},
                                        ],
                                    },  # fmt: skip
                                }
                            },
                        }
                    ],
                },
            },
        ],
    }


@pytest.fixture(scope="module")
def pipeline(sm, s3) -> dict[str, str]:
    bucket = unique("pipelines")
    s3.create_bucket(Bucket=bucket)
    key = "code/evaluate.py"
    s3.put_object(Bucket=bucket, Key=key, Body=EVALUATE.encode())
    source = upload_source(s3, bucket, "code/train.tar.gz", {"train.py": TRAIN})
    name = unique("fraud-pipeline")
    body = json.dumps(definition(bucket, f"s3://{bucket}/{key}", source))
    arn = sm.create_pipeline(
        PipelineName=name, PipelineDefinition=body, RoleArn=ROLE_ARN, PipelineDescription="demo"
    )["PipelineArn"]
    return {
        "name": name,
        "arn": arn,
        "bucket": bucket,
        "code": f"s3://{bucket}/{key}",
        "source": source,
    }


def run(sm, pipeline: dict[str, str], **parameters: str) -> tuple[dict, dict[str, dict]]:
    arn = sm.start_pipeline_execution(
        PipelineName=pipeline["name"],
        PipelineParameters=[{"Name": k, "Value": v} for k, v in parameters.items()],
    )["PipelineExecutionArn"]
    deadline = time.monotonic() + 180
    while True:
        execution = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
        if execution["PipelineExecutionStatus"] not in ("Executing", "Stopping"):
            break
        assert time.monotonic() < deadline, execution
        time.sleep(0.2)
    steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    return execution, {s["StepName"]: s for s in steps}


def test_a_pipeline_runs_its_steps_and_the_branch_its_condition_takes(sm, s3, pipeline):
    described = sm.describe_pipeline(PipelineName=pipeline["name"])
    assert described["PipelineStatus"] == "Active"
    assert json.loads(described["PipelineDefinition"])["Steps"][0]["Name"] == "Evaluate"

    execution, steps = run(sm, pipeline)
    assert execution["PipelineExecutionStatus"] == "Succeeded", (execution, steps)
    assert set(steps) == {"Evaluate", "CheckAuc", "Train"}  # not the else branch
    assert {s["StepStatus"] for s in steps.values()} == {"Succeeded"}
    assert steps["CheckAuc"]["Metadata"] == {"Condition": {"Outcome": "True"}}
    # the training job read the processing job's output: a data dependency, resolved
    job = steps["Train"]["Metadata"]["TrainingJob"]["Arn"].rsplit("/", 1)[1]
    training = sm.describe_training_job(TrainingJobName=job)
    assert training["TrainingJobStatus"] == "Completed"
    execution_id = execution["PipelineExecutionArn"].rsplit("/", 1)[1]
    channel = training["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
    assert channel == f"s3://{pipeline['bucket']}/runs/{execution_id}/evaluation"
    processing = steps["Evaluate"]["Metadata"]["ProcessingJob"]["Arn"].rsplit("/", 1)[1]
    assert processing.startswith(f"pipelines-{execution_id}-evaluate-")
    # each execution is a trial of the pipeline's experiment
    trials = sm.list_trials(ExperimentName=pipeline["name"])["TrialSummaries"]
    assert execution_id in [t["TrialName"] for t in trials]
    listed = sm.list_pipeline_executions(PipelineName=pipeline["name"])
    assert execution["PipelineExecutionArn"] in [
        e["PipelineExecutionArn"] for e in listed["PipelineExecutionSummaries"]
    ]


def test_the_else_branch_fails_the_execution_with_its_message(sm, pipeline):
    execution, steps = run(sm, pipeline, MinAuc="0.95")
    assert execution["PipelineExecutionStatus"] == "Failed"
    assert set(steps) == {"Evaluate", "CheckAuc", "TooLow"}
    assert steps["CheckAuc"]["Metadata"] == {"Condition": {"Outcome": "False"}}
    assert steps["TooLow"]["StepStatus"] == "Failed"
    assert steps["TooLow"]["FailureReason"] == "auc 0.9 is below 0.95"
    params = sm.list_pipeline_parameters_for_execution(
        PipelineExecutionArn=execution["PipelineExecutionArn"]
    )["PipelineParameters"]
    assert {"Name": "MinAuc", "Value": "0.95"} in params


def test_stop_stops_the_running_step(sm, pipeline):
    name = unique("slow-pipeline")
    body = json.dumps(definition(pipeline["bucket"], pipeline["code"], pipeline["source"], "60"))
    sm.create_pipeline(PipelineName=name, PipelineDefinition=body, RoleArn=ROLE_ARN)
    arn = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    deadline = time.monotonic() + 60
    while (
        not sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
        or "Metadata"
        not in sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"][
            0
        ]
    ):
        assert time.monotonic() < deadline, "the first step never started its job"
        time.sleep(0.1)
    sm.stop_pipeline_execution(PipelineExecutionArn=arn)
    while sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] in (
        "Executing",
        "Stopping",
    ):
        assert time.monotonic() < deadline + 60, "the execution never stopped"
        time.sleep(0.2)
    assert sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] == (
        "Stopped"
    )
    [step] = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    assert step["StepStatus"] == "Stopped"
    job = step["Metadata"]["ProcessingJob"]["Arn"].rsplit("/", 1)[1]
    assert sm.describe_processing_job(ProcessingJobName=job)["ProcessingJobStatus"] == "Stopped"


def test_bad_definitions_and_parameters_are_refused(sm, pipeline):
    with pytest.raises(ClientError, match="not valid JSON"):
        sm.create_pipeline(PipelineName=unique("bad"), PipelineDefinition="{", RoleArn=ROLE_ARN)
    with pytest.raises(ClientError, match=r"\['Nope'\] are not parameters of the pipeline"):
        sm.start_pipeline_execution(
            PipelineName=pipeline["name"], PipelineParameters=[{"Name": "Nope", "Value": "1"}]
        )
    with pytest.raises(ClientError, match="does not exist"):
        sm.describe_pipeline(PipelineName=unique("missing"))


def test_a_pipeline_built_with_the_sagemaker_sdk_runs_end_to_end(
    sdk_environment,  # noqa: F811
    tmp_path,
):
    from sagemaker.core.processing import ScriptProcessor
    from sagemaker.core.shapes import ProcessingOutput, ProcessingS3Output
    from sagemaker.core.workflow.conditions import ConditionGreaterThanOrEqualTo
    from sagemaker.core.workflow.functions import JsonGet
    from sagemaker.core.workflow.parameters import ParameterFloat
    from sagemaker.core.workflow.pipeline_context import PipelineSession
    from sagemaker.core.workflow.properties import PropertyFile
    from sagemaker.mlops.workflow.condition_step import ConditionStep
    from sagemaker.mlops.workflow.fail_step import FailStep
    from sagemaker.mlops.workflow.pipeline import Pipeline
    from sagemaker.mlops.workflow.steps import ProcessingStep

    script = tmp_path / "evaluate.py"
    script.write_text(EVALUATE)
    session = PipelineSession()
    processor = ScriptProcessor(
        image_uri=SKLEARN_IMAGE,
        command=["python3"],
        role=ROLE_ARN,
        instance_count=1,
        instance_type="ml.m5.large",
        sagemaker_session=session,
    )
    output = ProcessingS3Output(
        s3_uri=f"s3://{sdk_environment}/evaluation",
        local_path="/opt/ml/processing/evaluation",
        s3_upload_mode="EndOfJob",
    )
    evaluation = PropertyFile(name="Evaluation", output_name="evaluation", path="evaluation.json")
    evaluate = ProcessingStep(
        name="Evaluate",
        step_args=processor.run(
            code=str(script),
            outputs=[ProcessingOutput(output_name="evaluation", s3_output=output)],
        ),
        property_files=[evaluation],
    )
    min_auc = ParameterFloat(name="MinAuc", default_value=0.5)
    auc = JsonGet(step_name="Evaluate", property_file=evaluation, json_path="metrics.auc.value")
    check = ConditionStep(
        name="Check",
        conditions=[ConditionGreaterThanOrEqualTo(left=auc, right=min_auc)],
        if_steps=[],
        else_steps=[FailStep(name="TooLow", error_message="the model's AUC is too low")],
    )
    pipeline = Pipeline(
        name=unique("sdk-pipeline"),
        parameters=[min_auc],
        steps=[evaluate, check],
        sagemaker_session=session,
    )
    pipeline.upsert(role_arn=ROLE_ARN)

    passing = pipeline.start()
    passing.wait(delay=1, max_attempts=180)
    assert passing.describe()["PipelineExecutionStatus"] == "Succeeded"
    assert {(s["StepName"], s["StepStatus"]) for s in passing.list_steps()} == {
        ("Evaluate", "Succeeded"),
        ("Check", "Succeeded"),
    }
    failing = pipeline.start(parameters={"MinAuc": 0.95})
    with pytest.raises(WaiterError, match="Failed"):  # the SDK's waiter raises on failure
        failing.wait(delay=1, max_attempts=180)
    steps = {s["StepName"]: s for s in failing.list_steps()}
    assert steps["TooLow"]["FailureReason"] == "the model's AUC is too low"
