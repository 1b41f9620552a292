"""The attempts committed to this node that it has not started yet, and when to start them.

The leader gives a node a little more work than it can run at once (queue-ahead,
see ``scheduler.placement``), so the node starts its next attempt the moment one
ends instead of waiting two Raft round trips for a new assignment. This module
holds the node's side of that bargain, as plain rules with no I/O:

- Start in priority order, then submission order, while the node's own capacity
  (cpus, memory, gpus) has room for the attempt. A job the node cannot fit at all
  still starts when nothing else runs here: it was committed to this node, and
  waiting would only strand it.
- Hold queued work back while a higher-priority job that could run here is still
  pending: the leader is about to place it in front of the queue. Hold it back too where a
  higher-priority attempt queued on another, busy node would fit this node's free room now and
  no longer once it starts: that node hands it back (``to_hand_back``, which counts here only
  what runs or outranks it) and the leader places it here. (Before, the lower job started in
  the room the moment it freed, and the higher one waited on its busy node, or came here behind
  it, for the lower one's whole run.)
- Give each attempt that asks for GPUs its own cards: the lowest free indices
  with at least the job's ``gpu_mem``, held until the attempt's process has
  ended (``ended``), so two attempts never share a card. The daemon names them in
  ``CUDA_VISIBLE_DEVICES`` (``gpus_of``). A restarted daemon starts with every
  card free: the jobs of its earlier life were killed before it starts any.
- Start no image job while this node's Docker engine does not answer (``NodeCapacity.docker``,
  off the moment a job finds it gone): it waits queued, and is handed back like any other once
  another node could run it. (Each start failed at once as lost before, and the job was placed
  here again while gossip still said the engine answered: 290 attempts in 3.6 s.)
- Gang ranks (``--ranks``) come first and are never held back: the leader placed each one on
  room to start at once, and the gang's other ranks wait on it. A pending gang holds nothing back
  here (the leader places nothing behind a gang that waits for room: ``scheduler.gang``).
- A drained node (``JobTable.drained``) starts nothing more and hands back
  everything queued as soon as another node can run it, and at once what no other node may
  run (pinned here, or by its constraints): it waits pending, its reason naming the drain, and
  `swarm drain --wait` no longer waits on it (it waited for the undrain, counted as running). A
  node whose state directory is full keeps that work, and starts it itself once space is freed.
- Hand an attempt back (``ReleaseQueued``) when it has waited here for
  ``HAND_BACK_AFTER_S`` and another live node could run it now; a gang rank, whose gang
  waits on it, whenever it has waited that long (its gang is then placed again, whole). Only the node
  itself hands back, and never after starting the process, so no attempt is ever
  taken away from under a running process.
"""

from __future__ import annotations

from collections.abc import Iterable

from swarmcompute.scheduler.placement import NodeCapacity, NodeRoom, may_run_on
from swarmcompute.state.job import Job, JobSpec, JobState, waits
from swarmcompute.state.table import JobTable

HAND_BACK_AFTER_S = 1.0
"""How long a queued attempt waits on a busy node before it may move to a free one."""

_EPSILON = 1e-9

Key = tuple[str, int]


class LocalQueue:
    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._queued: dict[str, Job] = {}  # job id -> job, assigned here and not started
        self._queued_since: dict[str, float] = {}  # job id -> monotonic time it was first queued
        self._in_use: dict[Key, JobSpec] = {}  # attempts started here that have not ended
        self._assigned_at: dict[Key, float | None] = {}  # when each of those was assigned
        self._handed_back: dict[str, int] = {}  # job id -> the attempt handed back, until the table moves on
        self._ended: dict[str, int] = {}
        """Job id -> the attempt that ran here and ended, until the table moves on. Its start may
        never reach the table (a start notice is dropped when the end comes first), so the job is
        still assigned here by it until the end is committed; an entry that touches the job before
        that (`swarm update`, `swarm signal`, a paused daemon catching up) must not queue that
        attempt again: it would run twice (found by the job simulator, seed 43 with holds: a
        daemon paused while its job ended re-ran it on resume, when an update applied)."""
        self._cards: dict[Key, tuple[int, ...]] = {}  # GPU indices each started attempt holds
        self.held_at: int | None = None
        """The priority from which the last ``to_start`` held attempts back for a pending job of a
        higher one (None: it held nothing back): one of those leaving the line may free them."""

    def __len__(self) -> int:
        return len(self._queued)

    # -- following the table -----------------------------------------------------------

    def offer(self, job: Job, now: float) -> bool:
        """Queue ``job`` if it is an attempt committed to this node and not started; True if queued."""
        key = (job.id, job.attempt)
        if job.state is not JobState.ASSIGNED or job.node != self.node_id or key in self._in_use:
            self.forget(job.id)
            return False
        if self._handed_back.get(job.id) == job.attempt or self._ended.get(job.id) == job.attempt:
            return False
        if job.id not in self._queued:
            self._queued[job.id] = job
            self._queued_since[job.id] = now
        return True

    def forget(self, job_id: str) -> None:
        """The job is no longer queued here (started, cancelled, re-queued, finished)."""
        self._queued.pop(job_id, None)
        self._queued_since.pop(job_id, None)
        self._handed_back.pop(job_id, None)
        self._ended.pop(job_id, None)

    def handed_back(self, job_id: str) -> int | None:
        """The attempt of ``job_id`` this node handed back, until the table moves on (None: none)."""
        return self._handed_back.get(job_id)

    # -- starting ------------------------------------------------------------------------

    def to_start(self, table: JobTable, capacity: NodeCapacity, now_wall: float) -> list[Job]:
        """The queued attempts to start now, in order; each is moved to "in use". None while this
        node is drained (`swarm drain`) or its state directory takes no writes (``disk_full``: their
        output could not be kept): what it had queued waits to be handed back, or for space."""
        self.held_at = None
        if not self._queued or self.leaving(table, (capacity,)):
            return []
        free_cpus = capacity.cpus - sum(s.cpus for s in self._in_use.values())
        free_mem = capacity.mem_bytes - sum(s.mem_bytes for s in self._in_use.values())
        free_gpus = capacity.gpus - sum(s.gpus for s in self._in_use.values())
        held = {i for cards in self._cards.values() for i in cards}
        free_cards = [(i, mem) for i, mem in capacity.gpu_cards if i not in held]
        chosen: dict[Key, tuple[int, ...]] = {}
        highest_pending = table.highest_pending_priority()
        highest_queued = table.highest_queued_priority()  # (one level, the common case: no job makes way)
        picked: list[Job] = []
        cleared: int | None = None  # a priority level no runnable pending job outranks here
        # Gang ranks first: the leader placed each on room to start at once, and the others wait on it.
        for job in sorted(self._queued.values(), key=lambda j: (not j.spec.ranks, -j.spec.priority, j.submitted_at)):
            spec = job.spec
            if spec.image is not None and not capacity.docker:
                continue  # its engine is found gone: it waits here until it answers, or is handed back
            outranked = highest_pending is not None and highest_pending > spec.priority and not spec.ranks
            if outranked and cleared != spec.priority:
                if _higher_priority_waits(table, spec.priority, capacity, now_wall):
                    self.held_at = spec.priority
                    break  # everything after this one has the same or a lower priority
                cleared = spec.priority
            cards = [i for i, mem in free_cards if mem >= spec.gpu_mem][: spec.gpus]
            fits = spec.cpus <= free_cpus + _EPSILON and spec.mem_bytes <= free_mem and spec.gpus <= free_gpus
            if capacity.gpu_cards and len(cards) < spec.gpus:
                fits = False
            if not fits and (self._in_use or picked):
                continue
            makes_way = highest_queued is not None and highest_queued > spec.priority and not spec.ranks
            if makes_way and self._makes_way(table, spec, capacity, (free_cpus, free_mem, free_gpus)):
                self.held_at = spec.priority
                break  # what follows has the same or a lower priority, and would take that room too
            free_cpus -= spec.cpus
            free_mem -= spec.mem_bytes
            free_gpus -= spec.gpus
            free_cards = [c for c in free_cards if c[0] not in cards]
            chosen[(job.id, job.attempt)] = tuple(cards)
            picked.append(job)
        for job in picked:
            self.started(job)
            key = (job.id, job.attempt)
            if chosen[key]:
                self._cards[key] = chosen[key]
        return picked

    def _makes_way(self, table: JobTable, spec: JobSpec, capacity: NodeCapacity, free: tuple[float, int, int]) -> bool:
        """Whether starting ``spec`` here would take the room that an attempt of a higher
        priority queued on another node (``JobTable.queued_above``) fits now: that one is
        handed back to come here (``to_hand_back``). A job that holds no room takes none. The
        placement's fit check (``NodeRoom.fits``) on this node's free room, before and after."""
        if not (spec.cpus or spec.mem_bytes or spec.gpus):
            return False
        now, after = NodeRoom(capacity), NodeRoom(capacity)
        now.cpus, now.mem_bytes, now.gpus = after.cpus, after.mem_bytes, after.gpus = free
        after.take(spec, queued=False)
        return any(
            other.node != self.node_id and not other.spec.ranks and now.fits(other.spec, None)
            and not after.fits(other.spec, None)
            for other in table.queued_above(spec.priority)
        )  # fmt: skip

    def is_started(self, job_id: str, attempt: int) -> bool:
        """Whether that attempt was taken to start here (``to_start``) and has not ended."""
        return (job_id, attempt) in self._in_use

    def gpus_of(self, job_id: str, attempt: int) -> tuple[int, ...]:
        """The GPU indices an attempt started here holds (none: it asked for none)."""
        return self._cards.get((job_id, attempt), ())

    def started(self, job: Job) -> None:
        self.forget(job.id)
        self._in_use[(job.id, job.attempt)] = job.spec
        self._assigned_at[(job.id, job.attempt)] = job.assigned_at

    def assigned_at(self, job_id: str, attempt: int) -> float | None:
        """When an attempt started here was assigned, as the table said when it started (None:
        not started here in this daemon's life)."""
        return self._assigned_at.get((job_id, attempt))

    def ended(self, job_id: str, attempt: int, *, ran: bool = False) -> None:
        """The attempt is no longer in use here: its process ended (``ran``: it is never queued
        again, ``_ended``), or it was taken to start and did not (it may be queued again)."""
        if self._in_use.pop((job_id, attempt), None) is not None and ran:
            self._ended[job_id] = attempt
        self._assigned_at.pop((job_id, attempt), None)
        self._cards.pop((job_id, attempt), None)

    # -- handing back --------------------------------------------------------------------

    def leaving(self, table: JobTable, nodes: Iterable[NodeCapacity]) -> str:
        """Why every attempt queued here should go where there is room now, without waiting its
        turn ("": no reason): this node is drained, or its state directory takes no writes
        (``nodes``: every live node's capacity, this one's included)."""
        if self.node_id in table.drained:
            return "its node is drained"
        if any(n.node_id == self.node_id and n.disk_full for n in nodes):
            return "its node's state directory is full"
        return ""

    def to_hand_back(self, table: JobTable, others: Iterable[NodeCapacity], now: float) -> list[Job]:
        """Queued attempts that waited ``HAND_BACK_AFTER_S`` here while another node could run them
        now; all of them at once while this node is ``leaving``. Never to a node that is drained or
        whose state directory is full, as placement."""
        others = list(others)
        leaving = bool(self.leaving(table, others))
        drained = self.node_id in table.drained  # a full state directory keeps what no other node may run
        overdue = [
            j for j in self._queued.values()
            if leaving or now - self._queued_since.get(j.id, now) >= HAND_BACK_AFTER_S
        ]  # fmt: skip
        if not overdue:
            return []
        takers = [n for n in others if n.node_id != self.node_id and n.takes_work(table.drained)]
        there = [j for j in table.active_jobs() if j.node is not None and j.node != self.node_id]
        rooms: dict[str, NodeRoom] = {}
        level: int | None = None
        moved: list[Job] = []
        taken: list[tuple[str, JobSpec]] = []  # (node, job) for each moved so far that room took
        left = len(self._queued)
        for job in sorted(overdue, key=lambda j: (-j.spec.priority, j.submitted_at)):
            if job.spec.ranks:  # a gang rank that cannot start here holds its gang up: placed again, whole
                moved.append(job)
                continue
            if job.spec.priority != level:
                level = job.spec.priority
                rooms = self._rooms(takers, there, level, taken)
            room = next((r for r in rooms.values() if r.fits(job.spec, None if leaving else left)), None)
            if room is not None:
                room.take(job.spec, queued=True)
                taken.append((room.node.node_id, job.spec))
                moved.append(job)
                left -= 1
            elif drained and not any(may_run_on(job.spec, r.node) for r in rooms.values()):
                moved.append(job)  # pinned here, or no other node has its labels: it waits pending, saying why
        for job in moved:
            self._queued.pop(job.id, None)
            self._queued_since.pop(job.id, None)
            self._handed_back[job.id] = job.attempt
        return moved

    def _rooms(
        self, takers: Iterable[NodeCapacity], there: Iterable[Job], level: int, taken: Iterable[tuple[str, JobSpec]]
    ) -> dict[str, NodeRoom]:
        """The other nodes' room for a job of priority ``level``: less what runs there and what
        is queued there at that priority or above (a node starts its queue highest first and
        holds lower work back for this job, ``_makes_way``; the leader reserves the same), less
        what this pass already moved there (``taken``)."""
        rooms = {n.node_id: NodeRoom(n) for n in takers}
        for job in there:
            room = rooms.get(job.node) if job.node is not None else None
            queued = job.state is JobState.ASSIGNED
            if room is not None and (not queued or job.spec.priority >= level):
                room.take(job.spec, queued=queued)
        for room in rooms.values():  # what this node handed back and the table still has here may go anywhere
            room.queued += len(self._handed_back)
        for node_id, spec in taken:
            rooms[node_id].take(spec, queued=True)
        return rooms


def _higher_priority_waits(table: JobTable, priority: int, capacity: NodeCapacity, now: float) -> bool:
    """Whether a pending, runnable job of a higher priority could run on this node.

    Reads the heads of the table's buckets of ready jobs (``state.pending``: one shape each,
    highest priority first) and the jobs whose backoff ended since the last release, not every
    pending job: a node starting its queue under a 100,000-job backlog of another priority
    scanned it all for each start."""
    running: dict[str, int] | None = None  # %-limited arrays' elements assigned or running, once asked

    def at_limit(spec: JobSpec) -> bool:
        """An element of an array that runs its ``%N`` already: the leader places none of it now
        (a `--priority 5 --array 0-9%1` held every lower job back on every node it fitted)."""
        nonlocal running
        if not spec.array_limit:
            return False
        if running is None:
            running = {}
            for job in table.active_jobs():
                if job.spec.array_limit:
                    running[job.spec.array_id] = running.get(job.spec.array_id, 0) + 1
        return running.get(spec.array_id, 0) >= spec.array_limit

    for bucket in table.pending_index.buckets():
        head = bucket[0][3].spec
        if -bucket[0][0] <= priority or not _could_run(head, capacity) or at_limit(head):
            continue  # nothing in it outranks, its shape cannot run here, or its array is at its limit
        for neg_priority, _, _, job in bucket:
            if -neg_priority <= priority:
                break
            if not waits(job, now):
                return True
    return any(
        j.spec.priority > priority and _could_run(j.spec, capacity) and not at_limit(j.spec)
        for j in table.pending_index.due(now)
    )


def _could_run(spec: JobSpec, capacity: NodeCapacity) -> bool:
    """Whether a job of ``spec`` could start on this node, room aside (gang ranks never count:
    the leader holds work back for a gang itself): its size, and the placement's own test of
    pin, user, constraints, GPU memory and Docker engine. (With the pin alone, one pending job of
    a higher priority that no node could run, a constraint no node meets, held every lower
    one back on every node its size fitted, for good.)"""
    if spec.ranks or not may_run_on(spec, capacity):
        return False
    return spec.cpus <= capacity.cpus + _EPSILON and spec.mem_bytes <= capacity.mem_bytes and spec.gpus <= capacity.gpus
