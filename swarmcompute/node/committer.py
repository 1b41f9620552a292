"""Job commands through the Raft log: durable, ordered, replicated application.

``propose`` resolves once the commands are committed and applied to the job
table here, in log order. Commands proposed in the same loop turn travel in
one entry (``CommandBatch``), so a burst of submissions costs one fsync. A
single node is a one-voter cluster that elects itself at once; a cluster runs
the very same path.

Entries the durable state already calls committed are applied during
``open`` with ``on_applied`` silenced: a restart rebuilds the table without
re-reacting to history.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import structlog

from swarmcompute import codec
from swarmcompute.errors import (
    DiskFullError,
    FrameTooLargeError,
    NoQuorumError,
    NotLeaderError,
    StorageError,
    SwarmError,
)
from swarmcompute.limits import MAX_COMMAND_BYTES
from swarmcompute.node.cluster_messages import ForwardCommands, ForwardReply
from swarmcompute.node.raft_host import COMPACT_AFTER_ENTRIES, RaftHost
from swarmcompute.raft.config import RaftConfig
from swarmcompute.raft.messages import Entry, EntryKind, Message, Snapshot, epoch_of
from swarmcompute.state.commands import Command, CommandBatch, FinishAttempt, SubmitJobs, decided_in, own_results
from swarmcompute.state.compact import WINDOW
from swarmcompute.state.snapshot import restore_table, snapshot_of, table_parts
from swarmcompute.state.table import JobTable, halves, too_big_to_cut
from swarmcompute.storage.details import Details
from swarmcompute.transport.ratelimit import LogLimiter

log = structlog.get_logger(__name__)
_too_large = LogLimiter(burst=1, window_s=60.0)

MAX_BATCH_COMMANDS = 4096
MAX_BATCH_BYTES = 4 * 1024 * 1024
"""...and about this many bytes (``command_bytes``) in one entry, or one forward to the leader; one
command bigger still goes alone, and ``propose`` cuts a submission bigger than this where its jobs
may be split. The peer transport carries 16 MiB a message: 4,096 ends of attempts with a 4 KiB
output tail each were a 17 MB entry, as were three submissions of 1,000 jobs with an 8 KiB
environment each (7.9 MB apiece) that met in one batch, and no follower could be sent it (nor
anything after it)."""
COMPACT_AFTER_BYTES = 4 * 1024 * 1024
"""Also fold the log into a snapshot once the entries since the last one hold this many bytes, or
as many as that snapshot, if more (big batches: 100,000 submissions are a few entries, and
memory holds every entry since the last snapshot)."""
LEADER_WAIT_S = 10.0
"""How long queued commands wait for a leader before their proposers hear NoQuorumError."""
CLOSE_FLUSH_S = 5.0
FORWARD_RESEND_S = 1.0
"""A forward with no reply after this long is sent again, to whoever leads now."""
BATCH_PACE_S = 0.005
"""While an earlier batch is still in flight, the next one waits until this long after it (Nagle's
rule): under load, commands gather and share one entry, one fsync per node and one message per
peer instead of each paying for its own, while a lone `swarm run`, whose steps each wait for the
one before, never waits at all."""
SERVED_KEEP = 4096
"""Forwards a leader remembers having taken (``ServedForwards``): about a minute of them at
the 500 jobs/s a 3-node cluster reaches, far longer than the ``LEADER_WAIT_S`` a follower resends for."""
HOLD_MAX_S = 0.25
"""While the node works through a run of starts (``holding``), its own commands wait for the run's
end, but never longer than this: each entry costs every node a write, a decode and an apply."""


class ReplicatedJobLog:
    """The job table's commit path. The daemon sees ``propose``/``enqueue`` and ``on_applied``."""

    def __init__(
        self,
        node_id: str,
        directory: Path,
        table: JobTable,
        on_applied: Callable[[list[str]], None],
        *,
        send_to: Callable[[str, object], bool] | None = None,
        config: RaftConfig | None = None,
        tick_interval_s: float = 0.1,
        rng: random.Random | None = None,
        compact_after_entries: int = COMPACT_AFTER_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        request_id: Callable[[], str] = lambda: os.urandom(8).hex(),
        details: Details | None = None,
        whole_window: int = WINDOW,
        compact_after_bytes: int = COMPACT_AFTER_BYTES,
    ) -> None:
        self.node_id = node_id
        self._clock = clock
        """Times forwards (``time.monotonic``; the simulator's own clock there)."""
        self._wall_clock = wall_clock
        """Stamps the entries this node proposes as leader (``CommandBatch.at``)."""
        self._request_id = request_id
        self._table = table
        self._compact_after_entries = compact_after_entries
        self._details = details
        self._whole_window = whole_window
        """Finished jobs the table keeps whole after their details were written (``state.compact``)."""
        """Where finished jobs' details go (``storage.details``); None: the table keeps them whole."""
        self._compact_after_bytes = compact_after_bytes
        self._log_bytes = 0
        """Bytes of the entries applied since the last snapshot (``COMPACT_AFTER_BYTES``)."""
        self._snapshot_bytes = 0
        self._on_applied = on_applied
        self._send_to = send_to
        self.served = ServedForwards()
        """The followers' forwards this node took as leader: a resend is not committed twice."""
        self._sizes: dict[int, tuple[Command, int]] = {}
        """Queued submissions' sizes, measured once by ``propose`` (``_take`` pops them)."""
        self.raft = RaftHost(
            node_id,
            directory,
            send=self._send_raft,
            apply=self._apply_entry,
            restore=self._restore,
            config=config,
            tick_interval_s=tick_interval_s,
            rng=rng,
        )
        self.raft.on_stall = self._raft_stalled
        self.on_stall: Callable[[StorageError | None], None] | None = None
        """Told when the Raft log cannot be written (the error), and when it can again (None)."""
        self.on_compacted: Callable[[], None] | None = None
        """Told after the log was folded into a snapshot (the daemon gives the freed heap back)."""
        self.on_restored: Callable[[], None] | None = None
        """Told after a snapshot from the leader replaced the table (``node.details_backfill``)."""
        self.on_new_epoch: Callable[[int], None] | None = None
        """Called with the epoch when this node applies the configuration `swarm recover` forced
        (the first entry of a newer epoch), outside the replay at start: what it reported to the
        leader of the epoch before may have been committed only in the history that was given up."""
        self._applied_epoch = 0
        self._queue: list[tuple[Command, asyncio.Future[None] | None]] = []
        self._waiting: dict[int, tuple[int, list[asyncio.Future[None]]]] = {}
        self._wakeup = asyncio.Event()
        self._replaying = True
        self._closed = False
        self._last_proposed = 0
        self._last_batch_at = 0.0
        self._holds = 0
        self._held_since = 0.0
        self._urgent = False
        """A client waits on a queued command, or the leader wants a plan: ``holding`` does not apply."""
        self._compact_scheduled = False
        self._restores = 0
        self._forwarded: dict[str, _Forward] = {}
        self._until_applied: list[tuple[int, list[asyncio.Future[None]]]] = []
        self._serving: set[asyncio.Task[None]] = set()
        self.boot_index = 0
        """The last log index when this life opened the log: an entry at or below it may have been
        acted on by an earlier life of this daemon, so it must not start processes again."""
        self.applying_index = 0
        self.plan: Callable[[Sequence[Command], float], list[Command]] | None = None
        """On the leader, called with each batch about to be proposed; what it returns rides in the
        same entry (the scheduler's placements, computed with the capacity the batch frees)."""
        self.last_planned_index = 0
        """The index of the last entry that carried commands from ``plan``."""
        self._plan_wanted = False
        self._own_batches: dict[int, tuple[bytes, CommandBatch]] = {}
        """index -> what this node proposed there, so the leader applies its own entries without
        decoding them again (valid only while the entry still holds those very bytes)."""
        """The index of the entry being applied, while ``on_applied`` runs."""

    def open(self, bootstrap_voters: Iterable[str] | None = None) -> int:
        """Load the Raft state and rebuild the table; return how many entries were applied."""
        self._replaying = True
        try:
            self.raft.open(bootstrap_voters)
            self.boot_index = self.raft.status().last_index
            self.raft.elect_self_if_alone()
        finally:
            self._replaying = False
        return self.raft.applied_index

    async def propose(self, commands: Sequence[Command]) -> None:
        """Return once ``commands`` are committed and applied here."""
        loop = asyncio.get_running_loop()
        futures = []
        pieces = [p for cmd in commands for p in self._within_batch(cmd)]  # raises before any is queued
        for piece in pieces:
            fut: asyncio.Future[None] = loop.create_future()
            self._queue.append((piece, fut))
            futures.append(fut)
        self._urgent = True
        self._wakeup.set()
        await asyncio.gather(*futures)

    def _within_batch(self, cmd: Command) -> list[Command]:
        """``cmd``, or a submission over ``MAX_BATCH_BYTES`` in pieces under it, in order, where its
        jobs may be split (``state.table.halves``: not those that wait on each other, nor a gang's);
        their sizes are kept for ``_take``."""
        size = command_bytes(cmd)
        if size > MAX_BATCH_BYTES and isinstance(cmd, SubmitJobs):
            pieces = halves(cmd.jobs)
            if len(pieces) > 1:
                return [p for half in pieces for p in self._within_batch(replace(cmd, jobs=half))]
        if size > MAX_COMMAND_BYTES:
            over = f"{size / 2**20:.1f} MiB in the log, over the {MAX_COMMAND_BYTES / 2**20:.1f} MiB a node can send the others"
            jobs = cmd.jobs if isinstance(cmd, SubmitJobs) else ()
            raise FrameTooLargeError(
                too_big_to_cut(jobs, over) if jobs else f"a {type(cmd).__name__} command is {over}"
            )
        if isinstance(cmd, SubmitJobs):
            self._sizes[id(cmd)] = (cmd, size)
        return [cmd]

    def _take(self) -> list[tuple[Command, asyncio.Future[None] | None]]:
        """The queue's head for one batch: up to ``MAX_BATCH_COMMANDS`` commands and about
        ``MAX_BATCH_BYTES``, one at least."""
        n = total = 0
        for cmd, _ in self._queue[:MAX_BATCH_COMMANDS]:
            known = self._sizes.pop(id(cmd), None)
            total += known[1] if known is not None and known[0] is cmd else command_bytes(cmd)
            if total > MAX_BATCH_BYTES and n:
                break
            n += 1
        batch = self._queue[:n]
        del self._queue[:n]
        self._urgent = bool(self._queue) and self._urgent
        return batch

    def request_plan(self) -> None:
        """Run ``plan`` at the next batch, even if nothing else is queued (the leader only)."""
        self._plan_wanted = self._urgent = True
        self._wakeup.set()

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """Keep this node's own commands (its attempts' results and notices) for one entry while
        the node works through a run it breaks into slices (``Daemon._start_loop``), up to
        ``HOLD_MAX_S``; what a client or the leader's plan waits for goes as always. Measured, 500
        `true` jobs on 3 loopback nodes: each turn the start loop gave the event loop let a
        follower forward the results so far, 6-8 forwards and 9-12 entries a batch against 2-3
        and 4 when nothing gave turns; holding, 4 and 6-8."""
        if not self._holds:
            self._held_since = self._clock()
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1
            if not self._holds:
                self._wakeup.set()

    def _held_for(self) -> float | None:
        """How much longer the queued commands wait for ``holding``'s end; None: they go now."""
        if not self._holds or self._urgent or self._closed:
            return None
        left = HOLD_MAX_S - (self._clock() - self._held_since)
        return left if left > 0 else None

    def enqueue(self, commands: Sequence[Command]) -> None:
        """Propose without waiting (executor callbacks, the scheduler)."""
        self._queue.extend((cmd, None) for cmd in commands)
        self._wakeup.set()

    async def run(self, *, tick: bool = True) -> None:
        """Turn queued commands into entries until ``close``; also tick Raft unless the caller does."""
        if not tick:
            await self._proposal_loop()
            return
        ticker = asyncio.create_task(self.raft.run(), name="raft-ticker")
        try:
            await self._proposal_loop()
        finally:
            ticker.cancel()
            try:
                await ticker
            except asyncio.CancelledError:
                pass

    def close(self) -> None:
        """Finish: commit what is queued (bounded), then stop."""
        self._closed = True
        self._wakeup.set()

    def shutdown(self) -> None:
        """Release the durable log (after ``run`` returned)."""
        self.raft.close()

    # -- proposals -----------------------------------------------------------------

    async def _proposal_loop(self) -> None:
        while True:
            if self._forwarded:
                self.check_forwards()
            if not self._queue and not (self._plan_wanted and self.raft.is_leader):
                if self._closed:
                    await self._wait_applied(self._last_proposed, CLOSE_FLUSH_S)
                    return
                await self._woken(FORWARD_RESEND_S / 2 if self._forwarded else None)
                continue
            held = self._held_for()
            if held is not None:
                await self._woken(held)
                continue
            since = time.monotonic() - self._last_batch_at
            if since < BATCH_PACE_S and not self._closed and self._in_flight():
                await asyncio.sleep(BATCH_PACE_S - since)
            self._last_batch_at = time.monotonic()
            if not self.raft.is_leader:
                self._plan_wanted = False
                if not self._queue:
                    continue
                leader = self.raft.leader_id
                if leader is not None and leader != self.raft.node_id and self._send_to is not None:
                    self._forward(leader)
                    continue
                await self._wait_for_leader()
                continue
            proposed = self.propose_batch()
            if proposed is None:
                continue
            if not proposed:
                await self.raft.wait_leader_change(FORWARD_RESEND_S / 4)
                continue
            await asyncio.sleep(0)  # let this turn's other proposals join the next batch

    async def _woken(self, timeout_s: float | None) -> None:
        """Wait for the next ``_wakeup`` (a proposal, a plan wanted, a hold's end), or ``timeout_s``."""
        self._wakeup.clear()
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout_s)
        except TimeoutError:
            pass

    def propose_batch(self) -> bool | None:
        """On the leader: the queued commands (and the placements that ride with them) as one
        entry. True: proposed; None: nothing to propose; False: not the leader after all (the
        commands wait in the queue: leadership is moving, a transfer or a step-down)."""
        batch = self._decided_here(self._take(), self.raft.node.term)
        commands = [cmd for cmd, _ in batch]
        self._plan_wanted = False
        at = self._wall_clock()
        planned = self.plan(commands, at) if self.plan is not None else []
        if not commands and not planned:
            return None
        proposed = CommandBatch(tuple(commands + planned), at)
        data = codec.encode(proposed)
        try:
            index, term = self.raft.propose(data)
        except NotLeaderError:
            self._queue[:0] = batch
            return False
        self._last_proposed = index
        replaced = self._own_batches.get(index)
        if replaced is not None:
            # This node proposed here before, in an earlier term, and that entry was cut from its
            # log before it applied it (its results never reached the table). Overwritten here
            # unseen, they were lost: found by the whole-cluster simulator, seed 5175 (a leader,
            # cut off, proposed its job's end, led again later, and the job stayed "running").
            self._keep(own_results(replaced[1], self.node_id))
        self._own_batches[index] = (data, proposed)
        if planned:
            self.last_planned_index = index
        futures = [fut for _, fut in batch if fut is not None]
        if futures:
            self._waiting[index] = (term, futures)
        return True

    def _in_flight(self) -> bool:
        """Whether an earlier batch is still on its way (not applied here, or not answered)."""
        if self.raft.is_leader:
            return self.raft.applied_index < self._last_proposed
        return bool(self._forwarded)

    # -- forwarding to the leader ---------------------------------------------------

    def _decided_here(
        self, batch: list[tuple[Command, asyncio.Future[None] | None]], term: int
    ) -> list[tuple[Command, asyncio.Future[None] | None]]:
        """``batch`` less a leader's decisions of another term (never proposed by, or forwarded
        to, a later leader: see ``RequeueLost.leader_term``)."""
        kept = [(cmd, fut) for cmd, fut in batch if decided_in(cmd, term)]
        if len(kept) < len(batch):
            log.info("stale_leader_decisions_dropped", count=len(batch) - len(kept), term=term)
        return kept

    def _forward(self, leader: str) -> None:
        """Hand the queued commands to the leader; ``forward_reply`` resolves them."""
        batch = self._decided_here(self._take(), -1)
        if not batch:
            return
        forward = _Forward(
            ForwardCommands(self._request_id(), tuple(cmd for cmd, _ in batch)),
            [fut for _, fut in batch if fut is not None],
            self._clock() + LEADER_WAIT_S,
            [cmd for cmd, fut in batch if fut is None],
        )
        self._forwarded[forward.msg.request_id] = forward
        self._resend(forward, leader)

    def _resend(self, forward: _Forward, leader: str) -> None:
        forward.sent_at = self._clock()
        if self._send_to is None:
            return
        try:
            self._send_to(leader, forward.msg)
        except FrameTooLargeError as exc:
            # Commands are bounded (``MAX_COMMAND_BYTES``) and batches too, so this is a bug; it
            # fails what waits on the forward rather than the daemon (raised, it stopped it).
            del self._forwarded[forward.msg.request_id]
            log.error("forward_too_large", commands=len(forward.msg.commands), error=str(exc))
            _fail(forward.futures, FrameTooLargeError(f"the commands could not be sent to the leader: {exc}"))

    def check_forwards(self) -> None:
        """Resend forwards whose reply is late (to the current leader); fail the expired ones."""
        now = self._clock()
        for request_id, forward in list(self._forwarded.items()):
            if now > forward.deadline:
                del self._forwarded[request_id]
                _fail(forward.futures, NoQuorumError("the leader did not confirm the commands in time: try again"))
                self._keep(forward.internal)
            elif now - forward.sent_at > FORWARD_RESEND_S:
                leader = self.raft.leader_id
                if leader is not None and leader != self.raft.node_id:
                    self._resend(forward, leader)
                elif self.raft.is_leader:  # we lead now ourselves: propose them locally
                    del self._forwarded[request_id]
                    self._requeue_locally(forward)

    def _requeue_locally(self, forward: _Forward) -> None:
        """Queue a forward's commands here; the last one's commit settles the forward's waiters."""
        if not forward.futures:  # nobody waits: no marker (nor a running loop) needed
            self._queue.extend((cmd, None) for cmd in forward.msg.commands)
            self._wakeup.set()
            return
        *head, last = forward.msg.commands
        marker: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.extend((cmd, None) for cmd in head)
        self._queue.append((last, marker))
        marker.add_done_callback(lambda done: _settle(forward.futures, done))
        self._urgent = True
        self._wakeup.set()

    def forward_reply(self, reply: ForwardReply) -> None:
        forward = self._forwarded.pop(reply.request_id, None)
        if forward is None:
            return  # a duplicate reply, or one for a forward that already expired
        if reply.error_kind:
            from swarmcompute.api.messages import ErrorReply
            from swarmcompute.client import error_from_reply  # the same rebuild the CLI uses

            _fail(forward.futures, error_from_reply(ErrorReply(reply.error_kind, reply.error)))
            return
        if self.raft.applied_index >= reply.applied_index:
            _fail(forward.futures, None)
        else:
            self._until_applied.append((reply.applied_index, forward.futures))

    def serve_forward(self, sender: str, msg: ForwardCommands) -> None:
        """On the leader: commit a follower's commands, then tell it the index to wait for."""
        task = asyncio.get_running_loop().create_task(self._serve_forward(sender, msg))
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    async def _serve_forward(self, sender: str, msg: ForwardCommands) -> None:
        if not self.raft.is_leader:
            return  # the follower resends to whoever leads next
        new, answered = self.served.first(sender, msg.request_id)
        if not new:  # a resend (``ServedForwards``): answered again once committed, else dropped
            if answered is not None and self._send_to is not None:
                self._send_to(sender, ForwardReply(msg.request_id, answered))
            return
        try:
            await self.propose(list(msg.commands))
            reply = ForwardReply(msg.request_id, self.raft.applied_index)
            self.served.committed(sender, msg.request_id, reply.applied_index)
        except NotLeaderError:
            self.served.failed(sender, msg.request_id)
            return  # the follower resends to whoever leads next
        except SwarmError as exc:
            self.served.failed(sender, msg.request_id)
            reply = ForwardReply(msg.request_id, 0, type(exc).__name__, str(exc))
        if self._send_to is not None:
            self._send_to(sender, reply)

    def _raft_stalled(self, error: StorageError | None, synced_last: int) -> None:
        """The Raft log could not be written: entries past ``synced_last`` are gone for good (they
        were never sent, and a later entry there has a later term), so their proposers hear
        ``DiskFullError`` and this node's own results in them are queued again."""
        if error is not None:
            refusal = DiskFullError(str(error))
            for index in [i for i in self._waiting if i > synced_last]:
                _fail(self._waiting.pop(index)[1], refusal)
            for index in [i for i in self._own_batches if i > synced_last]:
                self._keep(own_results(self._own_batches.pop(index)[1], self.node_id))
        self._wakeup.set()
        if self.on_stall is not None:
            self.on_stall(error)

    async def _wait_for_stalled_log(self) -> None:
        """While this node cannot write its log and knows no other leader: client commands fail
        with ``DiskFullError`` at once, the node's own results wait for the disk."""
        stalled = self.raft.stalled
        if stalled is None:
            return
        refusal = DiskFullError(str(stalled))
        _fail([fut for _, fut in self._queue if fut is not None], refusal)
        internal = [cmd for cmd, fut in self._queue if fut is None]
        self._queue.clear()
        if self._closed:  # stopping: a restart re-queues what ran here as lost
            if internal:
                log.error("commands_not_committed_at_shutdown", count=len(internal), reason=str(stalled))
            return
        self._queue.extend((cmd, None) for cmd in internal)
        await self.raft.wait_leader_change(0.5)

    async def _wait_for_leader(self) -> None:
        """A one-voter cluster elects itself at once; otherwise wait, bounded, then fail the waiters."""
        if self.raft.stalled is not None:
            await self._wait_for_stalled_log()
            return
        if self.raft.elect_self_if_alone():
            return
        deadline = time.monotonic() + (CLOSE_FLUSH_S if self._closed else LEADER_WAIT_S)
        while self.raft.leader_id is None and time.monotonic() < deadline:
            await self.raft.wait_leader_change(min(deadline - time.monotonic(), 0.5))
        if self.raft.leader_id is None and self._closed:
            lost = [cmd for cmd, _ in self._queue]
            _fail([fut for _, fut in self._queue if fut is not None], NoQuorumError("the node is stopping"))
            self._queue.clear()
            log.error("commands_not_committed_at_shutdown", count=len(lost))
            return
        if self.raft.leader_id is None:
            error = NoQuorumError(
                "no leader could be elected: a majority of voters is unreachable (`swarm status` names them;"
                " if they are gone for good: swarm recover)"
            )
            for _, fut in self._queue:
                if fut is not None and not fut.done():
                    fut.set_exception(error)
            internal = [cmd for cmd, fut in self._queue if fut is None]
            self._queue.clear()
            self._keep(internal)

    def _keep(self, commands: list[Command]) -> None:
        """Commands the node itself produced (results of attempts, lost attempts, placements)
        are never dropped: a job whose result is lost would stay "running" forever. They
        wait, in order, for the next leader. Client requests fail instead, so the client
        can decide (and retry idempotently)."""
        if commands:
            log.warning("commands_waiting_for_leader", count=len(commands))
            self._queue[:0] = [(cmd, None) for cmd in commands]

    async def drain(self, timeout_s: float) -> bool:
        """Wait (bounded) until every queued and forwarded command is committed and applied here,
        e.g. the ends of the attempts a stopping node just stopped; True if it got there."""
        deadline = time.monotonic() + timeout_s
        while self._queue or self._forwarded or self._until_applied or self.raft.applied_index < self._last_proposed:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(0.02, left))
        return True

    async def _wait_applied(self, index: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.raft.applied_index < index and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    # -- applying --------------------------------------------------------------------

    def _apply_entry(self, entry: Entry) -> None:
        changed: list[str] = []
        own = self._own_batches.pop(entry.index, None) if self._own_batches else None
        if own is not None and own[0] is not entry.data:
            # This node proposed another entry here as leader, and a later leader's entry replaced
            # it: the results of its own attempts in it must not vanish with it.
            self._keep(own_results(own[1], self.node_id))
            self._wakeup.set()
        if entry.kind is EntryKind.CONFIG and epoch_of(entry.term) > self._applied_epoch:
            self._applied_epoch = epoch_of(entry.term)
            if not self._replaying and self.on_new_epoch is not None:
                self.on_new_epoch(self._applied_epoch)
        if entry.kind is EntryKind.NORMAL:
            try:
                batch = own[1] if own is not None and own[0] is entry.data else codec.decode(entry.data)
            except Exception as exc:  # an entry from a newer version, say: skip it loudly, everywhere alike
                log.error("raft_entry_unreadable", index=entry.index, error=str(exc))
                batch = None
            if isinstance(batch, CommandBatch):
                at = batch.at
                for cmd in batch.commands:
                    changed.extend(self._table.apply(cmd, at))
                if self._details is not None:
                    self._keep_details(self._details, changed)
        self._log_bytes += len(entry.data)
        waiting = self._waiting.pop(entry.index, None)
        if waiting is not None:
            term, futures = waiting
            for fut in futures:
                if fut.done():
                    continue
                if term == entry.term:
                    fut.set_result(None)
                else:
                    fut.set_exception(NotLeaderError(self.raft.leader_id))
        if self._until_applied:
            applied = entry.index
            still = []
            for index, futures in self._until_applied:
                if index <= applied:
                    _fail(futures, None)
                else:
                    still.append((index, futures))
            self._until_applied = still
        if changed and not self._replaying:
            self.applying_index = entry.index
            self._on_applied(changed)
        if not self._compact_scheduled and (
            self.raft.applied_index + 1 - self._snapshot_base() > self._compact_after_entries
            or self._log_bytes > max(self._compact_after_bytes, self._snapshot_bytes)
        ):
            self._compact_scheduled = True
            asyncio.get_running_loop().call_soon(self._compact)

    def _snapshot_base(self) -> int:
        snapshot = self.raft.node.snapshot
        return snapshot.index if snapshot is not None else 0

    def _keep_details(self, details: Details, changed: list[str]) -> None:
        """After an entry: write the details of the jobs it finished (or changed once finished),
        delete those of the jobs it removed (``state.compact``, ``storage.details``)."""
        finished = self._table.take_finished(self._whole_window)
        if finished:
            details.write(finished)
        gone = [job_id for job_id in changed if job_id not in self._table]
        if gone:
            details.delete(gone)

    def _compact(self) -> None:
        """Runs outside the Ready loop: compaction must not happen between ready() and advance()."""
        task = asyncio.get_running_loop().create_task(self.compact())
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    async def compact(self) -> None:
        """Fold the applied log into a snapshot of the table, once the details of the jobs it
        finished are durable (the snapshot carries none, and the log that would replay them goes).

        The table's parts are taken in the loop, at the applied index (``table_parts``: each open
        job's record, each finished job's compact form); encoding them, the larger part (0.48 of
        1.0 s for 50,000 open jobs, in-process), and the finished jobs' segments run in a thread,
        and the log is folded at that index once it is done, unless a snapshot replaced the table
        meanwhile or a later compaction got there first. Encoded in the loop, the whole of it
        stalled every node's loop for 1.8-2.1 s at once (3 nodes, a 50,000-job backlog), past the
        election timeout; a thread holds the GIL from the loop at most a switch interval (5 ms)
        at a time."""
        try:
            if self._closed or (self._details is not None and not self._details.sync()):
                return  # a failed sync is logged; the log keeps its entries, and the next one tries again
            index, restores, log_bytes = self.raft.applied_index, self._restores, self._log_bytes
            parts = table_parts(self._table)
            data = await asyncio.to_thread(lambda: codec.encode(snapshot_of(parts)))
            if not self._closed and self._restores == restores and index > self._snapshot_base():
                self._fold(index, data, log_bytes)
        finally:
            self._compact_scheduled = False

    def _fold(self, index: int, data: bytes, log_bytes: int) -> None:
        """Fold the log up to ``index`` into ``data``, the table there (``log_bytes``: what the
        log had grown by then since the last snapshot)."""
        self.raft.compact(index, data)
        self._log_bytes, self._snapshot_bytes = max(self._log_bytes - log_bytes, 0), len(data)
        if self.on_compacted is not None:
            self.on_compacted()

    def _restore(self, snapshot: Snapshot) -> None:
        self._restores += 1  # a compaction under way was of the table this replaces
        for _data, batch in self._own_batches.values():  # committed or replaced: sending again is harmless
            self._keep(own_results(batch, self.node_id))
        self._own_batches.clear()
        self._wakeup.set()
        self._log_bytes, self._snapshot_bytes = 0, len(snapshot.data)
        self._applied_epoch = epoch_of(snapshot.term)  # 0 where a replaced history was dropped
        if snapshot.data:
            before = set() if self._replaying else {j.id for j in self._table.jobs()}
            restore_table(snapshot.data, into=self._table)
            if self._details is not None:  # the gone ones' details go; an old snapshot's whole jobs' come
                self._keep_details(self._details, sorted(before))
            if not self._replaying:
                kept = [j.id for j in self._table.jobs()]
                self._on_applied(kept + sorted(before.difference(kept)))  # the gone ones too
                if self.on_restored is not None:
                    self.on_restored()
        elif snapshot.index == 0 and len(self._table):
            # Raft dropped a history that `swarm recover` replaced: the table starts over from the
            # new epoch's log (see "Configuration epochs" in raft/core.py).
            gone = [j.id for j in self._table.jobs()]
            self._table.clear()
            if self._details is not None:
                self._details.delete(gone)
            # The new history is applied again from its start: up to where this node had applied
            # the old one, it may have acted on what it holds (started an attempt it assigns here),
            # so that part counts as an earlier life's (found by the whole-cluster simulator: a
            # node started attempt 1 a second time after `recover`, as attempt 2 was placed).
            self.boot_index = max(self.boot_index, self.applying_index)
            log.warning("job_table_replaced", jobs_dropped=len(gone))
            if not self._replaying:
                self._on_applied(gone)

    def _send_raft(self, msg: Message) -> None:
        if self._send_to is None:
            log.warning("raft_message_unsent", to=msg.dst, type=type(msg).__name__)
            return
        try:
            self._send_to(msg.dst, msg)
        except FrameTooLargeError as exc:
            # Dropped, as Raft lets any message be: raised, it would leave this Ready half done
            # and every later one refused the same way (appends are bounded by bytes,
            # ``RaftConfig.max_append_bytes``; only an entry near the transport's bound alone gets here).
            _too_large.warning(
                log, "raft_message_too_large", "raft", to=msg.dst, type=type(msg).__name__, error=str(exc)
            )


class ServedForwards:
    """The forwards a leader took, by sender and request id, so that one resent (a follower
    resends a forward left unanswered for ``FORWARD_RESEND_S``) is not committed again: while the
    first is being committed the resend is dropped (its reply comes when it commits), once it was,
    the resend is answered with the index it was applied at (the reply was lost). Under load,
    replies take over a second and about half of all attempts' ends were committed twice (a
    6,000-element array on 3 loopback nodes: 3,400 repeats); the table ignores a repeat, but each
    cost every node a log write, a decode and an apply. A leader that takes over does not know
    its predecessor's: a forward resent to it is committed again, and ignored again on apply."""

    def __init__(self, keep: int = SERVED_KEEP) -> None:
        self._keep = keep
        self._seen: OrderedDict[tuple[str, str], int | None] = OrderedDict()
        """(sender, request id) -> the applied index replied, None while being committed."""

    def first(self, sender: str, request_id: str) -> tuple[bool, int | None]:
        """Whether this forward is new (then noted as being committed), and for one seen before
        the index to answer it with (None: still being committed, nothing to say yet)."""
        key = (sender, request_id)
        if key in self._seen:
            return False, self._seen[key]
        self._seen[key] = None
        while len(self._seen) > self._keep:
            self._seen.popitem(last=False)
        return True, None

    def committed(self, sender: str, request_id: str, applied_index: int) -> None:
        if (sender, request_id) in self._seen:
            self._seen[(sender, request_id)] = applied_index

    def failed(self, sender: str, request_id: str) -> None:
        """Not committed (no longer leader, an error answered): a resend is taken anew."""
        self._seen.pop((sender, request_id), None)


@dataclass(slots=True)
class _Forward:
    msg: ForwardCommands
    futures: list[asyncio.Future[None]]
    deadline: float
    internal: list[Command]
    """Commands without a waiting client: kept and retried if the forward expires."""
    sent_at: float = 0.0


def _fail(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    """Resolve futures: with ``error`` as their exception, or successfully when it is None."""
    for fut in futures:
        if not fut.done():
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)


def _settle(futures: list[asyncio.Future[None]], done: asyncio.Future[None]) -> None:
    _fail(futures, None if done.cancelled() or done.exception() is None else done.exception())


def command_bytes(cmd: Command) -> int:
    """About how many bytes ``cmd`` takes in an entry: a submission's measured (encoded: 4-5 us a
    job), an attempt's end from its output tail, anything else a small constant."""
    if isinstance(cmd, SubmitJobs):
        return len(codec.encode(cmd))
    if isinstance(cmd, FinishAttempt):
        return 256 + len(cmd.output_tail) + len(cmd.error or "")
    return 256
