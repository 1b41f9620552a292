"""The Raft shell: runs the pure ``RaftNode`` inside the daemon's asyncio loop.

The core decides; this class only carries out its ``Ready`` in the order that
keeps Raft safe (etcd-io/raft's contract):

1. persist the snapshot, hard state and entries (``RaftStorage.save``: one fsync),
2. then send the messages,
3. then apply the committed entries,
4. then ``advance``.

Time is a timer that calls ``tick()`` every ``tick_interval_s`` (monotonic,
owned by the loop); messages from peers arrive through ``step``. Everything
that changes the core schedules one ``_process_ready`` on the next loop turn,
so a burst of proposals and messages shares a single fsync.

A write that fails (disk full, read-only, EIO) must neither stop the daemon nor let the node
act on state it did not persist: a vote or an acknowledgement sent for an unsaved term or
entry is exactly what Raft forbids. So the host *stalls*: it drops that Ready's messages, keeps
the core frozen (no ticks, every peer message dropped, proposals refused with
``DiskFullError``), so the node neither votes, nor acknowledges, nor campaigns, nor leads; the
cluster sees it as unreachable. Committed entries of the failed Ready that the synced log
holds are still applied (a restart on a full disk rebuilds the job table). ``resume()`` (the
daemon calls it once the disk takes writes again) starts the core afresh from the files, as a
restart would (everything unsaved is forgotten; it was never sent), minus re-applying what the
state machine holds already. While stalled, ``leader_id`` still names the leader a follower
knew, so its lease and its forwarded commands carry on and its running jobs keep running.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import structlog

from swarmcompute.errors import DiskFullError, NotLeaderError, StorageError
from swarmcompute.raft.config import RaftConfig
from swarmcompute.raft.core import RaftNode
from swarmcompute.raft.durable import PersistedState
from swarmcompute.raft.messages import Entry, HardState, Message, Snapshot
from swarmcompute.raft.ready import Ready, Role, Status
from swarmcompute.storage.raft_log import RaftStorage

log = structlog.get_logger(__name__)

DEFAULT_TICK_INTERVAL_S = 0.1
COMPACT_AFTER_ENTRIES = 10_000
"""Fold applied entries into a snapshot once this many accumulate (bounds disk and restart time)."""


class LogStorage(Protocol):
    """Where the host persists Raft's state: ``RaftStorage`` on disk (the simulator's fake disk too)."""

    def save(self, rd: Ready) -> None: ...
    def compact(self, snapshot: Snapshot) -> None: ...
    def close(self) -> None: ...


class RaftHost:
    def __init__(
        self,
        node_id: str,
        directory: Path,
        *,
        send: Callable[[Message], None],
        apply: Callable[[Entry], None],
        restore: Callable[[Snapshot], None],
        config: RaftConfig | None = None,
        tick_interval_s: float = DEFAULT_TICK_INTERVAL_S,
        rng: random.Random | None = None,
        open_storage: Callable[[Path], tuple[LogStorage, PersistedState]] = RaftStorage.open,
    ) -> None:
        self.node_id = node_id
        self._directory = directory
        self._open_storage = open_storage
        self._send = send
        self._apply = apply
        self._restore = restore
        self._config = config or RaftConfig()
        self._tick_interval_s = tick_interval_s
        self._rng = rng or random.Random()
        self._storage: LogStorage | None = None
        self._node: RaftNode | None = None
        self._scheduled: asyncio.Handle | None = None
        self._applied_changed = asyncio.Event()
        self._leader_changed = asyncio.Event()
        self._last_role: tuple[Role, str | None] | None = None
        self._saved_hard: HardState | None = None
        self._unsaved_commit: HardState | None = None
        self._stalled: StorageError | None = None
        self._sm_applied = 0
        """The last index the state machine holds (entries applied, or a snapshot restored)."""
        self._synced_last = 0
        """The last index of the log as synced (what a restart would find)."""
        self.on_stall: Callable[[StorageError | None, int], None] | None = None
        """Told ``(error, synced last index)`` when writes start failing, ``(None, index)`` on resume."""

    # -- lifecycle -------------------------------------------------------------

    def open(self, bootstrap_voters: Iterable[str] | None = None) -> None:
        """Load the durable state and apply what it says is committed.

        ``bootstrap_voters`` starts a brand-new cluster when there is no state
        yet; an existing state always wins (a restart never re-bootstraps).
        """
        storage, state = self._open_storage(self._directory)
        self._storage = storage
        self._saved_hard = state.hard_state
        self._synced_last = state.last_index
        fresh = state.snapshot is None and not state.entries and state.hard_state.term == 0
        if fresh and bootstrap_voters is not None:
            self._node = RaftNode.bootstrap(self.node_id, bootstrap_voters, self._config, self._rng)
            log.info("raft_bootstrapped", voters=sorted(bootstrap_voters))
        else:
            self._node = RaftNode(self.node_id, self._config, self._rng, state)
            if state.snapshot is not None:
                self._restore(state.snapshot)
                self._sm_applied = state.snapshot.index
        self._process_ready()

    def close(self) -> None:
        if self._storage is not None:
            try:
                if self._unsaved_commit is not None and self._stalled is None:
                    self._storage.save(Ready(self._unsaved_commit, (), None, (), ()))
                self._storage.close()
            except StorageError as exc:  # the commit index is volatile: a restart learns it again
                log.warning("raft_close_unsaved", error=str(exc))
            self._storage = None

    # -- a failed write: stall, then resume --------------------------------------------

    @property
    def stalled(self) -> StorageError | None:
        """Why the node takes no part in Raft now (a write failed), or None."""
        return self._stalled

    def _stall(self, exc: StorageError, rd: Ready) -> None:
        """A write failed: apply what is committed and synced, send nothing, freeze the core.

        Below the first entry of the failed Ready (and up to the synced end) the log in memory
        is the log on disk, so those committed entries are applied; the rest waits for resume.
        """
        unsynced_from = rd.entries[0].index if rd.entries else self._synced_last + 1
        applied_any = False
        if rd.snapshot is None:
            for entry in rd.committed:
                if entry.index <= self._sm_applied:
                    continue
                if entry.index >= unsynced_from or entry.index > self._synced_last:
                    break
                self._apply_one(entry)
                applied_any = True
        if applied_any:
            self._applied_changed.set()
            self._applied_changed = asyncio.Event()
        first = self._stalled is None
        self._stalled = exc
        if first:
            log.error(
                "raft_write_failed",
                error=str(exc),
                action="not voting, acknowledging or leading until a write succeeds; retried every second",
                dropped_messages=len(rd.messages),
            )
        self._leader_changed.set()
        self._leader_changed = asyncio.Event()
        if self.on_stall is not None:
            self.on_stall(exc, self._synced_last)

    def resume(self) -> bool:
        """After a stall: start the core again from the files, as a restart would (what was not
        synced was never sent); True when it runs again. It stalls anew if a write fails again."""
        if self._stalled is None:
            return True
        if self._storage is not None:
            try:
                self._storage.close()
            except StorageError:
                pass
            self._storage = None
        try:
            storage, state = self._open_storage(self._directory)
        except StorageError as exc:
            self._stalled = exc
            return False
        self._storage = storage
        self._saved_hard, self._unsaved_commit = state.hard_state, None
        self._synced_last = state.last_index
        node = RaftNode(self.node_id, self._config, self._rng, state, applied=self._sm_applied)
        if state.snapshot is not None and state.snapshot.index > self._sm_applied:
            self._restore(state.snapshot)
            self._sm_applied = state.snapshot.index
        self._node = node
        self._stalled = None
        self._last_role = None
        self._process_ready()
        if self._stalled is not None:
            return False
        log.info("raft_writes_resumed", term=node.term, last_index=self._synced_last)
        if self.on_stall is not None:
            self.on_stall(None, self._synced_last)
        return True

    async def run(self) -> None:
        """Tick the core until cancelled (the daemon ticks through its shared clock instead)."""
        while True:
            await asyncio.sleep(self._tick_interval_s)
            self.tick()

    def tick(self) -> None:
        """One tick of logical time, and whatever work it produced (none while stalled)."""
        if self._stalled is not None:
            return
        self.node.tick()
        self._process_ready()

    # -- inputs ------------------------------------------------------------------

    @property
    def node(self) -> RaftNode:
        if self._node is None:
            raise RuntimeError("RaftHost.open() first")
        return self._node

    def step(self, msg: Message) -> None:
        if self._stalled is not None:
            return  # no vote, no acknowledgement: the node could not persist what they promise
        self.node.step(msg)
        self._kick()

    def _writable(self) -> None:
        if self._stalled is not None:
            raise DiskFullError(f"this node cannot write its raft log ({self._stalled})")

    def propose(self, data: bytes) -> tuple[int, int]:
        """Append ``data`` to the log; returns (index, term). Raises ``NotLeaderError``, or
        ``DiskFullError`` while stalled."""
        self._writable()
        index = self.node.propose(data)
        self._kick()
        return index, self.node.term

    def campaign(self) -> None:
        if self._stalled is not None:
            return
        self.node.campaign()
        self._kick()

    def add_learner(self, node_id: str) -> bool:
        """Leader only: add ``node_id`` as a learner; False when it is already a member."""
        if node_id in self.node.membership.members:
            return False
        if self._stalled is not None:
            raise NotLeaderError(None)
        self.node.add_learner(node_id)
        self._kick()
        return True

    def remove(self, node_id: str) -> None:
        if self._stalled is not None:
            raise NotLeaderError(None)
        self.node.remove(node_id)
        self._kick()

    def transfer_leadership(self, to: str) -> None:
        if self._stalled is not None:
            raise NotLeaderError(None)
        self.node.transfer_leadership(to)
        self._kick()

    def force_config(self, voters: Iterable[str]) -> None:
        """``swarm recover``: unsafe by design, see ``RaftNode.force_config``."""
        self._writable()
        self.node.force_config(voters)
        self._kick()

    def elect_self_if_alone(self) -> bool:
        """A one-voter cluster elects itself and applies its whole log right now.

        Done during start-up so the table is complete before any client is
        served (the commit index is persisted lazily, so the log may hold
        entries the saved commit index does not cover yet).
        """
        node = self.node
        if node.membership.voters != {self.node_id} or self._stalled is not None:
            return False
        node.campaign()
        self._process_ready()
        return node.role is Role.LEADER

    # -- state -------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self._node is not None and self._node.role is Role.LEADER and self._stalled is None

    @property
    def leader_id(self) -> str | None:
        """The leader this node knows; while stalled, only another node (this one leads nothing)."""
        if self._node is None:
            return None
        leader = self._node.leader_id
        return None if self._stalled is not None and leader == self.node_id else leader

    @property
    def applied_index(self) -> int:
        if self._node is None:
            return 0
        return self._sm_applied if self._stalled is not None else self._node.applied

    def status(self) -> Status:
        return self.node.status()

    async def wait_leader_change(self, timeout_s: float | None) -> None:
        """Return when this node's role or the leader it knows changes (or the timeout)."""
        try:
            await asyncio.wait_for(self._leader_changed.wait(), timeout_s)
        except TimeoutError:
            pass

    def compact(self, index: int, data: bytes) -> None:
        """Fold the log up to ``index`` (already applied) into a snapshot holding ``data``."""
        if self._stalled is not None:
            return
        snapshot = self.node.compact(index, data)
        if self._storage is not None:
            try:
                self._storage.compact(snapshot)
            except StorageError as exc:
                # The core dropped entries only from memory; the files still hold them. Resume
                # restarts the core from the files (and compacts again later).
                self._stall(exc, Ready(None, (), None, (), ()))
                return
        log.info("raft_log_compacted", index=index, bytes=len(data))

    def entries_since_snapshot(self) -> int:
        node = self.node
        base = node.snapshot.index if node.snapshot is not None else 0
        return node.applied - base

    # -- the Ready loop ----------------------------------------------------------

    def _apply_one(self, entry: Entry) -> None:
        self._apply(entry)
        self._sm_applied = entry.index

    def _kick(self) -> None:
        if self._scheduled is None:
            self._scheduled = asyncio.get_running_loop().call_soon(self._scheduled_process)

    def _scheduled_process(self) -> None:
        self._scheduled = None
        self._process_ready()

    def process_pending(self) -> None:
        """Process now what a ``_kick`` scheduled for the next loop turn: the transport calls it
        once it has read every frame that was waiting, so a burst of messages still shares one
        Ready (one fsync), and the answers leave in the same turn, without a wake-up of the loop
        for the Ready and another for the sends."""
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled_process()

    def _persist(self, storage: LogStorage, rd: Ready) -> None:
        """Save what Raft needs durable; a hard state that only moved ``commit`` rides along later.

        The commit index is volatile in Raft (a restarted node learns it again),
        so fsyncing it alone would double the fsyncs per proposal for nothing.
        It is written with the next batch that has to be synced anyway.
        """
        hard = rd.hard_state
        if hard is not None and rd.snapshot is None and not rd.entries and self._saved_hard is not None:
            if (hard.term, hard.vote) == (self._saved_hard.term, self._saved_hard.vote):
                self._unsaved_commit = hard
                return
        if hard is None and self._unsaved_commit is not None and (rd.entries or rd.snapshot is not None):
            rd = replace(rd, hard_state=self._unsaved_commit)
        if rd.must_sync:
            storage.save(rd)
            if rd.hard_state is not None:
                self._saved_hard = rd.hard_state
                self._unsaved_commit = None

    def _process_ready(self) -> None:
        node = self.node
        storage = self._storage
        if storage is None or self._stalled is not None:
            return
        while node.has_ready():
            rd = node.ready()
            try:
                self._persist(storage, rd)
            except StorageError as exc:
                self._stall(exc, rd)
                return
            if rd.snapshot is not None:  # after persisting: a failed write must not restore it
                self._restore(rd.snapshot)
                self._sm_applied = rd.snapshot.index
            if rd.entries:
                self._synced_last = rd.entries[-1].index
            elif rd.snapshot is not None:
                self._synced_last = rd.snapshot.index
            for msg in rd.messages:
                self._send(msg)
            for entry in rd.committed:
                self._apply_one(entry)
            for event in rd.events:
                log.info("raft_" + event.name, term=event.term, detail=event.detail)
            node.advance(rd)
            if rd.committed:
                self._applied_changed.set()
                self._applied_changed = asyncio.Event()
        if (node.role, node.leader_id) != self._last_role:
            self._last_role = (node.role, node.leader_id)
            self._leader_changed.set()
            self._leader_changed = asyncio.Event()
