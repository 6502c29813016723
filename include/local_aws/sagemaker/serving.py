"""The model server behind endpoints and batch transform: what the SageMaker scikit-learn and
XGBoost framework containers run on port 8080, without the container.

    python -m local_aws.sagemaker.serving --model-dir DIR --port N [--host 127.0.0.1]
        [--code-dir DIR] [--program SCRIPT]

The entry point may instead come from SAGEMAKER_PROGRAM / SAGEMAKER_SUBMIT_DIRECTORY, which the
SageMaker SDK sets on the Model. The model is loaded before the server prints its one ready line,
`serving on http://HOST:PORT`; if loading fails the traceback is printed and the process exits 1.

Routes: GET /ping, POST /invocations, GET /execution-parameters. The handler chain is the
containers' one: model_fn, input_fn, predict_fn, output_fn (or transform_fn), each falling back to
the framework default, and each optionally taking a trailing `context` argument as the SageMaker
inference toolkit allows. Differences from the containers are deliberate and few: the default
model_fn loads model.joblib / model.pkl / xgboost-model instead of refusing, media types are
matched without parameters ("text/csv; charset=utf-8" works) and errors put the exception message
and traceback in the body, as the inference toolkit does, rather than Flask's generic HTML page.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import inspect
import io
import json
import logging
import os
import pickle
import queue
import signal
import socketserver
import sys
import threading
import time
import traceback
from collections.abc import Callable
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from types import FrameType, ModuleType
from typing import Any

import numpy as np
import pandas as pd
from sagemaker_training import content_types, encoders
from sagemaker_training.errors import UnsupportedFormatError

from local_aws.httpheaders import FastHeadersHandler

LOGGER_NAME = "local_aws.sagemaker.serving"
logger = logging.getLogger(LOGGER_NAME)

CSV = content_types.CSV
JSON = content_types.JSON
NPY = content_types.NPY
LIBSVM_TYPES = frozenset({"text/libsvm", "text/x-libsvm"})
SNIFFABLE_DELIMITERS = frozenset({",", "\t", ";", "|", " "})
# Where the SDK's repack puts inference code inside the container; SAGEMAKER_SUBMIT_DIRECTORY
# points here when the code travels inside model.tar.gz.
CONTAINER_MODEL_DIR = PurePosixPath("/opt/ml/model")
EXECUTION_PARAMETERS = {
    "MaxConcurrentTransforms": 1,
    "BatchStrategy": "MULTI_RECORD",
    "MaxPayloadInMB": 6,
}
# Bounds every wait on a connection: a request that stalls half-way (a client that sends fewer
# bytes than its Content-Length, or stops reading the response), and an idle keep-alive
# connection, closed after that long (local_aws's pool retries a closed one on a new
# connection). One timeout for the connection's life: a settimeout is a syscall, and
# switching between a request's timeout and none while idle cost two per request.
IO_TIMEOUT_SECONDS = 60.0
# pandas.read_csv costs ~0.4 ms even for one row, the csv module far less; they break even
# around 10 KB of numeric CSV.
PANDAS_CSV_THRESHOLD = 8 * 1024
# Below this a response goes out in one send, so headers and body share a TCP segment.
SINGLE_WRITE_LIMIT = 256 * 1024


class SetupError(Exception):
    """The server cannot start (bad arguments, missing entry point, no way to load the model)."""


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = int(status)
        self.message = message


class Context:
    """The `context` the inference toolkit passes to handlers that take one more argument."""

    def __init__(self, model_dir: str) -> None:
        self.system_properties: dict[str, Any] = {"model_dir": model_dir, "gpu_id": None}
        self.model_dir = model_dir


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


# --- decoding ---------------------------------------------------------------------------------


def _numeric_frame(raw: bytes, sep: str, empty_is_nan: bool) -> np.ndarray | None:
    """Parse all-numeric CSV with pandas' C reader (about 20x faster than the toolkit's csv
    module path), or return None when the text is anything else so the caller can fall back to
    the reference decoder and its exact behaviour on odd input."""
    # Read as float, pandas turns a column of True/False into 1.0/0.0 where float() refuses;
    # numeric CSV has none of these letters, so a memchr scan for them is enough.
    if any(letter in raw for letter in (b"t", b"T", b"f", b"F")) or not raw.strip():
        return None
    try:
        frame = pd.read_csv(
            io.BytesIO(raw),
            sep=sep,
            header=None,
            # float64 rather than type inference: inferred int64 columns would lose -0's sign.
            dtype=np.float64,
            # Python's float() reads "nan"/"inf" and sees "" as an error, pandas' NA handling does
            # neither; leaving NA detection off routes such text to the reference decoder.
            na_filter=empty_is_nan,
            keep_default_na=False,
            na_values=[""] if empty_is_nan else None,
            skip_blank_lines=empty_is_nan,
            low_memory=False,
            engine="c",
        )
    except Exception:
        return None
    return frame.to_numpy(dtype=np.float64)


def csv_to_numpy(data: str | bytes) -> np.ndarray:
    """sagemaker_training.encoders.csv_to_numpy, same array out (float64, squeezed), fast."""
    if len(data) >= PANDAS_CSV_THRESHOLD:
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        array = _numeric_frame(raw, ",", empty_is_nan=False)
        if array is not None:
            return array.squeeze()
    text = data if isinstance(data, str) else bytes(data).decode("utf-8")
    row = text[:-1] if text.endswith("\n") else text
    if row and not any(c in row for c in ('"', "\r", "\n", "\x00")):
        # one row without quotes (an endpoint's usual request): csv.reader's row is the
        # split, and the rest is the toolkit's own steps
        try:
            return np.array([row.split(",")]).squeeze().astype(None)
        except Exception:
            pass  # not all numbers, or worse: the toolkit's own answer, whatever it is
    return encoders.csv_to_numpy(text)


def decode(data: str | bytes, content_type: str) -> np.ndarray:
    """sagemaker_training.encoders.decode with the fast CSV path."""
    kind = media_type(content_type)
    if kind == CSV:
        return csv_to_numpy(data)
    if kind == JSON:
        return encoders.json_to_numpy(data)
    if kind == NPY:
        return encoders.npy_to_numpy(data.encode("latin-1") if isinstance(data, str) else data)
    raise UnsupportedFormatError(content_type)


def _xgboost() -> Any:
    import xgboost

    return xgboost


def is_booster(model: object) -> bool:
    xgb = sys.modules.get("xgboost")
    return xgb is not None and isinstance(model, xgb.Booster)


def csv_to_xgboost_array(data: str | bytes) -> np.ndarray:
    """The XGBoost container's csv_to_dmatrix, before the DMatrix: a 2-D float array (one row
    stays a row), empty fields as NaN, the delimiter sniffed from the first line."""
    text = data.decode("utf-8") if isinstance(data, bytes | bytearray | memoryview) else data
    first = text.lstrip("\r\n").split("\n", 1)[0][:512]
    try:
        delimiter = csv.Sniffer().sniff(first).delimiter
    except csv.Error:
        delimiter = ","
    # The container keeps whatever the sniffer guessed unless alphanumeric; on one-column input
    # that can be "." (splitting "0.5" in two), so only real separators are kept.
    if delimiter not in SNIFFABLE_DELIMITERS:
        delimiter = ","
    if len(text) >= PANDAS_CSV_THRESHOLD:
        array = _numeric_frame(text.encode("utf-8"), delimiter, empty_is_nan=True)
        if array is not None:
            return array
    rows = [
        ["nan" if field == "" else field for field in line.split(delimiter)]
        for line in text.split("\n")
        if line.strip()
    ]
    return np.array(rows).astype(np.float64)


def libsvm_to_dmatrix(data: str | bytes) -> Any:
    """LIBSVM text as XGBoost reads it (indices taken as given, labels ignored); parsed with
    scikit-learn because XGBoost 3.1 deprecated loading text files into a DMatrix."""
    from sklearn.datasets import load_svmlight_file

    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    features = load_svmlight_file(io.BytesIO(raw), zero_based=True)[0]
    return _xgboost().DMatrix(features)


# --- encoding ---------------------------------------------------------------------------------


def _fast_csv_lines(array: np.ndarray) -> list[str] | None:
    """Rows as csv.writer would write them (str() of each numpy scalar), for numeric arrays."""
    if array.ndim not in (1, 2) or array.size == 0:
        return None
    dtype = array.dtype
    if dtype == np.float64 or dtype.kind in "iu":
        # For these, Python's repr/str of .tolist() items is exactly numpy's str() of the scalar.
        fmt: Callable[[Any], str] = repr if dtype == np.float64 else str
        values: list[Any] = array.tolist()
        if array.ndim == 1:
            return list(map(fmt, values))
        return [",".join(map(fmt, row)) for row in values]
    if dtype == np.float32 or dtype == np.bool_:
        # tolist() would widen float32 to float64 and print the widened digits.
        strings: list[Any] = array.astype(str).tolist()
        if array.ndim == 1:
            return strings
        return [",".join(row) for row in strings]
    return None


def array_to_csv(prediction: Any) -> str:
    """sagemaker_training.encoders.array_to_csv, same text, fast for numeric 1-D/2-D arrays."""
    try:
        array = np.asarray(prediction)
    except Exception:
        array = None
    lines = _fast_csv_lines(array) if array is not None else None
    if lines is None:
        return encoders.array_to_csv(prediction)
    lines.append("")
    return "\n".join(lines)


def encode(prediction: Any, accept: str) -> str | bytes:
    """sagemaker_training.encoders.encode with the fast CSV path."""
    kind = media_type(accept)
    if kind == CSV:
        return array_to_csv(prediction)
    if kind in (JSON, NPY):
        return encoders.encode(prediction, kind)
    raise UnsupportedFormatError(accept)


# --- default handlers -------------------------------------------------------------------------


def default_model_fn(model_dir: str) -> Any:
    """Load what the framework containers save: xgboost-model (XGBoost), model.joblib or model.pkl
    (scikit-learn). The scikit-learn container itself has no default and requires model_fn."""
    directory = Path(model_dir)
    xgb_path = directory / "xgboost-model"
    if xgb_path.is_file():
        xgb = _xgboost()
        booster = xgb.Booster()
        try:
            booster.load_model(str(xgb_path))
            return booster
        except Exception as error:  # XGBoostError, or UnicodeDecodeError wrapping one
            load_error = error
        # XGBoost container releases before 1.0 pickled the Booster instead.
        try:
            with open(xgb_path, "rb") as handle:
                return pickle.load(handle)
        except Exception:
            raise load_error from None
    for name in ("model.joblib", "model.pkl"):
        if (directory / name).is_file():
            import joblib

            return joblib.load(directory / name)
    present = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
    raise SetupError(
        f"No model_fn is defined and {model_dir} holds no model.joblib, model.pkl or "
        f"xgboost-model to load by default (it contains: {present or 'nothing'}). Define "
        "model_fn(model_dir) in your inference script (the Model's entry_point, or code/"
        "inference.py inside model.tar.gz) to load the model."
    )


def sklearn_input_fn(input_data: str | bytes, content_type: str) -> np.ndarray:
    array = decode(input_data, content_type)
    # As the scikit-learn container does: text formats are cast to float32.
    if media_type(content_type) in (CSV, JSON):
        return array.astype(np.float32)
    return array


def xgboost_input_fn(input_data: str | bytes, content_type: str) -> Any:
    """The XGBoost container's decoders: CSV and LIBSVM (it has no JSON or NPY input)."""
    kind = media_type(content_type)
    if kind == CSV:
        return csv_to_xgboost_array(input_data)
    if kind in LIBSVM_TYPES:
        return libsvm_to_dmatrix(input_data)
    if kind == "application/x-recordio-protobuf":
        raise UnsupportedFormatError(f"{content_type} (not supported by local_aws)")
    raise UnsupportedFormatError(content_type)


def default_predict_fn(input_data: Any, model: Any) -> Any:
    if is_booster(model):
        xgb = _xgboost()
        if not isinstance(input_data, xgb.DMatrix):
            if isinstance(input_data, np.ndarray) and input_data.ndim == 1:
                input_data = input_data.reshape(1, -1)
            input_data = xgb.DMatrix(input_data)
        return model.predict(input_data, validate_features=False)
    return model.predict(input_data)


def default_output_fn(prediction: Any, accept: str) -> str | bytes:
    return encode(prediction, accept)


def xgboost_algorithm_output_fn(prediction: Any, accept: str) -> str | bytes:
    """The built-in XGBoost algorithm's output: one comma-joined line for an endpoint (a quirk
    its clients parse), one prediction per line when SAGEMAKER_BATCH is set (batch transform)."""
    if media_type(accept) == CSV:
        values = np.asarray(prediction).tolist()
        if os.environ.get("SAGEMAKER_BATCH"):
            return "\n".join(map(str, values)) + "\n"
        return ",".join(map(str, values))
    if media_type(accept) == JSON:
        return encoders.encode(prediction, JSON)
    raise UnsupportedFormatError(accept)


# --- the handler chain ------------------------------------------------------------------------


def _accepting_context(fn: Callable[..., Any], nargs: int, context: Context) -> Callable[..., Any]:
    """Bind the toolkit's optional trailing context argument, deciding once rather than per call."""
    try:
        count = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return fn
    if count == nargs + 1:
        return lambda *args: fn(*args, context)
    return fn


def _as_response(result: Any, default_type: str) -> tuple[int, bytes, str]:
    """Whatever a handler returned as (status, body, content type), the containers' way: a
    (body, content_type) tuple names its own type, str/bytes are the body, Flask-style response
    objects are honoured, anything else is JSON (as Multi Model Server does)."""
    status = 200
    content_type = default_type
    if isinstance(result, tuple) and len(result) == 2:
        result, content_type = result
    elif hasattr(result, "get_data") and hasattr(result, "status_code"):
        status = int(result.status_code)
        content_type = getattr(result, "content_type", None) or default_type
        result = result.get_data()
    if isinstance(result, bytes):
        body = result
    elif isinstance(result, str):
        body = result.encode("utf-8")
    elif isinstance(result, bytearray | memoryview):
        body = bytes(result)
    else:
        body = json.dumps(result, default=_to_jsonable).encode("utf-8")
    return status, body, str(content_type)


def _to_jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class ModelService:
    """The loaded model and the handler chain that serves it."""

    def __init__(self, model_dir: Path, module: ModuleType | None) -> None:
        self.model_dir = model_dir
        self.module = module
        context = Context(str(model_dir))

        def user(name: str, nargs: int) -> Callable[..., Any] | None:
            fn = getattr(module, name, None) if module is not None else None
            return _accepting_context(fn, nargs, context) if callable(fn) else None

        user_model_fn = user("model_fn", 1)
        user_input_fn = user("input_fn", 2)
        user_predict_fn = user("predict_fn", 2)
        user_output_fn = user("output_fn", 2)
        self.transform_fn = user("transform_fn", 4)
        if self.transform_fn and (user_input_fn or user_predict_fn or user_output_fn):
            raise SetupError(
                "Cannot use transform_fn implementation in conjunction with input_fn, "
                "predict_fn, and/or output_fn implementation"
            )
        self.execution_parameters_fn = getattr(module, "execution_parameters_fn", None)

        self.model = (user_model_fn or default_model_fn)(str(model_dir))

        booster = is_booster(self.model)
        self.input_fn = user_input_fn or (xgboost_input_fn if booster else sklearn_input_fn)
        # The default decoders take bytes as well, which spares decoding 6 MB only to re-encode
        # it for pandas; user code gets text for the UTF-8 types, as in the containers.
        self.wants_text = user_input_fn is not None or self.transform_fn is not None
        self.predict_fn = user_predict_fn or default_predict_fn
        algorithm_mode = booster and module is None
        self.output_fn = user_output_fn or (
            xgboost_algorithm_output_fn if algorithm_mode else default_output_fn
        )
        self.default_accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or None

    def resolve_accept(self, accept: str | None, content_type: str) -> str:
        """Accept when the client gave none: SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT if set (as in
        the containers), else the request's own type if it can be encoded, else CSV."""
        if accept and accept.strip() != content_types.ANY:
            return accept
        if self.default_accept:
            return self.default_accept
        if not accept and media_type(content_type) in (CSV, JSON, NPY):
            return content_type
        return CSV

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[int, bytes, str]:
        # Handlers get text for the UTF-8 types, bytes otherwise, as in the containers.
        data: str | bytes = body
        if self.wants_text and media_type(content_type) in (CSV, JSON):
            data = body.decode("utf-8")
        if self.transform_fn is not None:
            try:
                result = self.transform_fn(self.model, data, content_type, accept)
            except UnsupportedFormatError as e:
                raise HTTPError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, _unsupported(e)) from e
        else:
            try:
                input_data = self.input_fn(data, content_type)
            except UnsupportedFormatError as e:
                raise HTTPError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, _unsupported(e)) from e
            prediction = self.predict_fn(input_data, self.model)
            try:
                result = self.output_fn(prediction, accept)
            except UnsupportedFormatError as e:
                raise HTTPError(HTTPStatus.NOT_ACCEPTABLE, _unsupported(e)) from e
        return _as_response(result, accept)

    def execution_parameters(self) -> tuple[int, bytes, str]:
        if callable(self.execution_parameters_fn):
            return _as_response(self.execution_parameters_fn(), JSON)
        return 200, json.dumps(EXECUTION_PARAMETERS).encode(), JSON


class AlgorithmModelService:
    """A built-in algorithm's model (k-NN, Linear Learner) with the algorithm's own handlers:
    :mod:`local_aws.sagemaker.builtins.serving`."""

    def __init__(self, module: str, model_dir: Path) -> None:
        from local_aws.sagemaker.builtins.serving import AlgorithmService

        self.algorithm = AlgorithmService(module, str(model_dir))

    def resolve_accept(self, accept: str | None, content_type: str) -> str:
        return self.algorithm.resolve_accept(accept, content_type)

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[int, bytes, str]:
        from local_aws.sagemaker.builtins.serving import BadRequest

        try:
            data, served_type = self.algorithm.predict(body, content_type, accept)
        except BadRequest as e:
            raise HTTPError(e.status, str(e)) from e
        return 200, data, served_type

    def execution_parameters(self) -> tuple[int, bytes, str]:
        return 200, json.dumps(EXECUTION_PARAMETERS).encode(), JSON


def _unsupported(error: UnsupportedFormatError) -> str:
    return " ".join(str(getattr(error, "message", error)).split())


# --- HTTP -------------------------------------------------------------------------------------


class Handler(FastHeadersHandler):
    protocol_version = "HTTP/1.1"
    server_version = "local-aws-model-server"
    sys_version = ""
    # Small responses must not wait for the client's delayed ACK.
    disable_nagle_algorithm = True
    server: Server
    timeout = IO_TIMEOUT_SECONDS  # set once, when the connection is set up

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        # http.server calls an idle keep-alive connection's timeout "Request timed out": how
        # a pooled connection ends, not an error
        if not format.startswith("Request timed out"):
            super().log_error(format, *args)

    def do_GET(self) -> None:
        try:
            # A body on a GET is unusual, but left unread it would be parsed as the next request.
            self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
        path = self.path.split("?", 1)[0]
        if path == "/ping":
            self._respond(200, b"", "text/plain")
        elif path == "/execution-parameters":
            self._run(self.server.service.execution_parameters)
        elif path == "/invocations":
            self._respond(405, b"use POST /invocations\n", "text/plain")
        else:
            self._respond(404, f"no route {path}\n".encode(), "text/plain")

    def do_POST(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError) as e:
            self.close_connection = True
            self._respond(400, f"could not read the request body: {e}\n".encode(), "text/plain")
            return
        path = self.path.split("?", 1)[0]
        if path != "/invocations":
            status = 405 if path in ("/ping", "/execution-parameters") else 404
            self._respond(status, f"no route POST {path}\n".encode(), "text/plain")
            return
        headers = self.headers
        content_type = headers.get("ContentType") or headers.get("Content-Type") or JSON
        service = self.server.service
        accept = service.resolve_accept(headers.get("Accept"), content_type)
        self._run(lambda: service.invoke(body, content_type, accept))

    def _run(self, call: Callable[[], tuple[int, bytes, str]]) -> None:
        try:
            status, body, content_type = call()
        except HTTPError as e:
            logger.info("%s %s -> %d: %s", self.command, self.path, e.status, e.message)
            status, body, content_type = e.status, (e.message + "\n").encode(), "text/plain"
        except Exception as e:
            trace = traceback.format_exc()
            logger.error("%s %s failed:\n%s", self.command, self.path, trace.rstrip())
            # The inference toolkit's error body: the message, then the traceback.
            status, body = 500, f"{e}\n{trace}".encode("utf-8", "replace")
            content_type = "text/plain; charset=utf-8"
        self._respond(status, body, content_type)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        size = int(length)
        if size < 0:
            raise ValueError(f"negative Content-Length {size}")
        body = self.rfile.read(size)
        if len(body) != size:
            raise ValueError(f"body ended after {len(body)} of {size} bytes")
        return body

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            line = self.rfile.readline(65537)
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            chunk = self.rfile.read(size)
            if len(chunk) != size:
                raise ValueError("chunked body ended early")
            parts.append(chunk)
            self.rfile.readline(65537)

    def _respond(self, status: int, body: bytes, content_type: str) -> None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Status"
        content_type = content_type.replace("\r", " ").replace("\n", " ")
        head = (
            f"HTTP/1.1 {status} {reason}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n"
            + ("Connection: close\r\n" if self.close_connection else "")
            + "\r\n"
        ).encode("latin-1", "replace")
        if len(body) <= SINGLE_WRITE_LIMIT:
            self.wfile.write(head + body)
        else:
            self.wfile.write(head)
            self.wfile.write(body)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s -> %d (%d bytes)", self.command, self.path, status, len(body))

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s -> %s", self.requestline, code)

    def log_message(self, format: str, *args: Any) -> None:
        logger.warning("%s: " + format, self.address_string(), *args)


class Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that keeps finished connection threads for the next connection
    (clients without keep-alive would otherwise pay a thread start per request) and skips
    HTTPServer's reverse DNS lookup of its own address at bind time."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], service: ModelService | AlgorithmModelService
    ) -> None:
        self.service = service
        self._idle = 0
        self._idle_lock = threading.Lock()
        self._handoff: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._idle_lock:
            if self._idle:
                self._idle -= 1
                self._handoff.put((request, client_address))
                return
        threading.Thread(
            target=self._work, args=(request, client_address), name="serving", daemon=True
        ).start()

    def _work(self, request: Any, client_address: Any) -> None:
        while True:
            self.process_request_thread(request, client_address)
            with self._idle_lock:
                self._idle += 1
            request, client_address = self._handoff.get()

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            logger.debug("connection from %s dropped: %s", client_address, error)
        else:
            logger.error("error serving %s:\n%s", client_address, traceback.format_exc().rstrip())


# --- start-up ---------------------------------------------------------------------------------


def _code_dir(value: str, model_dir: Path) -> Path:
    value = value.removeprefix("file://")
    if value.startswith("s3://"):
        # The server cannot fetch S3; the repacked copy inside the model is what SageMaker's own
        # containers would use for a framework that repacks (scikit-learn, XGBoost).
        fallback = model_dir / "code"
        if fallback.is_dir():
            logger.info("code dir %s is in S3; using %s", value, fallback)
            return fallback
        raise SetupError(
            f"SAGEMAKER_SUBMIT_DIRECTORY is {value}, which this server cannot download; "
            f"extract it and pass --code-dir, or repack the code into {model_dir}/code"
        )
    path = PurePosixPath(value)
    if path == CONTAINER_MODEL_DIR or CONTAINER_MODEL_DIR in path.parents:
        return model_dir / path.relative_to(CONTAINER_MODEL_DIR)
    return Path(value)


def find_entry_point(
    model_dir: Path, code_dir: str | None, program: str | None
) -> tuple[Path, Path] | None:
    """The inference script and its code directory, if any: the program in the code dir; with
    no program, inference.py in the code dir; with neither, code/inference.py in the model (the
    layout the SDK's repack produces)."""
    base = _code_dir(code_dir, model_dir) if code_dir else None
    if program:
        names = [program] if program.endswith(".py") else [program, program + ".py"]
        folders = [base] if base is not None else [model_dir / "code", model_dir, Path.cwd()]
        for folder in folders:
            for name in names:
                if (folder / name).is_file():
                    return folder / name, folder
        raise SetupError(
            f"inference script {program!r} not found in "
            + ", ".join(str(folder) for folder in folders)
        )
    folder = base if base is not None else model_dir / "code"
    script = folder / "inference.py"
    return (script, folder) if script.is_file() else None


def import_entry_point(script: Path, code_dir: Path) -> ModuleType:
    """Import the script under its own name, from its file: a same-named installed module must
    not shadow it, and sys.modules must hold it so pickles referring to it resolve."""
    for folder in dict.fromkeys((str(script.parent), str(code_dir))):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    if (code_dir / "requirements.txt").is_file():
        # The containers pip-install it at start-up; here packages come from this Python.
        logger.info("not installing %s/requirements.txt: packages come from this Python", code_dir)
    name = script.stem
    spec = importlib.util.spec_from_file_location(name, script)
    if spec is None or spec.loader is None:
        raise SetupError(f"cannot import {script}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM/SIGINT; a BaseException so that user code's
    `except Exception` during model loading cannot swallow it."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


def _configure_logging() -> None:
    # The caller collects stdout into CloudWatch, so logs go there, one line at a time.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    level_name = os.environ.get("SAGEMAKER_CONTAINER_LOG_LEVEL", "INFO").strip()
    level = int(level_name) if level_name.isdigit() else logging.getLevelName(level_name.upper())
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level if isinstance(level, int) else logging.INFO, handlers=[handler])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m local_aws.sagemaker.serving",
        description="Serve a SageMaker model (scikit-learn / XGBoost container contract).",
    )
    parser.add_argument("--model-dir", required=True, help="the extracted model.tar.gz")
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--code-dir",
        default=os.environ.get("SAGEMAKER_SUBMIT_DIRECTORY") or None,
        help="inference code directory (default: $SAGEMAKER_SUBMIT_DIRECTORY)",
    )
    parser.add_argument(
        "--program",
        default=os.environ.get("SAGEMAKER_PROGRAM") or None,
        help="inference script in the code directory (default: $SAGEMAKER_PROGRAM)",
    )
    parser.add_argument(
        "--algorithm",
        default=None,
        help="a built-in algorithm's serving module (k-NN, Linear Learner): its own handlers",
    )
    return parser.parse_args(argv)


def load_service(
    model_dir: Path, code_dir: str | None, program: str | None, algorithm: str | None = None
) -> ModelService | AlgorithmModelService:
    if not model_dir.is_dir():
        raise SetupError(f"model dir {model_dir} does not exist")
    if algorithm:
        return AlgorithmModelService(algorithm, model_dir)
    entry_point = find_entry_point(model_dir, code_dir, program)
    module = None
    if entry_point is not None:
        logger.info("importing inference script %s", entry_point[0])
        module = import_entry_point(*entry_point)
    return ModelService(model_dir, module)


def _exit_when_orphaned(interval: float = 1.0) -> None:
    """Stop when the process that started us is gone (killed without a SIGTERM for us).

    A model server outliving local_aws would hold its port and memory forever.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    _configure_logging()
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    _exit_when_orphaned()
    args = parse_args(argv)
    server: Server | None = None
    try:
        try:
            service = load_service(
                Path(args.model_dir).resolve(), args.code_dir, args.program, args.algorithm
            )
            server = Server((args.host, args.port), service)
        except Terminated:
            raise
        except SetupError as e:
            # Its message says all there is to say; a traceback of the server would only bury it.
            logger.error("model server failed to start: %s", e)
            return 1
        except BaseException:
            logger.error("model server failed to start:\n%s", traceback.format_exc().rstrip())
            return 1
        print(f"serving on http://{server.server_name}:{server.server_port}", flush=True)
        server.serve_forever()
    except Terminated:
        logger.info("shutting down")
    finally:
        if server is not None:
            server.server_close()
    return 0


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Connection threads and whatever pools user libraries started must not hold up the exit
    # that SageMaker expects promptly after SIGTERM.
    os._exit(code)
