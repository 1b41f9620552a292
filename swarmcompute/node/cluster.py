"""The daemon's link to its peers: transport, address book, message routing, joining.

Who is where: a node is known by its id, never its address. The address book
maps ids to the peer address they were last seen at (from join requests,
join replies, gossip and mDNS) and is saved in the state directory, so a
restarted node can find its cluster again without mDNS.

Routing: Raft messages go to ``ReplicatedJobLog.raft``; gossip to the gossip
shell; join and forwarding messages are handled here or by the job log.

Joining: a node with the cluster key but no place in the Raft configuration
sends ``JoinRequest`` to its seeds (``--peer`` addresses and mDNS ads) every
``JOIN_RETRY_S`` until the leader's log lists it. A non-leader answers with
the leader's id and the addresses it knows, so the next try goes to the leader.
A node whose own log still names it but that the cluster removed, or whose
configuration `swarm recover` replaced (Raft tells it: ``RaftNode.exclusion``),
joins the same way and comes back as a learner.

Leaving: ``leave_configuration`` takes this node out of the Raft configuration
before its daemon stops, so the voters left can still form a majority (a
2-node cluster becomes a healthy 1-node one). A leader removes itself through
the log (it hands over once that commits); any other member asks the leader
(``LeaveRequest``) until the leader's committed configuration leaves it out.

Reaching a peer that came back: zmq retries a connection to a dead peer with a
backoff of up to 5 s. When a message arrives from a node whose address our
sends have been failing to reach for a while, its connection is made afresh, so
the answer (a rejected vote, the news of a newer configuration epoch) reaches
it in milliseconds, before it could start an election on stale information.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from swarmcompute import codec
from swarmcompute.errors import MembershipChangeError, NotLeaderError
from swarmcompute.membership.messages import Ack, Gossip, Ping, PingReq, PushPull
from swarmcompute.node.cluster_messages import (
    ForwardCommands,
    ForwardReply,
    JoinReply,
    JoinRequest,
    LogData,
    LogFetch,
)
from swarmcompute.node.committer import ReplicatedJobLog
from swarmcompute.node.gossip_host import GossipHost
from swarmcompute.raft.messages import (
    AppendRequest,
    AppendResponse,
    InstallSnapshot,
    NotMember,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from swarmcompute.rules.lease import LeaseAsk, LeaseGrant
from swarmcompute.transport.keys import ClusterKey
from swarmcompute.transport.peer import PeerTransport
from swarmcompute.transport.ratelimit import LogLimiter

log = structlog.get_logger(__name__)

JOIN_RETRY_S = 1.0
LEAVE_RETRY_S = 0.2
UNREACHABLE_RESET_S = 1.0
"""Sends to an address failing this long, then a message from its node: reconnect at once (and at
most once per this interval per address)."""
RAFT_TYPES = (AppendRequest, AppendResponse, VoteRequest, VoteResponse, InstallSnapshot, TimeoutNow, NotMember)
GOSSIP_TYPES = (Ping, Ack, PingReq, Gossip, PushPull)


@codec.message("cluster.leave")
@dataclass(frozen=True, slots=True)
class LeaveRequest:
    """A member about to stop asks the leader to remove it from the Raft configuration."""

    node_id: str


@codec.message("cluster.leave_reply")
@dataclass(frozen=True, slots=True)
class LeaveReply:
    done: bool
    """The leader's committed configuration leaves the node out."""
    leader_id: str | None
    reason: str = ""


class AddressBook:
    """node id -> peer address, persisted (small JSON, atomic replace) for restarts."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._addresses: dict[str, str] = {}
        try:
            raw = json.loads(path.read_text())
            self._addresses = {str(k): str(v) for k, v in raw.items()}
        except (OSError, ValueError, AttributeError):
            pass
        self._dirty = False

    def get(self, node_id: str) -> str | None:
        return self._addresses.get(node_id)

    def set(self, node_id: str, address: str) -> None:
        if self._addresses.get(node_id) != address:
            self._addresses[node_id] = address
            self._dirty = True

    def items(self) -> dict[str, str]:
        return dict(self._addresses)

    def save(self) -> None:
        if not self._dirty:
            return
        tmp = self._path.with_name(self._path.name + ".tmp")
        tmp.write_text(json.dumps(self._addresses, indent=1, sort_keys=True))
        os.replace(tmp, self._path)
        self._dirty = False


class ClusterLink:
    def __init__(
        self,
        node_id: str,
        name: str,
        key: ClusterKey,
        *,
        bind: str,
        port: int,
        advertise_host: str,
        book_path: Path,
    ) -> None:
        self.node_id = node_id
        self.name = name
        self.key = key
        self.book = AddressBook(book_path)
        self.transport = PeerTransport(key, node_id, self._on_message, bind=bind, port=port)
        self._advertise_host = advertise_host
        self.seeds: list[str] = []
        self.job_log: ReplicatedJobLog | None = None
        self.gossip: GossipHost | None = None
        self.on_join_handled: Callable[[str], None] | None = None
        self.on_log_fetch: Callable[[str, LogFetch], None] | None = None
        self.on_lease: Callable[[str, LeaseAsk | LeaseGrant], None] | None = None
        self._log_waiters: dict[str, asyncio.Future[LogData]] = {}
        self._failing_since: dict[str, float] = {}
        self._reset_at: dict[str, float] = {}
        self._leave_reply: LeaveReply | None = None
        self._leave_wakeup = asyncio.Event()
        self._exclusion_logged = ""
        self._leaving = False
        self._limiter = LogLimiter()

    @property
    def address(self) -> str:
        return f"{self._advertise_host}:{self.transport.port}"

    async def start(self) -> None:
        await self.transport.start()

    async def close(self) -> None:
        self.book.save()
        await self.transport.close()

    def attach(self, job_log: ReplicatedJobLog, gossip: GossipHost) -> None:
        self.job_log = job_log
        self.gossip = gossip

    # -- sending -----------------------------------------------------------------

    def send_to(self, node_id: str, msg: object) -> bool:
        """Send to a node by id (its address from gossip, else the address book)."""
        address = None
        if self.gossip is not None:
            member = self.gossip.member(node_id)
            if member is not None:
                address = member.address
        address = address or self.book.get(node_id)
        if address is None:
            return False
        return self.send_to_address(address, msg)

    def send_to_address(self, address: str, msg: object) -> bool:
        sent = self.transport.send(address, msg)
        if sent:
            self._failing_since.pop(address, None)
        else:
            self._failing_since.setdefault(address, time.monotonic())
        return sent

    def _address_of(self, node_id: str) -> str | None:
        if self.gossip is not None:
            member = self.gossip.member(node_id)
            if member is not None:
                return member.address
        return self.book.get(node_id)

    def _heard_from(self, node_id: str) -> None:
        """A node we could not reach speaks: connect to it afresh rather than wait out zmq's backoff."""
        if not self._failing_since:
            return
        address = self._address_of(node_id)
        if address is None:
            return
        since = self._failing_since.get(address)
        now = time.monotonic()
        if (
            since is None
            or now - since < UNREACHABLE_RESET_S
            or now - self._reset_at.get(address, 0.0) < UNREACHABLE_RESET_S
        ):
            return
        del self._failing_since[address]
        self._reset_at[address] = now
        self.transport.forget(address)
        log.debug("peer_reconnect", peer=node_id, address=address)

    def learn(self, node_id: str, address: str, *, verified: bool = False) -> None:
        """Note where ``node_id`` is. ``verified``: said by the node itself in a message that
        passed the handshake (gossip), not by an mDNS ad or a third party: then a connection to
        the address it left is closed, so nothing keeps dialling it."""
        if node_id == self.node_id:
            return
        old = self.book.get(node_id)
        self.book.set(node_id, address)
        if verified and old is not None and old != address:
            self.transport.forget(old)
            self._failing_since.pop(old, None)
            log.info("peer_address_changed", peer=node_id, old=old, new=address)

    @property
    def advertise_host(self) -> str:
        return self._advertise_host

    def change_address(self, host: str) -> None:
        """This machine now answers at ``host`` (its address changed while the node ran): every
        outgoing connection, made from the old address, is closed, and gossip announces the new
        address to every member in a new incarnation. Peers switch when they read it from us
        (``learn(verified=True)``), never from an mDNS ad alone."""
        old = self.address
        self._advertise_host = host
        closed = self.transport.forget_all()
        self._failing_since.clear()
        self._reset_at.clear()
        if self.gossip is not None:
            self.gossip.set_address(self.address)
        log.warning("address_changed", old=old, new=self.address, connections_closed=closed)

    # -- output of attempts that ran elsewhere --------------------------------------

    async def fetch_log(
        self,
        node_id: str,
        job_id: str,
        attempt: int,
        offset: int,
        timeout_s: float = 2.0,
        *,
        wait_s: float = 0.0,
        max_bytes: int = 256 * 1024,
    ) -> LogData | None:
        """Output of an attempt from a node that holds it (the one that ran it, or a copy); None
        when it does not answer in time. ``wait_s``: a long poll (see ``LogFetch``); the answer
        may then take that long, on top of ``timeout_s``."""
        request = LogFetch(os.urandom(8).hex(), job_id, attempt, offset, max_bytes, wait_s)
        future: asyncio.Future[LogData] = asyncio.get_running_loop().create_future()
        self._log_waiters[request.request_id] = future
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_s + wait_s
            resend = min(0.25, timeout_s)
            while True:  # the first send to a new peer can be dropped while it connects
                self.send_to(node_id, request)  # a resent long poll is not parked twice
                try:
                    return await asyncio.wait_for(asyncio.shield(future), min(resend, deadline - loop.time()))
                except TimeoutError:
                    if loop.time() >= deadline:
                        return None
                    resend = min(resend * 2, 2.0)
        finally:
            self._log_waiters.pop(request.request_id, None)
            if not future.done():
                future.cancel()

    # -- joining -----------------------------------------------------------------

    def add_seeds(self, addresses: Iterable[str]) -> None:
        for address in addresses:
            if address != self.address and address not in self.seeds:
                self.seeds.append(address)
                if self.gossip is not None:
                    self.gossip.join([address])

    def join_step(self, is_member: bool) -> None:
        """Called every ``JOIN_RETRY_S``: ask seeds (then the leader) to add us until the Raft
        configuration lists us (or, when Raft says the cluster left us out although our own log
        lists us, until a leader replicates to us again); keep the address book on disk."""
        exclusion = self.job_log.raft.node.exclusion if self.job_log is not None else ""
        if exclusion != self._exclusion_logged:
            self._exclusion_logged = exclusion
            if exclusion:
                log.warning("not_in_configuration", reason=exclusion, action="asking to rejoin as a learner")
            else:
                log.info("back_in_configuration")
        if (not is_member or exclusion) and not self._leaving:
            request = JoinRequest(self.node_id, self.name, self.address)
            targets = list(self.seeds)
            leader = self.job_log.raft.leader_id if self.job_log is not None else None
            if leader is not None and self.book.get(leader):
                targets.insert(0, self.book.get(leader))  # type: ignore[arg-type]
            for address in targets:
                self.transport.send(address, request)
        self.book.save()

    def _on_join(self, sender: str, req: JoinRequest) -> None:
        self.learn(req.node_id, req.address)
        if self.gossip is not None:
            self.gossip.join([req.address])
        job_log = self.job_log
        if job_log is None:
            return
        raft = job_log.raft
        addresses = {**self.book.items(), self.node_id: self.address}
        if not raft.is_leader:
            self.send_to(req.node_id, JoinReply(False, raft.leader_id, addresses, "not the leader"))
            return
        try:
            added = raft.add_learner(req.node_id)
        except (MembershipChangeError, NotLeaderError) as exc:
            self.send_to(req.node_id, JoinReply(False, raft.leader_id, addresses, str(exc)))
            return
        if added:
            log.info("node_joining", joiner=req.node_id, name=req.name, address=req.address)
        self.send_to(req.node_id, JoinReply(True, self.node_id, addresses))
        if self.on_join_handled is not None:
            self.on_join_handled(req.node_id)

    # -- leaving -----------------------------------------------------------------

    async def leave_configuration(self, timeout_s: float) -> str:
        """Take this node out of the Raft configuration before the daemon stops; returns what
        happened, for the log. Never raises: a node that cannot leave cleanly still stops."""
        job_log = self.job_log
        if job_log is None:
            return "no job log"
        self._leaving = True  # from now on, never ask to be added back
        raft = job_log.raft
        node = raft.node
        membership = node.membership
        if self.node_id not in membership.members or node.exclusion:
            return "not a member"
        if membership.members == {self.node_id}:
            return "the only member"
        if membership.voters == {self.node_id}:
            return "the only voter: it stays in the configuration"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if raft.is_leader:
                if self.node_id in node.membership.members:
                    try:
                        raft.remove(self.node_id)  # Raft hands over to a voter once this commits
                    except (MembershipChangeError, NotLeaderError) as exc:
                        log.debug("leave_deferred", reason=str(exc))
                await raft.wait_leader_change(LEAVE_RETRY_S)
                continue
            if self.node_id not in node.membership.members and node.membership_index <= node.commit:
                return "removed"  # the old leader saw its own removal commit, then handed over
            leader = raft.leader_id or (self._leave_reply.leader_id if self._leave_reply else None)
            self._leave_reply = None
            self._leave_wakeup.clear()
            if leader is not None and leader != self.node_id:
                self.send_to(leader, LeaveRequest(self.node_id))
            try:
                await asyncio.wait_for(self._leave_wakeup.wait(), LEAVE_RETRY_S)
            except TimeoutError:
                pass
            reply = self._leave_reply
            if reply is not None and reply.done:
                return "removed"
        return "timed out: it may still be listed until a leader removes it"

    def _on_leave(self, sender: str, req: LeaveRequest) -> None:
        job_log = self.job_log
        if job_log is None:
            return
        raft = job_log.raft
        node = raft.node
        if not raft.is_leader:
            self.send_to(sender, LeaveReply(False, raft.leader_id, "not the leader"))
            return
        if req.node_id not in node.membership.members:
            committed = node.membership_index <= node.commit
            self.send_to(sender, LeaveReply(committed, self.node_id, "" if committed else "removal not committed yet"))
            return
        try:
            raft.remove(req.node_id)
        except (MembershipChangeError, NotLeaderError) as exc:
            self.send_to(sender, LeaveReply(False, self.node_id, str(exc)))
            return
        log.info("node_leaving", leaver=req.node_id)
        self.send_to(sender, LeaveReply(False, self.node_id, "removing"))

    def _on_join_reply(self, sender: str, reply: JoinReply) -> None:
        for node_id, address in reply.addresses.items():
            self.learn(node_id, address)
        if not reply.accepted and reply.reason and reply.reason != "not the leader":
            log.info("join_deferred", reason=reply.reason)

    # -- receiving ---------------------------------------------------------------

    def _on_message(self, sender: str, msg: Any) -> None:
        job_log, gossip = self.job_log, self.gossip
        self._heard_from(sender)
        if isinstance(msg, RAFT_TYPES):
            if job_log is not None and msg.src == sender:
                job_log.raft.step(msg)
        elif isinstance(msg, GOSSIP_TYPES):
            if gossip is not None:
                gossip.step(sender, msg)
        elif isinstance(msg, ForwardCommands):
            if job_log is not None:
                job_log.serve_forward(sender, msg)
        elif isinstance(msg, ForwardReply):
            if job_log is not None:
                job_log.forward_reply(msg)
        elif isinstance(msg, JoinRequest):
            if msg.node_id == sender:
                self._on_join(sender, msg)
        elif isinstance(msg, JoinReply):
            self._on_join_reply(sender, msg)
        elif isinstance(msg, LeaveRequest):
            if msg.node_id == sender:
                self._on_leave(sender, msg)
        elif isinstance(msg, LeaveReply):
            self._leave_reply = msg
            self._leave_wakeup.set()
        elif isinstance(msg, (LeaseAsk, LeaseGrant)):
            if self.on_lease is not None:
                self.on_lease(sender, msg)
        elif isinstance(msg, LogFetch):
            if self.on_log_fetch is not None:
                self.on_log_fetch(sender, msg)
        elif isinstance(msg, LogData):
            waiter = self._log_waiters.get(msg.request_id)
            if waiter is not None and not waiter.done():
                waiter.set_result(msg)
        else:  # a key holder can send these as fast as it likes: bounded, with where it came from
            self._limiter.warning(
                log,
                "peer_message_unexpected",
                "unexpected",
                sender=sender[:64],
                address=self._address_for_log(sender),
                type=type(msg).__name__,
            )

    def _address_for_log(self, node_id: str) -> str:
        """Where ``node_id`` was last seen (gossip, else the address book), for log lines."""
        return self._address_of(node_id) or "unknown"
