"""Placing a gang (``swarm run --ranks N [--ranks-per-node K]``): every rank at once, or none.

``fit`` is the decision, a pure function of the gang's shape and each node's free room: a node
per rank, or None. Ranks go in blocks, rank 0 on the node with the most room: with
``ranks_per_node`` K, exactly K ranks on each of ceil(N / K) distinct nodes (the last one holds the
rest); without it, as many ranks on each node as fit there, fewest nodes first (so the ranks
talk over loopback where they can); among nodes with room for as many ranks, those holding the
gang's image first. A node's room is what it has free *now* (its capacity less
every attempt running on it or queued there at the gang's priority or higher, and less what this
round already placed there), not the queue-ahead budget of ``scheduler.placement``: every rank
must start at once, or the others would wait on it in their first collective. (Lower-priority
work queued on a node does not count: the node starts gang ranks first, and nothing of a lower
priority is placed while a gang waits. A rank that cannot start at once all the same is handed
back after ``rules.local_queue.HAND_BACK_AFTER_S`` and the gang placed again.)

``GangRound`` is the one pass of ``placement.place`` over a round's gangs: it finds each gang's
ranks, holds the gang back while any rank of its last attempt still runs (or waits out a retry's
backoff), asks ``fit``, and chooses the ``SWARM_MASTER_PORT`` of the attempt: from ``GANG_PORTS``,
one no assigned or running gang attempt holds, starting at a point that moves with the attempt
number (so an attempt that died with its port taken by a stranger tries another next time). Each
rank's node then learns the port, its local rank and the other ranks' nodes from its own table.

While a gang that would fit the live nodes waits for room, the round places nothing after it
(nothing of its priority or lower submitted later): the nodes drain their queues, and the gang is
not starved by work that came after it. A gang that could not fit even on an empty cluster holds
nothing back and waits with a message saying so (``--ranks 8 --ranks-per-node 2`` on three
nodes: "at most 6 ranks fit"), as any job that fits nowhere does.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from swarmcompute.state.commands import Assignment
from swarmcompute.state.job import Job, JobSpec, JobState, waits
from swarmcompute.state.table import JobTable
from swarmcompute.units import counted, plural

if TYPE_CHECKING:  # placement imports this module
    from swarmcompute.scheduler.placement import NodeCapacity

GANG_PORTS = range(29400, 29500)
"""Where ``SWARM_MASTER_PORT`` is chosen: below Linux's ephemeral range (32768-60999), so no
outgoing connection holds one by chance, and clear of torch's default 29500."""

_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class GangShape:
    """What a gang asks for: ``ranks`` ranks, ``per_node`` on each node (0: as many as fit), each
    rank ``cpus``, ``mem_bytes`` and ``gpus``."""

    ranks: int
    per_node: int
    cpus: float
    mem_bytes: int
    gpus: int

    @staticmethod
    def of(spec: JobSpec) -> GangShape:
        return GangShape(spec.ranks, spec.ranks_per_node, spec.cpus, spec.mem_bytes, spec.gpus)


@dataclass(frozen=True, slots=True)
class Room:
    """What one node that may run the gang has free now."""

    node_id: str
    cpus: float
    mem_bytes: int
    gpus: int
    has_image: bool = False
    """It holds the gang's image (``NodeCapacity.images``): it starts its ranks without a pull."""


def slots(shape: GangShape, room: Room) -> int:
    """How many ranks of ``shape`` fit in ``room`` (at most ``per_node``, or ``ranks``)."""
    most = shape.per_node or shape.ranks
    for need, free in ((shape.cpus, room.cpus), (float(shape.mem_bytes), float(room.mem_bytes)),
                       (float(shape.gpus), float(room.gpus))):  # fmt: skip
        if need > 0:
            most = min(most, int((max(free, 0.0) + _EPSILON) // need))
    return max(most, 0)


def fit(shape: GangShape, rooms: Iterable[Room]) -> tuple[str, ...] | None:
    """The node of each rank (rank order), or None when the gang does not fit whole. Nodes are
    taken by how many ranks they hold (``slots``: at most ``per_node``, or all of them), then
    those holding the gang's image first (as ``placement`` prefers them: no pull before the
    ranks start; room here is room to start now), then by free cpus, then by node id."""
    counts = sorted(
        ((slots(shape, r), r.has_image, r.cpus, r.node_id) for r in rooms), key=lambda c: (-c[0], not c[1], -c[2], c[3])
    )
    chosen: list[str] = []
    left = shape.ranks
    for room_for, _, _, node_id in counts:
        if left == 0:
            break
        take = min(shape.per_node, left) if shape.per_node else min(room_for, left)
        if take <= 0 or room_for < take:
            continue
        chosen += [node_id] * take
        left -= take
    return tuple(chosen) if left == 0 else None


class GangRound:
    """The gangs of one placement round (``placement.place`` asks ``place`` for each gang rank it
    reaches, in priority order; the first rank of a gang places or holds all of it)."""

    def __init__(
        self,
        table: JobTable,
        nodes: Iterable[NodeCapacity],
        now: float,
        may_run_on: Callable[[JobSpec, NodeCapacity], bool],
        *,
        ending: Collection[str] = (),
        incoming: Iterable[Job] = (),
    ) -> None:
        self.table = table
        self.now = now
        self.nodes = [n for n in nodes if n.takes_work(table.drained)]
        self.may_run_on = may_run_on
        self.ending = ending
        self.incoming = {j.id: j for j in incoming}
        """The round's jobs not yet in the table (a gang is submitted whole: all its ranks or none)."""
        self.ahead = False
        """A gang that fits the live nodes waits for room this round: nothing placed after it
        (``placement.place`` stops there), so that room comes free for it."""
        self.behind = ""
        """Then: why every job after it in line waits (``placement.place`` says it for them)."""
        self.waiting_for_room: tuple[Job, tuple[Room, ...]] | None = None
        """Then: its rank 0 and the room of each node that may run it (``scheduler.preemption``
        may stop preemptible work of a lower priority for it)."""
        self.seen: set[str] = set()
        self._used: dict[str, list[float]] | None = None  # node -> [cpus, mem, gpus] held now
        self._queued: dict[str, list[JobSpec]] = {}  # node -> attempts assigned there, not started
        self._ports: set[int] = set()
        self._counted = 0  # how many of the round's assignments ``_used`` holds

    def place(self, job: Job, assignments: Sequence[Assignment], waiting: dict[str, str]) -> list[Assignment]:
        """The assignments of ``job``'s whole gang, or [] (then its ranks' ``waiting`` says why)."""
        spec = job.spec
        if spec.gang_id in self.seen:
            return []
        self.seen.add(spec.gang_id)
        ranks = self._ranks(spec)
        if len(ranks) != spec.ranks:
            return []  # not all of it committed yet (a gang is submitted whole: never for long)
        busy = [r.spec.rank for r in ranks if r.state is not JobState.PENDING]
        if busy:
            n = max(r.attempt for r in ranks)
            shown = ", ".join(map(str, busy[:8])) + (" ..." if len(busy) > 8 else "")
            self._wait(
                ranks,
                waiting,
                f"attempt {n} of its gang still runs on {plural(len(busy), 'rank')} {shown};"
                " it runs again once all ended",
            )
            return []
        if any(waits(r, self.now) for r in ranks):
            return []  # held (`swarm hold`), a retry's backoff or a --begin time
        self._account(assignments)
        assert self._used is not None
        shape = GangShape.of(spec)
        fitting = [n for n in self.nodes if self.may_run_on(spec, n)]
        rooms = [self._room(n, spec) for n in fitting]
        nodes = fit(shape, rooms)
        if nodes is None:
            why = self._why_not(spec, shape, fitting, rooms)
            self._wait(ranks, waiting, why)
            if why.endswith(_NO_ROOM_NOW):
                self.ahead = True
                self.waiting_for_room = (ranks[0], tuple(rooms))
                self.behind = (
                    f"waits behind gang {spec.gang_id}, which starts first once room for all its ranks is free"
                )
            return []
        attempt = max(r.attempt for r in ranks) + 1
        port = self._port(spec.gang_id, attempt)
        if port is None:
            self._wait(ranks, waiting, f"every gang port ({GANG_PORTS.start}-{GANG_PORTS.stop - 1}) is in use")
            return []
        self._ports.add(port)
        out = [Assignment(r.id, attempt, node, port, r.revision) for r, node in zip(ranks, nodes, strict=True)]
        for r, node in zip(ranks, nodes, strict=True):
            self._take(node, r.spec)
        self._counted += len(out)  # the caller appends them to ``assignments``
        return out

    def _ranks(self, spec: JobSpec) -> list[Job]:
        ranks = {j.spec.rank: j for j in self.table.gang(spec.gang_id)}
        for j in self.incoming.values():
            if j.spec.gang_id == spec.gang_id and j.spec.ranks:
                ranks.setdefault(j.spec.rank, j)
        return [ranks[r] for r in sorted(ranks)]

    @staticmethod
    def _wait(ranks: list[Job], waiting: dict[str, str], why: str) -> None:
        for r in ranks:
            if r.state is JobState.PENDING:
                waiting[r.id] = why

    def _account(self, assignments: Sequence[Assignment]) -> None:
        """What every node holds now: its active attempts (once per round), then the round's own
        placements since the last call."""
        if self._used is None:
            self._used = {}
            for j in self.table.active_jobs():  # assigned or running, in submission order: O(active)
                if j.node is not None and j.id not in self.ending:
                    if j.state is JobState.ASSIGNED:  # queued there: it reserves only against its priority or lower
                        self._queued.setdefault(j.node, []).append(j.spec)
                    else:
                        self._take(j.node, j.spec)
                    if j.gang_port:
                        self._ports.add(j.gang_port)
        for a in assignments[self._counted :]:
            placed = self.table.get(a.job_id) or self.incoming.get(a.job_id)
            if placed is not None:
                self._take(a.node_id, placed.spec)
        self._counted = len(assignments)

    def _take(self, node_id: str, spec: JobSpec) -> None:
        assert self._used is not None
        used = self._used.setdefault(node_id, [0.0, 0.0, 0.0])
        used[0] += spec.cpus
        used[1] += spec.mem_bytes
        used[2] += spec.gpus

    def _room(self, node: NodeCapacity, spec: JobSpec) -> Room:
        """``capacity`` less what the node holds now for ``spec``'s priority."""
        assert self._used is not None
        cpus, mem, gpus = self._used.get(node.node_id, (0.0, 0.0, 0.0))
        for queued in self._queued.get(node.node_id, ()):
            if queued.priority >= spec.priority:  # a node starts a gang rank before lower-priority work
                cpus, mem, gpus = cpus + queued.cpus, mem + queued.mem_bytes, gpus + queued.gpus
        whole = capacity(node, spec)
        return Room(
            node.node_id, whole.cpus - cpus, int(whole.mem_bytes - mem), int(whole.gpus - gpus), whole.has_image
        )

    def _port(self, gang_id: str, attempt: int) -> int | None:
        size = len(GANG_PORTS)
        start = (zlib.crc32(gang_id.encode()) + attempt) % size
        for i in range(size):
            port = GANG_PORTS[(start + i) % size]
            if port not in self._ports:
                return port
        return None

    def _why_not(self, spec: JobSpec, shape: GangShape, fitting: list[NodeCapacity], rooms: list[Room]) -> str:
        per = f", {shape.per_node} per node" if shape.per_node else ""
        what = f"{shape.ranks} ranks{per}"
        if not fitting:
            return f"gang of {what}: no live node can run its ranks (see its pins, users, constraints, image)"
        empty = [capacity(n, spec) for n in fitting]
        if fit(shape, empty) is None:
            if shape.per_node:
                nodes = -(-shape.ranks // shape.per_node)
                able = sum(1 for r in empty if slots(shape, r) >= shape.per_node)
                return (
                    f"gang of {what}: it needs {nodes} nodes with room for {counted(shape.per_node, 'rank')} each,"
                    f" and {able} live {'node has' if able == 1 else 'nodes have'} it; it waits for more nodes"
                )
            most = _most(shape, empty)
            return f"gang of {what}: the live nodes could hold at most {most} at once; it waits for more nodes"
        return f"gang of {what}: {_most(shape, rooms)} fit now; {_NO_ROOM_NOW}"


def capacity(node: NodeCapacity, spec: JobSpec) -> Room:
    """The room ``node`` offers a rank of ``spec`` when nothing runs there: its cpus and memory,
    and only its cards of at least ``spec.gpu_mem``. The one measure of a node for a gang: the
    room it has now is this less what it holds, and a gang that ``fit`` finds no room for here,
    on every node that may run it, could never start (it waits for more nodes and holds nothing
    back; counting every card here, a ``--gpu-mem`` gang that only one node's card could hold
    waited for room "and went first", ahead of every later job, for good)."""
    cards = node.gpus
    if spec.gpu_mem:
        cards = min(cards, sum(1 for _, m in node.gpu_cards if m >= spec.gpu_mem))
    return Room(node.node_id, node.cpus, node.mem_bytes, cards, spec.image is not None and spec.image in node.images)


_NO_ROOM_NOW = "it waits for room to start all of them at once, and goes first"


def _most(shape: GangShape, rooms: Sequence[Room]) -> int:
    """How many ranks of ``shape`` the rooms could hold, all told."""
    return sum(slots(shape, r) for r in rooms)
