"""Forking one job process: its own session, a parent-death signal, shell-like spawn errors.

Why two ways to arm ``PR_SET_PDEATHSIG``: a Python ``preexec_fn`` forces ``fork()`` plus Python
code in the child, about 4 ms per job on a small machine, while without it CPython uses
``vfork()``. So where util-linux ``setpriv`` is installed (Debian, Ubuntu, Fedora, Arch: it is in
util-linux) the job is started as ``setpriv --pdeathsig KILL -- <argv>``: setpriv arms the signal
and ``execvp``s the job in the same process, so pid, process group, argv and exit code are the
job's own. Elsewhere (busybox systems) a ``preexec_fn`` calls ``prctl`` through ctypes.

With setpriv, command resolution errors would only show up as exit 127/126 from setpriv, so the
command is resolved here first (same rules as ``execvp``) to report a clear spawn failure.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import shutil
import signal
import stat
import subprocess
from collections.abc import Callable
from typing import Literal

from swarmcompute.executor.spec import AttemptSpec

DeathSigVia = Literal["auto", "setpriv", "preexec"]

_PR_SET_PDEATHSIG = 1


class SpawnFailed(Exception):
    """Why a job could not start, as a shell-like exit code (or None) and one clear line."""

    def __init__(self, exit_code: int | None, error: str) -> None:
        super().__init__(error)
        self.exit_code = exit_code
        self.error = error


def _load_prctl() -> Callable[..., int] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_prctl = _load_prctl()


def _child_setup(parent_pid: int) -> None:
    """Runs in the forked child before exec: die with the daemon."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        # The daemon died between fork and prctl: the death signal was never armed.
        os.kill(os.getpid(), signal.SIGKILL)


@functools.cache
def setpriv_path() -> str | None:
    """The setpriv binary if it supports ``--pdeathsig`` (util-linux >= 2.33), else None."""
    path = shutil.which("setpriv")
    if path is None:
        return None
    try:
        out = subprocess.run(
            [path, "--help"], capture_output=True, timeout=5, check=False, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return path if b"--pdeathsig" in out.stdout + out.stderr else None


def resolve_command(cmd: str, env: dict[str, str], cwd: str | None) -> str:
    """Find ``cmd`` the way ``execvp`` will; raise ``SpawnFailed`` (127 / 126) like a shell."""
    if "/" in cmd:
        path = cmd if os.path.isabs(cmd) else os.path.join(cwd or os.getcwd(), cmd)
        _check_executable(path, cmd)
        return path
    denied: SpawnFailed | None = None
    for directory in os.get_exec_path(env):
        path = os.path.join(directory or ".", cmd)
        try:
            _check_executable(path, cmd)
            return path
        except SpawnFailed as exc:
            if exc.exit_code == 126 and denied is None:
                denied = exc
    raise denied or SpawnFailed(127, f"command not found: {cmd}")


def _check_executable(path: str, cmd: str) -> None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise SpawnFailed(127, f"command not found: {cmd}") from None
    except OSError as exc:
        raise SpawnFailed(126, f"not executable: {cmd} ({(exc.strerror or '').lower()})") from None
    if stat.S_ISDIR(st.st_mode):
        raise SpawnFailed(126, f"not executable: {cmd} (is a directory)")
    if not os.access(path, os.X_OK):
        raise SpawnFailed(126, f"not executable: {cmd} (permission denied)")


def spawn_job(
    spec: AttemptSpec,
    stdout_fd: int,
    stderr_fd: int,
    *,
    via: DeathSigVia = "auto",
) -> subprocess.Popen[bytes]:
    """Start one attempt as the leader of a new session; raise ``SpawnFailed`` on failure."""
    if not spec.argv or not spec.argv[0]:
        raise SpawnFailed(None, "empty or malformed command")
    if spec.cwd is not None and not os.path.isdir(spec.cwd):
        why = "not a directory" if os.path.exists(spec.cwd) else "no such directory"
        raise SpawnFailed(None, f"cannot use working directory {spec.cwd}: {why}")
    env = dict(os.environ)
    env.update(spec.env)
    env["SWARM_JOB_ID"] = spec.job_id
    env["SWARM_ATTEMPT"] = str(spec.attempt)
    helper = setpriv_path() if via in ("auto", "setpriv") else None
    if via == "setpriv" and helper is None:
        raise SpawnFailed(None, "setpriv with --pdeathsig is not installed")
    if helper is not None:
        resolve_command(spec.argv[0], env, spec.cwd)
        argv: list[str] = [helper, "--pdeathsig", "KILL", "--", *spec.argv]
        preexec = None
    else:
        argv = list(spec.argv)
        preexec = functools.partial(_child_setup, os.getpid())
    try:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout_fd,
            stderr=stderr_fd,
            env=env,
            cwd=spec.cwd,
            start_new_session=True,
            preexec_fn=preexec,
            close_fds=True,
        )
    except (OSError, ValueError, TypeError, subprocess.SubprocessError) as exc:
        raise _from_exception(exc, spec) from None


def _from_exception(exc: BaseException, spec: AttemptSpec) -> SpawnFailed:
    cmd = spec.argv[0]
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        if spec.cwd is not None and exc.filename == spec.cwd:
            return SpawnFailed(None, f"cannot use working directory {spec.cwd}: {reason}")
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return SpawnFailed(127, f"command not found: {cmd}")
        if exc.errno in (errno.EACCES, errno.EPERM, errno.ENOEXEC, errno.EISDIR):
            return SpawnFailed(126, f"not executable: {cmd} ({reason.lower()})")
        return SpawnFailed(None, f"cannot start {cmd}: {reason}")
    return SpawnFailed(None, f"cannot start {cmd}: {exc}")
