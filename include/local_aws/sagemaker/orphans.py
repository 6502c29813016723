"""Finding and killing every process a server of a data dir started, living or dead server.

Every process of ours carries ``LOCAL_AWS_JOB_OF=<data dir>`` in its environment: jobs and
cold model servers through ``jobs.base_env``, the zygotes through :class:`warm.Zygote`, and
what the zygotes fork through theirs (a forked child's /proc/PID/environ is its parent's
until it execs, whatever it sets in ``os.environ``). What user code starts inherits it. So
a server that starts after one that was killed with SIGKILL finds what that one left
running, whichever process group or session it is in; and a clean stop ends with the same
sweep, for whatever its own stop missed (a helper a model started in a session of its own).

Kept free of imports from the rest of local_aws: the zygotes import it.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

DATA_DIR_MARK = "LOCAL_AWS_JOB_OF"  # its value: the data dir of the server that started it
GONE_TIMEOUT = 10.0  # SIGKILL is not refused; this only bounds a wait on a stuck kernel


def marked(data_dir: Path) -> list[int]:
    """The pids of the living (not zombie) processes marked with ``data_dir``, ours excepted."""
    mark = f"{DATA_DIR_MARK}={data_dir}".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        pid = int(entry.name)
        if pid == os.getpid():
            continue
        try:
            # a zombie's environ reads empty: it is dead already, waiting for its parent
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if mark in environ:
            found.append(pid)
    return found


def is_gone(pid: int) -> bool:
    """True when ``pid`` has exited (a zombie counts: it runs nothing and holds nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # the state follows the command name in parentheses, which may itself hold ") "
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def reap(data_dir: Path, timeout: float = GONE_TIMEOUT) -> int:
    """SIGKILL every process marked with ``data_dir`` and wait until each has exited;
    return how many there were. A process that forks while it is being killed is found
    by the next round."""
    killed = 0
    deadline = time.monotonic() + timeout
    while pids := marked(data_dir):
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        while not all(map(is_gone, pids)) and time.monotonic() < deadline:
            time.sleep(0.01)
        if time.monotonic() >= deadline:
            break
    return killed
