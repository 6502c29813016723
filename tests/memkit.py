"""A process's memory from /proc (Linux), for the tests and benchmarks of what the
local_aws server holds while large bodies go through it."""

from __future__ import annotations

import hashlib
from pathlib import Path

MB = 1 << 20


def status_bytes(pid: int, field: str) -> int:
    """A memory field of /proc/<pid>/status (VmRSS, VmHWM, ...), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"/proc/{pid}/status has no {field}")


def reset_peak(pid: int) -> None:
    """VmHWM := VmRSS, so the next VmHWM is the peak of what happens from now on."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def block(i: int, salt: bytes = b"") -> bytes:
    """Deterministic, incompressible-enough 1 MiB block number ``i`` (no large files in the
    repository); a different ``salt`` gives other blocks."""
    seed = hashlib.sha256(salt + i.to_bytes(4, "big")).digest()
    return (seed * (MB // len(seed)))[:MB]
