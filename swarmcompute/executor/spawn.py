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

What a job inherits: its environment from ``users.job_environment`` (a clean one when it runs
as its submitter, else the daemon's without its secrets), and the umask the daemon was started
with (``set_job_umask``), not the daemon's own 077, so a job's files get the modes its user
expects. ``Popen``'s ``umask`` keeps the ``vfork`` path.

The slow path: a job that runs as another user (a root daemon), has limits (``RLIMIT_NPROC``,
``RLIMIT_FSIZE``) or joins a cgroup is forked with a ``preexec_fn`` that, in the child and in this
order, joins the cgroup (as root, before anything runs, so every process the job makes is in it),
sets the limits, then drops to the user (groups, gid, uid), then execs. ``fork`` plus Python in
the child instead of ``vfork``: a few milliseconds more per job, paid only by those jobs.

Such a job enters its working directory again once it is that user (``Popen`` changes to it
before ``preexec_fn``, as root): a directory its user may not enter (``--cwd /root/x``, 0700
root) is a spawn failure, ``cannot use working directory D: user U may not enter it``, as it
would be in that user's shell; the job started inside it. The child tells the errno of that
``chdir`` through a pipe (``Popen`` reports any failure of ``preexec_fn`` without it).
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
import subprocess
from collections.abc import Callable

from swarmcompute.executor.spec import AttemptSpec
from swarmcompute.files.manifest import SHEBANG_BYTES, windows_line_ends
from swarmcompute.users import SECRET_ENV, RunAs, daemon_user, job_environment, serves_every_user

__all__ = ["SECRET_ENV", "SpawnFailed", "job_environment", "set_job_umask", "spawn_job"]

_SHELL = "/bin/sh"

_job_umask = -1  # -1: the job inherits the daemon's umask
_devnull = -1
"""One descriptor of /dev/null, the stdin of every job (``Popen``'s ``DEVNULL`` opens and closes
one per spawn: 2 % of a 1-node daemon's samples at 780 jobs/s)."""


def _stdin() -> int:
    global _devnull
    if _devnull < 0:
        _devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    return _devnull


def set_job_umask(umask: int) -> None:
    """The umask every job starts with (the daemon sets its own to 077 and gives jobs the old one)."""
    global _job_umask
    _job_umask = umask


class SpawnFailed(Exception):
    """Why a job could not start, as a shell-like exit code (or None) and one clear line."""

    def __init__(self, exit_code: int | None, error: str) -> None:
        super().__init__(error)
        self.exit_code = exit_code
        self.error = error


def run_as_of(spec: AttemptSpec) -> RunAs | None:
    """The user a root daemon runs ``spec`` as (None: the daemon's own, as any other daemon does);
    ``SpawnFailed`` when that user does not exist on this node."""
    if not spec.user or not serves_every_user() or spec.user == daemon_user():
        return None  # the daemon's own user (root's jobs on a root daemon): as before, the fast path
    run_as = RunAs.lookup(spec.user)
    if run_as is None:
        raise SpawnFailed(None, f"no user {spec.user} on this node")
    return run_as


def spawn_job(spec: AttemptSpec, stdout_fd: int, stderr_fd: int, cgroup: str | None = None) -> subprocess.Popen[bytes]:
    """Start one attempt as the leader of a new session, in ``cgroup`` when given (which then
    enforces ``max_procs``); raise ``SpawnFailed`` on failure."""
    if not spec.argv or not spec.argv[0]:
        raise SpawnFailed(None, "empty or malformed command")
    run_as = run_as_of(spec)
    env = job_environment(spec.env, spec.job_id, spec.attempt, run_as)
    stdin = _stdin()
    if spec.stdin_path is not None:  # opened by the daemon: the job's user need not read the node's store
        try:
            stdin = os.open(spec.stdin_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise SpawnFailed(None, f"cannot open its stdin here: {exc.strerror or exc}") from None
    child = _in_child(spec, run_as, cgroup)
    try:
        try:
            return _popen(list(spec.argv), spec, env, stdin, stdout_fd, stderr_fd, child)
        except OSError as exc:
            if exc.errno == errno.ENOENT and not _chdir_failed(exc, spec):
                bad = _bad_interpreter(spec, env)
                if bad is not None:
                    raise SpawnFailed(127, bad) from None
            if exc.errno != errno.ENOEXEC or _chdir_failed(exc, spec):
                raise _from_exception(exc, spec) from None
            script = _script_path(spec.argv[0], env)
            if script is None:
                raise _from_exception(exc, spec) from None
            try:
                return _popen([_SHELL, script, *spec.argv[1:]], spec, env, stdin, stdout_fd, stderr_fd, child)
            except (OSError, ValueError, TypeError, subprocess.SubprocessError) as retry_exc:
                raise _from_exception(retry_exc, spec) from None
        except (ValueError, TypeError, subprocess.SubprocessError) as exc:
            entered = child.entered() if isinstance(child, _Child) else None
            if entered is not None and run_as is not None:  # its user may not enter its working directory
                reason = (
                    "may not enter it" if entered.errno == errno.EACCES else f"cannot enter it ({entered.strerror})"
                )
                raise SpawnFailed(
                    None, f"cannot use working directory {spec.cwd}: user {run_as.name} {reason}"
                ) from None
            raise _from_exception(exc, spec) from None
    finally:
        if stdin != _devnull:
            os.close(stdin)
        if isinstance(child, _Child):
            child.close()


def _popen(
    argv: list[str],
    spec: AttemptSpec,
    env: dict[bytes, bytes],
    stdin: int,
    stdout_fd: int,
    stderr_fd: int,
    child: Callable[[], None] | None,
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        stdin=stdin,
        stdout=stdout_fd,
        stderr=stderr_fd,
        env=env,
        cwd=spec.cwd,
        start_new_session=True,
        close_fds=True,
        umask=_job_umask,
        preexec_fn=child,
    )


def _in_child(spec: AttemptSpec, run_as: RunAs | None, cgroup: str | None) -> Callable[[], None] | None:
    """What the forked child does before exec (module docstring); None keeps the ``vfork`` path."""
    if run_as is not None and not run_as.switches:
        run_as = None
    cgroup_procs = os.path.join(cgroup, "cgroup.procs") if cgroup else None
    nproc = 0 if cgroup else spec.max_procs  # the cgroup's pids.max counts this job's processes only
    limits = [
        (res, n) for res, n in ((resource.RLIMIT_NPROC, nproc), (resource.RLIMIT_FSIZE, spec.max_file_size)) if n > 0
    ]
    if run_as is None and cgroup_procs is None and not limits:
        return None
    return _Child(cgroup_procs, limits, run_as, os.path.abspath(spec.cwd) if run_as and spec.cwd else None)


class _Child:
    """The ``preexec_fn`` of the slow path (module docstring): joins ``cgroup_procs``' cgroup,
    sets ``limits``, drops to ``run_as``, then enters ``cwd`` again as that user; an ``OSError``
    of that last step is told through a pipe (``entered``). ``close`` once ``Popen`` returned."""

    def __init__(
        self,
        cgroup_procs: str | None,
        limits: list[tuple[int, int]],
        run_as: RunAs | None,
        cwd: str | None,
    ) -> None:
        self._cgroup_procs = cgroup_procs
        self._limits = limits
        self._run_as = run_as
        self._cwd = cwd
        self._told = os.pipe2(os.O_CLOEXEC) if cwd is not None else None

    def __call__(self) -> None:
        if self._cgroup_procs is not None:
            fd = os.open(self._cgroup_procs, os.O_WRONLY)
            try:
                os.write(fd, b"0")  # "0": the writing process itself
            finally:
                os.close(fd)
        for res, n in self._limits:
            resource.setrlimit(res, (n, n))
        if self._run_as is not None:
            self._run_as.become()
        if self._cwd is not None and self._told is not None:
            try:
                os.chdir(self._cwd)  # as the user now: each directory on its path must let them through
            except OSError as exc:
                os.write(self._told[1], str(exc.errno).encode())
                raise

    def entered(self) -> OSError | None:
        """Why the child could not enter its working directory as its user, or None (it did, or
        failed before that)."""
        if self._told is None:
            return None
        os.close(self._told[1])
        told = os.read(self._told[0], 16)
        os.close(self._told[0])
        self._told = None
        if not told.isdigit():
            return None
        number = int(told)
        return OSError(number, os.strerror(number), self._cwd)

    def close(self) -> None:
        if self._told is not None:
            os.close(self._told[0])
            os.close(self._told[1])
            self._told = None


def _chdir_failed(exc: OSError, spec: AttemptSpec) -> bool:
    # Popen names the working directory as the failing file when chdir, not exec, failed.
    return spec.cwd is not None and exc.filename == spec.cwd


def _script_path(cmd: str, env: dict[bytes, bytes]) -> str | None:
    """The file ``execvp`` would have run for ``cmd`` (for the ``/bin/sh`` retry)."""
    if "/" in cmd:
        return cmd  # relative to the job's working directory, where the shell runs
    path = env.get(b"PATH")  # as ``os.get_exec_path``: the default path without one
    return shutil.which(cmd, path=os.defpath if path is None else os.fsdecode(path))


def _bad_interpreter(spec: AttemptSpec, env: dict[bytes, bytes]) -> str | None:
    """Why exec found no such file although the command is there: the ``#!`` line of the script
    names a program this node lacks, or ends in a Windows carriage return (a script saved on
    Windows: ``#!/bin/sh\\r`` names no program), where it said ``command not found`` of a file
    that was there. None when that is not it (the command is missing: ``command not found``)."""
    cmd = spec.argv[0]
    path = _script_path(cmd, env)
    if path is None:
        return None
    try:
        with open(os.path.join(spec.cwd or "", path), "rb") as script:
            first = script.readline(SHEBANG_BYTES)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    crlf = windows_line_ends(cmd, first)
    if crlf is not None:
        return crlf
    words = first[2:].split()
    program = os.fsdecode(words[0]) if words else ""
    return f"bad interpreter: {cmd} is run by {program or 'no program'} (its #! line), which this node does not have"


def _from_exception(exc: BaseException, spec: AttemptSpec) -> SpawnFailed:
    cmd = spec.argv[0]
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        if _chdir_failed(exc, spec):
            why = {  # the submitter's directory, on a node that has no such thing: the likely case
                errno.ENOENT: "no such directory on the node that ran it (--workdir DIR ships one; --cwd DIR names one it has)",
                errno.ENOTDIR: "not a directory",
            }.get(exc.errno or 0, reason.lower())
            return SpawnFailed(None, f"cannot use working directory {spec.cwd}: {why}")
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return SpawnFailed(127, f"command not found: {cmd}")
        if exc.errno == errno.E2BIG:
            return SpawnFailed(
                None,
                f"cannot start {cmd}: its command line and environment are too long for Linux (at most 128 KiB"
                " in one argument or variable, about a quarter of `ulimit -s` in all): pass big inputs as files"
                " (--upload)",
            )
        if exc.errno in (errno.EACCES, errno.EPERM, errno.ENOEXEC, errno.EISDIR):
            if "/" in cmd and os.path.isdir(os.path.join(spec.cwd or "", cmd)):
                reason = "is a directory"  # execve says EACCES
            return SpawnFailed(126, f"not executable: {cmd} ({reason.lower()})")
        return SpawnFailed(None, f"cannot start {cmd}: {reason}")
    return SpawnFailed(None, f"cannot start {cmd}: {exc}")
