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
from dataclasses import dataclass, replace
from typing import Any

import structlog

from swarmcompute.errors import (
    ClusterError,
    DaemonAlreadyRunningError,
    ExecutorError,
    InvariantViolation,
    JobAlreadyExistsError,
    MembershipChangeError,
    NotLeaderError,
)
from swarmcompute.executor.logfile import read_chunks
from swarmcompute.executor.spec import AttemptResult, EndReason
from swarmcompute.membership.config import GossipConfig
from swarmcompute.membership.effects import MemberDead, MemberEvent, MemberLeft, MemberUp, MemberUpdated
from swarmcompute.membership.members import ALIVE
from swarmcompute.node.cluster import ClusterLink
from swarmcompute.node.cluster_messages import LogData, LogFetch
from swarmcompute.node.committer import ReplicatedJobLog
from swarmcompute.node.gossip_host import GossipHost
from swarmcompute.node.identity import Identity, load_or_create
from swarmcompute.node.inventory import Inventory
from swarmcompute.node.joining import ClusterPlan, plan_cluster
from swarmcompute.node.lease_host import LeaseHost, lease_clock
from swarmcompute.node.local_queue import LocalQueue
from swarmcompute.node.placement_rounds import PlacementRounds
from swarmcompute.node.resources import ResourceMonitor
from swarmcompute.node.runners import JobRunners
from swarmcompute.node.status import node_view, quorum_view
from swarmcompute.paths import DEFAULT_PORT, StatePaths
from swarmcompute.raft.config import RaftConfig
from swarmcompute.rules.lease import ASK_INTERVAL_S, KILL_GRACE_S
from swarmcompute.scheduler.placement import NodeCapacity
from swarmcompute.state.commands import (
    CancelJobs,
    FinishAttempt,
    ReleaseQueued,
    RequeueLost,
    StartAttempt,
    SubmitJobs,
)
from swarmcompute.state.job import ACTIVE_STATES, Job, JobSpec, JobState
from swarmcompute.state.table import JobTable, validate_spec

log = structlog.get_logger(__name__)

RESOURCE_SAMPLE_INTERVAL_S = 2.0
TICK_S = 0.1
"""One clock for Raft and gossip: every wakeup costs CPU on a small board, so they share it."""
RAFT_ELECTION_TIMEOUT_TICKS = 6
"""Elections after 0.6-1.2 s of silence: a new leader within about a second of a crash, yet
heartbeats (every 200 ms) have three chances to arrive on a busy board or a Wi-Fi hiccup;
pre-vote and check-quorum keep a slow node from disrupting a healthy leader."""
RAFT_HEARTBEAT_TICKS = 2
MAINTENANCE_INTERVAL_S = 1.0
LEAVE_TRANSFER_TIMEOUT_S = 3.0
LEAVE_BROADCAST_S = 0.3
FAILURE_CHECK_INTERVAL_S = 0.5
SILENT_NODE_S = 2.0
"""A node suspected by gossip and silent to Raft this long loses its running attempts."""
LOST_WITH_THE_DAEMON = "the daemon running it stopped"
"""Why an attempt an earlier life of this daemon held runs again, whenever the restart learns of it."""
START_NOTICE_DELAY_S = 0.02
""""Started" notices wait this long to share a log entry; an attempt that ends sooner needs
none (its result says when it started), which spares short jobs a third of their commands."""


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
    gossip: GossipConfig | None = None
    kill_grace_s: float = 5.0
    max_log_bytes: int = 64 * 1024 * 1024


class Daemon:
    """One node. ``run()`` serves until ``stop()`` (or `swarm leave`)."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.paths = config.paths
        self.table = JobTable()
        self.identity: Identity | None = None
        self.plan: ClusterPlan | None = None
        self.started_monotonic = time.monotonic()
        self._lock_fd: int | None = None
        self._stop = asyncio.Event()
        self._changed = asyncio.Event()
        self._job_events: dict[str, set[asyncio.Event]] = {}
        self._queue: LocalQueue | None = None
        self._start_wakeup = asyncio.Event()
        self._start_notices: dict[tuple[str, int], StartAttempt] = {}
        self._notices_handle: asyncio.TimerHandle | None = None
        self._dead_since: dict[str, float] = {}
        self._rounds: PlacementRounds | None = None
        self._committer: ReplicatedJobLog | None = None
        self._link: ClusterLink | None = None
        self._gossip: GossipHost | None = None
        self._lease: LeaseHost | None = None
        self._reruns: dict[str, set[tuple[str, int]]] = {}  # node -> its attempts this leader re-queued
        self._start_fenced = False
        self.executor = JobRunners(
            self.paths.job_output_dir,
            self.paths.process_registry,
            on_exit=self._on_attempt_exit,
            on_output=self._on_output,
            kill_grace_s=config.kill_grace_s,
            max_log_bytes=config.max_log_bytes,
        )
        self.resources: ResourceMonitor | None = None
        self.inventory: Inventory | None = None

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
    def queue(self) -> LocalQueue:
        if self._queue is None:
            raise InvariantViolation("the local queue is used before run() loaded the identity")
        return self._queue

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
            self._queue = LocalQueue(identity.node_id)
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
            link = self._link = ClusterLink(
                identity.node_id,
                identity.name,
                plan.key,
                bind=self.config.bind,
                port=self.config.port,
                advertise_host=_advertise_host(self.config.bind),
                book_path=self.paths.peers_file,
            )
            await link.start()
            self._committer = ReplicatedJobLog(
                identity.node_id,
                self.paths.raft_dir,
                self.table,
                self._on_applied,
                send_to=link.send_to,
                config=RaftConfig(
                    election_timeout_ticks=RAFT_ELECTION_TIMEOUT_TICKS,
                    heartbeat_interval_ticks=RAFT_HEARTBEAT_TICKS,
                    max_voters=self.config.max_voters,
                ),
                tick_interval_s=TICK_S,
            )
            self._rounds = PlacementRounds(self.table, self.committer, self.capacities)
            self._lease = LeaseHost(
                identity.node_id,
                self.committer.raft,
                send_to=link.send_to,
                set_deadline=self.executor.set_lease_deadline,
                on_change=self._on_lease_change,
            )
            link.on_lease = self.lease.on_message
            applied = self.committer.open(bootstrap_voters=[identity.node_id] if plan.bootstrap else None)
            self.inventory = Inventory(identity.name, self.resources, list_images=_docker_images)
            self._gossip = GossipHost(
                identity.node_id,
                link.address,
                send=link.send_to_address,
                on_event=self._on_member_event,
                sample_meta=self.inventory.meta,
                config=self.config.gossip,
            )
            link.attach(self.committer, self.gossip)
            link.on_log_fetch = self._serve_log_fetch
            link.add_seeds(list(plan.seeds) + list(link.book.items().values()))
            if self.config.mdns:
                discovery = await self._start_discovery(plan)
            reaped = self.executor.reap_stale()
            lost = self._requeue_in_flight()
            server = ControlServer(self, self.paths.control_socket)
            await server.start()
            self.paths.pid_file.write_text(f"{os.getpid()}\n")
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
                log.info(
                    "cluster_token", hint="join other machines with: swarm join --token TOKEN", token=plan.key.token
                )
            async with asyncio.TaskGroup() as tasks:
                committer = tasks.create_task(self.committer.run(tick=False))
                workers = [
                    tasks.create_task(self._clock_loop()),
                    tasks.create_task(self.rounds.run()),
                    tasks.create_task(self._start_loop()),
                    tasks.create_task(self.inventory.run()),
                    tasks.create_task(self._reap_stale_containers()),
                ]
                self.rounds.request()
                await self._stop.wait()
                log.info("node_stopping", running=len(self.executor.running()))
                await server.close()
                leave = server.leave_requested  # `swarm leave`, not a signal: out of the configuration too
                if leave:  # the ends of its attempts are committed while it is still a member
                    await self.executor.shutdown()  # ends report STOPPED: re-queued as lost
                    await self.committer.drain(LEAVE_TRANSFER_TIMEOUT_S)
                await self._hand_over_leadership(leave=leave)
                self.gossip.leave()
                await asyncio.sleep(LEAVE_BROADCAST_S)  # let the goodbye leave before the sockets close
                if not leave:
                    await self.executor.shutdown()  # ends report STOPPED: re-queued as lost
                self.committer.close()
                await committer
                for task in workers:
                    task.cancel()
        finally:
            if discovery is not None:
                await discovery.close()
            if self._link is not None:
                await self._link.close()
            if self._committer is not None:
                self._committer.shutdown()
            self._release_lock()
            log.info("node_stopped")

    def stop(self) -> None:
        self._stop.set()

    async def _start_discovery(self, plan: ClusterPlan) -> Any:
        from swarmcompute.discovery.browse import PeerAd
        from swarmcompute.discovery.mdns import Discovery
        from swarmcompute.errors import DiscoveryError

        def on_peer(ad: PeerAd) -> None:
            if ad.cluster_id == plan.key.cluster_id and ad.node_id != self.node_id:
                address = f"{ad.host}:{ad.port}"
                self.link.learn(ad.node_id, address)
                self.link.add_seeds([address])

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

    def _requeue_in_flight(self) -> int:
        """Attempts the log says were running here died with the previous daemon: run them again."""
        now = time.time()
        lost = [
            RequeueLost(j.id, j.attempt, LOST_WITH_THE_DAEMON, now)
            for j in self.table.open_jobs()
            if j.state in ACTIVE_STATES and j.node == self.node_id
        ]
        if lost:
            self.committer.enqueue(lost)
        return len(lost)

    # -- reacting to committed changes ----------------------------------------

    def _on_applied(self, changed: list[str]) -> None:
        reschedule = False
        running_here: dict[str, list[int]] = {}
        for job_id, attempt in self.executor.running():  # once per batch, not once per job
            running_here.setdefault(job_id, []).append(attempt)
        queue, node_id, now = self.queue, self.node_id, time.monotonic()
        from_earlier_life = self.committer.applying_index <= self.committer.boot_index
        for job_id in changed:
            job = self.table.get(job_id)
            if job is None:
                continue
            if from_earlier_life and job.state in ACTIVE_STATES and job.node == node_id:
                self._requeue_from_earlier_life(job)
            elif job.state is JobState.ASSIGNED and job.node == node_id:
                if queue.offer(job, now):
                    self._start_wakeup.set()
            else:
                queue.forget(job_id)
            # Only a new or re-queued job, or freed capacity, can change the placement.
            reschedule = reschedule or job.state is JobState.PENDING or job.state.is_terminal
            if job_id in running_here:
                self._stop_stale_attempts(job, running_here[job_id])
            self._notify_followers(job_id)
        self.rounds.applied(reschedule)
        if self._start_fenced and self.lease.may_start():
            self._start_fenced = False
            self._start_wakeup.set()
        self._changed.set()
        self._changed = asyncio.Event()

    def _requeue_from_earlier_life(self, job: Job) -> None:
        """An attempt given to this node before the daemon restarted (its entry was in our log
        but is only now known committed): the earlier life may have run part of it, so it runs
        again as a new attempt rather than starting twice under one attempt number."""
        self.queue.forget(job.id)
        if self.executor.is_running(job.id, job.attempt):
            return
        self.committer.enqueue([RequeueLost(job.id, job.attempt, LOST_WITH_THE_DAEMON, time.time())])

    def _stop_stale_attempts(self, job: Job, attempts: list[int]) -> None:
        """Fencing: an attempt here that the table no longer gives to us is stopped at once."""
        for attempt in attempts:
            current = attempt == job.attempt and job.node == self.node_id and job.state in ACTIVE_STATES
            if not current:
                self.executor.cancel(job.id, attempt)

    def _on_output(self, job_id: str, attempt: int) -> None:
        self._notify_followers(job_id)
        writer = self.executor.log_writer(job_id, attempt)
        if writer is not None and writer.truncated and not writer.truncation_reported:
            # The log stopped keeping this attempt's output: every node's view of the job says so.
            from swarmcompute.state.commands import OutputTruncated

            writer.truncation_reported = True
            self.committer.enqueue([OutputTruncated(job_id, attempt, self.node_id)])

    def _notify_followers(self, job_id: str) -> None:
        for event in self._job_events.get(job_id, ()):
            event.set()

    def _on_attempt_exit(self, result: AttemptResult) -> None:
        job = self.table.get(result.job_id)
        if (
            result.reason is EndReason.EXITED
            and job is not None
            and job.spec.on_disconnect == "stop"
            and not self.lease.holds()
        ):
            # Killed by the guardian at the lease deadline while this daemon was frozen: lost, not failed.
            result = replace(result, reason=EndReason.STOPPED, error="its node lost its lease")
        self.queue.ended(result.job_id, result.attempt)
        self._start_notices.pop((result.job_id, result.attempt), None)  # the result says it all
        self._start_wakeup.set()
        self.committer.enqueue(
            [
                FinishAttempt(
                    job_id=result.job_id,
                    attempt=result.attempt,
                    node_id=self.node_id,
                    exit_code=result.exit_code,
                    end=result.reason,
                    error=result.error,
                    output_tail=result.output_tail,
                    started_at=result.started_at,
                    finished_at=result.finished_at,
                )
            ]
        )

    async def _start_loop(self) -> None:
        """Start the attempts committed to this node as its capacity frees (see ``LocalQueue``)."""
        while True:
            await self._start_wakeup.wait()
            self._start_wakeup.clear()
            if not self.lease.may_start():
                # No attempt starts without a lease and past its fence: gaining one, or applying
                # the log up to the fence, wakes this loop.
                self._start_fenced = True
                continue
            for job in self.queue.to_start(self.table, self.own_capacity(), time.time()):
                attempt = job.attempt
                if job.state is not JobState.ASSIGNED or job.node != self.node_id:
                    self.queue.ended(job.id, attempt)  # moved on while earlier ones started
                    continue
                leased = job.spec.on_disconnect == "stop"
                if leased and not self.lease.may_start():
                    self._start_wakeup.set()  # lost it while earlier ones started: wait for it again
                    break
                await self.executor.start(job.id, attempt, job.spec, leased=leased)
                if not self.executor.is_running(job.id, attempt):
                    continue
                if job.attempt != attempt or job.node != self.node_id or job.state not in ACTIVE_STATES:
                    self.executor.cancel(job.id, attempt)  # cancelled or moved while a container started
                    continue
                if leased and not self.lease.holds():
                    self.executor.stop(job.id, attempt, KILL_GRACE_S)  # the lease lapsed while it started
                    continue
                self._notice_start(StartAttempt(job.id, attempt, self.node_id, time.time()))

    def _notice_start(self, notice: StartAttempt) -> None:
        self._start_notices[(notice.job_id, notice.attempt)] = notice
        if self._notices_handle is None:
            self._notices_handle = asyncio.get_running_loop().call_later(START_NOTICE_DELAY_S, self._send_start_notices)

    def _send_start_notices(self) -> None:
        self._notices_handle = None
        notices, self._start_notices = list(self._start_notices.values()), {}
        if notices:
            self.committer.enqueue(notices)

    # -- the leader's duties ---------------------------------------------------------

    def own_capacity(self) -> NodeCapacity:
        """What this node offers, measured here (the same figures it gossips)."""
        identity = self._identity()
        if self.inventory is None:
            last = self._resources().last
            return NodeCapacity(identity.node_id, identity.name, float(last.cpus), last.mem_total)
        meta = self.inventory.meta()
        return NodeCapacity(
            identity.node_id, identity.name, float(meta.cpus), meta.mem_total, len(meta.gpus), frozenset(meta.images)
        )

    def capacities(self) -> list[NodeCapacity]:
        """What every live node offers (ours measured here, the others' from gossip)."""
        identity = self._identity()
        nodes = [self.own_capacity()]
        for member in self.gossip.members():
            if member.node_id == identity.node_id or member.state is not ALIVE or member.meta is None:
                continue
            meta = member.meta
            nodes.append(
                NodeCapacity(
                    member.node_id, meta.name, float(meta.cpus), meta.mem_total, len(meta.gpus), frozenset(meta.images)
                )
            )
        return nodes

    def _on_member_event(self, event: MemberEvent) -> None:
        if isinstance(event, (MemberUp, MemberUpdated)):
            self.link.learn(event.node_id, event.address)
            self._dead_since.pop(event.node_id, None)
            if isinstance(event, MemberUp):
                log.info("member_up", member=event.node_id, address=event.address)
        elif isinstance(event, (MemberDead, MemberLeft)):
            log.info("member_dead" if isinstance(event, MemberDead) else "member_left", member=event.node_id)
            self._dead_since.setdefault(event.node_id, time.monotonic())
            self._requeue_attempts_of(event.node_id, "its node stopped answering")
        self.rounds.request()

    def _requeue_attempts_of(self, node_id: str, why: str) -> None:
        """On the leader: the attempts of a dead node run again elsewhere (fenced by attempt number).

        Leased attempts (``on_disconnect="stop"``) only once the node's lease has surely expired
        there (``LeaseHost.may_rerun``); until then they wait for the lease check that follows."""
        if not self.committer.raft.is_leader:
            return
        now = time.time()
        lease_over = self.lease.may_rerun(node_id)
        lost = [
            RequeueLost(j.id, j.attempt, f"{why} (node {self._name_of(node_id)})", now)
            for j in self.table.open_jobs()
            if j.state in ACTIVE_STATES and j.node == node_id and (lease_over or j.spec.on_disconnect == "keep")
        ]
        if lost:
            if lease_over:  # rule 4: no lease for that node until these are applied here
                self.lease.rerunning(node_id)
                self._reruns.setdefault(node_id, set()).update((c.job_id, c.attempt) for c in lost)
            self.committer.enqueue(lost)

    def _name_of(self, node_id: str) -> str:
        member = self.gossip.member(node_id) if self._gossip is not None else None
        return member.meta.name if member is not None and member.meta is not None else node_id

    def _on_lease_change(self, held: bool) -> None:
        """Gained: start the queue. Lost: stop every leased attempt here (SIGTERM now; the
        guardian SIGKILLs at the deadline even if this loop is frozen). They run again
        elsewhere as lost attempts, not failures, once the leader may re-run them."""
        if held:
            self._start_wakeup.set()
            return
        stopped = 0
        for job_id, attempt in self.executor.running():
            job = self.table.get(job_id)
            if job is None or job.spec.on_disconnect == "stop":
                stopped += self.executor.stop(job_id, attempt, KILL_GRACE_S)
        if stopped:
            log.warning(
                "attempts_stopped_lease_lost",
                count=stopped,
                hint="this node lost contact with a leader that has a quorum; the jobs run again elsewhere",
            )

    def _rerun_leased_attempts(self) -> None:
        """On the leader: the leased attempts of nodes whose lease has surely expired run again;
        once a node's re-runs are applied here, it may have a lease again (fenced past them)."""
        if not self.committer.raft.is_leader:
            self._reruns.clear()
            return
        for node_id, keys in list(self._reruns.items()):
            if not any(
                (job := self.table.get(j)) and job.attempt == a and job.node == node_id and job.state in ACTIVE_STATES
                for j, a in keys
            ):
                del self._reruns[node_id]
                self.lease.rerun_applied(node_id)
        now = lease_clock()
        known = set(self.committer.raft.node.membership.members) | {m.node_id for m in self.gossip.members()}
        if not any(self.lease.may_rerun(n, now) for n in known if n != self.node_id):
            return  # the usual case, without a scan of the table
        nodes = {j.node for j in self.table.open_jobs() if j.state in ACTIVE_STATES and j.spec.on_disconnect == "stop"}
        for node_id in nodes:
            if node_id is not None and node_id != self.node_id and self.lease.may_rerun(node_id, now):
                log.info("leased_attempts_rerun", node=self._name_of(node_id), **self.lease.explain(node_id, now))
                self._requeue_attempts_of(node_id, "its node lost its lease")

    def _maintenance(self) -> None:
        """Once a second: join retries; retry backoffs that ended; and on the leader, re-queue
        the work of dead nodes and replace voters dead past the grace period."""
        self.link.join_step(self._is_member())
        now = time.time()
        if self.committer.raft.is_leader and self.table.highest_pending_priority() is not None:
            self.rounds.request()  # also covers a round lost with a leader change
        elif any(0 < j.not_before <= now for j in self.table.pending_jobs()):
            self.rounds.request()
        self._hand_back_queued()
        raft = self.committer.raft
        if not raft.is_leader:
            return
        for node_id in {j.node for j in self.table.open_jobs() if j.state in ACTIVE_STATES}:
            if node_id is not None and not self._is_alive(node_id) and node_id in self._dead_since:
                self._requeue_attempts_of(node_id, "its node is dead")
        self._replace_dead_voters()

    def _hand_back_queued(self) -> None:
        """Attempts queued here too long while another node is free go back to be placed again."""
        queue = self.queue
        if not len(queue):
            return
        now = time.time()
        moved = queue.to_hand_back(self.table, self.capacities(), time.monotonic())
        if moved:
            log.info("queued_attempts_handed_back", count=len(moved))
            self.committer.enqueue(
                [
                    ReleaseQueued(j.id, j.attempt, self.node_id, "it was busy while another node was free", now)
                    for j in moved
                ]
            )

    def _requeue_from_silent_nodes(self) -> None:
        """On the leader: move the work of a node that both gossip suspects and Raft has not
        heard from for ``SILENT_NODE_S``, without waiting out gossip's suspicion timeout.

        Two independent signals, and seconds of silence rather than one missed heartbeat, so a
        short blip does not move work; if the node was alive after all, fencing stops its old
        attempt as soon as it hears of the new one.
        """
        raft = self.committer.raft
        if not raft.is_leader:
            return
        status = raft.status()
        silent_ticks = round(SILENT_NODE_S / TICK_S)
        busy = {j.node for j in self.table.open_jobs() if j.state in ACTIVE_STATES}
        for peer in status.peers:
            if peer.node_id not in busy or peer.node_id == self.node_id:
                continue
            heard = peer.last_heard_tick
            if heard is not None and status.ticks - heard < silent_ticks:
                continue
            member = self.gossip.member(peer.node_id)
            if member is not None and member.state is not ALIVE:
                self._requeue_attempts_of(peer.node_id, "its node stopped answering")

    def _replace_dead_voters(self) -> None:
        raft = self.committer.raft
        membership = raft.node.membership
        now = time.monotonic()
        for voter in sorted(membership.voters - {self.node_id}):
            since = self._dead_since.get(voter)
            if since is None or now - since < self.config.voter_grace_s:
                continue
            alive_voters = sum(1 for v in membership.voters if self._is_alive(v))
            if alive_voters < membership.quorum:
                return  # never shrink without a quorum: that is `swarm recover`'s decision
            try:
                raft.remove(voter)
                log.info("dead_voter_removed", voter=voter, dead_for_s=round(now - since, 1))
            except (MembershipChangeError, NotLeaderError) as exc:
                log.info("dead_voter_removal_deferred", voter=voter, reason=str(exc))
            return  # one change at a time

    async def _reap_stale_containers(self) -> None:
        removed = await self.executor.reap_stale_containers()
        if removed:
            log.info("stale_containers_removed", count=removed)

    async def _clock_loop(self) -> None:
        """The daemon's one periodic wakeup: Raft and gossip ticks (both count 100 ms ticks),
        maintenance every second, a resource sample every two. Each wakeup of the loop costs
        CPU an idle small board should not spend, so nothing else runs on a timer."""
        raft, gossip, resources = self.committer.raft, self.gossip, self._resources()
        per_maintenance = round(MAINTENANCE_INTERVAL_S / TICK_S)
        per_sample = round(RESOURCE_SAMPLE_INTERVAL_S / TICK_S)
        per_failure_check = round(FAILURE_CHECK_INTERVAL_S / TICK_S)
        per_ask = max(round(ASK_INTERVAL_S / TICK_S), 1)
        lease = self.lease
        ticks = 0
        while True:
            await asyncio.sleep(TICK_S)
            ticks += 1
            raft.tick()
            gossip.tick()
            lease.tick(ask=ticks % per_ask == 0)
            self._rerun_leased_attempts()
            if ticks % per_failure_check == 0:
                self._requeue_from_silent_nodes()
            if ticks % per_maintenance == 0:
                try:
                    self._maintenance()
                except Exception:  # the clock must keep ticking: log, and try again next second
                    log.exception("maintenance_failed")
            if ticks % per_sample == 0:
                resources.sample()

    # -- what the control server asks for -------------------------------------

    async def submit(self, specs: tuple[JobSpec, ...]) -> list[str]:
        """Durably record new jobs (idempotent by id); return their ids."""
        batch_ids = {s.id for s in specs}

        def parent(ref: str) -> str:  # an id, a unique prefix or a name, as everywhere else
            return ref if ref in batch_ids else self.table.resolve(ref).id

        resolved = []
        for spec in specs:
            if spec.after or spec.after_any:
                spec = replace(
                    spec, after=tuple(parent(r) for r in spec.after), after_any=tuple(parent(r) for r in spec.after_any)
                )
            validate_spec(spec)
            existing = self.table.get(spec.id)
            if existing is not None and existing.spec != spec:
                raise JobAlreadyExistsError(f"job id {spec.id} is taken by a different job")
            resolved.append(spec)
        specs = tuple(resolved)
        await self.committer.propose([SubmitJobs(specs, time.time(), self.node_id)])
        return [s.id for s in specs]

    async def cancel(self, job_ids: list[str]) -> None:
        open_ids = tuple(j for j in job_ids if (job := self.table.get(j)) and not job.state.is_terminal)
        if open_ids:
            await self.committer.propose([CancelJobs(open_ids, "cancelled by user", time.time())])

    def quorum(self) -> dict[str, Any]:
        """Voters, the missing ones, and whether a quorum holds (what `swarm status` shows)."""
        raft = self.committer.raft.status()
        alive = {v for v in raft.voters if self._is_alive(v)}
        return quorum_view(raft, alive)

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
        voters = sorted(set(quorum["voters"]) - set(quorum["missing"]) | {self.node_id})
        self.committer.raft.force_config(voters)
        status = self.committer.raft.status()
        log.warning("configuration_forced", voters=voters, epoch=status.epoch)
        return voters

    def _serve_log_fetch(self, sender: str, msg: LogFetch) -> None:
        """Another node streams an attempt that ran here: send the next chunks of its log."""
        try:
            path = self.executor.log_path(msg.job_id, msg.attempt)
            chunks, offset = read_chunks(path, msg.offset, limit_bytes=min(msg.max_bytes, 1024 * 1024))
            reply = LogData(msg.request_id, tuple((s, d) for s, d in chunks), offset)
        except (FileNotFoundError, ExecutorError, ValueError):
            reply = LogData(msg.request_id, (), msg.offset, found=False)
        self.link.send_to(sender, reply)

    def job_view(self, job: Job, *, with_output: bool = False) -> dict[str, Any]:
        view = job.view(with_output=with_output)
        if job.state is JobState.PENDING:
            waiting = self.rounds.waiting_reason(job.id)
            if waiting:
                view["reason"], view["message"] = waiting
        return view

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
            )
            for n in node_ids
        ]
        nodes.sort(key=lambda v: (v["role"] != "leader", v["name"], v["id"]))
        return {
            "cluster_id": self.plan.key.cluster_id if self.plan else "",
            "node_id": identity.node_id,
            "leader": raft.leader_id,
            "term": raft.term,
            "quorum": self.quorum(),
            "nodes": nodes,
            "jobs": self.table.counts(),
            "state_dir": str(self.paths.root),
            "pid": os.getpid(),
            "uptime_s": time.monotonic() - self.started_monotonic,
        }


def _docker_images() -> list[str]:
    """Images the local Docker engine holds (empty without an engine); runs in a thread."""
    from swarmcompute.membership.meta import MAX_IMAGES
    from swarmcompute.node.runners import engine_socket_answers

    if not engine_socket_answers():
        return []  # no engine: never load the Docker SDK
    from swarmcompute.executor.docker_engine import docker_available, local_images

    if not docker_available():
        return []
    return local_images(limit=MAX_IMAGES)


def _advertise_host(bind: str) -> str:
    """The address peers should dial: the bind address, or this machine's LAN address for 0.0.0.0."""
    if bind not in ("0.0.0.0", "", "*"):
        return bind
    from swarmcompute.discovery.addresses import advertised_addresses

    addresses = advertised_addresses(None)
    return addresses[0] if addresses else "127.0.0.1"
