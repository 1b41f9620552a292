"""The daemon: one asyncio loop that holds the cores and carries out their effects.

What it wires together:

* ``JobTable`` (the state core), changed only through ``ReplicatedJobLog``
  (commands committed through Raft; one node is a one-voter cluster);
* ``place`` (the scheduler core), run whenever the table changes or a retry
  backoff ends;
* ``ProcessExecutor``, which runs the attempts assigned to this node and
  reports their ends back as commands;
* ``ControlServer``, the unix socket the CLI and the Python API use.

Start-up order matters: take the state-dir lock, rebuild the table from the Raft log, kill job
processes a previous life left behind, re-queue the attempts that were in
flight (lost, not failed), and only then accept clients.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from swarmcompute.errors import DaemonAlreadyRunningError, InvariantViolation, JobAlreadyExistsError
from swarmcompute.executor.process import ProcessExecutor
from swarmcompute.executor.spec import AttemptResult, AttemptSpec
from swarmcompute.node.committer import ReplicatedJobLog
from swarmcompute.node.identity import Identity, load_or_create
from swarmcompute.node.resources import ResourceMonitor
from swarmcompute.paths import DEFAULT_PORT, StatePaths
from swarmcompute.scheduler.placement import NodeCapacity, place
from swarmcompute.state.commands import (
    AssignJobs,
    CancelJobs,
    FinishAttempt,
    RequeueLost,
    StartAttempt,
    SubmitJobs,
)
from swarmcompute.state.job import ACTIVE_STATES, Job, JobSpec, JobState
from swarmcompute.state.table import JobTable, validate_spec

log = structlog.get_logger(__name__)

RESOURCE_SAMPLE_INTERVAL_S = 2.0


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    paths: StatePaths
    name: str | None = None
    bind: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    kill_grace_s: float = 5.0
    max_log_bytes: int = 64 * 1024 * 1024


class Daemon:
    """One node. ``run()`` serves until ``stop()`` (or `swarm leave`)."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.paths = config.paths
        self.table = JobTable()
        self.identity: Identity | None = None
        self.started_monotonic = time.monotonic()
        self._lock_fd: int | None = None
        self._stop = asyncio.Event()
        self._schedule = asyncio.Event()
        self._changed = asyncio.Event()
        self._job_events: dict[str, set[asyncio.Event]] = {}
        self._to_start: list[Job] = []
        self._start_wakeup = asyncio.Event()
        self.waiting_reasons: dict[str, str] = {}
        self._committer: ReplicatedJobLog | None = None
        self.executor = ProcessExecutor(
            self.paths.job_output_dir,
            self.paths.process_registry,
            on_exit=self._on_attempt_exit,
            on_output=self._on_output,
            kill_grace_s=config.kill_grace_s,
            max_log_bytes=config.max_log_bytes,
        )
        self.resources: ResourceMonitor | None = None

    @property
    def node_id(self) -> str:
        return self._identity().node_id

    @property
    def committer(self) -> ReplicatedJobLog:
        if self._committer is None:
            raise InvariantViolation("the job log is used before run() opened it")
        return self._committer

    def _identity(self) -> Identity:
        if self.identity is None:
            raise InvariantViolation("the daemon's identity is used before run() loaded it")
        return self.identity

    def _resources(self) -> ResourceMonitor:
        if self.resources is None:
            raise InvariantViolation("resources are read before run() started the monitor")
        return self.resources

    # -- lifecycle -------------------------------------------------------------

    async def run(self) -> None:
        """Start, serve until stopped, then stop cleanly."""
        from swarmcompute.api.server import ControlServer

        self._take_lock()
        try:
            self.identity = load_or_create(self.paths.identity, self.config.name)
            structlog.contextvars.bind_contextvars(node_id=self.identity.node_id)
            self._committer = ReplicatedJobLog(self.identity.node_id, self.paths.raft_dir, self.table, self._on_applied)
            applied = self.committer.open(bootstrap_voters=[self.identity.node_id])
            reaped = self.executor.reap_stale()
            self.resources = ResourceMonitor(self.paths.root)
            lost = self._requeue_in_flight()
            server = ControlServer(self, self.paths.control_socket)
            await server.start()
            self.paths.pid_file.write_text(f"{os.getpid()}\n")
            log.info(
                "node_ready",
                name=self.identity.name,
                state_dir=str(self.paths.root),
                jobs=len(self.table),
                raft_applied_index=applied,
                stale_groups_killed=reaped,
                requeued=lost,
            )
            async with asyncio.TaskGroup() as tasks:
                committer = tasks.create_task(self.committer.run())
                workers = [
                    tasks.create_task(self._schedule_loop()),
                    tasks.create_task(self._start_loop()),
                    tasks.create_task(self._resource_loop()),
                ]
                self._schedule.set()
                await self._stop.wait()
                log.info("node_stopping", running=len(self.executor.running()))
                await server.close()
                await self.executor.shutdown()  # ends report STOPPED: re-queued as lost
                for task in workers:
                    task.cancel()
                self.committer.close()
                await committer
        finally:
            if self._committer is not None:
                self._committer.shutdown()
            self._release_lock()
            log.info("node_stopped")

    def stop(self) -> None:
        self._stop.set()

    def _take_lock(self) -> None:
        self.paths.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.paths.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DaemonAlreadyRunningError(str(self.paths.root), _read_pid(self.paths.pid_file)) from None
        self._lock_fd = fd

    def _release_lock(self) -> None:
        for path in (self.paths.pid_file, self.paths.control_socket):
            path.unlink(missing_ok=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _requeue_in_flight(self) -> int:
        """Attempts the log says were in flight died with the previous daemon: run them again."""
        now = time.time()
        lost = [
            RequeueLost(j.id, j.attempt, "the daemon running it stopped", now)
            for j in self.table.open_jobs()
            if j.state in ACTIVE_STATES
        ]
        if lost:
            self.committer.enqueue(lost)
        return len(lost)

    # -- reacting to committed changes ----------------------------------------

    def _on_applied(self, changed: list[str]) -> None:
        for job_id in changed:
            job = self.table.get(job_id)
            if job is None:
                continue
            if job.state is JobState.ASSIGNED and job.node == self.node_id:
                if not self.executor.is_running(job.id, job.attempt):
                    self._to_start.append(job)
                    self._start_wakeup.set()
            elif job.state is JobState.CANCELLED and self.executor.is_running(job.id, job.attempt):
                self.executor.cancel(job.id, job.attempt)
            self._notify_followers(job_id)
        self._schedule.set()
        self._changed.set()
        self._changed = asyncio.Event()

    def _on_output(self, job_id: str, attempt: int) -> None:
        self._notify_followers(job_id)

    def _notify_followers(self, job_id: str) -> None:
        for event in self._job_events.get(job_id, ()):
            event.set()

    def _on_attempt_exit(self, result: AttemptResult) -> None:
        self.committer.enqueue(
            [
                FinishAttempt(
                    job_id=result.job_id,
                    attempt=result.attempt,
                    node_id=self.node_id,
                    exit_code=result.exit_code,
                    end=result.reason.value,
                    error=result.error,
                    output_tail=result.output_tail,
                    started_at=result.started_at,
                    finished_at=result.finished_at,
                )
            ]
        )

    async def _start_loop(self) -> None:
        """Start the processes of attempts committed to this node, in commit order."""
        while True:
            await self._start_wakeup.wait()
            self._start_wakeup.clear()
            batch, self._to_start = self._to_start, []
            for job in batch:
                if job.state is not JobState.ASSIGNED or self.executor.is_running(job.id, job.attempt):
                    continue
                spec = job.spec
                await self.executor.start(
                    AttemptSpec(job.id, job.attempt, spec.argv, dict(spec.env), spec.cwd, spec.timeout_s)
                )
                if self.executor.is_running(job.id, job.attempt):
                    self.committer.enqueue([StartAttempt(job.id, job.attempt, self.node_id, time.time())])

    async def _schedule_loop(self) -> None:
        """Place runnable jobs whenever something changed, or when a retry backoff ends."""
        while True:
            await self._wait_for_schedule()
            self._schedule.clear()
            now = time.time()
            placement = place(self.table, [self.capacity()], now)
            self.waiting_reasons = placement.waiting
            if placement.assignments:
                await self.committer.propose([AssignJobs(tuple(placement.assignments), now)])

    async def _wait_for_schedule(self) -> None:
        now = time.time()
        backoffs = [j.not_before for j in self.table.pending_jobs() if j.not_before > now]
        timeout = min(backoffs) - now if backoffs else None
        try:
            await asyncio.wait_for(self._schedule.wait(), timeout)
        except TimeoutError:
            pass

    async def _resource_loop(self) -> None:
        resources = self._resources()
        while True:
            await asyncio.sleep(RESOURCE_SAMPLE_INTERVAL_S)
            resources.sample()

    def capacity(self) -> NodeCapacity:
        last = self._resources().last
        identity = self._identity()
        return NodeCapacity(
            node_id=identity.node_id,
            name=identity.name,
            cpus=float(last.cpus),
            mem_bytes=last.mem_total,
        )

    # -- what the control server asks for -------------------------------------

    async def submit(self, specs: tuple[JobSpec, ...]) -> list[str]:
        """Durably record new jobs (idempotent by id); return their ids."""
        for spec in specs:
            validate_spec(spec)
            existing = self.table.get(spec.id)
            if existing is not None and existing.spec != spec:
                raise JobAlreadyExistsError(f"job id {spec.id} is taken by a different job")
        await self.committer.propose([SubmitJobs(specs, time.time())])
        return [s.id for s in specs]

    async def cancel(self, job_ids: list[str]) -> None:
        open_ids = tuple(j for j in job_ids if (job := self.table.get(j)) and not job.state.is_terminal)
        if open_ids:
            await self.committer.propose([CancelJobs(open_ids, "cancelled by user", time.time())])

    def job_view(self, job: Job, *, with_output: bool = False) -> dict[str, Any]:
        view = job.view(with_output=with_output)
        waiting = self.waiting_reasons.get(job.id)
        if waiting and job.state is JobState.PENDING:
            view["reason"] = "waiting_resources"
            view["message"] = waiting
        return view

    async def wait_changed(self, timeout_s: float | None) -> None:
        """Return after the next committed change (or the timeout)."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout_s)
        except TimeoutError:
            pass

    def job_event(self, job_id: str) -> asyncio.Event:
        """An event set on any output or state change of ``job_id`` (for followers)."""
        event = asyncio.Event()
        self._job_events.setdefault(job_id, set()).add(event)
        return event

    def release_job_event(self, job_id: str, event: asyncio.Event) -> None:
        followers = self._job_events.get(job_id)
        if followers is not None:
            followers.discard(event)
            if not followers:
                del self._job_events[job_id]

    def status(self) -> dict[str, Any]:
        identity = self._identity()
        last = self._resources().last
        node = {
            "id": identity.node_id,
            "name": identity.name,
            "address": f"{self.config.bind}:{self.config.port}",
            "role": "leader",
            "state": "alive",
            "cpus": last.cpus,
            "cpu_percent": last.cpu_percent,
            "load_1m": last.load_1m,
            "mem_total": last.mem_total,
            "mem_available": last.mem_available,
            "disk_free": last.disk_free,
            "running_jobs": len(self.executor.running()),
            "images": [],
        }
        return {
            "cluster_id": identity.cluster_id,
            "leader": identity.node_id,
            "term": 0,
            "quorum": {"healthy": True, "voters": [identity.node_id], "missing": []},
            "nodes": [node],
            "jobs": self.table.counts(),
            "state_dir": str(self.paths.root),
            "pid": os.getpid(),
            "uptime_s": time.monotonic() - self.started_monotonic,
        }


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
