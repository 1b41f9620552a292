"""A seeded simulation of jobs across a cluster: placement, queue-ahead, leases and fencing together.

The pure pieces that decide where and when jobs run (``JobTable``, ``place`` with the room a
batch frees and the jobs it submits, each node's ``LocalQueue``) and the lease rule
(``swarmcompute.rules.lease``: ``NodeLease``, ``LeaseGrantor``, ``keeps_past_lease``) run here
against simulated time, with random job lengths and exit codes, retries, cancels, and faults:
crashes and restarts, nodes cut off from everyone, one-way cuts between two nodes, paused
(SIGSTOPped) daemons, a lossy network for the lease messages, and leader changes. Raft itself is
simulated on its own (``raft_cluster``); here the log is one ordered list, committed by the
current leader while it reaches a majority, which is what Raft guarantees the table.

The model, all of it seeded (one seed replays exactly):

- **Clocks.** Each node's lease clock runs at its own rate, within ``DRIFT / 2`` of real time,
  from its own origin (a reboot starts a new one). Every lease time is on one node's clock and
  is converted to the real simulated timeline only to schedule the moment it is reached.
- **Leaders.** The leader of the current term commits batches while it is running and shares
  working links (both ways) with a majority of the voters. When it does not for a seeded
  election timeout, a node that does is elected in a new term: the majority that elected it
  moves to the new term at once (they voted), the others when they next hear the new leader.
  The old leader believes it leads until it hears the new one, and keeps its ``LeaseGrantor``:
  it answers asks of its term, and grants only while its quorum lease holds.
- **Asking.** Every ``ASK_INTERVAL_S`` (its clock) a node that does not lead sends its term's
  leader a ``LeaseAsk``; the leader answers with ``LeaseGrantor.on_ask`` and the node takes the
  grant with ``NodeLease.on_grant``. A leader holds its own lease with ``grant_self``. Asks and
  grants cross the network: delayed (sometimes by over a second), dropped, duplicated, lost on a
  cut link, and held in a paused daemon's socket until it resumes.
- **The node's half.** No attempt starts without a lease. When the daemon notices a lapse (at
  its next tick) it SIGTERMs its leased attempts; in the worst case they run on until the
  SIGKILL ``KILL_GRACE_S`` later. Its guardian, which a paused daemon does not stop, SIGKILLs
  every leased attempt once the node's clock reaches ``lease.until + KILL_GRACE_S`` (the
  deadline the daemon last gave it), also one that starts after it. ``on_disconnect="keep"``
  jobs are not leased. A crash ends the node's processes with it; the restarted daemon runs none
  of the attempts its earlier life was given (they run again as new attempts).
- **The leader's half.** A stop-job's attempt on another node runs again (``RequeueLost``) only
  once ``LeaseGrantor.may_rerun`` holds for that node. Gossip declares a node dead after
  ``DETECT_DEAD_S`` unreachable: placement skips it and its keep-jobs run again elsewhere.
- **Views.** A node acts on the table as it last heard it: a node that cannot hear the leader
  (cut, paused) queues and starts the attempts it knew of, not newer ones. When it hears again
  it catches up, and fencing cancels its stale attempts at once: SIGTERM, and in the worst case
  they run on until the SIGKILL ``CANCEL_GRACE_S`` later (nothing may rely on fencing).

Checked as it goes (invariants 3-5 in docs/architecture.md, plus capacity):

- at most one attempt of a stop-job (``on_disconnect="stop"``) runs at any simulated instant in
  the whole cluster, cut-off and paused nodes included: every process's life is an interval on
  the real timeline, and an attempt that starts while another of its job runs breaks this;
- a node never runs more than its capacity, except one job larger than the node alone;
- a node that has heard every committed change has stopped (SIGTERMed) every attempt the table
  no longer gives it (fencing);
- at the end every job is terminal, and a succeeded job succeeded in its final attempt once.

``python -m swarmcompute.sim --jobs`` sweeps seeds and prints a failing seed's trace;
``tests/sim/test_job_sim.py`` and ``tests/sim/test_job_lease_sim.py`` run it in the suite.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import Any

from swarmcompute.rules.lease import (
    ASK_INTERVAL_S,
    DRIFT,
    KILL_GRACE_S,
    LeaseAsk,
    LeaseGrant,
    LeaseGrantor,
    NodeLease,
    keeps_past_lease,
)
from swarmcompute.rules.local_queue import LocalQueue
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
from swarmcompute.state.job import ACTIVE_STATES, AttemptEnd, Job, JobSpec, JobState
from swarmcompute.state.table import JobTable

BATCH_S = 0.005
HAND_BACK_CHECK_S = 1.0
DETECT_DEAD_S = 0.5
"""Gossip: how long a node is unreachable before it is declared dead."""
DAEMON_TICK_S = 0.1
"""The daemon looks at its lease once a tick (``LeaseHost.check``): a lapse is noticed this late at most."""
ELECTION_TIMEOUT_S = (0.15, 1.0)
"""How long a leader without a working majority stays unreplaced (seeded within this range)."""
CANCEL_GRACE_S = 5.0
"""Fencing cancels a stale attempt: SIGTERM, then SIGKILL after the runner's grace (``ProcessRunner``'s
default). Nothing relies on it for a stop-job: by the time the table moves on, its lease killed it."""
MAX_TRACE_LINES = 200_000
_EPS = 1e-9

Key = tuple[str, int]


class InvariantBroken(AssertionError):
    """A checked property failed; the message names the seed and the simulated time."""


@dataclass(slots=True)
class _Proc:
    """One attempt's process: it runs from ``started`` until it exits or is killed."""

    cpus: float
    leased: bool
    started: float
    stopping: bool = False
    """SIGTERMed (a noticed lapse, or fencing): it may ignore that and run until the SIGKILL."""


@dataclass(slots=True)
class _Node:
    id: str
    capacity: NodeCapacity
    queue: LocalQueue
    rate: float
    """Its clock's rate against real time, within DRIFT / 2 of 1."""
    origin: float
    """Its clock's reading at real time zero (a reboot picks a new one)."""
    lease: NodeLease = field(default_factory=lambda: NodeLease(float("-inf")))
    """Replaced at once by one that started on this node's clock (``_boot``)."""
    grantor: LeaseGrantor | None = None
    term: int = 0
    leader: str | None = None
    alive: bool = True
    paused: bool = False
    """The daemon is frozen (SIGSTOP): its processes and its guardian run on, its clock counts."""
    life: int = 0
    held: bool = False
    """Whether the daemon last saw itself holding a lease (``LeaseHost.check``)."""
    running: dict[Key, _Proc] = field(default_factory=dict)
    outbox: list[Command] = field(default_factory=list)
    """What the daemon said that has not reached a leader yet."""
    applied: int = 0
    """The last log index this node has applied."""
    pending: list[Entry] = field(default_factory=list)
    """Committed entries not applied here yet: in flight, or lost to a cut."""
    views: dict[str, Job] = field(default_factory=dict)
    """This node's table: its rows change in place as it applies entries (its queue holds them)."""
    append_at: float = 0.0
    """When the last append sent to it arrives (appends arrive in order)."""
    inbox: list[tuple[str, LeaseAsk | LeaseGrant]] = field(default_factory=list)
    """Lease messages that arrived while the daemon was paused."""
    unseen_exits: list[tuple[Key, str, int | None]] = field(default_factory=list)
    """Processes that ended while the daemon was paused: it reports them when it resumes."""
    earlier_life: set[Key] = field(default_factory=set)
    """Attempts given to this node before it restarted: they run again as new attempts, never here."""
    unreachable_since: float | None = None
    declared_dead: bool = False
    guardian_armed: bool = False
    lapse_armed: bool = False

    def clock(self, real: float) -> float:
        return self.origin + self.rate * real

    def real(self, local: float) -> float:
        return (local - self.origin) / self.rate


_Row = tuple[JobState, int, str | None, float]
"""What a node's queue and fencing read of a job, as one log entry left it: state, attempt, node, not_before."""
Entry = tuple[int, dict[str, _Row]]
"""One committed log entry: its index, and the rows it changed as they were right after it."""


def _row(job: Job) -> _Row:
    return (job.state, job.attempt, job.node, job.not_before)


class JobSim:
    def __init__(
        self,
        seed: int,
        *,
        nodes: int = 3,
        jobs: int = 60,
        crashes: int = 2,
        cuts: int = 3,
        pauses: int = 2,
        one_way: int = 2,
        keep_share: float = 0.15,
        queue_type: type[LocalQueue] = LocalQueue,
        trace: bool = False,
    ) -> None:
        self.seed = seed
        self._queue_type = queue_type
        self.rng = random.Random(seed)
        self.trace: list[str] | None = [] if trace else None
        self.now = 0.0
        self.table = JobTable()
        self.voters = frozenset(f"n{i}" for i in range(nodes))
        self.quorum = nodes // 2 + 1
        self.nodes: dict[str, _Node] = {}
        for i in range(nodes):
            cpus = 4.0 if i == 0 else float(self.rng.choice((1, 2, 4)))  # n0: every job fits somewhere
            node_id = f"n{i}"
            self.nodes[node_id] = _Node(
                node_id,
                NodeCapacity(node_id, node_id, cpus, 8 * 2**30),
                queue_type(node_id),
                self._rate(),
                self._origin(),
            )
        self._events: list[tuple[float, int, str, Any]] = []
        self._seq = 0
        self._batch: list[Command] = []
        self._successes: dict[str, int] = {}
        self._cut: dict[tuple[str, str], int] = {}
        self._running_attempts: dict[str, dict[tuple[str, int], float]] = {}
        """job id -> (node, attempt) -> real start, for every process alive anywhere."""
        self.starts = 0
        self.reruns = 0
        self.elections = 0
        self.messages = 0
        self.lease_kills = 0
        self._not_before: dict[str, float] = {}
        """node -> the current leader's ``rerun_at`` for it, cached until the grantor hears its next ask."""
        self._drop = self.rng.choice((0.0, 0.02, 0.1))
        self._spike = self.rng.choice((0.0, 0.02, 0.05))
        # The first leader, elected before anything else happens.
        self.term = 1
        self.leader: str | None = "n0"
        for node in self.nodes.values():
            node.term, node.leader = 1, "n0"
        for node in self.nodes.values():
            node.lease = NodeLease(node.clock(0.0))
        first = self.nodes["n0"]
        first.grantor = LeaseGrantor("n0", 1, first.clock(0.0), first.lease.prior_receipt(1), 0)
        self.index = 0
        """The last committed log index: one entry per batch that commits anything."""
        self._unhealthy_since: float | None = None
        self._election_after = 0.0
        self._schedule_jobs(jobs, keep_share)
        self._schedule_faults(crashes, cuts, pauses, one_way)
        for node in self.nodes.values():
            self._at(self.rng.uniform(0.0, ASK_INTERVAL_S) / node.rate, "tick", (node.id, node.life))
        self._at(BATCH_S, "batch", None)
        self._at(HAND_BACK_CHECK_S, "hand_back", None)

    def _rate(self) -> float:
        """A clock rate within DRIFT / 2 of real time, often at the very edge."""
        return 1.0 + self.rng.choice((-1.0, 1.0, self.rng.uniform(-1.0, 1.0))) * DRIFT / 2

    def _origin(self) -> float:
        return self.rng.uniform(0.0, 10_000.0)

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
        heapq.heappush(self._events, (max(when, self.now), self._seq, kind, arg))

    def _log(self, text: str) -> None:
        if self.trace is not None and len(self.trace) < MAX_TRACE_LINES:
            self.trace.append(f"{self.now:10.6f} {text}")

    def _schedule_jobs(self, count: int, keep_share: float) -> None:
        made: list[str] = []
        for i in range(count):
            job_id = f"j{i:03d}"
            after = (self.rng.choice(made),) if made and self.rng.random() < 0.15 else ()
            spec = JobSpec(
                id=job_id, argv=("sim",), priority=self.rng.choice((0, 0, 0, 5)),
                cpus=self.rng.choice((0.0, 0.5, 1.0, 1.0, 2.0)), retries=self.rng.choice((0, 1, 2)), after=after,
                on_disconnect="keep" if self.rng.random() < keep_share else "stop",
            )  # fmt: skip
            self._at(self.rng.uniform(0.0, 3.0), "submit", spec)
            if self.rng.random() < 0.08:
                self._at(self.rng.uniform(0.0, 4.0), "cancel", job_id)
            made.append(job_id)

    def _schedule_faults(self, crashes: int, cuts: int, pauses: int, one_way: int) -> None:
        """Each fault hits a random node, or whichever node leads when it strikes; each ends."""

        def victim() -> str:
            return "leader" if self.rng.random() < 0.35 else self.rng.choice(sorted(self.nodes))

        for kind, end, count, longest in (
            ("crash", "restart", crashes, 3.0),
            ("isolate", "rejoin", cuts, 3.0),
            ("pause", "resume", pauses, 3.0),
        ):
            for _ in range(count):
                at = self.rng.uniform(0.05, 4.0)
                self._at(at, "fault", (kind, end, victim(), at + self.rng.uniform(0.05, longest)))
        for _ in range(one_way):
            at = self.rng.uniform(0.05, 4.0)
            self._at(
                at, "fault", ("cut_one_way", "heal_one_way", (victim(), victim()), at + self.rng.uniform(0.1, 3.0))
            )

    # -- faults ----------------------------------------------------------------------

    def _resolve(self, who: str) -> str:
        return (self.leader or "n0") if who == "leader" else who

    def _on_fault(self, arg: tuple[str, str, Any, float]) -> None:
        kind, end, who, until = arg
        if kind == "cut_one_way":
            src, dst = self._resolve(who[0]), self._resolve(who[1])
            if src == dst:
                return
            self._log(f"FAULT link {src}->{dst} cut until {until:.3f}")
            self._cut[(src, dst)] = self._cut.get((src, dst), 0) + 1
            self._at(until, end, (src, dst))
            return
        node = self.nodes[self._resolve(who)]
        if not node.alive:
            return
        self._log(f"FAULT {node.id} {kind} until {until:.3f}" + (" (the leader)" if node.id == self.leader else ""))
        getattr(self, "_" + kind)(node)
        self._at(until, end, node.id)

    def _crash(self, node: _Node) -> None:
        node.alive = False
        node.life += 1
        for key in list(node.running):
            self._end_process(node, key, "crash", None)
        node.outbox.clear()
        node.inbox.clear()
        node.unseen_exits.clear()
        node.grantor, node.leader, node.held = None, None, False
        node.paused = False
        if self.leader == node.id:
            self.leader = None  # it comes back a follower: the others elect a leader in a new term

    def _on_restart(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if node.alive:
            return
        self._log(f"{node_id} restarts (a new boot: new lease clock, no lease)")
        node.alive, node.queue = True, self._queue_type(node_id)
        node.origin, node.rate = self._origin(), self._rate()
        node.lease = NodeLease(node.clock(self.now))
        node.guardian_armed = node.lapse_armed = False
        node.applied, node.views = 0, {}
        node.pending = [(self.index, {job.id: _row(job) for job in self.table.jobs()})]  # it replays the log
        node.earlier_life = set()
        for job in self.table.open_jobs():  # what an earlier life held runs again, as a new attempt
            if job.state in ACTIVE_STATES and job.node == node_id:
                node.earlier_life.add((job.id, job.attempt))
                node.outbox.append(RequeueLost(job.id, job.attempt, "the daemon running it restarted", self.now))
        self._at(self.now + self.rng.uniform(0.0, ASK_INTERVAL_S) / node.rate, "tick", (node_id, node.life))
        self._sync(node)

    def _isolate(self, node: _Node) -> None:
        for other in self.nodes:
            if other != node.id:
                for link in ((node.id, other), (other, node.id)):
                    self._cut[link] = self._cut.get(link, 0) + 1

    def _on_rejoin(self, node_id: str) -> None:
        self._log(f"{node_id} rejoins")
        for other in self.nodes:
            if other != node_id:
                for link in ((node_id, other), (other, node_id)):
                    self._heal_link(link)
        self._sync_all()

    def _on_heal_one_way(self, link: tuple[str, str]) -> None:
        self._log(f"link {link[0]}->{link[1]} heals")
        self._heal_link(link)
        self._sync_all()

    def _heal_link(self, link: tuple[str, str]) -> None:
        left = self._cut.get(link, 0) - 1
        if left > 0:
            self._cut[link] = left
        else:
            self._cut.pop(link, None)

    def _pause(self, node: _Node) -> None:
        node.paused = True

    def _on_resume(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if not node.alive or not node.paused:
            return
        node.paused = False
        self._log(f"{node_id} resumes (clock {node.clock(self.now):.4f})")
        inbox, node.inbox = node.inbox, []
        for src, msg in inbox:
            self._handle(node, src, msg)
        exits, node.unseen_exits = node.unseen_exits, []
        for key, how, code in exits:
            self._saw_exit(node, key, how, code)
        self._lease_check(node)
        self._sync(node)
        self._start(node)

    def linked(self, src: str, dst: str) -> bool:
        return (src, dst) not in self._cut

    # -- the lease -------------------------------------------------------------------

    def _on_tick(self, arg: tuple[str, int]) -> None:
        """Every ask interval on the node's clock (``LeaseHost.tick``)."""
        node_id, life = arg
        node = self.nodes[node_id]
        if not node.alive or node.life != life:
            return
        self._at(self.now + ASK_INTERVAL_S / node.rate, "tick", arg)
        if node.paused:
            return
        now = node.clock(self.now)
        if node.grantor is not None and node.leader == node.id:
            node.lease.grant_self(
                node.grantor.quorum_lease_until(self.voters, now),
                node.grantor.term_index,
                term=node.grantor.term,
                now=now,
            )
            self._lease_check(node)
        else:
            self._ask(node)

    def _ask(self, node: _Node) -> None:
        if node.leader is not None and node.leader != node.id and node.grantor is None:
            self._send(node.id, node.leader, node.lease.ask(node.term, node.clock(self.now)))

    def _send(self, src: str, dst: str, msg: LeaseAsk | LeaseGrant) -> None:
        self.messages += 1
        rng = self.rng
        if rng.random() < self._drop:
            return
        for _ in range(2 if rng.random() < 0.01 else 1):
            delay = rng.uniform(0.001, 0.010)
            if rng.random() < self._spike:
                delay += rng.uniform(0.0, 1.5)
            self._at(self.now + delay, "deliver", (src, dst, self.nodes[dst].life, msg))

    def _on_deliver(self, arg: tuple[str, str, int, LeaseAsk | LeaseGrant]) -> None:
        src, dst, life, msg = arg
        node = self.nodes[dst]
        if not node.alive or node.life != life or not self.linked(src, dst):
            return  # a cut is checked on arrival: what was in flight when it began is lost
        if node.paused:
            node.inbox.append((src, msg))  # waits in the socket until the daemon runs again
            return
        self._handle(node, src, msg)

    def _handle(self, node: _Node, src: str, msg: LeaseAsk | LeaseGrant) -> None:
        """``LeaseHost.on_message``."""
        now = node.clock(self.now)
        if isinstance(msg, LeaseAsk):
            grantor = node.grantor
            if grantor is None or node.leader != node.id:
                return
            self._not_before.clear()
            for dst, grant in grantor.on_ask(src, msg, self.voters, now):
                if self.trace is not None:
                    self._log(
                        f"{node.id} grants {dst} (asked {grant.asked_at:.4f} on its clock, term {grant.term}): "
                        f"remaining {grant.remaining:.4f}, fence {grant.fence}"
                    )
                self._send(node.id, dst, grant)
            node.lease.grant_self(
                grantor.quorum_lease_until(self.voters, now), grantor.term_index, term=grantor.term, now=now
            )
            self._lease_check(node)
        else:
            before = node.lease.until
            extended = node.lease.on_grant(msg, now)
            if node.lease.ask_again and msg.term == node.term and node.grantor is None:
                self._send(node.id, src, node.lease.ask(msg.term, now))  # echo the new stamp at once
            if extended:
                self._log(
                    f"{node.id} <- grant term {msg.term} from {src}: lease until {node.lease.until:.4f} "
                    f"(real {node.real(node.lease.until):.4f}; was real {node.real(before):.4f})"
                )
                self._lease_check(node)

    def _holds(self, node: _Node) -> bool:
        """``LeaseHost.holds``: whether this node may start and keep leased attempts now."""
        return keeps_past_lease(node.id, self.voters) or node.lease.valid(node.clock(self.now))

    def _may_start(self, node: _Node) -> bool:
        """The start loop's gate: no attempt starts without a lease, nor before the grant's fence."""
        if keeps_past_lease(node.id, self.voters):
            return True
        return node.lease.may_start(node.clock(self.now), node.applied)

    def _guardian_deadline(self, node: _Node) -> float | None:
        """The deadline the daemon gives its guardian, on its clock (None: it keeps past its lease)."""
        if keeps_past_lease(node.id, self.voters):
            return None
        return node.lease.until + KILL_GRACE_S

    def _may_rerun(self, grantor: LeaseGrantor, node_id: str, now: float) -> bool:
        """``LeaseHost.may_rerun`` on the leader, with the leader's clock reading ``now``."""
        if keeps_past_lease(node_id, self.voters) or now < self._not_before.get(node_id, float("-inf")):
            return False  # the cache only saves asking again: rerun_at moves only when the grantor hears an ask
        if grantor.may_rerun(node_id, self.voters, now):
            return True
        self._not_before[node_id] = grantor.rerun_at(node_id, self.voters)
        return False

    def _lease_check(self, node: _Node) -> None:
        """``LeaseHost.check`` and ``_on_lease_change``: start on a gain, SIGTERM on a loss."""
        held = self._holds(node)
        if held != node.held:
            node.held = held
            now = node.clock(self.now)
            if held:
                self._log(f"{node.id} gains its lease (until {node.lease.until:.4f}, clock {now:.4f})")
                self._start(node)
            else:
                doomed = [k for k, p in node.running.items() if p.leased]
                self._log(f"{node.id} lost its lease (clock {now:.4f}): stops {doomed}")
                for key in doomed:
                    self._terminate(node, key, KILL_GRACE_S, "lease")
        if held and not node.lapse_armed and node.lease.until != float("inf"):
            if not keeps_past_lease(node.id, self.voters):
                node.lapse_armed = True
                notice = node.real(node.lease.until + self.rng.uniform(0.0, DAEMON_TICK_S))
                self._at(notice, "lapse", (node.id, node.life))
        self._arm_guardian(node)

    def _on_lapse(self, arg: tuple[str, int]) -> None:
        node_id, life = arg
        node = self.nodes[node_id]
        if not node.alive or node.life != life:
            return
        node.lapse_armed = False
        if not node.paused:  # a paused daemon notices nothing: only its guardian acts
            self._lease_check(node)

    def _arm_guardian(self, node: _Node) -> None:
        if node.guardian_armed or not any(p.leased for p in node.running.values()):
            return
        deadline = self._guardian_deadline(node)
        if deadline is None:
            return
        node.guardian_armed = True
        self._at(node.real(deadline), "guardian", (node.id, node.life))

    def _on_guardian(self, arg: tuple[str, int]) -> None:
        """The guardian's deadline passed (it is not paused with the daemon): SIGKILL leased groups."""
        node_id, life = arg
        node = self.nodes[node_id]
        if not node.alive or node.life != life:
            return
        node.guardian_armed = False
        deadline = self._guardian_deadline(node)
        if deadline is None:
            return
        if node.clock(self.now) >= deadline - _EPS:
            for key in [k for k, p in node.running.items() if p.leased]:
                self._log(f"{node_id} guardian SIGKILLs {key[0]}.{key[1]} (deadline {deadline:.4f} on its clock)")
                self.lease_kills += 1
                self._end_process(node, key, "lease", None)
        else:
            self._arm_guardian(node)  # the daemon moved the deadline on

    def _terminate(self, node: _Node, key: Key, grace_s: float, how: str) -> None:
        """SIGTERM now; in the worst case the process ignores it until the SIGKILL ``grace_s`` later."""
        proc = node.running[key]
        proc.stopping = True
        kill_at = node.real(node.clock(self.now) + grace_s)
        self._log(f"{node.id} SIGTERM {key[0]}.{key[1]} ({how}); SIGKILL at {kill_at:.4f}")
        self._at(kill_at, "kill", (node.id, node.life, key, proc.started, how))

    def _on_kill(self, arg: tuple[str, int, Key, float, str]) -> None:
        """The SIGKILL after a SIGTERM's grace."""
        node_id, life, key, started, how = arg
        node = self.nodes[node_id]
        proc = node.running.get(key)
        if node.alive and node.life == life and proc is not None and proc.started == started:
            self._log(f"{node_id} SIGKILL {key[0]}.{key[1]} after its SIGTERM ({how})")
            self.lease_kills += how == "lease"
            self._end_process(node, key, how, None)

    # -- the leader and the log ------------------------------------------------------

    def _majority_of(self, node_id: str) -> list[str]:
        """The running voters ``node_id`` shares working links with (both ways), itself included."""
        return [
            v for v in sorted(self.voters)
            if v == node_id or (
                self.nodes[v].alive and not self.nodes[v].paused and self.linked(v, node_id) and self.linked(node_id, v)
            )
        ]  # fmt: skip

    def _can_lead(self, node_id: str) -> bool:
        node = self.nodes[node_id]
        return node.alive and not node.paused and len(self._majority_of(node_id)) >= self.quorum

    def _elect(self) -> None:
        candidates = [n for n in sorted(self.nodes) if self._can_lead(n)]
        if not candidates:
            return
        chosen = self.rng.choice(candidates)
        voted = self._majority_of(chosen)
        self.term += 1
        self.leader = chosen
        self.elections += 1
        self._unhealthy_since = None
        self._not_before.clear()
        for v in voted:
            voter = self.nodes[v]
            if voter.grantor is not None and v != chosen:
                self._log(f"{v} steps down from term {voter.grantor.term}")
            voter.term, voter.leader, voter.grantor = self.term, chosen, None
        node = self.nodes[chosen]
        now = node.clock(self.now)
        node.grantor = LeaseGrantor(chosen, self.term, now, node.lease.prior_receipt(self.term), self.index)
        self._log(f"{chosen} LEADER term {self.term}, elected by {voted}")
        node.lease.grant_self(
            node.grantor.quorum_lease_until(self.voters, now), node.grantor.term_index, term=node.grantor.term, now=now
        )
        self._lease_check(node)
        for v in voted:
            if v != chosen:
                self._ask(self.nodes[v])  # at once for a new leader (``LeaseHost.tick``)

    def _hears(self, node: _Node) -> bool:
        """Whether ``node`` hears the current leader's log now."""
        leader = self.leader
        if not node.alive or node.paused or leader is None:
            return False
        if leader == node.id:
            return True
        head = self.nodes[leader]
        return head.alive and not head.paused and self.linked(leader, node.id)

    def _sync(self, node: _Node, *, catch_up: bool = True) -> None:
        """A node that hears the leader learns its term (heartbeats) and, with ``catch_up``, applies
        what it missed (a healed link, a resumed daemon, a restart, a new leader's first append)."""
        if node.term == self.term and node.leader == self.leader and not (catch_up and node.pending):
            return
        if not self._hears(node):
            return
        if node.term != self.term or node.leader != self.leader:
            if node.grantor is not None and node.grantor.term != self.term:
                self._log(f"{node.id} hears term {self.term} and steps down from term {node.grantor.term}")
                node.grantor = None
            node.term, node.leader = self.term, self.leader
            self._ask(node)  # at once for a new leader
        if catch_up and node.pending:
            self._apply_up_to(node, node.pending[-1][0])

    def _sync_all(self, *, catch_up: bool = True) -> None:
        for node in self.nodes.values():
            self._sync(node, catch_up=catch_up)

    def _apply_up_to(self, node: _Node, index: int) -> None:
        changed: dict[str, _Row] = {}
        while node.pending and node.pending[0][0] <= index:
            changed.update(node.pending.pop(0)[1])
        node.applied = max(node.applied, index)
        if changed:
            self._hear(node, changed)
        else:
            self._start(node)  # a fence may have been all it waited for

    def _on_append(self, arg: tuple[str, int, int]) -> None:
        """Committed entries up to ``index`` arrive at a node (lost if it cannot hear the leader now)."""
        node_id, life, index = arg
        node = self.nodes[node_id]
        if node.life == life and node.applied < index and self._hears(node):
            self._sync(node, catch_up=False)
            self._apply_up_to(node, index)

    def _healthy(self) -> bool:
        return self.leader is not None and self._can_lead(self.leader)

    def _on_batch(self, _: Any) -> None:
        """The leader's batch: what reached it, its own decisions, and the placements riding with them."""
        self._at(self.now + BATCH_S, "batch", None)
        self._gossip()
        if not self._healthy():
            if self._unhealthy_since is None:
                self._unhealthy_since = self.now
                self._election_after = self.rng.uniform(*ELECTION_TIMEOUT_S)
            elif self.now - self._unhealthy_since >= self._election_after:
                self._elect()
                self._sync_all()  # the new leader's first append brings every follower up to date
            return
        self._unhealthy_since = None
        assert self.leader is not None
        leader = self.nodes[self.leader]
        for node in self.nodes.values():
            if node.outbox and node.alive and not node.paused and (node is leader or self.linked(node.id, leader.id)):
                self._batch.extend(node.outbox)
                node.outbox.clear()
        commands, self._batch = self._batch, []
        rerun = self._leader_requeues(leader, commands)
        incoming, preferred = submitted_in(self.table, commands)
        if incoming or self.table.highest_pending_priority() is not None:
            live = [n.capacity for n in self.nodes.values() if n.alive and not n.declared_dead]
            placement = place(
                self.table,
                live,
                self.now,
                ending=ending_in(self.table, commands),
                incoming=incoming,
                preferred=preferred,
            )
            if placement.assignments:
                commands.append(AssignJobs(tuple(placement.assignments), self.now))
        if commands:
            self._commit(commands, leader)
            grantor = leader.grantor
            assert grantor is not None
            for node_id in rerun:
                grantor.rerun_applied(node_id, self.index)  # the leader applies at once
        self._sync_all(catch_up=False)

    def _commit(self, commands: list[Command], leader: _Node) -> None:
        """One log entry: applied at once on the leader, on the others when its append arrives."""
        self.index += 1
        changed: set[str] = set()
        for cmd in commands:
            changed.update(self._apply(cmd))
        rows = {job_id: _row(self._job(job_id)) for job_id in sorted(changed)}
        entry = (self.index, rows)
        for node in self.nodes.values():
            if not node.alive:
                continue
            node.pending.append(entry)
            if node is leader:
                self._apply_up_to(node, self.index)
                continue
            delay = self.rng.uniform(0.001, 0.010)
            if self.rng.random() < self._spike:
                delay += self.rng.uniform(0.0, 1.5)
            node.append_at = max(node.append_at, self.now + delay)
            self._at(node.append_at, "append", (node.id, node.life, self.index))

    def _leader_requeues(self, leader: _Node, lost: list[Command]) -> set[str]:
        """Stop-jobs of nodes whose every lease has surely expired, keep-jobs of dead nodes, added
        to ``lost``; returns the nodes whose attempts re-run (``LeaseGrantor.rerunning``)."""
        grantor = leader.grantor
        assert grantor is not None and grantor.term == self.term
        now = leader.clock(self.now)
        over = {n for n in self.nodes if n != leader.id and self._may_rerun(grantor, n, now)}
        dead = {n for n, node in self.nodes.items() if node.declared_dead and n != leader.id}
        rerun: set[str] = set()
        if not over and not dead:
            return rerun
        for job in self.table.open_jobs():
            if job.state not in ACTIVE_STATES or job.node is None:
                continue
            if job.spec.on_disconnect == "stop" and job.node in over:
                self.reruns += 1
                self._log(
                    f"{leader.id} re-runs {job.id}.{job.attempt} of {job.node} "
                    f"(may_rerun from {grantor.rerun_at(job.node, self.voters):.4f}, its clock {now:.4f}; "
                    f"earlier leases end {grantor.earlier_leases_end(self.voters):.4f}, term start {grantor.term_start:.4f})"
                )
                lost.append(RequeueLost(job.id, job.attempt, "its node lost its lease", self.now))
                if job.node not in rerun:
                    rerun.add(job.node)
                    grantor.rerunning(job.node)
            elif job.spec.on_disconnect == "keep" and job.node in dead:
                lost.append(RequeueLost(job.id, job.attempt, "its node is dead", self.now))
        return rerun

    def _gossip(self) -> None:
        """Declare a node dead after ``DETECT_DEAD_S`` unreachable (crashed, paused, or unheard by the leader)."""
        leader = self.leader
        for node in self.nodes.values():
            reachable = node.alive and not node.paused and (leader is None or self.linked(node.id, leader))
            if reachable:
                if node.declared_dead:
                    self._log(f"{node.id} is alive again (gossip)")
                node.unreachable_since, node.declared_dead = None, False
            elif node.unreachable_since is None:
                node.unreachable_since = self.now
            elif not node.declared_dead and self.now - node.unreachable_since >= DETECT_DEAD_S:
                self._log(f"{node.id} declared dead (gossip)")
                node.declared_dead = True

    def _apply(self, cmd: Command) -> list[str]:
        if isinstance(cmd, FinishAttempt):
            job = self.table.get(cmd.job_id)
            ok = cmd.end == AttemptEnd.EXITED and cmd.exit_code == 0
            if job is not None and job.attempt == cmd.attempt and job.state in ACTIVE_STATES and ok:
                self._successes[cmd.job_id] = self._successes.get(cmd.job_id, 0) + 1
        return self.table.apply(cmd)

    # -- a node and its processes ----------------------------------------------------

    def _hear(self, node: _Node, changed: dict[str, _Row]) -> None:
        """A node applies changed rows to its table: queue what is its own, then fence what is no
        longer (whose end may start queued work: the queue must already be up to date)."""
        for job_id, (state, attempt, where, not_before) in changed.items():
            job = node.views.get(job_id)
            if job is None:
                row = self._job(job_id)
                job = node.views[job_id] = Job(row.spec, row.submitted_at)
            job.state, job.attempt, job.node, job.not_before = state, attempt, where, not_before
            if (job_id, attempt) in node.earlier_life:
                node.queue.forget(job_id)  # never started twice under one attempt number
            else:
                node.queue.offer(job, self.now)  # it offers only what is ASSIGNED here
        for job_id in changed:
            job = node.views[job_id]
            for key in [k for k in node.running if k[0] == job_id]:
                if not self._current(job, key[1], node.id) and not node.running[key].stopping:
                    # Fencing: the table moved on, so the attempt is cancelled (``executor.cancel``).
                    self._log(f"{node.id} fences {job_id}.{key[1]} (the table has {job_id}.{job.attempt})")
                    self._terminate(node, key, CANCEL_GRACE_S, "fenced")
        self._start(node)

    def _job(self, job_id: str) -> Job:
        job = self.table.get(job_id)
        assert job is not None
        return job

    @staticmethod
    def _current(job: Job, attempt: int, node_id: str) -> bool:
        return job.attempt == attempt and job.node == node_id and job.state in ACTIVE_STATES

    def _start(self, node: _Node) -> None:
        if not node.alive or node.paused or not self._may_start(node):
            return
        for job in node.queue.to_start(self.table, node.capacity, self.now):
            key = (job.id, job.attempt)
            leased = job.spec.on_disconnect == "stop"
            self._begin_process(node, key, job.spec.cpus, leased)
            node.outbox.append(StartAttempt(job.id, job.attempt, node.id, self.now))
            length = self.rng.expovariate(1 / 0.1) if self.rng.random() < 0.7 else self.rng.uniform(0.5, 3.0)
            self._at(self.now + length, "exit", (node.id, node.life, key, self.now, self.rng.random() < 0.2))
        self._arm_guardian(node)

    def _begin_process(self, node: _Node, key: Key, cpus: float, leased: bool) -> None:
        self.starts += 1
        others = self._running_attempts.setdefault(key[0], {})
        self._log(
            f"{node.id} starts {key[0]}.{key[1]} ({'stop' if leased else 'keep'}; lease until "
            f"{node.lease.until:.4f}, clock {node.clock(self.now):.4f}; also running: {sorted(others) or 'none'})"
        )
        if leased and others:
            where = ", ".join(f"{n}.{a} since {s:.4f}" for (n, a), s in sorted(others.items()))
            self._fail(f"job {key[0]} attempt {key[1]} starts on {node.id} while it runs as {where}")
        others[(node.id, key[1])] = self.now
        node.running[key] = _Proc(cpus, leased, self.now)

    def _on_exit(self, arg: tuple[str, int, Key, float, bool]) -> None:
        node_id, life, key, started, fails = arg
        node = self.nodes[node_id]
        proc = node.running.get(key)
        if not node.alive or node.life != life or proc is None or proc.started != started:
            return  # died with its node, or stopped already
        self._end_process(node, key, "exited", 1 if fails else 0)

    def _end_process(self, node: _Node, key: Key, how: str, code: int | None) -> None:
        """The process is gone from this instant: its interval on the timeline ends."""
        del node.running[key]
        runs = self._running_attempts.get(key[0], {})
        runs.pop((node.id, key[1]), None)
        if not runs:
            self._running_attempts.pop(key[0], None)
        if how == "crash":
            return
        self._log(f"{node.id} process {key[0]}.{key[1]} ends ({how}{'' if code is None else f' {code}'})")
        if node.paused:
            node.unseen_exits.append((key, how, code))
        else:
            self._saw_exit(node, key, how, code)

    def _saw_exit(self, node: _Node, key: Key, how: str, code: int | None) -> None:
        """``_on_attempt_exit``: the daemon reports the end and starts what it has room for now."""
        node.queue.ended(*key)
        job = self.table.get(key[0])
        end = AttemptEnd.EXITED
        if how == "lease" or (how == "exited" and job is not None and job.spec.on_disconnect == "stop"):
            if how == "lease" or not self._holds(node):
                end = AttemptEnd.STOPPED  # killed at the lease deadline: lost, not failed
        if how == "fenced":
            end, code = AttemptEnd.CANCELLED, 143
        node.outbox.append(FinishAttempt(key[0], key[1], node.id, code, end, None, b"", self.now, self.now))
        self._start(node)

    def _on_submit(self, spec: JobSpec) -> None:
        self._batch.append(SubmitJobs((spec,), self.now, self.rng.choice(sorted(self.nodes))))

    def _on_cancel(self, job_id: str) -> None:
        self._batch.append(CancelJobs((job_id,), "cancelled by user", self.now))

    def _on_hand_back(self, _: Any) -> None:
        live = [n.capacity for n in self.nodes.values() if n.alive and not n.declared_dead]
        for node_id, node in self.nodes.items():
            if node.alive and not node.paused:
                for job in node.queue.to_hand_back(self.table, live, self.now):
                    node.outbox.append(ReleaseQueued(job.id, job.attempt, node_id, "busy", self.now))
        self._at(self.now + HAND_BACK_CHECK_S, "hand_back", None)

    # -- checks ----------------------------------------------------------------------

    def _fail(self, what: str) -> None:
        self._log(f"VIOLATION {what}")
        raise InvariantBroken(f"seed {self.seed}, t={self.now:.6f}s: {what}")

    def _check(self) -> None:
        for node_id, node in self.nodes.items():
            if not node.running:
                continue
            used = sum(p.cpus for p in node.running.values())
            if used > node.capacity.cpus + _EPS and len(node.running) > 1:
                self._fail(f"node {node_id} runs {used:g} cpus on {node.capacity.cpus:g}: {sorted(node.running)}")
            if not node.alive or node.paused or node.pending:
                continue  # fencing speaks of a node that has heard every committed change
            for (job_id, attempt), proc in node.running.items():
                job = self.table.get(job_id)
                if not proc.stopping and (job is None or not self._current(job, attempt, node_id)):
                    self._fail(
                        f"stale attempt {job_id}.{attempt} runs on {node_id}, unstopped, though it heard it moved on"
                    )

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


@dataclass(slots=True)
class JobResult:
    seed: int
    nodes: int
    violation: str | None
    sim_s: float
    starts: int
    reruns: int
    elections: int
    lease_kills: int
    trace: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.violation is None


def run_job_seed(seed: int, nodes: int = 5, *, trace: bool = False, sim: type[JobSim] = JobSim) -> JobResult:
    """One seed of the job simulation with every fault kind; never raises on a violation."""
    run = sim(seed, nodes=nodes, trace=trace)
    violation = None
    try:
        run.run()
    except InvariantBroken as exc:
        violation = str(exc)
    return JobResult(
        seed, nodes, violation, run.now, run.starts, run.reruns, run.elections, run.lease_kills, run.trace or []
    )
