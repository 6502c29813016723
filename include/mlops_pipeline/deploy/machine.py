"""The release's state machine: each call moves the endpoint one transition further, as
far as it can without waiting, writing the record after every change.

A wait (the endpoint updating, a step baking) is handed to the caller's ``defer_*``
callbacks, which do not return (the operator defers to its trigger); the next run of the
task reads the record back and calls ``advance`` again. Statuses are release.py's.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from mlops_pipeline.deploy import hosting, judging, outcome
from mlops_pipeline.deploy.release import Release, next_step
from mlops_pipeline.deploy.session import ReleaseSession


class ReleaseMachine:
    def __init__(
        self,
        session: ReleaseSession,
        *,
        defer_bake: Callable[[Release, float], None],
        defer_in_service: Callable[[Release], None],
    ) -> None:
        self.s = session
        self.defer_bake = defer_bake
        self.defer_in_service = defer_in_service

    def advance(self, release: Release, event: dict[str, Any] | None) -> dict[str, Any]:
        s = self.s
        if event and event.get("status") == "error":
            # the wait broke (an AWS error in the trigger), or the endpoint ended Failed; a
            # retry resumes from the record, after converge has said which
            s.log.warning("the wait reported an error: %s", event.get("message"))
            if event.get("endpoint_status") is None:
                raise AirflowException(
                    f"waiting on endpoint {release.endpoint} failed: {event.get('message')}; "
                    f"a retry resumes release {release.release_id} from {s.audit_uri}"
                )
        while True:
            if release.finished:
                return outcome.done(s, release)
            if release.status == "baking":
                self._after_bake(release, event)
                event = None  # consumed: a later loop of this step must not apply it again
                continue
            # creating, shifting, promoting, rolling_back: converge the endpoint, then move on
            if not self.converge(release):
                s.save(release)
                self.defer_in_service(release)
            self._arrived(release, time.time())
            s.save(release)

    def _after_bake(self, release: Release, event: dict[str, Any] | None) -> None:
        s = self.s
        record = release.current
        assert record is not None and record.bake_until is not None
        replayed_until = float((event or {}).get("replay_until") or 0)
        if replayed_until > record.bake_until:
            # the trigger started late and replayed a whole bake from then: the step's
            # window is where its traffic is
            record.bake_until = replayed_until
            s.save(release)
        ready = record.bake_until + s.settings.deploy_metrics_delay_seconds
        # Replayed traffic exists only if a trigger ran the bake: a task that resumes after
        # the bake's end without its event (the worker was lost before it deferred) hands
        # the bake to the trigger anyway, which replays a whole bake from now, rather than
        # judging a window nobody sent calls in.
        replays = s.settings.deploy_replay_rate > 0 and release.baseline is not None
        baked = (event or {}).get("status") == "baked"
        if time.time() < ready or (replays and not baked):
            self.defer_bake(release, ready)
        move = judging.judge(s, release)
        s.save(release)
        if move == "next":
            index = next_step(release)
            assert index is not None
            release.begin_step(index, time.time())
            s.save(release)
        elif move == "rebake":
            assert release.current is not None
            release.begin_step(release.current.step, time.time())
            s.save(release)

    def _arrived(self, release: Release, now: float) -> None:
        """The endpoint is where the status wanted it: the status that follows."""
        if release.status in ("creating", "promoting"):
            judging.autoscale(self.s, release)
        if release.status == "creating":
            release.finish("created", now)
        elif release.status == "shifting":
            record = release.serving(now)
            self.s.log.info(
                "step %d: %d%% of %s on %s from %s",
                record.step,
                record.weight,
                release.endpoint,
                release.candidate.variant,
                dt.datetime.fromtimestamp(now, dt.UTC).isoformat(timespec="seconds"),
            )
            if record.bake_seconds <= 0:  # the last 100% step without a bake
                release.status = "promoting"
        elif release.status == "promoting":
            release.finish("promoted", now)
        elif release.status == "rolling_back":
            release.finish("rolled_back", now)

    def converge(self, release: Release) -> bool:
        """True when the endpoint is where the release's status wants it, InService;
        otherwise asks for the next change (once) and returns False."""
        s = self.s
        endpoint = hosting.describe_endpoint(s.sm, release.endpoint)
        status = endpoint["EndpointStatus"] if endpoint else None
        if status in hosting.TRANSITIONS:
            return False
        if endpoint is None:
            if release.status != "creating":
                raise AirflowFailException(f"endpoint {release.endpoint} was deleted mid-release")
            s.sm.create_endpoint(
                EndpointName=release.endpoint,
                EndpointConfigName=release.candidate.config,
                Tags=s.run.tags,
            )
            return False
        if status == "Failed":
            raise AirflowFailException(
                f"endpoint {release.endpoint} is Failed: {endpoint.get('FailureReason')}"
            )
        config = endpoint["EndpointConfigName"]
        weights = hosting.current_weights(endpoint)
        if release.status == "creating":
            return config == release.candidate.config
        if release.status == "promoting":
            return self._update_config(release, endpoint, release.candidate.config)
        if release.status == "rolling_back":
            assert release.baseline is not None
            if config == release.canary_config and weights.get(release.candidate.variant, 0) > 0:
                # traffic off the candidate first (seconds), then its variant removed
                return self._update_weights(release, release.weights(0))
            return self._update_config(release, endpoint, release.baseline.config)
        # shifting
        record = release.current
        assert record is not None and release.canary_config is not None
        if config != release.canary_config:
            if len(release.steps) > 1:
                raise AirflowFailException(
                    f"endpoint {release.endpoint} no longer runs the release's config "
                    f"{release.canary_config} (it runs {config}): someone changed it mid-release"
                )
            return self._update_config(release, endpoint, release.canary_config)
        wanted = release.weights(record.weight)
        if hosting.weights_match(weights, wanted):
            return True
        return self._update_weights(release, wanted)

    def _update_config(self, release: Release, endpoint: dict[str, Any], config: str) -> bool:
        s = self.s
        if endpoint["EndpointConfigName"] == config:
            release.asked = None
            return True
        if release.asked == f"config:{config}":
            # asked before, and the endpoint is InService on another config: SageMaker
            # rolled the update back (a variant that did not start, an alarm)
            self._rolled_back_by_sagemaker(release, endpoint, config)
        s.log.info("UpdateEndpoint %s → %s", release.endpoint, config)
        request: dict[str, Any] = {"EndpointName": release.endpoint, "EndpointConfigName": config}
        if release.deployment_config and config == release.candidate.config:
            request["DeploymentConfig"] = release.deployment_config
        s.sm.update_endpoint(**request)
        release.asked = f"config:{config}"
        return False

    def _rolled_back_by_sagemaker(
        self, release: Release, endpoint: dict[str, Any], config: str
    ) -> None:
        """An UpdateEndpoint that ended InService on another config: the release fails
        (native mode: SageMaker's alarms rolled it back; stepped: the candidate never
        served); raises."""
        reason = endpoint.get("FailureReason") or "no FailureReason given"
        if release.mode == "native" and release.status == "promoting":
            # an update that rolled back ends InService with a FailureReason: failed
            release.finish("rolled_back", time.time(), f"SageMaker rolled back: {reason}")
            self.s.save(release)
            outcome.fail(self.s, release)
        if release.status == "shifting":
            release.finish(
                "rolled_back",
                time.time(),
                f"the candidate variant never served: UpdateEndpoint to {config} failed ({reason})",
            )
            self.s.save(release)
            outcome.fail(self.s, release)
        raise AirflowFailException(
            f"UpdateEndpoint of {release.endpoint} to {config} failed: {reason}; the "
            f"release record ({self.s.audit_uri}) is {release.status}: clear the task to retry"
        )

    def _update_weights(self, release: Release, wanted: dict[str, int]) -> bool:
        self.s.log.info(
            "UpdateEndpointWeightsAndCapacities %s: %s",
            release.endpoint,
            ", ".join(f"{k}={v}" for k, v in wanted.items()),
        )
        self.s.sm.update_endpoint_weights_and_capacities(
            EndpointName=release.endpoint,
            DesiredWeightsAndCapacities=[
                {"VariantName": k, "DesiredWeight": float(v)} for k, v in wanted.items()
            ],
        )
        return False
