"""Placement: which pending jobs run where, as a pure function of the table and the nodes.

Rules, in order:

1. Runnable jobs only: pending, not held (`swarm hold`), past their retry backoff, and with every
   ``after`` parent succeeded and every ``after_any`` parent ended.
2. Higher ``priority`` first, first-submitted first within a level.
3. A node fits when the job fits its capacity at all, and its *budget* (its
   capacity times ``1 + queue_ahead``) minus what jobs already there reserve,
   minus what earlier placements in this same round took, covers the job's
   cpus, memory and gpus; it matches a ``node`` pin; it has the job's user (a root node
   runs each job as its submitter, so the name must exist there; a node run by a normal user
   runs every job as itself: ``users`` None); its labels meet the job's ``constraints``
   (``scheduler.constraints``); it has enough cards of the job's ``gpu_mem``; its Docker
   engine answers, for an image job, and it holds the image or has not failed to get it lately
   (``NodeCapacity.unpulled``: no registry reachable, or the registry does not have it; before,
   with its one holder busy, an image built on one node went to an idle node that could not pull
   it, each retry again: 3 of 3 attempts failed there in 1.7 s); it is not drained
   (``JobTable.drained``); and its state directory takes writes (``disk_full``). An array
   element (``--array 0-99%10``) waits while ``array_limit`` elements of its array are assigned
   or running (counting this round's placements).
4. Among fitting nodes: a bonus for holding the job's image, only while that node
   could start it at once (room beyond its queue-ahead budget: a busy holder that
   drew the job would hand it back after ``HAND_BACK_AFTER_S`` and draw it again,
   a new attempt each time), then the most free budget share (spread by load),
   then the fewest jobs (so zero-cpu jobs spread too), then the node id (so the
   result is deterministic).

Queue-ahead (why the budget exceeds the capacity): a node is given a little more
work than it can run at once, and starts the next queued attempt itself the
moment one ends (``rules.local_queue``). Without it every slot sits idle for two
Raft round trips per job (the result, then the next assignment), which caps a
3-node cluster at a few hundred short jobs per second; Ray's lease pipelining
exists for the same reason. What keeps priorities right: an assigned attempt
that has not started reserves budget only against jobs of its own priority or
lower, so a higher-priority job is placed on a node in front of queued
lower-priority work (the node starts its queue highest priority first), and a
node holds its queued work back while a higher-priority job that could run
there is still pending. A queued attempt that a busy node cannot start while
another node is free is handed back by that node and placed again.

A job that fits nowhere now stays pending with a message saying why, e.g.
"needs 8 cpus; the largest node has 4". Many placements come out of one call,
so one log entry can carry a whole round.

Cost: a round reads what can be placed, not what is queued. The table keeps its ready pending
jobs in buckets of one shape, each in the order above (``state.pending``), and its assigned and
running jobs apart; a round merges the heads of the buckets, places a head and moves to the next
job of that bucket, and leaves a bucket at the first head that cannot be placed (no later job of
that shape fits either: room only shrinks within a round). Rules 1-4 read nothing else, so a
round costs O(placed + buckets) heap steps plus O(active) to count the nodes' room. Why a job
that was not looked at waits follows from the round (its bucket stopped at an earlier head, for
a reason that holds for it too) and is worked out only when asked (``Placement.waiting``).
``scheduler.reference`` makes the same decisions by sorting every pending job each round, which
cost O(pending log pending) a round: 57 % of the daemon's CPU on a 10,000-job batch.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Collection, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from swarmcompute.scheduler.constraints import satisfies, unmet
from swarmcompute.scheduler.gang import GangRound, Room
from swarmcompute.state.commands import (
    Assignment,
    CancelJobs,
    FinishAttempt,
    ReleaseQueued,
    RequeueLost,
    SubmitJobs,
)
from swarmcompute.state.job import ACTIVE_STATES, Job, JobSpec, JobState, waits
from swarmcompute.state.pending import BucketKey, Entry, Key, Shape, bucket_of, shape_of
from swarmcompute.state.table import JobTable
from swarmcompute.units import counted, format_size, listed, plural

QUEUE_AHEAD = 4.0
"""How much work, as a multiple of its capacity, a node may hold queued beyond what it runs.

Deeper queues ride out longer refill round trips: 500 one-millisecond jobs on the 3-node
benchmark ran at about 350 jobs/s with 1, 480 with 4 and 570 with 8. Work queued on a node that
stays busy moves to a free one after ``rules.local_queue.HAND_BACK_AFTER_S``, so depth costs long
jobs at most that delay, never a slot."""

_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class NodeCapacity:
    """What one live node offers to the scheduler."""

    node_id: str
    name: str
    cpus: float
    mem_bytes: int
    gpus: int = 0
    images: frozenset[str] = field(default_factory=frozenset)
    users: frozenset[str] | None = None
    """The local users it can run jobs as (a root node); None: it runs every job as its own user."""
    gpu_cards: tuple[tuple[int, int], ...] = ()
    """(index, memory bytes) of each GPU, as nvidia-smi numbers them (empty: only ``gpus`` known)."""
    labels: tuple[tuple[str, str], ...] = ()
    """Its labels (``swarm join --label``): what ``--constraint`` matches."""
    docker: bool = True
    """Its Docker engine answered (from gossip; image jobs go only where it did)."""
    disk_full: bool = False
    """Its state directory takes no writes (from gossip): no new jobs go there until it does."""
    unpulled: frozenset[str] = field(default_factory=frozenset)
    """Images a job could not get there lately (from gossip, ``NodeMeta.unpulled``): no job of one
    goes there while it does not hold it."""

    def takes_work(self, drained: Container[str]) -> bool:
        """New work may go here: the node is not drained (``drained``: ``JobTable.drained``) and
        its state directory takes writes. What gangs and a hand-back ask (``_fits`` reads the same
        two flags off its round's slot, where the drain was looked up once)."""
        return self.node_id not in drained and not self.disk_full


@dataclass(slots=True)
class Placement:
    assignments: list[Assignment]
    waiting: Mapping[str, str]
    """job id -> why no node can take it now (resources, pins); worked out when asked, in O(1)."""
    blocked: Mapping[str, str] = field(default_factory=dict)
    """job id -> the parent jobs it still waits for (worked out when asked)."""
    gang_waits: tuple[Job, tuple[Room, ...]] | None = None
    """The gang that waits for room to start whole, ahead of everything after it (its rank 0),
    and the room of each node that may run it (``GangRound.waiting_for_room``)."""


@dataclass(slots=True)
class _Free:
    """A node's budget left, for the priority level being placed."""

    node: NodeCapacity
    budget_cpus: float
    cpus: float
    mem_bytes: int
    gpus: int
    jobs: int = 0
    drained: bool = False
    queued: list[Job] = field(default_factory=list)
    """Assigned, not yet started attempts, highest priority first: they reserve budget only
    once the round reaches their priority level."""
    weightless_queued: dict[int, int] = field(default_factory=dict)
    """The ``weightless`` ones among them, counted by priority (``JobTable.weightless_on``)."""


def place(
    table: JobTable,
    nodes: Iterable[NodeCapacity],
    now: float,
    *,
    limit: int = 1000,
    queue_ahead: float = QUEUE_AHEAD,
    ending: Collection[str] = (),
    incoming: Iterable[Job] = (),
    preferred: Mapping[str, str] | None = None,
) -> Placement:
    """Decide up to ``limit`` assignments for the pending jobs of ``table``.

    ``ending``: active jobs whose attempts end in the same log entry these assignments will
    ride in (results, losses, cancels applied just before them), so their room counts as free.
    ``incoming``: jobs submitted in that same entry, pending by the time the assignments apply.
    ``preferred``: job id -> the node to choose among equals (where its submitter waits).

    The line is the table's buckets (``state.pending``) merged by their heads: a job is looked
    at when it is the first of its bucket still in line, and a bucket whose head is not placed
    is done for the round (its other jobs wait for the same reason, worked out only when asked:
    ``Placement.waiting``). The same decisions as ``scheduler.reference``, which sorts every
    pending job each round.
    """
    free, in_flight = _table_budgets(table, nodes, queue_ahead, ending)
    line = _Line(table, now, incoming)
    found = _Round(table, now, line.incoming, line.keys)
    assignments: list[Assignment] = []
    gangs = GangRound(table, [s.node for s in free.values()], now, may_run_on, ending=ending, incoming=line.ready)
    level: int | None = None
    if limit <= 0:
        found.cut = _BEFORE_ALL
    while found.cut is None and (head := line.pop()) is not None:
        key, job = head
        if waits(job, now):  # its backoff outlasts a release (a clock set back)
            line.advance()
            continue
        spec = job.spec
        if spec.priority != level:
            level = spec.priority
            _reserve_queued(free.values(), level)
        if spec.ranks:  # a gang rank: its whole gang at once, or none of it (``scheduler.gang``)
            for a in gangs.place(job, assignments, found.explicit):
                _reserve(free[a.node_id], job)
                assignments.append(a)
            if gangs.ahead:  # it waits for room that fits it: nothing after it goes first
                found.cut, found.behind = key, gangs.behind
                break
            if len(assignments) >= limit:
                found.cut = key
                break
            continue  # its bucket holds only its gang, which the first rank places or holds whole
        if spec.array_limit and in_flight.get(spec.array_id, 0) >= spec.array_limit:
            found.full.setdefault(spec.array_id, _BEFORE_ALL)
            continue
        shape = shape_of(spec)
        if shape in found.failed:
            continue
        best = _best_node(job, free.values(), preferred.get(job.id) if preferred else None)
        if best is None:
            found.failed[shape] = (key, _why_not(job, free.values()))
            continue
        _reserve(best, job)
        assignments.append(Assignment(job.id, job.attempt + 1, best.node.node_id, revision=job.revision))
        found.placed.add(job.id)
        if spec.array_limit:
            in_flight[spec.array_id] = in_flight.get(spec.array_id, 0) + 1
            if in_flight[spec.array_id] >= spec.array_limit:
                found.full.setdefault(spec.array_id, key)
        if len(assignments) >= limit:
            found.cut = key
            break
        line.advance()
    return Placement(assignments, _Waiting(found), _Blocked(found), gangs.waiting_for_room if gangs.ahead else None)


def _budgets(
    active: Iterable[Job], nodes: Iterable[NodeCapacity], drained: Collection[str], queue_ahead: float,
    ending: Collection[str],
) -> tuple[dict[str, _Free], dict[str, int]]:  # fmt: skip
    """Each node's budget less what its running jobs hold (``active``: the assigned and running
    jobs, in submission order; others are skipped), its queued attempts aside; and each
    ``%``-limited array's elements assigned or running."""
    scale = 1.0 + max(queue_ahead, 0.0)
    free = {
        n.node_id: _Free(n, n.cpus * scale, n.cpus * scale, int(n.mem_bytes * scale), int(n.gpus * scale))
        for n in nodes
    }
    for node_id in drained:
        if node_id in free:
            free[node_id].drained = True
    in_flight: dict[str, int] = {}  # array id -> its elements assigned or running (``array_limit``)
    for job in active:
        if job.spec.array_limit and job.state in ACTIVE_STATES:
            in_flight[job.spec.array_id] = in_flight.get(job.spec.array_id, 0) + 1
        slot = free.get(job.node) if job.node is not None else None
        if slot is None or job.id in ending:
            continue
        if job.state is JobState.RUNNING:
            _reserve(slot, job)
        elif job.state is JobState.ASSIGNED:
            slot.queued.append(job)
    for slot in free.values():
        slot.queued.sort(key=lambda j: j.spec.priority)  # highest last: popped first
    return free, in_flight


def _table_budgets(
    table: JobTable, nodes: Iterable[NodeCapacity], queue_ahead: float, ending: Collection[str]
) -> tuple[dict[str, _Free], dict[str, int]]:
    """``_budgets`` of the table's active jobs, in O(the jobs that hold room + nodes x levels):
    the ``weightless`` ones only count on their node (``_reserve`` would leave every budget as it
    was, and add one to ``jobs``), so the table's counts of them stand in for walking them."""
    free, in_flight = _budgets(table.sized_active_jobs(), nodes, table.drained, queue_ahead, ending)
    for node_id, slot in free.items():
        running, queued = table.weightless_on(node_id)
        slot.jobs += running
        slot.weightless_queued = dict(queued)
    for job_id in set(ending):  # their room counts as free: ``_budgets`` leaves them out
        counted = table.weightless_counted(job_id)
        if counted is None or (ended := free.get(counted[0])) is None:
            continue
        if counted[1]:
            ended.jobs -= 1
        else:
            ended.weightless_queued[counted[2]] -= 1
    return free, in_flight


def _reserve_queued(free: Iterable[_Free], level: int) -> None:
    """The round reached priority ``level``: each node's queued attempts of it or higher hold
    their room from now on."""
    for slot in free:
        while slot.queued and slot.queued[-1].spec.priority >= level:
            _reserve(slot, slot.queued.pop())
        if slot.weightless_queued:
            for priority in [p for p in slot.weightless_queued if p >= level]:
                slot.jobs += slot.weightless_queued.pop(priority)


_BEFORE_ALL: Key = (-(2**63), float("-inf"), -1)
"""A key before every job's: an array already at its ``%`` limit when the round began."""


class _Line:
    """The round's line: the heads of the table's buckets, of the jobs whose backoff ended since
    the last ``release_backoffs``, and of the round's incoming jobs, merged by ``Key``."""

    def __init__(self, table: JobTable, now: float, incoming: Iterable[Job]) -> None:
        self.incoming = {j.id: j for j in incoming}
        self.keys: dict[str, Key] = {}
        """Incoming job id -> its key: after every job of the table (they became pending last)."""
        self.ready: list[Job] = []
        """The incoming jobs no backoff and no parent holds back."""
        extra: dict[BucketKey, list[Entry]] = {}
        for job in table.pending_index.due(now):
            key = table.pending_key(job.id)
            if key is not None:
                extra.setdefault(bucket_of(job.spec), []).append((*key, job))
        seq = table.pending_index.next_sequence
        for job in self.incoming.values():
            key = self.keys[job.id] = (-job.spec.priority, job.submitted_at, seq)
            seq += 1
            if waits(job, now) or ((job.spec.after or job.spec.after_any) and table.waiting_on(job)):
                continue
            self.ready.append(job)
            extra.setdefault(bucket_of(job.spec), []).append((*key, job))
        self._sources: list[Iterator[Entry]] = [iter(b) for b in table.pending_index.buckets()]
        self._sources += [iter(sorted(lane, key=_key_of)) for lane in extra.values()]
        self._heads: list[tuple[int, float, int, int, Job]] = []
        for i in range(len(self._sources)):
            self._push(i)
        heapq.heapify(self._heads)
        self._last = -1

    def pop(self) -> tuple[Key, Job] | None:
        """The next head in line (its bucket goes on only if ``advance`` is called)."""
        if not self._heads:
            return None
        neg_priority, at, seq, self._last, job = heapq.heappop(self._heads)
        return (neg_priority, at, seq), job

    def advance(self) -> None:
        """The last head's bucket goes on: its next job joins the heads."""
        entry = next(self._sources[self._last], None)
        if entry is not None:
            heapq.heappush(self._heads, (entry[0], entry[1], entry[2], self._last, entry[3]))

    def _push(self, i: int) -> None:
        entry = next(self._sources[i], None)
        if entry is not None:
            self._heads.append((entry[0], entry[1], entry[2], i, entry[3]))


def _key_of(entry: Entry) -> Key:
    return entry[0], entry[1], entry[2]


@dataclass(slots=True)
class _Round:
    """What a round found, from which the reason any job waits is worked out when asked: a job's
    bucket stopped at a head that came before it in line, for a reason that holds for it too."""

    table: JobTable
    now: float
    incoming: dict[str, Job]
    keys: dict[str, Key]
    placed: set[str] = field(default_factory=set)
    explicit: dict[str, str] = field(default_factory=dict)
    """Reasons given job by job (a gang's ranks)."""
    failed: dict[Shape, tuple[Key, str]] = field(default_factory=dict)
    """Shape -> the first job of it that fit nowhere, and why: no later job of it fits either."""
    full: dict[str, Key] = field(default_factory=dict)
    """Array id -> the job after which it had ``%`` elements in flight (``_BEFORE_ALL``: from the start)."""
    cut: Key | None = None
    """The round stopped after this job (the limit, or a gang waiting for room)."""
    behind: str = ""
    """Why the jobs after ``cut`` wait ("": they were not reached, the limit)."""

    def runnable(self, job_id: str) -> tuple[Job, Key] | None:
        """The job and its place in line, if it was pending and due at ``now`` (parents aside)."""
        job = self.incoming.get(job_id)
        if job is not None:
            key: Key | None = self.keys[job_id]
        else:
            job = self.table.get(job_id)
            key = self.table.pending_key(job_id) if job is not None else None
        if job is None or key is None or waits(job, self.now):
            return None
        return job, key

    def parents(self, job: Job) -> list[str]:
        return self.table.waiting_on(job) if job.spec.after or job.spec.after_any else []

    def waiting(self, job_id: str) -> str | None:
        if job_id in self.explicit:
            return self.explicit[job_id]
        found = self.runnable(job_id)
        if found is None or job_id in self.placed or self.parents(found[0]):
            return None
        job, key = found
        if self.cut is not None and key > self.cut:
            return self.behind or None
        spec = job.spec
        if spec.ranks:
            return None
        if spec.array_limit and self.full.get(spec.array_id, key) < key:
            return f"array {spec.array_id}: {spec.array_limit} of its jobs run at once (%{spec.array_limit})"
        failed = self.failed.get(shape_of(spec))
        return failed[1] if failed is not None and failed[0] <= key else None

    def blocked(self, job_id: str) -> str | None:
        found = self.runnable(job_id)
        parents = self.parents(found[0]) if found is not None else []
        return "waiting for parent jobs: " + listed(parents) if parents else None

    def candidates(self) -> Iterator[str]:
        """Every job a reason may be given for (O(pending): for tests and reports, not rounds)."""
        seen = set(self.explicit)
        yield from self.explicit
        for job in itertools.chain(self.table.pending_jobs(), self.incoming.values()):
            if job.id not in seen:
                seen.add(job.id)
                yield job.id


class _Waiting(Mapping[str, str]):
    """``Placement.waiting``: job id -> why it waits, worked out from the round when asked."""

    def __init__(self, found: _Round) -> None:
        self._found = found

    def __getitem__(self, job_id: str) -> str:
        why = self._found.waiting(job_id)
        if why is None:
            raise KeyError(job_id)
        return why

    def __iter__(self) -> Iterator[str]:
        return (j for j in self._found.candidates() if self._found.waiting(j) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _Blocked(Mapping[str, str]):
    """``Placement.blocked``: job id -> the parents that hold it back, worked out when asked."""

    def __init__(self, found: _Round) -> None:
        self._found = found

    def __getitem__(self, job_id: str) -> str:
        why = self._found.blocked(job_id)
        if why is None:
            raise KeyError(job_id)
        return why

    def __iter__(self) -> Iterator[str]:
        return (j for j in self._found.candidates() if self._found.blocked(j) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def ending_in(table: JobTable, commands: Iterable[object]) -> set[str]:
    """Active jobs whose current attempt ends with ``commands`` (results, losses, hand-backs,
    cancels): their room is free for placements applied after them (``place(ending=...)``)."""
    ending: set[str] = set()
    for cmd in commands:
        if isinstance(cmd, (FinishAttempt, RequeueLost, ReleaseQueued)):
            job = table.get(cmd.job_id)
            if job is not None and job.attempt == cmd.attempt and job.state in ACTIVE_STATES:
                ending.add(job.id)
        elif isinstance(cmd, CancelJobs):
            ending.update(j for j in cmd.job_ids if (job := table.get(j)) is not None and job.state in ACTIVE_STATES)
    return ending


def submitted_in(
    table: JobTable, commands: Iterable[object], at: float | None = None
) -> tuple[list[Job], dict[str, str]]:
    """New jobs ``commands`` submit, as the table will hold them once applied in an entry stamped
    ``at`` (``JobTable.apply``; ``place(incoming=...)``), and the node each was submitted through
    (``preferred``)."""
    incoming: dict[str, Job] = {}
    origin: dict[str, str] = {}
    for cmd in commands:
        if isinstance(cmd, SubmitJobs):
            for spec in cmd.jobs:
                if spec.id not in table and spec.id not in incoming:
                    incoming[spec.id] = Job(spec=spec, submitted_at=cmd.at if at is None else at, held=spec.hold)
                    if cmd.origin:
                        origin[spec.id] = cmd.origin
    return list(incoming.values()), origin


def _reserve(slot: _Free, job: Job) -> None:
    slot.cpus -= job.spec.cpus
    slot.mem_bytes -= job.spec.mem_bytes
    slot.gpus -= job.spec.gpus
    slot.jobs += 1


def _fits(job: Job, slot: _Free) -> bool:
    spec = job.spec
    node = slot.node
    if slot.drained or node.disk_full or not may_run_on(spec, node):
        return False
    return (
        spec.cpus <= min(slot.cpus, node.cpus) + _EPSILON
        and spec.mem_bytes <= min(slot.mem_bytes, node.mem_bytes)
        and spec.gpus <= min(slot.gpus, node.gpus)
    )


class NodeRoom:
    """What a node has free right now: its capacity minus everything active there, and how many
    attempts it has queued (assigned, not started). Where a queued attempt could start at once
    instead (``rules.local_queue``'s hand-back; ``scheduler.preemption``, which preempts only for
    an attempt no other node has this room for)."""

    __slots__ = ("node", "cpus", "mem_bytes", "gpus", "queued")

    def __init__(self, node: NodeCapacity) -> None:
        self.node = node
        self.cpus, self.mem_bytes, self.gpus = node.cpus, node.mem_bytes, node.gpus
        self.queued = 0

    def fits(self, spec: JobSpec, queued_here: int | None) -> bool:
        """Whether a job queued here (``queued_here`` attempts, it included; None: this node is
        leaving, so anywhere is better) could start there now. A job that holds no room (no cpus,
        memory or GPUs) fits any node, so what holds it up is the queue in front of it: it moves
        to a node with nothing queued, or while the other node's queue would stay at most half
        what is left here (without the first, a lone job a node did not start stayed there for
        good: `test_the_old_leader_of_two_rejoins_after_recover_on_the_survivor`). Before, such
        jobs moved whenever another node was up: 20,000 `--cpus 0` `true` jobs on 3 nodes were
        handed to and fro, 31-64 % of them starting on their first attempt and the rest on their
        2nd to 10th, at 327-763 jobs/s; after, all on their first, 748 and 1,057 jobs/s in the
        same 2 paired rounds as 446 and 763 before."""
        if not may_run_on(spec, self.node):
            return False
        if not (spec.cpus or spec.mem_bytes or spec.gpus) and queued_here is not None:
            return self.queued == 0 or 2 * (self.queued + 1) <= queued_here - 1
        return spec.cpus <= self.cpus + _EPSILON and spec.mem_bytes <= self.mem_bytes and spec.gpus <= self.gpus

    def take(self, spec: JobSpec, *, queued: bool) -> None:
        self.cpus -= spec.cpus
        self.mem_bytes -= spec.mem_bytes
        self.gpus -= spec.gpus
        self.queued += queued


PIN_PREFIX_MIN = 8
"""`--node` may name a node by a prefix of its id this long or longer (`swarm jobs` shows 12)."""


def pin_matches(pin: str, node_id: str, name: str) -> bool:
    """Whether ``--node PIN`` names this node: its name, its id, or a prefix of its id of at least
    ``PIN_PREFIX_MIN`` characters."""
    return pin in (node_id, name) or (len(pin) >= PIN_PREFIX_MIN and node_id.startswith(pin))


def may_run_on(spec: JobSpec, node: NodeCapacity) -> bool:
    """Whether ``node`` could ever run ``spec``, load aside: its pin, user, constraints, GPU
    memory, Docker engine and the image, where the node could not get it lately (the fit check's
    fixed half; ``rules.local_queue`` uses it too)."""
    if spec.node is not None and not pin_matches(spec.node, node.node_id, node.name):
        return False
    if not _has_user(node, spec.user):
        return False
    if spec.constraints and not satisfies(node.labels, spec.constraints):
        return False
    if spec.image is not None and (not node.docker or _could_not_get(node, spec.image)):
        return False
    return not spec.gpu_mem or _big_cards(node, spec.gpu_mem) >= spec.gpus


def _could_not_get(node: NodeCapacity, image: str) -> bool:
    """Whether a job could not get ``image`` on ``node`` lately, and the node does not hold it now."""
    return image in node.unpulled and image not in node.images


def held_elsewhere(spec: JobSpec, nodes: Iterable[NodeCapacity], here: str) -> bool:
    """Whether a node other than ``here`` holds ``spec``'s image and may run it: the attempt that
    could not get the image on ``here`` is then lost, not failed (it runs there, no retry spent);
    where none does (a misspelt name), the job fails at once, as any job that cannot start."""
    image = spec.image
    return image is not None and any(n.node_id != here and image in n.images and may_run_on(spec, n) for n in nodes)


def _big_cards(node: NodeCapacity, gpu_mem: int) -> int:
    """How many of its cards have at least ``gpu_mem`` bytes (0 where only a count is known)."""
    return sum(1 for _, mem in node.gpu_cards if mem >= gpu_mem)


def _has_user(node: NodeCapacity, user: str) -> bool:
    """Whether ``node`` can run a job of ``user`` ("" : the node's own user, anywhere)."""
    return node.users is None or not user or user in node.users


def _best_node(job: Job, slots: Iterable[_Free], preferred: str | None = None) -> _Free | None:
    fitting = [s for s in slots if _fits(job, s)]
    if not fitting:
        return None
    image = job.spec.image

    def score(s: _Free) -> tuple[int, float, int, bool, str]:
        has_image = 1 if image is not None and image in s.node.images and _idle_for(job, s) else 0
        share = s.cpus / s.budget_cpus if s.budget_cpus > 0 else 0.0
        return (-has_image, -share, s.jobs, s.node.node_id != preferred, s.node.node_id)

    return min(fitting, key=score)


def _idle_for(job: Job, slot: _Free) -> bool:
    """Whether ``slot``'s node has room for ``job`` now, not only in its queue-ahead budget."""
    queue_room = slot.budget_cpus - slot.node.cpus
    return job.spec.cpus <= slot.cpus - queue_room + _EPSILON


def _why_not(job: Job, slots: Collection[_Free]) -> str:
    spec = job.spec
    nodes = [s for s in slots]
    if not nodes:
        return "no live node to run it"
    if spec.node is not None:
        pinned = [s for s in nodes if pin_matches(spec.node, s.node.node_id, s.node.name)]
        if not pinned:
            return f"pinned to node {spec.node!r}, which is not live"
        nodes = pinned
    where = f"node {spec.node!r}" if spec.node is not None else "any live node"
    with_user = [s for s in nodes if _has_user(s.node, spec.user)]
    if not with_user:
        return f"user {spec.user} does not exist on {where}: it runs only where its submitter has an account"
    nodes = with_user
    if spec.constraints:
        matching = [s for s in nodes if satisfies(s.node.labels, spec.constraints)]
        if not matching:
            missed = sorted({c for s in nodes for c in unmet(s.node.labels, spec.constraints)})
            return (
                f"no live node matches its constraints ({', '.join(missed)} unmet on {where}):"
                " label a node with `swarm label NODE K=V`"
            )
        nodes = matching
    if spec.image is not None:
        with_docker = [s for s in nodes if s.node.docker]
        if not with_docker:
            return f"image job: no Docker engine answers on {where}: start dockerd there"
        nodes = with_docker
        gettable = [s for s in nodes if not _could_not_get(s.node, spec.image)]
        if not gettable:
            names = ", ".join(sorted(s.node.name for s in nodes))
            held = any(spec.image in s.node.images for s in slots)
            holders = "no node it may run on holds it" if held else "no node holds it"
            return f"image {spec.image}: {holders}, and {names} could not pull it: docker load it on one"
        nodes = gettable
    if spec.gpu_mem:
        big = [s for s in nodes if _big_cards(s.node, spec.gpu_mem) >= spec.gpus]
        if not big:
            most = max((_big_cards(s.node, spec.gpu_mem) for s in nodes), default=0)
            return (
                f"needs {counted(spec.gpus, 'GPU')} with at least {format_size(spec.gpu_mem)}"
                f"{' each' if spec.gpus > 1 else ''};"
                f" the most any node has is {most}"
            )
        nodes = big
    open_nodes = [s for s in nodes if not s.drained]
    if not open_nodes:
        names = ", ".join(sorted(s.node.name for s in nodes))
        return f"every node that could run it is drained ({names}): `swarm undrain NODE`"
    writable = [s for s in open_nodes if not s.node.disk_full]
    if not writable:
        names = ", ".join(sorted(s.node.name for s in open_nodes))
        return f"every node that could run it has a full state directory ({names}): free space there"
    nodes = writable
    largest_cpus = max(s.node.cpus for s in nodes)
    if spec.cpus > largest_cpus:
        return f"needs {spec.cpus:g} {plural(spec.cpus, 'cpu')}; the largest node has {largest_cpus:g}"
    largest_mem = max(s.node.mem_bytes for s in nodes)
    if spec.mem_bytes > largest_mem:
        return f"needs {format_size(spec.mem_bytes)} of memory; the largest node has {format_size(largest_mem)}"
    largest_gpus = max(s.node.gpus for s in nodes)
    if spec.gpus > largest_gpus:
        return f"needs {counted(spec.gpus, 'GPU')}; the largest node has {largest_gpus}"
    return "waiting for free resources (all fitting nodes are busy)"
