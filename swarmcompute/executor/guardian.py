"""The guardian: one small process per daemon that kills the daemon's job groups when it dies.

Why: a job must not outlive its daemon (``kill -9``, OOM killer, crash). ``PR_SET_PDEATHSIG``
did that per job, but arming it costs a second exec per job (``setpriv``) or a ``fork()`` with
Python in the child, about doubling the cost of a short job, and it reached only the group
leader. Instead the daemon keeps one guardian, started on the first job, and tells it over a pipe
which process groups are live. When the pipe reaches end of file, the daemon is gone (however it
ended: the kernel closes its descriptors), and the guardian SIGKILLs every group it still holds,
whole groups, then exits.

Protocol, one ASCII line per message on the guardian's stdin, from the daemon's loop thread:

* ``+<pgid> <ticks>``: an attempt's process group started; ``ticks`` is its leader's start time
  (field 22 of ``/proc/<pgid>/stat``, clock ticks since boot), omitted when unreadable.
* ``-<pgid>``: the daemon is about to reap that group's leader. It is sent *before* the reap: the
  daemon keeps the exited leader a zombie until then, and a zombie pins its pid and so the group
  id, so the guardian never holds a pgid that the kernel could hand to an unrelated process.
  ``-#<container id>``: that container ended.
* ``#<container id>``: a Docker container was created (told before it starts): held as every
  process of this machine whose cgroup names it (``/proc/<pid>/cgroup``: the engine's
  ``/docker/ID`` or ``docker-ID.scope``), found when it is killed; the kernel takes the rest of its
  pid namespace with its init. A container id is never reused, so no start ticks are needed. An
  engine on another machine or in a VM runs no process here: then nothing is found.
* ``~<pgid>``, ``~#<container id>``: that held group (container) runs under the node's lease
  (``swarmcompute.rules.lease``).
* ``L<ns>``: the lease deadline, ``CLOCK_BOOTTIME`` nanoseconds; ``L0``: none (the node keeps its
  attempts past its lease). When the clock passes the deadline before a later ``L`` line moves it,
  the guardian SIGKILLs every group held under the lease (as at end of file) and forgets them.
  This is what stops a cut-off node's attempts on time even when the daemon itself is frozen
  (SIGSTOP, a stuck disk): the guardian is a separate process that only waits on a timer.

At end of file, for each group still held: if the leader exists with other start ticks, the pid
now belongs to someone else and the group is left alone; otherwise the group is SIGKILLed. That
includes a leader that is gone with members left: when the daemon dies, its zombie leaders are
reaped by init at once, and the group id stays pinned for as long as any member lives (the kernel
frees a pid only once no process uses it as pid, group or session id), so a group that still has
members under that id is still the job's. The only way to be wrong is for the whole group to die,
the pid space to wrap around to that id, and a new group with it to lose its own leader, all
between the daemon's death and the guardian reading end of file; that is accepted.

The guardian runs in its own session (``setsid``): Ctrl-C on the daemon's terminal and signals to
the daemon's process group do not reach it, and it ignores SIGINT, SIGTERM and SIGHUP anyway, so
that it lives until it has cleaned up. End of file (or SIGKILL) is the only way to stop it. It is
this file run as a script, ``python -I -S guardian.py``, importing only ``os``, ``signal`` and
``sys``: about 9 MiB resident, most of it the interpreter's shared pages (3.5 MiB anonymous).

The daemon's side is ``GuardianLink``: writes are non-blocking (a line is far below
``PIPE_BUF``, so it is written whole or not at all), and a failed write (the guardian died, or
stopped reading and filled the 64 KiB pipe) says so, so the caller can start a new guardian,
which gets every group held. What the guardian does not cover: a job process that left its
group (``setsid``), and a daemon killed between spawning a job and writing its ``+`` line (a few
microseconds); the registry (``registry``, ``ProcessExecutor.reap_stale``) is the second line.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

_READ_BYTES = 64 * 1024
GATHER_S = 0.02
"""After each read, the guardian waits this long before it reads again: a daemon starting jobs
sends two lines per job, and a write to a pipe whose reader waits in ``select`` wakes it, each
time. Asleep, it is not woken: the lines wait in the pipe (in the kernel, safe from a daemon that
dies or freezes meanwhile) and the next read takes them together. The cost: end of file (the
daemon gone) is seen up to this much later; the lease deadline is kept to the moment, as the wait
never passes it. The pipe holds 64 KiB, about 2,000 lines: 100,000 lines a second before a write
would find it full. Measured, 500 `true` jobs on 3 loopback nodes, 4 paired rounds: the three
guardians' CPU 0.009-0.016 ms per job against 0.058-0.083 when woken per line, the batch 946-1205
jobs/s before and 1012-1232 after (paired ratios 0.97-1.15); a test's 400 lines 0.4 ms apart woke
it 11 times against 400.
"""
_MAX_LINE_BYTES = 128  # "+<pgid> <ticks>" is at most about 30, "~#<container id>" 66


def start_ticks(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22).

    None when the process does not exist or its stat is unreadable. A zombie still has it.
    """
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        stat = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    fields = stat[stat.rfind(b")") + 2 :].split()  # the name (field 2) may hold spaces
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


# -- the guardian process ---------------------------------------------------------------------


def serve(stdin_fd: int = 0) -> None:
    """The guardian's whole life: hold groups as told until end of file, then kill the rest."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    _close_leaked_fds()
    held: dict[Key, int | None] = {}
    lease = Lease()
    partial = b""
    while True:
        timeout = lease.timeout_s(boottime_ns())
        if timeout is not None:
            try:
                readable, _, _ = select.select([stdin_fd], [], [], timeout)
            except InterruptedError:
                continue
            if not readable:
                killed = lease.expire(held)
                groups = "process group" if killed == 1 else "process groups"
                _say(f"swarm guardian: the node's lease ran out; killed {killed} job {groups}")
                continue
        try:
            data = os.read(stdin_fd, _READ_BYTES)
        except OSError:
            data = b""
        if not data:
            break
        lines = (partial + data).split(b"\n")
        partial = lines.pop()
        if len(partial) > _MAX_LINE_BYTES:
            partial = b""  # not a protocol line; do not let it grow
        for line in lines:
            if not lease.apply_line(line):
                apply_line(held, line)
        if len(data) < _READ_BYTES:  # the pipe is drained (a full read: more waits, as when spawned)
            _gather(lease)
    kill_held(held)


def _gather(lease: Lease) -> None:
    """Let lines gather in the pipe for up to ``GATHER_S`` (never past the lease deadline), so that
    the next read takes them all in one wake-up."""
    timeout = lease.timeout_s(boottime_ns())
    time.sleep(GATHER_S if timeout is None else min(GATHER_S, timeout))


def boottime_ns() -> int:
    """The lease clock: monotonic, and counting through suspend (a sleeping laptop's lease ends)."""
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


CLOCK_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
"""One clock tick, the unit of ``start_ticks`` (10 ms at Linux's USER_HZ of 100)."""
FORK_MARGIN_NS = 100_000
"""How far from a tick's edges a spawn's ``boottime_ns`` bracket must lie for ``start_ticks_between``
to answer without ``/proc``: both clocks are the kernel's one timekeeper, so this is only a guard."""


def start_ticks_between(pid: int, before_ns: int, after_ns: int) -> int | None:
    """``start_ticks(pid)`` of a child forked between two ``boottime_ns()`` readings.

    The kernel stamps a child with ``CLOCK_BOOTTIME`` as it forks it (``start_boottime``) and shows
    it in ``/proc/<pid>/stat`` as whole clock ticks, rounded down (in the reader's time namespace,
    as ``boottime_ns`` is). So when the whole bracket, widened by ``FORK_MARGIN_NS`` each side,
    lies within one tick, that tick is the answer, exactly; otherwise (a spawn of 0.2-0.5 ms
    straddles a 10 ms tick's edge about 5 % of the time) it reads ``/proc`` as ``start_ticks`` does.

    Why: reading ``/proc/<pid>/stat`` right after the spawn waits while the child, between its
    vfork's return and the end of its exec, holds its memory map's lock; with both cores busy the
    child may not run for a while. Measured in the daemon, a 20,000-job batch on one node:
    ``start_ticks`` took 27-29 us at the median but 480-510 at the 90th percentile, 130-160 us on
    average: a fifth of the loop thread's samples.
    """
    tick = (before_ns - FORK_MARGIN_NS) // CLOCK_TICK_NS
    if tick == (after_ns + FORK_MARGIN_NS) // CLOCK_TICK_NS:
        return tick
    return start_ticks(pid)


Key = int | str
"""What the guardian holds: a process group's id, or a container's id (``#`` lines)."""


def _key(text: bytes) -> Key:
    """The group or container a ``-`` or ``~`` line names; ``ValueError`` for neither."""
    if text[:1] == b"#":
        return _container_id(text[1:])
    return int(text)


def _container_id(text: bytes) -> str:
    """A container id (lowercase hex, as the engine makes them); ``ValueError`` for anything else:
    it is looked for in every process's cgroup, so a short one would find what is not its own."""
    if len(text) < 32 or text.strip(b"0123456789abcdef"):
        raise ValueError("not a container id")
    return text.decode()


class Lease:
    """The guardian's view of the node's lease: a deadline and the groups that stop with it."""

    def __init__(self) -> None:
        self.deadline_ns = 0  # 0: none
        self.groups: set[Key] = set()

    def apply_line(self, line: bytes) -> bool:
        """Apply a ``~`` or ``L`` line and return True; note a ``-`` line and return False (the
        caller applies that one, and any other line, to the held groups)."""
        try:
            if line[:1] == b"~":
                self.groups.add(_key(line[1:]))
            elif line[:1] == b"L":
                self.deadline_ns = max(int(line[1:]), 0)
            else:
                if line[:1] == b"-":
                    self.groups.discard(_key(line[1:]))
                return False
        except ValueError:
            pass
        return True

    def timeout_s(self, now_ns: int) -> float | None:
        """How long to wait for input before the deadline; None: no deadline applies."""
        if not self.deadline_ns or not self.groups:
            return None
        return max(self.deadline_ns - now_ns, 0) / 1e9

    def expire(self, held: dict[Key, int | None]) -> int:
        """The deadline passed: kill the leased groups and forget them; return how many."""
        groups = {g: held[g] for g in self.groups if g in held}
        kill_held(groups)
        for g in self.groups:
            held.pop(g, None)
        self.groups.clear()
        self.deadline_ns = 0
        return len(groups)


def _say(line: str) -> None:
    """One line on stderr (the daemon's log): the guardian acts rarely, and each act matters."""
    try:
        os.write(2, (line + "\n").encode())
    except OSError:
        pass


def _close_leaked_fds() -> None:
    """Only stdin, stdout and stderr are meant to be inherited: close anything that leaked (a job
    pipe's write end kept here would hold that job's output open until the daemon dies)."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return
    for name in names:
        fd = int(name)
        if fd > 2:
            try:
                os.close(fd)
            except OSError:
                pass  # the descriptor listdir itself used, closed by now


def apply_line(held: dict[Key, int | None], line: bytes) -> None:
    """Apply one protocol line to the held groups and containers; ignore a malformed one."""
    try:
        if line[:1] == b"+":
            pgid_text, _, ticks_text = line[1:].partition(b" ")
            pgid = int(pgid_text)
            if pgid > 1:  # never 0 (our own group) or 1 (init's)
                held[pgid] = int(ticks_text) if ticks_text else None
        elif line[:1] == b"#":
            held[_container_id(line[1:])] = None
        elif line[:1] == b"-":
            held.pop(_key(line[1:]), None)
    except ValueError:
        pass


def kill_held(held: dict[Key, int | None]) -> None:
    """SIGKILL each held group unless its leader's pid now belongs to another process, and every
    process of each held container."""
    kill_containers([key for key in held if isinstance(key, str)])
    for pgid, ticks in held.items():
        if isinstance(pgid, str):
            continue
        if ticks is not None:
            now = start_ticks(pgid)
            if now is not None and now != ticks:
                continue
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass  # no such group any more, or not ours to signal


def kill_containers(container_ids: list[str]) -> int:
    """SIGKILL every process of this machine whose cgroup names one of ``container_ids``
    (``container_pids``); return how many. Made only when the daemon is gone or its lease ran out.
    A process the container forks meanwhile dies with its init (the pid namespace goes with it).
    The one way to hit a stranger is for a container process to exit and its pid to be reused in
    the microseconds between reading its cgroup and the kill; that is accepted, as for the groups."""
    killed = 0
    for pid in container_pids(container_ids):
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except OSError:
            pass
    return killed


def container_pids(container_ids: list[str]) -> list[int]:
    """The processes of this machine whose cgroup (``/proc/<pid>/cgroup``: the engine's
    ``/docker/ID`` or ``docker-ID.scope``) names one of ``container_ids``: those containers'
    processes, when their engine runs here. One pass over ``/proc``: 0.7 ms on this 2-core VM
    with 81 processes."""
    if not container_ids:
        return []
    needles = [c.encode() for c in container_ids]
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    found = []
    for name in names:
        if not name.isdigit():
            continue
        try:
            fd = os.open(f"/proc/{name}/cgroup", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            cgroups = os.read(fd, 8192)
        except OSError:
            continue
        finally:
            os.close(fd)
        if any(needle in cgroups for needle in needles):
            found.append(int(name))
    return found


# -- the daemon's side ------------------------------------------------------------------------


class GuardianLink:
    """The daemon's end of the pipe to its guardian, and the set of groups the guardian holds.

    ``held`` outlives any one guardian process: ``spawn`` starts a new one holding all of it.
    Call from one thread (the daemon's loop). ``hold`` and ``release`` return False when the
    running guardian could not be told; the caller then ``discard``s it and may ``spawn`` again.
    With no guardian running they only update ``held``.
    """

    def __init__(self, python: str | None = None) -> None:
        self.python = python or sys.executable
        self.held: dict[Key, int | None] = {}
        self.leased: set[Key] = set()
        self.deadline_ns = 0
        self.pid: int | None = None  # the running guardian, not yet reaped
        self._fd: int | None = None  # write end of its stdin; None once closed

    def spawn(self) -> int:
        """Start a guardian holding every group in ``held``; return its pid. Raises ``OSError``."""
        if self.pid is not None:
            raise RuntimeError("a guardian is already running")
        read_fd, write_fd = os.pipe()  # both close-on-exec; dup2 makes the child's stdin inheritable
        try:
            pid = os.posix_spawn(
                self.python,
                [self.python, "-I", "-S", os.path.abspath(__file__)],
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, read_fd, 0),
                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                ],
                setsid=True,
            )
        except BaseException:
            os.close(write_fd)
            raise
        finally:
            os.close(read_fd)
        self.pid, self._fd = pid, write_fd
        # The first batch may exceed the pipe (thousands of groups): a blocking write, which a new
        # guardian drains as soon as it runs. Single lines later never block. Should it fail (the
        # guardian died at once), the caller hears of it at the next write or the exit notice.
        if self.held:
            self._send(
                b"L%d\n" % self.deadline_ns
                + b"".join(_hold_line(p, t) for p, t in self.held.items())
                + b"".join(b"~%s\n" % _key_bytes(p) for p in self.leased)
            )
        os.set_blocking(write_fd, False)
        return pid

    def hold(self, pgid: Key, ticks: int | None, *, leased: bool = False) -> bool:
        """Tell the guardian a group started (call right after spawning its leader), or a
        container was created (its id: call before starting it); a ``leased`` one is also killed
        when the lease deadline passes."""
        self.held[pgid] = ticks
        if not leased:
            return self._send(_hold_line(pgid, ticks))
        self.leased.add(pgid)
        return self._send(b"L%d\n" % self.deadline_ns + _hold_line(pgid, ticks) + b"~%s\n" % _key_bytes(pgid))

    def release(self, pgid: Key) -> bool:
        """Tell the guardian to forget a group (call before reaping its leader), or a container."""
        if pgid not in self.held:
            return True
        del self.held[pgid]
        self.leased.discard(pgid)
        return self._send(b"-%s\n" % _key_bytes(pgid))

    def set_deadline(self, deadline_ns: int) -> bool:
        """Move the lease deadline (``CLOCK_BOOTTIME`` ns; 0: none)."""
        if deadline_ns == self.deadline_ns:
            return True
        self.deadline_ns = deadline_ns
        if not self.leased:
            return True  # sent along with the next leased group
        return self._send(b"L%d\n" % deadline_ns)

    def close(self) -> None:
        """Close the pipe: the guardian kills what it still holds and exits; ``poll`` reaps it."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def poll(self) -> int | None:
        """Reap the guardian if it has exited; return its wait status, else None."""
        if self.pid is None:
            return None
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.pid, 0  # reaped by someone else: gone all the same
        if pid == 0:
            return None
        self.pid = None
        self.close()
        return status

    def discard(self) -> int | None:
        """Close the pipe, SIGKILL the guardian if it still runs, reap it; return its status.

        Safe by pid: our unreaped child cannot have handed its pid to another process.
        """
        self.close()
        if self.pid is None:
            return None
        pid, self.pid = self.pid, None
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            return os.waitpid(pid, 0)[1]
        except ChildProcessError:
            return None

    def _send(self, data: bytes) -> bool:
        if self._fd is None:
            return self.pid is None  # no guardian: nothing to tell; a closed one: failure
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:  # BrokenPipeError: it died; BlockingIOError: it stopped reading
            return False
        return True


def _hold_line(pgid: Key, ticks: int | None) -> bytes:
    if isinstance(pgid, str):
        return b"#%s\n" % pgid.encode()
    return b"+%d\n" % pgid if ticks is None else b"+%d %d\n" % (pgid, ticks)


def _key_bytes(key: Key) -> bytes:
    return b"#%s" % key.encode() if isinstance(key, str) else b"%d" % key


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.exit("usage: python -I -S guardian.py  (protocol lines on stdin; see the docstring)")
    serve()
