"""Runs job attempts as local subprocesses, one process group each, on the daemon's asyncio loop.

Lifecycle of one attempt (all on the loop thread, no task per job):

1. ``start`` spawns the job (see ``spawn``: ``vfork`` + exec, no helper process) with
   ``start_new_session=True`` (it leads its own session and process group, detached from the
   daemon's terminal), stdin ``/dev/null``, stdout and stderr on two pipes and
   ``SWARM_JOB_ID``/``SWARM_ATTEMPT`` in its environment. Its group is handed at once to the
   guardian (see ``guardian``), a single small process started with the first job, which SIGKILLs
   every group it holds when the daemon dies, however it dies. The attempt is also recorded in the
   registry file (see ``registry``) so a later daemon life can kill what is left should the
   guardian have been killed too.
2. The pipes are read by loop readers into the per-attempt log (``logfile``, created on the first
   output) and a 4 KiB tail.
3. The leader's exit is watched with a pidfd (a waiter thread where pidfds are unavailable). When
   it exits, the rest of its group is SIGKILLed *before* the leader is reaped, while the zombie
   leader still pins the group id (like Slurm's proctrack: nothing outlives the job); then the
   guardian is told to let the group go, and only then is the leader reaped.
4. Timeout, ``cancel`` and ``shutdown`` send SIGTERM to the group and SIGKILL after
   ``kill_grace_s``.
5. Once the leader is reaped and both pipes reached EOF, ``on_exit`` gets one ``AttemptResult``.
   A process that left the group (``setsid``) but keeps a pipe open cannot hold the result back
   for more than ``_DRAIN_TIMEOUT_S``.

The guardian: a write to it never blocks the loop (one short line per start and per end of an
attempt, non-blocking). If it dies or stops reading, the executor notices (its pidfd, or the failed
write), logs ``job_guardian_lost`` and starts a new one that holds every running group; a guardian
that keeps dying is restarted at most every ``_GUARDIAN_RESTART_S``. ``shutdown`` closes it last.

Known limit: a job process that calls ``setsid`` escapes its group and therefore the kill on
exit and the guardian; a cgroup per job would catch it and is left for the resource-limits work.

Cost: on a 2-core machine, ``true`` attempts two at a time run at about 1,100 per second with
1.4 ms of CPU each (daemon 0.7, job 0.7, guardian 0.06), against 550 per second and 2.9 ms when
``setpriv`` armed PDEATHSIG per job (same machine, runs alternated; ``xargs -P2 true`` did 1,400
per second then): one exec per job instead of two, and no log file for a job without output.
``start`` to ``on_exit`` of ``true`` is about 1.7 ms (p50; 4 ms before).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from swarmcompute.executor.attempts import AttemptRunner, Key, TimeLimit
from swarmcompute.executor.cgroups import JobCgroups, cpu_seconds
from swarmcompute.executor.guardian import GuardianLink, boottime_ns, start_ticks_between
from swarmcompute.executor.logfile import DEFAULT_MAX_LOG_BYTES, STDERR, STDOUT, LogWriter
from swarmcompute.executor.registry import (
    RegistryEntry,
    create_time_of,
    kill_stale_group,
    process_create_time,
    read_registry,
    running_owner,
    write_registry,
)
from swarmcompute.executor.spawn import SpawnFailed, spawn_job
from swarmcompute.executor.spec import (
    AttemptResult,
    AttemptSpec,
    EndReason,
    killed_by,
    out_of_memory,
    warning_why,
)
from swarmcompute.executor.usage import UsageNow, usage_now
from swarmcompute.limits import signal_name

_log = structlog.get_logger(__name__)

_READ_BYTES = 64 * 1024
_DRAIN_TIMEOUT_S = 2.0  # after the group is killed, how long an escaped pipe holder may delay us
_SHUTDOWN_SLACK_S = 5.0
_REGISTRY_DEBOUNCE_S = 0.05
_GUARDIAN_RESTART_S = 5.0  # a guardian lost again within this is restarted only after it
_GUARDIAN_EXIT_WAIT_S = 2.0  # at shutdown, how long the closed guardian may take to exit
_CGROUP_RETRY_S = 0.02  # an ended attempt's cgroup is removed once its killed processes exited
_CGROUP_REMOVE_TRIES = 250  # 5 s of tries


class _Attempt:
    """The executor's live record of one running attempt."""

    __slots__ = (
        "spec", "key", "proc", "pid", "pgid", "start_ticks", "create_time", "writer", "log_path",
        "started_at", "reason", "streams", "pidfd", "reaped", "limit", "kill_handle",
        "drain_handle", "done", "cgroup", "error", "cpu_s", "max_rss_bytes", "rss_floor_kib", "max_rss_at_most",
    )  # fmt: skip

    def __init__(
        self,
        spec: AttemptSpec,
        proc: subprocess.Popen[bytes],
        writer: LogWriter,
        started_at: float,
        done: asyncio.Future[AttemptResult],
    ) -> None:
        self.spec = spec
        self.key: Key = (spec.job_id, spec.attempt)
        self.proc = proc
        self.pid = proc.pid
        self.pgid = proc.pid  # start_new_session: the leader's pid is the group id
        self.start_ticks: int | None = None
        self.create_time: float | None = None  # read when the registry is first written
        self.writer = writer
        self.log_path = writer.path
        self.started_at = started_at
        self.reason: EndReason | None = None
        self.streams: dict[int, int] = {}  # read fd -> STDOUT/STDERR, while open
        self.pidfd: int | None = None
        self.reaped = False
        self.limit = TimeLimit()
        self.kill_handle: asyncio.TimerHandle | None = None
        self.drain_handle: asyncio.TimerHandle | None = None
        self.done = done
        self.cgroup: str | None = None  # its own cgroup v2 directory (``cgroups``), removed at its end
        self.error: str | None = None  # how it ended, when its exit code alone does not say
        self.cpu_s: float | None = None  # what it used (``AttemptResult``), read when it is reaped
        self.max_rss_bytes: int | None = None
        self.max_rss_at_most = False
        self.rss_floor_kib = 0  # the daemon's own peak RSS once the job was exec'd (``_reap``)


class ProcessExecutor(AttemptRunner["_Attempt"]):
    """Runs attempts as process groups and reports each exactly once through ``on_exit``.

    All methods are called on the daemon's loop thread; callbacks run there too. ``on_output``
    is called with ``(job_id, attempt)`` after a chunk was written to the log file, so a follower
    can read it with ``logfile.read_chunks``. The guardian process is started by the first
    ``start`` (so on the loop thread) and stopped by ``shutdown``.
    """

    start_failed_event = "job_process_spawn_failed"
    use_pidfd = True  # False forces the waiter-thread fallback (kernels before 5.3; tests)

    def __init__(
        self,
        logs_dir: Path,
        registry_path: Path,
        *,
        on_exit: Callable[[AttemptResult], None],
        on_output: Callable[[str, int], None] | None = None,
        kill_grace_s: float = 5.0,
        max_log_bytes: int = DEFAULT_MAX_LOG_BYTES,
    ) -> None:
        super().__init__(logs_dir, on_exit, max_log_bytes)
        self._registry_path = Path(registry_path)
        self.copy_of: int | None = None
        """The pid of a running daemon whose registry ``reap_stale`` found here (a copied state dir)."""
        created = process_create_time(os.getpid())
        self._owner = None if created is None else (os.getpid(), created)
        """This daemon's pid and create time, named in the registry it writes (``running_owner``)."""
        self._on_output = on_output
        self._kill_grace_s = kill_grace_s
        self._registry_handle: asyncio.TimerHandle | None = None
        self._guardian = GuardianLink()
        self._guardian_pidfd: int | None = None
        self._guardian_lost_at = -_GUARDIAN_RESTART_S
        self._guardian_next_try = 0.0  # monotonic; no (re)start before it
        self._guardian_retry: asyncio.TimerHandle | None = None
        self.cgroups = JobCgroups.unavailable("the daemon has not set up cgroups")
        """Where ``limit_cpus``, ``limit_mem_bytes`` and ``max_procs`` are enforced (the daemon
        sets it up at start: ``JobCgroups.set_up``)."""

    # -- public API ---------------------------------------------------------------------------

    async def start(self, spec: AttemptSpec) -> None:
        """Spawn one attempt; a spawn failure is reported through ``on_exit``, never raised.

        Raises ``ExecutorError`` only for a caller bug: starting an attempt that is running.
        """
        admitted = self._admit(spec)
        if admitted is None:
            return
        started_at, writer = admitted
        key, log_path = (spec.job_id, spec.attempt), writer.path
        loop = asyncio.get_running_loop()
        try:
            att = self._spawn(spec, writer, started_at, loop)
        except SpawnFailed as exc:
            writer.note(f"[swarm: {exc.error}]\n".encode())
            writer.close()
            self._report_unstarted(spec, started_at, str(log_path), EndReason.SPAWN_FAILED,
                                   exc.exit_code, exc.error)  # fmt: skip
            return
        self._attempts[key] = att
        self._guard(att)
        self._watch(att, loop)
        self._registry_soon(loop)
        # debug, like a clean exit: at hundreds of jobs a second these two lines were a tenth of
        # the daemon's CPU; the job table keeps every attempt's node, times and exit code anyway
        _log.debug(
            "job_process_started", job_id=spec.job_id, attempt=spec.attempt, pid=att.pid,
            timeout_s=spec.timeout_s,
        )  # fmt: skip

    def retime(self, job_id: str, attempt: int, timeout_s: float | None) -> bool:
        """Move a running attempt's time limit to ``timeout_s`` after it started (None: none); one
        already past stops it as timed out. False when it does not run here."""
        att = self._attempts.get((job_id, attempt))
        if att is None or att.reaped:
            return False
        if att.reason is None:  # not being stopped already
            self._arm(att, timeout_s)
        return True

    def _arm(self, att: _Attempt, timeout_s: float | None) -> None:
        """Its time limit, ``timeout_s`` after it started, and the ``--signal`` warning before it."""
        spec = att.spec
        warning = (
            (lambda: self._send(att, ((spec.warn_signal, False),), warning_why(spec))) if spec.warn_signal else None
        )
        att.limit.arm(
            att.started_at, timeout_s, lambda: self._terminate(att, EndReason.TIMEOUT), spec.warn_before_s, warning
        )

    def signal(self, job_id: str, attempt: int, signals: tuple[tuple[int, bool], ...]) -> bool:
        """Send ``signals`` to a running attempt, in order (`swarm signal`): each ``(number, to its
        process group)``, to its main process otherwise; each said in its output. False when it
        does not run here."""
        att = self._attempts.get((job_id, attempt))
        if att is None or att.reaped:
            return False
        self._send(att, signals, "swarm signal")
        return True

    def _send(self, att: _Attempt, signals: tuple[tuple[int, bool], ...], why: str) -> None:
        if att.reaped:
            return
        for signum, group in signals:
            whom = "process group" if group else "main process"
            att.writer.note(f"[swarm: sending SIG{signal_name(signum)} to the job's {whom} ({why})]\n".encode())
            if group:
                _signal_group(att.pgid, signum)
            else:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(att.pid, signum)  # not reaped, so the pid is still the job's

    def refuse(self, spec: AttemptSpec, error: str) -> None:
        """Report an attempt this node will not start (its command policy refuses it) as a spawn
        failure, through ``on_exit`` like any other."""
        self._report_unstarted(spec, time.time(), "", EndReason.SPAWN_FAILED, None, error)

    def pid(self, job_id: str, attempt: int) -> int | None:
        """The leader pid (also the process group id) of a running attempt."""
        att = self._attempts.get((job_id, attempt))
        return None if att is None else att.pid

    def usage_now(self, job_id: str, attempt: int) -> UsageNow | None:
        """What a running attempt uses now (``executor.usage``); None when it does not run here."""
        att = self._attempts.get((job_id, attempt))
        return None if att is None or att.reaped else usage_now(att.pgid, att.cgroup)

    @property
    def guardian_pid(self) -> int | None:
        """The pid of the running guardian process, if one runs (see ``guardian``)."""
        return self._guardian.pid

    async def shutdown(self, *, keep_guardian: bool = False) -> None:
        """Stop every attempt (reason STOPPED) and wait, bounded, until each is reported; then stop
        the guardian, unless ``keep_guardian`` (it holds containers still: ``guard_container``;
        ``stop_guardian`` once they are gone)."""
        self._stopping = True
        pending = list(self._attempts.values())
        for att in pending:
            self._terminate(att, EndReason.STOPPED)
        if pending:
            bound_s = self._kill_grace_s + _DRAIN_TIMEOUT_S + _SHUTDOWN_SLACK_S
            _, not_done = await asyncio.wait([a.done for a in pending], timeout=bound_s)
            if not_done:
                # Only a process stuck in the kernel (D state) survives SIGKILL this long.
                stuck = [f"{a.spec.job_id}.{a.spec.attempt}" for a in pending if not a.done.done()]
                _log.error("job_process_stuck", attempts=stuck)
        self._write_registry()
        if not keep_guardian:
            await self.stop_guardian()  # it SIGKILLs any group still held (a stuck one), then exits

    def reap_stale(self) -> int:
        """Kill the process groups a previous daemon life left running; return how many.

        Reads the registry file, kills each recorded group that is still there (PID-reuse safe,
        see ``registry``), then rewrites the registry with this executor's own attempts. Call it
        once at daemon start, before ``start``: it scans the process table and blocks until the
        killed processes are gone (at most a few seconds).
        """
        killed = 0
        owner = self.copy_of = running_owner(self._registry_path)
        if owner is not None:
            _log.warning(
                "stale_reap_skipped",
                path=str(self._registry_path),
                owner_pid=owner,
                why="the daemon that recorded these jobs still runs: this state directory is a copy of that one's",
            )
            self._write_registry()
            return 0
        for entry in read_registry(self._registry_path):
            att = self._attempts.get((entry.job_id, entry.attempt))
            if att is not None and att.pid == entry.pid:
                continue
            if kill_stale_group(entry):
                killed += 1
        self._write_registry()
        return killed

    # -- spawning -----------------------------------------------------------------------------

    def _spawn(
        self,
        spec: AttemptSpec,
        writer: LogWriter,
        started_at: float,
        loop: asyncio.AbstractEventLoop,
    ) -> _Attempt:
        try:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
        except OSError as exc:  # EMFILE: the job fails to start, the daemon serves on
            raise SpawnFailed(None, f"cannot create the job's output pipes: {exc.strerror}") from None
        try:
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
        except OSError as exc:
            os.close(out_r)
            os.close(out_w)
            raise SpawnFailed(None, f"cannot create the job's output pipes: {exc.strerror}") from None
        cgroup = None
        try:
            try:
                cgroup = self.cgroups.create(
                    spec.job_id, spec.attempt, cpus=spec.limit_cpus, mem_bytes=spec.limit_mem_bytes,
                    max_procs=spec.max_procs,
                )  # fmt: skip
            except OSError as exc:
                raise SpawnFailed(None, f"cannot make the job's cgroup: {exc.strerror or exc}") from None
            spawn_began_ns = boottime_ns()
            proc = spawn_job(spec, out_w, err_w, cgroup)
            spawn_ended_ns = boottime_ns()
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            if cgroup is not None:
                self.cgroups.remove(cgroup)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        att = _Attempt(spec, proc, writer, started_at, loop.create_future())
        att.cgroup = cgroup
        att.streams = {out_r: STDOUT, err_r: STDERR}
        # The child is not reaped until we say so, so its start time is always readable here.
        att.start_ticks = start_ticks_between(proc.pid, spawn_began_ns, spawn_ended_ns)
        att.rss_floor_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return att

    def _watch(self, att: _Attempt, loop: asyncio.AbstractEventLoop) -> None:
        for fd, stream in att.streams.items():
            os.set_blocking(fd, False)
            loop.add_reader(fd, self._on_readable, att, fd, stream)
        att.pidfd = None
        if self.use_pidfd:
            try:
                att.pidfd = os.pidfd_open(att.pid)
            except OSError:
                att.pidfd = None
        if att.pidfd is not None:
            loop.add_reader(att.pidfd, self._on_leader_exit, att)
        else:
            threading.Thread(
                target=_wait_exit_thread, args=(att.pid, loop, self._on_leader_exit, att),
                name=f"swarm-wait-{att.pid}", daemon=True,
            ).start()  # fmt: skip
        self._arm(att, att.spec.timeout_s)

    # -- loop callbacks -----------------------------------------------------------------------

    def _on_readable(self, att: _Attempt, fd: int, stream: int) -> None:
        try:
            data = os.read(fd, _READ_BYTES)
        except BlockingIOError:
            return
        except OSError as exc:
            _log.warning("job_output_read_failed", job_id=att.spec.job_id, error=str(exc))
            data = b""
        if not data:
            self._close_stream(att, fd)
            self._maybe_finish(att)
            return
        att.writer.write(stream, data)
        if self._on_output is not None:
            try:
                self._on_output(att.spec.job_id, att.spec.attempt)
            except Exception:
                _log.exception("on_output_callback_failed", job_id=att.spec.job_id)

    def _on_leader_exit(self, att: _Attempt) -> None:
        loop = asyncio.get_running_loop()
        if att.pidfd is not None:
            loop.remove_reader(att.pidfd)
            os.close(att.pidfd)
            att.pidfd = None
        # The zombie leader still pins the group id: kill what it left behind, let the guardian
        # forget the group (before the id can be reused), then reap it.
        _signal_group(att.pgid, signal.SIGKILL)
        if not self._guardian.release(att.pgid):
            self._guardian_lost("its pipe is broken")
        _reap(att)
        if att.cgroup is not None:
            cpu_s = cpu_seconds(att.cgroup)  # every process of the job, not only those waited for
            if cpu_s is not None and att.cpu_s is not None:
                att.cpu_s = cpu_s
            if self.cgroups.oom_killed(att.cgroup):
                att.error = out_of_memory(att.spec.limit_mem_bytes)
                att.writer.note(f"[swarm: {att.error}]\n".encode())
            self._remove_cgroup(att.cgroup)  # also kills what left the process group (setsid)
            att.cgroup = None
        att.limit.cancel()
        if att.kill_handle is not None:
            att.kill_handle.cancel()
        if att.streams:
            att.drain_handle = loop.call_later(_DRAIN_TIMEOUT_S, self._abandon_streams, att)
        self._maybe_finish(att)

    def _remove_cgroup(self, path: str, tries_left: int = _CGROUP_REMOVE_TRIES) -> None:
        """Remove an ended attempt's cgroup without blocking the loop: once now, then every
        ``_CGROUP_RETRY_S`` while its killed processes exit (a few ms), logged if it never goes."""
        if self.cgroups.remove(path, tries=1):
            return
        if tries_left <= 1:
            _log.warning("cgroup_not_removed", path=path)
            return
        asyncio.get_running_loop().call_later(_CGROUP_RETRY_S, self._remove_cgroup, path, tries_left - 1)

    def _terminate(self, att: _Attempt, reason: EndReason, grace_s: float | None = None) -> None:
        if att.reaped:
            return
        if att.reason is None:
            att.reason = reason
            att.writer.note(f"[swarm: {reason.value}: sending SIGTERM to the job]\n".encode())
        if att.kill_handle is None:
            _signal_group(att.pgid, signal.SIGTERM)
            grace = self._kill_grace_s if grace_s is None else grace_s
            att.kill_handle = asyncio.get_running_loop().call_later(grace, self._kill_after_grace, att)

    def _kill_after_grace(self, att: _Attempt) -> None:
        if not att.reaped:
            att.writer.note(b"[swarm: grace period over: sending SIGKILL to the job]\n")
            _signal_group(att.pgid, signal.SIGKILL)

    def _abandon_streams(self, att: _Attempt) -> None:
        _log.warning(
            "job_output_left_open", job_id=att.spec.job_id, attempt=att.spec.attempt,
            hint="a process that left the job's process group still holds its output pipe",
        )  # fmt: skip
        for fd in list(att.streams):
            self._close_stream(att, fd)
        self._maybe_finish(att)

    def _close_stream(self, att: _Attempt, fd: int) -> None:
        if att.streams.pop(fd, None) is not None:
            asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)

    def _maybe_finish(self, att: _Attempt) -> None:
        if not att.reaped or att.streams or att.done.done():
            return
        if att.drain_handle is not None:
            att.drain_handle.cancel()
        att.writer.close()
        self._attempts.pop(att.key, None)
        self._registry_soon(asyncio.get_running_loop())
        code = att.proc.returncode
        exit_code = 128 - code if code < 0 else code
        if att.error is None and code < 0 and att.reason is None:
            att.error = killed_by(-code)  # not a timeout's or a cancel's kill: those say so themselves
        result = AttemptResult(
            job_id=att.spec.job_id,
            attempt=att.spec.attempt,
            exit_code=exit_code,
            reason=att.reason or EndReason.EXITED,
            error=att.error,
            started_at=att.started_at,
            finished_at=time.time(),
            output_tail=att.writer.tail,
            log_path=str(att.log_path),
            cpu_s=att.cpu_s,
            max_rss_bytes=att.max_rss_bytes,
            max_rss_at_most=att.max_rss_at_most,
            output_bytes=att.writer.output_bytes,
        )
        clean = exit_code == 0 and result.reason is EndReason.EXITED
        (_log.debug if clean else _log.info)(
            "job_process_exited", job_id=result.job_id, attempt=result.attempt, pid=att.pid,
            exit_code=exit_code, reason=result.reason.value,
        )  # fmt: skip
        att.done.set_result(result)
        self._deliver(result)

    # -- helpers ------------------------------------------------------------------------------

    def _registry_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        """Coalesce registry rewrites: a burst of starts and ends costs one write.

        The window this opens (up to ``_REGISTRY_DEBOUNCE_S`` before a new group is
        recorded) only matters if the daemon dies inside it and its guardian is
        gone too: the guardian is told about each group at once.
        """
        if self._registry_handle is None:
            self._registry_handle = loop.call_later(_REGISTRY_DEBOUNCE_S, self._write_registry)

    def flush_registry(self) -> None:
        """Write the registry now rather than after the debounce (tests, shutdown)."""
        self._write_registry()

    def _write_registry(self) -> None:
        if self._registry_handle is not None:
            self._registry_handle.cancel()
            self._registry_handle = None
        entries = []
        for a in self._attempts.values():
            if a.create_time is None:
                # From the start ticks read at spawn (for the guardian), else read now. An
                # unreaped leader's pid is still its own; a reaped one's is recorded as 0.0,
                # which makes reap_stale check each group member's SWARM_JOB_ID instead.
                if a.reaped:
                    a.create_time = 0.0
                elif a.start_ticks is not None:
                    a.create_time = create_time_of(a.start_ticks)
                else:
                    a.create_time = process_create_time(a.pid) or 0.0
            entries.append(RegistryEntry(a.spec.job_id, a.spec.attempt, a.pid, a.pgid, a.create_time))
        try:
            self._registry_path.parent.mkdir(parents=True, exist_ok=True)
            write_registry(self._registry_path, entries, owner=self._owner)
        except OSError as exc:
            # Jobs still run; only cleanup after a daemon crash is weakened. Say so loudly.
            _log.error("job_registry_write_failed", path=str(self._registry_path), error=str(exc))

    # -- the guardian ---------------------------------------------------------------------------

    def _guard(self, att: _Attempt) -> None:
        """Hand a new attempt's group to the guardian, starting one if none runs."""
        if not self._guardian.hold(att.pgid, att.start_ticks, leased=att.spec.leased):
            self._guardian_lost("its pipe is broken")
        self._ensure_guardian()

    def guard_container(self, container_id: str, *, leased: bool) -> None:
        """Have the guardian hold a Docker container (``DockerExecutor``: created, not yet
        started) besides the job groups: every process of it SIGKILLed as they are, when the
        daemon dies and, ``leased``, past the lease deadline."""
        if not self._guardian.hold(container_id, None, leased=leased):
            self._guardian_lost("its pipe is broken")
        self._ensure_guardian()

    def unguard_container(self, container_id: str) -> None:
        """Let the guardian forget a container ``guard_container`` handed it (it ended)."""
        if not self._guardian.release(container_id):
            self._guardian_lost("its pipe is broken")

    def set_lease_deadline(self, deadline_ns: int) -> None:
        """The node's lease deadline for the guardian (``CLOCK_BOOTTIME`` ns; 0: none): past it,
        the guardian SIGKILLs every leased attempt's group, even if this daemon is frozen."""
        if not self._guardian.set_deadline(deadline_ns):
            self._guardian_lost("its pipe is broken")

    def _ensure_guardian(self) -> None:
        """Start a guardian (holding every running group) unless one runs or a retry waits."""
        if self._stopping or self._guardian.pid is not None or self._guardian_retry is not None:
            return
        loop = asyncio.get_running_loop()
        wait_s = self._guardian_next_try - time.monotonic()
        if wait_s > 0:
            self._guardian_retry = loop.call_later(wait_s, self._retry_guardian)
            return
        try:
            pid = self._guardian.spawn()
        except OSError as exc:
            self._guardian_next_try = time.monotonic() + _GUARDIAN_RESTART_S
            _log.error(
                "job_guardian_start_failed", error=str(exc), python=self._guardian.python,
                hint="jobs run, but if the daemon dies they are only killed by its next start",
            )  # fmt: skip
            return
        if self.use_pidfd:
            try:
                self._guardian_pidfd = os.pidfd_open(pid)
            except OSError:
                self._guardian_pidfd = None
        if self._guardian_pidfd is not None:
            loop.add_reader(self._guardian_pidfd, self._on_guardian_exit, pid)
        _log.info("job_guardian_started", pid=pid, groups=len(self._guardian.held))

    def _retry_guardian(self) -> None:
        self._guardian_retry = None
        self._ensure_guardian()

    def _on_guardian_exit(self, pid: int) -> None:
        if self._guardian.pid == pid:
            self._guardian_lost("it exited")

    def _guardian_lost(self, why: str) -> None:
        """The guardian died or stopped reading: reap it and start another, rate-limited."""
        pid = self._guardian.pid
        self._unwatch_guardian()
        status = self._guardian.discard()  # SIGKILL first: a stuck one must not act on old news
        now = time.monotonic()
        if now - self._guardian_lost_at < _GUARDIAN_RESTART_S:
            self._guardian_next_try = self._guardian_lost_at + _GUARDIAN_RESTART_S
        self._guardian_lost_at = now
        _log.warning(
            "job_guardian_lost", pid=pid, why=why, wait_status=status,
            groups=len(self._guardian.held),
            restart_in_s=round(max(self._guardian_next_try - now, 0.0), 3),
        )  # fmt: skip
        self._ensure_guardian()

    def _unwatch_guardian(self) -> None:
        if self._guardian_pidfd is not None:
            asyncio.get_running_loop().remove_reader(self._guardian_pidfd)
            os.close(self._guardian_pidfd)
            self._guardian_pidfd = None

    async def stop_guardian(self) -> None:
        """Close the guardian's pipe and reap it, bounded (it exits at once, holding nothing)."""
        if self._guardian_retry is not None:
            self._guardian_retry.cancel()
            self._guardian_retry = None
        self._unwatch_guardian()
        link = self._guardian
        if link.pid is None:
            return
        link.close()
        deadline = time.monotonic() + _GUARDIAN_EXIT_WAIT_S
        delay_s = 0.001
        while link.poll() is None:
            if time.monotonic() >= deadline:
                _log.warning("job_guardian_stuck", pid=link.pid, waited_s=_GUARDIAN_EXIT_WAIT_S)
                link.discard()
                return
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 0.05)


def _reap(att: _Attempt) -> None:
    """Reap the attempt's leader with ``wait4``, which also says what it and every descendant it
    waited for used (a shell's commands, a make's compilers): ``cpu_s`` and ``max_rss_bytes``.

    Linux folds into a process's peak RSS the peak of the memory it exec'd from (``exec_mmap``):
    the daemon's, for a job the daemon starts (measured: ``true`` read 211 MiB under a 200 MiB
    parent). So a peak at or under the daemon's own when the job was exec'd says only that the
    job stayed under it (``max_rss_at_most``); one above it is the job's own. The daemon's own is
    read with ``getrusage`` (0.45 us), which also counts what the command that started the daemon
    peaked at before its exec: a bigger parent (a test runner) only makes the bound looser.

    Only an attempt that ended by itself is measured: one its timeout, a cancel or a lost lease
    stopped had its whole group killed at once, and a shell's commands that died with it were never
    waited for (measured: a cancelled ``sh -c`` of two 96 MiB Pythons read 39 MiB)."""
    try:
        _, status, usage = os.wait4(att.pid, 0)
    except ChildProcessError:  # reaped already (never by us): Popen.wait says what it can, as before
        att.proc.wait()
    else:
        att.proc.returncode = os.waitstatus_to_exitcode(status)
        if att.reason is None:  # it ended by itself: a cancel or timeout's kill leaves its children uncounted
            att.cpu_s = usage.ru_utime + usage.ru_stime
            att.max_rss_bytes = usage.ru_maxrss * 1024  # kilobytes on Linux
            att.max_rss_at_most = usage.ru_maxrss <= att.rss_floor_kib
    att.reaped = True


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_exit_thread(
    pid: int,
    loop: asyncio.AbstractEventLoop,
    callback: Callable[[_Attempt], None],
    att: _Attempt,
) -> None:
    """Fallback without pidfds: wait for the exit without reaping, then hand over to the loop."""
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    except ChildProcessError:
        pass
    try:
        loop.call_soon_threadsafe(callback, att)
    except RuntimeError:
        pass  # the loop is closed: nobody is left to report to
