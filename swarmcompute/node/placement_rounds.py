"""The leader's placement rounds: when to run the scheduler core, and with what it rides.

Placement (``scheduler.placement.place``) is a pure function; this module decides when it runs
and where its result goes. A round runs inside the leader's next batch (``plan``, the
committer's hook), so its assignments share the log entry with the commands that made room:

- results, losses and cancels in the batch free their room first (``ending``), so a slot that
  ends is refilled in the same entry that reports it: one Raft round per refill, not two;
- jobs submitted in the batch are placed in it too (``incoming``): a `swarm run` waits one
  Raft round less;
- the preemptions the round's placements call for (``scheduler.preemption``) ride with them, so
  a job of a higher priority queued on a node full of ``--preemptible`` work has it stopped in the
  entry that placed it there.

A round waits while the previous round's entry is not applied yet, so no job is placed twice
from a stale table. Other nodes never place; they work a round out only to explain why a job
waits (``waiting_reason``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from swarmcompute.node.committer import ReplicatedJobLog
from swarmcompute.scheduler.placement import NodeCapacity, Placement, ending_in, place, submitted_in
from swarmcompute.scheduler.preemption import preemptions
from swarmcompute.state.commands import AssignJobs, Command
from swarmcompute.state.table import JobTable

EXPLAIN_INTERVAL_S = 0.5
"""A node that does not lead works out a placement to explain a wait at most this often."""


class PlacementRounds:
    def __init__(
        self,
        table: JobTable,
        committer: ReplicatedJobLog,
        capacities: Callable[[], list[NodeCapacity]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table
        self._clock = clock
        """Wall-clock time (``time.time``; the simulator's own clock there)."""
        self._committer = committer
        self._capacities = capacities
        self._changed = asyncio.Event()
        self._wanted = False
        """Something changed that may let a job be placed: the leader's next batch runs a round."""
        self._last = Placement([], {})
        """The last round (the leader's own, or one worked out here to explain a wait)."""
        self._explained_at = 0.0
        committer.plan = self.plan

    def request(self) -> None:
        """Something changed (a job pending or ended, a node came or went, a backoff ended)."""
        self._changed.set()

    def applied(self, reschedule: bool) -> None:
        """After an entry applied: ``reschedule`` when it made a job pending or ended one."""
        if reschedule or (self._wanted and self._committer.applying_index >= self._committer.last_planned_index):
            self._changed.set()

    async def run(self) -> None:
        """Ask for a round whenever something changed, or a retry backoff ended."""
        while True:
            await self._wait_for_change()
            self.take_change()

    def take_change(self) -> None:
        """A change was seen: on the leader, the next batch runs a round."""
        self._changed.clear()
        if self._committer.raft.is_leader:
            self._wanted = True
            self._committer.request_plan()

    @property
    def change_pending(self) -> bool:
        """Whether a change waits to be taken (what ``run`` waits for)."""
        return self._changed.is_set()

    def plan(self, commands: Sequence[Command], now: float) -> list[Command]:
        """On the leader, for each batch it proposes: the placements that ride in the same entry,
        whose stamp ``now`` (``CommandBatch.at``) is the round's clock."""
        ending = ending_in(self._table, commands)
        incoming, preferred = submitted_in(self._table, commands, now)
        if not (self._wanted or ending or incoming):
            return []
        if self._committer.raft.applied_index < self._committer.last_planned_index:
            self._wanted = True  # picked up when that entry applies (``applied``)
            return []
        self._wanted = False
        self._table.release_backoffs(now)
        nodes = self._capacities()
        placement = self._last = place(self._table, nodes, now, ending=ending, incoming=incoming, preferred=preferred)
        stops = preemptions(
            self._table, nodes, assignments=placement.assignments, incoming=incoming, ending=ending, at=now,
            gang=placement.gang_waits,
        )  # fmt: skip
        out: list[Command] = [AssignJobs(tuple(placement.assignments), now)] if placement.assignments else []
        return out + stops

    def waiting_reason(self, job_id: str) -> tuple[str, str] | None:
        """Why a pending job waits: the leader's last round, or (on another node) a round worked
        out here for the asking, at most every ``EXPLAIN_INTERVAL_S``."""
        if not self._committer.raft.is_leader:
            now = time.monotonic()
            if now - self._explained_at > EXPLAIN_INTERVAL_S:
                self._explained_at = now
                wall = self._clock()
                self._table.release_backoffs(wall)
                self._last = place(self._table, self._capacities(), wall)
        placement = self._last
        if job_id in placement.waiting:
            return "waiting_resources", placement.waiting[job_id]
        if job_id in placement.blocked:
            return "waiting_dependencies", placement.blocked[job_id]
        return None

    async def _wait_for_change(self) -> None:
        """Until something changed, or the nearest retry backoff ends (the clock also checks)."""
        now = self._clock()
        backoff_end = self._table.next_backoff_end(now)
        if backoff_end is None:
            await self._changed.wait()
            return
        try:
            await asyncio.wait_for(self._changed.wait(), backoff_end - now)
        except TimeoutError:
            pass
