"""The daemon's link to its peers: transport, address book, message routing, joining.

Who is where: a node is known by its id, never its address. The address book
maps ids to the peer address they were last seen at (from join requests,
join replies and gossip) and is saved in the state directory, so a
restarted node can find its cluster again without mDNS. Only addresses that gossip
confirmed (a node that answered through the authenticated transport) reach the file,
at most ``MAX_BOOK_ENTRIES``, each dropped ``BOOK_AGE_OUT_S`` after it was last confirmed;
what others merely claimed stays in memory (bounded too). mDNS ads, which anyone on the
LAN can send with the public cluster id, are only *candidates* to ask to join, never written
down: at most ``MAX_CANDIDATES``, ``JOIN_FANOUT`` new ones asked per join step (in the order
they came), each asked again the step after, when one that still has no connection is dropped
(a real node's is up within milliseconds of the first ask). 2,000 fake ads then
delay a joining node by at most 2000 / ``JOIN_FANOUT`` steps, about 31 s, and cost a member
nothing: members never ask candidates.

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
import collections
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from swarmcompute import codec
from swarmcompute.errors import MembershipChangeError, NotLeaderError
from swarmcompute.files.messages import PEER_MESSAGES as FILE_MESSAGES
from swarmcompute.membership.members import ALIVE
from swarmcompute.membership.messages import Ack, Gossip, Ping, PingReq, PushPull, TwinCheck
from swarmcompute.node.cluster_messages import (
    ClusterKeyNotice,
    DetailsData,
    DetailsFetch,
    ForwardCommands,
    ForwardReply,
    JoinReply,
    JoinRequest,
    LogData,
    LogFetch,
    VersionRefused,
)
from swarmcompute.node.committer import ReplicatedJobLog
from swarmcompute.node.gossip_host import GossipHost
from swarmcompute.raft.messages import (
    AppendRequest,
    AppendResponse,
    InstallSnapshot,
    NotMember,
    SnapshotAck,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from swarmcompute.rules.lease import LeaseAsk, LeaseGrant
from swarmcompute.transport.keys import ClusterKey
from swarmcompute.transport.peer import PeerTransport
from swarmcompute.transport.ratelimit import LogLimiter
from swarmcompute.versions import CURRENT, Versions

log = structlog.get_logger(__name__)

JOIN_RETRY_S = 1.0
MAX_BOOK_ENTRIES = 256
"""Addresses kept in peers.json (and confirmed ones in memory): the most recently confirmed."""
MAX_UNCONFIRMED = 256
"""Addresses held in memory that gossip has not confirmed (join replies, join requests)."""
BOOK_AGE_OUT_S = 7 * 86400.0
"""A node not confirmed for this long is dropped from peers.json (it left, or moved for good)."""
_BOOK_TOUCH_S = 3600.0
JOIN_REPLY_ADDRESSES = 64
"""Addresses a join reply carries at most (the members' first)."""
MAX_CANDIDATES = 4096
"""mDNS ads kept as addresses to ask to join (as many as the browser keeps; later ones wait)."""
JOIN_FANOUT = 64
"""mDNS candidates asked per join step (explicit --peer seeds are always asked)."""
LEAVE_RETRY_S = 0.2
NAME_TAKEN = "name taken:"
"""How a ``JoinReply`` that refuses a node for its name begins (the joining node stops on it)."""
UNREACHABLE_RESET_S = 1.0
"""Sends to an address failing this long, then a message from its node: reconnect at once (and at
most once per this interval per address)."""
RAFT_TYPES = (
    AppendRequest,
    AppendResponse,
    VoteRequest,
    VoteResponse,
    InstallSnapshot,
    SnapshotAck,
    TimeoutNow,
    NotMember,
)
GOSSIP_TYPES = (Ping, Ack, PingReq, Gossip, PushPull, TwinCheck)
ANSWER_TYPES = (AppendResponse, VoteResponse, SnapshotAck, LeaseGrant)
"""Answers to what this node sent: each proves the way there and back, as a gossip ack does, so
gossip spares the sender's probe (``Membership.heard``). A request proves only the way here: a
leader cut off one way (nothing reaches it, it reaches everyone) must still be suspected."""
HELD_TYPES = (*RAFT_TYPES, ForwardCommands, ForwardReply, LeaseAsk, LeaseGrant)
"""What a starting node neither reads nor sends until gossip has settled (``Membership.settled``:
a peer's full state had, and any other place it was said to run checked): a process whose state
directory is a copy of a running node's is found then, and stops, before it voted, acknowledged an
entry or took a lease as that node, or drew the others' Raft traffic for it to its address. Raft
takes the hold as lost messages; it costs a restarted node a round trip with a peer (0.9 s on a
LAN if it comes back on a new address: its old one is checked; 2 s at most with no peer answering).
In the whole-cluster simulator the hold costs 4-9 % more attempts re-run after lease losses (a
restarted voter votes that much later; seeds 0-449: 1,840 against 1,740)."""
JOIN_ALIVE_TARGETS = 3
"""A node that is not (or no longer) in the configuration also asks this many members gossip
says are alive, besides its seeds: one of them leads or knows who does."""


@codec.message("cluster.leave")
@dataclass(frozen=True, slots=True)
class LeaveRequest:
    """A member about to stop asks the leader to remove it from the Raft configuration."""

    node_id: str


@codec.message("cluster.stopping")
@dataclass(frozen=True, slots=True)
class StoppingNotice:
    """A member about to stop its attempts (`swarm leave`, which commits their ends before it
    leaves) tells the leader to give it no more: each attempt it stopped was placed on it again
    and refused at once ("the daemon is shutting down"), 17 times over in 0.1 s."""

    node_id: str


@codec.message("cluster.leave_reply")
@dataclass(frozen=True, slots=True)
class LeaveReply:
    done: bool
    """The leader's committed configuration leaves the node out."""
    leader_id: str | None
    reason: str = ""


class AddressBook:
    """node id -> peer address; the confirmed ones persisted (small JSON, atomic replace).

    File format: ``{node_id: {"address": "host:port", "seen": unix time}}``. An older file
    (``{node_id: "host:port"}``) is read as unconfirmed: used to find the cluster after the
    upgrade, and gone from the file at the next save unless gossip confirms it.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_entries: int = MAX_BOOK_ENTRIES,
        max_unconfirmed: int = MAX_UNCONFIRMED,
        age_out_s: float = BOOK_AGE_OUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._path = path
        self._max = max_entries
        self._max_unconfirmed = max_unconfirmed
        self._age_out_s = age_out_s
        self._clock = clock
        self._confirmed: dict[str, tuple[str, float]] = {}  # id -> (address, last confirmed)
        self._claimed: collections.OrderedDict[str, str] = collections.OrderedDict()  # oldest first
        self._dirty = False
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            raw = {}
        now = clock()
        for node_id, entry in raw.items() if isinstance(raw, dict) else ():
            if isinstance(entry, dict) and isinstance(entry.get("address"), str):
                seen = entry.get("seen")
                if isinstance(seen, (int, float)) and now - seen < age_out_s:
                    self._confirmed[str(node_id)[:255]] = (entry["address"][:300], float(seen))
                else:
                    self._dirty = True  # aged out: the next save drops it
            elif isinstance(entry, str):
                self._claim(str(node_id)[:255], entry[:300])
                self._dirty = True
        self._trim()

    def get(self, node_id: str) -> str | None:
        confirmed = self._confirmed.get(node_id)
        return confirmed[0] if confirmed is not None else self._claimed.get(node_id)

    def set(self, node_id: str, address: str, *, verified: bool = False) -> None:
        """Note ``address`` for ``node_id``; ``verified``: gossip confirmed it (then it is kept
        in the file), else it is only a claim (memory, bounded)."""
        if not verified:
            confirmed = self._confirmed.get(node_id)
            if confirmed is None or confirmed[0] != address:
                self._claim(node_id, address)
            return
        now = self._clock()
        old = self._confirmed.get(node_id)
        self._claimed.pop(node_id, None)
        if old is None or old[0] != address or now - old[1] > _BOOK_TOUCH_S:
            self._confirmed[node_id] = (address, now)
            self._dirty = True
            self._trim()

    def drop(self, node_id: str) -> str | None:
        """Forget where ``node_id`` is (`swarm forget`); the address it had, if any."""
        confirmed = self._confirmed.pop(node_id, None)
        claimed = self._claimed.pop(node_id, None)
        if confirmed is not None:
            self._dirty = True
        return confirmed[0] if confirmed is not None else claimed

    def items(self, *, confirmed_only: bool = False) -> dict[str, str]:
        """Every address known (confirmed ones win), or only the confirmed ones."""
        found = {} if confirmed_only else dict(self._claimed)
        found.update({node_id: address for node_id, (address, _) in self._confirmed.items()})
        return found

    def save(self) -> None:
        """Write the confirmed addresses; a failed write (a full disk) is retried next time."""
        if not self._dirty:
            return
        now = self._clock()
        kept = {n: e for n, e in self._confirmed.items() if now - e[1] < self._age_out_s}
        self._confirmed = kept
        body = {n: {"address": a, "seen": round(seen, 3)} for n, (a, seen) in kept.items()}
        tmp = self._path.with_name(self._path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(body, indent=1, sort_keys=True))
            os.replace(tmp, self._path)
        except OSError as exc:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            log.warning("peers_file_not_saved", path=str(self._path), error=exc.strerror or str(exc))
            return
        self._dirty = False

    def _claim(self, node_id: str, address: str) -> None:
        self._claimed.pop(node_id, None)
        self._claimed[node_id] = address
        while len(self._claimed) > self._max_unconfirmed:
            self._claimed.popitem(last=False)

    def _trim(self) -> None:
        if len(self._confirmed) > self._max:
            newest = sorted(self._confirmed.items(), key=lambda kv: kv[1][1], reverse=True)[: self._max]
            self._confirmed = dict(newest)
            self._dirty = True


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
        versions: Versions = CURRENT,
    ) -> None:
        from swarmcompute.node.version_gate import VersionGate

        self.node_id = node_id
        self.name = name
        self.key = key
        self.book = AddressBook(book_path)
        self.transport = PeerTransport(
            key, node_id, self._on_message, bind=bind, port=port, protocol_major=versions.protocol.major
        )
        self.transport.describe_sender = self._address_for_log
        self.transport.on_flushed = self._note_sent
        self.transport.on_drained = self._drained
        self.versions = VersionGate(
            versions,
            name=lambda: self.name,
            address=lambda: self.address,
            is_member=self._in_configuration,
            send=self.send_to_address,
            address_of=self._address_of,
        )
        """The join handshake's version check (``node.version_gate``)."""
        self.transport.on_foreign_version = self.versions.foreign
        self.transport.padding = versions.padding()
        self._advertise_host = advertise_host
        self.seeds: list[str] = []
        """Addresses asked to join every step: --peer and the address book at start."""
        self.candidates: collections.OrderedDict[str, int] = collections.OrderedDict()
        """mDNS ads of this cluster (anyone can send one) -> how often asked; ``JOIN_FANOUT`` a step."""
        self.job_log: ReplicatedJobLog | None = None
        self.gossip: GossipHost | None = None
        self.on_join_handled: Callable[[str], None] | None = None
        self.on_join_refused: Callable[[str], None] | None = None
        """A member refused this node for good (its name is taken): the reason, for its user."""
        self.on_log_fetch: Callable[[str, LogFetch], None] | None = None
        self.on_details_fetch: Callable[[str, DetailsFetch], None] | None = None
        self.on_files: Callable[[str, Any], None] | None = None
        """Messages of file shipping (``files.messages.PEER_MESSAGES``), for ``files.host.FilesHost``."""
        self.on_lease: Callable[[str, LeaseAsk | LeaseGrant], None] | None = None
        self.on_stopping: Callable[[str], None] | None = None
        self.on_key_notice: Callable[[str, ClusterKeyNotice], None] | None = None
        """A member says the cluster's key now (``node.key_rotation``)."""
        """The leader hears that a member stops its attempts (``StoppingNotice``)."""
        self.drained_at = float("-inf")
        """When a burst from peers was last read (``time.monotonic``)."""
        self.after_drained: Callable[[], object] | None = None
        self._waiters: dict[str, asyncio.Future[Any]] = {}
        """Request id -> the future its answer (``LogData``, ``DetailsData``) completes."""
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
        if self._held(msg):
            return True
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
        self._note_sent(address, sent)
        return sent

    def post_to(self, node_id: str, msg: object, *, lazy: bool = False) -> bool:
        """As ``send_to``, but at the end of this loop turn, in one frame with whatever else goes
        to that node then (``PeerTransport.post``; ``lazy``: with the next such frame). Raft,
        gossip and lease traffic go this way. False only when no address is known."""
        if self._held(msg):
            return True
        address = self._address_of(node_id)
        if address is None:
            return False
        self.transport.post(address, msg, lazy=lazy)
        return True

    def _held(self, msg: object) -> bool:
        """Not settled yet (``HELD_TYPES``): what it would send or read is dropped, as lost on the way."""
        return self.gossip is not None and not self.gossip.core.settled and isinstance(msg, HELD_TYPES)

    def post_lazily(self, node_id: str, msg: object) -> bool:
        return self.post_to(node_id, msg, lazy=True)

    def post_to_address(self, address: str, msg: object, *, lazy: bool = False) -> bool:
        self.transport.post(address, msg, lazy=lazy)
        return True

    def post_lazily_to_address(self, address: str, msg: object) -> bool:
        return self.post_to_address(address, msg, lazy=True)

    def _drained(self) -> None:
        """Every waiting frame was read: Raft's answers to them are worked out now, and leave
        with the transport's flush right after (one loop turn for the whole exchange); then
        ``after_drained`` (the daemon's clock runs the ticks that are due)."""
        self.drained_at = time.monotonic()
        if self.job_log is not None:
            self.job_log.raft.process_pending()
        if self.after_drained is not None:
            self.after_drained()

    def _note_sent(self, address: str, sent: bool) -> None:
        if sent:
            self._failing_since.pop(address, None)
        else:
            self._failing_since.setdefault(address, time.monotonic())

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
        self.book.set(node_id, address, verified=verified)
        if verified and old is not None and old != address:
            self.transport.forget(old)
            self._failing_since.pop(old, None)
            log.info("peer_address_changed", peer=node_id, old=old, new=address)

    @property
    def advertise_host(self) -> str:
        return self._advertise_host

    def forget_node(self, node_id: str) -> None:
        """``node_id`` is gone for good (`swarm forget`): out of the address book (and
        peers.json, now), its connection closed, never asked to join again."""
        address = self.book.drop(node_id)
        if address is not None:
            self.transport.forget(address)
            self._failing_since.pop(address, None)
            if address in self.seeds:
                self.seeds.remove(address)
        self.book.save()

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

    # -- asking a peer: output of attempts that ran elsewhere, finished jobs' details ----

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
        data: LogData | None = await self._ask(node_id, request, timeout_s + wait_s, min(0.25, timeout_s))
        return data

    async def fetch_details(self, node_id: str, ids: Sequence[str], timeout_s: float = 2.0) -> DetailsData | None:
        """Finished jobs' details from a node's disk (``DetailsFetch``); None when it does not
        answer in time."""
        data: DetailsData | None = await self._ask(node_id, DetailsFetch(os.urandom(8).hex(), tuple(ids)), timeout_s)
        return data

    async def _ask(self, node_id: str, request: LogFetch | DetailsFetch, timeout_s: float, resend: float = 0.25) -> Any:
        """Send ``request`` to ``node_id`` and return its answer, or None after ``timeout_s``; sent
        again after ``resend`` seconds, then twice as long each time up to 2 s (the first send to a
        new peer can be dropped while it connects; asking again is harmless)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._waiters[request.request_id] = future
        try:
            deadline = loop.time() + timeout_s
            while True:
                self.send_to(node_id, request)  # a resent long poll is not parked twice
                try:
                    return await asyncio.wait_for(asyncio.shield(future), min(resend, deadline - loop.time()))
                except TimeoutError:
                    if loop.time() >= deadline:
                        return None
                    resend = min(resend * 2, 2.0)
        finally:
            self._waiters.pop(request.request_id, None)
            if not future.done():
                future.cancel()

    # -- joining -----------------------------------------------------------------

    def add_seeds(self, addresses: Iterable[str]) -> None:
        for address in addresses:
            if address != self.address and address not in self.seeds:
                self.seeds.append(address)
                if self.gossip is not None:
                    self.gossip.join([address])

    def candidate(self, address: str) -> None:
        """An mDNS ad of this cluster says a node is at ``address``: a place to ask to join,
        nothing more (never the address book: anyone on the LAN can send such an ad)."""
        if address == self.address or address in self.seeds or address in self.candidates:
            return
        if len(self.candidates) >= MAX_CANDIDATES:
            return  # full of unanswered ads: this one waits for the browser's next report
        self.candidates[address] = 0

    def _next_candidates(self) -> list[str]:
        """Who to ask this step: those first asked last step (asked again while their connection
        is fresh: the verdict), up to ``JOIN_FANOUT`` never asked (in the order they came), and,
        if room is left, those that answered before, least recently asked first."""
        chosen = [a for a, asked in self.candidates.items() if asked == 1]
        fresh = [a for a, asked in self.candidates.items() if not asked][:JOIN_FANOUT]
        chosen += fresh
        if len(fresh) < JOIN_FANOUT:
            chosen += [a for a, asked in self.candidates.items() if asked > 1][: JOIN_FANOUT - len(fresh)]
        for address in chosen:
            self.candidates[address] += 1
            self.candidates.move_to_end(address)
        return chosen

    def _ask_candidates(self, request: JoinRequest) -> None:
        """Ask the next candidates to add us; one whose connection is still not up when asked
        again is dropped, and its connection closed (an ad pointing nowhere)."""
        for address in self._next_candidates():
            if not self.transport.send(address, request) and self.candidates.get(address, 0) >= 2:
                del self.candidates[address]
                self.transport.forget(address)

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
            mine = self.versions.versions
            request = JoinRequest(self.node_id, self.name, self.address, str(mine.protocol), mine.package)
            self._ask_candidates(request)
            targets = list(self.seeds)
            leader = self.job_log.raft.leader_id if self.job_log is not None else None
            if leader is not None and self.book.get(leader):
                targets.insert(0, self.book.get(leader))  # type: ignore[arg-type]
            # Members gossip reaches, too: a node restarted after `swarm recover` left it out may
            # have no seed that is still up (its peers.json keeps only confirmed addresses, and it
            # may have died before confirming any), yet gossip finds the survivors at once.
            members = self.gossip.members() if self.gossip is not None else ()
            alive = [m.address for m in members if m.state is ALIVE and m.node_id != self.node_id]
            targets += [a for a in alive[:JOIN_ALIVE_TARGETS] if a not in targets]
            for address in targets:
                self.transport.send(address, request)
        self.book.save()

    def name_taken(self, name: str, node_id: str) -> str:
        """Who else answers to ``name`` now (a live node with another id), as ``id at address``; ""."""
        if name == self.name and node_id != self.node_id:
            return f"{self.node_id} at {self.address}"
        for member in self.gossip.members() if self.gossip is not None else ():
            if member.node_id != node_id and member.state is ALIVE and member.meta and member.meta.name == name:
                return f"{member.node_id} at {member.address}"
        return ""

    def _on_join(self, sender: str, req: JoinRequest) -> None:
        if not self.versions.admits(req):
            return
        taken = self.name_taken(req.name, req.node_id)
        if taken:  # two live nodes of one name: every table a person reads would be ambiguous
            reason = f"{NAME_TAKEN} {req.name!r} by node {taken}: start this node with --name ANOTHER"
            self.transport.send(req.address, JoinReply(False, None, {}, reason))
            return
        self.learn(req.node_id, req.address)
        if self.gossip is not None:
            self.gossip.join([req.address])
        job_log = self.job_log
        if job_log is None:
            return
        raft = job_log.raft
        addresses = {**self._known_addresses(), self.node_id: self.address}
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

    def announce_stopping(self) -> None:
        """Tell the leader this node stops its attempts and takes no more, before their ends are
        proposed (``send_to`` goes now, ahead of them on the same connection)."""
        leader = self.job_log.raft.leader_id if self.job_log is not None else None
        if leader is not None and leader != self.node_id:
            self.send_to(leader, StoppingNotice(self.node_id))

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

    def _known_addresses(self) -> dict[str, str]:
        """What a join reply tells the joiner: members and addresses gossip confirmed, bounded."""
        members = set(self.job_log.raft.node.membership.members) if self.job_log is not None else set()
        confirmed = self.book.items(confirmed_only=True)
        chosen = {n: a for n, a in confirmed.items() if n in members}
        for node_id, address in confirmed.items():
            if len(chosen) >= JOIN_REPLY_ADDRESSES:
                break
            chosen.setdefault(node_id, address)
        return dict(list(chosen.items())[:JOIN_REPLY_ADDRESSES])

    def _on_join_reply(self, sender: str, reply: JoinReply) -> None:
        for node_id, address in reply.addresses.items():
            self.learn(node_id, address)
        if not reply.accepted and reply.reason.startswith(NAME_TAKEN) and self.on_join_refused is not None:
            self.on_join_refused(reply.reason)
        elif not reply.accepted and reply.reason and reply.reason != "not the leader":
            log.info("join_deferred", reason=reply.reason)

    # -- receiving ---------------------------------------------------------------

    def _on_message(self, sender: str, msg: Any) -> None:
        job_log, gossip = self.job_log, self.gossip
        self._heard_from(sender)
        if isinstance(msg, GOSSIP_TYPES):
            if gossip is not None:
                gossip.step(sender, msg)
            return
        if self._held(msg):
            return  # a copy of a running node must not vote or run its jobs: see HELD_TYPES
        if gossip is not None and isinstance(msg, ANSWER_TYPES):
            gossip.core.heard(sender)  # as good as an ack: spares its failure-detector probe
        if isinstance(msg, RAFT_TYPES):
            if job_log is not None and msg.src == sender:
                job_log.raft.step(msg)
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
        elif isinstance(msg, VersionRefused):
            self.versions.refused(sender, msg)
        elif isinstance(msg, LeaveRequest):
            if msg.node_id == sender:
                self._on_leave(sender, msg)
        elif isinstance(msg, StoppingNotice):
            if msg.node_id == sender and self.on_stopping is not None:
                self.on_stopping(sender)
        elif isinstance(msg, LeaveReply):
            self._leave_reply = msg
            self._leave_wakeup.set()
        elif isinstance(msg, (LeaseAsk, LeaseGrant)):
            if self.on_lease is not None:
                self.on_lease(sender, msg)
        elif isinstance(msg, LogFetch):
            if self.on_log_fetch is not None:
                self.on_log_fetch(sender, msg)
        elif isinstance(msg, (LogData, DetailsData)):
            waiter = self._waiters.get(msg.request_id)
            if waiter is not None and not waiter.done():
                waiter.set_result(msg)
        elif isinstance(msg, DetailsFetch):
            if self.on_details_fetch is not None:
                self.on_details_fetch(sender, msg)
        elif isinstance(msg, ClusterKeyNotice):
            if self.on_key_notice is not None:
                self.on_key_notice(sender, msg)
        elif isinstance(msg, FILE_MESSAGES):
            if self.on_files is not None:
                self.on_files(sender, msg)
        else:  # a key holder can send these as fast as it likes: bounded, with where it came from
            self._limiter.warning(
                log,
                "peer_message_unexpected",
                "unexpected",
                sender=sender[:64],
                address=self._address_for_log(sender),
                type=type(msg).__name__,
            )

    def _in_configuration(self) -> bool:
        """This node is in the Raft configuration its log holds, and not left out by the cluster."""
        if self.job_log is None:
            return False
        node = self.job_log.raft.node
        return self.node_id in node.membership.members and not node.exclusion

    def _address_for_log(self, node_id: str) -> str:
        """Where ``node_id`` was last seen (gossip, else the address book), for log lines."""
        return self._address_of(node_id) or "unknown"
