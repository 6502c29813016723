"""A private /opt/ml for one process tree: a mount namespace in which /opt/ml is the job's sandbox.

SageMaker code hard-codes /opt/ml/... (the container contract: /opt/ml/model,
/opt/ml/processing/output, the training toolkit's /opt/ml/code). On the host that path is
shared by every job, may belong to someone else, and must never be written. So each process
of user code enters a mount namespace of its own (inside an unprivileged user namespace when
not root, the way bubblewrap does it) where its sandbox is bind-mounted at /opt/ml: /opt is
covered by a read-only tmpfs that holds bind mounts of the host's own /opt entries (its
/opt/ml, if any, left out) beside an ``ml`` mount point, so nothing is created on the host
and no job sees another's /opt/ml or writes next to it.

Used in-process by the training toolkit's zygote and its children (:func:`enter`), and as a
launcher in front of every other job process::

    python -I -S private_opt_ml.py SANDBOX CMD [ARGS...]

which enters the namespace and execs CMD (same pid, same process group). Where the OS
offers no namespace, the launcher prints why and runs CMD anyway: local_aws then falls back
to rewriting /opt/ml paths into the sandbox and fails any job that writes the host's /opt/ml.
Standard library only, since the launcher starts before every job and must start fast.
"""

from __future__ import annotations

import ctypes
import os
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000

OPT = "/opt"
OPT_ML = "/opt/ml"
NOTICE = "local_aws: no private /opt/ml for this job"
EXEC_FAILED = 127  # the shell's code for a command that could not be run
CANNOT_RUN = "local_aws: could not run "  # then the command and the OS's reason


class Unavailable(OSError):
    """The OS would not give this process a private /opt/ml (the reason says why)."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _call(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise Unavailable(err, f"{what}: {os.strerror(err)}")


def _mount(
    libc: ctypes.CDLL, source: str | None, target: str, fstype: str | None, flags: int, data=None
) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _call(
        libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
        f"mount {source or fstype or ''} on {target}",
    )


def _write(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def enter(sandbox: str | None, *, nested: bool = False) -> None:
    """Give this (single-threaded) process a mount namespace whose /opt/ml is ``sandbox``.

    ``None`` mounts an empty tmpfs there instead (the zygote's own view, so that importing
    the training toolkit, which creates /opt/ml/code, writes nothing on the host).
    ``nested``: this process's parent already entered one (the toolkit zygote's children):
    /opt is covered already, only /opt/ml is re-bound, in a namespace of its own. Raises
    :class:`Unavailable` when the OS refuses.
    """
    if not sys.platform.startswith("linux"):
        raise Unavailable(0, f"mount namespaces are Linux-only (this is {sys.platform})")
    libc = _libc()
    uid, gid = os.geteuid(), os.getegid()
    if uid == 0:  # root on the host, or already root of the user namespace made below
        _call(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    else:
        _call(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare(CLONE_NEWUSER|CLONE_NEWNS)")
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"0 {uid} 1")
        _write("/proc/self/gid_map", f"0 {gid} 1")
    # nothing mounted from here on propagates back to the host's namespace
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)
    if not nested:
        _cover_opt(libc)
    if sandbox is None:
        _mount(libc, "tmpfs", OPT_ML, "tmpfs", 0, "mode=0755")
    else:
        _mount(libc, sandbox, OPT_ML, None, MS_BIND | MS_REC)


def _cover_opt(libc: ctypes.CDLL) -> None:
    """A tmpfs over /opt with the host's entries bound back in, plus an ``ml`` mount point."""
    if not os.path.isdir(OPT):
        raise Unavailable(
            0, f"{OPT} does not exist: /opt/ml cannot appear without writing the host"
        )
    host = os.open(OPT, os.O_RDONLY | os.O_DIRECTORY)  # the host's /opt, once covered
    try:
        entries = os.listdir(host)
        _mount(libc, "tmpfs", OPT, "tmpfs", 0, "mode=0755")
        for name in entries:
            if name == "ml":  # the host's own /opt/ml, if any, stays out of sight
                continue
            source, target = f"/proc/self/fd/{host}/{name}", f"{OPT}/{name}"
            if os.path.islink(source):
                os.symlink(os.readlink(source), target)
                continue
            if os.path.isdir(source):
                os.mkdir(target)
            else:
                open(target, "x").close()
            _mount(libc, source, target, None, MS_BIND | MS_REC)
        os.mkdir(OPT_ML)
    finally:
        os.close(host)
    # the mount points stay as they are: a job cannot create files beside them
    _mount(libc, None, OPT, None, MS_REMOUNT | MS_RDONLY)


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        sys.exit("usage: private_opt_ml.py SANDBOX CMD [ARGS...]")
    sandbox, cmd = argv[0], argv[1:]
    try:
        enter(sandbox)
    except (Unavailable, OSError) as exc:
        print(
            f"{NOTICE} ({exc}): /opt/ml paths are mapped into the sandbox only where "
            "local_aws rewrites them, and a job that writes the host's /opt/ml fails",
            flush=True,
        )
    try:
        os.execvp(cmd[0], cmd)
    except OSError as exc:
        print(f"{CANNOT_RUN}{cmd[0]}: {exc}", file=sys.stderr, flush=True)
        os._exit(EXEC_FAILED)


if __name__ == "__main__":
    main(sys.argv[1:])
