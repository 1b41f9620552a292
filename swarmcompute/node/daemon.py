"""The daemon: one asyncio loop that holds the cores and carries out their effects.

What it wires together:

* ``JobTable`` (the state core), changed only through ``ReplicatedJobLog``
  (commands committed through Raft; one node is a one-voter cluster);
* ``ClusterLink`` (the encrypted peer transport, the address book, joining)
  and ``GossipHost`` (liveness and advertised resources of every node);
* ``PlacementRounds``, which runs ``place`` (the scheduler core) on the leader
  inside its next batch whenever the table or the membership changes, or a
  retry backoff ends;
* ``LocalQueue``, which decides when this node starts the attempts assigned to
  it (queue-ahead: the next one starts as soon as one ends), and ``JobRunners``,
  which run them and report their ends back as commands;
* ``ControlServer``, the unix socket the CLI and the Python API use.

Start-up order matters: take the state-dir lock, decide the cluster (restart,
join or create), rebuild the table from the Raft log, kill job processes a
previous life left behind, re-queue the attempts that were in flight here
(lost, not failed), and only then accept clients.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import structlog

from swarmcompute.arrays import group_summary, same_array
from swarmcompute.errors import (
    ClusterError,
    ConfigError,
    CorruptRecordError,
    DaemonAlreadyRunningError,
    DuplicateNodeError,
    InvalidJobSpecError,
    InvariantViolation,
    JobAlreadyExistsError,
    JobNotFoundError,
    MembershipChangeError,
    NoQuorumError,
    NotLeaderError,
    PartlySubmittedError,
    RaftStateLostError,
    SwarmError,
)
from swarmcompute.executor.cgroups import JobCgroups
from swarmcompute.executor.pull_progress import PullProgress
from swarmcompute.executor.spec import AttemptResult
from swarmcompute.executor.usage import UsageNow, UsageTally
from swarmcompute.files.host import FilesHost
from swarmcompute.limits import MAX_DEPENDENCIES
from swarmcompute.membership.config import GossipConfig
from swarmcompute.membership.effects import MemberDead, MemberEvent, MemberLeft, MemberUp, MemberUpdated, TwinFound
from swarmcompute.membership.members import ALIVE, DEAD, LEFT, Member
from swarmcompute.membership.meta import NodeMeta
from swarmcompute.node.clock_check import clock_off_to_tell
from swarmcompute.node.cluster import ClusterLink
from swarmcompute.node.cluster_messages import LogData
from swarmcompute.node.committer import ReplicatedJobLog
from swarmcompute.node.details_backfill import DetailsBackfill
from swarmcompute.node.end_watch import EndWatch
from swarmcompute.node.gang_env import GangEnv, gang_view
from swarmcompute.node.gossip_host import GossipHost
from swarmcompute.node.identity import Identity, load_or_create, mark_raft_kept
from swarmcompute.node.inventory import Inventory
from swarmcompute.node.joining import ClusterPlan, plan_cluster
from swarmcompute.node.lease_host import LeaseHost, lease_clock
from swarmcompute.node.log_copies import LogCopies
from swarmcompute.node.placement_rounds import PlacementRounds
from swarmcompute.node.raft_host import RaftHost
from swarmcompute.node.resources import ResourceMonitor
from swarmcompute.node.runners import JobRunners
from swarmcompute.node.status import node_view, quorum_view, stale_line
from swarmcompute.node.ticker import SLICE_S, Clock, sliced, tick_slack
from swarmcompute.paths import DEFAULT_PORT, StatePaths
from swarmcompute.raft.config import RaftConfig
from swarmcompute.rules.lease import ASK_INTERVAL_S, KILL_GRACE_S
from swarmcompute.rules.node_state import (
    SILENT_NODE_S,
    ClusterView,
    Instruction,
    NodeState,
    Notify,
    Propose,
    Reschedule,
    Retime,
    Say,
    SendSignal,
    Stop,
    WakeStarts,
    cluster_view,
    recovered_voters,
)
from swarmcompute.rules.start_notices import StartNotices
from swarmcompute.scheduler.placement import NodeCapacity, held_elsewhere, pin_matches
from swarmcompute.state.commands import (
    CancelJobs,
    Command,
    FinishAttempt,
    HoldJobs,
    RequeueJobs,
    SignalJobs,
    StartAttempt,
    SubmitJobs,
    UpdateJobs,
)
from swarmcompute.state.compact import is_stub, same_job
from swarmcompute.state.history import DEFAULT_KEEP_JOBS, DEFAULT_KEEP_S, MAX_PRUNE_BATCH, PruneJobs, prunable
from swarmcompute.state.job import ACTIVE_STATES, Job, JobChanges, JobSpec, JobState, Reason
from swarmcompute.state.policy import (
    CommandPolicy,
    SetPolicy,
    check_policy,
    checks_problem,
    policy_problem,
    policy_toml,
)
from swarmcompute.state.table import JobTable, partly_submitted, submit_chunks, validate_batch, validate_spec
from swarmcompute.storage.details import FILE_NAME as DETAILS_FILE
from swarmcompute.storage.details import DetailsStore, details_missing
from swarmcompute.storage.raft_log import LOG_FILE as RAFT_LOG_FILE
from swarmcompute.units import counted, likely_meant
from swarmcompute.users import RUN_AS_SUBMITTERS, daemon_user, serves_every_user

log = structlog.get_logger(__name__)

RESOURCE_SAMPLE_INTERVAL_S = 2.0
TICK_S = 0.1
"""One clock for Raft and gossip: every wakeup costs CPU on a small board, so they share it."""
RAFT_ELECTION_TIMEOUT_TICKS = 6
"""Elections after 0.6-1.2 s of silence: a new leader within about a second of a crash, yet
heartbeats (every 200 ms) have three chances to arrive on a busy board or a Wi-Fi hiccup;
pre-vote and check-quorum keep a slow node from disrupting a healthy leader."""
RAFT_HEARTBEAT_TICKS = 2
RAFT_LEARNER_HEARTBEAT_EVERY = 3
"""An idle learner hears a heartbeat every 600 ms: it never votes, its lease (3.2 s) renews with
them (the ask on the answer, the grant on the next one), and its ticks ride on them
(``tick_slack``). At 20 nodes the 15 learners' heartbeats were four fifths of an idle leader's
sends; measured there (alternating rounds, with the outbox's renewal changes): a learner
0.44-0.51 % of a core instead of 0.50-0.64 %, the leader 1.6-1.9 % instead of 1.8-2.2 %."""
MAINTENANCE_INTERVAL_S = 1.0
LEAVE_TRANSFER_TIMEOUT_S = 3.0
LEAVE_BROADCAST_S = 0.3
STOPPING_HOLD_S = 30.0
"""A member that said it stops its attempts (`swarm leave`) gets no work for this long at most: it
drains, leaves the configuration and says goodbye within about ``kill_grace_s`` and twice
``LEAVE_TRANSFER_TIMEOUT_S``."""
FAILURE_CHECK_INTERVAL_S = 0.5
JOIN_PROBE_INTERVAL_S = 1.0
"""A joining node asks its seeds whether they accept its token this often until it is in."""
QUORUM_WAIT_S = 3.0
"""A submission waits this long for quorum (an election is 0.6-1.2 s), then is refused."""
TRIM_AFTER_REMOVED = 1000
TRIM_DELAY_S = 2.0
"""Once this many jobs left the table, this long after the last removal, memory is given back
(``Daemon._give_memory_back``); a steady trickle of prunes costs a collection per thousand jobs."""
CHUNK_JOBS = 1000
"""A submission or a cancel of more jobs is committed in entries of this many, one after another:
a 10,000-job submission cost every node 0.27 s to decode and 0.2 s to apply, in one turn of its
loop, and cancelling a 50,000-element array in one entry stalled every node for seconds (apply,
then compacting and writing the details of the jobs it ended): on 3 nodes, two elections."""
START_NOTICE_DELAY_S = 0.02
""""Started" notices wait one to two of these to share a log entry; an attempt that ends sooner
needs none (its result says when it started), which spares short jobs a third of their commands
(``rules.start_notices``)."""


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    paths: StatePaths
    name: str | None = None
    bind: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    token: str | None = None
    peers: tuple[str, ...] = ()
    new_cluster: bool = False
    mdns: bool = True
    voter_grace_s: float = 30.0
    """A voter dead this long is replaced by a live learner, while quorum holds."""
    max_voters: int = 5
    keep_jobs: int = DEFAULT_KEEP_JOBS
    """Finished jobs the cluster keeps (``state.history``); the leader's setting applies."""
    keep_s: float = DEFAULT_KEEP_S
    """Finished jobs are removed this long after they ended."""
    forget_after_s: float = 3600.0
    """A node dead this long (and not a voter) is no longer listed (``node.housekeeping``)."""
    gossip: GossipConfig | None = None
    kill_grace_s: float = 5.0
    max_log_bytes: int = 64 * 1024 * 1024
    http_port: int | None = None
    """Serve the HTTP API, dashboard and /metrics on this port (bound like ``bind``); None: no HTTP."""
    http_optional: bool = False
    """A busy ``http_port`` is a warning, not an error (the default port, on a machine running two nodes)."""
    metrics_token: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None


def view_of(node_id: str, raft: RaftHost, members: Iterable[Member], *, with_silent: bool = False) -> ClusterView:
    """``rules.node_state.cluster_view`` over a node's Raft host and gossip members (the daemon and the
    simulator both ask it); ``with_silent``: also which peers Raft has not heard from (costs a
    Raft status)."""
    node = raft.node
    heard = None
    if raft.is_leader and with_silent:
        status = raft.status()
        heard = ({p.node_id: p.last_heard_tick for p in status.peers}, status.ticks)
    return cluster_view(
        node_id,
        is_leader=raft.is_leader,
        voters=node.membership.voters,
        raft_members=node.membership.members,
        term=node.term,
        gossip=[(m.node_id, m.state is ALIVE, m.meta.name if m.meta is not None else None) for m in members],
        heard=heard,
        silent_ticks=round(SILENT_NODE_S / TICK_S),
    )


class Daemon:
    """One node. ``run()`` serves until ``stop()`` (or `swarm leave`)."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.paths = config.paths
        self.table = JobTable()
        self.details: DetailsStore | None = None
        """Finished jobs' details on this node's disk (``storage.details``), once run() opened it."""
        self.ends = EndWatch(self.table)
        """Waits for jobs to end (`swarm wait`), woken by the ids each entry changes."""
        self.identity: Identity | None = None
        self.plan: ClusterPlan | None = None
        self.started_monotonic = time.monotonic()
        self._lock_fd: int | None = None
        self._stop = asyncio.Event()
        self._changed = asyncio.Event()
        self._job_events: dict[str, set[asyncio.Event]] = {}
        self._state: NodeState | None = None
        self._start_wakeup = asyncio.Event()
        self._start_notices = StartNotices(START_NOTICE_DELAY_S)
        self._gang_env: GangEnv | None = None  # gang ranks' variables and hostfiles (``node.gang_env``)
        self.executed = UsageTally()
        """What the attempts that ended here used since this daemon started (``/metrics``)."""
        self._rounds: PlacementRounds | None = None
        self._committer: ReplicatedJobLog | None = None
        self._link: ClusterLink | None = None
        self._gossip: GossipHost | None = None
        self._lease: LeaseHost | None = None
        self._copies: LogCopies | None = None
        self._backfill: DetailsBackfill | None = None
        self._files: FilesHost | None = None
        self._labels: Any = None
        """``LabelsHost`` (``node.labels``), once run() loaded the identity."""
        self._housekeeping: Any = None
        """``Housekeeping`` (``node.housekeeping``: prune, forget, fading), once run() made the parts."""
        self._notices: Any = None
        """``Notices`` (``node.notices``: the leader's ``--notify`` POSTs), once run() made the parts."""
        self._drained_seen: frozenset[str] = frozenset()
        self._disk_full_told = False
        """Whether gossip and placement were last told that the state directory takes no writes."""
        self._clock_off = 0
        """How far this node's clock is off the leader's, as gossiped (``node.clock_check``)."""
        self.executor = JobRunners(
            self.paths.job_output_dir,
            self.paths.process_registry,
            on_exit=self._on_attempt_exit,
            on_output=self._on_output,
            kill_grace_s=config.kill_grace_s,
            max_log_bytes=config.max_log_bytes,
            policy=lambda: self.table.policy,
            state_dir=self.paths.root,
            on_engine_lost=self._engine_lost,
            on_image_unavailable=self._image_unavailable,
        )
        self.resources: ResourceMonitor | None = None
        self.inventory: Inventory | None = None
        from swarmcompute.storage.disk import DiskWatch

        self.disk = DiskWatch(self.paths.root)
        """Whether the state dir takes writes (`swarm status`'s ``disk_problem``; new jobs refused)."""
        self._keys: Any = None
        """``KeyRotation``, once run() opened the job log (`swarm token --rotate`)."""
        self._policy_written: CommandPolicy | None = None
        self._discovery: Any = None
        self._address_watch: Any = None
        self._fatal: SwarmError | None = None
        """Why the daemon stopped itself (raised by ``run`` once it closed everything)."""
        self.copy_seen: dict[str, Any] | None = None
        """The last copy of this node found running elsewhere (``_twin_found``): `swarm status` says it."""
        self._stopping: dict[str, float] = {}
        """Members that told this leader they stop their attempts (`swarm leave`), and when
        (``time.monotonic``): given no work until gossip next says they are up, dead or gone, or
        ``STOPPING_HOLD_S`` passed."""
        self._refusals: Any = None
        self.on_jobs_removed: list[Callable[[list[str]], None]] = []
        """Called with the ids of jobs that left the table (pruned by the history bound, or dropped
        with a replaced history), after this node deleted their ``output/`` files: whoever keeps
        more of a job's files hooks here."""
        self._pruning: asyncio.Task[None] | None = None
        self._removed_since_trim = 0
        self._trim_handle: asyncio.TimerHandle | None = None
        self._removing: set[asyncio.Task[None]] = set()
        """Watches this machine's addresses (wildcard bind only; see ``_check_own_address``)."""
        self._readvertise: asyncio.Task[None] | None = None
        self._leader_changes = 0
        self._last_leader: str | None = None
        self.http_address = ""
        """``http://HOST:PORT`` of this node's HTTP API and dashboard; "" when it serves none."""

    # -- the parts, once run() made them ------------------------------------------

    @property
    def node_id(self) -> str:
        return self._identity().node_id

    @property
    def committer(self) -> ReplicatedJobLog:
        if self._committer is None:
            raise InvariantViolation("the job log is used before run() opened it")
        return self._committer

    @property
    def link(self) -> ClusterLink:
        if self._link is None:
            raise InvariantViolation("the peer link is used before run() started it")
        return self._link

    @property
    def gossip(self) -> GossipHost:
        if self._gossip is None:
            raise InvariantViolation("gossip is used before run() started it")
        return self._gossip

    @property
    def files(self) -> FilesHost:
        """Files shipped with jobs and what they left (``files.host``)."""
        if self._files is None:
            raise InvariantViolation("files are used before run() started the peer link")
        return self._files

    @property
    def copies(self) -> LogCopies:
        if self._copies is None:
            raise InvariantViolation("log copies are used before run() started the peer link")
        return self._copies

    @property
    def lease(self) -> LeaseHost:
        if self._lease is None:
            raise InvariantViolation("the lease is used before run() opened the job log")
        return self._lease

    @property
    def rounds(self) -> PlacementRounds:
        if self._rounds is None:
            raise InvariantViolation("placement rounds are used before run() opened the job log")
        return self._rounds

    @property
    def state(self) -> NodeState:
        """The node's rules (``rules.node_state``): this daemon feeds it events and carries out
        the instructions it returns."""
        if self._state is None:
            raise InvariantViolation("the node's rules are used before run() loaded the identity")
        return self._state

    def _identity(self) -> Identity:
        if self.identity is None:
            raise InvariantViolation("the daemon's identity is used before run() loaded it")
        return self.identity

    def _resources(self) -> ResourceMonitor:
        if self.resources is None:
            raise InvariantViolation("resources are read before run() started the monitor")
        return self.resources

    # -- lifecycle -------------------------------------------------------------

    async def run(self) -> None:
        """Start, serve until stopped, then stop cleanly."""
        from swarmcompute.api.server import ControlServer

        self._take_lock()
        discovery = None
        try:
            identity = self.identity = load_or_create(self.paths.identity, self.config.name)
            structlog.contextvars.bind_contextvars(node_id=identity.node_id)
            self._state = NodeState(identity.node_id, self.table)
            self.executor.bind_node(identity.node_id, identity.name)
            plan = self.plan = await plan_cluster(
                self.paths,
                token=self.config.token,
                peers=self.config.peers,
                new_cluster=self.config.new_cluster,
                mdns=self.config.mdns,
                bind=self.config.bind,
            )
            self.resources = ResourceMonitor(self.paths.root)
            from swarmcompute.versions import local_versions

            versions = local_versions()  # what this node speaks: `SWARM_TEST_VERSION` may claim another
            link = self._link = ClusterLink(
                identity.node_id,
                identity.name,
                plan.key,
                bind=self.config.bind,
                port=self.config.port,
                advertise_host=_advertise_host(self.config.bind),
                book_path=self.paths.peers_file,
                versions=versions,
            )
            link.versions.on_refused = self._version_refused
            await link.start()
            self.details = DetailsStore(self.paths.root / DETAILS_FILE)
            self.details.report_to(self.disk)
            self._committer = ReplicatedJobLog(
                identity.node_id,
                self.paths.raft_dir,
                self.table,
                self._on_applied,
                send_to=link.post_to,
                details=self.details,
                config=RaftConfig(
                    election_timeout_ticks=RAFT_ELECTION_TIMEOUT_TICKS,
                    heartbeat_interval_ticks=RAFT_HEARTBEAT_TICKS,
                    learner_heartbeat_every=RAFT_LEARNER_HEARTBEAT_EVERY,
                    max_voters=self.config.max_voters,
                ),
                tick_interval_s=TICK_S,
            )
            self.committer.on_stall = self._on_raft_stall
            self.committer.on_compacted = _malloc_trim  # the entries and the encoding just freed
            self.committer.on_new_epoch = self._on_new_epoch
            self.disk.on_recovery(self.committer.raft.resume)
            self._rounds = PlacementRounds(self.table, self.committer, self.capacities, clock=self.leader_time)
            self._lease = LeaseHost(
                identity.node_id,
                self.committer.raft,
                send_to=link.post_to,
                send_lazily=link.post_lazily,
                set_deadline=self.executor.set_lease_deadline,
                on_change=self._on_lease_change,
            )
            link.on_lease = self.lease.on_message
            link.on_stopping = self._on_stopping
            applied = self._open_raft(identity, plan.bootstrap)
            from swarmcompute.node.key_rotation import KeyRotation

            self._keys = KeyRotation(
                self.paths,
                self.table,
                link,
                discovery=lambda: self._discovery,
                on_save_failed=lambda exc: self.disk.failed(exc, self.paths.cluster_key),
            )
            from swarmcompute.node.labels import LabelsHost

            self._labels = LabelsHost(self)
            from swarmcompute.node.housekeeping import Housekeeping

            self._housekeeping = Housekeeping(self)
            from swarmcompute.node.notices import Notices

            self._notices = Notices(self)
            server = ControlServer(self, self.paths.control_socket)
            # bound before the first meta is sampled: a restarted node's first gossip says its HTTP
            # port, where /api/v1/sd gave it the asked node's port until the next advertisement
            web = self._web_server(server)
            self.inventory = Inventory(
                identity.name,
                self.resources,
                list_images=_docker_images,
                labels=self._labels.labels,
                on_change=self._inventory_changed,
                versions=versions,
                disk_problem=lambda: self.disk.problem,
                clock_off=lambda: self._clock_off,
                http_port=lambda: _port_of(self.http_address),
            )
            self._gossip = GossipHost(
                identity.node_id,
                link.address,
                send=link.post_to_address,
                send_lazily=link.post_lazily_to_address,
                on_event=self._on_member_event,
                sample_meta=self.inventory.meta,
                config=self.config.gossip,
            )
            link.attach(self.committer, self.gossip)
            copies = self._copies = LogCopies(self)
            link.on_log_fetch = copies.serve
            if self.details is not None:
                backfill = self._backfill = DetailsBackfill(
                    self.table, self.details, link.fetch_details, self._peers_to_ask, link.send_to
                )
                link.on_details_fetch = backfill.serve
                self.committer.on_restored = backfill.restored
                self.details.on_written = backfill.written_again
            self.on_jobs_removed.append(copies.jobs_removed)
            files = self._files = self.executor.files = FilesHost(self)
            link.on_files = files.on_peer
            self._watch_join_refusals()
            self._watch_key_refusals()
            link.on_join_refused = self._join_refused
            link.add_seeds(list(plan.seeds) + list(link.book.items().values()))
            if self.config.mdns:
                discovery = self._discovery = await self._start_discovery(plan)
            self._watch_own_address()
            self.executor.processes.cgroups = JobCgroups.set_up(self.paths.root)
            reaped = self.executor.reap_stale()
            self._removing.add(asyncio.get_running_loop().create_task(self._sweep_outputs()))
            restarted = self.state.restarted(time.time())
            self._carry(restarted)
            lost = sum(len(i.commands) for i in restarted if isinstance(i, Propose))
            await server.start()
            if web is not None:
                web.start()
            try:
                self.paths.pid_file.write_text(f"{os.getpid()}\n")
            except OSError as exc:  # a full disk: `swarm leave` still finds the daemon by its socket
                self.disk.failed(exc)
            log.info(
                "node_ready",
                name=identity.name,
                cluster_id=plan.key.cluster_id,
                address=link.address,
                state_dir=str(self.paths.root),
                jobs=len(self.table),
                raft_applied_index=applied,
                stale_groups_killed=reaped,
                requeued=lost,
            )
            if plan.created_now:
                # The token never goes to a log (a log is a file others may read): `swarm token` prints it.
                log.info("cluster_created", hint="`swarm token` prints the join token for other machines")
            async with asyncio.TaskGroup() as tasks:
                committer = tasks.create_task(self.committer.run(tick=False))
                workers = [
                    tasks.create_task(self._clock_loop()),
                    tasks.create_task(self.rounds.run()),
                    tasks.create_task(self._start_loop()),
                    tasks.create_task(self.inventory.run()),
                    tasks.create_task(self._reap_stale_containers()),
                ]
                if self._backfill is not None:
                    workers.append(tasks.create_task(self._backfill.run()))
                self.rounds.request()
                await self._stop.wait()
                log.info("node_stopping", running=len(self.executor.running()))
                if web is not None:
                    await web.close()
                await server.close()
                leave = server.leave_requested  # `swarm leave`, not a signal: out of the configuration too
                if leave:  # the ends of its attempts are committed while it is still a member
                    self.link.announce_stopping()  # so the leader does not place them here again
                    await self.executor.shutdown()  # ends report STOPPED: re-queued as lost
                    await self.committer.drain(LEAVE_TRANSFER_TIMEOUT_S)
                if not isinstance(self._fatal, DuplicateNodeError):  # a copy's goodbye would be the other's
                    await self._hand_over_leadership(leave=leave)
                    self.gossip.leave()
                    await asyncio.sleep(LEAVE_BROADCAST_S)  # let the goodbye leave before the sockets close
                if not leave:
                    await self.executor.shutdown()  # ends report STOPPED: re-queued as lost
                self.committer.close()
                await committer
                for task in workers:
                    task.cancel()
                if self._notices is not None:
                    await self._notices.stop()
        finally:
            if self._address_watch:
                self._address_watch.close()
            if self._refusals is not None:
                self._refusals.cancel()
            if discovery is not None:
                await discovery.close()
            if self._copies is not None:
                self._copies.close()
            if self._files is not None:
                self._files.close()
            if self._gang_env is not None:
                self._gang_env.close()  # the hostfiles of ranks that ran here (their ends may not come)
            if self._link is not None:
                await self._link.close()
            if self._committer is not None:
                self._committer.shutdown()
            if self.details is not None:
                self.details.close()
            self._release_lock()
            log.info("node_stopped")
        if self._fatal is not None:
            raise self._fatal

    def stop(self) -> None:
        self._stop.set()

    def _open_raft(self, identity: Identity, bootstrap: bool) -> int:
        """Open the Raft log (``ReplicatedJobLog.open``), unless this id's log is missing or
        damaged: a node must not vote or acknowledge as the voter it was with what it lost (Raft's
        safety rests on each voter's log and vote surviving), so it stops and says how to come back
        as a new node. The first open marks the identity (``raft_kept``)."""
        raft_log = self.paths.raft_dir / RAFT_LOG_FILE
        if identity.raft_kept and not raft_log.exists():  # a snapshot keeps no vote or term
            raise self._raft_state_lost(identity, f"is gone ({raft_log} was removed)")
        try:
            applied = self.committer.open(bootstrap_voters=[identity.node_id] if bootstrap else None)
        except CorruptRecordError as exc:
            raise self._raft_state_lost(identity, f"is damaged ({exc}: a failing disk or SD card?)") from None
        self.identity = mark_raft_kept(self.paths.identity, identity)
        return applied

    def _raft_state_lost(self, identity: Identity, what: str) -> RaftStateLostError:
        lost = f"this node's Raft log {what}; it must not vote or acknowledge with what it lost. "
        if not self.link.book.items():  # it never knew another member: its cluster was itself
            return RaftStateLostError(
                lost + f"It knew no other member: move {self.paths.root} away and `swarm join` to start a new "
                "cluster (the job history was in that log; its jobs' output stays in the moved directory)"
            )
        return RaftStateLostError(
            lost + f"On another member run `swarm forget {identity.name}` (once it is seen dead), then move "
            f"{self.paths.root} away and `swarm join` again (with the token `swarm token` prints on a member) to "
            "come back as a new node; its jobs' output stays in the moved directory"
        )

    def _web_server(self, control: Any) -> Any:
        """The HTTP server, its socket bound (``web.server``: the HTTP stack, 4.8 MiB and 0.2 s of
        imports, waits for the first connection); None with ``--http-port off`` or a busy default port."""
        config = self.config
        if config.http_port is None:
            return None
        from swarmcompute.web.server import WebServer

        web = WebServer(
            self,
            control,
            bind=config.bind,
            port=config.http_port,
            tls_cert=config.tls_cert,
            tls_key=config.tls_key,
            metrics_token=config.metrics_token,
        )
        try:
            self.http_address = web.bind()
        except ConfigError as exc:
            if not config.http_optional:
                raise
            log.warning("http_unavailable", error=str(exc))
            return None
        log.info("http_serving", url=self.http_address)
        return web

    async def _start_discovery(self, plan: ClusterPlan) -> Any:
        from swarmcompute.discovery.browse import PeerAd
        from swarmcompute.discovery.mdns import Discovery
        from swarmcompute.errors import DiscoveryError

        def on_peer(ad: PeerAd) -> None:
            if ad.cluster_id == self.link.key.cluster_id and ad.node_id != self.node_id:
                # Anyone on the LAN can send an ad with our public cluster id: a place to ask to
                # join, never an address book entry (see ``ClusterLink.candidate``).
                self.link.candidate(f"{ad.host}:{ad.port}")

        discovery = Discovery(
            self.node_id,
            plan.key.cluster_id,
            self.link.transport.port,
            bind=None if self.config.bind == "0.0.0.0" else self.config.bind,
            on_peer=on_peer,
        )
        try:
            await discovery.start()
        except DiscoveryError as exc:
            log.warning("mdns_unavailable", error=str(exc), hint="use --peer HOST:PORT to join by address")
            return None
        return discovery

    def _watch_join_refusals(self) -> None:
        """A node joining with a token, in no configuration yet, learns at once when the peers it
        dials refuse that token (``transport.refusals``): it stops with ``TokenRefusedError`` (its
        user reads `token refused by ADDRESS: ...`, exit 2) and drops the key it saved, so that
        `swarm join` with the right token starts clean. The first peer that accepts ends the watch."""
        if self.config.token is None or self.plan is None or self.plan.bootstrap or self._is_member():
            return
        self._refusals = asyncio.get_running_loop().create_task(self._probe_join_seeds())

    def _watch_key_refusals(self) -> None:
        """A member that comes back after the cluster's key was rotated and the grace period
        ended holds a key no member lets in, and nothing reaches it: rather than run on alone
        (quorum lost, forever), it stops with ``KeyOutdatedError`` (exit 78: the unit does not
        start it again) once every peer it knows refuses its key and none spoke to it for
        ``KEY_REFUSED_AFTER_S``. The first message from a peer ends the watch."""
        if self._refusals is not None or not self._is_member():
            return
        self._refusals = asyncio.get_running_loop().create_task(self._probe_members_key())

    async def _probe_members_key(self) -> None:
        from swarmcompute.errors import KeyOutdatedError
        from swarmcompute.node.key_rotation import KEY_GRACE_S, KEY_REFUSED_AFTER_S
        from swarmcompute.transport.refusals import probe_handshake

        transport = self.link.transport
        grace = f"{KEY_GRACE_S / 60:g} minutes" if KEY_GRACE_S >= 60 else f"{KEY_GRACE_S:g} s"
        while not self._stop.is_set():
            await asyncio.sleep(KEY_REFUSED_AFTER_S)
            addresses = sorted(set(self.link.book.items(confirmed_only=True).values()) - {self.link.address})[:8]
            if transport.stats.received or not addresses:
                return
            answers = [await probe_handshake(self.link.key, address) for address in addresses]
            if transport.stats.received or not all(answer is False for answer in answers):
                continue
            self._fatal = KeyOutdatedError(
                f"every member this node knows ({', '.join(addresses[:3])}) refuses its key: the cluster's "
                f"key was rotated while it was down for over {grace}; make it a node again "
                "with another --state-dir and the token `swarm token` prints on a member"
            )
            log.error("key_refused_by_members", addresses=addresses)
            self.stop()
            return

    def _join_refused(self, reason: str) -> None:
        """A member refused this node for good (``ClusterLink.on_join_refused``): say why, exit 2."""
        if self._is_member() or self._fatal is not None:
            return
        self._fatal = ConfigError(reason)
        log.error("join_refused", reason=reason)
        self.stop()

    def _version_refused(self, error: SwarmError) -> None:
        """A member refused this node's protocol version while it is in no configuration
        (``node.version_gate``): the one line naming both versions, exit 2."""
        if self._fatal is not None:
            return
        self._fatal = error
        log.error("version_refused", reason=str(error))
        self.stop()

    async def _probe_join_seeds(self) -> None:
        from swarmcompute.errors import TokenRefusedError
        from swarmcompute.transport.refusals import probe_handshake

        while not self._is_member() and not self._stop.is_set():
            for address in list(self.link.seeds):
                accepted = await probe_handshake(self.link.key, address)
                if accepted:
                    return
                if accepted is False and not self._is_member():
                    self._fatal = TokenRefusedError(
                        f"token refused by {address}: the node there does not hold this token's cluster key "
                        "(a wrong or rotated token, another cluster's node, or not a swarm node); print the "
                        "token on a member with `swarm token`"
                    )
                    log.error("token_refused", address=address)
                    self.paths.cluster_key.unlink(missing_ok=True)
                    self.stop()
                    return
            await asyncio.sleep(JOIN_PROBE_INTERVAL_S)

    def _watch_own_address(self) -> None:
        """A node bound to every interface (the default) follows its machine's address when it
        changes while it runs: netlink says when (``AddressWatch``), else maintenance looks
        once a second. A node bound to one address stays there (its socket is bound to it)."""
        from swarmcompute.discovery.address_watch import AddressWatch
        from swarmcompute.discovery.addresses import is_wildcard

        if not is_wildcard(self.config.bind):
            return
        watch = AddressWatch(self._check_own_address)
        self._address_watch = watch if watch.start() else False

    def _check_own_address(self) -> None:
        """Move to this machine's new address if it lost the one we advertise (see
        ``address_watch.new_own_address``): peers learn it from our gossip, mDNS re-advertises."""
        from swarmcompute.discovery.address_watch import new_own_address
        from swarmcompute.discovery.addresses import advertised_addresses

        new = new_own_address(self.link.advertise_host, advertised_addresses(None))
        if new is None:
            return
        self.link.change_address(new)
        if self._discovery is not None:
            self._readvertise = asyncio.get_running_loop().create_task(self._discovery.update_address(new))

    async def _hand_over_leadership(self, *, leave: bool = False) -> None:
        """A stopping leader hands over first, so the cluster does not wait out an election.

        With ``leave`` (`swarm leave`) the node also leaves the Raft configuration, so the
        voters that stay can form a majority without it (``ClusterLink.leave_configuration``:
        a leader removes itself through the log and Raft hands over once that commits; another
        member asks the leader to remove it)."""
        raft = self.committer.raft
        if leave:
            was_leader = raft.is_leader
            outcome = await self.link.leave_configuration(LEAVE_TRANSFER_TIMEOUT_S)
            log.info("left_configuration", outcome=outcome, leader=raft.leader_id)
            if was_leader and not raft.is_leader:
                log.info("leadership_transferred", to=raft.leader_id)
            if outcome != "the only voter: it stays in the configuration":
                return
        if not raft.is_leader:
            return
        others = [v for v in raft.node.membership.voters if v != self.node_id and self._is_alive(v)]
        if not others:
            return
        try:
            raft.transfer_leadership(others[0])
        except (MembershipChangeError, NotLeaderError) as exc:
            log.info("leadership_transfer_skipped", reason=str(exc))
            return
        deadline = time.monotonic() + LEAVE_TRANSFER_TIMEOUT_S
        while raft.is_leader and time.monotonic() < deadline:
            await raft.wait_leader_change(deadline - time.monotonic())
        log.info("leadership_transferred" if not raft.is_leader else "leadership_transfer_timed_out", to=others[0])

    def _take_lock(self) -> None:
        self.paths.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.paths.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DaemonAlreadyRunningError(str(self.paths.root), self.paths.read_pid()) from None
        self._lock_fd = fd

    def _release_lock(self) -> None:
        for path in (self.paths.pid_file, self.paths.control_socket):
            path.unlink(missing_ok=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _is_member(self) -> bool:
        return self.node_id in self.committer.raft.node.membership.members

    def _is_alive(self, node_id: str) -> bool:
        if node_id == self.node_id:
            return True
        member = self.gossip.member(node_id)
        return member is not None and member.state is ALIVE

    # -- carrying out the node's rules -------------------------------------------

    def _view(self, *, with_silent: bool = False) -> ClusterView:
        """What the rules need to know of the cluster right now (``view_of``)."""
        return view_of(self.node_id, self.committer.raft, self.gossip.members(), with_silent=with_silent)

    def _carry(self, instructions: list[Instruction]) -> None:
        """Carry out what the rules decided; decide nothing."""
        proposals: list[Any] = []
        for ins in instructions:
            if isinstance(ins, Notify):
                self._notify_followers(ins.job_id)
            elif isinstance(ins, Propose):
                for cmd in ins.commands:
                    if isinstance(cmd, StartAttempt):
                        self._notice_start(cmd)
                    else:
                        proposals.append(cmd)
            elif isinstance(ins, Stop):
                if ins.lost:
                    self.executor.stop(ins.job_id, ins.attempt, None if ins.asked else KILL_GRACE_S)
                else:
                    self.executor.cancel(ins.job_id, ins.attempt)
            elif isinstance(ins, WakeStarts):
                self._start_wakeup.set()
            elif isinstance(ins, Reschedule):
                self.rounds.request()
            elif isinstance(ins, Say):
                log.warning(ins.event, **dict(ins.fields))
            elif isinstance(ins, Retime):
                self.executor.retime(ins.job_id, ins.attempt, ins.timeout_s)
            elif isinstance(ins, SendSignal):
                self.executor.signal(ins.job_id, ins.attempt, ins.signals)
        if proposals:
            self.committer.enqueue(proposals)

    def _running_here(self) -> dict[str, list[int]]:
        running: dict[str, list[int]] = {}
        for job_id, attempt in self.executor.running():  # once per batch, not once per job
            running.setdefault(job_id, []).append(attempt)
        return running

    # -- reacting to committed changes ----------------------------------------

    def _on_applied(self, changed: list[str]) -> None:
        removed = [j for j in changed if j not in self.table]
        if removed:
            self._jobs_removed(removed)
        instructions = self.state.applied(
            changed,
            self._running_here(),
            from_earlier_life=self.committer.applying_index <= self.committer.boot_index,
            now_mono=time.monotonic(),
            now_wall=time.time(),
            may_start=self.lease.may_start(),
        )
        reschedule = any(isinstance(i, Reschedule) for i in instructions)
        self._carry([i for i in instructions if not isinstance(i, Reschedule)])
        self.rounds.applied(reschedule)
        if self._copies is not None:
            self._copies.applied(changed)
        if self._files is not None:
            self._files.applied(changed)
        self._node_settings_applied()
        if self.table.owed_notices and self._notices is not None:
            self._notices.maintenance()  # a job with --notify ended: tell its URL now (on the leader)
        self.ends.applied(changed)
        self._changed.set()
        self._changed = asyncio.Event()

    def _on_output(self, job_id: str, attempt: int) -> None:
        self._notify_followers(job_id)
        writer = self.executor.log_writer(job_id, attempt)
        if writer is not None and writer.truncated and not writer.truncation_reported:
            # The log stopped keeping this attempt's output: every node's view of the job says so.
            from swarmcompute.state.commands import OutputTruncated

            writer.truncation_reported = True
            self.committer.enqueue([OutputTruncated(job_id, attempt, self.node_id)])
            if writer.write_failure is not None:  # a full disk, not the bound: say so, retry the line
                self.disk.failed(writer.write_failure, writer.path)
                if writer.marker_owed is not None:
                    from swarmcompute.executor.logfile import append_marker

                    path, marker = writer.path, writer.marker_owed
                    self.disk.owe(path, lambda: append_marker(path, marker))

    def _on_raft_stall(self, error: Exception | None) -> None:
        if error is not None:
            self.disk.failed(error, raft=True)

    def _notify_followers(self, job_id: str) -> None:
        for event in self._job_events.get(job_id, ()):
            event.set()

    def _spec_to_start(self, job: Job, attempt: int) -> JobSpec:
        """The spec an attempt starts with: a gang rank's with its rank's variables."""
        if not job.spec.ranks:
            return job.spec
        if self._gang_env is None:
            self._gang_env = GangEnv(
                lambda n: m.address if (m := self.gossip.member(n)) is not None else None, self.node_id
            )
        return self._gang_env.spec_to_start(self.table, job, attempt)

    def _on_attempt_exit(self, result: AttemptResult) -> None:
        self.executed.add(result.cpu_s, result.max_rss_bytes)
        if self._gang_env is not None:
            self._gang_env.ended(result.job_id, result.attempt)
        self._start_notices.drop((result.job_id, result.attempt))  # the result says it all
        finish = FinishAttempt(
            job_id=result.job_id,
            attempt=result.attempt,
            node_id=self.node_id,
            exit_code=result.exit_code,
            end=result.reason,
            error=result.error,
            output_tail=result.output_tail,
            started_at=result.started_at,
            finished_at=result.finished_at,
            cpu_s=result.cpu_s,
            max_rss_bytes=result.max_rss_bytes,
            max_rss_at_most=result.max_rss_at_most,
            output_bytes=result.output_bytes,
        )
        self._carry(self.state.attempt_exited(finish, holds=self.lease.holds()))

    async def _start_loop(self) -> None:
        """Start the attempts the rules say to start, one by one (a container start awaits), with a
        turn of the event loop every ``SLICE_S`` (``still_to_start`` checks each again after)."""
        state = self.state
        while True:
            await self._start_wakeup.wait()
            self._start_wakeup.clear()
            starts = state.to_start(self.own_capacity(), self.leader_time(), may_start=self.lease.may_start())
            with self.committer.holding():  # the results of the run so far: one entry, not one a turn
                async for start in sliced(starts, SLICE_S):
                    docker = self.inventory is None or self.inventory.docker
                    if not state.still_to_start(
                        start, may_start=self.lease.may_start(), now_mono=time.monotonic(), docker=docker
                    ):
                        continue
                    job = start.job
                    spec = self._spec_to_start(job, start.attempt)
                    await self.executor.start(job.id, start.attempt, spec, leased=start.leased, gpus=start.gpus)
                    running = self.executor.is_running(job.id, start.attempt)
                    self._carry(state.started(start, running=running, holds=self.lease.holds(), now_wall=time.time()))

    def _notice_start(self, notice: StartAttempt) -> None:
        """ "Started" notices are held to share a log entry, and dropped when the result comes
        first (``rules.start_notices``)."""
        delay = self._start_notices.hold(notice)
        if delay is not None:
            asyncio.get_running_loop().call_later(delay, self._send_start_notices)

    def _send_start_notices(self) -> None:
        notices, delay = self._start_notices.fire()
        if delay is not None:
            asyncio.get_running_loop().call_later(delay, self._send_start_notices)
        if notices:
            self.committer.enqueue(notices)

    # -- the leader's duties ---------------------------------------------------------

    def own_capacity(self) -> NodeCapacity:
        """What this node offers, measured here (the same figures it gossips)."""
        identity = self._identity()
        if self.inventory is None:
            last = self._resources().last
            return NodeCapacity(identity.node_id, identity.name, float(last.cpus), last.mem_total)
        return _capacity(identity.node_id, self.inventory.meta())

    def capacities(self) -> list[NodeCapacity]:
        """What every live node offers (ours measured here, the others' from gossip), less the
        nodes whose lease has run out (``LeaseGrantor.unplaceable``), and less this one once it
        stops: a stopping leader placed the attempts its stop handed back on itself again, which its
        executor refused at once ("the daemon is shutting down"), over and over: a one-node
        cluster's running job was at attempt 20 after a `systemctl restart`, 19 burned in 0.3 s."""
        identity = self._identity()
        nodes = [] if self._stop.is_set() else [self.own_capacity()]
        members = self.gossip.members()
        now = time.monotonic()
        grantor = self.lease.grantor if self._lease is not None else None
        barred = (
            grantor.unplaceable((m.node_id for m in members), self.lease.voters(), lease_clock())
            if grantor is not None
            else set()
        )
        for member in members:
            if member.node_id == identity.node_id or member.state is not ALIVE or member.meta is None:
                continue
            if member.node_id in barred or now - self._stopping.get(member.node_id, -STOPPING_HOLD_S) < STOPPING_HOLD_S:
                continue
            nodes.append(_capacity(member.node_id, member.meta))
        return nodes

    def _on_stopping(self, node_id: str) -> None:
        if self.committer.raft.is_leader:
            log.info("member_stopping", member=node_id)
            self._stopping[node_id] = time.monotonic()

    def _on_member_event(self, event: MemberEvent | TwinFound) -> None:
        if isinstance(event, TwinFound):
            self._twin_found(event)
            return
        alive = isinstance(event, (MemberUp, MemberUpdated))
        if isinstance(event, (MemberUp, MemberUpdated)):
            self.link.learn(event.node_id, event.address, verified=True)
            meta = event.meta
            if meta is not None:  # a member restarted on a release whose minor is too far from ours
                self.link.versions.gossiped(event.node_id, meta.name, event.address, meta.protocol, meta.version)
            if isinstance(event, MemberUp):
                self._stopping.pop(event.node_id, None)  # back: it started again
                log.info("member_up", member=event.node_id, address=event.address)
        elif isinstance(event, (MemberDead, MemberLeft)):
            self._stopping.pop(event.node_id, None)  # gone: no gone member is placed on
            log.info("member_dead" if isinstance(event, MemberDead) else "member_left", member=event.node_id)
        else:
            return
        if self._copies is not None:
            self._copies.members_changed()
        self._carry(
            self.state.member_changed(
                event.node_id,
                alive,
                self._view(),
                self.lease.grantor,
                time.monotonic(),
                lease_clock(),
                time.time(),
            )
        )

    def _twin_found(self, event: TwinFound) -> None:
        """Another machine runs this node's id (``Membership._check_twin``): its state directory
        is a copy of ours, or ours of its. Two processes would be one Raft voter with two minds
        (each could vote once in a term: two leaders) and one job's runner twice over, so the
        younger stops before it takes part (gossip holds its Raft until then), without a goodbye:
        the other keeps the id and every job on it."""
        name = self.identity.name if self.identity is not None else self.node_id
        ages = {"age_s": event.our_age_ms / 1000, "other_age_s": event.their_age_ms / 1000}  # who started later
        if not event.step_aside:
            self.copy_seen = {"address": event.address, "at": time.time()}
            log.error(
                "duplicate_node",
                address=event.address,
                **ages,
                hint=f"another machine at {event.address} runs this node ({name}) from a copy of its state "
                "directory; it stops itself (give it a state directory of its own); this one keeps the node",
            )
            return
        if self._fatal is not None:
            return
        self._fatal = DuplicateNodeError(
            f"another machine ({event.address}) runs node {name} ({self.node_id}) too, from a copy of this state "
            f"directory ({self.paths.root}; a cloned disk or SD card?). This one stopped, so that the cluster does not "
            "count one node twice: move the directory away and `swarm join` again to make this machine a node of its own"
        )
        log.error("duplicate_node", address=event.address, stepped_aside=True, **ages, reason=str(self._fatal))
        self.stop()

    def _on_new_epoch(self, epoch: int) -> None:
        self._carry(self.state.recovered(self.executor.running(), time.time(), epoch))

    def _on_lease_change(self, held: bool) -> None:
        self._carry(self.state.lease_changed(held, self.executor.running()))

    def leader_time(self) -> float:
        """This machine's wall clock moved onto the leader's by the offset this node tells (0 within
        a minute: ``node.clock_check``): what the job table's and the API tokens' times compare with."""
        return time.time() - self._clock_off

    def _check_clock(self) -> None:
        """Once a second: tell the cluster (gossip) and the log when this node's wall clock is
        over a minute off the leader's, and when it is back (``node.clock_check``)."""
        off = clock_off_to_tell(self.lease.clock_offset, self._clock_off)
        if off == self._clock_off:
            return
        self._clock_off = off
        if off:
            log.warning("clock_off_leader", seconds=off, hint="set this machine's time (NTP)")
        else:
            log.info("clock_off_leader", seconds=0)
        self.gossip.advertise_now()

    def _maintenance(self) -> None:
        """Once a second: join retries; retry backoffs that ended; the rules' maintenance (hand
        back, dead nodes' work); and on the leader, replace voters dead past the grace period."""
        self.link.join_step(self._is_member())
        if self._keys is not None:
            self._keys.expire()
        self._write_policy_copy()
        self._node_settings_applied()  # drains and label changes commit in entries that change no job
        if self._address_watch is False:
            self._check_own_address()
        now = time.time()
        if self.committer.raft.is_leader and self.table.highest_pending_priority() is not None:
            self.rounds.request()  # also covers a round lost with a leader change
        elif self.table.pending_index.due(now):  # a retry's backoff ended: O(those), not O(pending)
            self.rounds.request()
        view = self._view()
        self._carry(
            self.state.maintenance(
                view, self.lease.grantor, self.capacities, time.monotonic(), lease_clock(), time.time()
            )
        )
        if view.is_leader:
            self._replace_dead_voters(view)
            self._prune_history()
            if self._housekeeping is not None:
                self._housekeeping.maintenance()  # forgotten members out of the configuration
            if self._notices is not None:
                self._notices.maintenance()  # --notify notices still owed (a new leader's too)
        if self._copies is not None:
            self._copies.maintenance()

    def _prune_history(self) -> None:
        """On the leader, once a second: propose removing the finished jobs past the history bound
        (``state.history``), one batch at a time. Costs nothing while under both bounds."""
        if self._pruning is not None and not self._pruning.done():
            return
        ids = self.prunable()
        if ids:
            self._pruning = asyncio.get_running_loop().create_task(self._prune_quietly(ids))

    async def _prune_quietly(self, ids: list[str]) -> None:
        await self._propose_prune(ids, "history bound")

    def prunable(self, keep_jobs: int | None = None, keep_s: float | None = None) -> list[str]:
        """The finished jobs to remove now (oldest first, one batch at most)."""
        return prunable(
            self.table,
            keep_jobs=self.config.keep_jobs if keep_jobs is None else keep_jobs,
            keep_s=self.config.keep_s if keep_s is None else keep_s,
            now=time.time(),
        )

    async def _propose_prune(self, ids: list[str], why: str) -> int:
        """Propose removing ``ids``, then the next batch while the last one was full (or until
        this node stops leading); returns how many were removed. What ends meanwhile waits for
        the next second's look: going on with the few jobs that ended during each proposal cut
        a busy history into a prune per Raft round, each paying its fixed costs."""
        removed = 0
        while ids:
            before = len(self.table)
            try:
                await self.committer.propose([PruneJobs(tuple(ids), time.time(), why)])
            except (NotLeaderError, ClusterError) as exc:
                log.info("prune_deferred", jobs=len(ids), reason=str(exc))
                break
            removed += before - len(self.table)
            full = len(ids) >= MAX_PRUNE_BATCH
            ids = self.prunable() if full and self.committer.raft.is_leader else []
        if removed:
            log.info("jobs_pruned", jobs=removed, why=why, finished_kept=self.table.finished_count)
        return removed

    def _inventory_changed(self) -> None:
        """The GPUs, the engine's answer or its images changed: the leader learns it now (gossip
        at once, not at the next periodic advertisement) and places again, and what is queued here
        is looked at again (an image job waits queued while the engine is gone: ``still_to_start``)."""
        if self._gossip is not None:
            self._gossip.advertise_now()
        self.rounds.request()
        self._start_wakeup.set()

    def _engine_lost(self) -> None:
        """The Docker engine stopped answering a job: look at it again now (``Inventory.refresh``),
        so that gossip and this node's own starts and placement stop counting on it until it answers."""
        if self.inventory is not None:
            self.inventory.engine_lost()
            task = asyncio.get_running_loop().create_task(self.inventory.refresh())
            self._removing.add(task)
            task.add_done_callback(self._removing.discard)

    def _image_unavailable(self, job_id: str, image: str) -> bool:
        """A job could not get ``image`` here (no registry reachable, or the registry does not
        have it): remembered and gossiped at once (``Inventory.could_not_get``), so no more of its
        jobs are placed here; True where another live node holds it and may run the job (the
        attempt is then lost, and runs there with no retry spent), as gossip tells."""
        if self.inventory is not None:
            self.inventory.could_not_get(image)
        job = self.table.get(job_id)
        return job is not None and held_elsewhere(job.spec, self.capacities(), self._identity().node_id)

    def _jobs_removed(self, job_ids: list[str]) -> None:
        """Jobs left the table: delete the output this node holds of them (in a thread: thousands
        of directories), then tell ``on_jobs_removed``."""
        task = asyncio.get_running_loop().create_task(self._delete_outputs(job_ids))
        self._removing.add(task)
        task.add_done_callback(self._removing.discard)

    async def _sweep_outputs(self) -> None:
        """At start: output of jobs no longer in the table (removed while this node was down, or
        applied again from the log at start, which runs no hooks) is deleted now."""
        output_dir = self.paths.job_output_dir
        names = await asyncio.to_thread(lambda: [p.name for p in output_dir.iterdir()] if output_dir.is_dir() else [])
        gone = [n for n in names if n not in self.table]
        if gone:
            await self._delete_outputs(gone)
            log.info("removed_jobs_output_deleted", jobs=len(gone))
        if self.details is not None:  # and the details of jobs no longer in the table
            self.details.delete([i for i in self.details.ids() if i not in self.table])

    async def _delete_outputs(self, job_ids: list[str]) -> None:
        self._removed_since_trim += len(job_ids)
        if self._removed_since_trim >= max(TRIM_AFTER_REMOVED, self.config.keep_jobs // 2):
            if self._trim_handle is not None:
                self._trim_handle.cancel()  # a burst of removals: give memory back after its last one
            self._trim_handle = asyncio.get_running_loop().call_later(TRIM_DELAY_S, self._give_memory_back)
        await asyncio.to_thread(delete_job_outputs, self.paths.job_output_dir, job_ids)
        for hook in self.on_jobs_removed:
            try:
                hook(job_ids)
            except Exception:  # one hook's bug must not keep the others from running
                log.exception("jobs_removed_hook_failed")

    def _give_memory_back(self) -> None:
        self._trim_handle = None
        self._removed_since_trim = 0
        task = asyncio.get_running_loop().create_task(self._fold_and_collect())
        self._removing.add(task)
        task.add_done_callback(self._removing.discard)

    async def _fold_and_collect(self) -> None:
        """After many jobs left the table: fold the log into a snapshot of what is kept (the log
        held every removed job's submission), collect, and hand freed heap back to the system.
        See the README's *Bounded history* for what it measured."""
        if self.committer.raft.entries_since_snapshot() > 0:
            await self.committer.compact()
        import gc

        gc.collect()
        _malloc_trim()

    def _replace_dead_voters(self, view: ClusterView) -> None:
        raft = self.committer.raft
        voter = self.state.dead_voter_to_replace(
            view, raft.node.membership.quorum, time.monotonic(), self.config.voter_grace_s
        )
        if voter is None:
            return
        try:
            raft.remove(voter)
            log.info("dead_voter_removed", voter=voter)
        except (MembershipChangeError, NotLeaderError) as exc:
            log.info("dead_voter_removal_deferred", voter=voter, reason=str(exc))

    async def _reap_stale_containers(self) -> None:
        removed = await self.executor.reap_stale_containers()
        if removed:
            log.info("stale_containers_removed", count=removed)

    async def _clock_loop(self) -> None:
        """The daemon's one periodic wakeup: Raft and gossip ticks (both count 100 ms ticks),
        maintenance every second, a resource sample every two. Each wakeup of the loop costs
        CPU an idle small board should not spend, so nothing else runs on a timer, and ticks run
        late within ``tick_slack`` (``node.ticker.Clock``): on a follower they ride on the
        heartbeats' wake-ups, on a leader two share one."""
        raft, gossip, resources = self.committer.raft, self.gossip, self._resources()
        per_maintenance = round(MAINTENANCE_INTERVAL_S / TICK_S)
        per_sample = round(RESOURCE_SAMPLE_INTERVAL_S / TICK_S)
        per_failure_check = round(FAILURE_CHECK_INTERVAL_S / TICK_S)
        per_ask = max(round(ASK_INTERVAL_S / TICK_S), 1)
        lease, state, transport = self.lease, self.state, self.link.transport
        ticks = 0

        def tick() -> None:
            nonlocal ticks
            ticks += 1
            raft.tick()
            if self._keys is not None:
                self._keys.check()  # a rotated key: switch within a tick of applying it
            if raft.leader_id != self._last_leader:  # counted for /metrics
                self._last_leader = raft.leader_id
                self._leader_changes += raft.leader_id is not None
            gossip.tick(clock.behind)  # a probe sent in a catch-up leaves with its last tick
            lease.tick(ask=ticks % per_ask == 0)
            if state.blocked_on_fence:
                self._carry(state.fence_tick(lease.may_start()))
            if raft.is_leader:
                view = self._view()
                grantor = self.lease.grantor
                self._carry(state.leader_tick(view, grantor, raft.applied_index, lease_clock(), time.time()))
                if ticks % per_failure_check == 0:
                    view = self._view(with_silent=True)
                    self._carry(state.failure_check(view, grantor, lease_clock(), time.time()))
            if ticks % per_maintenance == 0:
                try:
                    self._maintenance()
                except Exception:  # the clock must keep ticking: log, and try again next second
                    log.exception("maintenance_failed")
                try:
                    self.disk.check()  # a full state dir: retry what failed once space is back
                except Exception:
                    log.exception("disk_check_failed")
                if (self.disk.problem is not None) != self._disk_full_told:  # placement learns it now
                    self._disk_full_told = self.disk.problem is not None
                    self.gossip.advertise_now()
                    self.rounds.request()
                    # What is queued here waited while the disk was full (``LocalQueue.to_start``):
                    # without a wake-up, a job pinned here waited for good once it was freed
                    # (found by the whole-cluster simulator once it pinned jobs, seed 390).
                    self._start_wakeup.set()
                try:
                    self._check_clock()
                except Exception:
                    log.exception("clock_check_failed")
            if ticks % per_sample == 0:
                resources.sample()
            transport.flush()  # this tick's heartbeats, probes and asks leave now, batched per peer

        link = self.link

        def slack() -> float:
            now = time.monotonic()
            node = raft.node
            learner = node.id in node.membership.learners
            return tick_slack(
                TICK_S,
                leads_peers=bool(node.progress),
                is_leader=raft.is_leader,
                heard_ago_s=now - link.drained_at,
                heartbeat_ticks=RAFT_HEARTBEAT_TICKS * (RAFT_LEARNER_HEARTBEAT_EVERY if learner else 1),
                lease_left_s=lease.left(lease_clock()),
            )

        clock = Clock(TICK_S, tick, slack, max_late_ticks=RAFT_HEARTBEAT_TICKS * RAFT_LEARNER_HEARTBEAT_EVERY)
        link.after_drained = clock.catch_up  # ticks due run in the wake-up that read a peer's burst
        try:
            await clock.run()
        finally:
            link.after_drained = None

    # -- what the control server asks for -------------------------------------

    async def submit(self, specs: tuple[JobSpec, ...], user: str = "") -> list[str]:
        """Durably record new jobs (idempotent by id); return their ids. ``user``: the local user
        who submitted them, as the kernel said (``users.Peer``): recorded in each job, whatever
        the client put there, and checked against the command policy."""
        if self.disk.problem is not None:
            from swarmcompute.errors import DiskFullError

            raise DiskFullError(f"{self.disk.problem}: this node takes no new jobs until space is freed there")
        await self._require_quorum()
        batch_ids = {s.id for s in specs}
        batch_groups: dict[str, list[tuple[int, str]]] = {}
        """The arrays and gangs this batch brings, by id: their members' (index or rank, id); read
        once a job of the batch names a parent (most batches name none)."""

        def in_batch(ref: str) -> list[tuple[int, str]]:
            if not batch_groups:
                for s in specs:
                    if s.array_id:
                        batch_groups.setdefault(s.array_id, []).append((s.array_index, s.id))
                    elif s.gang_id:
                        batch_groups.setdefault(s.gang_id, []).append((s.rank, s.id))
                batch_groups.setdefault("", [])  # read: a batch without groups is not read again
            return batch_groups.get(ref, []) if ref else []

        def parents(refs: tuple[str, ...]) -> tuple[str, ...]:
            """Ids, unique prefixes or names, as everywhere else; an array's or a gang's id (or
            ``--name``) stands for all of its jobs (Slurm's ``afterok:ARRAY``), those the history bound removed too,
            and those of one submitted in this same batch (a pipeline's steps in one submission)."""
            ids: list[str] = []
            for ref in refs:
                if ref in batch_ids or ref in self.table.pruned:  # a pruned parent: the table knows its end
                    ids.append(ref)
                    continue
                kind = self.table.group_kind(ref)
                if kind is None and not in_batch(ref):
                    named = self.table.group_of(ref)  # a prefix of an array's or a gang's id, or its `--name`
                    if named is not None:
                        ref, kind = named, self.table.group_kind(named)
                    else:
                        try:
                            ids.append(self.table.resolve(ref).id)
                            continue
                        except JobNotFoundError:
                            if not self.table.pruned_elements(ref):
                                raise
                            kind = "array"  # (all of it removed by the history bound: each says how it ended)
                if kind == "array":  # by index, whichever are still held: the same ids for a retried submission
                    held = [(j.spec.array_index, j.id) for j in self.table.array(ref)] + self.table.pruned_elements(ref)
                elif kind == "gang":
                    held = [(j.spec.rank, j.id) for j in self.table.gang(ref)]
                else:
                    held = []
                group = list(dict.fromkeys(job_id for _, job_id in sorted(held + in_batch(ref))))
                if len(ids) + len(group) > MAX_DEPENDENCIES:
                    raise InvalidJobSpecError(
                        f"--after {ref}: its {len(group)} jobs are more than the {MAX_DEPENDENCIES} one job can wait on"
                    )
                ids += group
            return tuple(dict.fromkeys(ids))

        resolved = []
        first_of: dict[str, JobSpec | None] = {}  # each array of the batch: an element, None once one was here
        pruned_of: dict[str, str] = {}  # each array of the batch: an element the history bound removed
        whole = {j.id: j for j in self.whole_jobs(self._compacted(specs))}  # a retry's ended jobs, as submitted
        async for spec in sliced(specs, SLICE_S):
            if spec.after or spec.after_any:
                spec = replace(spec, after=parents(spec.after), after_any=parents(spec.after_any))
            if spec.user != user:
                spec = replace(spec, user=user)
            validate_spec(spec)
            check_policy(self.table.policy, spec)
            existing = whole.get(spec.id) or self.table.get(spec.id)
            if existing is not None and not same_job(existing, spec):
                raise JobAlreadyExistsError(f"job id {spec.id} is taken by a different job")
            taken_by = self.table.group_kind(spec.id)
            if taken_by is not None:  # `swarm show`, `cancel`, `wait` of that id would mean two things
                raise JobAlreadyExistsError(f"job id {spec.id} is the id of {taken_by} {spec.id}: choose another id")
            group = spec.array_id or spec.gang_id
            if group and group in self.table:
                kind = "array" if spec.array_id else "gang"
                raise JobAlreadyExistsError(f"{kind} id {group} is taken by job {group}: choose another id")
            if spec.id in self.table.pruned:
                if not spec.array_id:
                    raise JobAlreadyExistsError(
                        f"job id {spec.id} was used by a job the history bound removed: choose another id"
                    )
                pruned_of.setdefault(spec.array_id, spec.id)  # a retry's, if the array held is this one
            if spec.array_id and first_of.setdefault(spec.array_id, spec) is not None and existing is not None:
                first_of[spec.array_id] = None  # a retried submission: the same jobs
            resolved.append(spec)
        for array_id, first in first_of.items():  # new elements would join another array, even an ended one
            held = self.table.array_element(array_id)  # the rest of one submission cut in chunks is welcome
            if held is None and array_id in pruned_of:  # nothing left to tell a retry from another array by
                raise JobAlreadyExistsError(
                    f"job id {pruned_of[array_id]} was used by a job the history bound removed: choose another id"
                )
            if first is not None and held is not None and not same_array(self.whole_job(held).spec, first):
                raise JobAlreadyExistsError(f"array id {array_id} is taken by a different array: choose another id")
        specs = tuple(resolved)
        validate_batch(specs)  # a dependency cycle inside one submission would pend forever
        self.files.check_submit(specs)  # shipped files must be here before the job is
        went = 0
        for chunk in submit_chunks(specs, CHUNK_JOBS):
            try:
                await self.commit([SubmitJobs(chunk, time.time(), self.node_id)])
            except SwarmError as exc:
                if not went:
                    raise
                raise PartlySubmittedError(partly_submitted(went, specs, str(exc), request=True)) from None
            went += len(chunk)
        return [s.id for s in specs]

    def _compacted(self, specs: Sequence[JobSpec]) -> list[Job]:
        """The jobs of ``specs`` the table holds compacted (``state.compact``): a retried submission's
        that ended meanwhile, whose details ``submit`` reads from disk in one go to compare."""
        get = self.table.get
        return [j for s in specs if (j := get(s.id)) is not None and is_stub(j)]

    async def commit(self, commands: list[Command]) -> None:
        """Commit what a user asked for (a submission, a cancel, a drain...), again through the
        next leader when leadership moved before it was committed (``NotLeaderError``: it may or
        may not be in the log; every such command is idempotent, so a second commit of it is
        harmless), for as long as a quorum can be waited for. A submission committed in chunks so
        ends with all of its jobs, not some; a cancel of a 50,000-element array on 3 nodes, which
        stalled the leader into an election, said "this node is not the leader" and cancelled some."""
        deadline = time.monotonic() + QUORUM_WAIT_S
        while True:
            try:
                await self.committer.propose(commands)
                return
            except NotLeaderError:
                if time.monotonic() >= deadline:
                    raise
                await self._require_quorum()

    async def create_api_token(
        self, name: str, *, read_only: bool, expires_s: float | None, uid: int
    ) -> dict[str, Any]:
        """Make an HTTP API token acting as local user ``uid``; return its record with the secret
        (``token``), which is shown this once: only its digest is committed."""
        from swarmcompute.api import tokens
        from swarmcompute.state.api_tokens import MAX_TOKENS, ApiToken, CreateApiToken

        name = tokens.check_name(name)
        if expires_s is not None and not 0 < expires_s <= 100 * 365 * 86400:
            raise ConfigError("--expires must be a positive duration of at most a century, e.g. 30d")
        existing = self.table.api_tokens.get(name)
        if existing is not None and not tokens.manages(uid, existing):
            raise ConfigError(f"an API token named {name} belongs to another user: pick another name")
        if existing is not None:
            raise ConfigError(f"an API token named {name} exists: revoke it first (`swarm api-token revoke {name}`)")
        if len(self.table.api_tokens) >= MAX_TOKENS:
            raise ConfigError(f"the cluster holds {MAX_TOKENS} API tokens: revoke some first")
        secret = tokens.new_secret()
        now = self.leader_time()  # so that every node sees it expire at once
        token = ApiToken(
            name,
            tokens.digest(secret),
            read_only,
            uid,
            tokens.user_name(uid),
            now,
            None if expires_s is None else now + expires_s,
        )
        await self.commit([CreateApiToken(token)])
        if self.table.api_tokens.get(name) != token:
            raise ConfigError(f"an API token named {name} was created meanwhile: pick another name")
        return {**token.view(self.leader_time()), "token": secret}

    async def revoke_api_token(self, name: str, *, uid: int) -> None:
        """Revoke a token on every node (committed before this returns), asked by local user ``uid``,
        who must own it or be root (``tokens.manages``)."""
        from swarmcompute.api import tokens
        from swarmcompute.state.api_tokens import RevokeApiToken

        token = self.table.api_tokens.get(name)
        if token is None:
            raise ConfigError(f"no API token named {name[:64]!r}: see `swarm api-token list`")
        tokens.check_manages(uid, token)
        await self.commit([RevokeApiToken(name, time.time())])

    async def set_policy(self, policy: CommandPolicy, *, by: str) -> str:
        """Replace the cluster's command policy (committed before this returns); the new one as TOML."""
        from swarmcompute.errors import ConfigError

        problem = policy_problem(policy) or checks_problem(policy)
        if problem is not None:
            raise ConfigError(f"invalid policy: {problem}")
        await self.commit([SetPolicy(policy, time.time(), by)])
        log.info("policy_set", by=by, **policy.summary())
        self._write_policy_copy()
        return policy_toml(self.table.policy)

    def _write_policy_copy(self) -> None:
        """Keep ``policy.toml`` in the state dir the policy this node holds (a copy to read and edit)."""
        policy = self.table.policy
        if policy is self._policy_written:
            return
        self._policy_written = policy
        try:
            tmp = self.paths.policy_file.with_suffix(".tmp")
            tmp.write_text(policy_toml(policy))
            tmp.replace(self.paths.policy_file)
        except OSError as exc:
            log.warning("policy_copy_not_written", path=str(self.paths.policy_file), error=str(exc))

    async def rotate_key(self) -> str:
        """`swarm token --rotate`: commit a new cluster key; return its join token."""
        if self._keys is None:
            raise InvariantViolation("the key is rotated before run() opened the job log")
        return str(await self._keys.rotate(self.committer.propose))

    async def _require_quorum(self) -> None:
        """Refuse at once what cannot be committed: quorum lost for ``QUORUM_WAIT_S`` (long enough
        for an election) is a ``NoQuorumError`` naming the missing voters, not a wait."""
        if self.committer.raft.node.membership.voters == {self.node_id}:
            return  # its own quorum: the committer elects it at once if need be
        deadline = time.monotonic() + QUORUM_WAIT_S
        while True:
            quorum = self.quorum()
            if quorum["healthy"]:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise NoQuorumError(f"no quorum, so nothing can be submitted: {quorum['reason']}")
            await self.committer.raft.wait_leader_change(min(left, 0.2))

    async def cancel(self, job_ids: list[str], why: str = "cancelled by user") -> None:
        await self._commit_each(
            job_ids, lambda j: not j.state.is_terminal, lambda ids: CancelJobs(ids, why, time.time())
        )

    async def hold(self, job_ids: list[str], held: bool, by: str = "") -> None:
        """Hold (``held``) or release the pending ones of ``job_ids`` (``HoldJobs``); a release
        reaches the placed ones `swarm requeue --hold` holds once they stopped too."""
        await self._commit_each(
            job_ids,
            lambda j: j.state is JobState.PENDING or (not held and j.hold_on_stop),
            lambda ids: HoldJobs(ids, held, by, time.time()),
        )

    async def update(self, job_ids: list[str], changes: JobChanges, by: str = "") -> None:
        """Apply ``changes`` to the pending ones of ``job_ids``, and to the placed ones when they
        change only the time limit and retries (``UpdateJobs``). A change that could not do what it
        says is refused whole: a ``--begin`` for a job that ran already (it holds back first
        attempts only: the job showed the new start time and ran on), and ``--retries`` below the
        failures of a job waiting out its retry backoff (the retry was granted: it ran anyway)."""
        for job_id in job_ids:
            job = self.table.get(job_id)
            if job is None or job.state is not JobState.PENDING:
                continue
            if changes.begin_at is not None and job.attempt:
                raise InvalidJobSpecError(
                    f"{job_id} ran already (attempt {job.attempt}): --begin holds back a job's first attempt only"
                )
            if changes.retries is not None and job.failures > changes.retries:
                raise InvalidJobSpecError(
                    f"{job_id} failed {counted(job.failures, 'time')} already, more than --retries "
                    f"{changes.retries} allows: `swarm cancel {job_id}` stops it"
                )
        placed = changes.limits_only()
        await self._commit_each(
            job_ids,
            lambda j: j.state is JobState.PENDING or (placed and not j.state.is_terminal),
            lambda ids: UpdateJobs(ids, changes, by, time.time()),
        )

    async def requeue(self, job_ids: list[str], hold: bool, by: str = "") -> None:
        """Send the placed ones of ``job_ids`` back to be placed again (``hold``: held once back;
        ``RequeueJobs``)."""
        await self._commit_each(
            job_ids,
            lambda j: j.state in ACTIVE_STATES and (not j.stop_why or (hold and not j.hold_on_stop)),
            lambda ids: RequeueJobs(ids, by, time.time(), hold),
        )

    async def signal(self, targets: dict[str, int], signum: int, group: bool, by: str = "") -> None:
        """Send ``signum`` to the running attempts ``targets`` names (job id -> attempt; ``group``:
        to each one's process group; ``SignalJobs``)."""
        await self._commit_each(
            list(targets),
            lambda j: j.state is JobState.RUNNING and j.attempt == targets[j.id],
            lambda ids: SignalJobs(tuple((i, targets[i]) for i in ids), signum, group, by, time.time()),
        )

    async def _commit_each(
        self, job_ids: list[str], takes: Callable[[Job], bool], command: Callable[[tuple[str, ...]], Command]
    ) -> None:
        """Commit ``command`` of the jobs of ``job_ids`` it ``takes`` (as this node's table reads
        them now), ``CHUNK_JOBS`` a command: a cancel, hold, update, requeue or signal of a
        50,000-element array."""
        taken = tuple(i for i in job_ids if (job := self.table.get(i)) is not None and takes(job))
        for i in range(0, len(taken), CHUNK_JOBS):
            await self.commit([command(taken[i : i + CHUNK_JOBS])])

    def node_id_of(self, ref: str) -> str:
        """The id of the node ``ref`` names (``node.labels.resolve_node``); ``NodeNotFoundError``."""
        from swarmcompute.node.labels import resolve_node

        return resolve_node(self, ref)[0]

    async def set_drained(self, ref: str, drained: bool) -> dict[str, Any]:
        """`swarm drain` / `swarm undrain` (``node.labels``): the node's row once committed."""
        from swarmcompute.node.labels import set_drained

        return await set_drained(self, ref, drained)

    async def prune(self, older_than_s: float | None = None, keep: int | None = None) -> dict[str, Any]:
        """`swarm prune` (``node.housekeeping``): finished jobs past the bounds, removed now."""
        return await self._housekeeping.prune(older_than_s=older_than_s, keep=keep)  # type: ignore[no-any-return]

    async def forget(self, ref: str) -> dict[str, Any]:
        """`swarm forget NODE` (``node.housekeeping``): a node gone for good, dropped everywhere."""
        return await self._housekeeping.forget(ref)  # type: ignore[no-any-return]

    async def label_node(self, ref: str, labels: tuple[str, ...]) -> dict[str, Any]:
        """`swarm label NODE K=V...` (``node.labels``): committed; the node applies it when it holds it."""
        from swarmcompute.node.labels import label_node

        return await label_node(self, ref, labels)

    def _node_settings_applied(self) -> None:
        """After applied entries: this node's labels from `swarm label`; a drain or undrain asks
        for a placement round and wakes this node's starts (its queue waits while drained)."""
        if self._labels is not None and self.inventory is not None and self._labels.sync():
            self.inventory.labels = self._labels.labels
            self.rounds.request()  # a leader places with its own labels as they are now
        if self.table.drained != self._drained_seen:
            self._drained_seen = self.table.drained
            self.rounds.request()
            self._start_wakeup.set()
        if self._housekeeping is not None and self._gossip is not None:
            self._housekeeping.applied()  # `swarm forget`

    def is_leader(self) -> bool:
        return self.committer.raft.is_leader

    def node_name(self, node_id: str) -> str:
        """A node's name for people (its id while nobody has said its name)."""
        if node_id == self.node_id and self.identity is not None:
            return self.identity.name
        member = self.gossip.member(node_id)
        return member.meta.name if member is not None and member.meta is not None else node_id

    def _known_node(self, pin: str) -> bool:
        """Whether ``--node PIN`` names this node or one gossip knows, live, dead or gone."""
        if self.identity is not None and pin_matches(pin, self.node_id, self.identity.name):
            return True
        return any(
            pin_matches(pin, m.node_id, m.meta.name if m.meta is not None else m.node_id) for m in self.gossip.members()
        )

    def _pin_left(self, pin: str) -> bool:
        """Whether every node ``--node PIN`` names left the cluster (`swarm leave`), none is live."""
        named = [
            m
            for m in self.gossip.members()
            if pin_matches(pin, m.node_id, m.meta.name if m.meta is not None else m.node_id)
        ]
        return bool(named) and all(m.state.value == "left" for m in named)

    def _pin_hint(self, pin: str) -> str:
        """`` (did you mean 'DESKTOP-4F2'?)`` for a pin no node has: a name that differs only in
        case (a hostname's), else a close one (``units.likely_meant``); "" when none is close."""
        names = [self.identity.name] if self.identity is not None else []
        names += [m.meta.name for m in self.gossip.members() if m.meta is not None]
        close = likely_meant(pin, names)
        return f" (did you mean {close!r}?)" if close else ""

    def node_alive(self, node_id: str) -> bool:
        return self._is_alive(node_id)

    def _peers_to_ask(self) -> list[str]:
        """Alive peers, voters first (a voter applied nearly every entry): ``DetailsBackfill``."""
        voters = self.committer.raft.status().voters
        alive = [m.node_id for m in self.gossip.members() if m.state is ALIVE and m.node_id != self.node_id]
        return sorted(alive, key=lambda n: (n not in voters, n))

    def node_gone(self, node_id: str) -> bool:
        """Gossip holds ``node_id`` dead or left, or, once it has settled, does not know it: not
        worth asking for what it holds. A suspected node is not gone: it may only be slow (a busy
        loop that missed a probe, seen on a loaded 2-core machine), and asking it costs at most a
        timeout, where taking it for gone had `swarm run` call a whole attempt's output missing.
        Nor is a node this one has not heard of yet because it has just started: a `swarm run`
        that followed its job again after its daemon restarted was told the output of an attempt
        on a live node was missing, asked before the first push-pull named that node."""
        if node_id == self.node_id:
            return False
        member = self.gossip.member(node_id)
        if member is None:
            return self.gossip.core.settled
        return member.state is DEAD or member.state is LEFT

    def log_path(self, job_id: str, attempt: int) -> Path:
        """Where an attempt that ran here keeps its output."""
        return self.executor.log_path(job_id, attempt)

    async def fetch_log(self, node_id: str, job_id: str, attempt: int, offset: int) -> LogData | None:
        """Output of an attempt from a node that holds it (the one that ran it, or one with a
        copy), from ``offset``; None if it does not answer."""
        return await self.link.fetch_log(node_id, job_id, attempt, offset)

    async def pull_progress(self, job: Job, *, started: bool = False) -> PullProgress | None:
        """While ``job`` is being started (assigned) with an image: how far its node has got
        pulling it; asked of that node (a ``LogFetch`` of no bytes) when it is another one. None
        when no pull runs for it, or its node does not answer within a second. ``started``: also
        after that, for the pull's last word (its node keeps it a while after the attempt ends)."""
        if (job.state is not JobState.ASSIGNED and not started) or not job.spec.image or not job.node:
            return None
        if job.node == self.node_id:
            return self.executor.pull_progress(job.id, job.attempt)
        data = await self.link.fetch_log(job.node, job.id, job.attempt, 0, timeout_s=1.0, max_bytes=0)
        return None if data is None else data.pull

    async def usage_now(self, job: Job) -> UsageNow | None:
        """What ``job``'s running attempt uses now, read by its node (``executor.usage``); asked of
        that node (a ``LogFetch`` of no bytes) when it is another one. None when it does not run,
        is a Docker job whose engine is on another machine, or its node does not answer within a
        second."""
        if job.state is not JobState.RUNNING or not job.node or not self._is_alive(job.node):
            return None  # (a node cut off would hold `swarm show` a second for nothing)
        if job.node == self.node_id:
            return self.executor.usage_now(job.id, job.attempt)
        data = await self.link.fetch_log(job.node, job.id, job.attempt, 0, timeout_s=1.0, max_bytes=0)
        return None if data is None else data.usage

    def copy_path(self, job_id: str, attempt: int) -> Path:
        """Where this node keeps its copy of an attempt that ran elsewhere (``node.log_copies``)."""
        return self.copies.copy_path(job_id, attempt)

    async def find_copy(self, job: Job, attempt: int) -> tuple[str, bool] | None:
        """The node with the best copy of an attempt whose node is gone (``LogCopies.find_copy``)."""
        return await self.copies.find_copy(job, attempt)

    def quorum(self) -> dict[str, Any]:
        """Voters, the missing ones, and whether a quorum holds (what `swarm status` shows)."""
        raft = self.committer.raft.status()
        alive = {v for v in raft.voters if self._is_alive(v)}
        suspect = {v for v in raft.voters if v not in alive and not self.node_gone(v)}
        full = {
            v for v in alive if (m := self.gossip.member(v)) is not None and m.meta is not None and m.meta.disk_full
        }
        if self.disk.problem is not None:
            full.add(self.node_id)
        return quorum_view(raft, alive, {v: self.node_name(v) for v in raft.voters}, suspect, full)

    def stale(self) -> str | None:
        """Why what this node shows may be out of date, or None (``node.status.stale_line``): the
        quorum `swarm status` shows, the lease, and whether the Raft log takes writes."""
        if self._lease is None:
            return None  # still starting
        raft_problem = self.disk.problem if self.disk.raft_stalled else None
        unleased = self.lease.unleased_s()
        if raft_problem is None and unleased is None:
            return None
        return stale_line(self.quorum(), unleased, raft_problem)

    def recover(self) -> list[str]:
        """`swarm recover`: make the voters `swarm status` does not call missing the whole
        configuration (unsafe by design: see ``RaftNode.force_config``)."""
        quorum = self.quorum()
        excluded = self.committer.raft.status().excluded
        if excluded:
            raise ClusterError(
                f"this node is not in the cluster's configuration ({excluded}): it is rejoining as a "
                "learner; run `swarm recover` on a node of the cluster if that one lost its quorum"
            )
        if quorum["healthy"]:
            raise ClusterError("quorum is healthy: nothing to recover (see `swarm status`)")
        voters = recovered_voters(quorum["voters"], quorum["missing"], self.node_id)
        self.committer.raft.force_config(voters)
        status = self.committer.raft.status()
        self._on_new_epoch(status.epoch)
        log.warning("configuration_forced", voters=voters, epoch=status.epoch)
        return voters

    def job_view(self, job: Job, *, with_output: bool = False) -> dict[str, Any]:
        """A job as clients see it: node names for people next to the ids (``node_name``, and in
        ``message`` the names replace the ids the table wrote there), and a finished job's details
        read from this node's disk (``whole_job``)."""
        return self._view_of(self.whole_job(job), with_output)

    def job_views(self, jobs: Sequence[Job]) -> list[dict[str, Any]]:
        """``job_view`` of each, the details of those compacted read from disk at once."""
        return [self._view_of(job, False) for job in self.whole_jobs(jobs)]

    def _view_of(self, job: Job, with_output: bool) -> dict[str, Any]:
        view = job.view(with_output=with_output)
        view["details_missing"] = details_missing(job, self.node_name)
        view["notify_state"] = view["notify_error"] = None  # every job has the keys, as README's table says
        if view["notify"] is not None:
            table = self.table
            view["notify_state"] = (
                "failed" if job.id in table.notice_errors
                else "pending" if job.id in table.owed_notices or not job.state.is_terminal
                else "sent"
            )  # fmt: skip
            view["notify_error"] = table.notice_errors.get(job.id)
        if job.spec.ranks:
            view["gang"] = gang_view(self.table, job, self.node_name)
        view["every_next"] = run.id if (run := self.table.series_run(job)) else None
        return self._explained(job, view)

    def element_view(self, job: Job) -> dict[str, Any]:
        """What an array's summary reads of each element but its first (``arrays.array_view``):
        ``job_view``'s keys it shows, not the 50 others. `swarm show` of a 50,000-element pending
        array took 1.4-1.5 s with ``job_view`` for each."""
        spec = job.spec
        view = {
            "id": job.id,
            "name": spec.name,
            "state": job.state.value,
            "exit_code": job.exit_code,
            "attempt": job.attempt,
            "node": job.node,
            "reason": job.reason.value,
            "message": job.message,
            "submitted_at": job.submitted_at,
            "started_at": job.started_at,
            "finished_at": job.finished_at,
            "array_index": spec.array_index,
            "array_limit": spec.array_limit,
        }
        return self._explained(job, view)

    def _explained(self, job: Job, view: dict[str, Any]) -> dict[str, Any]:
        """``view`` with people's names: why a pending job waits, its node's name, and in its message
        node names for the ids the table wrote there."""
        if job.state is JobState.PENDING and job.reason is not Reason.RANK_DONE:  # that one says it exited 0
            waiting = self.rounds.waiting_reason(job.id)
            if waiting:
                view["reason"], view["message"] = waiting
                pin = job.spec.node
                if pin is not None and waiting[0] == "waiting_resources" and not self._known_node(pin):
                    # placement sees live nodes only: a typo read "which is not live", as a node turned off
                    view["message"] = (
                        f"pinned to node {pin!r}, which is no node of this cluster{self._pin_hint(pin)}:"
                        " `swarm nodes --all` lists them"
                    )
                elif pin is not None and waiting[0] == "waiting_resources" and self._pin_left(pin):
                    # one that `swarm leave` took out is not coming back by itself, as one down is
                    view["message"] = (
                        f"pinned to node {pin!r}, which left the cluster (swarm leave): it runs once that"
                        f" node joins again; `swarm update {job.id} --any-node` lets it run elsewhere"
                    )
        view["node_name"] = self.node_name(view["node"]) if view.get("node") else None
        message = view.get("message") or ""
        for node_id in {n for n in (job.node, *job.attempt_nodes) if n}:
            if node_id in message:
                message = message.replace(f"node {node_id}", f"node {self.node_name(node_id)}")
        view["message"] = message
        return view

    def row_view(self, row: list[Job]) -> dict[str, Any]:
        """A line of `swarm jobs` (``JobTable.newest_rows``): a job's record; for an array or a gang,
        its first element's or rank's, with ``group`` counting all of them (``arrays.group_summary``)."""
        first = row[0]
        view = self.job_view(first)
        group = first.spec.array_id or first.spec.gang_id
        if group:
            gang = not first.spec.array_id
            view["group"] = group_summary(
                "gang" if gang else "array",
                group,
                (
                    (
                        j.state.value,
                        j.submitted_at,
                        j.attempt,
                        self.node_name(n) if gang and (n := j.shown_node) else None,
                    )
                    for j in row
                ),
            )
        return view

    def whole_job(self, job: Job) -> Job:
        """``job`` with its details: a compacted finished one's from this node's disk (``state.compact``);
        as it is where this node does not hold them (``is_stub`` then still says so)."""
        if not is_stub(job) or self.details is None:
            return job
        return self.details.get(job.id) or job

    def whole_jobs(self, jobs: Sequence[Job]) -> list[Job]:
        """``whole_job`` of each, in one read of this node's disk."""
        stubs = [job.id for job in jobs if is_stub(job)]
        if not stubs or self.details is None:
            return list(jobs)
        found = self.details.get_many(stubs)
        return [found.get(job.id, job) for job in jobs]

    async def wait_changed(self, timeout_s: float | None) -> None:
        """Return after the next committed change (or the timeout)."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout_s)
        except TimeoutError:
            pass

    def job_event(self, job_id: str) -> asyncio.Event:
        """An event set on any output or state change of ``job_id`` (for followers)."""
        event = asyncio.Event()
        self._job_events.setdefault(job_id, set()).add(event)
        return event

    def release_job_event(self, job_id: str, event: asyncio.Event) -> None:
        followers = self._job_events.get(job_id)
        if followers is not None:
            followers.discard(event)
            if not followers:
                del self._job_events[job_id]

    def metrics(self) -> dict[str, Any]:
        """What /metrics adds to ``status()``: Raft's counters, gossip states, peer messages."""
        raft = self.committer.raft.status()
        states: dict[str, int] = {}
        for member in self.gossip.members():
            states[member.state.name.lower()] = states.get(member.state.name.lower(), 0) + 1
        stats = self.link.transport.stats
        return {
            "raft_term": raft.term,
            "raft_commit_index": raft.commit,
            "raft_applied_index": raft.applied,
            "raft_last_index": raft.last_index,
            "raft_leader_changes": self._leader_changes,
            "members": states,
            "peer_messages_sent": stats.sent,
            "peer_frames_posted": self.link.transport.frames_sent,
            "peer_messages_received": stats.received,
            "peer_messages_dropped": stats.dropped_full + stats.dropped_bad,
            "peer_bytes_sent": stats.sent_bytes,
            "peer_bytes_received": stats.received_bytes,
            "peer_connections": stats.peers,
            "gossip": dict(self.gossip.core.counters),
            "executed_cpu_s": self.executed.cpu_s,
            "executed_peaks": (list(self.executed.peaks), self.executed.peak_sum),
        }

    def status(self) -> dict[str, Any]:
        identity = self._identity()
        raft = self.committer.raft.status()
        members = {m.node_id: m for m in self.gossip.members()}
        node_ids = sorted(set(members) | set(raft.voters) | set(raft.learners) | {identity.node_id})
        nodes = [
            node_view(
                n,
                member=members.get(n),
                raft=raft,
                table=self.table,
                local=self._resources().last if n == identity.node_id else None,
                local_name=identity.name,
                local_address=self.link.address,
                images=list(self.inventory.images) if self.inventory else [],
                own_meta=self.inventory.meta() if self.inventory else None,
            )
            for n in node_ids
        ]
        nodes.sort(key=lambda v: (v["role"] != "leader", v["name"], v["id"]))
        hidden: list[dict[str, Any]] = []
        if self._housekeeping is not None:
            nodes, hidden = self._housekeeping.split(nodes, members)
        return {
            "cluster_id": self.link.key.cluster_id if self._link is not None else "",
            "node_id": identity.node_id,
            "leader": raft.leader_id,
            "term": raft.term,
            "quorum": self.quorum(),
            "nodes": nodes,
            "hidden_nodes": hidden,
            "forget_after_s": self.config.forget_after_s,
            "jobs": self.table.counts(),
            "held_jobs": self.table.held_count(),
            "state_dir": str(self.paths.root),
            "pid": os.getpid(),
            "uptime_s": time.monotonic() - self.started_monotonic,
            "lease": self.lease.may_start(),
            "disk_problem": self.disk.problem,
            "stale": self.stale(),
            "copy_seen": self.copy_seen,
            "cgroups": self.executor.processes.cgroups.view(),
            "run_as": RUN_AS_SUBMITTERS if serves_every_user() else daemon_user(),
            "policy": self.table.policy.summary(),
            "http": self.http_address or None,
            "versions": self.link.versions.view() if self._link is not None else {},
        }


def _capacity(node_id: str, meta: NodeMeta) -> NodeCapacity:
    """What a node offers the scheduler, from what it advertises (``users``: None for a node that
    runs every job as its own user)."""
    return NodeCapacity(
        node_id,
        meta.name,
        float(meta.cpus),
        meta.mem_total,
        len(meta.gpus),
        frozenset(meta.images),
        users=None if meta.users is None else frozenset(meta.users),
        gpu_cards=tuple((g.index, g.mem_total) for g in meta.gpus),
        labels=meta.labels,
        docker=meta.docker,
        disk_full=meta.disk_full,
        unpulled=frozenset(meta.unpulled),
    )


def delete_job_outputs(output_dir: Path, job_ids: Iterable[str]) -> int:
    """Remove ``output_dir/<id>`` of each job (what this node kept of its attempts); returns how
    many it removed. An id that is not a plain name is skipped (never a path outside the dir)."""
    import shutil

    removed = 0
    for job_id in job_ids:
        if not job_id or "/" in job_id or job_id in (".", ".."):
            continue
        path = output_dir / job_id
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def _malloc_trim() -> None:
    """Return the free heap at the top and in the middle of glibc's arenas to the system."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc


def _docker_images() -> list[str] | None:
    """Images the local Docker engine holds (None without an engine); runs in a thread."""
    from swarmcompute.membership.meta import MAX_IMAGES
    from swarmcompute.node.runners import engine_socket_answers

    if not engine_socket_answers():
        return None  # no engine: never load the Docker SDK
    from swarmcompute.executor.docker_engine import docker_available, local_images

    if not docker_available():
        return None
    return local_images(limit=MAX_IMAGES)


def _port_of(url: str) -> int:
    """The port of ``http(s)://HOST:PORT`` (0 for "": no HTTP served)."""
    port = url.rpartition(":")[2]
    return int(port) if port.isdigit() else 0


def _advertise_host(bind: str) -> str:
    """The address peers should dial: the bind address, or this machine's LAN address for 0.0.0.0."""
    if bind not in ("0.0.0.0", "", "*"):
        return bind
    from swarmcompute.discovery.addresses import advertised_addresses

    addresses = advertised_addresses(None)
    return addresses[0] if addresses else "127.0.0.1"
