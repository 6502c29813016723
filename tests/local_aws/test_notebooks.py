"""Notebook instances: the lifecycle botocore's waiters follow (no Jupyter runs)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.conftest import ROLE_ARN, unique

FAST = {"Delay": 0.1, "MaxAttempts": 300}  # the waiters' own polling, quicker than AWS's 30 s


def test_create_stop_start_delete_as_the_waiters_expect(sm):
    name = unique("nb")
    arn = sm.create_notebook_instance(
        NotebookInstanceName=name,
        InstanceType="ml.t3.medium",
        RoleArn=ROLE_ARN,
        Tags=[{"Key": "team", "Value": "fraud"}],
    )["NotebookInstanceArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:123456789012:notebook-instance/{name}"
    assert sm.describe_notebook_instance(NotebookInstanceName=name)["NotebookInstanceStatus"] in (
        "Pending",
        "InService",
    )
    sm.get_waiter("notebook_instance_in_service").wait(NotebookInstanceName=name, WaiterConfig=FAST)
    described = sm.describe_notebook_instance(NotebookInstanceName=name)
    assert described["InstanceType"] == "ml.t3.medium"
    assert described["RoleArn"] == ROLE_ARN
    assert described["Url"].startswith(f"{name}.notebook.us-east-1")
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "fraud"}]
    listed = sm.list_notebook_instances(NameContains=name, StatusEquals="InService")
    assert [n["NotebookInstanceName"] for n in listed["NotebookInstances"]] == [name]

    # deleting a running instance is refused, as on AWS
    with pytest.raises(ClientError, match=r"Status \(InService\) not in \(Stopped, Failed\)"):
        sm.delete_notebook_instance(NotebookInstanceName=name)

    sm.stop_notebook_instance(NotebookInstanceName=name)
    sm.get_waiter("notebook_instance_stopped").wait(NotebookInstanceName=name, WaiterConfig=FAST)
    sm.start_notebook_instance(NotebookInstanceName=name)
    sm.get_waiter("notebook_instance_in_service").wait(NotebookInstanceName=name, WaiterConfig=FAST)
    sm.stop_notebook_instance(NotebookInstanceName=name)
    sm.get_waiter("notebook_instance_stopped").wait(NotebookInstanceName=name, WaiterConfig=FAST)
    sm.delete_notebook_instance(NotebookInstanceName=name)
    sm.get_waiter("notebook_instance_deleted").wait(NotebookInstanceName=name, WaiterConfig=FAST)
    with pytest.raises(ClientError, match="RecordNotFound"):
        sm.describe_notebook_instance(NotebookInstanceName=name)


def test_a_duplicate_name_is_refused(sm):
    name = unique("nb-dup")
    request = {"NotebookInstanceName": name, "InstanceType": "ml.t3.medium", "RoleArn": ROLE_ARN}
    sm.create_notebook_instance(**request)
    with pytest.raises(ClientError, match="Cannot create a duplicate Notebook Instance"):
        sm.create_notebook_instance(**request)
