"""One seeded simulation of a whole cluster: Raft, gossip, every node's rules and the scheduler.

Every simulated node runs the production code of a daemon's cores and of the shells that carry
them, on one seeded timeline:

- **Raft**: the real ``RaftNode`` inside the real ``RaftHost`` (its Ready loop: persist, send,
  apply, advance; the commit index saved lazily), over a ``SimRaftDisk`` that survives crashes.
- **The job log**: the real ``ReplicatedJobLog`` (``node/committer.py``): batches, the placements
  that ride with them (the real ``PlacementRounds.plan``), forwarding to the leader and resending,
  ``boot_index`` (entries an earlier life may have acted on), a deposed leader's own results
  proposed again, the table replaced after `swarm recover`. Only its asyncio loop is replaced by
  the simulator's batch events (``propose_batch``, ``_forward``, ``check_forwards``).
- **Gossip**: the real ``Membership`` core (``membership/core.py``) per node, ticked with Raft as
  ``Daemon._clock_loop`` ticks it; its member events go where ``Daemon._on_member_event`` sends
  them (the address book, ``NodeState.member_changed``).
- **Leases**: the real ``LeaseHost`` (``node/lease_host.py``) on the node's own drifting clock,
  with its guardian deadline; the rules are ``rules/lease.py``.
- **The node's rules**: the production ``NodeState`` over the node's own ``JobTable``, fed the
  events ``node/daemon.py`` feeds it (``jobs.JobSim`` is the daemon's shell for processes, the
  guardian, start notices, the start loop; this class replaces its abstract leader and log).

The world (all seeded: one seed replays exactly): a lossy, delaying, duplicating network in which
messages go to *addresses* (a node restarted on a new address is unreachable until its peers learn
it from gossip); crashes and restarts from the fake disk (a third of them on a new address);
nodes cut off from everyone; one-way cuts; paused daemons (SIGSTOP: the processes and the
guardian run on); drifting clocks, and wall clocks (``time.time``) seconds or an hour apart
(``_wall_skew``); `swarm recover` after a majority of the voters died (the dead
come back later with their old state, while the new epoch's leader can reach them); `swarm leave`
of a voter (the leader too); full state directories; plain jobs, gangs, and jobs pinned to n0.

Checked after every event (``InvariantBroken`` names the seed and the instant):

- at most one attempt of a stop-job (``on_disconnect="stop"``) runs at any simulated instant;
- a node never runs more than its capacity; a node that has applied the committed log has
  stopped every attempt its table no longer gives it (from ``JobSim``);
- Raft: never two leaders in one term, log matching, committed entries never change, every
  leader holds them, applied prefixes agree (``RaftChecker``);
- a removed voter never counts in a quorum: every leader was elected by a majority of the voters
  of its own configuration, which is never older than a committed configuration of its epoch, and
  after a `recover` no leader of the replaced configuration epoch is ever elected;
- with ``holds``, users' signals (`swarm signal`, through a random daemon) as ``JobSim`` checks
  them: each taken only by the attempt it was sent to, and delivered once, in order, by the node
  that started that attempt (a `recover` starts the record over, as the nodes' rules do); users
  requeue plain jobs and gangs too (`swarm requeue [--hold]`), and some gangs are preemptible
  (a preempted rank stops its gang), under every check above;
- for the ``GANGS`` gangs of each seed (``sim.gangs``): never two attempts of a gang at once,
  distinct slots for an attempt's ranks, and once a rank of an attempt ended without exiting 0,
  every other rank told to stop within ``PARTIAL_MAX_S``;

and at the end: a gang succeeded only if every rank's last attempt exited 0, no acknowledged job lost (a submit is acknowledged once committed; only a
`recover` may give up what the survivors never had, and that is counted, not hidden), every job
terminal, no job succeeded twice.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, cast

from swarmcompute import codec
from swarmcompute.errors import MembershipChangeError, NotLeaderError
from swarmcompute.membership.config import GossipConfig
from swarmcompute.membership.core import Membership
from swarmcompute.membership.effects import MemberDead, MemberEvent, MemberLeft, MemberUp, MemberUpdated, Send
from swarmcompute.membership.members import ALIVE, SUSPECT
from swarmcompute.membership.messages import Gossip
from swarmcompute.membership.meta import NodeMeta
from swarmcompute.node.cluster import ANSWER_TYPES, HELD_TYPES
from swarmcompute.node.cluster_messages import ForwardCommands, ForwardReply
from swarmcompute.node.committer import ReplicatedJobLog
from swarmcompute.node.daemon import (
    RAFT_ELECTION_TIMEOUT_TICKS,
    RAFT_HEARTBEAT_TICKS,
    RAFT_LEARNER_HEARTBEAT_EVERY,
    STOPPING_HOLD_S,
    TICK_S,
    view_of,
)
from swarmcompute.node.lease_host import LeaseHost
from swarmcompute.node.logging_setup import silenced
from swarmcompute.node.placement_rounds import PlacementRounds
from swarmcompute.node.raft_host import LogStorage, RaftHost
from swarmcompute.node.status import quorum_view
from swarmcompute.raft.config import RaftConfig
from swarmcompute.raft.core import RaftNode
from swarmcompute.raft.durable import PersistedState
from swarmcompute.raft.messages import Entry, EntryKind, Message, Snapshot, VoteResponse, epoch_of
from swarmcompute.raft.ready import Ready, Role
from swarmcompute.rules.lease import KILL_GRACE_S, LeaseAsk, LeaseGrant
from swarmcompute.rules.node_state import (
    ClusterView,
    Instruction,
    Propose,
    Reschedule,
    Say,
    SendSignal,
    Stop,
    WakeStarts,
    recovered_voters,
)
from swarmcompute.scheduler.gang import GangShape, Room, fit
from swarmcompute.scheduler.placement import NodeCapacity
from swarmcompute.sim.checkers import RaftChecker
from swarmcompute.sim.disk import SimRaftDisk
from swarmcompute.sim.jobs import (
    CANCEL_GRACE_S,
    PER_ASK,
    PER_FAILURE_CHECK,
    PER_MAINTENANCE,
    InvariantBroken,
    JobSim,
    _Node,
)
from swarmcompute.state.commands import (
    CancelJobs,
    CommandBatch,
    HoldJobs,
    RequeueJobs,
    RequeueLost,
    SignalJobs,
    StartAttempt,
    SubmitJobs,
    UpdateJobs,
)
from swarmcompute.state.drain import SetDrained
from swarmcompute.state.gangs import ranks_of
from swarmcompute.state.history import PruneJobs, prunable
from swarmcompute.state.job import AttemptEnd, Job, JobChanges, JobSpec, JobState
from swarmcompute.state.snapshot import job_record
from swarmcompute.state.table import JobTable
from swarmcompute.storage.details import Details, MemoryDetails
from swarmcompute.transport.outbox import LAZY_S

RAFT_CONFIG = RaftConfig(
    election_timeout_ticks=RAFT_ELECTION_TIMEOUT_TICKS,
    heartbeat_interval_ticks=RAFT_HEARTBEAT_TICKS,
    learner_heartbeat_every=RAFT_LEARNER_HEARTBEAT_EVERY,
    max_voters=5,
)
"""What ``Daemon.run`` gives Raft."""
GOSSIP_CONFIG = GossipConfig.lan()
"""What ``GossipHost`` uses when the daemon names none."""
VOTER_GRACE_S = 30.0
"""``DaemonConfig.voter_grace_s``."""
LEAVE_TIMEOUT_S = 3.0
"""``LEAVE_TRANSFER_TIMEOUT_S``: how long `swarm leave` drains, then waits to be removed."""
LEAVE_BROADCAST_S = 0.3
CLIENT_RETRY_S = 3.0
"""A client whose submit is not committed after this long submits again, to another node (a
submit is idempotent by id)."""
RECOVER_WAIT_S = 15.0
"""How long the simulated operator waits for `swarm status` to show a `recover` it may run."""
KEEP_JOBS = 12
KEEP_S = 20.0
"""The history bound the simulated leaders keep (``--keep-jobs``, ``--keep-s``): small, so that
every seed prunes finished jobs while attempts end, leaders change and snapshots are installed."""
GANGS = 3
"""Gangs (``--ranks``) per seed, besides the plain jobs: 2-4 ranks each, some of them with
``ranks_per_node``; a rank fails as often as any job, and one gang in ten has a rank cancelled."""
PINNED = 4
"""Jobs per seed pinned to n0 (``--node``), besides the others, submitted while the faults strike:
they wait out its crashes, cuts and pauses and its return after `swarm recover`, and must still
end (a start that waited for the lease's fence after such a return once kept a pinned job assigned
for good, ``NodeState.fence_tick``: a job free to go elsewhere was handed back, which hid it)."""


DETAILS_WINDOW = 4
"""Finished jobs a node's table keeps whole (``Daemon``: ``state.compact.WINDOW``): few, so that
compacting, and late results for compacted jobs, happen in every run."""


_NO_DIRECTORY: Any = None
"""The hosts' state directory: the fake disk stands in for it (``open_storage``)."""


class _Store:
    """``LogStorage`` over the fake disk."""

    def __init__(self, disk: SimRaftDisk) -> None:
        self.disk = disk

    def save(self, rd: Ready) -> None:
        self.disk.save(rd)

    def compact(self, snapshot: Snapshot) -> None:
        self.disk.compact(snapshot)

    def close(self) -> None:
        pass


class _SimRaftHost(RaftHost):
    """The real ``RaftHost``; only its "process on the next loop turn" is a simulated event."""

    def __init__(self, sim: ClusterSim, node_id: str, disk: SimRaftDisk, log: ReplicatedJobLog, rng: random.Random):
        def from_disk(_: Any) -> tuple[LogStorage, PersistedState]:
            return _Store(disk), disk.load()

        super().__init__(
            node_id,
            _NO_DIRECTORY,
            send=log._send_raft,
            apply=log._apply_entry,
            restore=log._restore,
            config=RAFT_CONFIG,
            tick_interval_s=TICK_S,
            rng=rng,
            open_storage=from_disk,
        )
        self._sim = sim
        self.kicked = False

    def _kick(self) -> None:
        if not self.kicked:
            self.kicked = True
            self._sim.ready_soon(self.node_id)

    def _persist(self, storage: LogStorage, rd: Ready) -> None:
        if rd.events and self._sim.trace is not None:
            for event in rd.events:
                self._sim._log(f"{self.node_id} raft {event.name} term {event.term} {event.detail}")
        if rd.entries:
            self._sim.checker.on_written(self.node, rd.entries)
        super()._persist(storage, rd)

    def _process_ready(self) -> None:
        super()._process_ready()
        self._sim.after_ready(self)


class _Reply:
    """A stand-in for the asyncio future a proposer waits on: the committer settles it by its own
    rule (committed in the term it was proposed in, or not)."""

    def __init__(self, on_result: Callable[[], None], on_error: Callable[[], None] = lambda: None) -> None:
        self._on_result = on_result
        self._on_error = on_error
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, _: None) -> None:
        self._done = True
        self._on_result()

    def set_exception(self, _: BaseException) -> None:
        self._done = True
        self._on_error()


class _SimJobLog(ReplicatedJobLog):
    """The real ``ReplicatedJobLog``: the simulator runs one pass of its proposal loop per batch
    event (``step``) instead of its asyncio loop."""

    raft: _SimRaftHost

    def __init__(
        self, sim: ClusterSim, node_id: str, table: JobTable, disk: SimRaftDisk, rng: random.Random, details: Details
    ):
        super().__init__(
            node_id,
            _NO_DIRECTORY,
            table,
            lambda changed: sim.on_applied(node_id, changed),
            send_to=lambda dst, msg: sim.send_to(node_id, dst, msg),
            config=RAFT_CONFIG,
            tick_interval_s=TICK_S,
            rng=rng,
            compact_after_entries=10**9,
            clock=lambda: sim.now,
            wall_clock=lambda: sim.nodes[node_id].wall(sim.now),
            request_id=sim.request_id,
            details=details,
            whole_window=DETAILS_WINDOW,
            compact_after_bytes=10**12,
        )
        self._sim = sim
        self.raft = _SimRaftHost(sim, node_id, disk, self, rng)

    def _apply_entry(self, entry: Entry) -> None:
        self._sim.on_entry(self.node_id, entry)
        super()._apply_entry(entry)

    def _restore(self, snapshot: Snapshot) -> None:
        self._sim.on_restore(self.node_id, snapshot)
        super()._restore(snapshot)

    def step(self) -> None:
        """One pass of ``_proposal_loop``, without its waits (the batch events pace it)."""
        if self._forwarded:
            self.check_forwards()
        if not self._queue and not (self._plan_wanted and self.raft.is_leader):
            return
        if not self.raft.is_leader:
            self._plan_wanted = False
            if not self._queue:
                return
            leader = self.raft.leader_id
            if leader is not None and leader != self.node_id:
                self._forward(leader)
            else:
                self.raft.elect_self_if_alone()  # otherwise the queue waits for a leader
            return
        self.propose_batch()

    def _requeue_locally(self, forward: Any) -> None:
        """As the committer does, with a ``_Reply`` as the marker instead of an asyncio future."""
        *head, last = forward.msg.commands
        waiting = list(forward.futures)

        def settle() -> None:
            for fut in waiting:
                if not fut.done():
                    fut.set_result(None)

        self._queue.extend((cmd, None) for cmd in head)
        self._queue.append((last, cast(Any, _Reply(settle))))

    def has_work(self) -> bool:
        """What wakes the proposal loop: queued commands (while some node leads: without one,
        ``_wait_for_leader`` waits rather than spins), or a round the leader wants."""
        raft = self.raft
        if raft.is_leader:
            return bool(self._queue or self._plan_wanted)
        return bool(self._queue) and (raft.leader_id is not None or raft.node.membership.voters == {self.node_id})

    def pending(self) -> bool:
        return bool(self._queue or self._forwarded or (self._plan_wanted and self.raft.is_leader))

    def serve(self, sender: str, msg: ForwardCommands) -> None:
        """``serve_forward`` on the leader: commit a follower's commands, then reply."""
        if not self.raft.is_leader or not msg.commands:
            return  # the follower resends to whoever leads next
        sim = self._sim
        new, answered = self.served.first(sender, msg.request_id)  # as ``_serve_forward``
        if not new:
            if answered is not None:
                sim.send_to(self.node_id, sender, ForwardReply(msg.request_id, answered))
            return

        def reply() -> None:
            self.served.committed(sender, msg.request_id, self.raft.applied_index)
            sim.send_to(self.node_id, sender, ForwardReply(msg.request_id, self.raft.applied_index))

        *head, last = msg.commands
        self._queue.extend((cmd, None) for cmd in head)
        self._queue.append((last, cast(Any, _Reply(reply, lambda: self.served.failed(sender, msg.request_id)))))

    def submit(self, specs: tuple[JobSpec, ...], now: float) -> None:
        """``Daemon.submit``: proposed; the client learns of its commit from the table."""
        self._queue.append((SubmitJobs(specs, now, self.node_id), None))

    def propose_prune(self, job_ids: tuple[str, ...], now: float) -> None:
        """``Daemon._propose_prune``: once a second while past the bound (a repeat is re-checked
        on apply, as any prune)."""
        self._queue.append((PruneJobs(job_ids, now, "history bound"), None))


@dataclass(slots=True)
class _Host:
    """One daemon's parts (gone with a crash; the disk and address book are not)."""

    log: _SimJobLog
    lease: LeaseHost
    rounds: PlacementRounds
    gossip: Membership
    ready_due: bool = False
    leaving: float | None = None
    """When `swarm leave` began (None: it does not leave)."""
    left_config: bool = False
    stopping: dict[str, float] = field(default_factory=dict)
    """``Daemon._stopping``: members that told this leader they stop their attempts, and when."""
    leader_term: int | None = None
    commit_seen: int = 0
    app_index: int = 0
    app_digest: int = 0


@dataclass(slots=True)
class _Peer:
    """What outlives a daemon: its disk, address and address book."""

    disk: SimRaftDisk = field(default_factory=SimRaftDisk)
    details: MemoryDetails = field(default_factory=MemoryDetails)
    """Finished jobs' details (``storage.details``): what was synced survives a crash."""
    address: str = ""
    book: dict[str, str] = field(default_factory=dict)
    gone: bool = False
    """It left the cluster (`swarm leave`) and never comes back."""
    incarnation: int = 0


def _wall_skew(rng: random.Random) -> float:
    """A node's wall clock against real time: right for half the nodes, a few seconds off for a
    quarter, an hour off either way for the rest (a Raspberry Pi without a clock battery, a laptop
    off NTP). Stamps cross nodes: a failure's ``finished_at``, a leader's ``CommandBatch.at``."""
    draw = rng.random()
    if draw < 0.5:
        return 0.0
    if draw < 0.75:
        return rng.uniform(-5.0, 5.0)
    return rng.choice((-3600.0, 3600.0))


class ClusterSim(JobSim):
    BEGINS = False
    NOTICES = False  # no simulated leader tells them here: the job simulation's does
    """No ``--begin`` times: the nodes' wall clocks are up to an hour off here (``_wall_skew``), and
    a start time waits for the leader's clock, so a job could wait past the end of the run."""

    def __init__(
        self,
        seed: int,
        *,
        nodes: int = 5,
        jobs: int = 40,
        recover_share: float = 0.2,
        leave_share: float = 0.3,
        readdress_share: float = 0.35,
        disk_full_share: float = 0.5,
        drain_share: float = 0.5,
        gangs: int = GANGS,
        pinned: int = PINNED,
        trace: bool = False,
        holds: bool = False,
    ) -> None:
        self.checker = RaftChecker()
        self._dirty: set[str] = set()
        """Nodes whose processes or applied entries changed since the last check."""
        self._kept_down: set[str] = set()
        self._recover_by = 0.0
        self._keep_address: set[str] = set()
        self.hosts: dict[str, _Host | None] = {}
        self.peers: dict[str, _Peer] = {}
        self._owner: dict[str, str] = {}
        self._votes: dict[tuple[str, int], set[str]] = {}
        self._requests = 0
        self._global: list[Entry] = []
        self._acked: set[str] = set()
        self._given_up: set[str] = set()
        self._submitted: dict[str, JobSpec] = {}
        self._forced_epoch: int | None = None
        self._config_index: dict[int, int] = {}
        """Epoch -> the index of its latest committed CONFIG entry."""
        self._readdress_share = readdress_share
        self._drain_wanted: dict[str, bool] = {}
        self.drains = 0
        self._gangs = gangs
        self._pinned = pinned
        self.recovers = 0
        self.leaves = 0
        self.readdresses = 0
        self.disk_fills = 0
        self.raft_messages = 0
        super().__init__(seed, nodes=nodes, jobs=jobs, trace=trace, holds=holds)
        self.leader = None
        self.term = 0
        ids = sorted(self.nodes)
        skews = random.Random(f"{seed}/wall")  # its own stream: the seeds' other draws stay as they were
        for node_id in ids:
            self.nodes[node_id].wall_skew = _wall_skew(skews)
        for node_id in ids:
            self.peers[node_id] = _Peer(address=f"{node_id}@0", book={})
        for node_id in ids:
            self.peers[node_id].book = {p: self.peers[p].address for p in ids if p != node_id}
            self._owner[self.peers[node_id].address] = node_id
        for node_id in ids:
            disk = self.peers[node_id].disk
            # Every node of a formed cluster: the same first configuration, durable.
            boot = RaftNode.bootstrap(node_id, ids, RAFT_CONFIG, random.Random(0))
            rd = boot.ready()
            disk.save(rd)
            self._boot(self.nodes[node_id])
        # At most one of them per seed: an operator does not run `swarm recover` on a cluster
        # while one of its nodes is in the middle of `swarm leave`.
        roll = self.rng.random()
        if roll < recover_share:
            self._at(self.rng.uniform(0.5, 3.0), "recover_begin", None)
        elif roll < recover_share + leave_share:
            self._at(self.rng.uniform(0.5, 5.0), "leave", None)
        # A node's state directory fills, then is freed (it gossips ``disk_full``: no new jobs go
        # there, and what is queued there goes back at once). Drawn from its own generator, so the
        # seeds' other faults fall where they did before this fault existed.
        draws = random.Random(f"disk-{seed}")
        if draws.random() < disk_full_share:
            at = draws.uniform(0.5, 4.0)
            self._at(at, "disk_full", (draws.choice(ids), at + draws.uniform(1.0, 6.0)))
        # `swarm drain NODE`, then `swarm undrain NODE`, through random daemons: it starts nothing
        # more, and hands back what it had queued (what no other node may run, pinned work, at once).
        drains = random.Random(f"drain-{seed}")
        if drains.random() < drain_share:
            at = drains.uniform(0.5, 4.0)
            target = drains.choice(ids)
            self._at(at, "drain", (target, True))
            self._at(at + drains.uniform(1.0, 6.0), "drain", (target, False))

    # -- one daemon's life -------------------------------------------------------------

    def _boot(self, node: _Node) -> None:
        """``Daemon.run``'s start-up: open the log (the table rebuilt silently), the lease host,
        placement rounds, gossip joining through the address book; then ``restarted``."""
        peer = self.peers[node.id]
        peer.incarnation += 1
        rng = random.Random(f"{self.seed}/{node.id}/{peer.incarnation}")
        node.table = JobTable()
        node.state = self._node_state(node.id, node.table)
        log = _SimJobLog(self, node.id, node.table, peer.disk, rng, peer.details)
        log.on_new_epoch = lambda epoch: self._on_new_epoch(node.id, epoch)
        lease = LeaseHost(
            node.id,
            log.raft,
            send_to=lambda dst, msg: self.send_to(node.id, dst, msg),
            send_lazily=lambda dst, msg: self.send_to(node.id, dst, msg, lazy=True),
            set_deadline=lambda ns: self._set_deadline(node, ns),
            on_change=lambda held: self._carry(node, node.state.lease_changed(held, self._running_keys(node))),
            clock=lambda: node.clock(self.now),
            wall_clock=lambda: node.wall(self.now),
        )
        node.lease = lease.lease
        rounds = PlacementRounds(node.table, log, lambda: self._capacities(node), clock=lambda: node.wall(self.now))
        meta = self._meta(node)
        gossip = Membership(node.id, peer.address, GOSSIP_CONFIG, rng, meta=meta)
        host = _Host(log, lease, rounds, gossip)
        self.hosts[node.id] = host
        start_up = log.open  # replays the committed entries silently (``_replaying``)
        start_up()
        node.boot_index = log.boot_index
        node.applied = log.raft.applied_index
        self._gossip_carry(node, gossip.join(sorted(peer.book.values())))
        self._carry(node, node.state.restarted(node.wall(self.now)))
        rounds.request()
        self._pump(node)

    def _meta(self, node: _Node) -> NodeMeta:
        """What ``Inventory.meta`` advertises of the node (its state directory's state included)."""
        cap = node.capacity
        return NodeMeta(name=node.id, cpus=int(cap.cpus), mem_total=cap.mem_bytes, disk_full=cap.disk_full)

    def _on_disk_full(self, arg: tuple[str, float]) -> None:
        node_id, until = arg
        self._set_disk_full(self.nodes[node_id], True)
        self.disk_fills += 1
        self._at(until, "disk_freed", node_id)

    def _on_drain(self, arg: tuple[str, bool] | tuple[str, bool, bool]) -> None:
        """`swarm drain` / `swarm undrain` through a random node's daemon. A drain is asked again
        until committed, as a user whose command failed would; after an undrain the user keeps an
        eye on `swarm nodes` and undrains again whenever the node shows drained (a drain asked
        through a node cut off meanwhile may commit after the undrain: it would strand the work
        pinned to that node for good)."""
        node_id, drained, *again = arg
        if not again:  # the user's command; what is asked again after it is the latest one's
            self._drain_wanted[node_id] = drained
            self.drains += drained
            self._log(f"USER swarm {'drain' if drained else 'undrain'} {node_id}")
        if self._drain_wanted.get(node_id) != drained:
            return
        is_drained = node_id in self.table.drained
        if drained and is_drained:
            return
        self._at(self.now + CLIENT_RETRY_S, "drain", (node_id, drained, True))
        if not drained and not is_drained:
            return
        up = [n for n in sorted(self.nodes) if self._serving(n)]
        if up:
            via = random.Random(f"{self.seed}/drain/{self.now}").choice(up)  # the seed's other draws stay
            self._node_host(self.nodes[via]).log.enqueue([SetDrained(node_id, drained, self.nodes[via].wall(self.now))])

    def _on_disk_freed(self, node_id: str) -> None:
        self._set_disk_full(self.nodes[node_id], False)

    def _set_disk_full(self, node: _Node, full: bool) -> None:
        """The state directory fills (or is freed): ``DiskWatch`` sees it at the daemon's next
        maintenance, which advertises it (``_maintenance``)."""
        node.capacity = replace(node.capacity, disk_full=full)
        self._log(f"FAULT {node.id} state directory {'full' if full else 'writable again'}")

    def _node_host(self, node: _Node) -> _Host:
        host = self.hosts[node.id]
        assert host is not None
        return host

    def ready_soon(self, node_id: str) -> None:
        """``RaftHost._kick``: process the Ready right after the current event."""
        self._at(self.now, "ready", (node_id, self.nodes[node_id].life))

    def _on_ready(self, arg: tuple[str, int]) -> None:
        node = self.nodes[arg[0]]
        host = self.hosts.get(node.id)
        if host is None or not node.alive or node.life != arg[1]:
            return
        host.log.raft.kicked = False
        if node.paused:
            host.ready_due = True
            return
        host.log.raft._process_ready()

    def after_ready(self, raft: RaftHost) -> None:
        """After each Ready loop: the Raft checks, and the node's view of who leads."""
        node = self.nodes[raft.node_id]
        host = self.hosts.get(node.id)
        core = raft.node
        checker = self.checker
        if host is not None:
            self._note_commit(host)
            if core.role is Role.LEADER and host.leader_term != core.term:
                host.leader_term = core.term
                self._log(f"{node.id} LEADER term {core.term} (epoch {epoch_of(core.term)}) voters "
                          f"{sorted(core.membership.voters)}")  # fmt: skip
                checker.on_leader(core)
                self._check_quorum(core)
        if checker.violations:
            self._fail(checker.violations[0])
        node.term, node.leader = core.term, core.leader_id
        node.applied = raft.applied_index
        if core.role is Role.LEADER and (self.leader is None or self.term <= core.term):
            self.leader, self.term = node.id, core.term
        elif self.leader == node.id and core.role is not Role.LEADER:
            self.leader = None

    def _note_commit(self, host: _Host) -> None:
        core = host.log.raft.node
        if core.commit > host.commit_seen:
            self.checker.on_commit(core, host.commit_seen)
            host.commit_seen = core.commit
            self._advance_global()

    def _check_quorum(self, core: Any) -> None:
        """A removed voter never counts: the leader's votes come from a majority of its own
        configuration's voters, and that configuration is not older than a committed one."""
        voters = core.membership.voters
        votes = (self._votes.get((core.id, core.term), set()) | {core.id}) & voters
        if len(votes) < core.membership.quorum:
            self._fail(f"{core.id} leads term {core.term} with votes {sorted(votes)} of voters {sorted(voters)}")
        epoch = epoch_of(core.term)
        if core.membership_index < self._config_index.get(epoch, 0):
            self._fail(
                f"{core.id} leads term {core.term} with the configuration at {core.membership_index}, older than "
                f"the committed one at {self._config_index[epoch]}"
            )
        if self._forced_epoch is not None and epoch < self._forced_epoch:
            self._fail(f"{core.id} leads term {core.term} of a configuration epoch `recover` replaced")

    def on_entry(self, node_id: str, entry: Entry) -> None:
        """A node applies a committed entry (``RaftChecker.on_applied``)."""
        host = self.hosts[node_id]
        if host is None:
            return
        self._note_commit(host)
        self._dirty.add(node_id)
        host.app_digest = self.checker.on_applied(node_id, host.app_index, host.app_digest, entry)
        host.app_index = entry.index
        self._advance_global()

    def on_restore(self, node_id: str, snapshot: Snapshot) -> None:
        """A node's state machine restarts from a snapshot (after `recover`: from nothing)."""
        host = self.hosts[node_id]
        if host is None:
            return
        digest = 0 if not snapshot.data else -1
        self.checker.on_restored(node_id, snapshot.index, digest, snapshot.term)
        host.app_index, host.app_digest = snapshot.index, digest

    def _advance_global(self) -> None:
        """The committed history (``RaftChecker.committed``) as one table: the checks read it."""
        committed = self.checker.committed
        n = len(self._global)
        if n and (len(committed) < n or committed[n - 1] is not self._global[n - 1]):
            self._rebuild_global()
            return
        for entry in committed[n:]:
            self._global.append(entry)
            self._apply_global(entry)
        self.index = len(self._global)

    def _rebuild_global(self) -> None:
        """`recover` replaced history: the table starts over from the new epoch's log."""
        before = {j.id for j in self.table.jobs()} | self._pruned  # a pruned one was acknowledged too
        self.table = JobTable()
        self._successes = {}
        self._pruned = set()
        self._signals_sent, self._signals_got = {}, {}  # what each node delivered: the rules forget it too
        self._held_back = set()
        self.late_resubmits = 0
        self._global = []
        self._config_index = {}
        for entry in self.checker.committed:
            self._global.append(entry)
            self._apply_global(entry)
        self.index = len(self._global)
        gone = (before - {j.id for j in self.table.jobs()} - self._pruned) & self._acked
        if gone:
            self._log(f"recover gave up acknowledged jobs {sorted(gone)} (the survivors never had them)")
            self._given_up |= gone
            self._acked -= gone
            again = {self._submitted[j].gang_id or j for j in gone}
            for ref in sorted(again):  # their owner runs them again (the new table knows nothing of them)
                specs = tuple(s for s in self._submitted.values() if ref in (s.id, s.gang_id))
                self._at(self.now + CLIENT_RETRY_S, "submit", specs)

    def _apply_global(self, entry: Entry) -> None:
        if entry.kind is EntryKind.CONFIG:
            self._config_index[epoch_of(entry.term)] = entry.index
            return
        if entry.kind is not EntryKind.NORMAL:
            return
        batch = codec.decode(entry.data)
        if not isinstance(batch, CommandBatch):
            return
        for cmd in batch.commands:
            self._apply(cmd, batch.at)
            if isinstance(cmd, SubmitJobs):
                for spec in cmd.jobs:
                    self._acked.add(spec.id)

    # -- what the daemon's shell does ---------------------------------------------------

    def _on_new_epoch(self, node_id: str, epoch: int) -> None:
        """``Daemon._on_new_epoch``."""
        node = self.nodes[node_id]
        self._carry(node, node.state.recovered(self._running_keys(node), node.wall(self.now), epoch))

    def on_applied(self, node_id: str, changed: list[str]) -> None:
        """``Daemon._on_applied``."""
        node = self.nodes[node_id]
        host = self._node_host(node)
        log = host.log
        running = self._running_here(node)
        instructions = node.state.applied(
            changed,
            running,
            from_earlier_life=log.applying_index <= log.boot_index,
            now_mono=self.now,
            now_wall=node.wall(self.now),
            may_start=self._may_start(node),
        )
        reschedule = any(isinstance(i, Reschedule) for i in instructions)
        self._carry(node, [i for i in instructions if not isinstance(i, Reschedule)])
        host.rounds.applied(reschedule)
        self._log_fences(node, changed, running)
        self._pump(node)

    def _pump(self, node: _Node) -> None:
        """``PlacementRounds.run``: a change seen asks the leader's next batch for a round."""
        host = self.hosts.get(node.id)
        if host is not None and host.rounds.change_pending:
            host.rounds.take_change()

    def _carry(self, node: _Node, instructions: list[Instruction], *, duty: bool = False) -> None:
        """``Daemon._carry``: do what the rules decided; decide nothing."""
        host = self.hosts.get(node.id)
        if host is None:
            return
        proposals = []
        for ins in instructions:
            if isinstance(ins, Propose):
                for cmd in ins.commands:
                    if isinstance(cmd, StartAttempt):
                        self._notice_start(node, cmd)
                        continue
                    if isinstance(cmd, RequeueLost) and cmd.leader_term:
                        self.reruns += 1
                        self._log(f"{node.id} re-runs {cmd.job_id}.{cmd.attempt} ({cmd.why}; term {cmd.leader_term})")
                    proposals.append(cmd)
            elif isinstance(ins, Stop):
                if ins.lost:
                    grace_s = CANCEL_GRACE_S if ins.asked else KILL_GRACE_S
                    self._terminate(node, (ins.job_id, ins.attempt), AttemptEnd.STOPPED, grace_s)
                else:
                    self._terminate(node, (ins.job_id, ins.attempt), AttemptEnd.CANCELLED, CANCEL_GRACE_S)
            elif isinstance(ins, WakeStarts):
                self._wake_starts(node)
            elif isinstance(ins, Reschedule):
                host.rounds.request()
                self._pump(node)
            elif isinstance(ins, Say):
                self._log(f"{node.id} says {ins.event} {dict(ins.fields)}")
            elif isinstance(ins, SendSignal):
                self._deliver(node, ins)
        if proposals:
            host.log.enqueue(proposals)

    def _on_notices(self, arg: tuple[str, int]) -> None:
        """``Daemon._send_start_notices``."""
        node = self.nodes[arg[0]]
        if not node.alive or node.life != arg[1] or node.paused:
            return
        notices = self._fire_notices(node)
        if notices:
            self._node_host(node).log.enqueue(notices)

    def _on_starts(self, arg: tuple[str, int]) -> None:
        node = self.nodes[arg[0]]
        host = self.hosts.get(node.id)
        if host is not None and host.leaving is not None:
            node.starts_armed = False
            return  # the executor is shut down: `swarm leave` starts nothing more
        super()._on_starts(arg)

    def _holds(self, node: _Node) -> bool:
        return self._node_host(node).lease.holds()

    def _may_start(self, node: _Node) -> bool:
        return self._node_host(node).lease.may_start()

    def _lease_check(self, node: _Node) -> None:
        self._node_host(node).lease.check()

    def _set_deadline(self, node: _Node, deadline_ns: int) -> None:
        """``executor.set_lease_deadline``: 0 none, 1 at once, else the deadline on its clock."""
        node.guardian = None if deadline_ns == 0 else float("-inf") if deadline_ns == 1 else deadline_ns / 1e9
        self._arm_guardian(node)

    def _view(self, node: _Node, *, with_silent: bool = False) -> ClusterView:
        """``Daemon._view``: ``view_of`` this node's Raft host and gossip."""
        host = self._node_host(node)
        return view_of(node.id, host.log.raft, host.gossip.members(), with_silent=with_silent)

    def _capacities(self, node: _Node) -> list[NodeCapacity]:
        """``Daemon.capacities``: this node (not once it leaves), and every node its gossip calls
        alive, less the nodes its grantor bars."""
        host = self._node_host(node)
        members = host.gossip.members()
        grantor = host.lease.grantor
        barred = (
            grantor.unplaceable((m.node_id for m in members), host.lease.voters(), node.clock(self.now))
            if grantor is not None
            else set()
        )
        now = node.clock(self.now)
        out = [] if host.leaving is not None else [node.capacity]
        for member in members:
            if member.node_id == node.id or member.state is not ALIVE or member.meta is None:
                continue
            if member.node_id in barred or now - host.stopping.get(member.node_id, -STOPPING_HOLD_S) < STOPPING_HOLD_S:
                continue
            meta = member.meta
            out.append(
                NodeCapacity(member.node_id, meta.name, float(meta.cpus), meta.mem_total, disk_full=meta.disk_full)
            )
        return out

    # -- the daemon's clock loop ---------------------------------------------------------

    def _on_tick(self, arg: tuple[str, int]) -> None:
        """``Daemon._clock_loop``: Raft, gossip and the lease tick; the leader's duties;
        maintenance every second."""
        node_id, life = arg
        node = self.nodes[node_id]
        if not node.alive or node.life != life:
            return
        if node.paused:
            node.tick_due = True
            return
        self._at(self.now + TICK_S / node.rate, "tick", arg)
        host = self._node_host(node)
        node.ticks += 1
        raft = host.log.raft
        raft.tick()
        self._gossip_carry(node, host.gossip.tick())
        if self.hosts.get(node_id) is not host:
            return  # it left meanwhile
        host.lease.tick(ask=node.ticks % PER_ASK == 0)
        if node.state.blocked_on_fence:
            self._carry(node, node.state.fence_tick(self._may_start(node)))
        if host.log._forwarded:  # the proposal loop's wait times out every FORWARD_RESEND_S / 2
            host.log.check_forwards()
        state, now = node.state, self.now
        if raft.is_leader:
            view = self._view(node)
            grantor = host.lease.grantor
            lease_now = node.clock(now)
            self._carry(node, state.leader_tick(view, grantor, raft.applied_index, lease_now, node.wall(now)))
            if node.ticks % PER_FAILURE_CHECK == 0:
                view = self._view(node, with_silent=True)
                self._carry(node, state.failure_check(view, grantor, lease_now, node.wall(now)))
        if node.ticks % PER_MAINTENANCE == 0:
            self._maintenance(node, host)
        if host.leaving is not None:
            self._leave_step(node, host)

    def _maintenance(self, node: _Node, host: _Host) -> None:
        """``Daemon._maintenance``: join retries, placement rounds for waiting jobs, the rules'
        maintenance, and on the leader the replacement of voters dead past the grace period."""
        self._join_step(node, host)
        advertised = host.gossip.local.meta
        if (advertised is not None and advertised.disk_full) != node.capacity.disk_full:  # ``GossipHost.advertise_now``
            host.gossip.set_meta(self._meta(node))
            host.rounds.request()
            self._carry(node, [WakeStarts()])  # the daemon's ``_start_wakeup``
        raft = host.log.raft
        if raft.is_leader and node.table.highest_pending_priority() is not None:
            host.rounds.request()
        elif any(0 < j.not_before <= self.now for j in node.table.pending_jobs()):
            host.rounds.request()
        self._pump(node)
        view = self._view(node)
        self._carry(
            node,
            node.state.maintenance(
                view,
                host.lease.grantor,
                lambda: self._capacities(node),
                self.now,
                node.clock(self.now),
                node.wall(self.now),
            ),
        )
        if view.is_leader:
            pruned = prunable(node.table, keep_jobs=KEEP_JOBS, keep_s=KEEP_S, now=node.wall(self.now))
            if pruned:  # ``Daemon._prune_history``: the finished jobs past the history bound
                host.log.propose_prune(tuple(pruned), node.wall(self.now))
            voter = node.state.dead_voter_to_replace(view, raft.node.membership.quorum, self.now, VOTER_GRACE_S)
            if voter is not None:
                try:
                    raft.remove(voter)
                    self._log(f"{node.id} removes dead voter {voter}")
                except (MembershipChangeError, NotLeaderError):
                    pass

    def _join_step(self, node: _Node, host: _Host) -> None:
        """``ClusterLink.join_step``: a node outside the configuration asks to be added."""
        core = host.log.raft.node
        if (node.id in core.membership.members and not core.exclusion) or host.leaving is not None:
            return
        peer = self.peers[node.id]
        leader = core.leader_id
        targets = [leader] if leader is not None and leader in peer.book else sorted(peer.book)
        for target in targets:
            self.send_to(node.id, target, ("join", node.id, peer.address))

    def _on_join(self, node: _Node, host: _Host, joiner: str, address: str) -> None:
        """``ClusterLink._on_join``."""
        self._learn(node.id, joiner, address)
        self._gossip_carry(node, host.gossip.join([address]))
        raft = host.log.raft
        if raft.is_leader:
            try:
                if raft.add_learner(joiner):
                    self._log(f"{node.id} adds {joiner} as a learner (rejoining)")
            except (MembershipChangeError, NotLeaderError):
                pass

    # -- gossip ------------------------------------------------------------------------

    def _gossip_carry(self, node: _Node, effects: list[Any]) -> None:
        """``GossipHost._carry``: sends by address, a rumour (a ``Gossip`` not told directly) held
        up to ``LAZY_S`` as the outbox holds it; member events to ``_on_member_event``."""
        for effect in effects:
            if isinstance(effect, Send):
                lazy = isinstance(effect.msg, Gossip) and not effect.urgent
                self._send_address(node.id, effect.address, ("gossip", effect.msg), lazy=lazy)
            else:
                self._on_member_event(node, effect)

    def _on_member_event(self, node: _Node, event: MemberEvent) -> None:
        """``Daemon._on_member_event``."""
        alive = isinstance(event, (MemberUp, MemberUpdated))
        if alive:
            self._learn(node.id, event.node_id, event.address)
        elif not isinstance(event, (MemberDead, MemberLeft)):
            return
        host = self._node_host(node)
        self._log(f"{node.id} hears {event.node_id} {type(event).__name__}")
        now = self.now
        self._carry(
            node,
            node.state.member_changed(
                event.node_id, alive, self._view(node), host.lease.grantor, now, node.clock(now), node.wall(now)
            ),
        )

    def _learn(self, node_id: str, peer: str, address: str) -> None:
        if peer != node_id:
            self.peers[node_id].book[peer] = address

    # -- the network -------------------------------------------------------------------

    def request_id(self) -> str:
        self._requests += 1
        return f"r{self._requests}"

    def send_to(self, src: str, dst: str, msg: object, *, lazy: bool = False) -> bool:
        """``ClusterLink.send_to``: by the address this node's book has for ``dst``. ``lazy``:
        ``ClusterLink.post_lazily`` (the lease host's renewals), which the transport's outbox holds
        for the next frame to that address, at most ``LAZY_S``: up to that much later."""
        host = self.hosts.get(src)
        if host is not None and isinstance(msg, HELD_TYPES) and not host.gossip.settled:
            return True  # ``ClusterLink._held``
        address = self.peers[src].book.get(dst)
        if address is None:
            return False
        self._send_address(src, address, msg, lazy=lazy)
        return True

    def _send(self, src: str, dst: str, msg: LeaseAsk | LeaseGrant) -> None:
        self.send_to(src, dst, msg)

    def _send_address(self, src: str, address: str, msg: object, *, lazy: bool = False) -> None:
        """``lazy``: as the outbox holds a message that waits for company, up to ``LAZY_S`` later."""
        self.messages += 1
        rng = self.rng
        held = rng.uniform(0.0, LAZY_S) if lazy else 0.0
        if rng.random() < self._drop:
            return
        for _ in range(2 if rng.random() < 0.01 else 1):
            delay = held + rng.uniform(0.001, 0.010)
            if rng.random() < self._spike:
                delay += rng.uniform(0.0, 1.5)
            self._at(self.now + delay, "deliver", (src, address, msg))

    def _on_deliver(self, arg: tuple[str, str, object]) -> None:  # type: ignore[override]
        src, address, msg = arg
        dst = self._owner.get(address)
        if dst is None:
            return  # nobody listens there (any more)
        node = self.nodes[dst]
        if not node.alive or not self.linked(src, dst) or self.hosts.get(dst) is None:
            return
        if node.paused:
            node.inbox.append((src, cast(Any, msg)))  # any message waits in the socket
            return
        self._handle(node, src, msg)

    def _handle(self, node: _Node, src: str, msg: Any) -> None:
        """``ClusterLink``'s dispatch: Raft, gossip, forwards, joins and leaves, leases."""
        host = self.hosts.get(node.id)
        if host is None:
            return
        if isinstance(msg, HELD_TYPES) and not host.gossip.settled:
            return  # as the shell: Raft, forwards and leases wait until gossip settled
        if isinstance(msg, ANSWER_TYPES):
            host.gossip.heard(src)  # as the shell: an answer spares the sender's probe
        if isinstance(msg, Message):
            self.raft_messages += 1
            if isinstance(msg, VoteResponse) and msg.granted and not msg.pre_vote:
                self._votes.setdefault((msg.dst, msg.term), set()).add(msg.src)
            host.log.raft.step(msg)
        elif isinstance(msg, tuple):
            kind = msg[0]
            if kind == "gossip":
                self._gossip_carry(node, host.gossip.step(src, msg[1]))
            elif kind == "join":
                self._on_join(node, host, msg[1], msg[2])
            elif kind == "leave":
                self._on_leave_request(node, host, msg[1])
            elif kind == "stopping":
                if msg[1] == src and host.log.raft.is_leader:
                    host.stopping[src] = node.clock(self.now)
                    self._log(f"{node.id} places nothing more on {src} (it stops)")
        elif isinstance(msg, ForwardCommands):
            host.log.serve(src, msg)
        elif isinstance(msg, ForwardReply):
            host.log.forward_reply(msg)
        else:
            host.lease.on_message(src, msg)

    # -- the proposal loops -------------------------------------------------------------

    def _on_batch(self, _: Any) -> None:
        """Every ``BATCH_S``: each running daemon's proposal loop takes one turn."""
        self._at(self.now + 0.005, "batch", None)
        for node in self.nodes.values():
            host = self.hosts.get(node.id)
            if host is not None and node.alive and not node.paused and host.log.has_work():
                host.log.step()

    def _sync(self, node: _Node, *, catch_up: bool = True) -> None:
        """Raft catches up by itself."""

    def _sync_all(self, *, catch_up: bool = True) -> None:
        """Raft catches up by itself."""

    # -- clients -----------------------------------------------------------------------

    def _schedule_jobs(self, count: int, keep_share: float) -> None:
        """``JobSim``'s jobs, then the pinned jobs and the gangs (each drawn from a stream of its
        own: the plain jobs of a seed stay what they were)."""
        super()._schedule_jobs(count, keep_share)
        pins = random.Random(f"{self.seed}/pins")
        for i in range(self._pinned):
            spec = JobSpec(
                id=f"p{i}", argv=("sim",), node="n0", cpus=pins.choice((0.0, 0.5, 1.0)), retries=pins.choice((0, 1)),
                on_disconnect="keep" if pins.random() < keep_share else "stop",
            )  # fmt: skip
            self._at(pins.uniform(0.0, 4.0), "submit", spec)
        rng = random.Random(f"{self.seed}/gangs")
        requeues = random.Random(f"{self.seed}/gang-requeues")  # the gangs' own draws stay
        preempts = random.Random(f"{self.seed}/gang-preempts")
        for i in range(self._gangs):
            ranks = rng.choice((2, 3, 4))
            spec = JobSpec(
                id=f"g{i}", argv=("sim",), priority=rng.choice((0, 0, 5)), cpus=rng.choice((0.5, 1.0)),
                retries=rng.choice((0, 1, 2)),
            )  # fmt: skip
            if self.holds and preempts.random() < 0.4:  # `swarm run --ranks N --preemptible`
                spec = replace(spec, preemptible=True)
            per_node = rng.choice((0, 1, 2))
            if per_node and not self._fits_always(GangShape(ranks, min(per_node, ranks), spec.cpus, 0, 0)):
                per_node = 0  # every gang fits on n0 alone: 4 cpus
            specs = tuple(ranks_of(spec, ranks, min(per_node, ranks)))
            self._at(rng.uniform(0.0, 3.0), "submit", specs)
            if rng.random() < 0.1:
                self._at(rng.uniform(0.0, 4.0), "cancel", rng.choice(specs).id)
            if self.holds and requeues.random() < 0.2:  # `swarm requeue [--hold]` of a rank: the whole gang
                held = requeues.random() < 0.3
                self._at(requeues.uniform(0.5, 5.0), "requeue", (requeues.choice(specs).id, held))
                if held:
                    self._at(requeues.uniform(5.0, 8.0), "release_held", specs[0].id)

    def _fits_always(self, shape: GangShape) -> bool:
        """Whether a gang fits the empty cluster whichever one node leaves it (``_on_leave``)."""
        rooms = [Room(n.id, n.capacity.cpus, n.capacity.mem_bytes, 0) for n in self.nodes.values()]
        return all(fit(shape, [r for r in rooms if r.node_id != gone]) is not None for gone in self.nodes)

    def _on_submit(self, specs: JobSpec | tuple[JobSpec, ...]) -> None:
        """`swarm run` through a random node's daemon; again elsewhere until committed (a gang:
        all its ranks in one submission)."""
        specs = specs if isinstance(specs, tuple) else (specs,)
        for spec in specs:
            self._submitted.setdefault(spec.id, spec)
        if all(spec.id in self._acked for spec in specs):
            return
        up = [n for n in sorted(self.nodes) if self._serving(n)]
        if up:
            node_id = self.rng.choice(up)
            self._node_host(self.nodes[node_id]).log.submit(specs, self.nodes[node_id].wall(self.now))
        self._at(self.now + CLIENT_RETRY_S, "submit", specs)

    def _on_cancel(self, job_id: str) -> None:
        up = [n for n in sorted(self.nodes) if self._serving(n)]
        if up:
            node_id = self.rng.choice(up)
            host = self._node_host(self.nodes[node_id])
            host.log.enqueue([CancelJobs((job_id,), "cancelled by user", self.nodes[node_id].wall(self.now))])

    def _on_hold(self, arg: tuple[str, bool]) -> None:
        """`swarm hold` / `swarm release` through a random node's daemon. A release is asked again
        whenever the job is held, as a user would: a hold that reached the log late (through a
        node cut off meanwhile), or a job submitted held again after `swarm recover` gave it up
        (seed 237), must not keep its job waiting for good."""
        job_id, held = arg
        if not held:
            self._at(self.now + CLIENT_RETRY_S, "hold", arg)
            job = self.table.get(job_id)
            if job is None or not job.held:
                return  # not committed yet, ended, or not held: look again later
        up = [n for n in sorted(self.nodes) if self._serving(n)]
        if up:
            node_id = self.rng.choice(up)
            host = self._node_host(self.nodes[node_id])
            host.log.enqueue([HoldJobs((job_id,), held, "user", self.nodes[node_id].wall(self.now))])

    def _on_release_held(self, job_id: str) -> None:
        """As ``JobSim``'s, but asked again after its job ended too, as ``_on_hold``'s release is:
        `swarm recover` can take back a committed end, and a requeue asked while that end stood
        then holds the job again (seed 20015 with ``--holds``: requeued held at 4.1 s as its
        failure was committed, released at 6.1 s when it looked ended, held for good once the
        recover's history, without that failure, took the requeue)."""
        super()._on_release_held(job_id)
        job = self.table.get(job_id)
        if job is not None and job.state.is_terminal:
            self._at(self.now + 1.0, "release_held", job_id)

    def _on_update(self, arg: tuple[str, JobChanges]) -> None:
        """`swarm update` through a random node's daemon (asked once: a lost update is the user's
        to ask again, and no check rests on it)."""
        job_id, changes = arg
        up = [n for n in sorted(self.nodes) if self._serving(n)]
        if up:
            node_id = random.Random(f"{self.seed}/update/{job_id}").choice(up)  # the seed's other draws stay
            host = self._node_host(self.nodes[node_id])
            host.log.enqueue([UpdateJobs((job_id,), changes, "user", self.nodes[node_id].wall(self.now))])

    def _on_asked(self, cmd: SignalJobs | RequeueJobs) -> None:
        """`swarm signal`'s or `swarm requeue`'s command through a random node's daemon (asked
        once: a lost one is the user's to ask again, as ``_on_update``'s)."""
        up = [n for n in sorted(self.nodes) if self._serving(n)]
        if up:
            node_id = random.Random(f"{self.seed}/asked/{cmd}").choice(up)  # the seed's other draws stay
            self._node_host(self.nodes[node_id]).log.enqueue([cmd])

    def _serving(self, node_id: str) -> bool:
        node, host = self.nodes[node_id], self.hosts.get(node_id)
        return node.alive and not node.paused and host is not None and host.leaving is None

    def _pending_submits(self) -> bool:
        return any(s not in self._acked for s in self._submitted) or any(
            kind == "submit" and any(s.id not in self._submitted for s in (arg if isinstance(arg, tuple) else (arg,)))
            for _, _, kind, arg in self._events
        )

    # -- faults ------------------------------------------------------------------------

    def _crash(self, node: _Node) -> None:
        super()._crash(node)
        self.peers[node.id].details.crash()
        self.hosts[node.id] = None
        if self.leader == node.id:
            self.leader = None

    def _on_restart(self, node_id: str) -> None:
        """A new boot from the disk; a third of them on a new address (DHCP)."""
        node = self.nodes[node_id]
        peer = self.peers[node_id]
        if node.alive or peer.gone or node_id in self._kept_down:
            return
        node.alive = True
        node.origin, node.rate = self._origin(), self._rate()
        node.deadline_sent = float("nan")
        node.ticks = 0
        if node_id in self._keep_address:
            self._keep_address.discard(node_id)
        elif self.rng.random() < self._readdress_share:
            self._owner.pop(peer.address, None)
            peer.address = f"{node_id}@{peer.incarnation + 1}"
            self._owner[peer.address] = node_id
            self.readdresses += 1
            self._log(f"{node_id} restarts on a new address {peer.address}")
        self._boot(node)
        self._log(f"{node_id} restarts (log to {node.boot_index}, applied {node.applied}; new lease clock)")
        self._at(self.now + self.rng.uniform(0.0, TICK_S) / node.rate, "tick", (node_id, node.life))

    def _spawn(self, node: _Node, key: tuple[str, int], cpus: float, leased: bool) -> None:
        super()._spawn(node, key, cpus, leased)
        self._dirty.add(node.id)

    def _on_resume(self, node_id: str) -> None:
        self._dirty.add(node_id)
        super()._on_resume(node_id)
        host = self.hosts.get(node_id)
        if host is not None and host.ready_due:
            host.ready_due = False
            host.log.raft._process_ready()

    # `swarm recover`: a majority of the voters dies for good (for a while), a survivor forces.

    def _on_recover_begin(self, _: Any) -> None:
        leader = self.leader
        host = self.hosts.get(leader) if leader is not None else None
        if host is None:
            self._at(self.now + 0.5, "recover_begin", None)
            return
        voters = sorted(host.log.raft.node.membership.voters)
        quorum = len(voters) // 2 + 1
        if len(voters) < 3:
            return
        victims = self.rng.sample(voters, len(voters) - quorum + 1)
        self._kept_down = set(victims)
        self._recover_by = self.now + RECOVER_WAIT_S
        self._log(f"FAULT recover scenario: {victims} die")
        for victim in victims:
            node = self.nodes[victim]
            if node.alive:
                self._crash(node)
        self._at(self.now + self.rng.uniform(1.0, 4.0), "recover", None)

    def _on_recover(self, _: Any) -> None:
        """``Daemon.recover`` on a live voter once `swarm status` says the quorum is lost.

        The operator runs it where the dead are really dead: on a node that can talk to every
        other running node, once `swarm status` there calls exactly the dead voters missing; and
        brings the dead back once every survivor has heard of the new configuration epoch, each
        while the new epoch's leader can reach it (``_on_operator_restart``).
        (Otherwise live voters the new configuration leaves out, or that have not heard of it,
        can elect a leader of the old one with the dead until the sides meet: unsafe by design,
        see ``RaftNode.force_config``, and not checked.)"""
        running = [n for n in sorted(self.nodes) if self.nodes[n].alive]
        for node_id in sorted(self.nodes):
            host = self.hosts.get(node_id)
            node = self.nodes[node_id]
            if host is None or not node.alive or node.paused or host.leaving is not None:
                continue
            if any(
                self.nodes[o].paused or not (self.linked(node_id, o) and self.linked(o, node_id))
                for o in running
                if o != node_id
            ):
                continue
            raft = host.log.raft
            status = raft.status()
            if node_id not in status.voters or status.excluded:
                continue
            alive = {m.node_id for m in host.gossip.members() if m.state is ALIVE} | {node_id}
            suspect = {m.node_id for m in host.gossip.members() if m.state is SUSPECT}
            quorum = quorum_view(status, alive, suspect=suspect)
            if len(quorum["voters"]) - len(quorum["missing"]) >= quorum["needed"]:
                break  # the operator runs it once `swarm status` says voters are missing, not before
            if set(quorum["missing"]) != {v for v in quorum["voters"] if not self.nodes[v].alive}:
                break  # and only once those are the dead ones
            voters = recovered_voters(quorum["voters"], quorum["missing"], node_id)
            raft.force_config(voters)
            self._on_new_epoch(node_id, raft.status().epoch)
            self.recovers += 1
            self._forced_epoch = status.epoch + 1
            self._log(f"{node_id} RECOVER voters {voters} (epoch {self._forced_epoch})")
            break
        else:
            self._recover_later()
            return
        if self._forced_epoch is None:
            self._recover_later()
            return
        self._at(self.now + 0.5, "recovered", None)

    def _recover_later(self) -> None:
        """Look again soon; past ``RECOVER_WAIT_S`` the operator gives up and brings the dead
        back instead (the survivors may never see each other: no mDNS here, and gossip forgets a
        peer it only knew at an address that died)."""
        if self.now < self._recover_by:
            self._at(self.now + 0.5, "recover", None)
            return
        down, self._kept_down = sorted(self._kept_down), set()
        self._log(f"the operator gives up on `recover` and restarts {down} (on their old addresses)")
        self._keep_address.update(down)
        for node_id in down:
            self._at(self.now + self.rng.uniform(0.5, 3.0), "restart", node_id)

    def _on_recovered(self, _: Any) -> None:
        """The dead come back (with their old state) once every running node heard of the new epoch."""
        epoch = self._forced_epoch
        behind = [
            n
            for n, host in sorted(self.hosts.items())
            if host is not None and self.nodes[n].alive and epoch_of(host.log.raft.node.term) != epoch
        ]
        if behind:
            leaders = self._epoch_leaders()
            if leaders and self.now >= self._recover_by:
                # Past ``RECOVER_WAIT_S`` a survivor still has not heard: it and the new leader
                # restarted on new addresses and neither knows the other's (no mDNS here: seeds
                # 5622 and 5805 waited for good once pinned jobs shifted their timing). The
                # operator tells each the other's address, as `swarm join ADDRESS` would.
                for node_id in behind:
                    self._learn(node_id, leaders[0], self.peers[leaders[0]].address)
                    self._learn(leaders[0], node_id, self.peers[node_id].address)
                self._log(f"the operator points {behind} and {leaders[0]} at each other's addresses")
                self._recover_by = self.now + RECOVER_WAIT_S
            self._at(self.now + 0.5, "recovered", None)
            return
        down, self._kept_down = sorted(self._kept_down), set()
        for node_id in down:
            self._at(self.now + self.rng.uniform(0.5, 3.0), "operator_restart", node_id)

    def _on_operator_restart(self, node_id: str) -> None:
        """The operator brings a dead voter back while a leader of the new epoch runs and can
        reach it both ways (the new epoch reaches it before it could campaign in the old one);
        else later. Brought back into a partition that holds the new leader apart, the dead and
        the old configuration's other voters can elect a leader of the old epoch: unsafe by
        design (README, `swarm recover`), as seed 1896 did once pinned jobs shifted its timing."""
        if any(self.linked(node_id, n) and self.linked(n, node_id) for n in self._epoch_leaders()):
            self._on_restart(node_id)
        else:
            self._at(self.now + 0.5, "operator_restart", node_id)

    def _epoch_leaders(self) -> list[str]:
        """The running, unpaused nodes that lead in the epoch `recover` forced."""
        return [
            n
            for n, host in sorted(self.hosts.items())
            if host is not None
            and self.nodes[n].alive
            and not self.nodes[n].paused
            and host.log.raft.is_leader
            and epoch_of(host.log.raft.node.term) == self._forced_epoch
        ]

    # `swarm leave` of a voter.
    def _on_leave(self, _: Any) -> None:
        candidates = [
            n
            for n in sorted(self.nodes)
            if n != "n0"  # the node every job fits on stays (``JobSim``): the others can be too small
            and self._serving(n)
            and n not in self._kept_down
            and len(self._node_host(self.nodes[n]).log.raft.node.membership.voters) >= 3
        ]
        if not candidates or self._forced_epoch is not None:
            return
        node = self.nodes[self.rng.choice(candidates)]
        host = self._node_host(node)
        host.leaving = self.now
        self.leaves += 1
        self._log(f"{node.id} LEAVE" + (" (the leader)" if host.log.raft.is_leader else ""))
        leader = host.log.raft.leader_id
        if leader is not None and leader != node.id:  # ``ClusterLink.announce_stopping``
            self.send_to(node.id, leader, ("stopping", node.id))
        for key in list(node.running):  # ``executor.shutdown``: ends report STOPPED
            node.running[key].reason = AttemptEnd.STOPPED
            self._end_process(node, key, 128 + 15)

    def _leave_step(self, node: _Node, host: _Host) -> None:
        """``Daemon.run``'s leave: drain the log, leave the configuration (``leave_configuration``),
        say goodbye by gossip, stop."""
        assert host.leaving is not None
        since = self.now - host.leaving
        raft = host.log.raft
        core = raft.node
        if not host.left_config:
            drained = not host.log.pending() and raft.applied_index >= host.log._last_proposed
            if not drained and since < LEAVE_TIMEOUT_S:
                return
            done = node.id not in core.membership.members and core.membership_index <= core.commit
            if not done and since < 2 * LEAVE_TIMEOUT_S and core.membership.voters != {node.id}:
                if raft.is_leader:
                    if node.id in core.membership.members:
                        try:
                            raft.remove(node.id)
                        except (MembershipChangeError, NotLeaderError):
                            pass
                elif core.leader_id is not None:
                    self.send_to(node.id, core.leader_id, ("leave", node.id))
                return
            host.left_config = True
            self._log(f"{node.id} left the configuration ({'removed' if done else 'timed out'})")
            self._gossip_carry(node, host.gossip.leave())
            self._at(self.now + LEAVE_BROADCAST_S, "gone", node.id)

    def _on_leave_request(self, node: _Node, host: _Host, leaver: str) -> None:
        raft = host.log.raft
        if raft.is_leader and leaver in raft.node.membership.members:
            try:
                raft.remove(leaver)
                self._log(f"{node.id} removes {leaver} (it leaves)")
            except (MembershipChangeError, NotLeaderError):
                pass

    def _on_gone(self, node_id: str) -> None:
        node = self.nodes[node_id]
        self.peers[node_id].gone = True
        if node.alive:
            self._crash(node)
        self._log(f"{node_id} has left")

    # -- checks ------------------------------------------------------------------------

    def _on_guardian(self, arg: tuple[str, int]) -> None:
        """The guardian's deadline passed: it must not kill what its node may keep running. An
        attempt already SIGTERMed is on its way out (its SIGKILL is due within the grace): killing
        it sooner loses nothing, also where the node got a lease back meanwhile (seed 8250 with
        lazy messages held 0.65 s: a lease lost, its stop-job SIGTERMed, then `recover` made the
        node leader 20 ms before the old lease's deadline)."""
        node = self.nodes[arg[0]]
        host = self.hosts.get(node.id)
        due = node.guardian is not None and node.clock(self.now) >= node.guardian - 1e-9
        if host is not None and node.alive and node.life == arg[1] and due and host.lease.holds():
            leased = sorted(k for k, p in node.running.items() if p.leased and p.kill_at is None)
            if leased:
                self._fail(f"the guardian of {node.id} kills {leased} while its node holds the lease")
        super()._on_guardian(arg)

    def _check(self) -> None:
        """``JobSim``'s checks, after every event: capacity, and fencing on every node whose
        applied log is the committed one (``JobSim._check``, cheaper: only on the nodes whose
        processes, applied entries or pause changed in the event, as nothing else changes them)."""
        if not self._dirty:
            return
        last = self._global[-1] if self._global else None
        dirty, self._dirty = self._dirty, set()
        for node_id in sorted(dirty):
            node = self.nodes[node_id]
            running = node.running
            if not running:
                continue
            if len(running) > 1:
                used = sum(p.cpus for p in running.values())
                if used > node.capacity.cpus + 1e-9:
                    self._fail(f"node {node_id} runs {used:g} cpus on {node.capacity.cpus:g}: {sorted(running)}")
            host = self.hosts.get(node_id)
            if host is None or not node.alive or node.paused or host.app_index != self.index:
                continue
            if last is not None and host.log.raft.node.log.term_at(last.index) != last.term:
                continue  # a history `recover` replaced, not caught up yet
            for (job_id, attempt), proc in running.items():
                if proc.reason is None and not self._current(self.table, job_id, attempt, node_id):
                    self._fail(
                        f"stale attempt {job_id}.{attempt} runs on {node_id}, unstopped, though it heard it moved on"
                    )

    def _never_placeable(self, job: Job) -> bool:
        """A pending gang that does not fit, whole, on the nodes the leader may place on at the end
        even were they empty: `swarm recover` gave up the others for good (seeds 2617, 5622: a
        gang of 4 ranks, one a node, on the 2 nodes left; 3204: 2 ranks, one a node, on the one)."""
        if not job.spec.ranks or job.state is not JobState.PENDING or self.leader is None:
            return False
        rooms = [Room(c.node_id, c.cpus, c.mem_bytes, c.gpus) for c in self._capacities(self.nodes[self.leader])]
        return fit(GangShape.of(job.spec), rooms) is None

    def _check_end(self) -> None:
        super()._check_end()
        final = {j.id for j in self.table.jobs()}
        lost = sorted(self._acked - final - self._pruned)  # a pruned one was checked as it went
        if lost:
            self._fail(f"acknowledged jobs lost: {lost[:10]}")
        self._check_details()

    def _check_details(self) -> None:
        """Every live node holds the details of each finished job of its table (no node here ever
        installs a snapshot that carries jobs), as they ended: the same bytes as the committed
        history's job once the node applied all of it (``state.compact``, ``storage.details``)."""
        for node_id, host in sorted(self.hosts.items()):
            if host is None:
                continue
            node, details = self.nodes[node_id], self.peers[node_id].details
            caught_up = host.log.raft.applied_index == self.index
            if caught_up and node.table.totals != self.table.totals:  # /metrics' counters: one on every node
                self._fail(f"{node_id} counts {node.table.totals}; the committed history {self.table.totals}")
                return
            if caught_up and node.table.timings != self.table.timings:  # /metrics' histograms, likewise
                self._fail(f"{node_id} times {node.table.timings}; the committed history {self.table.timings}")
                return
            for job in node.table.finished_jobs():
                kept = details.get(job.id)
                if kept is None:
                    self._fail(f"{node_id} holds no details of finished job {job.id}")
                    return
                if (kept.state, kept.exit_code, kept.attempt) != (job.state, job.exit_code, job.attempt):
                    self._fail(f"{node_id}: the details of {job.id} disagree with its table")
                    return
                whole = self.table.get(job.id)
                if caught_up and whole is not None and job_record(kept) != job_record(whole):
                    self._fail(f"{node_id}: the details of {job.id} are not the job as it ended")
                    return


@dataclass(slots=True)
class ClusterResult:
    seed: int
    nodes: int
    violation: str | None
    sim_s: float
    starts: int
    reruns: int
    elections: int
    lease_kills: int
    recovers: int
    leaves: int
    readdresses: int
    given_up: int
    disk_fills: int = 0
    """Nodes whose state directory filled for a while."""
    pruned: int = 0
    """Jobs the history bound removed."""
    late_resubmits: int = 0
    """Submissions that committed after their job was pruned (duplicates, skipped)."""
    trace: list[str] = field(default_factory=list)
    preempted: int = 0
    """Attempts told to stop for a job of a higher priority (``scheduler.preemption``)."""
    drains: int = 0
    """Nodes drained (`swarm drain`) for a while."""

    @property
    def ok(self) -> bool:
        return self.violation is None


def run_cluster_seed(
    seed: int,
    nodes: int = 5,
    *,
    trace: bool = False,
    sim: type[ClusterSim] = ClusterSim,
    pinned: int = PINNED,
    holds: bool = False,
) -> ClusterResult:
    """One seed of the whole-cluster simulation with every fault kind (``holds``: users hold and
    release jobs too); never raises on a violation."""
    with silenced():
        run = sim(seed, nodes=nodes, trace=trace, pinned=pinned, holds=holds)
        violation = None
        try:
            run.run()
        except InvariantBroken as exc:
            violation = str(exc)
        except Exception as exc:  # noqa: BLE001 - a core's exception is a failed seed, with its trace
            violation = f"seed {seed}, t={run.now:.6f}s: {type(exc).__name__}: {exc}"
            run._log(f"VIOLATION {violation}")
    return ClusterResult(
        seed,
        nodes,
        violation,
        run.now,
        run.starts,
        run.reruns,
        run.checker.elections,
        run.lease_kills,
        run.recovers,
        run.leaves,
        run.readdresses,
        len(run._given_up),
        run.disk_fills,
        len(run._pruned),
        run.late_resubmits,
        run.trace or [],
        run.preempted,
        run.drains,
    )
