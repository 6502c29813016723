"""The triggers survive a triggerer restart: re-created from what they serialised, they
wait for the same absolute moment (the same bake), not a new bake from the restart."""

from __future__ import annotations

import asyncio
import time
from importlib import import_module

from mlops_pipeline.deploy.approval import ApprovalTrigger, ModelApprovalTrigger
from mlops_pipeline.deploy.triggers import CanaryTrigger


def rebuilt(trigger):
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    return getattr(import_module(module), name)(**kwargs)


def test_a_restarted_bake_trigger_waits_for_the_same_end():
    until = time.time() + 0.3
    trigger = CanaryTrigger(
        endpoint_name="e",
        phase="bake",
        until=until,
        replay_until=until - 0.1,
        replay_rows=["1,2,3"],
        replay_variants=["v1", "v2"],
        replay_rate=0.0,  # no calls: nothing to reach
    )
    again = rebuilt(trigger)
    assert again.serialize() == trigger.serialize()

    async def first_event():
        return await anext(again.run())

    event = asyncio.run(first_event()).payload
    assert event["status"] == "baked" and event["at"] >= until


def test_approval_triggers_keep_their_package():
    import uuid

    registry = ModelApprovalTrigger(
        package_arn="arn:p/1", poll_seconds=2, aws_conn_id="aws_default"
    )
    assert rebuilt(registry).serialize() == registry.serialize()
    both = ApprovalTrigger(
        ti_id=uuid.uuid4(),
        options=["Approve", "Reject"],
        params={},
        defaults=["Reject"],
        timeout_datetime=None,
        package_arn="arn:p/1",
        aws_conn_id="aws_default",
    )
    classpath, kwargs = both.serialize()
    assert classpath == "mlops_pipeline.deploy.approval.ApprovalTrigger"
    assert kwargs["package_arn"] == "arn:p/1" and kwargs["defaults"] == ["Reject"]
    assert rebuilt(both).serialize() == both.serialize()


def test_the_in_service_wait_polls_quickly_at_first_then_at_the_settings_pace():
    from mlops_pipeline.deploy.triggers import in_service_poll

    waits = [in_service_poll(n, 15.0) for n in range(20)]
    assert waits[0] <= 0.1  # a warm local_aws endpoint is noticed in a fraction of a second
    assert waits == sorted(waits) and max(waits) == 15.0  # then no faster than configured
    assert sum(waits[:5]) < 1.5  # the quick polls are few: about a second's worth
    assert all(w <= 0.5 for w in (in_service_poll(n, 0.5) for n in range(20)))
