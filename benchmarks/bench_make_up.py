"""Memory of `make up` at rest: every process of the stack (local_aws, api-server, scheduler,
dag-processor, triggerer and their workers) once the three DAGs are parsed, as proportional
set size (PSS: shared pages split between the processes that share them, so the sum is
what the laptop gives up). The issue's bound for a laptop default: 2 GB (5.7–6.3 GB before
the executor's parallelism and the api-server's workers were cut)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import Row

TARGET_MB = 2048.0
DAGS = ("model_build", "model_deploy", "batch_inference")


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def stack_memory(markers: tuple[str, ...]) -> tuple[float, int]:
    """(PSS in MB, process count) of every process whose environment names one of
    ``markers`` (the stack's AIRFLOW_HOME and local_aws data dir: nothing else has them)."""
    wanted = tuple(m.encode() for m in markers)
    total, count = 0, 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        env = _environ(int(entry.name))
        if any(m in env for m in wanted):
            total += _pss_kb(int(entry.name))
            count += 1
    return total / 1024, count


def settle(markers: tuple[str, ...], timeout: float = 90) -> tuple[float, int]:
    """The stack's memory once two readings 5 s apart agree within 3% (or at the timeout):
    start-up's transient peaks are not what a laptop holds."""
    last, count = stack_memory(markers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(5)
        now, count = stack_memory(markers)
        if last and abs(now - last) / last <= 0.03:
            return max(now, last), count
        last = now
    return last, count


def run(aws: Any) -> list[Row]:  # noqa: ARG001 - make up starts its own local_aws
    from tests.integration.stack_kit import running_stack, wait

    with (
        tempfile.TemporaryDirectory(prefix="bench-make-up-") as tmp,
        running_stack(Path(tmp)) as stack,
    ):
        wait(lambda: all(stack.has_dag(d) for d in DAGS), "the three DAGs parsed", 300)
        markers = (f"AIRFLOW_HOME={stack.env['AIRFLOW_HOME']}\0", stack.env["LOCAL_AWS_DATA_DIR"])
        mb, processes = settle(markers)
    return [
        Row(
            f"make up at rest: PSS of its {processes} processes",
            mb,
            "MB",
            target=f"<= {TARGET_MB:.0f} MB",
            ok=mb <= TARGET_MB,
        )
    ]
