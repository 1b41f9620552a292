"""A Docker job's ``--mount``s, checked on the node that runs it, as the job's user.

Why here and so: ``SRC`` is a path of this node, and a bind mount skips the search permission of
every directory above it: mounting ``/root/notes/todo.txt`` would hand a file out of a 0700
directory to a user who could never reach it there. So the node that runs the job checks each
mount just before it makes the container, and lets the kernel answer as the job's user: a forked
child takes that user's uid, gid and groups (``RunAs.become``; on a daemon that is not root, or
for root's own jobs, it stays the daemon's user, who is then the job's), resolves ``SRC`` with
every symlink followed (``realpath``, strict: each link is followed as that user, so a link
cannot lead anywhere they could not go), and asks ``access`` for read (and search, for a
directory) and, unless ``:ro``, for write. ACLs, read-only filesystems and root-squashing network
filesystems answer as they would for the user's own process. The engine is given the resolved
path.

Refused whoever asks: a path that holds this node's state directory (the cluster key, every job's
output) or lies in it, and one that is or holds the Docker engine's socket: either would hand the
node over. Refused too: a mount at the container path where the job's shipped files are mounted.

Each refusal is one line for the job's ``message`` that says what to do. The check costs one fork:
16 ms (p50; 20-23 ms p90) on a 2-core machine at load 6-8, against 170-480 ms for the container's
own start; one that hangs (a dead network
filesystem) is given up after ``CHECK_TIMEOUT_S`` and its child killed.

Not closed: between the check and the engine's mount (about 100 ms) a user who owns a directory
on ``SRC``'s path could swap it for a link. On a root daemon the container then runs as that user,
so what it can gain is what a bind mount skips: the search permission of the directories above the
link's target.
"""

from __future__ import annotations

import os
import select
import signal
import stat
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from swarmcompute.executor.spawn import SpawnFailed
from swarmcompute.files.host import CONTAINER_WORKDIR
from swarmcompute.mounts import container_path, parse_mount
from swarmcompute.users import RunAs, daemon_user

CHECK_TIMEOUT_S = 10.0
"""The most one node spends checking one job's mounts."""
DEFAULT_ENGINE_SOCKET = "/var/run/docker.sock"

Mount = tuple[str, str, bool]
"""(host path, resolved; container path; read-only)."""

_OK, _MISSING, _DENIED, _UNWRITABLE, _OTHER = "ok", "missing", "denied", "unwritable", "other"


def protected_paths(state_dir: Path, docker_host: str | None = None) -> list[tuple[str, str]]:
    """(resolved path, what it is) of what no mount may hold or lie in: the state directory and
    the engine's socket (``docker_host``, else ``$DOCKER_HOST``, when a unix socket; and the
    default one)."""
    found = [(os.path.realpath(state_dir), "this node's state directory (the cluster key)")]
    host = docker_host or os.environ.get("DOCKER_HOST") or ""
    sockets = [host[len("unix://") :]] if host.startswith("unix://") else []
    for sock in (*sockets, DEFAULT_ENGINE_SOCKET):
        real = os.path.realpath(sock)
        if real not in (p for p, _ in found):
            found.append((real, "the Docker engine's socket (root on this node)"))
    return found


def resolve_mounts(
    mounts: Sequence[str],
    run_as: RunAs | None,
    *,
    node_name: str,
    protected: Sequence[tuple[str, str]],
    staged: bool = False,
    timeout_s: float = CHECK_TIMEOUT_S,
) -> tuple[Mount, ...]:
    """Each mount with its host path resolved, checked as ``run_as`` (None: the daemon's user);
    ``SpawnFailed`` with one line for the first refused. ``staged``: the job's shipped files are
    mounted at ``CONTAINER_WORKDIR``. Blocking: call it from a worker thread."""
    parsed: list[Mount] = []
    for text in mounts:
        try:
            src, dst, read_only = parse_mount(text)
        except ValueError as exc:
            raise SpawnFailed(None, str(exc)) from None
        if staged and container_path(dst) == CONTAINER_WORKDIR:
            raise SpawnFailed(None, f"--mount {text}: the job's shipped files are mounted there: pick another path")
        parsed.append((src, dst, read_only))
    user = run_as.name if run_as is not None else daemon_user()
    answers = _ask(run_as, [(src, ro) for src, _, ro in parsed], user, node_name, timeout_s)
    resolved: list[Mount] = []
    for (src, dst, read_only), (code, detail) in zip(parsed, answers, strict=True):
        where = f"on node {node_name}"
        if code == _MISSING:
            raise SpawnFailed(None, f"--mount {src}: no such file or directory {where}: mount a path that exists there")
        if code == _DENIED:
            raise SpawnFailed(None, f"--mount {src}: user {user} may not read it {where}: mount a path they can read")
        if code == _UNWRITABLE:
            raise SpawnFailed(
                None, f"--mount {src}: user {user} may not write it {where}: add :ro to mount it read-only"
            )
        if code != _OK:
            raise SpawnFailed(None, f"--mount {src}: cannot use it {where} ({detail}): mount another path")
        for path, what in protected:
            if _within(detail, path) or _within(path, detail):
                holds = "is" if detail == path else "is in" if _within(detail, path) else "holds"
                raise SpawnFailed(None, f"--mount {src}: it {holds} {what} {where}: mount a path that does not")
        resolved.append((detail, dst, read_only))
    return tuple(resolved)


def _within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _answer(src: str, read_only: bool) -> tuple[str, str]:
    """In the child, as the user: (code, resolved path or why)."""
    try:
        real = os.path.realpath(src, strict=True)
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        return _MISSING, ""
    except PermissionError:
        return _DENIED, ""
    except OSError as exc:
        return _OTHER, exc.strerror or type(exc).__name__
    wanted = os.R_OK | (os.X_OK if stat.S_ISDIR(mode) else 0)
    if not os.access(real, wanted):
        return _DENIED, ""
    if not read_only and not os.access(real, os.W_OK):
        return _UNWRITABLE, ""
    return _OK, real


def _ask(
    run_as: RunAs | None, items: list[tuple[str, bool]], user: str, node_name: str, timeout_s: float
) -> list[tuple[str, str]]:
    """``_answer`` for each item, in a forked child that is the user; bounded by ``timeout_s``."""
    if not items:
        return []
    become = run_as is not None and run_as.switches
    r, w = os.pipe()
    try:
        with warnings.catch_warnings():  # Python 3.12 warns of fork in a threaded process: the child
            warnings.simplefilter("ignore", DeprecationWarning)  # only makes system calls and exits
            pid = os.fork()
    except OSError as exc:
        os.close(r)
        os.close(w)
        raise SpawnFailed(None, f"cannot check --mount on node {node_name}: fork failed: {exc.strerror}") from None
    if pid == 0:  # the child: never returns, whatever happens
        code = 1
        try:
            os.close(r)
            if become and run_as is not None:
                run_as.become()
            answers = [_answer(src, ro) for src, ro in items]
            payload = memoryview("\0".join(f"{c}\0{d}" for c, d in answers).encode("utf-8", "surrogateescape"))
            while payload:
                payload = payload[os.write(w, payload) :]
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    try:
        data = _read_until_eof(r, time.monotonic() + timeout_s)
    finally:
        os.close(r)
    if data is None:
        os.kill(pid, signal.SIGKILL)  # our own child, by pid
        os.waitpid(pid, 0)
        raise SpawnFailed(
            None,
            f"checking --mount on node {node_name} took over {timeout_s:g}s (a hung network filesystem?):"
            " mount another path or try again",
        )
    _, status = os.waitpid(pid, 0)
    fields = data.decode("utf-8", "surrogateescape").split("\0")
    if status != 0 or len(fields) != 2 * len(items):
        raise SpawnFailed(None, f"cannot check --mount as user {user} on node {node_name}: the check failed there")
    return list(zip(fields[0::2], fields[1::2], strict=True))


def _read_until_eof(fd: int, deadline: float) -> bytes | None:
    """All of ``fd`` until its writer closed it; None past ``deadline``."""
    chunks: list[bytes] = []
    poller = select.poll()  # not select(): a busy daemon's descriptors may pass FD_SETSIZE
    poller.register(fd, select.POLLIN)
    while True:
        left_ms = (deadline - time.monotonic()) * 1000
        if left_ms <= 0 or not poller.poll(left_ms):
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
