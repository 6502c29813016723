"""Batch transform jobs: the model's server plus a streaming data plane, as on SageMaker.

The job thread starts the model's server (``ModelServer``, what an endpoint instance runs,
with SAGEMAKER_BATCH set) and, beside it, the data plane: this module run as a process,
``python -m local_aws.sagemaker.transform SPEC``, in the role of SageMaker's transform agent.
The agent streams every input object from S3, splits it into records (SplitType), groups
them into mini-batches (BatchStrategy, MaxPayloadInMB), keeps MaxConcurrentTransforms
requests in flight, applies DataProcessing (InputFilter, JoinSource, OutputFilter), writes
the results in input order to a local file and uploads it as ``<key>.out``. A separate
process keeps a large job's work off the API server's GIL, and its memory is the
mini-batches in flight, whatever the size of the input.

The SageMaker SDK's splitters (``sagemaker.core.local.data``) are not used: they read
local files (the SDK downloads the whole input first), NoneSplitter reads a file at once
and MultiRecordStrategy grows its batch by string concatenation.

Where the docs leave a choice open: with AssembleWith Line a newline is added after each
response (or each record, when records are joined or filtered) unless it ends with one;
an object that fails leaves no ``.out`` while the others are still transformed and
uploaded, and the job fails naming it.
"""

from __future__ import annotations

import csv
import http.client
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from local_aws.sagemaker import models, s3io
from local_aws.sagemaker.api import (
    create_record,
    list_page,
    now,
    operation,
    pick,
    shape_response,
)
from local_aws.sagemaker.backend import Backend
from local_aws.sagemaker.errors import ResourceInUse, ValidationException
from local_aws.sagemaker.jobs import FAILURE_REASON_MAX, Job, JobEnded, request_stop
from local_aws.sagemaker.model_server import (
    DEFAULT_DOWNLOAD_TIMEOUT,
    DEFAULT_STARTUP_TIMEOUT,
    ConnectionPool,
    ModelServer,
    ModelServerError,
    instance_id,
)

log = logging.getLogger(__name__)

KIND = "transform-jobs"
LOG_GROUP = "/aws/sagemaker/TransformJobs"
AGENT_MODULE = "local_aws.sagemaker.transform"
MB = 1024 * 1024
DEFAULT_PAYLOAD_MB = 6
MAX_PAYLOAD_MB = 100  # the API's limit, also on MaxConcurrentTransforms * MaxPayloadInMB
DEFAULT_INVOCATION_TIMEOUT = 600  # ModelClientConfig defaults
DEFAULT_INVOCATION_RETRIES = 3
READ_CHUNK = 1 << 20
STRATEGY_ENV = {"MultiRecord": "MULTI_RECORD", "SingleRecord": "SINGLE_RECORD"}
CSV_TYPES = frozenset({"text/csv", "text/x-csv", "application/csv"})
JSON_TYPES = frozenset(
    {"application/json", "application/jsonlines", "application/x-jsonlines", "application/jsonl"}
)


# -- JSONPath, the subset batch transform's DataProcessing documents ---------------------------
class PathError(Exception):
    """A filter that does not apply to a record (missing key, index out of range)."""


@dataclass(frozen=True)
class JsonPath:
    """``$``-rooted steps: ``.name``, ``.*``, ``['a','b']``, ``[0]``, ``[0,2]``, ``[1:]``,
    ``[0,-1]``, ``[*]``. A CSV record is a JSON array of its fields."""

    expression: str
    steps: tuple[tuple[str, Any], ...]

    def __call__(self, value: Any) -> Any:
        for kind, arg in self.steps:
            if kind == "all":
                if isinstance(value, dict):
                    value = list(value.values())
                elif not isinstance(value, list):
                    raise PathError(f"[*] needs an array or object, found {_kind(value)}")
            elif kind in ("key", "keys"):
                if not isinstance(value, dict):
                    raise PathError(f"{_show(arg)} needs an object, found {_kind(value)}")
                missing = [k for k in ([arg] if kind == "key" else arg) if k not in value]
                if missing:
                    raise PathError(f"the record has no key {missing[0]!r}")
                value = value[arg] if kind == "key" else {k: value[k] for k in arg}
            else:  # "index" or "select"
                if not isinstance(value, list):
                    raise PathError(f"an index needs an array, found {_kind(value)}")
                if kind == "index":
                    value = _item(value, arg)
                else:
                    picked: list[Any] = []
                    for sel in arg:
                        if isinstance(sel, slice):
                            picked.extend(value[sel])
                        else:
                            picked.append(_item(value, sel))
                    value = picked
        return value


def _item(values: list[Any], index: int) -> Any:
    try:
        return values[index]
    except IndexError:
        raise PathError(
            f"index {index} is outside the record, which has {len(values)} fields"
        ) from None


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    return "an array" if isinstance(value, list) else "a single value"


def _show(arg: Any) -> str:
    return f"[{', '.join(repr(a) for a in arg)}]" if isinstance(arg, list) else f".{arg}"


_DOT_NAME = re.compile(r"\.([^.\[\]\s]+)")
_SLICE = re.compile(r"^(-?\d*):(-?\d*)(?::(-?\d+))?$")


def compile_path(expression: str | None, *, field: str) -> JsonPath | None:
    """The compiled filter, or None for ``$`` (everything); ValidationException naming
    ``field`` for anything outside the supported subset."""
    expr = (expression or "$").strip()
    if expr == "$":
        return None

    def bad(why: str) -> ValidationException:
        return ValidationException(
            f"{field} {expression!r} is not a JSONPath local_aws supports ({why}); use $, "
            "$.name, $['a','b'], $[0], $[0,2], $[1:], $[0,-1] or $[*]"
        )

    if not expr.startswith("$"):
        raise bad("it must start with $")
    steps: list[tuple[str, Any]] = []
    pos = 1
    while pos < len(expr):
        if expr.startswith("..", pos):
            raise bad("recursive descent '..' is not supported")
        if expr.startswith(".*", pos):
            steps.append(("all", None))
            pos += 2
        elif expr[pos] == ".":
            match = _DOT_NAME.match(expr, pos)
            if not match:
                raise bad(f"a name must follow the '.' at position {pos}")
            steps.append(("key", match.group(1)))
            pos = match.end()
        elif expr[pos] == "[":
            end, items = _bracket(expr, pos + 1, bad)
            steps.append(_bracket_step(items, bad))
            pos = end + 1
        else:
            raise bad(f"unexpected {expr[pos]!r} at position {pos}")
    return JsonPath(expr, tuple(steps))


def _bracket(expr: str, pos: int, bad: Callable[[str], Exception]) -> tuple[int, list[str]]:
    """Split ``[...]`` at commas outside quotes; return the closing position and the items."""
    items, current, quote = [], "", ""
    while pos < len(expr):
        char = expr[pos]
        if quote:
            current += char
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
            current += char
        elif char == ",":
            items.append(current.strip())
            current = ""
        elif char == "]":
            items.append(current.strip())
            return pos, items
        else:
            current += char
        pos += 1
    raise bad("a '[' is not closed")


def _bracket_step(items: list[str], bad: Callable[[str], Exception]) -> tuple[str, Any]:
    if items == ["*"]:
        return ("all", None)
    names = [i[1:-1] for i in items if len(i) >= 2 and i[0] == i[-1] and i[0] in "'\""]
    if names and len(names) == len(items):
        return ("key", names[0]) if len(names) == 1 else ("keys", names)
    if names:
        raise bad("names and indexes cannot be mixed in one bracket")
    selectors: list[int | slice] = []
    for item in items:
        if re.fullmatch(r"-?\d+", item):
            selectors.append(int(item))
            continue
        match = _SLICE.match(item)
        if not match:
            raise bad(f"{item!r} is not an index, a slice or a quoted name")
        start, stop, step = (int(g) if g else None for g in match.groups())
        if step == 0:
            raise bad("a slice step cannot be 0")
        selectors.append(slice(start, stop, step))
    if len(selectors) == 1 and isinstance(selectors[0], int):
        return ("index", selectors[0])
    return ("select", selectors)


# -- records: CSV rows as arrays of fields, JSON values ----------------------------------------
def media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def record_format(content_type: str | None) -> str | None:
    """'csv' or 'json' for the types DataProcessing works on; None when not given."""
    kind = media_type(content_type)
    if not kind:
        return None
    if kind in CSV_TYPES or kind.endswith("/csv"):
        return "csv"
    if kind in JSON_TYPES or kind.endswith("json") or kind.endswith("jsonlines"):
        return "json"
    return "other"


def csv_fields(line: str) -> list[str]:
    if '"' not in line:
        return line.split(",")
    return next(csv.reader([line]))


_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def _quoted(field: str) -> str:
    return '"' + field.replace('"', '""') + '"' if _NEEDS_QUOTES.search(field) else field


def csv_values(value: Any) -> list[str]:
    """A model's decoded output (a number, an array, nested arrays) as CSV fields."""
    if isinstance(value, list):
        return [field for v in value for field in csv_values(v)]
    return [value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))]


def dump(value: Any, fmt: str) -> str:
    """A record as a line: JSON, or CSV fields (one field, or a list of them)."""
    if fmt == "json":
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, str):
        return _quoted(value)
    line = ",".join(value)
    # One scan of the line instead of one per field: quoting is rare in numeric data.
    if line.count(",") + 1 == len(value) and not ('"' in line or "\n" in line or "\r" in line):
        return line
    return ",".join(_quoted(field) for field in value)


def parse(line: str, fmt: str) -> Any:
    if fmt == "json":
        return json.loads(line)
    return csv_fields(line)


def sniff(line: str) -> str:
    return "json" if line.lstrip()[:1] in ("{", "[") else "csv"


def json_or_text(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return line


# -- the API ----------------------------------------------------------------------------------
@operation("CreateTransformJob")
def create_transform_job(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    name = p["TransformJobName"]
    arn = backend.arn("transform-job", name)
    _check_request(backend, p)
    stamp = now()
    record = dict(
        p,
        TransformJobArn=arn,
        TransformJobStatus="InProgress",
        CreationTime=stamp,
        LastModifiedTime=stamp,
    )
    # SageMaker's wording for every job kind's duplicate name
    taken = ResourceInUse(
        "Job name must be unique within an AWS account and region, and a job with "
        f"this name already exists ({arn})"
    )
    create_record(backend, KIND, name, record, arn=arn, exists=taken)
    backend.start_job(TransformJob(backend, name))
    return {"TransformJobArn": arn}


def _check_request(backend: Backend, p: dict[str, Any]) -> None:
    """Refuse at once, naming the field, what SageMaker refuses or local_aws cannot run."""
    models.get_model(backend, p["ModelName"])  # SageMaker checks the model at create
    source = p["TransformInput"]["DataSource"]["S3DataSource"]
    where = "TransformInput.DataSource.S3DataSource"
    if source["S3DataType"] not in ("S3Prefix", "ManifestFile"):
        raise ValidationException(
            f"{where}.S3DataType {source['S3DataType']!r} is not supported by local_aws: use "
            "S3Prefix or ManifestFile"
        )
    s3io.split_s3_uri(source["S3Uri"], field=f"{where}.S3Uri")
    s3io.split_s3_uri(p["TransformOutput"]["S3OutputPath"], field="TransformOutput.S3OutputPath")
    split = p["TransformInput"].get("SplitType", "None")
    if split not in ("None", "Line"):
        raise ValidationException(
            f"TransformInput.SplitType {split} is not supported by local_aws: use Line (one "
            "record per line) or None (each object is one request)"
        )
    payload = p.get("MaxPayloadInMB")
    if payload == 0:
        raise ValidationException(
            "MaxPayloadInMB 0 (unbounded payloads over HTTP chunked encoding) is not "
            f"supported by local_aws: give a size from 1 to {MAX_PAYLOAD_MB}"
        )
    if payload is not None and payload > MAX_PAYLOAD_MB:
        raise ValidationException(
            f"MaxPayloadInMB is {payload}: it cannot be greater than {MAX_PAYLOAD_MB} MB"
        )
    concurrency = p.get("MaxConcurrentTransforms")
    if payload and concurrency and payload * concurrency > MAX_PAYLOAD_MB:
        raise ValidationException(
            f"MaxConcurrentTransforms * MaxPayloadInMB is {concurrency} * {payload} = "
            f"{concurrency * payload}: it cannot exceed {MAX_PAYLOAD_MB} MB; lower either"
        )
    if p.get("DataCaptureConfig"):
        raise ValidationException(
            "DataCaptureConfig is not supported by local_aws: leave it out (inputs and "
            "outputs are in S3 already)"
        )
    processing = p.get("DataProcessing") or {}
    input_filter = compile_path(processing.get("InputFilter"), field="DataProcessing.InputFilter")
    output_filter = compile_path(
        processing.get("OutputFilter"), field="DataProcessing.OutputFilter"
    )
    if input_filter or output_filter or processing.get("JoinSource") == "Input":
        content_type = p["TransformInput"].get("ContentType")
        if record_format(content_type) == "other":
            raise ValidationException(
                f"DataProcessing works on CSV and JSON input only, and TransformInput."
                f"ContentType is {content_type!r}: use text/csv, application/json or "
                "application/jsonlines"
            )


@operation("DescribeTransformJob")
def describe_transform_job(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    return shape_response("DescribeTransformJob", _get(backend, p["TransformJobName"]))


def _get(backend: Backend, name: str) -> dict[str, Any]:
    record = backend.store.get(KIND, name)
    if record is None:
        # a ValidationException, as SageMaker answers (the Airflow provider relies on it)
        raise ValidationException(f"Could not find requested job with name {name}")
    return record


SUMMARY_KEYS = (
    "TransformJobName",
    "TransformJobArn",
    "CreationTime",
    "TransformEndTime",
    "LastModifiedTime",
    "TransformJobStatus",
    "FailureReason",
)


@operation("ListTransformJobs")
def list_transform_jobs(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    return list_page(
        backend.store.values(KIND),
        p,
        name_key="TransformJobName",
        status_key="TransformJobStatus",
        summary=lambda r: pick(r, SUMMARY_KEYS),
        result_key="TransformJobSummaries",
    )


@operation("StopTransformJob")
def stop_transform_job(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    _get(backend, p["TransformJobName"])
    request_stop(backend, TransformJob, p["TransformJobName"])
    return {}


# -- the job ----------------------------------------------------------------------------------
class TransformJob(Job):
    kind = KIND
    name_field = "TransformJobName"
    status_field = "TransformJobStatus"
    log_group = LOG_GROUP
    has_secondary_status = False

    def execute(self) -> None:
        job = self.record()
        self.update(TransformStartTime=now())
        model = self.backend.store.get(models.MODELS, job["ModelName"])
        if model is None:  # deleted since the job was created
            arn = self.backend.arn("model", job["ModelName"])
            raise JobEnded("Failed", f'ClientError: Could not find model "{arn}".')
        instance = instance_id()
        stream = f"{self.job_name}/{instance}"
        server = ModelServer(
            self.backend,
            models.primary_container(model),
            workdir=self.sandbox / "model-server",
            log_group=LOG_GROUP,
            log_stream=stream,
            env=container_env(job),
        )
        handshake = self.sandbox / "server.json"
        failure = self.sandbox / "failure"
        spec = agent_spec(job, workdir=self.sandbox / "work", handshake=handshake, failure=failure)
        spec_path = self.sandbox / "spec.json"
        spec_path.write_text(json.dumps(spec))
        self._server_error: str | None = None
        # The agent imports and lists the input while the model server starts.
        starter = threading.Thread(
            target=self._start_server,
            args=(server, job, handshake, stream),
            name=f"start:{stream}",
            daemon=True,
        )
        starter.start()
        logs = self.log_stream(f"{stream}/data-log")
        try:
            code, tail = self.run_process(
                [sys.executable, "-m", AGENT_MODULE, str(spec_path)],
                env=self.job_env(),
                cwd=self.sandbox,
                logs=logs,
            )
        finally:
            logs.close()
            server.stop()
            starter.join(timeout=10)
        # The agent's own verdict first: it may have ended (and stopped the server) before
        # the server was up; without one, a server that never started is the reason.
        reason = failure.read_text().strip() if failure.is_file() else ""
        if not reason and self._server_error:
            reason = self._server_error
        if code != 0 and not reason:
            last = "\n".join(tail[-10:])
            reason = f"InternalServerError: the transform agent exited with code {code}\n{last}"
        if reason:
            raise JobEnded("Failed", reason[:FAILURE_REASON_MAX])

    def _start_server(
        self, server: ModelServer, job: dict[str, Any], handshake: Path, stream: str
    ) -> None:
        result: dict[str, Any]
        try:
            server.start()
            result = {"url": server.url, **resolve_parameters(job, server)}
        except ModelServerError as exc:
            detail = exc.last_error
            result = {
                "error": f"ClientError: the model server did not start: {exc.reason}"
                + (f": {detail}" if detail and detail not in exc.reason else "")
                + f" (see the log stream {stream} in {LOG_GROUP})"
            }
        except Exception as exc:  # a bug or an S3 outage fails the job, never hangs it
            log.exception("starting the model server of %s", self.job_name)
            result = {"error": f"InternalServerError: {type(exc).__name__}: {exc}"}
        if "error" in result:
            self._server_error = result["error"]
        tmp = handshake.with_suffix(".tmp")
        tmp.write_text(json.dumps(result))
        os.replace(tmp, handshake)

    def final_fields(self, status: str) -> dict[str, Any]:
        return {"TransformEndTime": now()}


def container_env(job: dict[str, Any]) -> dict[str, str]:
    """What a serving container learns of the batch it is in (as SageMaker sets it)."""
    env = {"SAGEMAKER_BATCH": "true"}
    if job.get("MaxPayloadInMB"):
        env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(job["MaxPayloadInMB"])
    if job.get("BatchStrategy"):
        env["SAGEMAKER_BATCH_STRATEGY"] = STRATEGY_ENV[job["BatchStrategy"]]
    if job.get("MaxConcurrentTransforms"):
        env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(job["MaxConcurrentTransforms"])
    env.update(job.get("Environment") or {})
    return env


def resolve_parameters(job: dict[str, Any], server: ModelServer) -> dict[str, Any]:
    """The request's values; what it leaves out from the container's /execution-parameters,
    as SageMaker does; else SageMaker's defaults."""
    asked = {
        "MaxConcurrentTransforms": job.get("MaxConcurrentTransforms") or None,
        "MaxPayloadInMB": job.get("MaxPayloadInMB"),
        "BatchStrategy": job.get("BatchStrategy"),
    }
    offered = server.execution_parameters() if None in asked.values() else {}
    if not isinstance(offered, dict):  # a container's answer is not ours to trust
        offered = {}

    def number(value: Any, low: int, high: int) -> int | None:
        try:
            n = int(value)
        except (TypeError, ValueError):
            return None
        return n if low <= n <= high else None

    strategy = str(offered.get("BatchStrategy", "")).upper().replace("-", "_")
    return {
        "MaxConcurrentTransforms": asked["MaxConcurrentTransforms"]
        or number(offered.get("MaxConcurrentTransforms"), 1, MAX_PAYLOAD_MB)
        or 1,
        "MaxPayloadInMB": asked["MaxPayloadInMB"]
        or number(offered.get("MaxPayloadInMB"), 1, MAX_PAYLOAD_MB)
        or DEFAULT_PAYLOAD_MB,
        "BatchStrategy": asked["BatchStrategy"]
        or {v: k for k, v in STRATEGY_ENV.items()}.get(strategy)
        or "MultiRecord",
    }


def agent_spec(
    job: dict[str, Any], *, workdir: Path, handshake: Path, failure: Path
) -> dict[str, Any]:
    transform_input, output = job["TransformInput"], job["TransformOutput"]
    source = transform_input["DataSource"]["S3DataSource"]
    processing = job.get("DataProcessing") or {}
    client = job.get("ModelClientConfig") or {}
    return {
        "s3_uri": source["S3Uri"],
        "s3_data_type": source["S3DataType"],
        "compression": transform_input.get("CompressionType", "None"),
        "split_type": transform_input.get("SplitType", "None"),
        "content_type": transform_input.get("ContentType"),
        "accept": output.get("Accept"),
        "assemble_with": output.get("AssembleWith", "None"),
        "output_path": output["S3OutputPath"],
        "input_filter": processing.get("InputFilter"),
        "output_filter": processing.get("OutputFilter"),
        "join_input": processing.get("JoinSource") == "Input",
        "timeout": client.get("InvocationsTimeoutInSeconds", DEFAULT_INVOCATION_TIMEOUT),
        "retries": client.get("InvocationsMaxRetries", DEFAULT_INVOCATION_RETRIES),
        "workdir": str(workdir),
        "handshake": str(handshake),
        "failure": str(failure),
        "wait_seconds": DEFAULT_STARTUP_TIMEOUT + DEFAULT_DOWNLOAD_TIMEOUT + 60,
        "instance_count": job["TransformResources"]["InstanceCount"],
    }


# -- the agent (runs in its own process) -------------------------------------------------------
class ObjectFailed(Exception):
    """One input object could not be transformed; ``reason`` is FailureReason-ready."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class AgentSpec:
    s3_uri: str
    s3_data_type: str
    compression: str
    split_type: str
    content_type: str | None
    accept: str | None
    assemble_with: str
    output_path: str
    input_filter: str | None
    output_filter: str | None
    join_input: bool
    timeout: float
    retries: int
    workdir: str
    handshake: str
    failure: str
    wait_seconds: float
    instance_count: int = 1


@dataclass
class Batch:
    payload: bytes
    records: list[str] | None  # the input records, when outputs are matched to them
    count: int


@dataclass
class Stats:
    records: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


def say(message: str) -> None:
    """One data-log line, in the form SageMaker's agent writes them."""
    clock = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(clock))
    print(f"{stamp}.{int(clock * 1000) % 1000:03d}:[sagemaker logs]: {message}", flush=True)


class Agent:
    def __init__(self, spec: AgentSpec, s3: Any, transfer: Any = None):
        self.spec, self.s3, self.transfer = spec, s3, transfer
        self.input_filter = compile_path(spec.input_filter, field="DataProcessing.InputFilter")
        self.output_filter = compile_path(spec.output_filter, field="DataProcessing.OutputFilter")
        self.per_record = bool(self.input_filter or self.output_filter or spec.join_input)
        self.input_format = record_format(spec.content_type)
        self.output_format = record_format(spec.accept)
        self.line = spec.assemble_with == "Line"
        self.headers = {}
        if spec.content_type:
            self.headers["Content-Type"] = spec.content_type
        if spec.accept:
            self.headers["Accept"] = spec.accept
        self.pool: ConnectionPool | None = None
        self.limit = DEFAULT_PAYLOAD_MB * MB
        self.concurrency = 1
        self.single = False
        self.temp_files: set[Path] = set()

    # -- inputs ------------------------------------------------------------------------------
    def inputs(self) -> list[tuple[str, str, str]]:
        """(bucket, key, path below the input prefix) of every input object, in key order."""
        bucket, prefix = s3io.split_s3_uri(self.spec.s3_uri)
        if self.spec.s3_data_type == "ManifestFile":
            manifest = json.loads(self.s3.get_object(Bucket=bucket, Key=prefix)["Body"].read())
            if not isinstance(manifest, list) or not manifest or "prefix" not in manifest[0]:
                raise ObjectFailed(
                    f"ClientError: the manifest {self.spec.s3_uri} must be a JSON array that "
                    'starts with {"prefix": "s3://bucket/prefix/"} followed by relative keys'
                )
            src_bucket, src_prefix = s3io.split_s3_uri(manifest[0]["prefix"])
            return [(src_bucket, src_prefix + rel, rel) for rel in manifest[1:]]
        keys = s3io.list_keys(self.s3, bucket, prefix)
        if not keys:
            raise ObjectFailed(
                f'ClientError: No S3 objects found under S3 URL "{self.spec.s3_uri}" given in '
                "the input data source. Make sure the bucket and objects exist and that the "
                "prefix is right."
            )
        return [(bucket, key, s3io.relative_key(key, prefix)) for key in keys]

    def chunks(self, bucket: str, key: str) -> Iterator[bytes]:
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            raw: Iterator[bytes] = body.iter_chunks(READ_CHUNK)
            yield from (
                gunzip(raw, f"s3://{bucket}/{key}") if self.spec.compression == "Gzip" else raw
            )
        finally:
            body.close()

    # -- batching ------------------------------------------------------------------------------
    def batches(self, chunks: Iterable[bytes], uri: str) -> Generator[Batch, None, None]:
        if self.spec.split_type == "None":
            whole = bytearray()
            for chunk in chunks:
                whole += chunk
                if len(whole) > self.limit:
                    raise ObjectFailed(
                        f"ClientError: {uri} is larger than MaxPayloadInMB "
                        f"({self.limit // MB} MB): with SplitType None each object is sent in one "
                        "request. Set SplitType to Line, or raise MaxPayloadInMB (at most "
                        f"{MAX_PAYLOAD_MB})"
                    )
            if not self.per_record:
                if whole:
                    payload = bytes(whole)
                    del whole  # one copy of the object in memory, not two
                    yield Batch(payload, None, 1)
                return
            record = self.decode(bytes(whole), uri).rstrip("\r\n")
            if record.strip():
                line = self.filter_input(record, uri) if self.input_filter else record
                yield self.batch([record], [line])
            return
        if not self.per_record:
            if not self.single:
                yield from cut_batches(chunks, self.limit, uri)
                return
            for raw in split_lines(chunks, self.limit, uri):
                if raw.strip():
                    payload = raw + b"\n"
                    if len(payload) > self.limit:
                        raise oversize(uri, self.limit)
                    yield Batch(payload, None, 1)
            return
        records: list[str] = []
        lines: list[str] = []
        size = 0
        for record in self.text_lines(chunks, uri):
            if record.endswith("\r"):
                record = record[:-1]
            if not record or record.isspace():
                continue
            line = self.filter_input(record, uri) if self.input_filter else record
            cost = (len(line) if line.isascii() else len(line.encode())) + 1
            if cost > self.limit:
                raise oversize(uri, self.limit)
            if records and (self.single or size + cost > self.limit):
                yield self.batch(records, lines)
                records, lines, size = [], [], 0
            records.append(record)
            lines.append(line)
            size += cost
        if records:
            yield self.batch(records, lines)

    @staticmethod
    def batch(records: list[str], lines: list[str]) -> Batch:
        return Batch(("\n".join(lines) + "\n").encode(), records, len(records))

    def filter_input(self, line: str, uri: str) -> str:
        assert self.input_filter is not None
        fmt = self.input_format if self.input_format in ("csv", "json") else sniff(line)
        try:
            return dump(self.input_filter(parse(line, fmt)), fmt)
        except ValueError as exc:
            raise ObjectFailed(
                f"ClientError: {uri}: a record is not valid {fmt.upper()}: {exc}"
            ) from exc
        except PathError as exc:
            raise ObjectFailed(
                f"ClientError: {uri}: DataProcessing.InputFilter "
                f"{self.input_filter.expression!r} does not apply to the record "
                f"{line[:100]!r}: {exc}"
            ) from exc

    def text_lines(self, chunks: Iterable[bytes], uri: str) -> Iterator[str]:
        """Lines as text, decoded a chunk at a time (a cut at a newline never splits a
        UTF-8 character)."""
        rest = b""
        for chunk in chunks:
            data = rest + chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                rest = data
            else:
                rest = data[cut + 1 :]
                yield from self.decode(data[:cut], uri).split("\n")
            if len(rest) > self.limit:  # a line that never ends must not fill the memory
                raise oversize(uri, self.limit)
        if rest:
            yield self.decode(rest, uri)

    @staticmethod
    def decode(raw: bytes, uri: str) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ObjectFailed(
                f"ClientError: {uri} is not UTF-8 text, which DataProcessing needs: {exc}"
            ) from exc

    # -- invoking ------------------------------------------------------------------------------
    def invoke(self, batch: Batch, uri: str) -> bytes:
        assert self.pool is not None
        attempts = self.spec.retries + 1
        error = ""
        for attempt in range(attempts):
            try:
                status, _, body = self.pool.request(
                    "POST", "/invocations", batch.payload, self.headers, self.spec.timeout
                )
            except (OSError, http.client.HTTPException) as exc:
                error = f"the model server did not answer ({type(exc).__name__}: {exc})"
            else:
                if status < 400:
                    return self.assemble(batch, body, uri)
                message = body.decode("utf-8", "replace").strip()
                first = message.splitlines()[0] if message else "(empty body)"
                error = f"the model server answered {status}: {first}"
                if status < 500:
                    break  # the request itself is at fault: a retry gets the same answer
            if attempt + 1 < attempts:
                say(f"{uri}: {error}; retrying ({attempt + 1} of {self.spec.retries})")
        raise ObjectFailed(f"ClientError: {uri}: {error[:800]}")

    def assemble(self, batch: Batch, body: bytes, uri: str) -> bytes:
        if batch.records is None:
            if self.line and body and not body.endswith(b"\n"):
                return body + b"\n"
            return body
        lines = self.join(batch.records, body, uri)
        end = "\n" if self.line else ""
        return "".join(line + end for line in lines).encode()

    def join(self, records: list[str], body: bytes, uri: str) -> list[str]:
        """Output lines for a mini-batch: each joined with its input record (JoinSource
        Input), then passed through OutputFilter."""
        text = self.decode(body, uri)
        lines = [line.rstrip("\r") for line in text.split("\n")]
        while lines and not lines[-1].strip():
            lines.pop()
        if not self.spec.join_input:
            return [self.filter_output(line, uri) for line in lines]
        values: list[Any] | None = None
        if len(lines) != len(records):
            array = json_or_text(text.strip()) if text.lstrip().startswith("[") else None
            if not (isinstance(array, list) and len(array) == len(records)):
                raise ObjectFailed(
                    f"ClientError: {uri}: the model returned {len(lines)} lines for a "
                    f"mini-batch of {len(records)} records; JoinSource Input needs one output "
                    "line per input record (or a JSON array with one element per record)"
                )
            values = array
        out: list[str] = []
        flt = self.output_filter
        for i, record in enumerate(records):
            decoded = values is not None
            result: Any = values[i] if values is not None else lines[i]
            fmt = self.input_format if self.input_format in ("csv", "json") else sniff(record)
            try:
                if fmt == "csv":
                    if flt is None and not decoded:
                        out.append(f"{record},{result}")  # no parsing needed to append a row
                        continue
                    joined: Any = csv_fields(record) + (
                        csv_values(result) if decoded else csv_fields(result)
                    )
                else:
                    source = json.loads(record)
                    value = result if decoded else json_or_text(result)
                    joined = (
                        {**source, "SageMakerOutput": value}
                        if isinstance(source, dict)
                        else {"SageMakerInput": source, "SageMakerOutput": value}
                    )
                out.append(dump(flt(joined) if flt else joined, fmt))
            except ValueError as exc:
                raise ObjectFailed(
                    f"ClientError: {uri}: a record is not valid JSON: {exc}"
                ) from exc
            except PathError as exc:
                raise self.output_filter_error(record, exc, uri) from exc
        return out

    def filter_output(self, line: str, uri: str) -> str:
        assert self.output_filter is not None
        fmt = self.output_format if self.output_format in ("csv", "json") else sniff(line)
        try:
            return dump(self.output_filter(parse(line, fmt)), fmt)
        except ValueError as exc:
            raise ObjectFailed(
                f"ClientError: {uri}: the model's output is not valid {fmt.upper()}: {exc}"
            ) from exc
        except PathError as exc:
            raise self.output_filter_error(line, exc, uri) from exc

    def output_filter_error(self, record: str, exc: PathError, uri: str) -> ObjectFailed:
        assert self.output_filter is not None
        return ObjectFailed(
            f"ClientError: {uri}: DataProcessing.OutputFilter "
            f"{self.output_filter.expression!r} does not apply to the output for "
            f"{record[:100]!r}: {exc}"
        )

    # -- one object ------------------------------------------------------------------------------
    def transform(self, pool: ThreadPoolExecutor, bucket: str, key: str, relative: str) -> Stats:
        uri = f"s3://{bucket}/{key}"
        out_bucket, out_prefix = s3io.split_s3_uri(self.spec.output_path)
        out_key = "/".join(p for p in (out_prefix.rstrip("/"), relative + ".out") if p)
        work = Path(self.spec.workdir)
        work.mkdir(parents=True, exist_ok=True)
        temp = work / "object.out.part"  # objects are transformed one after the other
        self.temp_files.add(temp)
        stats = Stats()
        pending: deque[tuple[Future[bytes], int, int]] = deque()
        try:
            with temp.open("wb") as out:

                def drain(keep: int) -> None:
                    while len(pending) > keep:
                        future, count, size = pending.popleft()
                        data = future.result()
                        out.write(data)
                        stats.records += count
                        stats.bytes_in += size
                        stats.bytes_out += len(data)

                try:
                    # At most MaxConcurrentTransforms requests run and one more batch waits:
                    # memory is a few mini-batches, whatever the object's size.
                    with closing(self.batches(self.chunks(bucket, key), uri)) as batches:
                        for batch in batches:
                            future = pool.submit(self.invoke, batch, uri)
                            pending.append((future, batch.count, len(batch.payload)))
                            del batch
                            drain(self.concurrency)
                    drain(0)
                except BaseException:
                    for future, _, _ in pending:
                        future.cancel()
                    for future, _, _ in pending:
                        if not future.cancelled():
                            future.exception()  # wait: its thread must not outlive the object
                    raise
            self.s3.upload_file(str(temp), out_bucket, out_key, Config=self.transfer)
        except self.s3.exceptions.NoSuchKey as exc:
            raise ObjectFailed(f"ClientError: {uri} no longer exists: {exc}") from exc
        finally:
            temp.unlink(missing_ok=True)
            self.temp_files.discard(temp)
        return stats

    def run(self) -> int:
        spec = self.spec
        try:
            objects = self.inputs()
        except (ObjectFailed, ClientError) as exc:
            reason = (
                exc.reason
                if isinstance(exc, ObjectFailed)
                else f"ClientError: could not read the input {spec.s3_uri}: {exc}"
            )
            say(reason)
            write_failure(spec.failure, reason)
            return 1
        server = wait_for_server(spec)
        if server is None:
            waited = f"{spec.wait_seconds:.0f}"
            reason = f"ClientError: the model server was not ready after {waited} seconds"
            write_failure(spec.failure, reason)
            return 1
        if "error" in server:
            return 2  # the job thread has the reason
        host, port = server["url"].removeprefix("http://").rsplit(":", 1)
        self.pool = ConnectionPool(host, int(port))
        self.concurrency = int(server["MaxConcurrentTransforms"])
        self.limit = int(server["MaxPayloadInMB"]) * MB
        self.single = server["BatchStrategy"] == "SingleRecord" and spec.split_type == "Line"
        if spec.instance_count > 1:
            say(
                f"local_aws: InstanceCount is {spec.instance_count}; one instance transforms "
                "every object"
            )
        say(
            f"MaxConcurrentTransforms={self.concurrency}, MaxPayloadInMB={self.limit // MB}, "
            f"BatchStrategy={STRATEGY_ENV[server['BatchStrategy']]}"
        )
        failures: list[str] = []
        total = Stats()
        started = time.monotonic()
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="invoke") as pool:
            for bucket, key, relative in objects:
                uri = f"s3://{bucket}/{key}"
                begun = time.monotonic()
                try:
                    stats = self.transform(pool, bucket, key, relative)
                except ObjectFailed as exc:
                    say(exc.reason)
                    failures.append(exc.reason)
                    continue
                except Exception as exc:  # S3 errors and the like: this object fails
                    reason = f"ClientError: {uri}: {type(exc).__name__}: {exc}"
                    say(reason)
                    failures.append(reason)
                    continue
                say(
                    f"{uri}: {stats.records} records, {stats.bytes_in / MB:.1f} MB in, "
                    f"{stats.bytes_out / MB:.1f} MB out in {time.monotonic() - begun:.2f}s"
                )
                total.records += stats.records
                total.bytes_in += stats.bytes_in
        say(
            f"transformed {len(objects) - len(failures)} of {len(objects)} objects: "
            f"{total.records} records, {total.bytes_in / MB:.1f} MB in "
            f"{time.monotonic() - started:.3f}s"
        )
        if failures:
            more = len(failures) - 1
            reason = failures[0] + (
                f" ({more} more object{'s' if more > 1 else ''} failed: see the data-log)"
                if more
                else ""
            )
            write_failure(spec.failure, reason)
            return 1
        return 0


def oversize(uri: str, limit: int) -> ObjectFailed:
    return ObjectFailed(
        f"ClientError: {uri} holds a record larger than MaxPayloadInMB ({limit // MB} MB). "
        f"Raise MaxPayloadInMB (at most {MAX_PAYLOAD_MB}) to fit the largest record, or "
        "split the record"
    )


def cut_batches(chunks: Iterable[bytes], limit: int, uri: str) -> Iterator[Batch]:
    """Whole lines, as many as fit in ``limit`` bytes per batch, without parsing them."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) > limit:
            cut = buffer.rfind(b"\n", 0, limit)
            if cut < 0:
                raise oversize(uri, limit)
            with memoryview(buffer) as view:
                payload = bytes(view[: cut + 1])  # one copy (a bytearray slice would be two)
            del buffer[: cut + 1]
            yield Batch(payload, None, payload.count(b"\n"))
    if buffer.strip():
        payload = bytes(buffer)
        yield Batch(payload, None, payload.count(b"\n") + (not payload.endswith(b"\n")))


def split_lines(chunks: Iterable[bytes], limit: int, uri: str) -> Iterator[bytes]:
    rest = b""
    for chunk in chunks:
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        if len(rest) > limit:  # a line that never ends must not fill the memory
            raise oversize(uri, limit)
        yield from lines
    if rest:
        yield rest


def gunzip(chunks: Iterable[bytes], uri: str) -> Iterator[bytes]:
    """Decompress a gzip stream (members concatenated, as gzip allows), bounded per step."""
    decompressor = zlib.decompressobj(31)
    try:
        for chunk in chunks:
            data = chunk
            while data:
                out = decompressor.decompress(data, READ_CHUNK)
                if out:
                    yield out
                data = decompressor.unconsumed_tail
                if decompressor.eof:
                    data = decompressor.unused_data + data
                    decompressor = zlib.decompressobj(31)
        tail = decompressor.flush()
        if tail:
            yield tail
    except zlib.error as exc:
        raise ObjectFailed(
            f"ClientError: {uri} is not gzip data, as CompressionType Gzip says: {exc}"
        ) from exc


def wait_for_server(spec: AgentSpec) -> dict[str, Any] | None:
    """The job thread's word on the model server: its URL and parameters, or its error."""
    path = Path(spec.handshake)
    deadline = time.monotonic() + spec.wait_seconds
    while not path.exists():
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def write_failure(path: str, reason: str) -> None:
    Path(path).write_text(reason[:FAILURE_REASON_MAX])


def _exit_when_orphaned(interval: float = 1.0) -> None:
    """Stop when local_aws is gone (killed without stopping the job)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def agent_main(argv: list[str]) -> int:
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config

    spec = AgentSpec(**json.loads(Path(argv[0]).read_text()))
    s3 = boto3.session.Session().client(
        "s3", config=Config(retries={"max_attempts": 5, "mode": "standard"})
    )
    # s3transfer holds about 1.5 parts per thread: two threads keep an upload's memory at
    # ~25 MB whatever the output's size (moto takes the parts one at a time anyway).
    transfer = TransferConfig(
        multipart_threshold=8 * MB, multipart_chunksize=8 * MB, max_concurrency=2
    )
    agent = Agent(spec, s3, transfer)

    def terminate(signum: int, frame: Any) -> None:
        # A stopped job leaves no partial output behind; the in-flight requests die with us.
        for temp in list(agent.temp_files):
            temp.unlink(missing_ok=True)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    _exit_when_orphaned()
    return agent.run()


if __name__ == "__main__":
    sys.exit(agent_main(sys.argv[1:]))
