"""The launcher that gives a job process its own /opt/ml, as root and as an ordinary user."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from local_aws.sagemaker import jobs, private_opt_ml

SCRIPT = """
import os
print(sorted(os.listdir("/opt/ml")))
open("/opt/ml/written", "w").write("mine")
try:
    open("/opt/elsewhere", "w")
except OSError as exc:
    print("outside /opt/ml:", type(exc).__name__)
"""


def run_launcher(sandbox: Path, *, as_user: bool) -> subprocess.CompletedProcess[str]:
    cmd = jobs.in_private_opt_ml(sandbox, [sys.executable, "-c", SCRIPT])
    if as_user:
        # the system interpreter and a copy of the launcher: an ordinary user may not read
        # the project's checkout; the job runs on the same interpreter
        launcher = sandbox.parent / "private_opt_ml.py"
        shutil.copy(private_opt_ml.__file__, launcher)
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        cmd += ["/usr/bin/python3", "-I", "-S", str(launcher), str(sandbox)]
        cmd += ["/usr/bin/python3", "-c", SCRIPT]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("as_user", [False, True], ids=["as-root-or-self", "unprivileged"])
def test_a_process_sees_its_sandbox_at_opt_ml_and_writes_nothing_else(as_user: bool) -> None:
    if as_user and (os.geteuid() != 0 or not shutil.which("setpriv")):
        # not root: every job in this suite already runs the unprivileged path
        assert os.geteuid() != 0, "setpriv (util-linux) is needed to test the unprivileged path"
        return
    host_before = sorted(os.listdir("/opt")) if os.path.isdir("/opt") else None
    with tempfile.TemporaryDirectory(prefix="opt-ml-") as tmp:
        os.chmod(tmp, 0o755)
        sandbox = Path(tmp, "sandbox")
        sandbox.mkdir(mode=0o777)
        os.chmod(sandbox, 0o777)
        (sandbox / "model").mkdir()
        done = run_launcher(sandbox, as_user=as_user)
        assert done.returncode == 0, done.stdout + done.stderr
        assert private_opt_ml.NOTICE not in done.stdout
        assert done.stdout.splitlines() == ["['model']", "outside /opt/ml: OSError"]
        assert (sandbox / "written").read_text() == "mine"
    assert not os.path.exists("/opt/ml/written")
    assert (sorted(os.listdir("/opt")) if os.path.isdir("/opt") else None) == host_before


def test_a_command_that_cannot_start_fails_with_the_shells_code_and_says_why(tmp_path) -> None:
    done = subprocess.run(
        jobs.in_private_opt_ml(tmp_path, [str(tmp_path / "missing.sh")]),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == private_opt_ml.EXEC_FAILED
    assert f"{private_opt_ml.CANNOT_RUN}{tmp_path / 'missing.sh'}: " in done.stderr


def test_the_host_opt_ml_watch_sees_a_write(tmp_path, monkeypatch) -> None:
    # the fallback's check (used where no namespace can be had), on a stand-in directory
    monkeypatch.setattr(private_opt_ml, "OPT_ML", str(tmp_path / "ml"))
    watch = jobs.HostOptMl()
    assert not watch.changed()
    (tmp_path / "ml" / "code").mkdir(parents=True)
    assert watch.changed()
