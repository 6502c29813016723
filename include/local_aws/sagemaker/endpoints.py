"""Endpoints: one model server per production variant, weighted routing, blue/green updates.

The record (kind "endpoints") is what DescribeEndpoint shows plus the private spec of the
fleet it runs (``_Fleet``: each variant's container, weight and instance count, copied at
deployment so deleting the model or config later changes nothing, as in SageMaker) and of
an update in progress (``_Pending``). The live side (model servers and the router the
runtime reads) is in ``backend.extensions["endpoints"]``; a restart rebuilds it from the
records.
"""

from __future__ import annotations

import bisect
import logging
import random
import shutil
import threading
import time
from dataclasses import dataclass
from typing import Any

from local_aws.sagemaker import api, models
from local_aws.sagemaker.api import list_page, now, operation, pick, shape_response
from local_aws.sagemaker.backend import Backend
from local_aws.sagemaker.errors import AWSError, ValidationException
from local_aws.sagemaker.jobs import FAILURE_REASON_MAX
from local_aws.sagemaker.model_server import ModelServer, ModelServerError, instance_id

log = logging.getLogger(__name__)

KIND = "endpoints"
EXTENSION = "endpoints"
LOG_GROUP = "/aws/sagemaker/Endpoints"
ALARM_POLL_SECONDS = 1.0
# Bounds every internal wait on a model server; an endpoint never hangs in a transition.
STOP_TIMEOUT = 5.0


# -- live state ------------------------------------------------------------------------------
@dataclass
class LiveVariant:
    name: str
    server: ModelServer
    weight: float
    instances: int


class Fleet:
    """The model servers of one endpoint configuration (blue or green)."""

    def __init__(self, config_name: str, variants: dict[str, LiveVariant]):
        self.config_name = config_name
        self.variants = variants


class Router:
    """An immutable routing table: the runtime reads it without taking a lock."""

    def __init__(self, fleets: list[tuple[Fleet, float]]):
        self.variants: list[LiveVariant] = []
        self.cumulative: list[float] = []
        self.by_name: dict[str, list[tuple[LiveVariant, float]]] = {}
        total = 0.0
        for fleet, share in fleets:
            if share <= 0:
                continue
            fleet_weight = sum(v.weight for v in fleet.variants.values())
            for variant in fleet.variants.values():
                self.by_name.setdefault(variant.name, []).append((variant, share))
                weight = share * variant.weight / fleet_weight if fleet_weight > 0 else 0.0
                if weight > 0:
                    total += weight
                    self.variants.append(variant)
                    self.cumulative.append(total)
        self.total = total

    def pick(self, target: str | None) -> LiveVariant:
        if target:
            candidates = self.by_name.get(target)
            if not candidates:
                raise AWSError(
                    f"Target variant {target!r} does not exist on this endpoint (its variants: "
                    f"{', '.join(sorted(self.by_name))}); correct TargetVariant or leave it out",
                    code="ValidationError",
                )
            if len(candidates) == 1:
                return candidates[0][0]
            # mid-deployment both fleets may have the variant: split by their traffic shares
            r = random.random() * sum(share for _, share in candidates)
            for variant, share in candidates:
                r -= share
                if r < 0:
                    return variant
            return candidates[-1][0]
        if not self.variants:
            raise AWSError(
                "Every production variant of this endpoint has weight 0, so none receives "
                "traffic: raise a weight with UpdateEndpointWeightsAndCapacities, or set "
                "TargetVariant",
                code="ValidationError",
            )
        if len(self.variants) == 1:
            return self.variants[0]
        index = bisect.bisect_right(self.cumulative, random.random() * self.total)
        return self.variants[min(index, len(self.variants) - 1)]


class LiveEndpoint:
    def __init__(self, name: str):
        self.name = name
        self.blue: Fleet | None = None  # the fleet that serves
        self.green: Fleet | None = None  # the fleet an update is shifting traffic to
        self.green_share = 0.0
        self.router: Router | None = None  # None: not serving (yet)
        self.lock = threading.Lock()
        self.gone = threading.Event()  # deleted, or the server is shutting down
        self.restored = threading.Event()  # set once a restart has settled either way

    def reroute(self) -> None:
        with self.lock:
            fleets: list[tuple[Fleet, float]] = []
            if self.blue is not None:
                fleets.append((self.blue, 1.0 - self.green_share if self.green else 1.0))
            if self.green is not None:
                fleets.append((self.green, self.green_share))
            self.router = Router(fleets) if fleets else None


class Registry:
    """Everything running for endpoints, kept in ``backend.extensions["endpoints"]``."""

    def __init__(self) -> None:
        self.live: dict[str, LiveEndpoint] = {}
        self.servers: set[ModelServer] = set()
        self.lock = threading.Lock()
        self.closed = False  # shutting down: no new model server may start


def registry(backend: Backend) -> Registry:
    reg = backend.extensions.get(EXTENSION)
    if reg is None:
        reg = backend.extensions.setdefault(EXTENSION, Registry())
    return reg


# -- API -------------------------------------------------------------------------------------
@operation("CreateEndpoint")
def create_endpoint(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    name = p["EndpointName"]
    arn = backend.arn("endpoint", name)
    spec = fleet_spec(backend, p["EndpointConfigName"])
    stamp = now()
    record: dict[str, Any] = {
        "EndpointName": name,
        "EndpointArn": arn,
        "EndpointConfigName": p["EndpointConfigName"],
        "ProductionVariants": [variant_summary(v, status="Creating") for v in spec["Variants"]],
        "EndpointStatus": "Creating",
        "CreationTime": stamp,
        "LastModifiedTime": stamp,
        "_Fleet": spec,
    }
    if p.get("DeploymentConfig"):
        record["LastDeploymentConfig"] = p["DeploymentConfig"]
    reg = registry(backend)
    with backend.store.lock:
        if backend.store.exists(KIND, name):
            raise ValidationException(f'Cannot create already existing endpoint "{arn}".')
        backend.store.create(KIND, name, record)
        live = LiveEndpoint(name)
        with reg.lock:
            reg.live[name] = live
    backend.tags.add(arn, p.get("Tags", []))
    _spawn(backend, live, "create")
    return {"EndpointArn": arn}


def get_endpoint(backend: Backend, name: str) -> dict[str, Any]:
    record = backend.store.get(KIND, name)
    if record is None:
        raise ValidationException(f'Could not find endpoint "{backend.arn("endpoint", name)}".')
    return record


@operation("DescribeEndpoint")
def describe_endpoint(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    return shape_response("DescribeEndpoint", get_endpoint(backend, p["EndpointName"]))


@operation("ListEndpoints")
def list_endpoints(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    keys = ("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus")
    return list_page(
        backend.store.values(KIND),
        p,
        name_key="EndpointName",
        status_key="EndpointStatus",
        summary=lambda r: pick(r, keys),
        result_key="Endpoints",
    )


@operation("UpdateEndpoint")
def update_endpoint(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    name = p["EndpointName"]
    with backend.store.lock:
        record = get_endpoint(backend, name)
        _require_in_service(record)
        deployment = p.get("DeploymentConfig")
        if deployment is None and p.get("RetainDeploymentConfig"):
            deployment = record.get("LastDeploymentConfig")
        traffic_steps(deployment, 1)  # validates before anything changes
        retain: dict[str, dict[str, Any]] | None = None
        if p.get("RetainAllVariantProperties"):
            retain = {v["VariantName"]: v for v in record["_Fleet"]["Variants"]}
        exclude = {e["VariantPropertyType"] for e in p.get("ExcludeRetainedVariantProperties", [])}
        spec = fleet_spec(backend, p["EndpointConfigName"], retain=retain, exclude=exclude)
        stamp = now()
        backend.store.update(
            KIND,
            name,
            {
                "EndpointStatus": "Updating",
                "LastModifiedTime": stamp,
                "_Pending": {"Fleet": spec, "DeploymentConfig": deployment},
                "PendingDeploymentSummary": pending_summary(spec, "Creating", stamp),
            },
        )
    live = registry(backend).live[name]
    _spawn(backend, live, "update")
    return {"EndpointArn": record["EndpointArn"]}


@operation("UpdateEndpointWeightsAndCapacities")
def update_endpoint_weights_and_capacities(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    name = p["EndpointName"]
    with backend.store.lock:
        record = get_endpoint(backend, name)
        _require_in_service(record)
        variants = {v["VariantName"]: v for v in record["_Fleet"]["Variants"]}
        unknown = [d["VariantName"] for d in p["DesiredWeightsAndCapacities"]]
        unknown = [n for n in unknown if n not in variants]
        if unknown:
            raise ValidationException(
                f"The variant(s) {', '.join(repr(n) for n in unknown)} are not present in "
                f'endpoint "{record["EndpointArn"]}" (its variants: {", ".join(variants)})'
            )
        for desired in p["DesiredWeightsAndCapacities"]:
            variant = variants[desired["VariantName"]]
            if desired.get("DesiredWeight") is not None:
                if desired["DesiredWeight"] < 0:
                    raise ValidationException(
                        f"DesiredWeight of variant {desired['VariantName']!r} must not be negative"
                    )
                variant["Weight"] = float(desired["DesiredWeight"])
            if desired.get("DesiredInstanceCount") is not None:
                if variant.get("ServerlessConfig"):
                    raise ValidationException(
                        f"Variant {desired['VariantName']!r} is serverless: it has no "
                        "DesiredInstanceCount to update"
                    )
                variant["InstanceCount"] = int(desired["DesiredInstanceCount"])

        def change(r: dict[str, Any]) -> None:
            r["_Fleet"]["Variants"] = list(variants.values())
            r["EndpointStatus"] = "Updating"
            r["LastModifiedTime"] = now()
            for summary in r["ProductionVariants"]:
                v = variants[summary["VariantName"]]
                summary["DesiredWeight"] = v["Weight"]
                if v.get("InstanceCount") is not None:
                    summary["DesiredInstanceCount"] = v["InstanceCount"]

        backend.store.update(KIND, name, change)
    live = registry(backend).live[name]
    _spawn(backend, live, "weights")
    return {"EndpointArn": record["EndpointArn"]}


@operation("DeleteEndpoint")
def delete_endpoint(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    name = p["EndpointName"]
    reg = registry(backend)
    with backend.store.lock:
        record = get_endpoint(backend, name)
        with reg.lock:
            live = reg.live.pop(name, None)
        if live is not None:
            live.gone.set()  # workers stop what they started and write nothing more
        backend.store.delete(KIND, name)
    backend.tags.drop(record["EndpointArn"])
    if live is not None:
        with live.lock:
            fleets, live.blue, live.green, live.router = [live.blue, live.green], None, None, None
        for fleet in fleets:
            stop_fleet(backend, fleet)
    shutil.rmtree(backend.sandbox_dir(KIND, name), ignore_errors=True)
    return {}


def _require_in_service(record: dict[str, Any]) -> None:
    status = record["EndpointStatus"]
    if status == "InService":
        return
    arn = record["EndpointArn"]
    if status == "Failed":
        raise ValidationException(
            f'Cannot update failed endpoint "{arn}": delete it and create it again'
        )
    raise ValidationException(
        f'Cannot update in-progress endpoint "{arn}" (status {status}): wait until it is InService'
    )


# -- specs and summaries ---------------------------------------------------------------------
def fleet_spec(
    backend: Backend,
    config_name: str,
    *,
    retain: dict[str, dict[str, Any]] | None = None,
    exclude: set[str] | None = None,
) -> dict[str, Any]:
    """What a fleet runs, resolved from the config and its models now (as SageMaker does)."""
    config = models.get_endpoint_config(backend, config_name)
    stamp = now()
    variants = []
    for pv in config["ProductionVariants"]:
        model = backend.store.get(models.MODELS, pv["ModelName"])
        serverless = pv.get("ServerlessConfig")
        variant: dict[str, Any] = {
            "VariantName": pv["VariantName"],
            "ModelName": pv["ModelName"],
            "Container": models.primary_container(model) if model else None,
            "Error": None
            if model
            else f'Could not find model "{backend.arn("model", pv["ModelName"])}".',
            "InstanceType": pv.get("InstanceType"),
            "ServerlessConfig": serverless,
            "Weight": float(pv.get("InitialVariantWeight", 1.0)),
            "InstanceCount": None if serverless else int(pv.get("InitialInstanceCount") or 1),
            "StartupTimeout": pv.get("ContainerStartupHealthCheckTimeoutInSeconds"),
            "DownloadTimeout": pv.get("ModelDataDownloadTimeoutInSeconds"),
            "ResolvedAt": stamp,
        }
        old = (retain or {}).get(pv["VariantName"])
        if old is not None:
            if "DesiredWeight" not in (exclude or set()):
                variant["Weight"] = old["Weight"]
            if "DesiredInstanceCount" not in (exclude or set()) and not serverless:
                variant["InstanceCount"] = old.get("InstanceCount") or variant["InstanceCount"]
        variants.append(variant)
    return {"EndpointConfigName": config_name, "Variants": variants}


def variant_summary(
    v: dict[str, Any],
    *,
    live: bool = False,
    status: str | None = None,
    pending: bool = False,
    message: str | None = None,
) -> dict[str, Any]:
    container = v.get("Container") or {}
    summary: dict[str, Any] = {
        "VariantName": v["VariantName"],
        "DeployedImages": [
            {"SpecifiedImage": container.get("Image", ""), "ResolutionTime": v["ResolvedAt"]}
        ],
        "DesiredWeight": v["Weight"],
    }
    if v.get("ServerlessConfig"):
        summary["DesiredServerlessConfig"] = v["ServerlessConfig"]
    else:
        summary["DesiredInstanceCount"] = v["InstanceCount"]
    if live:
        summary["CurrentWeight"] = v["Weight"]
        if v.get("ServerlessConfig"):
            summary["CurrentServerlessConfig"] = v["ServerlessConfig"]
        else:
            summary["CurrentInstanceCount"] = v["InstanceCount"]
    if pending and v.get("InstanceType"):
        summary["InstanceType"] = v["InstanceType"]
    if status:
        summary["VariantStatus"] = [{"Status": status, "StartTime": now()}]
        if message:
            summary["VariantStatus"][0]["StatusMessage"] = message
    return summary


def pending_summary(
    spec: dict[str, Any], status: str, started: float, message: str | None = None
) -> dict[str, Any]:
    return {
        "EndpointConfigName": spec["EndpointConfigName"],
        "ProductionVariants": [
            variant_summary(v, status=status, pending=True, message=message)
            for v in spec["Variants"]
        ],
        "StartTime": started,
    }


def traffic_steps(deployment: dict[str, Any] | None, new_instances: int) -> list[tuple[float, int]]:
    """(share of traffic on the new fleet, bake seconds) for each step of a blue/green shift."""
    policy = (deployment or {}).get("BlueGreenUpdatePolicy")
    rolling = (deployment or {}).get("RollingUpdatePolicy")
    if rolling:
        wait = int(rolling["WaitIntervalInSeconds"])
        step = _capacity(rolling["MaximumBatchSize"], new_instances, "MaximumBatchSize")
        return _linear(step, wait)
    if not policy:
        return [(1.0, 0)]
    routing = policy["TrafficRoutingConfiguration"]
    wait = int(routing.get("WaitIntervalInSeconds", 0))
    kind = routing["Type"]
    if kind == "ALL_AT_ONCE":
        return [(1.0, wait)]
    if kind == "CANARY":
        if "CanarySize" not in routing:
            raise ValidationException(
                "TrafficRoutingConfiguration.CanarySize is required when Type is CANARY"
            )
        canary = _capacity(routing["CanarySize"], new_instances, "CanarySize")
        return [(canary, wait), (1.0, wait)] if canary < 1.0 else [(1.0, wait)]
    if "LinearStepSize" not in routing:
        raise ValidationException(
            "TrafficRoutingConfiguration.LinearStepSize is required when Type is LINEAR"
        )
    return _linear(_capacity(routing["LinearStepSize"], new_instances, "LinearStepSize"), wait)


def _capacity(size: dict[str, Any], instances: int, field: str) -> float:
    value = int(size["Value"])
    if value <= 0:
        raise ValidationException(f"{field}.Value must be positive")
    if size["Type"] == "CAPACITY_PERCENT":
        return min(1.0, value / 100.0)
    return min(1.0, value / max(1, instances))


def _linear(step: float, wait: int) -> list[tuple[float, int]]:
    steps, share = [], 0.0
    while share < 1.0 - 1e-9:
        share = min(1.0, share + step)
        steps.append((share, wait))
    return steps


# -- starting and stopping fleets ------------------------------------------------------------
class FleetError(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def start_fleet(
    backend: Backend, endpoint: str, spec: dict[str, Any], gone: threading.Event
) -> Fleet:
    """Start every variant's model server (in parallel); all of them, or none and FleetError."""
    reg = registry(backend)
    started: dict[str, LiveVariant] = {}
    errors: dict[str, str] = {}
    lock = threading.Lock()

    def start_one(v: dict[str, Any]) -> None:
        name = v["VariantName"]
        if v.get("Error"):
            errors[name] = v["Error"]
            return
        iid = instance_id()
        server = ModelServer(
            backend,
            v["Container"],
            workdir=backend.sandbox_dir(KIND, endpoint) / f"{name}-{iid}",
            log_group=f"{LOG_GROUP}/{endpoint}",
            log_stream=f"{name}/{iid}",
            startup_timeout=v.get("StartupTimeout"),
            download_timeout=v.get("DownloadTimeout"),
        )
        with reg.lock:
            closed = reg.closed
            if not closed:
                reg.servers.add(server)
        try:
            if gone.is_set() or closed:
                raise ModelServerError("the endpoint was deleted or the server is stopping")
            server.start()
        except ModelServerError as exc:
            _discard(backend, server)
            with lock:
                errors[name] = _failure_reason(name, exc)
            return
        except Exception as exc:  # a bug or an S3 outage must fail the variant, not hang it
            log.exception("starting variant %s of %s", name, endpoint)
            _discard(backend, server)
            with lock:
                errors[name] = f"InternalServerError: {type(exc).__name__}: {exc}"
            return
        with lock:
            started[name] = LiveVariant(name, server, v["Weight"], v.get("InstanceCount") or 1)

    threads = [
        threading.Thread(
            target=start_one, args=(v,), name=f"start:{endpoint}/{v['VariantName']}", daemon=True
        )
        for v in spec["Variants"]
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    fleet = Fleet(spec["EndpointConfigName"], started)
    if errors:
        stop_fleet(backend, fleet)
        first = next(v["VariantName"] for v in spec["Variants"] if v["VariantName"] in errors)
        raise FleetError(errors[first])
    return fleet


def _failure_reason(variant: str, exc: ModelServerError) -> str:
    if not exc.tail:
        return exc.reason
    detail = exc.last_error
    return (
        f"The primary container for production variant {variant} did not pass the ping "
        f"health check. Please check CloudWatch logs for this endpoint. ({exc.reason}"
        + (f": {detail}" if detail else "")
        + ")"
    )


def _discard(backend: Backend, server: ModelServer) -> None:
    try:
        server.stop(STOP_TIMEOUT)
    finally:
        with registry(backend).lock:
            registry(backend).servers.discard(server)
        if not backend.keep_sandboxes:
            shutil.rmtree(server.workdir, ignore_errors=True)


def stop_fleet(backend: Backend, fleet: Fleet | None) -> None:
    if fleet is None:
        return
    threads = [
        threading.Thread(
            target=_discard, args=(backend, v.server), name=f"stop:{v.name}", daemon=True
        )
        for v in fleet.variants.values()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# -- workers -----------------------------------------------------------------------------------
def _spawn(backend: Backend, live: LiveEndpoint, action: str) -> None:
    threading.Thread(
        target=_work,
        args=(backend, live, action),
        name=f"endpoint:{live.name}:{action}",
        daemon=True,
    ).start()


def _write(backend: Backend, live: LiveEndpoint, change: Any) -> bool:
    """Update the record unless the endpoint is gone (deleted, or the server stopping)."""
    with backend.store.lock:
        if live.gone.is_set() or not backend.store.exists(KIND, live.name):
            return False
        if isinstance(change, dict):
            change = dict(change, LastModifiedTime=now())
        backend.store.update(KIND, live.name, change)
        return True


def _work(backend: Backend, live: LiveEndpoint, action: str) -> None:
    try:
        if action == "create":
            _create(backend, live)
        elif action == "update":
            _update(backend, live)
        elif action == "weights":
            _apply_weights(backend, live)
        elif action == "restore":
            _restore(backend, live)
    except Exception as exc:
        log.exception("endpoint %s: %s failed", live.name, action)
        _write(
            backend,
            live,
            {
                "EndpointStatus": "Failed",
                "FailureReason": f"InternalServerError: {type(exc).__name__}: {exc}",
            },
        )
    finally:
        live.restored.set()


def _serve(backend: Backend, live: LiveEndpoint, fleet: Fleet) -> bool:
    """Make ``fleet`` the serving one; False (and the fleet stopped) if the endpoint is gone."""
    with live.lock:
        if live.gone.is_set():
            adopted = False
        else:
            live.blue, live.green, live.green_share = fleet, None, 0.0
            adopted = True
    if not adopted:
        stop_fleet(backend, fleet)
        return False
    live.reroute()
    return True


def _create(backend: Backend, live: LiveEndpoint) -> None:
    record = backend.store.get(KIND, live.name)
    if record is None:
        return
    spec = record["_Fleet"]
    try:
        fleet = start_fleet(backend, live.name, spec, live.gone)
    except FleetError as exc:
        _write(
            backend,
            live,
            {
                "EndpointStatus": "Failed",
                "FailureReason": exc.reason[:FAILURE_REASON_MAX],
                "ProductionVariants": [variant_summary(v) for v in spec["Variants"]],
            },
        )
        return
    if not _serve(backend, live, fleet):
        return
    _write(
        backend,
        live,
        {
            "EndpointStatus": "InService",
            "ProductionVariants": [variant_summary(v, live=True) for v in spec["Variants"]],
        },
    )


def _apply_weights(backend: Backend, live: LiveEndpoint) -> None:
    record = backend.store.get(KIND, live.name)
    if record is None:
        return
    with live.lock:
        fleet = live.blue
        if fleet is not None:
            for v in record["_Fleet"]["Variants"]:
                variant = fleet.variants.get(v["VariantName"])
                if variant is not None:
                    variant.weight = v["Weight"]
                    variant.instances = v.get("InstanceCount") or 1
    live.reroute()
    _write(
        backend,
        live,
        {
            "EndpointStatus": "InService",
            "ProductionVariants": [
                variant_summary(v, live=True) for v in record["_Fleet"]["Variants"]
            ],
        },
    )


def _update(backend: Backend, live: LiveEndpoint) -> None:
    record = backend.store.get(KIND, live.name)
    if record is None or "_Pending" not in record:
        return
    spec = record["_Pending"]["Fleet"]
    deployment = record["_Pending"].get("DeploymentConfig")
    old_config = record["EndpointConfigName"]
    started = record.get("PendingDeploymentSummary", {}).get("StartTime", now())
    try:
        green = start_fleet(backend, live.name, spec, live.gone)
    except FleetError as exc:
        _end_update(backend, live, None, exc.reason)
        return
    instances = sum(v.instances for v in green.variants.values())
    alarms = [
        a["AlarmName"]
        for a in ((deployment or {}).get("AutoRollbackConfiguration") or {}).get("Alarms", [])
        if a.get("AlarmName")
    ]
    for share, bake in traffic_steps(deployment, instances):
        with live.lock:
            if live.gone.is_set():
                break
            live.green, live.green_share = green, share
        live.reroute()
        _write(
            backend,
            live,
            {
                "PendingDeploymentSummary": pending_summary(
                    spec, "Baking", started, f"{share:.0%} of traffic on the new fleet"
                )
            },
        )
        alarm = _bake(backend, live, bake, alarms)
        if alarm:
            _write(backend, live, {"EndpointStatus": "RollingBack"})
            with live.lock:
                live.green, live.green_share = None, 0.0
            live.reroute()
            stop_fleet(backend, green)
            _end_update(
                backend,
                live,
                None,
                f"Rolled back to endpoint configuration {old_config}: CloudWatch alarm {alarm} "
                f"was in ALARM state while traffic shifted to {spec['EndpointConfigName']}",
            )
            return
    if live.gone.is_set():
        stop_fleet(backend, green)
        return
    old = live.blue
    if not _serve(backend, live, green):
        return
    termination = ((deployment or {}).get("BlueGreenUpdatePolicy") or {}).get(
        "TerminationWaitInSeconds", 0
    )
    if termination:
        live.gone.wait(termination)
    stop_fleet(backend, old)
    _end_update(backend, live, spec, None, deployment)


def _end_update(
    backend: Backend,
    live: LiveEndpoint,
    spec: dict[str, Any] | None,
    failure: str | None,
    deployment: dict[str, Any] | None = None,
) -> None:
    """Finish an update: committed (``spec``) or rolled back to the fleet that still serves."""

    def change(r: dict[str, Any]) -> None:
        r.pop("_Pending", None)
        r.pop("PendingDeploymentSummary", None)
        r["EndpointStatus"] = "InService"
        r["LastModifiedTime"] = now()
        if spec is not None:
            r["_Fleet"] = spec
            r["EndpointConfigName"] = spec["EndpointConfigName"]
            r["ProductionVariants"] = [variant_summary(v, live=True) for v in spec["Variants"]]
            r.pop("FailureReason", None)
            if deployment:
                r["LastDeploymentConfig"] = deployment
        if failure:
            r["FailureReason"] = failure[:FAILURE_REASON_MAX]

    _write(backend, live, change)


def _bake(backend: Backend, live: LiveEndpoint, seconds: float, alarms: list[str]) -> str | None:
    """Wait ``seconds`` watching the rollback alarms; the first alarm in ALARM, or None."""
    deadline = now() + seconds
    while True:
        firing = _alarm_firing(backend, alarms)
        if firing or live.gone.is_set():
            return firing
        left = deadline - now()
        if left <= 0:
            return None
        live.gone.wait(min(ALARM_POLL_SECONDS, left))


def _alarm_firing(backend: Backend, alarms: list[str]) -> str | None:
    if not alarms:
        return None
    try:
        response = backend.client("cloudwatch").describe_alarms(AlarmNames=alarms)
    except Exception:
        log.exception("could not read rollback alarms %s", alarms)
        return None
    for alarm in response.get("MetricAlarms", []) + response.get("CompositeAlarms", []):
        if alarm.get("StateValue") == "ALARM":
            return str(alarm["AlarmName"])
    return None


# -- restart ---------------------------------------------------------------------------------
def _restore(backend: Backend, live: LiveEndpoint) -> None:
    """Bring an endpoint back after a server restart, and finish what was in progress."""
    record = backend.store.get(KIND, live.name)
    if record is None:
        return
    status = record["EndpointStatus"]
    if status == "Creating":
        _create(backend, live)
        return
    try:
        fleet = start_fleet(backend, live.name, record["_Fleet"], live.gone)
    except FleetError as exc:
        _write(
            backend,
            live,
            {
                "EndpointStatus": "Failed",
                "FailureReason": (
                    "The endpoint's model servers could not be restarted after the local_aws "
                    f"server restarted: {exc.reason}"
                )[:FAILURE_REASON_MAX],
            },
        )
        return
    if not _serve(backend, live, fleet):
        return
    live.restored.set()
    if "_Pending" in record:
        _write(
            backend,
            live,
            {"EndpointStatus": "Updating"},
        )
        _update(backend, live)
    elif status != "InService":
        # an UpdateEndpointWeightsAndCapacities was under way: its values are in _Fleet already
        _apply_weights(backend, live)


@api.on_start
def restore_endpoints(backend: Backend) -> None:
    reg = registry(backend)
    for record in backend.store.values(KIND):
        name = record["EndpointName"]
        if record["EndpointStatus"] in ("Failed", "OutOfService"):
            continue
        if record["EndpointStatus"] == "Deleting":
            backend.store.delete(KIND, name)
            continue
        live = LiveEndpoint(name)
        with reg.lock:
            reg.live[name] = live
        _spawn(backend, live, "restore")


@api.on_shutdown
def stop_endpoints(backend: Backend) -> None:
    """Stop every model server; records stay as they are, and the next start restores them."""
    metrics = backend.extensions.get("endpoint-metrics")
    if metrics is not None:
        metrics.close()
    reg = registry(backend)
    with reg.lock:
        reg.closed = True  # a worker still starting a fleet must not leave an orphan behind
        lives = list(reg.live.values())
        reg.live.clear()
        servers = list(reg.servers)
    for live in lives:
        live.gone.set()
    started = time.monotonic()
    threads = [
        threading.Thread(
            target=_discard, args=(backend, server), name="stop-model-server", daemon=True
        )
        for server in servers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if servers:
        log.info("stopped %d model servers in %.1fs", len(servers), time.monotonic() - started)
