"""A seeded simulation of jobs across a cluster: the node's own rules, under faults.

Every simulated node runs the production rules and nothing else: a ``NodeState``
(``swarmcompute.rules.node_state``: queue ahead, fencing, earlier lives, the start gate, exit
classification, hand back, the leader's re-run decisions) over that node's own ``JobTable``, and
the lease rule (``swarmcompute.rules.lease``: ``NodeLease``, ``LeaseGrantor``). The simulator is
only the daemon's shell around them (``node/daemon.py`` and ``node/lease_host.py``): it feeds
``NodeState`` the events the daemon feeds it, at the moments the daemon does, and carries out the
instructions it returns in a simulated world. It decides nothing about jobs itself.

What the shell does, as the daemon does it:

- **Ticks** (``Daemon._clock_loop``): every ``TICK_S`` on the node's clock: ``LeaseHost.tick``
  (a leader makes its ``LeaseGrantor`` for a new term and grants itself; a follower asks every
  ``ASK_INTERVAL_S``, and at once for a new leader or term), then ``LeaseHost.check`` (the
  guardian's deadline; a gained or lost lease goes to ``NodeState.lease_changed``); on the
  leader ``leader_tick``, and ``failure_check`` every ``FAILURE_CHECK_INTERVAL_S``; on every node
  ``maintenance`` every ``MAINTENANCE_INTERVAL_S``.
- **Entries** (``Daemon._on_applied``): each committed entry is applied to the node's table and
  its changed jobs go to ``NodeState.applied``; entries this life's log held when it started
  (``boot_index``) count as an earlier life's.
- **Starting** (``Daemon._start_loop``): a ``WakeStarts`` runs the start loop right after the
  current event: ``to_start``, ``still_to_start``, spawn, ``started``. The gate it passes is
  ``LeaseHost.may_start`` (``_may_start`` here).
- **Ends** (``Daemon._on_attempt_exit``): a process that ends is reported with the reason the
  executor gives it (``CANCELLED`` or ``STOPPED`` once it was told to stop, else ``EXITED``) to
  ``NodeState.attempt_exited``. "Started" notices are held (``rules.start_notices``) and dropped
  when the result comes first.
- **Instructions** (``Daemon._carry``): ``Start`` spawns a simulated process (a leased one is held
  by the guardian); ``Stop(lost=True)`` SIGTERMs it and SIGKILLs it ``KILL_GRACE_S`` later (the cancel's
  grace when the table ``asked`` it to stop: a requeue, a preemption, a gang's stop);
  ``Stop(lost=False)`` cancels it, SIGKILL after the runner's ``CANCEL_GRACE_S``; a second stop
  changes neither the reason nor the SIGKILL's time (``ProcessRunner._terminate``); ``Propose``
  sends the commands towards the leader; ``WakeStarts`` runs the start loop; ``Say`` goes to the
  trace.
- **Placement** (``PlacementRounds`` on the leader): ``place`` over ``Daemon.capacities``: the
  live nodes less those ``LeaseGrantor.unplaceable`` bars; every round is checked against the
  reference placement (``sim.placement_check``: the table's indexes against sorting every job).
- **Gossip** (``Daemon._on_member_event``): a node is declared dead after ``DETECT_DEAD_S``
  unreachable from the leader, and alive again once reachable; every running node hears it
  (``NodeState.member_changed``).

The world, all of it seeded (one seed replays exactly):

- **Clocks.** Each node's lease clock runs at its own rate, within ``DRIFT / 2`` of real time,
  from its own origin (a reboot starts a new one). Every lease time is on one node's clock and
  is converted to the real simulated timeline only to schedule the moment it is reached.
- **Leaders.** The leader of the current term commits batches while it is running and shares
  working links (both ways) with a majority of the voters. When it does not for a seeded
  election timeout, a node that does is elected in a new term: the majority that elected it
  moves to the new term at once (they voted), the others when they next hear the new leader.
  The old leader believes it leads until it hears the new one, and keeps its ``LeaseGrantor``
  and its leader's duties; what it proposes goes into its own log, whose uncommitted tail Raft
  overwrites when it hears the new leader: then what the node itself produced waits for the next
  leader and its decisions to re-run attempts are lost (``DEPOSED_LOG``). Raft itself is
  simulated on its own (``raft_cluster``); here the log is one ordered list, which is what Raft
  guarantees the table.
- **Messages.** Asks and grants cross the network: delayed (sometimes by over a second),
  dropped, duplicated, lost on a cut link, and held in a paused daemon's socket until it
  resumes. Appends arrive in order, late at times, and are lost on a cut link (the node catches
  up when it hears the leader again).
- **Processes.** A process runs from its start until it exits (a seeded length and exit code),
  is SIGKILLed, or its node crashes; once SIGTERMed it may run on until the SIGKILL. The
  guardian, which a paused daemon does not stop, SIGKILLs every leased process once the node's
  clock reaches the deadline the daemon last gave it, also one that starts after it; then it
  forgets that deadline (``guardian.Lease.expire``). The SIGKILL after a SIGTERM's grace is a
  timer in the daemon's loop: a paused daemon sends it when it resumes.
- **Faults.** Crashes and restarts (a crash ends the node's processes; the restarted daemon
  replays its log up to its durable commit index without reacting, and its log's tail counts as
  an earlier life's), nodes cut off from everyone, one-way cuts between two nodes, paused
  (SIGSTOPped) daemons, a lossy network, and leader changes.

Checked as it goes (invariants 3-5 in docs/architecture.md, plus capacity):

- at most one attempt of a stop-job (``on_disconnect="stop"``) runs at any simulated instant in
  the whole cluster, cut-off and paused nodes included: every process's life is an interval on
  the real timeline, and an attempt that starts while another of its job runs breaks this;
- a node never runs more than its capacity, except one job larger than the node alone;
- a node that has applied every committed entry has stopped (SIGTERMed) every attempt the table
  no longer gives it (fencing), and every gang rank the table told to stop (``stop_why``);
- the gang checks of ``sim.gangs`` (one attempt of a gang at a time, distinct slots, no partial
  run past the lease, success only when every rank exited 0), where the simulation has gangs;
- at the end every job is terminal, and a succeeded job succeeded in its final attempt once; what
  the table says each attempt used is what the node that ran that attempt reported.
- with ``holds`` (users holding, releasing and updating jobs, start times, ``--every`` series that
  users stop, ``--notify`` URLs that leaders tell): a held job is pending after every entry, no
  first attempt is placed before its ``--begin`` time by the clock of the leader that placed it,
  nor on another node than its pin (a placement decided before an update is stale), a series
  never has two runs open at once, an ended job with ``--notify`` owes one notice until a
  ``NoticesSent`` records it (then none), all told by the end, and a signal (`swarm signal`,
  sent through a random node to the attempt its table says runs, reaching a leader up to 2 s
  later) is taken only by that attempt and delivered once, in order, by the node that started it;
  users also requeue placed jobs (`swarm requeue`, as late), which the first check above covers:
  a requeued job never runs twice at once; and a third of the jobs are ``--preemptible``: each
  attempt a leader's round preempts (``scheduler.preemption``, as ``PlacementRounds.plan``) was
  submitted so, has a lower priority than the job it made room for, which is placed on its node,
  and the first check covers it as a requeued job.

``python -m swarmcompute.sim --jobs [--holds]`` sweeps seeds and prints a failing seed's trace;
``tests/sim/test_job_sim.py`` and ``tests/sim/test_job_lease_sim.py`` run it in the suite.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field, replace
from typing import Any

from swarmcompute.node.daemon import (
    FAILURE_CHECK_INTERVAL_S,
    MAINTENANCE_INTERVAL_S,
    START_NOTICE_DELAY_S,
    TICK_S,
    DaemonConfig,
)
from swarmcompute.rules.lease import (
    ASK_INTERVAL_S,
    DRIFT,
    KILL_GRACE_S,
    RERUN_AFTER_S,
    LeaseAsk,
    LeaseGrant,
    LeaseGrantor,
    NodeLease,
    keeps_past_lease,
)
from swarmcompute.rules.local_queue import LocalQueue
from swarmcompute.rules.node_state import (
    SILENT_NODE_S,
    ClusterView,
    Instruction,
    NodeState,
    Propose,
    Retime,
    Say,
    SendSignal,
    Stop,
    WakeStarts,
)
from swarmcompute.rules.start_notices import StartNotices
from swarmcompute.scheduler.placement import NodeCapacity, ending_in, submitted_in
from swarmcompute.scheduler.preemption import preemptions
from swarmcompute.sim.gangs import GangWatch
from swarmcompute.sim.placement_check import checked_place
from swarmcompute.state.commands import (
    AssignJobs,
    Assignment,
    CancelJobs,
    Command,
    FinishAttempt,
    HoldJobs,
    NoticesSent,
    PreemptJobs,
    RequeueJobs,
    RequeueLost,
    SignalJobs,
    StartAttempt,
    SubmitJobs,
    UpdateJobs,
)
from swarmcompute.state.history import PruneJobs
from swarmcompute.state.job import ACTIVE_STATES, AttemptEnd, Job, JobChanges, JobSpec, JobState
from swarmcompute.state.table import JobTable

BATCH_S = 0.005
DETECT_DEAD_S = 0.5
"""Gossip: how long a node is unreachable before it is declared dead."""
ELECTION_TIMEOUT_S = (0.15, 1.0)
"""How long a leader without a working majority stays unreplaced (seeded within this range)."""
FAULT_LONGEST_S = RERUN_AFTER_S + 0.2
"""A crash, cut, pause or one-way cut lasts up to this long: a little past the wait before a silent
node's attempts run again, so that some faults outlast a lease and some end just before it does
(3.0 s while the lease was 2.4 s)."""
CANCEL_GRACE_S: float = DaemonConfig.__dataclass_fields__["kill_grace_s"].default  # type: ignore[assignment]
"""A cancelled (fenced) attempt: SIGTERM, then SIGKILL after the runner's grace. Nothing relies on
it for a stop-job: by the time the table moves on, its lease killed it."""
PER_ASK = max(round(ASK_INTERVAL_S / TICK_S), 1)
PER_FAILURE_CHECK = round(FAILURE_CHECK_INTERVAL_S / TICK_S)
PER_MAINTENANCE = round(MAINTENANCE_INTERVAL_S / TICK_S)
SIGKILL_EXIT = 128 + 9
DEPOSED_LOG = "requeue"
"""What becomes of the commands a deposed leader proposed into its own log, which Raft overwrites:
``"lost"`` is what ``ReplicatedJobLog`` does today (nothing re-queues them, so an attempt whose end
it reported that way stays active in the table for good: see ``tests/sim/test_job_lease_sim.py``);
``"requeue"`` keeps the promise of ``ReplicatedJobLog._keep`` (what the node itself produced waits
for the next leader) except the leader's own decisions, which only held under its term's leases;
``"requeue_all"`` re-queues those too."""
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
    reason: AttemptEnd | None = None
    """Set by the first stop (``ProcessRunner._terminate``): what its end is reported as."""
    kill_at: float | None = None
    """When the SIGKILL after a SIGTERM's grace is due (real time), once one was sent."""
    code: int | None = None
    """Its exit status, once it ended."""


@dataclass(slots=True)
class _Node:
    id: str
    capacity: NodeCapacity
    state: NodeState
    table: JobTable
    """This node's own table: the committed entries it has applied, in order."""
    rate: float
    """Its clock's rate against real time, within DRIFT / 2 of 1."""
    origin: float
    """Its clock's reading at real time zero (a reboot picks a new one)."""
    wall_skew: float = 0.0
    """How far its wall clock (``time.time``) is ahead of real time (the whole-cluster simulator
    skews some: a Raspberry Pi without a clock battery, a laptop off NTP); 0 in this one."""
    lease: NodeLease = field(default_factory=lambda: NodeLease(float("-inf")))
    """Replaced at once by one that started on this node's clock."""
    grantor: LeaseGrantor | None = None
    term: int = 0
    leader: str | None = None
    asked: tuple[str, int] | None = None
    """The leader and term asked last (``LeaseHost._asked``)."""
    held: bool = False
    """Whether the daemon last saw itself holding a lease (``LeaseHost.check``)."""
    deadline_sent: float | None = float("nan")
    """The guardian deadline the daemon last sent (its clock; None: none; nan: none sent yet)."""
    guardian: float | None = None
    """The guardian's deadline (its clock; None: none): it SIGKILLs every leased process then."""
    guardian_armed: bool = False
    alive: bool = True
    paused: bool = False
    """The daemon is frozen (SIGSTOP): its processes and its guardian run on, its clock counts."""
    life: int = 0
    ticks: int = 0
    running: dict[Key, _Proc] = field(default_factory=dict)
    """Processes alive now."""
    exited: dict[Key, _Proc] = field(default_factory=dict)
    """Processes that ended while the daemon was paused: it hears of them when it resumes."""
    kills_due: list[tuple[Key, float]] = field(default_factory=list)
    """SIGKILL timers that came due while the daemon was paused."""
    outbox: list[tuple[Command, int | None, bool]] = field(default_factory=list)
    """What the daemon proposed that has not reached a leader yet: each command, the term it led
    when it proposed it (in its own log) or None (forwarded to the leader), and whether it is a
    leader's decision to re-run attempts (``leader_tick``, ``failure_check``, ``maintenance``,
    ``member_changed``)."""
    notices: StartNotices = field(default_factory=lambda: StartNotices(START_NOTICE_DELAY_S))
    starts_armed: bool = False
    tick_due: bool = False
    """A tick came due while the daemon was paused: its clock loop runs it as soon as it resumes."""
    applied: int = 0
    """The last log index this node has applied."""
    boot_index: int = 0
    """The last index of its log when this life started: entries up to it are an earlier life's."""
    append_at: float = 0.0
    """When the last append sent to it arrives (appends arrive in order)."""
    inbox: list[tuple[str, LeaseAsk | LeaseGrant]] = field(default_factory=list)
    """Lease messages that arrived while the daemon was paused."""
    unreachable_since: float | None = None
    declared_dead: bool = False

    def clock(self, real: float) -> float:
        return self.origin + self.rate * real

    def wall(self, real: float) -> float:
        """Its wall clock at real time ``real``: what it stamps and what it compares stamps with."""
        return real + self.wall_skew

    def real(self, local: float) -> float:
        return (local - self.origin) / self.rate

    def leads(self) -> bool:
        """Whether it believes it leads (Raft's ``is_leader``)."""
        return self.leader == self.id


class JobSim:
    BEGINS = True
    """With ``holds``, some jobs have a ``--begin`` time, a few seconds after they are submitted."""
    NOTICES = True
    """With ``holds``, some jobs have a ``--notify`` URL, and the leader tells it (``node.notices``):
    each ended one is owed until told, once, across leader changes."""

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
        deposed_log: str = DEPOSED_LOG,
        trace: bool = False,
        holds: bool = False,
    ) -> None:
        self.seed = seed
        self.holds = holds
        """Users hold jobs (some at submission) and release them later (`swarm hold`, `swarm
        release`), and submit some with a start time (``--begin``, where ``BEGINS``). Off by
        default: the seeds and traces the lease tests name were found without."""
        self.deposed_log = deposed_log
        self._queue_type = queue_type
        self.rng = random.Random(seed)
        self.trace: list[str] | None = [] if trace else None
        self.now = 0.0
        self.table = JobTable()
        """The committed table (what the leader applies at once): the checks read it."""
        self.log: list[tuple[Command, ...]] = []
        """The committed log: ``log[i - 1]`` is entry ``i``."""
        self.voters = frozenset(f"n{i}" for i in range(nodes))
        self.members = self.voters
        self.quorum = nodes // 2 + 1
        self.nodes: dict[str, _Node] = {}
        for i in range(nodes):
            cpus = 4.0 if i == 0 else float(self.rng.choice((1, 2, 4)))  # n0: every job fits somewhere
            node_id = f"n{i}"
            table = JobTable()
            self.nodes[node_id] = _Node(
                node_id,
                NodeCapacity(node_id, node_id, cpus, 8 * 2**30),
                self._node_state(node_id, table),
                table,
                self._rate(),
                self._origin(),
            )
        self._events: list[tuple[float, int, str, Any]] = []
        self._seq = 0
        self._batch: list[Command] = []
        self._successes: dict[str, int] = {}
        self._pruned: set[str] = set()
        """Jobs the history bound removed from the committed table (``PruneJobs``), each checked
        as it went (finished, and succeeded once if it succeeded)."""
        self._reported: dict[tuple[str, int], set[tuple[str, float, int]]] = {}
        """(job, attempt) -> (node, cpu_s, max_rss_bytes) of each end a node reported for it."""
        self.late_resubmits = 0
        """Committed submissions of jobs already pruned: duplicates the table skips."""
        self._telling: set[str] = set()
        """Owed notices a leader is sending now (``_on_told`` ends each)."""
        self._told: set[str] = set()
        """Jobs whose notice a committed ``NoticesSent`` recorded."""
        self._notice_delays = random.Random(seed * 7919 + 4)
        self._signals_sent: dict[Key, tuple[tuple[int, bool], ...]] = {}
        """(job, attempt) -> the signals committed for it (``SignalJobs``), in order."""
        self._signals_got: dict[tuple[str, Key], tuple[tuple[int, bool], ...]] = {}
        """(node, (job, attempt)) -> the signals that node delivered to it (``SendSignal``), in order."""
        self._spawned: set[tuple[str, Key]] = set()
        """(node, (job, attempt)): every process a node started."""
        self.signals_delivered = 0
        self._held_back: set[str] = set()
        """Jobs `swarm requeue --hold` sent back, until a release is committed (or they ended)."""
        self._signal_nodes = random.Random(seed * 7919 + 6)
        self._toggles = random.Random(seed * 7919 + 13)
        """Whether a user's update makes a job preemptible, or no longer (its own draws: the other
        changes of a seed stay what they were)."""
        self.gangs = GangWatch()
        """The gang checks (``sim.gangs``), on the processes' ground truth."""
        self._cut: dict[tuple[str, str], int] = {}
        self._running_attempts: dict[str, dict[tuple[str, int], float]] = {}
        """job id -> (node, attempt) -> real start, for every process alive anywhere."""
        self._alive_view = self.members
        """Who gossip calls alive (not declared dead)."""
        self.starts = 0
        self.reruns = 0
        self.elections = 0
        self.messages = 0
        self.lease_kills = 0
        self.preempted = 0
        self._drop = self.rng.choice((0.0, 0.02, 0.1))
        self._spike = self.rng.choice((0.0, 0.02, 0.05))
        # The first leader, elected before anything else happens; it makes its grantor at its first tick.
        self.term = 1
        self.leader: str | None = "n0"
        for node in self.nodes.values():
            node.term, node.leader = 1, "n0"
            node.lease = NodeLease(node.clock(0.0))
        self.index = 0
        """The last committed log index: one entry per batch that commits anything."""
        self._unhealthy_since: float | None = None
        self._election_after = 0.0
        self._schedule_jobs(jobs, keep_share)
        self._schedule_faults(crashes, cuts, pauses, one_way)
        for node in self.nodes.values():
            self._at(self.rng.uniform(0.0, TICK_S) / node.rate, "tick", (node.id, node.life))
        self._at(BATCH_S, "batch", None)

    def _node_state(self, node_id: str, table: JobTable) -> NodeState:
        state = NodeState(node_id, table)
        state.queue = self._queue_type(node_id)
        return state

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
            self._check_gangs()
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
        # Holds draw from their own generator: each seed's jobs and faults are the same with them.
        holds = random.Random(self.seed * 7919 + 1)
        updates = random.Random(self.seed * 7919 + 2)
        notices = random.Random(self.seed * 7919 + 3)
        signals = random.Random(self.seed * 7919 + 5)
        requeues = random.Random(self.seed * 7919 + 7)
        preempts = random.Random(self.seed * 7919 + 11)
        made: list[str] = []
        for i in range(count):
            job_id = f"j{i:03d}"
            after = (self.rng.choice(made),) if made and self.rng.random() < 0.15 else ()
            held = self.holds and holds.random() < 0.05
            spec = JobSpec(
                id=job_id, argv=("sim",), priority=self.rng.choice((0, 0, 0, 5)),
                cpus=self.rng.choice((0.0, 0.5, 1.0, 1.0, 2.0)), retries=self.rng.choice((0, 1, 2)), after=after,
                on_disconnect="keep" if self.rng.random() < keep_share else "stop", hold=held,
            )  # fmt: skip
            if self.holds and preempts.random() < 0.3:  # `swarm run --preemptible`
                spec = replace(spec, preemptible=True)
            when = self.rng.uniform(0.0, 3.0)
            if self.holds and self.BEGINS and holds.random() < 0.1:
                spec = replace(spec, begin_at=when + holds.uniform(0.0, 3.0))  # the leader's clock decides
            if self.holds and self.BEGINS and holds.random() < 0.06:  # a series: runs again until stopped
                spec = replace(spec, every_s=holds.uniform(1.0, 3.0))
                self._at(when + holds.uniform(4.0, 10.0), "stop_series", job_id)
            if self.holds and self.NOTICES and notices.random() < 0.2:
                spec = replace(spec, notify="http://hook/")
            self._at(when, "submit", spec)
            if self.rng.random() < 0.08:
                self._at(self.rng.uniform(0.0, 4.0), "cancel", job_id)
            if held or (self.holds and holds.random() < 0.12):  # held at submission, or a moment later
                if not held:
                    when += holds.uniform(0.0, 0.05)  # often while a round places it
                    self._at(when, "hold", (job_id, True))
                self._at(when + holds.uniform(0.1, 3.0), "hold", (job_id, False))  # released later
            if self.holds and updates.random() < 0.1:  # `swarm update`, often while a round places it
                at = when + updates.uniform(0.0, 0.3)
                self._at(at, "update", (job_id, self._changes(updates, at)))
            if self.holds and requeues.random() < 0.1:  # `swarm requeue`, while it runs, or is about to
                at, held = when + requeues.uniform(0.05, 4.0), requeues.random() < 0.35
                self._at(at, "requeue", (job_id, held))
                if held:  # `swarm requeue --hold`, released a while later
                    self._at(at + requeues.uniform(1.0, 4.0), "release_held", job_id)
                # A signal soon after, through a node that may still see the attempt requeued.
                self._at(at + requeues.uniform(0.0, 1.0), "signal", (job_id, requeues.choice((10, 12)), False))
            if self.holds and signals.random() < 0.3:  # `swarm signal`, a few times, to whatever attempt runs
                for _ in range(signals.randint(1, 4)):
                    how = (signals.choice((10, 10, 12, 15)), signals.random() < 0.5)
                    self._at(when + signals.uniform(0.05, 4.0), "signal", (job_id, *how))
            made.append(job_id)

    def _schedule_faults(self, crashes: int, cuts: int, pauses: int, one_way: int) -> None:
        """Each fault hits a random node, or whichever node leads when it strikes; each ends."""

        def victim() -> str:
            return "leader" if self.rng.random() < 0.35 else self.rng.choice(sorted(self.nodes))

        for kind, end, count, longest in (
            ("crash", "restart", crashes, FAULT_LONGEST_S),
            ("isolate", "rejoin", cuts, FAULT_LONGEST_S),
            ("pause", "resume", pauses, FAULT_LONGEST_S),
        ):
            for _ in range(count):
                at = self.rng.uniform(0.05, 4.0)
                self._at(at, "fault", (kind, end, victim(), at + self.rng.uniform(0.05, longest)))
        for _ in range(one_way):
            at = self.rng.uniform(0.05, 4.0)
            self._at(
                at,
                "fault",
                ("cut_one_way", "heal_one_way", (victim(), victim()), at + self.rng.uniform(0.1, FAULT_LONGEST_S)),
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
            self._end_process(node, key, None)
        node.exited.clear()
        node.kills_due.clear()
        node.outbox.clear()  # proposals in memory die with the daemon (its restart re-queues its attempts)
        node.notices.clear()
        node.inbox.clear()
        node.grantor, node.leader, node.held, node.asked = None, None, False, None
        node.guardian, node.guardian_armed = None, False  # the guardian kills its groups and exits
        node.paused = node.starts_armed = node.tick_due = False
        if self.leader == node.id:
            self.leader = None  # it comes back a follower: the others elect a leader in a new term

    def _on_restart(self, node_id: str) -> None:
        """A new boot: new lease clock, no lease; the log is replayed up to its durable commit index
        without reacting (``ReplicatedJobLog.open``), then ``NodeState.restarted``."""
        node = self.nodes[node_id]
        if node.alive:
            return
        node.alive = True
        node.origin, node.rate = self._origin(), self._rate()
        node.lease = NodeLease(node.clock(self.now))
        node.deadline_sent = float("nan")
        node.boot_index = node.applied  # its log holds what it received; the commit index may lag it
        node.applied = max(0, node.applied - self.rng.choice((0, 0, 1, 2)))
        node.table = JobTable()
        for entry in self.log[: node.applied]:
            for cmd in entry:
                node.table.apply(cmd)
        node.state = self._node_state(node_id, node.table)
        self._log(f"{node_id} restarts (log to {node.boot_index}, committed to {node.applied}; new lease clock)")
        self._carry(node, node.state.restarted(node.wall(self.now)))
        node.ticks = 0
        self._at(self.now + self.rng.uniform(0.0, TICK_S) / node.rate, "tick", (node_id, node.life))
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
        """The daemon's loop runs again: what waited in its sockets, its children's exits and its
        timers, in that order, then it hears the leader."""
        node = self.nodes[node_id]
        if not node.alive or not node.paused:
            return
        node.paused = False
        self._log(f"{node_id} resumes (clock {node.clock(self.now):.4f})")
        inbox, node.inbox = node.inbox, []
        for src, msg in inbox:
            self._handle(node, src, msg)
        exited, node.exited = node.exited, {}
        for key, proc in exited.items():
            self._report_exit(node, key, proc)
        kills, node.kills_due = node.kills_due, []
        for key, started in kills:
            self._sigkill(node, key, started)
        if node.notices.armed:
            self._on_notices((node.id, node.life))
        self._sync(node)
        if node.tick_due:
            node.tick_due = False
            self._on_tick((node.id, node.life))
        if node.starts_armed:
            self._on_starts((node.id, node.life))

    def linked(self, src: str, dst: str) -> bool:
        return (src, dst) not in self._cut

    # -- the daemon's clock loop and its lease host ----------------------------------------------

    def _on_tick(self, arg: tuple[str, int]) -> None:
        """``Daemon._clock_loop``: every ``TICK_S`` on the node's clock."""
        node_id, life = arg
        node = self.nodes[node_id]
        if not node.alive or node.life != life:
            return
        if node.paused:
            node.tick_due = True  # its sleep ends while it is stopped: the tick runs when it resumes
            return
        self._at(self.now + TICK_S / node.rate, "tick", arg)
        node.ticks += 1
        self._lease_tick(node, ask=node.ticks % PER_ASK == 0)
        state, now = node.state, self.now
        if node.leads():
            view = self._view(node)
            lease_now = node.clock(now)
            wall = node.wall(now)
            self._carry(node, state.leader_tick(view, node.grantor, node.applied, lease_now, wall), duty=True)
            if node.ticks % PER_FAILURE_CHECK == 0:
                view = self._view(node, with_silent=True)
                self._carry(node, state.failure_check(view, node.grantor, lease_now, wall), duty=True)
        if node.ticks % PER_MAINTENANCE == 0:
            view = self._view(node)
            self._carry(
                node,
                state.maintenance(
                    view, node.grantor, lambda: self._capacities(node), now, node.clock(now), node.wall(now)
                ),
                duty=True,
            )

    def _lease_tick(self, node: _Node, *, ask: bool) -> None:
        """``LeaseHost.tick``: lead (a grantor per term, and its own lease), or ask."""
        now = node.clock(self.now)
        if node.leads():
            if node.grantor is None or node.grantor.term != node.term:
                node.grantor = self._grantor(node, now)
                self._log(f"{node.id} grants in term {node.term} (from index {node.grantor.term_index})")
            node.lease.grant_self(
                node.grantor.quorum_lease_until(self.voters, now),
                node.grantor.term_index,
                term=node.term,
                now=now,
            )
            node.asked = None
        else:
            node.grantor = None
            leader = node.leader
            if leader is not None and leader != node.id and (ask or (leader, node.term) != node.asked):
                node.asked = (leader, node.term)
                self._send(node.id, leader, node.lease.ask(node.term, now))
        self._lease_check(node)

    def _grantor(self, node: _Node, now: float) -> LeaseGrantor:
        """A new term's ``LeaseGrantor`` (its least fence: the last index of the leader's log)."""
        return LeaseGrantor(node.id, node.term, now, node.lease.prior_receipt(node.term), self.index)

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
            if grantor is None or not node.leads():
                return
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
        else:
            before = node.lease.until
            if node.lease.on_grant(msg, now):
                self._log(
                    f"{node.id} <- grant term {msg.term} from {src}: lease until {node.lease.until:.4f} "
                    f"(real {node.real(node.lease.until):.4f}; was real {node.real(before):.4f}), "
                    f"fence {node.lease.fence}"
                )
                self._lease_check(node)
            if node.lease.ask_again and msg.term == node.term and not node.leads():
                self._send(node.id, src, node.lease.ask(msg.term, now))  # echo the new stamp at once

    def _holds(self, node: _Node) -> bool:
        """``LeaseHost.holds``: whether this node may keep its leased attempts running now."""
        return keeps_past_lease(node.id, self.voters) or node.lease.valid(node.clock(self.now))

    def _may_start(self, node: _Node) -> bool:
        """``LeaseHost.may_start``, the start loop's gate: the lease and its fence."""
        if keeps_past_lease(node.id, self.voters):
            return True
        return node.lease.may_start(node.clock(self.now), node.applied)

    def _lease_check(self, node: _Node) -> None:
        """``LeaseHost.check``: push the deadline to the guardian, report a gained or lost lease."""
        now = node.clock(self.now)
        keeps = keeps_past_lease(node.id, self.voters)
        if keeps:
            deadline = None
        elif node.lease.until == float("-inf"):
            deadline = float("-inf")  # no lease yet: any leased group dies at once (none should exist)
        else:
            deadline = node.lease.until + KILL_GRACE_S
        if deadline != node.deadline_sent:
            node.deadline_sent = node.guardian = deadline
            self._arm_guardian(node)
        held = keeps or node.lease.valid(now)
        if held != node.held:
            node.held = held
            self._log(
                f"{node.id} {'gains' if held else 'lost'} its lease (until {node.lease.until:.4f}, clock {now:.4f})"
            )
            self._carry(node, node.state.lease_changed(held, self._running_keys(node)))

    # -- the guardian ----------------------------------------------------------------

    def _arm_guardian(self, node: _Node) -> None:
        if node.guardian_armed or node.guardian is None or not any(p.leased for p in node.running.values()):
            return
        node.guardian_armed = True
        self._at(
            node.real(node.guardian) if node.guardian > float("-inf") else self.now, "guardian", (node.id, node.life)
        )

    def _on_guardian(self, arg: tuple[str, int]) -> None:
        """The guardian's deadline passed (it is not paused with the daemon): SIGKILL the leased
        groups, then forget the deadline (``Lease.expire``)."""
        node_id, life = arg
        node = self.nodes[node_id]
        if not node.alive or node.life != life:
            return
        node.guardian_armed = False
        deadline = node.guardian
        if deadline is None:
            return
        if node.clock(self.now) < deadline - _EPS:
            self._arm_guardian(node)  # the daemon moved the deadline on
            return
        leased = [k for k, p in node.running.items() if p.leased]
        if not leased:
            return
        for key in leased:
            self._log(f"{node_id} guardian SIGKILLs {key[0]}.{key[1]} (deadline {deadline:.4f} on its clock)")
            self.lease_kills += 1
            self._end_process(node, key, SIGKILL_EXIT)
        node.guardian = None

    # -- processes -------------------------------------------------------------------

    def _spawn(self, node: _Node, key: Key, cpus: float, leased: bool) -> None:
        self.starts += 1
        others = self._running_attempts.setdefault(key[0], {})
        self._log(
            f"{node.id} starts {key[0]}.{key[1]} ({'stop' if leased else 'keep'}; lease until "
            f"{node.lease.until:.4f}, clock {node.clock(self.now):.4f}, applied {node.applied}, fence "
            f"{node.lease.fence}; also running: {sorted(others) or 'none'})"
        )
        if leased and others:
            where = ", ".join(f"{n}.{a} since {s:.4f}" for (n, a), s in sorted(others.items()))
            self._fail(f"job {key[0]} attempt {key[1]} starts on {node.id} while it runs as {where}")
        others[(node.id, key[1])] = self.now
        job = node.table.get(key[0])
        if job is not None and job.spec.ranks:
            broken = self.gangs.started(node.id, job, key[1], self.now)
            if broken:
                self._fail(broken)
        node.running[key] = _Proc(cpus, leased, self.now)
        self._spawned.add((node.id, key))
        length = self.rng.expovariate(1 / 0.1) if self.rng.random() < 0.7 else self.rng.uniform(0.5, 3.0)
        self._at(self.now + length, "exit", (node.id, node.life, key, self.now, 1 if self.rng.random() < 0.2 else 0))
        self._arm_guardian(node)

    def _on_exit(self, arg: tuple[str, int, Key, float, int]) -> None:
        node_id, life, key, started, code = arg
        node = self.nodes[node_id]
        proc = node.running.get(key)
        if node.alive and node.life == life and proc is not None and proc.started == started:
            self._end_process(node, key, code)

    def _terminate(self, node: _Node, key: Key, reason: AttemptEnd, grace_s: float) -> None:
        """``ProcessRunner._terminate``: the first stop sets the reason and the SIGKILL's time; in the
        worst case the process ignores the SIGTERM until then."""
        proc = node.running.get(key) or node.exited.get(key)
        if proc is None:
            return  # not running here (``executor.stop`` answers False)
        if proc.reason is None:
            proc.reason = reason
        if key not in node.running or proc.kill_at is not None:
            return
        proc.kill_at = self.now + grace_s
        self._log(f"{node.id} SIGTERM {key[0]}.{key[1]} ({reason.value}); SIGKILL at {proc.kill_at:.4f}")
        self._at(proc.kill_at, "kill", (node.id, node.life, key, proc.started))

    def _on_kill(self, arg: tuple[str, int, Key, float]) -> None:
        """The SIGKILL timer after a SIGTERM's grace: in the daemon's loop, so a paused one is late."""
        node_id, life, key, started = arg
        node = self.nodes[node_id]
        if not node.alive or node.life != life:
            return
        if node.paused:
            node.kills_due.append((key, started))
            return
        self._sigkill(node, key, started)

    def _sigkill(self, node: _Node, key: Key, started: float) -> None:
        proc = node.running.get(key)
        if proc is not None and proc.started == started:
            self._log(f"{node.id} SIGKILL {key[0]}.{key[1]} after its SIGTERM ({proc.reason})")
            self.lease_kills += proc.reason is AttemptEnd.STOPPED
            self._end_process(node, key, SIGKILL_EXIT)

    def _end_process(self, node: _Node, key: Key, code: int | None) -> None:
        """The process is gone from this instant (``code`` None: with its node): its interval on
        the timeline ends; the daemon hears of it now, or when it resumes."""
        proc = node.running.pop(key)
        runs = self._running_attempts.get(key[0], {})
        runs.pop((node.id, key[1]), None)
        if not runs:
            self._running_attempts.pop(key[0], None)
        self.gangs.ended(key[0], key[1], ok=code == 0 and proc.reason is None, now=self.now)
        if code is None:
            return
        proc.code = code
        self._log(f"{node.id} process {key[0]}.{key[1]} ends ({code}; {proc.reason or 'exited'})")
        if node.paused:
            node.exited[key] = proc
        else:
            self._report_exit(node, key, proc)

    def _report_exit(self, node: _Node, key: Key, proc: _Proc) -> None:
        """``Daemon._on_attempt_exit``."""
        node.notices.drop(key)  # the result says it all
        # What it used: its runtime, and a figure no other process reports (its start instant),
        # so that the end check sees whose figures the table kept (``_check_wins``).
        cpu_s, rss = self.now - proc.started, int(proc.started * 1e6)
        self._reported.setdefault(key, set()).add((node.id, cpu_s, rss))
        finish = FinishAttempt(
            key[0],
            key[1],
            node.id,
            proc.code,
            proc.reason or AttemptEnd.EXITED,
            None,
            b"",
            node.wall(proc.started),
            node.wall(self.now),
            cpu_s=cpu_s,
            max_rss_bytes=rss,
        )
        self._carry(node, node.state.attempt_exited(finish, holds=self._holds(node)))

    def _running_keys(self, node: _Node) -> list[Key]:
        """``executor.running()``: the attempts whose end the daemon has not heard yet."""
        return [*node.running, *node.exited]

    def _running_here(self, node: _Node) -> dict[str, list[int]]:
        running: dict[str, list[int]] = {}
        for job_id, attempt in self._running_keys(node):
            running.setdefault(job_id, []).append(attempt)
        return running

    # -- carrying out the rules --------------------------------------------------------

    def _carry(self, node: _Node, instructions: list[Instruction], *, duty: bool = False) -> None:
        """``Daemon._carry``: do what the rules decided; decide nothing."""
        for ins in instructions:
            if isinstance(ins, Propose):
                for cmd in ins.commands:
                    if isinstance(cmd, StartAttempt):
                        self._notice_start(node, cmd)
                        continue
                    if duty and isinstance(cmd, RequeueLost):
                        self.reruns += 1
                        self._log(
                            f"{node.id} re-runs {cmd.job_id}.{cmd.attempt} ({cmd.why}; term {node.term}, clock "
                            f"{node.clock(self.now):.4f})"
                        )
                    node.outbox.append(
                        (cmd, node.term if node.leads() else None, duty and isinstance(cmd, RequeueLost))
                    )
            elif isinstance(ins, Stop):
                if ins.lost:
                    grace_s = CANCEL_GRACE_S if ins.asked else KILL_GRACE_S
                    self._terminate(node, (ins.job_id, ins.attempt), AttemptEnd.STOPPED, grace_s)
                else:
                    self._terminate(node, (ins.job_id, ins.attempt), AttemptEnd.CANCELLED, CANCEL_GRACE_S)
            elif isinstance(ins, WakeStarts):
                self._wake_starts(node)
            elif isinstance(ins, Say):
                self._log(f"{node.id} says {ins.event} {dict(ins.fields)}")
            elif isinstance(ins, Retime):
                self._log(f"{node.id} retimes {ins.job_id}.{ins.attempt} to {ins.timeout_s}")  # no time limits here
            elif isinstance(ins, SendSignal):
                self._deliver(node, ins)

    def _deliver(self, node: _Node, ins: SendSignal) -> None:
        """``JobRunners.signal``: each signal goes once, in order, only to an attempt this node
        started, and only one that was sent to that attempt; a SIGTERM ends a process that runs
        (as a job that does not trap it: exit 143), whose node reports it, and it may run again."""
        key = (ins.job_id, ins.attempt)
        if (node.id, key) not in self._spawned:
            self._fail(f"{node.id} signals {ins.job_id}.{ins.attempt}, an attempt it never started")
        got = self._signals_got.get((node.id, key), ()) + ins.signals
        if self._signals_sent.get(key, ())[: len(got)] != got:
            self._fail(
                f"{node.id} delivered {got} to {ins.job_id}.{ins.attempt}, sent {self._signals_sent.get(key, ())}"
            )
        self._signals_got[(node.id, key)] = got
        self.signals_delivered += len(ins.signals)
        self._log(f"{node.id} signals {ins.job_id}.{ins.attempt}: {ins.signals}")
        proc = node.running.get(key)
        if proc is not None and proc.reason is None and any(signum == 15 for signum, _ in ins.signals):
            self._at(self.now, "exit", (node.id, node.life, key, proc.started, 143))

    def _notice_start(self, node: _Node, notice: StartAttempt) -> None:
        delay = node.notices.hold(notice)
        if delay is not None:
            self._at(self.now + delay / node.rate, "notices", (node.id, node.life))

    def _fire_notices(self, node: _Node) -> list[StartAttempt]:
        """``Daemon._send_start_notices``: what goes now; the timer armed again if any are left."""
        notices, delay = node.notices.fire()
        if delay is not None:
            self._at(self.now + delay / node.rate, "notices", (node.id, node.life))
        return notices

    def _on_notices(self, arg: tuple[str, int]) -> None:
        node = self.nodes[arg[0]]
        if not node.alive or node.life != arg[1] or node.paused:
            return  # a paused daemon's timer fires when it resumes
        for notice in self._fire_notices(node):
            node.outbox.append((notice, node.term if node.leads() else None, False))

    def _wake_starts(self, node: _Node) -> None:
        if not node.starts_armed:
            node.starts_armed = True
            self._at(self.now, "starts", (node.id, node.life))

    def _on_starts(self, arg: tuple[str, int]) -> None:
        """``Daemon._start_loop``, woken by ``WakeStarts``."""
        node = self.nodes[arg[0]]
        if not node.alive or node.life != arg[1] or node.paused:
            return  # a paused daemon's loop runs it when it resumes
        node.starts_armed = False
        state = node.state
        for start in state.to_start(node.capacity, self.now, may_start=self._may_start(node)):
            if not state.still_to_start(start, may_start=self._may_start(node), now_mono=self.now):
                continue
            key = (start.job.id, start.attempt)
            self._spawn(node, key, start.job.spec.cpus, start.leased)
            self._carry(node, state.started(start, running=True, holds=self._holds(node), now_wall=node.wall(self.now)))

    def _view(self, node: _Node, *, with_silent: bool = False) -> ClusterView:
        """``Daemon._view``: Raft's and gossip's picture, as this node has it."""
        silent: frozenset[str] = frozenset()
        if with_silent and node.leads():
            silent = frozenset(
                n.id
                for n in self.nodes.values()
                if n is not node
                and n.declared_dead
                and n.unreachable_since is not None
                and self.now - n.unreachable_since >= SILENT_NODE_S
            )
        return ClusterView(
            is_leader=node.leads(),
            voters=self.voters,
            members=self.members,
            alive=self._alive_view | {node.id},
            raft_silent=silent,
        )

    def _capacities(self, node: _Node) -> list[NodeCapacity]:
        """``Daemon.capacities``: this node, and every node gossip calls alive, less the nodes its
        grantor bars (``LeaseGrantor.unplaceable``)."""
        grantor = node.grantor
        barred = grantor.unplaceable(self.members, self.voters, node.clock(self.now)) if grantor is not None else set()
        return [node.capacity] + [
            n.capacity for n in self.nodes.values() if n is not node and n.id in self._alive_view and n.id not in barred
        ]

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
        self._log(f"{chosen} LEADER term {self.term}, elected by {voted}")
        for v in voted:
            self._follow(self.nodes[v])

    def _follow(self, node: _Node) -> None:
        """``node`` learns the current term and leader: a deposed leader's uncommitted entries are
        overwritten (what it proposed as leader is lost), and it grants no more."""
        if any(led is not None and led != self.term for _, led, _ in node.outbox):
            # The simulated election ignores how up to date logs are, so whatever a leader of an
            # earlier term left uncommitted is taken as overwritten, also when it leads again.
            kept: list[tuple[Command, int | None, bool]] = []
            lost = 0
            for cmd, led, duty in node.outbox:
                if led is None or led == self.term:
                    kept.append((cmd, led, duty))
                elif self.deposed_log == "requeue_all" or (self.deposed_log == "requeue" and not duty):
                    kept.append((cmd, None, duty))  # waits for the next leader (``ReplicatedJobLog._keep``)
                else:
                    lost += 1
            self._log(
                f"{node.id} hears term {self.term}: its log's uncommitted tail is overwritten; "
                f"{len(kept)} commands wait for the leader, {lost} are lost"
            )
            node.outbox = kept
        if node.grantor is not None and (node.id != self.leader or node.grantor.term != self.term):
            # Also a leader of an earlier term elected again: in Raft it was a candidate first, for
            # at least an election timeout, and ``LeaseHost.tick`` dropped its grantor meanwhile.
            node.grantor = None
        node.term, node.leader = self.term, self.leader

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
        if node.term == self.term and node.leader == self.leader and not (catch_up and node.applied < self.index):
            return
        if not self._hears(node):
            return
        if node.term != self.term or node.leader != self.leader:
            self._follow(node)
        if catch_up and node.applied < self.index:
            self._apply_up_to(node, self.index)

    def _sync_all(self, *, catch_up: bool = True) -> None:
        for node in self.nodes.values():
            self._sync(node, catch_up=catch_up)

    def _apply_up_to(self, node: _Node, index: int) -> None:
        """``ReplicatedJobLog._apply_entry`` and ``Daemon._on_applied`` for each entry in turn. Raft's
        applied index moves on after the whole batch, so the gate sees the one before it."""
        may_start = self._may_start(node)
        state, table = node.state, node.table
        for i in range(node.applied + 1, index + 1):
            changed: list[str] = []
            for cmd in self.log[i - 1]:
                changed.extend(table.apply(cmd))
            if changed:
                running = self._running_here(node)
                self._carry(
                    node,
                    state.applied(
                        changed,
                        running,
                        from_earlier_life=i <= node.boot_index,
                        now_mono=self.now,
                        now_wall=node.wall(self.now),
                        may_start=may_start,
                    ),
                )
                self._log_fences(node, changed, running)
        node.applied = max(node.applied, index)

    def _log_fences(self, node: _Node, changed: list[str], running: dict[str, list[int]]) -> None:
        if self.trace is None:
            return
        for job_id in changed:
            job = node.table.get(job_id)
            for attempt in running.get(job_id, ()):
                if job is None or job.attempt != attempt or job.node != node.id or job.state not in ACTIVE_STATES:
                    self._log(f"{node.id} fences {job_id}.{attempt} (its table has {job_id}.{job and job.attempt})")

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
        """The leader's batch: what reached it, and the placements riding with them."""
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
                if node is not leader and any(led is not None for _, led, _ in node.outbox):
                    continue  # it still leads in its own mind: its proposals sit in its own log
                self._batch.extend(cmd for cmd, _, _ in node.outbox)
                node.outbox.clear()
        commands, self._batch = self._batch, []
        if leader.applied == self.index and (commands or self.table.highest_pending_priority() is not None):
            incoming, preferred = submitted_in(leader.table, commands)
            capacities, ending = self._capacities(leader), ending_in(leader.table, commands)
            assignments: list[Assignment] = []
            gang_waits = None
            if incoming or leader.table.highest_pending_priority() is not None:
                placement, differs = checked_place(
                    leader.table, capacities, self.now, ending=ending, incoming=incoming, preferred=preferred
                )
                if differs:
                    self._fail(differs)
                assignments, gang_waits = placement.assignments, placement.gang_waits
                if assignments:
                    commands.append(AssignJobs(tuple(assignments), self.now))
            commands += preemptions(  # as ``PlacementRounds.plan``
                leader.table, capacities, assignments=assignments, incoming=incoming, ending=ending, at=self.now,
                gang=gang_waits,
            )  # fmt: skip
        if leader.applied == self.index:
            for job_id in leader.table.owed_notices:  # ``node.notices``: POSTed, then recorded as told
                if job_id not in self._telling:
                    self._telling.add(job_id)
                    self._at(self.now + self._notice_delays.uniform(0.01, 0.3), "told", (job_id, leader.id))
        if commands:
            self._commit(commands, leader)
        self._sync_all(catch_up=False)

    def _on_told(self, arg: tuple[str, str]) -> None:
        """A leader's POST answered: it proposes ``NoticesSent``, which a leader that lost its
        leadership meanwhile cannot (the next one sends the notice again)."""
        job_id, sender = arg
        self._telling.discard(job_id)
        if self.leader == sender:
            self._batch.append(NoticesSent((job_id,), "", self.now))

    def _commit(self, commands: list[Command], leader: _Node) -> None:
        """One log entry: applied at once on the leader, on the others when its append arrives."""
        self.index += 1
        self.log.append(tuple(commands))
        for cmd in commands:
            self._apply(cmd)
        self._apply_up_to(leader, self.index)
        for node in self.nodes.values():
            if not node.alive or node is leader:
                continue
            delay = self.rng.uniform(0.001, 0.010)
            if self.rng.random() < self._spike:
                delay += self.rng.uniform(0.0, 1.5)
            node.append_at = max(node.append_at, self.now + delay)
            self._at(node.append_at, "append", (node.id, node.life, self.index))

    def _gossip(self) -> None:
        """Declare a node dead after ``DETECT_DEAD_S`` unreachable (crashed, paused, or unheard by
        the leader), alive once reachable again; every running daemon hears it."""
        leader = self.leader
        for node in self.nodes.values():
            reachable = node.alive and not node.paused and (leader is None or self.linked(node.id, leader))
            if reachable:
                node.unreachable_since = None
                if node.declared_dead:
                    node.declared_dead = False
                    self._member_event(node.id, alive=True)
            elif node.unreachable_since is None:
                node.unreachable_since = self.now
            elif not node.declared_dead and self.now - node.unreachable_since >= DETECT_DEAD_S:
                node.declared_dead = True
                self._member_event(node.id, alive=False)

    def _member_event(self, node_id: str, *, alive: bool) -> None:
        self._log(f"{node_id} {'is alive again' if alive else 'declared dead'} (gossip)")
        self._alive_view = frozenset(n.id for n in self.nodes.values() if not n.declared_dead)
        for node in self.nodes.values():
            if node.alive and not node.paused and node.id != node_id:
                now = self.now
                self._carry(
                    node,
                    node.state.member_changed(
                        node_id, alive, self._view(node), node.grantor, now, node.clock(now), node.wall(now)
                    ),
                    duty=True,
                )

    def _apply(self, cmd: Command, at: float | None = None) -> None:
        """Apply a committed command to the committed table (``at``: its entry's ``CommandBatch.at``)."""
        # A success counts where the table takes an exit 0 for an open job (its fencing decides
        # which ends count); a taken exit 0 that leaves the job anything but succeeded is caught
        # at the end ("after a success"), a second one that revives it ("succeeded twice").
        won = ""
        if isinstance(cmd, FinishAttempt) and cmd.end == AttemptEnd.EXITED and cmd.exit_code == 0:
            job = self.table.get(cmd.job_id)
            if job is not None and not job.state.is_terminal and not job.spec.ranks:
                won = cmd.job_id  # a gang rank's exit 0 is a success only with its gang's
        going = {i: self.table.get(i) for i in cmd.job_ids} if isinstance(cmd, PruneJobs) else {}
        placed = {i: j.node for i, _ in cmd.targets if (j := self.table.get(i))} if isinstance(cmd, PreemptJobs) else {}
        if isinstance(cmd, SubmitJobs):
            self.late_resubmits += sum(spec.id in self.table.pruned for spec in cmd.jobs)
        changed = self.table.apply(cmd, at)
        if isinstance(cmd, NoticesSent):
            self._told.update(changed)
        if isinstance(cmd, RequeueJobs) and cmd.hold:
            self._held_back.update(changed)  # each waits, held, until released
        elif isinstance(cmd, HoldJobs) and not cmd.held:
            self._held_back.difference_update(changed)
        elif isinstance(cmd, AssignJobs) and self._held_back.intersection(changed):
            self._fail(f"requeued held, placed before released: {sorted(self._held_back.intersection(changed))}")
        if isinstance(cmd, PreemptJobs):
            self._check_preempted(cmd, changed, placed)
        if isinstance(cmd, SignalJobs):
            aimed = dict(cmd.targets)
            for job_id in changed:
                job = self.table.get(job_id)
                key = (job_id, aimed.get(job_id, -1))
                sent = self._signals_sent[key] = self._signals_sent.get(key, ()) + ((cmd.signum, cmd.group),)
                if job is None or job.attempt != key[1] or job.signals != sent:
                    took = "none" if job is None else f"attempt {job.attempt}'s, {job.signals}"
                    self._fail(f"signals {sent} sent to {job_id}.{key[1]}; the table took them as {took}")
        for job_id in changed:
            job = self.table.get(job_id)
            if job is not None and job.spec.notify and job.state.is_terminal:
                owed = job_id in self.table.owed_notices
                if owed == (job_id in self._told):
                    self._fail(f"job {job_id} ended with --notify: {'owed once told' if owed else 'owes no notice'}")
            if job is not None and job.held and job.state is not JobState.PENDING:
                self._fail(f"held job {job_id} is {job.state.value} (attempt {job.attempt} on {job.node})")
            if job is not None and job.spec.ranks and job.state is JobState.PENDING:
                ranks = self.table.gang(job.spec.gang_id)
                if all(r.state is JobState.PENDING for r in ranks) and len({r.held for r in ranks}) > 1:
                    held = [r.spec.rank for r in ranks if r.held]
                    self._fail(f"gang {job.spec.gang_id} waits held in part: ranks {held} of {len(ranks)}")
            if job is not None and job.spec.every_s and not job.state.is_terminal:
                root = job.id.rsplit(".", 1)[0] if job.spec.occurrence else job.id
                runs = [j.id for j in self.table.open_jobs() if j.id == root or j.id.startswith(root + ".")]
                if len(runs) > 1:
                    self._fail(f"series {root} has {len(runs)} open runs at once: {runs}")
            if isinstance(cmd, AssignJobs) and job is not None and job.spec.node and job.node != job.spec.node:
                self._fail(f"job {job_id} placed on {job.node}, though pinned to {job.spec.node}")
            if isinstance(cmd, AssignJobs) and job is not None and job.attempt == 1 and job.assigned_at is not None:
                if 0 < job.spec.begin_at and job.assigned_at < job.spec.begin_at:
                    self._fail(
                        f"job {job_id} placed at {job.assigned_at:.3f}, before its --begin {job.spec.begin_at:.3f}"
                    )
        for job_id, job in going.items():
            if job is not None and job_id not in self.table:
                if not job.state.is_terminal:
                    self._fail(f"job {job_id} was pruned while {job.state.value}")
                self._check_wins(job)
                self._pruned.add(job_id)
        if won and won in changed:
            self._successes[won] = self._successes.get(won, 0) + 1
        for job_id in changed:
            job = self.table.get(job_id)
            if job is not None and job.spec.ranks and job.state is JobState.SUCCEEDED:
                self._successes.setdefault(job_id, 1)

    def _check_preempted(self, cmd: PreemptJobs, changed: list[str], placed: dict[str, str | None]) -> None:
        """Each attempt a preemption stopped was submitted ``--preemptible``, of a lower priority
        than the job it made room for, which is placed on its node (``placed``: each target's node
        before the command; the job made room for is queued there, or started), or is a gang that
        waits, not held, to start whole (then not one of its own ranks)."""
        stopped = [j for j in changed if j != cmd.for_job]  # the table names the job made room for too
        self.preempted += len(stopped)
        made_room = self.table.get(cmd.for_job)
        gang = made_room is not None and made_room.spec.ranks and made_room.state is JobState.PENDING
        for job_id in stopped:
            job = self.table.get(job_id)
            if (
                gang
                and made_room is not None
                and (made_room.held or job is None or job.spec.gang_id == made_room.spec.gang_id)
            ):
                self._fail(f"job {job_id} preempted for gang {made_room.spec.gang_id}, held or its own")
            elif not gang and (
                made_room is None or made_room.state not in ACTIVE_STATES or made_room.node != placed.get(job_id)
            ):
                where = "nowhere" if made_room is None else f"{made_room.state.value} on {made_room.node}"
                self._fail(f"job {job_id} on {placed.get(job_id)} preempted for {cmd.for_job}, which is {where}")
            elif (
                made_room is None
                or job is None
                or not job.spec.preemptible
                or job.spec.priority >= made_room.spec.priority
            ):
                self._fail(f"job {job_id} preempted for {cmd.for_job}, though not preemptible below its priority")

    def _on_submit(self, spec: JobSpec) -> None:
        self._batch.append(SubmitJobs((spec,), self.now, self.rng.choice(sorted(self.nodes))))

    def _on_cancel(self, job_id: str) -> None:
        self._batch.append(CancelJobs((job_id,), "cancelled by user", self.now))

    def _on_stop_series(self, root: str) -> None:
        """`swarm cancel` of a series' open run, asked again until none is open (a run may end
        and its next be added while the cancel is on its way)."""
        running = [j.id for j in self.table.open_jobs() if j.id == root or j.id.startswith(root + ".")]
        if running or root not in self.table:
            self._batch.append(CancelJobs(tuple(running), "series stopped by user", self.now))
            self._at(self.now + 1.0, "stop_series", root)

    def _on_hold(self, arg: tuple[str, bool]) -> None:
        job_id, held = arg
        self._batch.append(HoldJobs((job_id,), held, "user", self.now))

    def _changes(self, rng: random.Random, at: float) -> JobChanges:
        """What a user's `swarm update` changes: priority, size, a pin to n0 (or none), and where
        ``BEGINS``, a start time a little later; or only its retries and time limit (which a job
        placed or running takes too: its node re-arms the limit, ``Retime``); either of them at
        times whether it may be preempted (a running job too: the next round may stop it)."""
        preemptible = self._toggles.choice((None, None, None, True, False))
        if rng.random() < 0.25:
            return JobChanges(
                retries=rng.choice((0, 1, 3)), timeout_s=rng.choice((None, 0.0, 30.0)), preemptible=preemptible
            )
        return JobChanges(
            priority=rng.choice((None, 0, 5, 9)),
            cpus=rng.choice((None, 0.5, 1.0, 2.0)),
            node=rng.choice((None, None, "", "n0")),
            begin_at=at + rng.uniform(0.5, 3.0) if self.BEGINS and rng.random() < 0.3 else None,
            preemptible=preemptible,
        )

    def _on_update(self, arg: tuple[str, JobChanges]) -> None:
        job_id, changes = arg
        self._batch.append(UpdateJobs((job_id,), changes, "user", self.now))

    def _on_signal(self, arg: tuple[str, int, bool]) -> None:
        """`swarm signal` through a random node: to the attempt that node's table says runs (the
        CLI sends nothing to a job that is not running), which may lag the committed table; its
        command reaches a leader up to 2 s later (a cut-off node's, once it is back), when that
        attempt may have ended and the next one run."""
        job_id, signum, group = arg
        job = self.nodes[f"n{self._signal_nodes.randrange(len(self.nodes))}"].table.get(job_id)
        if job is not None and job.state is JobState.RUNNING:
            cmd = SignalJobs(((job_id, job.attempt),), signum, group, "user", self.now)
            self._at(self.now + self._signal_nodes.uniform(0.0, 2.0), "asked", cmd)

    def _on_asked(self, cmd: SignalJobs | RequeueJobs) -> None:
        self._batch.append(cmd)

    def _on_requeue(self, arg: tuple[str, bool]) -> None:
        """`swarm requeue [--hold]` through a random node, of a job that node's table says is
        placed; its command reaches a leader up to 2 s later, as a signal's does."""
        job_id, held = arg
        job = self.nodes[f"n{self._signal_nodes.randrange(len(self.nodes))}"].table.get(job_id)
        if job is not None and job.state in ACTIVE_STATES:
            cmd = RequeueJobs((job_id,), "user", self.now, held)
            self._at(self.now + self._signal_nodes.uniform(0.0, 2.0), "asked", cmd)

    def _on_release_held(self, job_id: str) -> None:
        """`swarm release` of a job requeued held (a gang rank: of its gang, held whole, its ranks
        that had exited 0 too), asked until it is released or ended (the requeue may land after
        the first ask)."""
        job = self.table.get(job_id)
        whole = [] if job is None else self.table.gang(job.spec.gang_id) if job.spec.ranks else [job]
        held = [one.id for one in whole if one.held]
        if held:
            self._on_hold((held[0], False))  # a rank's release is its gang's
        if any(not one.state.is_terminal for one in whole):
            self._at(self.now + 1.0, "release_held", job_id)

    # -- checks ----------------------------------------------------------------------

    def _fail(self, what: str) -> None:
        self._log(f"VIOLATION {what}")
        raise InvariantBroken(f"seed {self.seed}, t={self.now:.6f}s: {what}")

    @staticmethod
    def _current(table: JobTable, job_id: str, attempt: int, node_id: str) -> bool:
        """Whether that attempt may run on, by ``table`` (not a gang rank told to stop either)."""
        job = table.get(job_id)
        return (
            job is not None
            and job.attempt == attempt
            and job.node == node_id
            and job.state in ACTIVE_STATES
            and not job.stop_why
        )

    def _check_gangs(self) -> None:
        def told(job_id: str, attempt: int, node_id: str) -> bool:
            proc = self.nodes[node_id].running.get((job_id, attempt))
            return proc is None or proc.reason is not None

        broken = self.gangs.check(self.now, told)
        if broken:
            self._fail(broken)

    def _check(self) -> None:
        for node_id, node in self.nodes.items():
            if not node.running:
                continue
            used = sum(p.cpus for p in node.running.values())
            if used > node.capacity.cpus + _EPS and len(node.running) > 1:
                self._fail(f"node {node_id} runs {used:g} cpus on {node.capacity.cpus:g}: {sorted(node.running)}")
            if not node.alive or node.paused or node.applied < self.index:
                continue  # fencing speaks of a node that has applied every committed entry
            for (job_id, attempt), proc in node.running.items():
                if proc.reason is None and not self._current(self.table, job_id, attempt, node_id):
                    self._fail(
                        f"stale attempt {job_id}.{attempt} runs on {node_id}, unstopped, though it heard it moved on"
                    )

    def _all_done(self) -> bool:
        return (
            (len(self.table) > 0 or bool(self._pruned))
            and not any(self.table.open_jobs())
            and not self._pending_submits()
            and not (self.NOTICES and self.table.owed_notices)
        )

    def _pending_submits(self) -> bool:
        return any(kind == "submit" for _, _, kind, _ in self._events)

    def _never_placeable(self, job: Job) -> bool:
        """Whether ``job`` can wait for good, rightly: no fault here takes nodes away for good."""
        return False

    def _check_end(self) -> None:
        open_jobs = [j.id for j in self.table.open_jobs() if not self._never_placeable(j)]
        if open_jobs or self._pending_submits():
            self._fail(f"jobs never ended: {open_jobs[:10]}")
        if self.NOTICES and self.table.owed_notices:
            self._fail(f"--notify notices never told: {list(self.table.owed_notices)[:10]}")
        broken = self.gangs.check_end(self.table)
        if broken:
            self._fail(broken)
        for job in self.table.jobs():
            self._check_wins(job)

    def _check_wins(self, job: Job) -> None:
        """A finished job succeeded exactly once if it succeeded, else never; and what the table
        says each attempt used is what the node it names reported for that attempt (never a stale
        or another node's attempt's)."""
        wins = self._successes.get(job.id, 0)
        if job.state is JobState.SUCCEEDED and wins != 1:
            self._fail(f"job {job.id} succeeded {wins} times")
        if job.state is not JobState.SUCCEEDED and wins:
            self._fail(f"job {job.id} is {job.state.value} after a success")
        for n, (cpu_s, rss, _) in enumerate(job.attempt_usage, start=1):
            if rss >= 0 and (job.node_of(n), cpu_s, rss) not in self._reported.get((job.id, n), ()):
                self._fail(f"job {job.id} attempt {n} on {job.node_of(n)} keeps usage no such attempt reported")


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
    preempted: int = 0
    """Attempts told to stop for a job of a higher priority (``scheduler.preemption``)."""

    @property
    def ok(self) -> bool:
        return self.violation is None


def run_job_seed(
    seed: int, nodes: int = 5, *, trace: bool = False, sim: type[JobSim] = JobSim, holds: bool = False
) -> JobResult:
    """One seed of the job simulation with every fault kind (``holds``: users hold and release jobs
    too); never raises on a violation."""
    run = sim(seed, nodes=nodes, trace=trace, holds=holds)
    violation = None
    try:
        run.run()
    except InvariantBroken as exc:
        violation = str(exc)
    return JobResult(
        seed, nodes, violation, run.now, run.starts, run.reruns, run.elections, run.lease_kills, run.trace or [],
        run.preempted,
    )  # fmt: skip
