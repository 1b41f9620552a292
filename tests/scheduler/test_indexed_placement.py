"""The indexed placement decides exactly what the reference placement (sort every pending job) does.

Hypothesis chooses a seed and a length; the seeded run drives a table through random commands (submissions of every shape: priorities,
resources, pins, users, constraints, images, GPU memory, arrays with ``%`` limits, gangs,
``--after``/``--after-any``; assignments, starts, results with retries, losses, hand-backs,
cancels, drains, prunes, snapshot restores, backoff releases) and, between them, asks both for a
round with random nodes, clock, limit, queue-ahead, ending jobs, incoming jobs and preferences:
the assignments, the waiting reasons and the blocked jobs must be equal. A node's own question
of the buckets (``rules.local_queue``: does a higher-priority job that could run here wait?) must
answer as a scan of every pending job does.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmcompute.arrays import elements
from swarmcompute.rules.local_queue import _higher_priority_waits
from swarmcompute.scheduler.placement import NodeCapacity, Placement, may_run_on, place, submitted_in
from swarmcompute.scheduler.reference import reference_place
from swarmcompute.state.commands import (
    AssignJobs,
    Assignment,
    CancelJobs,
    FinishAttempt,
    ReleaseQueued,
    RequeueLost,
    StartAttempt,
    SubmitJobs,
    UpdateJobs,
)
from swarmcompute.state.drain import SetDrained
from swarmcompute.state.gangs import ranks_of
from swarmcompute.state.history import PruneJobs
from swarmcompute.state.job import ACTIVE_STATES, AttemptEnd, Job, JobChanges, JobSpec, JobState, waits
from swarmcompute.state.snapshot import restore_table, snapshot_table
from swarmcompute.state.table import JobTable, weightless

GIB = 2**30
NODE_IDS = ("n0", "n1", "n2", "n3")

CPUS = (0.0, 0.0, 0.1, 0.2, 0.3, 0.5, 1.0, 1.0, 1.0, 1.5, 2.0, 3.0)  # 0.0 twice: weightless jobs
PRIORITIES = (0, 0, 0, 1, 5, -1)
PINS = (None, None, None, "n0", "node1", "nowhere")
IMAGES = (None, None, "img:a", "img:b")
CONSTRAINTS = ((), (), ("zone=a",), ("zone!=a",))
USERS = ("", "", "alice", "bob")


def _spec(rng: random.Random, job_id: str, parents: list[str]) -> JobSpec:
    after: tuple[str, ...] = ()
    after_any: tuple[str, ...] = ()
    if parents and rng.randint(0, 3) == 0:
        after = (rng.choice(parents),)
    if parents and rng.randint(0, 5) == 0:
        after_any = (rng.choice(parents),)
    return JobSpec(
        id=job_id,
        argv=("true",),
        priority=rng.choice(PRIORITIES),
        cpus=rng.choice(CPUS),
        mem_bytes=rng.choice((0, 0, GIB, 3 * GIB)),
        gpus=rng.choice((0, 0, 0, 1, 2)),
        gpu_mem=rng.choice((0, 0, 8 * GIB)),
        node=rng.choice(PINS),
        image=rng.choice(IMAGES),
        constraints=rng.choice(CONSTRAINTS),
        user=rng.choice(USERS),
        retries=rng.randint(0, 2),
        after=after,
        after_any=after_any,
        hold=rng.random() < 0.05,  # never released here: it must simply never be placed
        begin_at=rng.choice((0.0, 0.0, 0.0, 0.0, 0.0, 5.0, 20.0, 60.0)),  # the world's clock starts at 1
    )


def _batch(rng: random.Random, prefix: str, parents: list[str]) -> list[JobSpec]:
    """One submission: a few plain jobs, an array, or a gang."""
    kind = rng.randint(0, 9)
    if kind == 0:
        limit = rng.randint(0, 3)
        pattern = f"0-{rng.randint(1, 4)}" + (f"%{limit}" if limit else "")
        return elements(_spec(rng, prefix, parents), pattern)
    if kind == 1:
        spec = _spec(rng, prefix, [])
        ranks = rng.randint(1, 3)
        return ranks_of(spec, ranks, rng.randint(0, ranks))
    return [_spec(rng, f"{prefix}{i}", parents) for i in range(rng.randint(1, 3))]


def _nodes(rng: random.Random) -> list[NodeCapacity]:
    count = rng.randint(0, 4)
    nodes = []
    for i in range(count):
        gpus = rng.randint(0, 2)
        nodes.append(
            NodeCapacity(
                NODE_IDS[i],
                f"node{i}",
                cpus=rng.choice((0.5, 1.0, 2.0, 4.0)),
                mem_bytes=rng.choice((GIB, 2 * GIB, 4 * GIB)),
                gpus=gpus,
                images=frozenset(rng.sample(("img:a", "img:b"), rng.randint(0, 2))),
                users=rng.choice((None, frozenset({"alice"}), frozenset({"alice", "bob"}))),
                gpu_cards=tuple((g, rng.choice((4 * GIB, 16 * GIB))) for g in range(gpus)),
                labels=rng.choice(((), (("zone", "a"),), (("zone", "b"),))),
                docker=rng.random() < 0.5,
                unpulled=frozenset(rng.sample(("img:a", "img:b"), rng.randint(0, 1))),
            )
        )
    return nodes


class _World:
    def __init__(self) -> None:
        self.table = JobTable()
        self.at = 1.0
        self.batches = 0

    def ids(self, pick: Callable[[JobState], bool]) -> list[str]:
        return sorted(j.id for j in self.table.jobs() if pick(j.state))

    def step(self, rng: random.Random) -> None:
        table = self.table
        op = rng.randint(0, 12)
        if rng.randint(0, 2):  # ties in submission time happen (one batch, one `at`)
            self.at += rng.choice((0.25, 1.0, 3.0))
        pending = self.ids(lambda s: s is JobState.PENDING)
        assigned = self.ids(lambda s: s is JobState.ASSIGNED)
        active = self.ids(lambda s: s in ACTIVE_STATES)
        if op <= 3 or not table:
            self.batches += 1
            specs = _batch(rng, f"b{self.batches}-", sorted(j.id for j in table.jobs()) + ["missing"])
            table.apply(SubmitJobs(tuple(specs), self.at, origin=rng.choice(("", "n0", "n1"))))
        elif op <= 5 and pending:
            chosen = rng.sample(pending, min(len(pending), rng.randint(1, 4)))
            node = rng.choice(NODE_IDS)
            attempts = {j: table.get(j).attempt + 1 for j in chosen}  # type: ignore[union-attr]
            table.apply(AssignJobs(tuple(Assignment(j, attempts[j], node) for j in chosen), self.at))
        elif op == 6 and assigned:
            job = table.get(rng.choice(assigned))
            assert job is not None and job.node is not None
            table.apply(StartAttempt(job.id, job.attempt, job.node, self.at))
        elif op == 7 and active:
            job = table.get(rng.choice(active))
            assert job is not None and job.node is not None
            end = rng.choice((AttemptEnd.EXITED, AttemptEnd.EXITED, AttemptEnd.STOPPED))
            code = rng.choice((0, 1))
            table.apply(FinishAttempt(job.id, job.attempt, job.node, code, end, None, b"", self.at, self.at))
        elif op == 8 and active:
            job = table.get(rng.choice(active))
            assert job is not None
            table.apply(RequeueLost(job.id, job.attempt, "node gone", self.at))
        elif op == 9 and assigned:
            job = table.get(rng.choice(assigned))
            assert job is not None and job.node is not None
            table.apply(ReleaseQueued(job.id, job.attempt, job.node, "busy", self.at))
        elif op == 10:
            open_ids = sorted(table.open_ids)
            if open_ids:
                table.apply(CancelJobs((rng.choice(open_ids),), "cancelled", self.at))
        elif op == 11:
            table.apply(SetDrained(rng.choice(NODE_IDS), rng.random() < 0.5, self.at))
        else:
            what = rng.randint(0, 3)
            if what == 3 and pending:  # `swarm update`: a new priority, size, pin or start time
                changes = JobChanges(
                    priority=rng.choice((None, -1, 0, 1, 2)),
                    cpus=rng.choice((None, 0.0, 0.5, 2.0)),
                    node=rng.choice((None, "", "n1", "node2")),
                    begin_at=rng.choice((None, 0.0, self.at + 2.0)),
                )
                table.apply(UpdateJobs((rng.choice(pending),), changes, "", self.at))
            elif what == 0:
                finished = [j.id for j in table.finished_jobs()]
                if finished:
                    table.apply(PruneJobs(tuple(rng.sample(finished, min(len(finished), rng.randint(0, 3)))), self.at))
            elif what == 1:
                self.table = restore_table(snapshot_table(table))
            else:
                table.release_backoffs(self.at + rng.choice((-1.0, 0.0, 0.5, 2.0, 100.0)))


def _same(got: Placement, ref: Placement) -> None:
    assert got.assignments == ref.assignments
    assert dict(got.waiting) == dict(ref.waiting)
    assert dict(got.blocked) == dict(ref.blocked)


def _compare(rng: random.Random, world: _World) -> None:
    table = world.table
    nodes = _nodes(rng)
    now = world.at + rng.choice((-2.0, 0.0, 0.5, 1.0, 5.0, 100.0))
    active = sorted(j.id for j in table.jobs() if j.state in ACTIVE_STATES)
    ending = set(rng.sample(active, min(len(active), rng.randint(0, 3))))
    incoming_cmds = []
    if rng.random() < 0.5:
        world.batches += 1
        specs = _batch(rng, f"new{world.batches}-", sorted(j.id for j in table.jobs()))
        incoming_cmds.append(SubmitJobs(tuple(specs), world.at + 0.5, origin=rng.choice(("", "n1", "n2"))))
    incoming, preferred = submitted_in(table, incoming_cmds)
    kwargs = {
        "limit": rng.choice((1000, 1000, 3, 1, 0)),
        "queue_ahead": rng.choice((0.0, 1.0, 4.0)),
        "ending": ending,
        "incoming": incoming,
        "preferred": preferred,
    }
    _same(place(table, nodes, now, **kwargs), reference_place(table, nodes, now, **kwargs))  # type: ignore[arg-type]
    _weightless_counts_match_a_scan(table)
    for node in nodes:
        for priority in (-1, 0, 1):
            assert _higher_priority_waits(table, priority, node, now) == _scanned(table, priority, node, now)


def _weightless_counts_match_a_scan(table: JobTable) -> None:
    """The table's counts of its active ``weightless`` jobs, kept as commands apply, are what a
    scan of every job finds; the other active jobs are ``sized_active_jobs``, in order."""
    running: Counter[str] = Counter()
    queued: dict[str, Counter[int]] = {}
    sized = []
    for job in table.active_jobs():
        if job.node is None or not weightless(job.spec):
            sized.append(job.id)
        elif job.state is JobState.RUNNING:
            running[job.node] += 1
        else:
            queued.setdefault(job.node, Counter())[job.spec.priority] += 1
    assert [j.id for j in table.sized_active_jobs()] == sized
    for node in {*NODE_IDS, *running, *queued}:
        counted_running, counted_queued = table.weightless_on(node)
        assert (counted_running, dict(counted_queued)) == (running[node], dict(queued.get(node, {})))


def _scanned(table: JobTable, priority: int, capacity: NodeCapacity, now: float) -> bool:
    """``rules.local_queue``'s question (does a runnable job of a higher priority that could run
    on this node wait?) asked of every pending job, as it was before the buckets."""
    for job in table.pending_jobs():
        spec = job.spec
        if spec.priority <= priority or waits(job, now) or job.held or spec.ranks:
            continue
        if not may_run_on(spec, capacity):
            continue
        if spec.cpus > capacity.cpus + 1e-9 or spec.mem_bytes > capacity.mem_bytes or spec.gpus > capacity.gpus:
            continue
        if (spec.after or spec.after_any) and table.waiting_on(job):
            continue
        if (
            spec.array_limit
            and sum(1 for j in table.active_jobs() if j.spec.array_id == spec.array_id) >= spec.array_limit
        ):
            continue  # its array runs its %N: none of it is placed now
        return True
    return False


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 60))
def test_indexed_placement_decides_as_the_reference_for_random_tables_and_nodes(seed: int, steps: int) -> None:
    rng = random.Random(seed)
    world = _World()
    for _ in range(steps):
        world.step(rng)
        if rng.randint(0, 3) == 0:
            _compare(rng, world)
    _compare(rng, world)


class _NoScans(JobTable):
    """A table that fails a test which reads every open, pending or active job while ``scans`` is off."""

    scans = True

    def pending_jobs(self) -> Iterator[Job]:
        assert self.scans, "the round read every pending job"
        return super().pending_jobs()

    def open_jobs(self) -> Iterator[Job]:
        assert self.scans, "the round read every open job"
        return super().open_jobs()

    def active_jobs(self) -> list[Job]:
        assert self.scans, "the round walked every active job"
        return super().active_jobs()


def test_a_round_over_a_deep_queue_reads_neither_every_pending_nor_every_open_job() -> None:
    """10,000 queued jobs of two shapes on a node with room for 10: the round places 10 without
    reading the whole queue, and yet any queued job can be told why it waits."""
    table = _NoScans()
    table.apply(SubmitJobs(tuple(JobSpec(id=f"j{i}", argv=("true",)) for i in range(10_000)), 1.0))
    table.apply(SubmitJobs(tuple(JobSpec(id=f"big{i}", argv=("true",), cpus=8) for i in range(100)), 2.0))
    table.apply(AssignJobs((Assignment("j0", 1, "n0"),), 3.0))
    node = NodeCapacity("n0", "one", cpus=2, mem_bytes=GIB)
    table.scans = False
    got = place(table, [node], 5.0)
    assert [a.job_id for a in got.assignments] == [f"j{i}" for i in range(1, 10)]
    assert got.waiting["j9999"] == "waiting for free resources (all fitting nodes are busy)"
    assert got.waiting["big99"] == "needs 8 cpus; the largest node has 2"
    assert "j1" not in got.waiting and "j0" not in got.waiting
    table.scans = True
    _same(got, reference_place(table, [node], 5.0))


def test_a_round_counts_thousands_of_weightless_attempts_without_walking_them() -> None:
    """20,000 `--cpus 0` jobs, most of them assigned to the one node (as a batch of them is, all at
    once) and some running: a round places the next ones from counts, as the reference does by
    walking every one (the ``jobs`` tie-break sends the next jobs to the emptier node)."""
    table = _NoScans()
    table.apply(SubmitJobs(tuple(JobSpec(id=f"z{i}", argv=("true",), cpus=0) for i in range(20_000)), 1.0))
    table.apply(SubmitJobs((JobSpec(id="sized", argv=("true",), cpus=1, priority=1),), 1.5))
    table.apply(AssignJobs(tuple(Assignment(f"z{i}", 1, "n0") for i in range(15_000)), 2.0))
    table.apply(AssignJobs((Assignment("sized", 1, "n0"),), 2.0))
    for i in range(100):
        table.apply(StartAttempt(f"z{i}", 1, "n0", 3.0))
    nodes = [NodeCapacity("n0", "zero", cpus=2, mem_bytes=GIB), NodeCapacity("n1", "one", cpus=2, mem_bytes=GIB)]
    ending = {"z0", "z5000"}
    table.scans = False
    got = place(table, nodes, 5.0, ending=ending, limit=50)
    table.scans = True
    assert got.assignments == reference_place(table, nodes, 5.0, ending=ending, limit=50).assignments
    assert {a.node_id for a in got.assignments} == {"n1"} and len(got.assignments) == 50
    assert [j.id for j in table.sized_active_jobs()] == ["sized"]
    assert table.weightless_on("n0") == (100, {0: 14_900})
