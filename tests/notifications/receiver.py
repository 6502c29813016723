"""A Slack webhook stand-in: a real HTTP server on 127.0.0.1 that records what it receives."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

TOKEN = "T0001/B0002/s3cr3tW3bh00kT0k3n"  # the webhook's secret part: never in a message


@dataclass
class Receiver:
    port: int
    status: int = 200
    bodies: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.bodies) >= count, timeout), self.bodies
            return list(self.bodies)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with state.arrived:
                state.bodies.append(json.loads(body))
                state.paths.append(self.path)
                state.arrived.notify_all()
            self.send_response(state.status)
            self.end_headers()
            self.wfile.write(b"ok" if state.status == 200 else b"internal_error")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def slack_connection(monkeypatch, port: int, conn_id: str = "slack_alerts") -> None:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps(
            {
                "conn_type": "slackwebhook",
                "host": f"http://127.0.0.1:{port}/services",
                "password": TOKEN,
            }
        ),
    )


@pytest.fixture
def alerts_file(tmp_path, monkeypatch):
    path = tmp_path / "alerts.jsonl"
    monkeypatch.setenv("MLOPS_ALERTS_FILE", str(path))
    monkeypatch.setenv("MLOPS_ALERT_RETRIES", "2")
    return path
