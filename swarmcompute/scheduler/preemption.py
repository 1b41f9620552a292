"""Preemption: which ``--preemptible`` attempts the leader stops to make room for higher priority.

A job of a higher priority is placed on a busy node in front of its queued work (queue-ahead,
``scheduler.placement``), and starts there when room frees. Where what holds the room is
``--preemptible`` work of a lower priority, it need not wait for that to end: this rule, run by
the leader with each placement round, names the running attempts to stop for it
(``PreemptJobs``). The table tells each to stop as ``swarm requeue`` does (``Job.stop_why``):
its node stops it as lost (SIGTERM, then SIGKILL after the grace), and once that end is committed
it is pending again, from the start, no retry spent; so a preempted job never runs twice at once.

Rules, per node that runs preemptible work:

1. The attempts queued there (assigned, not started; this round's placements too) are taken in
   the order the node starts them: higher priority first, first-submitted first. Each takes the
   room it fits in: the node's capacity less its running attempts. An attempt told to stop
   already (a requeue, an earlier preemption) counts as gone: its room is on its way, so a later
   round does not stop more for the same job.
2. One that does not fit is preempted for when all of these hold: it asks for room (cpus,
   memory or GPUs: one that asks for none starts anyway), it is not a gang rank (a gang is
   placed only on room to start at once, whole: rule 4), no other live node that takes work has
   room for it now (it would be handed back there, ``rules.local_queue``: stopping work for it
   here would be waste), and stopping running preemptible attempts there of a strictly lower
   priority makes it fit.
3. Victims: the lowest priority first, then a plain job before a gang's rank (stopping one rank
   stops its whole gang: ``JobTable._preempt``), then the latest started (the least work lost),
   then by id; only as many as make it fit. Their room is then its own, and the next queued
   attempt goes on from what is left; a gang stopped frees its other ranks' room too, on the
   nodes the round looks at after this one.
4. A gang that waits for room to start whole, ahead of everything after it (``placement.place``
   stops there: ``Placement.gang_waits``), is made room for on the nodes that may run it, when
   the room of what was told to stop does not already make it fit: its ranks go first where room
   is free now, then where stopping running preemptible attempts of a strictly lower priority
   (not its own) makes room, and on each node just enough of them stop, in rule 3's order;
   nothing when even all of them would not do. Its ranks are placed once their room is free, as
   any gang's. (A lower-priority job already queued on a node may start in that room first; the
   next round then looks again.)

A job is never preempted for one of its own priority or lower, so preemption cannot go round in
a circle: each stop makes room for strictly higher priority. What the rule does not weigh: which
GPU cards a victim frees (it counts cards, as placement does), and a job larger than its node
(it starts there once the node is empty, as ``rules.local_queue`` says; nothing is stopped for
it).

Cost: nothing when no preemptible attempt runs (``JobTable.preemptible_running``, the common
case); else one pass over the active jobs, as a placement round's budgets make.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from swarmcompute.scheduler.gang import GangShape, Room, slots
from swarmcompute.scheduler.placement import NodeCapacity, NodeRoom
from swarmcompute.state.commands import Assignment, PreemptJobs
from swarmcompute.state.job import Job, JobState
from swarmcompute.state.table import JobTable

_EPSILON = 1e-9


class _Sized(Protocol):
    @property
    def cpus(self) -> float: ...
    @property
    def mem_bytes(self) -> int: ...
    @property
    def gpus(self) -> int: ...


@dataclass(slots=True)
class _Free:
    """A node's room for what it queued: its capacity less what runs there."""

    cpus: float
    mem_bytes: int
    gpus: int

    def fits(self, spec: _Sized) -> bool:
        return spec.cpus <= self.cpus + _EPSILON and spec.mem_bytes <= self.mem_bytes and spec.gpus <= self.gpus

    def add(self, spec: _Sized, sign: int) -> None:
        self.cpus += sign * spec.cpus
        self.mem_bytes += sign * spec.mem_bytes
        self.gpus += sign * spec.gpus


def preemptions(
    table: JobTable,
    nodes: Iterable[NodeCapacity],
    *,
    assignments: Iterable[Assignment] = (),
    incoming: Iterable[Job] = (),
    ending: Collection[str] = (),
    at: float = 0.0,
    gang: tuple[Job, Sequence[Room]] | None = None,
) -> list[PreemptJobs]:
    """The preemptions a round decides (the module's rules): one ``PreemptJobs`` per job made
    room for. ``nodes``: the live nodes placement may use; ``assignments``: the round's placements
    (of table jobs or ``incoming`` ones), queued on their node once applied; ``ending``: active jobs
    whose attempt ends in the same entry (``place(ending=...)``), their room free; ``gang``: the
    gang the round left waiting for room, ahead of the rest (``Placement.gang_waits``: rule 4)."""
    preemptible = table.preemptible_running()
    told = {j.spec.gang_id for j in preemptible if j.spec.ranks and j.stop_why}

    def stopping(j: Job) -> bool:  # told to stop, or a rank of a gang one of whose ranks was: all of it stops
        return bool(j.stop_why) or (bool(j.spec.ranks) and j.spec.gang_id in told)

    running = [j for j in preemptible if not stopping(j) and j.id not in ending]
    if not running:
        return []
    lowest = min(j.spec.priority for j in running)
    live = {n.node_id: n for n in nodes if n.takes_work(table.drained)}
    victims: dict[str, list[Job]] = {}
    for job in running:
        if job.node in live:
            victims.setdefault(job.node, []).append(job)
    if not victims:
        return []
    free = {node_id: _Free(live[node_id].cpus, live[node_id].mem_bytes, live[node_id].gpus) for node_id in victims}
    rooms = {node_id: NodeRoom(node) for node_id, node in live.items()}
    queued: dict[str, list[Job]] = {}
    coming: dict[str, _Free] = {}  # the room of running attempts told to stop, node by node
    for job in table.sized_active_jobs():
        if job.id in ending or job.node is None:
            continue
        if (room := rooms.get(job.node)) is not None:
            room.take(job.spec, queued=job.state is JobState.ASSIGNED)
        if stopping(job) and job.state is JobState.RUNNING:
            coming.setdefault(job.node, _Free(0.0, 0, 0)).add(job.spec, +1)
        if job.node not in free or stopping(job):
            continue
        if job.state is JobState.RUNNING:
            free[job.node].add(job.spec, -1)
        else:
            queued.setdefault(job.node, []).append(job)
    new = {j.id: j for j in incoming}
    for a in assignments:
        placed = table.get(a.job_id) or new.get(a.job_id)
        if placed is None:
            continue
        if (room := rooms.get(a.node_id)) is not None:
            room.take(placed.spec, queued=True)
        if a.node_id in free:
            queued.setdefault(a.node_id, []).append(placed)
    out: list[PreemptJobs] = []
    going: set[str] = set()  # gangs a preemption stops: all their ranks' room comes free
    for node_id in sorted(victims):
        for v in [v for v in victims[node_id] if v.spec.gang_id in going]:
            victims[node_id].remove(v)
            free[node_id].add(v.spec, +1)
        others = [r for other, r in rooms.items() if other != node_id]
        stops = _for_node(queued.get(node_id, []), free[node_id], victims[node_id], others, lowest, at)
        going.update(j.spec.gang_id for p in stops for i, _ in p.targets if (j := table.get(i)) and j.spec.ranks)
        out += stops
    if gang is not None:
        taken = {job_id for p in out for job_id, _ in p.targets}
        left: dict[str, list[Job]] = {}
        for job in running:
            if job.node in live and job.id not in taken and job.spec.gang_id not in going:
                left.setdefault(job.node, []).append(job)
        out += _for_gang(gang, left, coming, at)
    return out


def _for_gang(
    gang: tuple[Job, Sequence[Room]], victims: dict[str, list[Job]], coming: dict[str, _Free], at: float
) -> list[PreemptJobs]:
    """Rule 4: the gang that waits for room to start whole (its rank 0 and the room now of each
    node that may run it). Nothing when the room of what was told to stop already makes it fit;
    else its ranks go first where room is free now, then where stopping preemptible work of a
    lower priority makes room, and on each such node just enough of it is stopped (rule 3's
    order); nothing when even all of it would not do."""
    job, rooms = gang
    spec = job.spec
    shape = GangShape.of(spec)
    now = {r.node_id: _grown(r, *([coming[r.node_id]] if r.node_id in coming else [])) for r in rooms}
    units = {node: _units([v for v in victims.get(node, []) if v.spec.priority < spec.priority]) for node in now}
    most = {node: _grown(r, *(v.spec for u in units[node] for v in u)) for node, r in now.items()}
    plan = _plan(shape, now, most)
    if plan is None:
        return []  # it does not fit even with all of it stopped
    targets: list[tuple[str, int]] = []
    for node, k in sorted(plan.items()):
        need = _Free(k * spec.cpus, k * spec.mem_bytes, k * spec.gpus)  # its ranks there, together
        free = _Free(now[node].cpus, now[node].mem_bytes, now[node].gpus)
        if free.fits(need):
            continue
        taken = _enough(need, free, units[node])
        if taken is None:
            return []
        targets += [(v.id, v.attempt) for unit in taken for v in unit]
    return [PreemptJobs(tuple(targets), job.id, at)] if targets else []


def _plan(shape: GangShape, now: dict[str, Room], most: dict[str, Room]) -> dict[str, int] | None:
    """How many ranks go on each node: first where room is free ``now`` (the nodes with the most
    first), then where room would be with every victim stopped (``most``); None: they do not fit."""
    plan: dict[str, int] = {}
    left = shape.ranks
    for node in sorted(now, key=lambda n: (-slots(shape, now[n]), n)):
        take = min(shape.per_node, left) if shape.per_node else min(slots(shape, now[node]), left)
        if left and take > 0 and slots(shape, now[node]) >= take:
            plan[node], left = take, left - take
    for node in sorted(now, key=lambda n: (-(slots(shape, most[n]) - plan.get(n, 0)), n)):
        if not left or (shape.per_node and node in plan):
            continue
        had = plan.get(node, 0)
        take = min(shape.per_node, left) if shape.per_node else min(slots(shape, most[node]) - had, left)
        if take > 0 and slots(shape, most[node]) >= had + take:
            plan[node], left = had + take, left - take
    return None if left else plan


def _grown(room: Room, *more: _Sized) -> Room:
    """``room`` with the room of ``more`` added (what stops there)."""
    return Room(
        room.node_id,
        room.cpus + sum(m.cpus for m in more),
        room.mem_bytes + sum(m.mem_bytes for m in more),
        room.gpus + sum(m.gpus for m in more),
        room.has_image,
    )


def _for_node(
    queued: list[Job], free: _Free, victims: list[Job], others: list[NodeRoom], lowest: int, at: float
) -> list[PreemptJobs]:
    """One node's preemptions (rules 1-3): ``queued`` there, ``free`` its room, ``victims`` its
    running preemptible attempts, ``others`` the other nodes' room now."""
    out: list[PreemptJobs] = []
    left = _units(victims)
    for job in sorted(queued, key=lambda j: (-j.spec.priority, j.submitted_at, j.id)):
        spec = job.spec
        if free.fits(spec):
            free.add(spec, -1)
            continue
        if spec.priority <= lowest or spec.ranks or not (spec.cpus or spec.mem_bytes or spec.gpus):
            continue
        if any(r.fits(spec, None) for r in others):
            continue  # room elsewhere now: its node hands it back there (``rules.local_queue``)
        taken = _enough(spec, free, [u for u in left if u[0].spec.priority < spec.priority])
        if taken is None:
            continue
        for unit in taken:
            left.remove(unit)
            for v in unit:
                free.add(v.spec, +1)
        free.add(spec, -1)
        out.append(PreemptJobs(tuple((v.id, v.attempt) for unit in taken for v in unit), job.id, at))
    return out


def _units(victims: list[Job]) -> list[list[Job]]:
    """The victims as what stops together, in the order they are taken (rule 3): a plain job
    alone, a gang's ranks on the node together (one rank's stop stops them all)."""
    gangs: dict[str, list[Job]] = {}
    units: list[list[Job]] = []
    for v in victims:
        if not v.spec.ranks:
            units.append([v])
        elif v.spec.gang_id in gangs:
            gangs[v.spec.gang_id].append(v)
        else:
            units.append(gangs.setdefault(v.spec.gang_id, [v]))
    return sorted(
        units, key=lambda u: (u[0].spec.priority, bool(u[0].spec.ranks), -max(v.started_at or 0.0 for v in u), u[0].id)
    )


def _enough(spec: _Sized, free: _Free, candidates: list[list[Job]]) -> list[list[Job]] | None:
    """The fewest of ``candidates`` (units that stop together), taken in order, whose room with
    ``free`` fits ``spec`` (None: all of them do not)."""
    room = _Free(free.cpus, free.mem_bytes, free.gpus)
    taken: list[list[Job]] = []
    for unit in candidates:
        taken.append(unit)
        _add(room, unit, +1)
        if room.fits(spec):
            for early in taken[:-1]:  # one taken before a larger one that alone makes room: spared
                _add(room, early, -1)
                if room.fits(spec):
                    taken.remove(early)
                else:
                    _add(room, early, +1)
            return taken
    return None


def _add(room: _Free, unit: list[Job], sign: int) -> None:
    for v in unit:
        room.add(v.spec, sign)
