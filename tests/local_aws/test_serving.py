"""The model server (local_aws.sagemaker.serving) as the SageMaker hosting agent drives it: a
real process on a free port, /ping, /invocations and /execution-parameters over HTTP."""

from __future__ import annotations

import http.client
import io
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sagemaker_training import encoders
from sklearn.linear_model import LogisticRegression

from local_aws.sagemaker import serving
from tests.rawhttp import expect_continue

START_TIMEOUT = 90.0
FEATURES = 6


class ServerProcess:
    """`python -m local_aws.sagemaker.serving ...` with its merged output collected line by line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
        full_env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("SAGEMAKER_PROGRAM", "SAGEMAKER_SUBMIT_DIRECTORY", "SAGEMAKER_BATCH")
        }
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "local_aws.sagemaker.serving", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=full_env,
            cwd=cwd,
        )
        self.lines: list[str] = []
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._pumping = threading.Thread(target=self._pump, daemon=True)
        self._pumping.start()
        self.port = 0

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self._lines.put(line)
        self._lines.put(None)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_output(self, text: str, timeout: float = 10) -> str:
        """The output once ``text`` is in it: the server may log just after it answers."""
        deadline = time.monotonic() + timeout
        while text not in self.output and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.output

    def wait_ready(self) -> ServerProcess:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                self.proc.wait(5)
                raise AssertionError(f"server exited ({self.proc.returncode}):\n{self.output}")
            if line.startswith("serving on http://"):
                host_port = line.strip().removeprefix("serving on http://")
                host, port = host_port.rsplit(":", 1)
                assert host == "127.0.0.1"
                self.port = int(port)
                assert self.port > 0
                return self
        raise AssertionError(f"server not ready after {START_TIMEOUT}s:\n{self.output}")

    def wait_exit(self, timeout: float = START_TIMEOUT) -> int:
        code = self.proc.wait(timeout)
        self._pumping.join(5)  # the last lines of output
        return code

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str, bytes]:
        conn = self.connect()
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.getheader("Content-Type", ""), response.read()
        finally:
            conn.close()

    def invoke(
        self, body: bytes, content_type: str | None, accept: str | None = None
    ) -> tuple[int, str, bytes]:
        headers = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if accept is not None:
            headers["Accept"] = accept
        return self.request("POST", "/invocations", body, headers)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop()


def start(servers: list[ServerProcess], *args: str, **kwargs: Any) -> ServerProcess:
    server = ServerProcess(*args, **kwargs)
    servers.append(server)
    return server.wait_ready()


def csv_bytes(rows: np.ndarray) -> bytes:
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows).encode()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


class SklearnModel:
    def __init__(self, model_dir: Path) -> None:
        rng = np.random.default_rng(7)
        # Values exact in float32: the scikit-learn container casts CSV/JSON input to float32,
        # so the in-process predictions below are then exactly what the server computes.
        x = rng.normal(size=(300, FEATURES)).astype(np.float32).astype(np.float64)
        y = (x[:, 0] - x[:, 1] + 0.3 * x[:, 2] > 0).astype(int)
        self.estimator = LogisticRegression().fit(x, y)
        self.x = x[:40]
        self.expected = self.estimator.predict(self.x)
        self.model_dir = model_dir
        model_dir.mkdir(parents=True, exist_ok=True)
        joblib.dump(self.estimator, model_dir / "model.joblib")


@pytest.fixture
def sk(tmp_path: Path) -> SklearnModel:
    return SklearnModel(tmp_path / "model")


@pytest.fixture(scope="module")
def sk_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[SklearnModel, ServerProcess]]:
    """One server with the default handlers, shared: start-up (imports, unpickling) is the
    slow part of these tests."""
    model = SklearnModel(tmp_path_factory.mktemp("shared") / "model")
    server = ServerProcess("--model-dir", str(model.model_dir))
    try:
        yield model, server.wait_ready()
    finally:
        server.stop()


def write_script(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


# --- default handlers --------------------------------------------------------------------------


def test_expect_100_continue_gets_one_interim_response(
    sk_server: tuple[SklearnModel, ServerProcess],
) -> None:
    sk, server = sk_server
    statuses, body = expect_continue(
        "127.0.0.1",
        server.port,
        "POST /invocations HTTP/1.1",
        {"Content-Type": "text/csv", "Accept": "text/csv"},
        csv_bytes(sk.x),
    )
    assert statuses == [100, 200]
    assert body.decode() == encoders.encode(sk.expected, "text/csv")


def test_an_idle_connection_is_closed_quietly_and_the_pool_reconnects(
    sk: SklearnModel, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The model server's one timeout per connection also closes an idle keep-alive
    connection: no error line for it, and local_aws's pool answers the next call anyway."""
    from local_aws.sagemaker.model_server import ConnectionPool

    monkeypatch.setattr(serving.Handler, "timeout", 0.2)  # not 60 s in a test
    server = serving.Server(("127.0.0.1", 0), serving.load_service(sk.model_dir, None, None))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pool = ConnectionPool("127.0.0.1", server.server_port)
    try:
        row = csv_bytes(sk.x[:2])  # one row would be squeezed to 1-D, as in the container
        first = pool.request("POST", "/invocations", row, {"Content-Type": "text/csv"}, 30)
        assert first[0] == 200
        (idle,) = pool._idle
        idle.sock.settimeout(30)
        assert idle.sock.recv(1, socket.MSG_PEEK) == b""  # the server closed it
        again = pool.request("POST", "/invocations", row, {"Content-Type": "text/csv"}, 30)
        assert again[0] == 200 and again[2] == first[2]
    finally:
        pool.close()
        server.shutdown()
        server.server_close()
    assert "timed out" not in caplog.text


def test_default_handlers_serve_csv_json_and_npy(
    sk_server: tuple[SklearnModel, ServerProcess],
) -> None:
    sk, server = sk_server

    assert server.request("GET", "/ping")[0] == 200
    status, ctype, body = server.request("GET", "/execution-parameters")
    assert (status, ctype) == (200, "application/json")
    assert json.loads(body) == {
        "MaxConcurrentTransforms": 1,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }

    status, ctype, body = server.invoke(csv_bytes(sk.x), "text/csv", "text/csv")
    assert (status, ctype) == (200, "text/csv"), body
    assert body.decode() == encoders.encode(sk.expected, "text/csv")

    status, ctype, body = server.invoke(
        json.dumps(sk.x.tolist()).encode(), "application/json", "application/json"
    )
    assert (status, ctype) == (200, "application/json"), body
    assert json.loads(body) == sk.expected.tolist()

    status, ctype, body = server.invoke(npy_bytes(sk.x), "application/x-npy", "application/x-npy")
    assert (status, ctype) == (200, "application/x-npy"), body
    np.testing.assert_array_equal(np.load(io.BytesIO(body)), sk.expected)

    # No Accept: answer in the request's own type; */*: CSV.
    status, ctype, body = server.invoke(json.dumps(sk.x.tolist()).encode(), "application/json")
    assert (status, ctype, json.loads(body)) == (200, "application/json", sk.expected.tolist())
    status, ctype, body = server.invoke(npy_bytes(sk.x), "application/x-npy", "*/*")
    assert (status, ctype) == (200, "text/csv")
    assert body.decode() == encoders.encode(sk.expected, "text/csv")
    # Media type parameters do not get in the way.
    status, _, body = server.invoke(csv_bytes(sk.x), "text/csv; charset=utf-8", "text/csv")
    assert status == 200 and body.decode() == encoders.encode(sk.expected, "text/csv")


def test_large_csv_batch_matches_in_process_predictions(
    sk_server: tuple[SklearnModel, ServerProcess],
) -> None:
    # Big enough for the pandas decoding path, as a batch transform mini-batch would be.
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20_000, FEATURES)).astype(np.float32).astype(np.float64)
    sk, server = sk_server
    status, ctype, body = server.invoke(csv_bytes(x), "text/csv", "text/csv")
    assert (status, ctype) == (200, "text/csv")
    assert body.decode() == encoders.encode(sk.estimator.predict(x), "text/csv")


def test_unsupported_types_and_container_quirks(
    sk_server: tuple[SklearnModel, ServerProcess],
) -> None:
    sk, server = sk_server

    status, _, body = server.invoke(b"<x/>", "application/xml", "text/csv")
    assert status == 415
    assert b"application/xml is not supported" in body
    status, _, body = server.invoke(csv_bytes(sk.x), "text/csv", "application/xml")
    assert status == 406
    assert b"application/xml is not supported" in body

    # As in the scikit-learn container, one CSV row decodes to a 1-D array, which scikit-learn
    # refuses: clients send several rows or use an input_fn.
    status, _, body = server.invoke(csv_bytes(sk.x[:1]), "text/csv", "text/csv")
    assert status == 500
    assert b"Expected 2D array" in body
    status, _, body = server.invoke(b"", "text/csv", "text/csv")
    assert status == 500

    status, _, _ = server.request("GET", "/nowhere")
    assert status == 404
    # Still serving after the errors.
    assert server.request("GET", "/ping")[0] == 200


def test_keep_alive_serves_many_requests_on_one_connection(
    sk_server: tuple[SklearnModel, ServerProcess],
) -> None:
    sk, server = sk_server
    conn = server.connect()
    payload = csv_bytes(sk.x[:5])
    try:
        for _ in range(50):
            conn.request(
                "POST", "/invocations", payload, {"Content-Type": "text/csv", "Accept": "text/csv"}
            )
            response = conn.getresponse()
            assert response.status == 200
            assert response.read().decode() == encoders.encode(sk.expected[:5], "text/csv")
            conn.request("GET", "/ping")
            response = conn.getresponse()
            assert response.status == 200 and response.read() == b""
        # An error response leaves the connection usable too.
        conn.request("POST", "/invocations", b"x", {"Content-Type": "text/plain"})
        response = conn.getresponse()
        assert response.status == 415
        response.read()
        conn.request("GET", "/ping")
        response = conn.getresponse()
        assert response.status == 200
        response.read()
        # A chunked request body, as streaming clients send it.
        lines = payload.splitlines(keepends=True)
        conn.request(
            "POST",
            "/invocations",
            iter(lines),
            {"Content-Type": "text/csv", "Accept": "application/json"},
            encode_chunked=True,
        )
        response = conn.getresponse()
        assert (response.status, json.loads(response.read())) == (200, sk.expected[:5].tolist())
        # Connection: close is honoured.
        conn.request("GET", "/ping", headers={"Connection": "close"})
        response = conn.getresponse()
        assert response.getheader("Connection") == "close"
        response.read()
        assert response.will_close
    finally:
        conn.close()


# --- user inference scripts --------------------------------------------------------------------

HANDLERS = """
import json
import os

import joblib
import numpy as np

def model_fn(model_dir):
    return {"clf": joblib.load(os.path.join(model_dir, "model.joblib")), "dir": model_dir}

def input_fn(request_body, content_type):
    assert isinstance(request_body, str), type(request_body)
    if content_type != "application/json":
        raise ValueError(f"inference.py takes JSON, not {content_type}")
    return np.array(json.loads(request_body)["instances"])

def predict_fn(input_data, model):
    if len(input_data) == 0:
        raise ValueError("no instances to predict: got an empty list")
    return model["clf"].predict_proba(input_data)[:, 1]

def output_fn(prediction, accept):
    return json.dumps({"scores": prediction.tolist(), "accept": accept}), "application/vnd+scores"
"""

TRANSFORM = """
import os

import joblib
import numpy as np

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def transform_fn(model, request_body, content_type, accept):
    assert isinstance(request_body, bytes), "text/plain is not decoded"
    request_body = request_body.decode()
    rows = np.array([[float(v) for v in line.split("|")] for line in request_body.splitlines()])
    labels = model.predict(rows)
    return " ".join(str(v) for v in labels) + f" ({content_type} -> {accept})"
"""


def test_user_handlers_in_model_code_dir(sk: SklearnModel, servers: list[ServerProcess]) -> None:
    # The SDK's repack layout: code/inference.py inside the model, found with no arguments.
    write_script(sk.model_dir / "code", "inference.py", HANDLERS)
    server = start(servers, "--model-dir", str(sk.model_dir))

    body = json.dumps({"instances": sk.x[:3].tolist()}).encode()
    status, ctype, out = server.invoke(body, "application/json", "application/json")
    assert (status, ctype) == (200, "application/vnd+scores"), out
    result = json.loads(out)
    assert result["accept"] == "application/json"
    # relative 1e-9: the server's process may sum in another order (BLAS kernels differ by CPU)
    np.testing.assert_allclose(
        result["scores"], sk.estimator.predict_proba(sk.x[:3])[:, 1], rtol=1e-9, atol=0
    )

    # A user error is a 500 whose body carries the exception's message (and its traceback).
    status, _, out = server.invoke(b"a,b", "text/csv", "application/json")
    assert status == 500
    assert out.startswith(b"inference.py takes JSON, not text/csv\n")
    assert b"Traceback" in out
    status, _, out = server.invoke(b'{"instances": []}', "application/json")
    assert status == 500
    assert b"no instances to predict: got an empty list" in out
    assert "no instances to predict" in server.wait_for_output("no instances to predict")
    assert server.request("GET", "/ping")[0] == 200


def test_program_and_submit_directory_from_sdk_environment(
    sk: SklearnModel, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    write_script(sk.model_dir / "code", "serve_it.py", HANDLERS)
    server = start(
        servers,
        "--model-dir",
        str(sk.model_dir),
        env={
            "SAGEMAKER_PROGRAM": "serve_it.py",
            "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
            "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv",
        },
    )
    body = json.dumps({"instances": sk.x[:2].tolist()}).encode()
    status, ctype, out = server.invoke(body, "application/json", "application/json")
    assert (status, ctype) == (200, "application/vnd+scores")
    assert json.loads(out)["accept"] == "application/json"
    # With no Accept (or */*), output_fn is asked for the container's configured default.
    for accept in (None, "*/*"):
        status, _, out = server.invoke(body, "application/json", accept)
        assert (status, json.loads(out)["accept"]) == (200, "text/csv")

    # --code-dir/--program outside the model, taking precedence over the environment.
    code = tmp_path / "src"
    write_script(code, "entry.py", TRANSFORM)
    server = start(
        servers,
        "--model-dir",
        str(sk.model_dir),
        "--code-dir",
        str(code),
        "--program",
        "entry.py",
        env={"SAGEMAKER_PROGRAM": "serve_it.py"},
    )
    rows = "\n".join("|".join(repr(float(v)) for v in row) for row in sk.x[:4])
    status, ctype, out = server.invoke(rows.encode(), "text/plain", "text/plain")
    assert (status, ctype) == (200, "text/plain"), out
    labels = " ".join(str(v) for v in sk.estimator.predict(sk.x[:4]))
    assert out.decode() == f"{labels} (text/plain -> text/plain)"


def test_transform_fn_with_other_handlers_is_refused(
    sk: SklearnModel, servers: list[ServerProcess]
) -> None:
    write_script(sk.model_dir / "code", "inference.py", TRANSFORM + HANDLERS)
    server = ServerProcess("--model-dir", str(sk.model_dir))
    servers.append(server)
    assert server.wait_exit() != 0
    assert "Cannot use transform_fn implementation in conjunction with" in server.output


def test_model_fn_failure_exits_nonzero_with_traceback(
    sk: SklearnModel, servers: list[ServerProcess]
) -> None:
    write_script(
        sk.model_dir / "code",
        "inference.py",
        """
        def model_fn(model_dir):
            raise RuntimeError("weights are corrupt")
        """,
    )
    server = ServerProcess("--model-dir", str(sk.model_dir))
    servers.append(server)
    assert server.wait_exit() != 0
    assert "Traceback (most recent call last)" in server.output
    assert "RuntimeError: weights are corrupt" in server.output
    assert "serving on" not in server.output


def test_no_model_and_no_model_fn_says_what_to_do(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(b"\0")
    server = ServerProcess("--model-dir", str(tmp_path / "model"))
    servers.append(server)
    assert server.wait_exit() != 0
    assert "Define model_fn(model_dir)" in server.output
    assert "weights.bin" in server.output


def test_missing_program_fails_clearly(sk: SklearnModel, servers: list[ServerProcess]) -> None:
    server = ServerProcess("--model-dir", str(sk.model_dir), "--program", "nope.py")
    servers.append(server)
    assert server.wait_exit() != 0
    assert "inference script 'nope.py' not found" in server.output


def test_sigterm_exits_zero_promptly(sk: SklearnModel, servers: list[ServerProcess]) -> None:
    server = start(servers, "--model-dir", str(sk.model_dir))
    conn = server.connect()  # an idle keep-alive connection must not hold up the exit
    conn.request("GET", "/ping")
    conn.getresponse().read()
    server.proc.send_signal(signal.SIGTERM)
    # held by the idle connection, the server would wait out the client instead of exiting
    # (the bound is generous: a loaded machine is slow, not stuck)
    assert server.wait_exit(30) == 0
    conn.close()


# --- XGBoost -----------------------------------------------------------------------------------


class XGBoostModel:
    def __init__(self, model_dir: Path) -> None:
        import xgboost as xgb

        rng = np.random.default_rng(11)
        x = rng.normal(size=(400, FEATURES))
        y = (x[:, 0] + x[:, 3] > 0).astype(int)
        self.booster = xgb.train(
            {"objective": "binary:logistic", "max_depth": 3},
            xgb.DMatrix(x, label=y),
            num_boost_round=10,
        )
        self.x = x[:25]
        self.expected = self.booster.predict(xgb.DMatrix(self.x))
        model_dir.mkdir(parents=True, exist_ok=True)
        # As the XGBoost container saves it: Booster.save_model to a file named xgboost-model
        # (with no extension, so XGBoost warns that it picks its default format).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            self.booster.save_model(str(model_dir / "xgboost-model"))
        self.model_dir = model_dir


def test_xgboost_model_served_as_the_builtin_algorithm(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    xgbm = XGBoostModel(tmp_path / "model")
    values = xgbm.expected.tolist()

    endpoint = start(servers, "--model-dir", str(xgbm.model_dir))
    status, ctype, body = endpoint.invoke(csv_bytes(xgbm.x), "text/csv", "text/csv")
    assert (status, ctype) == (200, "text/csv"), body
    # The built-in algorithm's endpoint answer: one comma-separated line.
    assert body.decode() == ",".join(map(str, values))
    # One row is one row here (no squeeze), and empty fields are missing values.
    status, _, body = endpoint.invoke(csv_bytes(xgbm.x[:1]), "text/csv", "text/csv")
    assert (status, body.decode()) == (200, str(values[0]))
    status, _, _ = endpoint.invoke(b"1.0,,0.5,,,2\n", "text/csv", "text/csv")
    assert status == 200
    libsvm = "".join(
        " ".join(["0"] + [f"{j}:{v!r}" for j, v in enumerate(row.tolist())]) + "\n"
        for row in xgbm.x
    )
    status, _, body = endpoint.invoke(libsvm.encode(), "text/libsvm", "text/csv")
    assert status == 200, body
    np.testing.assert_allclose([float(v) for v in body.decode().split(",")], values, rtol=1e-6)
    status, ctype, body = endpoint.invoke(csv_bytes(xgbm.x), "text/csv", "application/json")
    assert (status, ctype) == (200, "application/json")
    assert json.loads(body) == values
    assert endpoint.invoke(b"[[1, 2]]", "application/json", "text/csv")[0] == 415

    # Batch transform sets SAGEMAKER_BATCH: one prediction per line, large payloads included.
    batch = start(servers, "--model-dir", str(xgbm.model_dir), env={"SAGEMAKER_BATCH": "true"})
    status, _, body = batch.invoke(csv_bytes(xgbm.x), "text/csv", "text/csv")
    assert (status, body.decode()) == (200, "".join(f"{v}\n" for v in values))
    big = np.tile(xgbm.x, (400, 1))
    status, _, body = batch.invoke(csv_bytes(big), "text/csv", "text/csv")
    assert status == 200
    assert body.decode() == "".join(f"{v}\n" for v in values * 400)


def test_xgboost_booster_from_user_model_fn(tmp_path: Path, servers: list[ServerProcess]) -> None:
    xgbm = XGBoostModel(tmp_path / "model")
    write_script(
        xgbm.model_dir / "code",
        "inference.py",
        """
        import os
        import xgboost as xgb

        def model_fn(model_dir):
            booster = xgb.Booster()
            booster.load_model(os.path.join(model_dir, "xgboost-model"))
            return booster
        """,
    )
    server = start(servers, "--model-dir", str(xgbm.model_dir))
    # Script mode: the framework's default output_fn, one prediction per line.
    status, _, body = server.invoke(csv_bytes(xgbm.x), "text/csv", "text/csv")
    assert status == 200, body
    assert body.decode() == encoders.encode(xgbm.expected, "text/csv")


# --- the fast codecs against the toolkit's ------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "1,2\n3,4\n",
        "1.5e3,+2\r\n.5,-0\r\n",
        " 1.5, 2 \n3,4",
        '"1.5",2\n3,4',
        "nan,inf\n-inf,1",
        "5",
        "5\n6\n7\n",
        "1,2,3",
        "a,b\n1,2",
        "True,1\n0,1",
        "1,,2\n3,4,5",
        "1_0,2",
        "9007199254740993,1\n1,1",
        "-0,1\n0,-0.0",
        "True,1\nFalse,0",
        "1e-400,1e400\n2.2250738585072011e-308,1",
        # one row, as an endpoint is usually called
        "0.1,0.2,0.3\n",
        " 1.5, 2 ,-0",
        "nan,inf,-inf,1e-400",
        "a,1",
        "1,,2",
        "True,0",
        "1_0,0x10",
        "7\n",
        ",",
    ],
)
def test_csv_decoding_matches_the_toolkit(text: str) -> None:
    # Padded past the size where the pandas path takes over, keeping the shape of the input.
    unit = text if text.endswith("\n") else text + "\n"
    big = unit * (serving.PANDAS_CSV_THRESHOLD // len(unit) + 1)
    for sample in (text, big):
        try:
            expected: Any = encoders.csv_to_numpy(sample)
        except Exception as e:
            expected = type(e)
        try:
            got: Any = serving.csv_to_numpy(sample.encode())
        except Exception as e:
            got = type(e)
        if isinstance(expected, type):
            assert got is expected
        else:
            assert got.dtype == expected.dtype and got.shape == expected.shape
            np.testing.assert_array_equal(got, expected)
            if got.dtype.kind == "f":
                np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))


def test_csv_decoding_of_random_floats_is_exact() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3000, 7)) * 10.0 ** rng.integers(-20, 20, size=(3000, 7))
    text = "".join(",".join(repr(v) for v in row) + "\n" for row in x.tolist())
    got = serving.csv_to_numpy(text.encode())
    np.testing.assert_array_equal(got, x)
    np.testing.assert_array_equal(got, encoders.csv_to_numpy(text))


@pytest.mark.parametrize(
    "array",
    [
        np.array([0.1, -0.0, 1e16, 1e-5, np.nan, np.inf, 123456789.123]),
        np.array([0.1, 2.5, 1e-7, 3.4e38], dtype=np.float32),
        np.array([[0.25, 1e300], [-3.0, 7.1]]),
        np.array([[1.5, 2.0]], dtype=np.float32),
        np.array([1, 0, -7, 2**40]),
        np.array([True, False]),
        np.array(["cat", "dog, or not", 'say "hi"']),
        np.array([], dtype=np.float64),
        [1.0, 2.0],
    ],
)
def test_csv_encoding_matches_the_toolkit(array: Any) -> None:
    assert serving.array_to_csv(array) == encoders.array_to_csv(array)
