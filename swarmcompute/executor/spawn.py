"""Forking one job process: its own session, shell-like spawn errors.

A plain ``subprocess.Popen`` with ``start_new_session=True``, ``close_fds=True`` and no
``preexec_fn``, so CPython uses ``vfork()`` and the job's own ``execve``: one exec per job. (A
``preexec_fn`` would force ``fork()`` plus Python in the child; a helper such as ``setpriv`` would
cost a second exec, which doubled the cost of a short job.) Nothing here makes the job die with
the daemon: the guardian does (see ``guardian``), for the whole process group.

``os.posix_spawn`` is not used: it cannot change the working directory (CPython does not expose
``posix_spawn_file_actions_addchdir_np``) and does not close inherited descriptors, while
``Popen`` already takes the ``vfork`` path.

Spawn errors read like a shell's: ``command not found: X`` (exit code 127), ``not executable: X
(why)`` (126), ``cannot use working directory D: why``; they come from the child's failed
``chdir``/``execve``, which ``Popen`` reports as an exception, so the happy path stats nothing. As
``execvp`` and shells do, a file that is executable but has no ``#!`` line (``ENOEXEC``) is run
with ``/bin/sh``.

What a job inherits: the daemon's environment without its secrets (``SECRET_ENV``: the join
token, should one be there), plus the job's own ``env`` and ``SWARM_JOB_ID``/``SWARM_ATTEMPT``;
and the umask the daemon was started with (``set_job_umask``), not the daemon's own 077, so a
job's files get the modes its user expects. ``Popen``'s ``umask`` keeps the ``vfork`` path.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess

from swarmcompute.executor.spec import AttemptSpec

_SHELL = "/bin/sh"

SECRET_ENV = frozenset({"SWARM_TOKEN"})
"""Never passed from the daemon's environment to a job."""

_job_umask = -1  # -1: the job inherits the daemon's umask


def set_job_umask(umask: int) -> None:
    """The umask every job starts with (the daemon sets its own to 077 and gives jobs the old one)."""
    global _job_umask
    _job_umask = umask


def job_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The daemon's environment minus its secrets, plus ``extra`` (the job's own variables)."""
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    if extra:
        env.update(extra)
    return env


class SpawnFailed(Exception):
    """Why a job could not start, as a shell-like exit code (or None) and one clear line."""

    def __init__(self, exit_code: int | None, error: str) -> None:
        super().__init__(error)
        self.exit_code = exit_code
        self.error = error


def spawn_job(spec: AttemptSpec, stdout_fd: int, stderr_fd: int) -> subprocess.Popen[bytes]:
    """Start one attempt as the leader of a new session; raise ``SpawnFailed`` on failure."""
    if not spec.argv or not spec.argv[0]:
        raise SpawnFailed(None, "empty or malformed command")
    env = job_environment(spec.env)
    env["SWARM_JOB_ID"] = spec.job_id
    env["SWARM_ATTEMPT"] = str(spec.attempt)
    try:
        return _popen(list(spec.argv), spec, env, stdout_fd, stderr_fd)
    except OSError as exc:
        if exc.errno != errno.ENOEXEC or _chdir_failed(exc, spec):
            raise _from_exception(exc, spec) from None
        script = _script_path(spec.argv[0], env)
        if script is None:
            raise _from_exception(exc, spec) from None
        try:
            return _popen([_SHELL, script, *spec.argv[1:]], spec, env, stdout_fd, stderr_fd)
        except (OSError, ValueError, TypeError, subprocess.SubprocessError) as retry_exc:
            raise _from_exception(retry_exc, spec) from None
    except (ValueError, TypeError, subprocess.SubprocessError) as exc:
        raise _from_exception(exc, spec) from None


def _popen(
    argv: list[str], spec: AttemptSpec, env: dict[str, str], stdout_fd: int, stderr_fd: int
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=stdout_fd,
        stderr=stderr_fd,
        env=env,
        cwd=spec.cwd,
        start_new_session=True,
        close_fds=True,
        umask=_job_umask,
    )


def _chdir_failed(exc: OSError, spec: AttemptSpec) -> bool:
    # Popen names the working directory as the failing file when chdir, not exec, failed.
    return spec.cwd is not None and exc.filename == spec.cwd


def _script_path(cmd: str, env: dict[str, str]) -> str | None:
    """The file ``execvp`` would have run for ``cmd`` (for the ``/bin/sh`` retry)."""
    if "/" in cmd:
        return cmd  # relative to the job's working directory, where the shell runs
    return shutil.which(cmd, path=os.pathsep.join(os.get_exec_path(env)))


def _from_exception(exc: BaseException, spec: AttemptSpec) -> SpawnFailed:
    cmd = spec.argv[0]
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        if _chdir_failed(exc, spec):
            why = {
                errno.ENOENT: "no such directory",
                errno.ENOTDIR: "not a directory",
            }.get(exc.errno or 0, reason.lower())
            return SpawnFailed(None, f"cannot use working directory {spec.cwd}: {why}")
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return SpawnFailed(127, f"command not found: {cmd}")
        if exc.errno in (errno.EACCES, errno.EPERM, errno.ENOEXEC, errno.EISDIR):
            if "/" in cmd and os.path.isdir(os.path.join(spec.cwd or "", cmd)):
                reason = "is a directory"  # execve says EACCES
            return SpawnFailed(126, f"not executable: {cmd} ({reason.lower()})")
        return SpawnFailed(None, f"cannot start {cmd}: {reason}")
    return SpawnFailed(None, f"cannot start {cmd}: {exc}")
