"""Copies of job output on a second node, so that `swarm logs` outlives the node that ran a job.

Who keeps a copy: for each attempt that runs on another node, one live node pulls a copy of its
log as it is written: the node the job was submitted through (``Job.origin``) when it is alive
and is not the one running it, else the live member that ranks first for that attempt by a
rendezvous hash (``copy_holder``), so copies spread over the nodes. Every node computes the same
choice from the job table and gossip; when views differ for a moment, two nodes may both copy
(harmless) and the copy may start a little late (it catches up from the log, below). When the
holder dies, the next one starts from the beginning of the log.

How: the holder asks the running node for the log from the offset it has (``LogFetch`` over the
authenticated peer transport, the same message `swarm logs` uses from another node), with a long
poll: the running node answers as soon as the attempt writes more (or after ``COPY_WAIT_S``). So
the copy follows the output within a round trip, the job never waits for it (its output goes to
its own files whatever the copy does), at most one answer of ``FETCH_BYTES`` is in flight per
copy, and a copy that lags reads the rest from the log on disk: nothing is dropped. A copy is the
same three files as the log (``executor.logfile``) under ``output-copies/<job>/`` in the state
directory; it is complete once it holds the log's end record. A copy holds at most what the log
holds (the job's ``--max-output`` bound; plus ``SLACK_BYTES`` for swarm's own lines).

Reading: any node asked for an attempt's output reads it from the node that ran it while that
node is alive; once it is gone, from the best copy (``find_copy``: a complete one if any, else
the longest), its own or another live node's. A copy without its end record is said to be
incomplete (``api.streaming``).

Disk: copies follow the job records (the bounded history, ``--keep-jobs``/``--keep-history``):
when jobs leave the table, ``jobs_removed`` stops their copiers and deletes their copies, as the
daemon deletes its own output of them; ``sweep`` deletes, once a minute, the copies of jobs the
table no longer holds that were missed (removed while this node was down).

``SWARM_LOG_COPIES=off`` in a daemon's environment turns its copiers off (it still serves its logs
to others): for measuring what copies cost, not for use.

Measured. CPU, in one process on the 2-core machine (three runs): serving a 50 MB copy in 1 MiB
answers costs 54-71 ms (reading the log, encoding), receiving and writing it 38-54 ms, against
37-46 ms for writing the log itself; CurveZMQ's encryption in zmq's I/O threads comes on top.
Wall time (``benchmarks/log_copies.py``: a 50 MB job on two 3-node loopback clusters, one without
copies, alternate rounds, on that machine under a load average of 8 from other work): the job ran
2.89 s with copies and 2.83 s without (medians of 10; ranges 0.52-4.83 and 0.79-4.86 s), and in a
second series 1.75 s and 2.89 s (medians of 8): no difference shows through the noise. The copy
was complete 0.0-0.7 s after the job ended. Before the long poll waited ``FLUSH_S`` and a lagging
copier ``PACE_S`` (one answer per 64 KiB chunk), five rounds gave 3.0 s against 0.7 s.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from swarmcompute.errors import ExecutorError
from swarmcompute.executor.logfile import (
    DEFAULT_MAX_LOG_BYTES,
    END,
    LogFiles,
    attempt_log_path,
    log_state,
    read_chunks,
)
from swarmcompute.node.cluster_messages import LogData, LogFetch
from swarmcompute.state.job import Job, JobState, tail_is_whole

if TYPE_CHECKING:
    from swarmcompute.node.daemon import Daemon

log = structlog.get_logger(__name__)

COPY_WAIT_S = 1.0
"""A copier's long poll: the running node answers when there is more output, or after this."""
MAX_WAIT_S = 5.0
"""The longest long poll a node grants."""
FETCH_BYTES = 1024 * 1024
"""One answer to a copier (the most a node sends in one ``LogData``)."""
FLUSH_S = 0.1
"""A long poll is answered this long after new output, with all of it (up to ``FETCH_BYTES``)."""
PACE_S = 0.05
"""A copier that lags behind a running attempt asks again only this long after a full answer, so
that it never competes with the job's own output for the running node's loop."""
MAX_PARKED = 1024
"""Long polls a node holds at once; past that it answers at once."""
SLACK_BYTES = 1024 * 1024
"""What a copy may hold beyond the job's output bound: swarm's own lines, the index."""
RETRY_S = 0.5
"""After a fetch that got no answer (the running node is busy, or going)."""
GIVE_UP_TRIES = 10
"""Fetches without an answer (of up to 2 s each) before a copier of an ended attempt stops."""
SWEEP_INTERVAL_S = 60.0
SWEEP_QUIET_S = 600.0
"""A copy written to this recently is never swept (its job may be new to this replica)."""
RECONSIDER_INTERVAL_S = 10.0
"""How often every running job is looked at again (a holder that died, a restart)."""
MAX_COPYING = 128
"""Copiers that fetch at once; the others wait their turn (and then read from the log what the
attempt wrote meanwhile, or its whole log once it ended: one fetch). A node given 10,000 short
jobs at once otherwise had thousands of long polls in flight, and their resends every 0.25-2 s
while the busy nodes answered slowly were a fifth of the leader's CPU (py-spy)."""


def copy_holder(job_id: str, attempt: int, runner: str, origin: str, alive: Iterable[str]) -> str | None:
    """The node that keeps a copy of attempt ``attempt``'s log, run by ``runner``: the origin when
    it is alive and not the runner, else the live member other than the runner that ranks first by
    a rendezvous hash; None when no other node is alive."""
    others = [n for n in alive if n != runner]
    if origin and origin in others:
        return origin
    if not others:
        return None
    key = f"{job_id}/{attempt}/".encode()
    return max(others, key=lambda n: (zlib.crc32(key + n.encode()), n))


def copies_here(
    job_id: str, attempt: int, runner: str, origin: str, me: str, alive: Iterable[str], *, runner_gone: bool
) -> bool:
    """Whether node ``me`` copies the attempt's log: it did not run it, the runner is not gone (a
    merely suspected runner counts: a node busy for a moment, often one that just joined, misses
    a probe while its short job starts and ends; were its attempt skipped then, nothing would
    copy it later, as only running jobs are looked at again), and ``me`` is its holder among the
    live nodes (``copy_holder``)."""
    if not runner or runner == me or runner_gone:
        return False
    return copy_holder(job_id, attempt, runner, origin, alive) == me


class LogCopies:
    """This node's side of the copies: the copiers it runs, and the logs it serves to others."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._output_dir = daemon.paths.job_output_dir
        self._copies_dir = daemon.paths.job_copies_dir
        self._tasks: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._copying = asyncio.Semaphore(MAX_COPYING)
        self._done: dict[tuple[str, int], None] = {}  # recently finished copiers (bounded, oldest first)
        self._parked: set[str] = set()
        self._next_sweep = time.monotonic() + SWEEP_INTERVAL_S
        self._next_reconsider = 0.0
        self._closed = False
        self._enabled = os.environ.get("SWARM_LOG_COPIES", "on") != "off"

    # -- paths -----------------------------------------------------------------------------

    def copy_path(self, job_id: str, attempt: int) -> Path:
        """The index of this node's copy of an attempt's log (``executor.logfile`` format)."""
        return attempt_log_path(self._copies_dir, job_id, attempt)

    def _held_path(self, job_id: str, attempt: int) -> Path | None:
        """This node's log of the attempt: its own output if it ran it, else its copy; None if neither."""
        for root in (self._output_dir, self._copies_dir):
            path = attempt_log_path(root, job_id, attempt)
            if path.exists():
                return path
        return None

    # -- serving ---------------------------------------------------------------------------

    def serve(self, sender: str, msg: LogFetch) -> None:
        """Another node reads an attempt's log held here (its own output, or a copy)."""
        reply = self._reply(msg)
        if reply.chunks or reply.complete or msg.wait_s <= 0:
            self._daemon.link.send_to(sender, reply)
            return
        if msg.request_id in self._parked:
            return  # a resend of a long poll we hold
        if len(self._parked) >= MAX_PARKED or not self._daemon.executor.is_running(msg.job_id, msg.attempt):
            self._daemon.link.send_to(sender, reply)
            return
        self._parked.add(msg.request_id)
        asyncio.get_running_loop().create_task(self._park(sender, msg))

    def _reply(self, msg: LogFetch) -> LogData:
        pull = self._daemon.executor.pull_progress(msg.job_id, msg.attempt)  # its image's pull, if any
        # What it uses now, only for an ask of no bytes (`swarm show` of a running job): a /proc scan
        usage = self._daemon.executor.usage_now(msg.job_id, msg.attempt) if msg.max_bytes <= 0 else None
        try:
            path = self._held_path(msg.job_id, msg.attempt)
            if path is None:
                return LogData(msg.request_id, (), msg.offset, found=False, pull=pull, usage=usage)
            size, complete = log_state(path)
            if msg.max_bytes <= 0:  # asked only for the pull, or what it uses now
                return LogData(msg.request_id, (), msg.offset, size=size, complete=complete, pull=pull, usage=usage)
            chunks, offset = read_chunks(path, msg.offset, limit_bytes=min(msg.max_bytes, FETCH_BYTES))
        except (FileNotFoundError, ExecutorError, ValueError):
            return LogData(msg.request_id, (), msg.offset, found=False, pull=pull, usage=usage)
        return LogData(msg.request_id, tuple(chunks), offset, size=size, complete=complete, pull=pull)

    async def _park(self, sender: str, msg: LogFetch) -> None:
        """Answer a long poll ``FLUSH_S`` after the attempt wrote more (so that one answer carries
        what it wrote meanwhile), at once when it ended, or when the wait is over."""
        daemon = self._daemon
        event = daemon.job_event(msg.job_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(msg.wait_s, MAX_WAIT_S)
        flush_at: float | None = None
        try:
            while True:
                event.clear()
                now = loop.time()
                running = daemon.executor.is_running(msg.job_id, msg.attempt)
                if flush_at is None:
                    reply = self._reply(msg)
                    if reply.chunks or reply.complete:
                        flush_at = now + FLUSH_S
                    elif not running or now >= deadline:
                        daemon.link.send_to(sender, reply)
                        return
                if flush_at is not None and (now >= flush_at or not running):
                    daemon.link.send_to(sender, self._reply(msg))
                    return
                try:
                    await asyncio.wait_for(event.wait(), (flush_at or deadline) - now)
                except TimeoutError:
                    pass
        finally:
            self._parked.discard(msg.request_id)
            daemon.release_job_event(msg.job_id, event)

    # -- deciding what to copy -------------------------------------------------------------

    def applied(self, changed: Iterable[str]) -> None:
        """Committed changes to these jobs: start copiers this node should run."""
        if self._closed or not self._enabled:
            return
        table = self._daemon.table
        alive: list[str] | None = None
        for job_id in changed:
            job = table.get(job_id)
            if job is None or job.attempt == 0 or job.state is JobState.ASSIGNED and job.attempt == 1:
                continue
            if alive is None:
                alive = self._alive()
            self._consider(job, alive)

    def members_changed(self) -> None:
        """A node came or went: holders may have changed."""
        self._next_reconsider = 0.0

    def maintenance(self) -> None:
        """Once a second: look at every running job now and then; sweep copies now and then."""
        if self._closed:
            return
        now = time.monotonic()
        if now >= self._next_reconsider and self._enabled:
            self._next_reconsider = now + RECONSIDER_INTERVAL_S
            table = self._daemon.table
            alive = self._alive()
            for job in table.active_jobs():  # O(assigned or running), not O(every open job)
                if job.state is JobState.RUNNING:
                    self._consider(job, alive)
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_INTERVAL_S
            self.sweep()

    def _alive(self) -> list[str]:
        daemon = self._daemon
        return [daemon.node_id] + [m.node_id for m in daemon.gossip.members() if daemon.node_alive(m.node_id)]

    def _consider(self, job: Job, alive: list[str]) -> None:
        """Copy the job's running attempt; an ended one only if the job record does not hold all of
        its output (``tail_is_whole``: the record counts the output and the tail holds that much;
        so a short job that ended before its start was even committed costs no copy, while one
        whose record does not say, or whose tail was lost, is copied); and the attempt before it,
        whose tail the record no longer holds."""
        me = self._daemon.node_id
        n = job.attempt
        if job.state is JobState.RUNNING or (job.state is not JobState.ASSIGNED and not tail_is_whole(job)):
            self._maybe_copy(job, n, alive, me)
        if n >= 2:
            self._maybe_copy(job, n - 1, alive, me)

    def _maybe_copy(self, job: Job, n: int, alive: list[str], me: str) -> None:
        runner = job.node_of(n)
        key = (job.id, n)
        if not runner or key in self._tasks or key in self._done:
            return
        if not copies_here(job.id, n, runner, job.origin, me, alive, runner_gone=self._daemon.node_gone(runner)):
            return
        self._tasks[key] = asyncio.get_running_loop().create_task(self._copy(job.id, n, runner))

    # -- copying ---------------------------------------------------------------------------

    async def _copy(self, job_id: str, n: int, runner: str) -> None:
        """Run one copier; once it has all there is to copy, the attempt is never looked at again
        (a copier that stopped short, its runner seemingly gone, may be started again later: it
        goes on from what the copy holds)."""
        key = (job_id, n)
        files: LogFiles | None = None
        finished = False
        try:
            async with self._copying:
                files, finished = await self._copy_from(job_id, n, runner)
        except asyncio.CancelledError:
            raise
        except OSError as exc:  # disk trouble here: the copy stays incomplete, and says so when read
            log.warning("log_copy_failed", job_id=job_id, attempt=n, error=str(exc))
        except Exception:
            log.exception("log_copy_crashed", job_id=job_id, attempt=n)
        finally:
            if files is not None:
                files.close()
            self._tasks.pop(key, None)
            if finished:
                self._done[key] = None
                while len(self._done) > 10_000:
                    del self._done[next(iter(self._done))]

    async def _copy_from(self, job_id: str, n: int, runner: str) -> tuple[LogFiles | None, bool]:
        """Pull attempt ``n``'s log from ``runner`` until the copy is complete, the runner is gone
        or the job record is; returns the open files to close, and whether there is nothing more
        to copy (complete, or an ended attempt's whole log, end record or not)."""
        daemon = self._daemon
        path = self.copy_path(job_id, n)
        offset, complete = log_state(path)
        if complete:
            return None, True
        files: LogFiles | None = None
        held = sum(p.stat().st_size for p in path.parent.glob(f"attempt-{n}.std*")) if offset else 0
        misses = 0
        while not self._closed:
            job = daemon.table.get(job_id)
            if job is None:
                return files, True  # the record is gone: so will the copy be (``sweep``)
            if daemon.node_gone(runner):
                return files, False  # keep what we have; go on if it comes back while the job runs
            bound = (job.spec.max_output_bytes or DEFAULT_MAX_LOG_BYTES) + SLACK_BYTES
            ended = n < job.attempt or job.state not in (JobState.ASSIGNED, JobState.RUNNING)
            data = await daemon.link.fetch_log(
                runner, job_id, n, offset, wait_s=0.0 if ended else COPY_WAIT_S, max_bytes=FETCH_BYTES
            )
            if data is None:
                misses += 1
                if ended and misses >= GIVE_UP_TRIES:
                    return files, False
                await asyncio.sleep(RETRY_S)
                continue
            misses = 0
            if not data.found and ended:
                return files, True  # the attempt wrote nothing
            got = 0
            for stream, chunk in data.chunks:
                if files is None:
                    files = LogFiles(path, resume=True)
                files.append(stream, chunk)
                got += len(chunk)
                if stream == END:
                    return files, True
            held += got
            if held > bound:
                log.warning("log_copy_over_bound", job_id=job_id, attempt=n, bytes=held, bound=bound)
                return files, True
            offset = data.next_offset
            if not ended and got >= FETCH_BYTES // 2:
                await asyncio.sleep(PACE_S)
            if not data.chunks:
                if ended:
                    return files, True  # an ended attempt's log without its end record: that is all
                if not data.found:
                    await asyncio.sleep(RETRY_S)  # running, no output yet, and it did not park us
        return files, False

    # -- reading copies ----------------------------------------------------------------------

    async def find_copy(self, job: Job, n: int) -> tuple[str, bool] | None:
        """The node holding the most of attempt ``n``'s log among this node and the live ones
        (a complete copy first, else the longest; this node's id for its own copy), and whether
        that copy is complete; None if there is none."""
        daemon = self._daemon
        me = daemon.node_id
        runner = job.node_of(n)
        size, complete = log_state(self.copy_path(job.id, n))
        if complete:
            return me, True
        best: tuple[bool, int, str] | None = (False, size, me) if size else None
        others = [m for m in self._alive() if m not in (me, runner)]
        answers = await asyncio.gather(*(daemon.link.fetch_log(o, job.id, n, 0, max_bytes=1) for o in others))
        for node, data in zip(others, answers, strict=True):
            if data is None or not data.found:
                continue
            ranked = (data.complete, data.size, node)
            if best is None or ranked[:2] > best[:2] or (ranked[:2] == best[:2] and node == job.origin):
                best = ranked
        return None if best is None else (best[2], best[0])

    # -- disk ------------------------------------------------------------------------------

    def sweep(self) -> int:
        """Delete the copies of jobs the table no longer holds; returns how many. Only while this
        replica is caught up, and never a copy written to in the last ``SWEEP_QUIET_S``."""
        daemon = self._daemon
        raft = daemon.committer.raft
        node = raft.node
        if raft.leader_id is None or raft.applied_index < node.commit:
            return 0
        try:
            entries = list(os.scandir(self._copies_dir))
        except FileNotFoundError:
            return 0
        removed = 0
        now = time.time()
        for entry in entries:
            if daemon.table.get(entry.name) is not None or not entry.is_dir(follow_symlinks=False):
                continue
            try:
                newest = max((f.stat().st_mtime for f in Path(entry.path).iterdir()), default=0.0)
            except OSError:
                continue
            if now - newest < SWEEP_QUIET_S:
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            removed += 1
        if removed:
            log.info("log_copies_swept", removed=removed)
        return removed

    def jobs_removed(self, job_ids: list[str]) -> None:
        """Jobs left the table (``Daemon.on_jobs_removed``): stop their copiers, delete their copies
        (in a thread: there may be thousands)."""
        gone = set(job_ids)
        for key, task in list(self._tasks.items()):
            if key[0] in gone:
                task.cancel()
        asyncio.get_running_loop().run_in_executor(None, _delete_copies, self._copies_dir, sorted(gone))

    def close(self) -> None:
        """Stop every copier (the daemon stops); copies on disk stay, and resume after a restart."""
        self._closed = True
        for task in list(self._tasks.values()):
            task.cancel()


def _delete_copies(copies_dir: Path, job_ids: list[str]) -> None:
    for job_id in job_ids:
        if job_id and "/" not in job_id and job_id not in (".", ".."):
            shutil.rmtree(copies_dir / job_id, ignore_errors=True)
