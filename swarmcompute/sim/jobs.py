"""A seeded simulation of jobs across a cluster: placement, queue-ahead and fencing together.

The pure pieces that decide where and when jobs run (``JobTable``, ``place`` with the room a
batch frees and the jobs it submits, each node's ``LocalQueue``) run here against a fake clock,
with random job lengths and exit codes, retries, cancels, node crashes and restarts. Raft is
left out on purpose: it is simulated on its own (``raft_cluster``), and here the log is one
ordered list applied everywhere at once, which is what Raft guarantees the table.

Checked after every step (invariants 3-5 in docs/architecture.md, plus capacity):

- a node never runs more than its capacity, except one job larger than the node alone;
- at most one process per job runs at any time, and only for the table's current attempt on
  that node (fencing);
- at the end every job is terminal, and a succeeded job succeeded in its final attempt once.

Partitions are simulated too: a cut-off node runs on and starts what it has queued, hears
nothing, and is declared dead after ``DETECT_DEAD_S``; when it heals it catches up, which must
stop its stale attempts at once, and its late results must be ignored.

``python -m swarmcompute.sim`` drives the Raft sweep; this one runs from the tests
(``tests/sim/test_job_sim.py``) and replays exactly from its seed.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import Any

from swarmcompute.node.local_queue import LocalQueue
from swarmcompute.scheduler.placement import NodeCapacity, ending_in, place, submitted_in
from swarmcompute.state.commands import (
    AssignJobs,
    CancelJobs,
    Command,
    FinishAttempt,
    ReleaseQueued,
    RequeueLost,
    StartAttempt,
    SubmitJobs,
)
from swarmcompute.state.job import ACTIVE_STATES, JobSpec, JobState
from swarmcompute.state.table import JobTable

BATCH_S = 0.005
HAND_BACK_CHECK_S = 1.0
DETECT_DEAD_S = 0.5


class InvariantBroken(AssertionError):
    """A checked property failed; the message names the seed and the simulated time."""


@dataclass
class _Node:
    capacity: NodeCapacity
    queue: LocalQueue
    alive: bool = True
    cut: bool = False
    """Partitioned away: its processes run on, it hears nothing and nothing it says arrives."""
    declared_dead: bool = False
    unheard: set[str] = field(default_factory=set)  # job ids changed while it was cut off
    outbox: list[Command] = field(default_factory=list)  # what it said while cut off
    running: dict[tuple[str, int], float] = field(default_factory=dict)  # (job, attempt) -> cpus


class JobSim:
    def __init__(
        self,
        seed: int,
        *,
        nodes: int = 3,
        jobs: int = 60,
        crashes: int = 2,
        cuts: int = 3,
        queue_type: type[LocalQueue] = LocalQueue,
    ) -> None:
        self.seed = seed
        self._queue_type = queue_type
        self.rng = random.Random(seed)
        self.now = 0.0
        self.table = JobTable()
        self.nodes = {
            f"n{i}": _Node(
                NodeCapacity(f"n{i}", f"n{i}", float(self.rng.choice((1, 2, 4))), 8 * 2**30), queue_type(f"n{i}")
            )
            for i in range(nodes)
        }
        self.nodes["n0"].capacity = NodeCapacity("n0", "n0", 4.0, 8 * 2**30)  # every job fits somewhere
        self._events: list[tuple[float, int, str, Any]] = []
        self._seq = 0
        self._batch: list[Command] = []
        self._successes: dict[str, int] = {}
        self._schedule_jobs(jobs)
        for _ in range(crashes):
            victim = self.rng.choice(sorted(self.nodes))
            at = self.rng.uniform(0.05, 2.0)
            self._at(at, "crash", victim)
            self._at(at + self.rng.uniform(0.2, 3.0), "restart", victim)
        for _ in range(cuts):
            victim = self.rng.choice(sorted(self.nodes))
            at = self.rng.uniform(0.05, 2.0)
            self._at(at, "cut", victim)
            self._at(at + self.rng.uniform(0.1, 2.0), "heal", victim)
        self._at(BATCH_S, "batch", None)
        self._at(HAND_BACK_CHECK_S, "hand_back", None)

    # -- driving ---------------------------------------------------------------------

    def run(self, until_s: float = 120.0) -> None:
        """Run until every job is terminal (or ``until_s`` of simulated time), checking as it goes."""
        while self._events and self.now < until_s:
            self.now, _, kind, arg = heapq.heappop(self._events)
            getattr(self, "_on_" + kind)(arg)
            self._check()
            if kind == "batch" and self._all_done():
                break
        self._check_end()

    def _at(self, when: float, kind: str, arg: Any) -> None:
        self._seq += 1
        heapq.heappush(self._events, (when, self._seq, kind, arg))

    def _schedule_jobs(self, count: int) -> None:
        made: list[str] = []
        for i in range(count):
            job_id = f"j{i:03d}"
            after = (self.rng.choice(made),) if made and self.rng.random() < 0.15 else ()
            spec = JobSpec(
                id=job_id, argv=("sim",), priority=self.rng.choice((0, 0, 0, 5)),
                cpus=self.rng.choice((0.0, 0.5, 1.0, 1.0, 2.0)), retries=self.rng.choice((0, 1, 2)), after=after,
            )  # fmt: skip
            self._at(self.rng.uniform(0.0, 1.0), "submit", spec)
            if self.rng.random() < 0.08:
                self._at(self.rng.uniform(0.0, 2.0), "cancel", job_id)
            made.append(job_id)

    # -- events ----------------------------------------------------------------------

    def _on_submit(self, spec: JobSpec) -> None:
        self._batch.append(SubmitJobs((spec,), self.now, self.rng.choice(sorted(self.nodes))))

    def _on_cancel(self, job_id: str) -> None:
        self._batch.append(CancelJobs((job_id,), "cancelled by user", self.now))

    def _on_batch(self, _: Any) -> None:
        """The leader's batch: the commands that arrived, plus the placements riding with them."""
        commands, self._batch = self._batch, []
        incoming, preferred = submitted_in(self.table, commands)
        live = [n.capacity for n in self.nodes.values() if n.alive and not n.declared_dead]
        placement = place(
            self.table, live, self.now, ending=ending_in(self.table, commands), incoming=incoming, preferred=preferred
        )
        if placement.assignments:
            commands.append(AssignJobs(tuple(placement.assignments), self.now))
        for cmd in commands:
            self._apply(cmd)
        self._at(self.now + BATCH_S, "batch", None)

    def _apply(self, cmd: Command) -> None:
        if isinstance(cmd, FinishAttempt):
            job = self.table.get(cmd.job_id)
            if job is not None and job.attempt == cmd.attempt and job.state in ACTIVE_STATES and cmd.exit_code == 0:
                self._successes[cmd.job_id] = self._successes.get(cmd.job_id, 0) + 1
        changed = self.table.apply(cmd)
        for node_id, node in self.nodes.items():
            if not node.alive:
                continue
            if node.cut:
                node.unheard.update(changed)
                continue
            self._hear(node_id, node, changed)

    def _hear(self, node_id: str, node: _Node, changed: list[str] | set[str]) -> None:
        """A node applies changed jobs: queue what is its own, fence what is no longer."""
        for job_id in changed:
            job = self.table.get(job_id)
            assert job is not None
            node.queue.offer(job, self.now)  # offers only what is ASSIGNED here; forgets the rest
            for key in [k for k in node.running if k[0] == job_id]:
                current = job.attempt == key[1] and job.node == node_id and job.state in ACTIVE_STATES
                if not current:  # fencing: the table moved on, the process is stopped at once
                    del node.running[key]
                    node.queue.ended(*key)
                    self._say(node, self._finish(key, node_id, exit_code=143))
        self._start(node_id, node)

    def _say(self, node: _Node, cmd: Command) -> None:
        (node.outbox if node.cut else self._batch).append(cmd)

    def _start(self, node_id: str, node: _Node) -> None:
        for job in node.queue.to_start(self.table, node.capacity, self.now):
            key = (job.id, job.attempt)
            node.running[key] = job.spec.cpus
            self._say(node, StartAttempt(job.id, job.attempt, node_id, self.now))
            self._at(self.now + self.rng.expovariate(1 / 0.05), "exit", (node_id, key, self.rng.random() < 0.2))

    def _on_exit(self, arg: tuple[str, tuple[str, int], bool]) -> None:
        node_id, key, fails = arg
        node = self.nodes[node_id]
        if not node.alive or key not in node.running:
            return  # died with its node, or fenced already
        del node.running[key]
        node.queue.ended(*key)
        self._say(node, self._finish(key, node_id, exit_code=1 if fails else 0))
        self._start(node_id, node)

    def _finish(self, key: tuple[str, int], node_id: str, *, exit_code: int) -> FinishAttempt:
        return FinishAttempt(key[0], key[1], node_id, exit_code, "exited", None, b"", self.now, self.now)

    def _on_crash(self, node_id: str) -> None:
        node = self.nodes[node_id]
        node.alive = False
        node.running.clear()  # the machine died with its processes
        node.outbox.clear()
        self._at(self.now + DETECT_DEAD_S, "detect", node_id)

    def _on_cut(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if node.alive and not node.cut:
            node.cut = True
            self._at(self.now + DETECT_DEAD_S, "detect", node_id)

    def _on_heal(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if not node.cut:
            return
        node.cut, node.declared_dead = False, False
        unheard, node.unheard = node.unheard, set()
        if node.alive:
            self._hear(node_id, node, sorted(unheard))  # catches up: stale attempts stop at once
        outbox, node.outbox = node.outbox, []
        self._batch.extend(outbox)  # late results: fencing must ignore the stale ones

    def _on_detect(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if node.alive and not node.cut:
            return
        node.declared_dead = True
        for job in self.table.open_jobs():
            if job.state in ACTIVE_STATES and job.node == node_id:
                self._batch.append(RequeueLost(job.id, job.attempt, "its node died", self.now))

    def _on_restart(self, node_id: str) -> None:
        node = self.nodes[node_id]
        node.alive, node.queue, node.declared_dead = True, self._queue_type(node_id), False
        for job in self.table.open_jobs():  # what an earlier life held runs again, as a new attempt
            if job.state in ACTIVE_STATES and job.node == node_id:
                self._batch.append(RequeueLost(job.id, job.attempt, "the daemon running it restarted", self.now))

    def _on_hand_back(self, _: Any) -> None:
        live = [n.capacity for n in self.nodes.values() if n.alive and not n.declared_dead]
        for node_id, node in self.nodes.items():
            if node.alive and not node.cut:
                for job in node.queue.to_hand_back(self.table, live, self.now):
                    self._batch.append(ReleaseQueued(job.id, job.attempt, node_id, "busy", self.now))
        self._at(self.now + HAND_BACK_CHECK_S, "hand_back", None)

    # -- checks ----------------------------------------------------------------------

    def _fail(self, what: str) -> None:
        raise InvariantBroken(f"seed {self.seed}, t={self.now:.3f}s: {what}")

    def _check(self) -> None:
        running_jobs: dict[str, str] = {}
        for node_id, node in self.nodes.items():
            if node.cut:
                continue  # invariant 5 speaks of live, connected nodes; it is fenced when it heals
            used = sum(node.running.values())
            if used > node.capacity.cpus + 1e-9 and len(node.running) > 1:
                self._fail(f"node {node_id} runs {used:g} cpus on {node.capacity.cpus:g}: {sorted(node.running)}")
            for job_id, attempt in node.running:
                if job_id in running_jobs:
                    self._fail(f"job {job_id} runs on {running_jobs[job_id]} and {node_id} at once")
                running_jobs[job_id] = node_id
                job = self.table.get(job_id)
                fresh = any(isinstance(c, FinishAttempt) and c.job_id == job_id for c in self._batch)
                current = (
                    job is not None and job.attempt == attempt and job.node == node_id and job.state in ACTIVE_STATES
                )
                if not current and not fresh:
                    self._fail(f"stale attempt {job_id}.{attempt} still runs on {node_id}")

    def _all_done(self) -> bool:
        return len(self.table) > 0 and not any(self.table.open_jobs()) and not self._pending_submits()

    def _pending_submits(self) -> bool:
        return any(kind == "submit" for _, _, kind, _ in self._events)

    def _check_end(self) -> None:
        open_jobs = [j.id for j in self.table.open_jobs()]
        if open_jobs or self._pending_submits():
            self._fail(f"jobs never ended: {open_jobs[:10]}")
        for job in self.table.jobs():
            wins = self._successes.get(job.id, 0)
            if job.state is JobState.SUCCEEDED and wins != 1:
                self._fail(f"job {job.id} succeeded {wins} times")
            if job.state is not JobState.SUCCEEDED and wins:
                self._fail(f"job {job.id} is {job.state.value} after a success")
