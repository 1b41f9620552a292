"""``NodeState``: what one node does about the job table, its peers and its lease. Events in,
instructions out, no I/O.

The shape of dask's ``worker_state_machine`` and of etcd's raft ``Ready``: the daemon feeds events
(committed entries applied, an attempt that ended, a membership change, a lease gained or lost, a
clock tick) and carries out the instructions that come back (start or stop an attempt, propose
commands, wake followers, ask for a placement round). It decides nothing itself, so the seeded
simulator can run these exact rules on every simulated node.

The rules, each in the method that applies it:

* **Queue ahead** (``applied``, ``to_start``): attempts the table gives this node wait in its
  ``LocalQueue`` and start as capacity frees, highest priority first (see ``local_queue``).
* **Fencing** (``applied``): an attempt running here that the table no longer gives to this node
  is stopped at once; a result for any other attempt is ignored by the table itself.
* **Earlier lives** (``restarted``, ``applied``): an attempt the log gives to this node from
  before the daemon restarted may have run in part, so it runs again as a new attempt, lost, not
  failed, rather than starting twice under one number.
* **Leases** (``to_start``, ``started``, ``lease_changed``, ``attempt_exited``): no leased attempt
  starts without a lease past its fence, a lapsed lease stops every leased attempt (lost, not
  failed), and one the guardian killed while the daemon was frozen is reported lost too. See
  ``swarmcompute.rules.lease``.
* **The leader's duties** (``member_changed``, ``leader_tick``, ``maintenance``): a dead or
  silent node's attempts run again elsewhere: leased ones only once that node's lease has surely
  expired, and then with a fence; ``--on-disconnect keep`` ones once gossip and Raft agree the
  node is gone.
* **Hand back** (``maintenance``): attempts queued here too long while another node is free go
  back to be placed again.
* **Told to stop** (``applied``, ``to_start``, ``started``): an attempt the table marks
  ``stop_why`` (a gang rank whose other rank ended without success, ``state.gangs``; a job `swarm
  requeue` sends back) is stopped here as lost, or handed back if it has not started, never
  started; the table runs it again once its end or hand-back is committed, so it never runs twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from swarmcompute.rules.lease import LeaseGrantor, keeps_past_lease
from swarmcompute.rules.local_queue import LocalQueue
from swarmcompute.scheduler.placement import NodeCapacity
from swarmcompute.state.commands import Command, FinishAttempt, ReleaseQueued, RequeueLost, StartAttempt
from swarmcompute.state.job import ACTIVE_STATES, AttemptEnd, Job, JobState
from swarmcompute.state.table import JobTable

LOST_WITH_THE_DAEMON = "the daemon running it stopped"
"""Why an attempt an earlier life of this daemon held runs again, whenever the restart learns of it."""
LOST_WITH_THE_LEASE = "its node lost its lease"
LOST_WITH_THE_RECOVER = "its end may be in the history `swarm recover` gave up"
HANDED_BACK_BEFORE_RECOVER = "handed back before `swarm recover`, which may have given that up"
SILENT_NODE_S = 2.0
"""A node suspected by gossip and silent to Raft this long loses its ``keep`` attempts."""

Key = tuple[str, int]


# -- instructions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Start:
    """Start this attempt's process (``leased``: under the lease; the guardian holds it to it)."""

    job: Job
    attempt: int
    leased: bool
    gpus: tuple[int, ...] = ()
    """The GPU indices it is given on this node (``LocalQueue``: no two attempts share one)."""
    timeout_s: float | None = None
    """Its time limit as it starts (the job's ``--timeout`` now; `swarm update` may change it later:
    ``Retime``)."""


@dataclass(frozen=True, slots=True)
class Retime:
    """`swarm update --timeout` changed the time limit of an attempt running here: its deadline is
    now ``timeout_s`` after it started (None: no limit; one already past stops it as timed out)."""

    job_id: str
    attempt: int
    timeout_s: float | None


@dataclass(frozen=True, slots=True)
class SendSignal:
    """`swarm signal` sent ``signals`` to an attempt running here: deliver them, in order, each
    ``(number, to its process group)`` (a Docker job's: to its container)."""

    job_id: str
    attempt: int
    signals: tuple[tuple[int, bool], ...]


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop an attempt running here: ``lost`` (its lease lapsed: SIGTERM, SIGKILL after the lease's
    kill grace, reported lost) or not (fenced: the table moved on; cancel as usual)."""

    job_id: str
    attempt: int
    lost: bool
    asked: bool = False
    """Lost because the table told it to stop (``Job.stop_why``: a requeue, a preemption, a gang
    whose rank ended), not because the lease lapsed: the process gets a cancel's kill grace
    (5 s), time to save its work. The job is placed again only once this end is committed, so
    the grace costs no safety; a lapsed lease cannot wait that long."""


@dataclass(frozen=True, slots=True)
class Propose:
    commands: tuple[Command, ...]


@dataclass(frozen=True, slots=True)
class Notify:
    """Wake whoever follows this job (its state or output changed)."""

    job_id: str


@dataclass(frozen=True, slots=True)
class Reschedule:
    """A placement round may now place more."""


@dataclass(frozen=True, slots=True)
class WakeStarts:
    """Run ``to_start`` again soon: capacity, the lease or the fence changed."""


@dataclass(frozen=True, slots=True)
class Say:
    """A log line worth a person's attention (``event`` plus fields)."""

    event: str
    fields: tuple[tuple[str, object], ...] = ()


Instruction = Start | Stop | Propose | Notify | Reschedule | WakeStarts | Say | Retime | SendSignal


# -- what the node knows of its cluster, per call ------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClusterView:
    """The node's view of its cluster at one instant (from Raft and gossip)."""

    is_leader: bool
    voters: frozenset[str]
    members: frozenset[str] = frozenset()
    """Every node Raft or gossip knows of."""
    alive: frozenset[str] = frozenset()
    """Nodes gossip calls alive (this node always is)."""
    raft_silent: frozenset[str] = frozenset()
    """Peers the leader's Raft has not heard from for ``SILENT_NODE_S`` that gossip also doubts
    (known, not alive); empty unless leading."""
    names: dict[str, str] = field(default_factory=dict)
    """Node id -> name, for messages people read."""
    term: int = 0
    """The Raft term this view is of (a leader's decisions carry it)."""

    def name(self, node_id: str) -> str:
        return self.names.get(node_id, node_id)


def _lost_here(job: Job, node_id: str, now_wall: float, why: str = LOST_WITH_THE_DAEMON) -> RequeueLost:
    """This node's claim that ``job``'s current attempt here was lost (with an earlier daemon, by
    default; it names the attempt: ``node_id`` and ``assigned_at``, so it re-queues no later one)."""
    return RequeueLost(job.id, job.attempt, why, now_wall, node_id=node_id, assigned_at=job.assigned_at)


def recovered_voters(voters: Iterable[str], missing: Iterable[str], me: str) -> list[str]:
    """`swarm recover` on node ``me``: the new configuration is every voter `swarm status` does not
    call missing, and ``me`` (the daemon and the simulator's operator both ask this)."""
    return sorted(set(voters) - set(missing) | {me})


def cluster_view(
    node_id: str,
    *,
    is_leader: bool,
    voters: Iterable[str],
    raft_members: Iterable[str],
    term: int,
    gossip: Iterable[tuple[str, bool, str | None]],
    heard: tuple[dict[str, int | None], int] | None = None,
    silent_ticks: int = 0,
) -> ClusterView:
    """The view from Raft and gossip: ``gossip`` holds (node id, alive, name) per member gossip
    knows; ``heard`` (the leader's, when it asks who is silent): the Raft tick each peer was last
    heard at, and the tick now. A peer is silent once Raft has not heard from it for
    ``silent_ticks`` while gossip knows it and does not call it alive."""
    known = {n: (up, name) for n, up, name in gossip}
    alive = frozenset({node_id} | {n for n, (up, _) in known.items() if up})
    silent: frozenset[str] = frozenset()
    if is_leader and heard is not None:
        last_heard, now = heard
        silent = frozenset(
            n
            for n, tick in last_heard.items()
            if n != node_id and (tick is None or now - tick >= silent_ticks) and n in known and n not in alive
        )
    return ClusterView(
        is_leader=is_leader,
        voters=frozenset(voters),
        members=frozenset(raft_members) | frozenset(known),
        alive=alive,
        raft_silent=silent,
        names={n: name for n, (_, name) in known.items() if name is not None},
        term=term,
    )


# -- the rules ---------------------------------------------------------------------------------


class NodeState:
    def __init__(self, node_id: str, table: JobTable) -> None:
        self.node_id = node_id
        self.table = table
        self.queue = LocalQueue(node_id)
        self.dead_since: dict[str, float] = {}
        self.reruns: dict[str, set[Key]] = {}
        """Node -> its leased attempts this leader re-queued, until applied here (lease rule 4)."""
        self.blocked_on_fence = False
        self.started_here: dict[str, int] = {}
        """Job id -> the attempt of it this daemon started (in this life, in this history)."""
        self.armed: dict[str, float | None] = {}
        """The time limit each attempt that started here runs under (``Retime`` moves it)."""
        self.signalled: dict[str, int] = {}
        """How many of its ``Job.signals`` each attempt that started here was sent (``SendSignal``)."""
        self.lost_earlier: dict[str, int] = {}
        """Job id -> the attempt this life reported lost with an earlier daemon (``restarted``,
        ``applied`` of an earlier life's entry), until the table moves on: ``recovered`` reports it
        again."""
        self.unstarted_stops: set[str] = set()
        """Attempts the start loop dropped for their ``stop_why`` (a gang's other rank ended, `swarm
        requeue`): to hand back (``_hand_back_stopped``)."""
        self.recovered_epoch = 0
        """The newest configuration epoch ``recovered`` handled."""

    # -- committed changes --------------------------------------------------------------

    def restarted(self, now_wall: float) -> list[Instruction]:
        """At start: attempts the log says ran here died with the previous daemon."""
        mine = [j for j in self.table.active_jobs() if j.node == self.node_id]
        self.lost_earlier.update((j.id, j.attempt) for j in mine)
        return [Propose(tuple(_lost_here(j, self.node_id, now_wall) for j in mine))] if mine else []

    def recovered(self, running: Iterable[Key], now_wall: float, epoch: int) -> list[Instruction]:
        """`swarm recover` forced configuration ``epoch``: this node forced it, or applied it as one
        of its voters or learners. What this node reported to the old leader may have been committed
        only in the history the recover gave up, so it reports it again:

        - an attempt the table gives to this node that no longer runs here runs again (found by the
          whole-cluster simulator: a job whose end the forcer had reported stayed running; later,
          one whose end a voter that stayed in the forced configuration had reported to the old
          leader, which committed it with the voters the recover gave up);
        - an attempt it handed back that the table still gives it is handed back again (seed
          300357, before the simulator pinned jobs: the kept history gave the node the attempt
          whose hand-back only the given-up one held, and the node, which never starts what it
          handed back, left it assigned for good). Queuing it here again instead started it while
          the hand-back, still on its way, was committed after all, and its next attempt started
          here while the first was still being stopped (seed 7181, a first version of this fix);
        - an earlier life's attempt whose loss this life reported at its start is reported lost
          again (seed 300873: a gang's ranks, assigned to the node before its daemon crashed,
          re-queued as lost in the given-up history only).

        A second report of something committed after all changes nothing (the table checks the
        attempt each names). Once per epoch: the forcer is told at once and when it applies it."""
        if epoch <= self.recovered_epoch:
            return []
        self.recovered_epoch = epoch
        here = set(running)
        started, self.started_here = self.started_here, {}
        queue = self.queue
        again: list[Command] = []
        for j in self.table.active_jobs():
            if j.node != self.node_id or (j.id, j.attempt) in here:
                continue
            if j.state is JobState.RUNNING or started.get(j.id) == j.attempt:  # or started, and ended
                again.append(_lost_here(j, self.node_id, now_wall, LOST_WITH_THE_RECOVER))
            elif queue.handed_back(j.id) == j.attempt:
                again.append(ReleaseQueued(j.id, j.attempt, self.node_id, HANDED_BACK_BEFORE_RECOVER, now_wall))
            elif self.lost_earlier.get(j.id) == j.attempt:
                again.append(_lost_here(j, self.node_id, now_wall))
        return [Propose(tuple(again))] if again else []

    def applied(
        self,
        changed: Iterable[str],
        running: dict[str, list[int]],
        *,
        from_earlier_life: bool,
        now_mono: float,
        now_wall: float,
        may_start: bool,
    ) -> list[Instruction]:
        """Entries were applied to the table, changing ``changed``; ``running``: the attempts
        running here by job id."""
        out: list[Instruction] = []
        queue, node_id = self.queue, self.node_id
        reschedule = wake = False
        earlier: list[Command] = []
        for job_id in changed:
            job = self.table.get(job_id)
            if queue.held_at is not None and (
                job is None or (job.state is not JobState.PENDING and job.spec.priority > queue.held_at)
            ):
                # A job this node's queue made way for left the line (placed, ended, gone): what it
                # held back may start (found by the whole-cluster simulator once it pinned jobs,
                # seed 667: a job pinned here waited for good behind one placed elsewhere).
                wake = True
            if job is None:
                # Gone from the table (`swarm recover` replaced the history that held it): nothing
                # of it may start or keep running here (found by the whole-cluster simulator: a
                # rejoining node started the queued attempts of jobs the new history never had).
                queue.forget(job_id)
                self.started_here.pop(job_id, None)
                self.lost_earlier.pop(job_id, None)
                out.extend(Stop(job_id, attempt, lost=False) for attempt in running.get(job_id, ()))
                out.append(Notify(job_id))
                continue
            mine = job.state in ACTIVE_STATES and job.node == node_id
            if not mine or self.started_here.get(job_id, job.attempt) != job.attempt:
                self.started_here.pop(job_id, None)
            if job_id in self.armed:
                if job_id not in self.started_here:
                    del self.armed[job_id]
                elif self.armed[job_id] != job.spec.timeout_s:  # `swarm update --timeout` of a job running here
                    self.armed[job_id] = job.spec.timeout_s
                    out.append(Retime(job_id, job.attempt, job.spec.timeout_s))
            if job_id not in self.started_here:
                self.signalled.pop(job_id, None)
            elif len(job.signals) > (sent := self.signalled.get(job_id, 0)):  # `swarm signal`, committed
                self.signalled[job_id] = len(job.signals)
                out.append(SendSignal(job_id, job.attempt, job.signals[sent:]))
            if not mine or self.lost_earlier.get(job_id, job.attempt) != job.attempt:
                self.lost_earlier.pop(job_id, None)
            if from_earlier_life and mine:
                queue.forget(job.id)
                if job.attempt not in running.get(job.id, ()):
                    earlier.append(_lost_here(job, node_id, now_wall))
                    self.lost_earlier[job.id] = job.attempt
            elif job.state is JobState.ASSIGNED and job.node == node_id and job.stop_why:
                if job.attempt not in running.get(job_id, ()):
                    self.unstarted_stops.add(job_id)  # handed back below, unless it started after all
            elif (
                job.state is JobState.ASSIGNED and job.node == node_id and self.lost_earlier.get(job_id) != job.attempt
            ):
                # (Not an attempt this life reported lost at its start: that report may still commit,
                # and the job run again elsewhere at once, while this one ran. Found by the
                # whole-cluster simulator, seed 1162 with --holds: a leader crashed right after
                # starting an attempt, and its next life started it again once its table caught up.)
                wake = queue.offer(job, now_mono) or wake
            elif mine and job_id not in self.started_here and job.attempt not in running.get(job_id, ()):
                # Running here by the table, yet neither running nor started by this daemon: an
                # earlier life's, or its end was in a history `swarm recover` replaced (found by
                # the whole-cluster simulator: such a job stayed "running" for good).
                queue.forget(job_id)
                earlier.append(_lost_here(job, node_id, now_wall))
            else:
                queue.forget(job_id)
            # Only a new or re-queued job, or freed capacity, can change the placement; and a
            # preemptible job that started may hold room a queued one of a higher priority needs.
            reschedule = reschedule or job.state is JobState.PENDING or job.state.is_terminal
            reschedule = reschedule or (job.spec.preemptible and job.state is JobState.RUNNING)
            for attempt in running.get(job_id, ()):
                if not (attempt == job.attempt and job.node == node_id and job.state in ACTIVE_STATES):
                    out.append(Stop(job_id, attempt, lost=False))
                elif job.stop_why:  # another rank ended, a requeue, a preemption: lost, not failed
                    out.append(Stop(job_id, attempt, lost=True, asked=True))
                elif job.spec.ranks and queue.assigned_at(job_id, attempt) not in (None, job.assigned_at):
                    # A kept history (`swarm recover`) gave this node a gang rank's attempt number
                    # again: what runs here is the given-up history's rank, with other ranks. It
                    # stops, its end does not count (``FinishAttempt.assigned_at``), and the gang
                    # runs anew. (A plain job's attempt runs on: its end counts, it runs once.)
                    out.append(Stop(job_id, attempt, lost=False))
                    earlier.append(_lost_here(job, node_id, now_wall, LOST_WITH_THE_RECOVER))
            out.append(Notify(job_id))
        earlier += self._hand_back_stopped(now_wall)
        if earlier:
            out.append(Propose(tuple(earlier)))
        if reschedule:
            out.append(Reschedule())
        if self._unblocked(may_start) or wake:
            out.append(WakeStarts())
        return out

    def fence_tick(self, may_start: bool) -> list[Instruction]:
        """Every tick while starts wait for the lease's fence (``blocked_on_fence``): it is passed
        by applying any entry, also one that changes no job (a configuration change, a leader's
        no-op), which ``applied`` never hears of; once it is, the queue starts. (A job pinned to
        a node that rejoined after `swarm recover` stayed assigned there for good: its fence was
        the entry that made the node a member again.)"""
        return [WakeStarts()] if self._unblocked(may_start) else []

    def _unblocked(self, may_start: bool) -> bool:
        """Whether starts that waited for the lease or its fence may go now (once)."""
        if self.blocked_on_fence and may_start:
            self.blocked_on_fence = False
            return True
        return False

    # -- starting and ending attempts ----------------------------------------------------------

    def to_start(self, capacity: NodeCapacity, now_wall: float, *, may_start: bool) -> list[Start]:
        """The queued attempts to start now, in order. ``may_start``: the lease holds past its fence."""
        if not may_start:
            self.blocked_on_fence = True  # gaining the lease, or applying up to the fence, wakes us
            return []
        starts = []
        for job in self.queue.to_start(self.table, capacity, now_wall):
            if job.state is not JobState.ASSIGNED or job.node != self.node_id or job.stop_why:
                self.queue.ended(job.id, job.attempt)  # moved on while earlier ones started
                if job.stop_why:
                    self.unstarted_stops.add(job.id)
                continue
            leased = job.spec.on_disconnect == "stop"
            starts.append(Start(job, job.attempt, leased, self.queue.gpus_of(job.id, job.attempt), job.spec.timeout_s))
        return starts

    def still_to_start(self, start: Start, *, may_start: bool, now_mono: float, docker: bool = True) -> bool:
        """Right before starting (earlier starts may have awaited): is it still ours to start?
        ``docker``: this node's engine answers as far as it knows (``Inventory.docker``, off at once
        when a job finds it gone). An image job does not start while it does not: it goes back to
        the queue, which starts none while the engine is gone (``LocalQueue.to_start``) and hands
        them back once another node could run them. This catches an engine found gone by an
        earlier start of the same turn. Before, each start failed at once as lost and the job was
        placed here again, as the leader's gossip still said the engine answered: a job pinned to
        a node whose dockerd was killed ran 290 attempts in 3.6 s."""
        job = start.job
        if job.state is not JobState.ASSIGNED or job.node != self.node_id or job.attempt != start.attempt:
            self.queue.ended(job.id, start.attempt)
            return False
        if job.stop_why:
            self.queue.ended(job.id, start.attempt)
            self.unstarted_stops.add(job.id)  # handed back by the next ``applied`` or ``maintenance``
            return False
        if start.leased and not may_start:
            self.queue.ended(job.id, start.attempt)
            self.queue.offer(job, now_mono)  # back in the queue: it starts once the lease is back
            self.blocked_on_fence = True
            return False
        if job.spec.image is not None and not docker:
            self.queue.ended(job.id, start.attempt)
            self.queue.offer(job, now_mono)  # back in the queue: it starts once the engine answers
            return False
        return True

    def started(self, start: Start, *, running: bool, holds: bool, now_wall: float) -> list[Instruction]:
        """The process was started (``running``: it is still running now)."""
        job, attempt = start.job, start.attempt
        if not running:
            return []
        if job.attempt != attempt or job.node != self.node_id or job.state not in ACTIVE_STATES:
            return [Stop(job.id, attempt, lost=False)]  # cancelled or moved while a container started
        if job.stop_why:
            self.started_here[job.id] = attempt
            return [Stop(job.id, attempt, lost=True, asked=True)]  # told to stop while a container started
        self.started_here[job.id] = attempt
        if start.leased and not holds:
            return [Stop(job.id, attempt, lost=True)]  # the lease lapsed while it started
        self.armed[job.id] = job.spec.timeout_s
        self.signalled[job.id] = 0  # an attempt is sent signals once it runs by the table: after this
        started: list[Instruction] = [Propose((StartAttempt(job.id, attempt, self.node_id, now_wall),))]
        if job.spec.timeout_s != start.timeout_s:  # `swarm update --timeout` while it was being started
            started.append(Retime(job.id, attempt, job.spec.timeout_s))
        return started

    def _hand_back_stopped(self, now_wall: float) -> list[Command]:
        """Attempts assigned here, marked ``stop_why``, that this daemon has not started: handed
        back (the table then places the job, or the gang, again). One that started reports its own end."""
        out: list[Command] = []
        for job_id in sorted(self.unstarted_stops):
            job = self.table.get(job_id)
            if (
                job is not None
                and job.state is JobState.ASSIGNED
                and job.node == self.node_id
                and job.stop_why
                and self.started_here.get(job_id) != job.attempt
                and not self.queue.is_started(job_id, job.attempt)
            ):
                self.queue.forget(job_id)
                out.append(ReleaseQueued(job_id, job.attempt, self.node_id, job.stop_why, now_wall))
        self.unstarted_stops.clear()
        return out

    def attempt_exited(self, finish: FinishAttempt, *, holds: bool) -> list[Instruction]:
        """An attempt here ended; ``holds``: this node holds its lease right now. The result names
        the assignment it ran under (``FinishAttempt.assigned_at``), as it was when it started."""
        job = self.table.get(finish.job_id)
        if finish.assigned_at is None and (at := self.queue.assigned_at(finish.job_id, finish.attempt)) is not None:
            finish = replace(finish, assigned_at=at)
        if finish.end == AttemptEnd.EXITED and job is not None and job.spec.on_disconnect == "stop" and not holds:
            # Killed by the guardian at the lease deadline while this daemon was frozen: lost, not failed.
            finish = replace(finish, end=AttemptEnd.STOPPED, error=LOST_WITH_THE_LEASE)
        elif (
            finish.end == AttemptEnd.STOPPED and not finish.error and not holds and job is not None and not job.stop_why
        ):
            # Stopped as its lease lapsed (``lease_changed``): said so, where `swarm show` read "its daemon stopped".
            finish = replace(finish, error=LOST_WITH_THE_LEASE)
        self.queue.ended(finish.job_id, finish.attempt, ran=True)
        return [Propose((finish,)), WakeStarts()]

    def lease_changed(self, held: bool, running: Iterable[Key]) -> list[Instruction]:
        """Gained: start the queue. Lost: stop every leased attempt here; they run again elsewhere
        as lost attempts once the leader may re-run them."""
        if held:
            return [WakeStarts()]
        stops: list[Instruction] = []
        for job_id, attempt in running:
            job = self.table.get(job_id)
            if job is None or job.spec.on_disconnect == "stop":
                stops.append(Stop(job_id, attempt, lost=True))
        if stops:
            stops.append(
                Say(
                    "attempts_stopped_lease_lost",
                    (
                        ("count", len(stops)),
                        (
                            "hint",
                            "this node lost contact with a leader that has a quorum; the jobs run again elsewhere",
                        ),
                    ),
                )
            )
        return stops

    # -- the leader's duties -------------------------------------------------------------------

    def requeue_attempts_of(
        self, node_id: str, why: str, view: ClusterView, grantor: LeaseGrantor | None, now_lease: float, now_wall: float
    ) -> list[Instruction]:
        """On the leader: the attempts of a dead or silent node run again elsewhere (fenced by
        attempt number). Leased ones only once the node's lease has surely expired there, and
        then that node gets no lease until the re-queue is applied (lease rule 4)."""
        if not view.is_leader or node_id == self.node_id:
            return []
        lease_over = (
            grantor is not None
            and not keeps_past_lease(node_id, view.voters)
            and grantor.may_rerun(node_id, view.voters, now_lease)
        )
        lost = tuple(
            RequeueLost(
                j.id, j.attempt, f"{why} (node {view.name(node_id)})", now_wall, view.term, node_id, j.assigned_at
            )
            for j in self.table.active_jobs()
            if j.node == node_id and (lease_over or j.spec.on_disconnect == "keep")
        )
        if not lost:
            return []
        if lease_over and grantor is not None:
            grantor.rerunning(node_id)
            self.reruns.setdefault(node_id, set()).update((c.job_id, c.attempt) for c in lost)
        return [Propose(lost)]

    def member_changed(
        self,
        node_id: str,
        alive: bool,
        view: ClusterView,
        grantor: LeaseGrantor | None,
        now_mono: float,
        now_lease: float,
        now_wall: float,
    ) -> list[Instruction]:
        """Gossip says ``node_id`` is up (``alive``) or dead or gone."""
        if alive:
            self.dead_since.pop(node_id, None)
            return [Reschedule()]
        self.dead_since.setdefault(node_id, now_mono)
        out = self.requeue_attempts_of(node_id, "its node stopped answering", view, grantor, now_lease, now_wall)
        return [*out, Reschedule()]

    def leader_tick(
        self,
        view: ClusterView,
        grantor: LeaseGrantor | None,
        applied_index: int,
        now_lease: float,
        now_wall: float,
    ) -> list[Instruction]:
        """Every tick on the leader: re-queues applied here lift their fence (lease rule 4); the
        leased attempts of nodes whose lease has surely expired run again elsewhere."""
        if not view.is_leader or grantor is None:
            self.reruns.clear()
            return []
        for node_id, keys in list(self.reruns.items()):
            if not any(
                (job := self.table.get(j)) is not None
                and job.attempt == a
                and job.node == node_id
                and job.state in ACTIVE_STATES
                for j, a in keys
            ):
                del self.reruns[node_id]
                grantor.rerun_applied(node_id, applied_index)
        candidates = [
            n
            for n in view.members
            if n != self.node_id
            and not keeps_past_lease(n, view.voters)
            and grantor.may_rerun(n, view.voters, now_lease)
        ]
        if not candidates:
            return []  # the usual case, without a scan of the table
        busy = {j.node for j in self.table.active_jobs() if j.node is not None and j.spec.on_disconnect == "stop"}
        out: list[Instruction] = []
        for node_id in sorted(busy & set(candidates) - set(self.reruns)):  # not again while one is applied
            requeued = self.requeue_attempts_of(node_id, LOST_WITH_THE_LEASE, view, grantor, now_lease, now_wall)
            if requeued:
                out.append(Say("leased_attempts_rerun", (("node", view.name(node_id)),)))
                out += requeued
        return out

    def failure_check(
        self, view: ClusterView, grantor: LeaseGrantor | None, now_lease: float, now_wall: float
    ) -> list[Instruction]:
        """On the leader: a node both gossip suspects and Raft has not heard from for
        ``SILENT_NODE_S`` loses its attempts, without waiting out gossip's suspicion timeout (two
        independent signals, seconds of silence: a short blip moves nothing)."""
        if not view.is_leader:
            return []
        if not view.raft_silent:
            return []
        busy = {j.node for j in self.table.active_jobs() if j.node is not None}
        out: list[Instruction] = []
        for node_id in sorted(view.raft_silent & busy):
            out += self.requeue_attempts_of(node_id, "its node stopped answering", view, grantor, now_lease, now_wall)
        return out

    def dead_voter_to_replace(self, view: ClusterView, quorum: int, now_mono: float, grace_s: float) -> str | None:
        """On the leader: a voter dead past ``grace_s`` to remove (a live learner then takes its
        place), one at a time, and never without a live quorum (that is `swarm recover`'s call)."""
        if not view.is_leader:
            return None
        for voter in sorted(view.voters - {self.node_id}):
            since = self.dead_since.get(voter)
            if since is None or now_mono - since < grace_s:
                continue
            if len(view.voters & view.alive) < quorum:
                return None
            return voter
        return None

    def maintenance(
        self,
        view: ClusterView,
        grantor: LeaseGrantor | None,
        capacities: Callable[[], list[NodeCapacity]],
        now_mono: float,
        now_lease: float,
        now_wall: float,
    ) -> list[Instruction]:
        """Once a second: hand back attempts queued here too long while another node is free; on
        the leader, re-queue the work of nodes gossip declared dead."""
        out: list[Instruction] = []
        stopped = self._hand_back_stopped(now_wall)
        if stopped:
            out.append(Propose(tuple(stopped)))
        if len(self.queue):
            nodes = capacities()
            moved = self.queue.to_hand_back(self.table, nodes, now_mono)
            if moved:
                why = self.queue.leaving(self.table, nodes) or "it was busy while another node was free"
                out.append(Say("queued_attempts_handed_back", (("count", len(moved)),)))
                out.append(Propose(tuple(ReleaseQueued(j.id, j.attempt, self.node_id, why, now_wall) for j in moved)))
        if view.is_leader:
            busy = {j.node for j in self.table.active_jobs() if j.node is not None}
            for node_id in sorted(busy - view.alive):
                if node_id in self.dead_since:
                    out += self.requeue_attempts_of(node_id, "its node is dead", view, grantor, now_lease, now_wall)
                elif node_id not in view.members:
                    # Neither Raft nor gossip knows it: it left, or died, before this daemon started
                    # (found by the whole-cluster simulator: a leader restarted after a node's
                    # `swarm leave` never heard of it, and the attempts the table gave it waited
                    # forever).
                    why = "its node is gone from the cluster"
                    out += self.requeue_attempts_of(node_id, why, view, grantor, now_lease, now_wall)
        return out
