"""The Raft-lite core: a pure state machine, fed ticks and messages, returning a ``Ready``.

No asyncio, sockets, files, clocks or global random: time is ``tick()``, the
network is ``step(msg)`` in and ``Ready.messages`` out, the disk is
``Ready.hard_state`` / ``Ready.entries`` / ``Ready.snapshot``, and election
jitter comes from the ``random.Random`` handed in. "Lite" means small, never
unsafe. The rules it enforces:

Terms and roles
  * A message with a higher term turns the receiver into a follower of that term
    (except pre-vote traffic, and vote requests a node in its leader lease ignores);
    a message with a lower term is dropped, but a stale leader's AppendRequest and
    a stale pre-vote are answered with the current term so the sender catches up.
  * At most one vote per term, persisted (in the Ready) before the reply is sent.

Elections
  * Only voters campaign, and a server that an uncommitted configuration removes:
    until that entry commits it may be the only one whose log can win, so it
    campaigns among the new voters without counting itself (Ongaro's thesis,
    4.2.2), commits the entry, and then hands over. A follower that hears no leader for its randomized
    timeout (drawn from [T, 2T) ticks) first runs a *pre-vote* at term+1 without
    bumping its term; only a majority of pre-votes starts the real election. A node
    back from a partition therefore cannot depose a healthy leader.
  * A vote (or pre-vote) is granted only to a candidate whose log is at least as
    up to date: higher last term, or equal last term and last index >= ours.
  * Leader lease (with check-quorum): a leader, and a node that heard from a leader
    within the election timeout less one heartbeat interval, ignore vote requests
    of higher terms, unless the candidate campaigns on the leader's TimeoutNow
    (leadership transfer). One heartbeat shorter than the shortest election
    timeout, so that the first follower to time out after a leader crash is not
    ignored by peers that heard the leader a moment later than it did.
  * Check-quorum: a leader that has not heard from a majority of voters within an
    election timeout steps down.
  * A new leader appends a NOOP entry of its term: it can only commit by
    counting replicas of an entry of its own term.

Replication
  * AppendRequest carries (prev_index, prev_term); a follower accepts only when its
    log holds that pair, deletes a conflicting suffix (never a committed entry) and
    appends. A rejection carries the conflicting term and its first index so the
    leader skips a whole term at once (fast back-up).
  * The leader commits index N once a majority of the *current* voters have it
    durably (the leader counts its own log only after ``advance``) and the entry at
    N is of the current term. Followers commit up to min(leader commit, last entry
    the request proved to match).

Membership
  * The configuration is the last CONFIG entry in the log (or the snapshot's), in
    force as soon as it is appended. The leader changes one server at a time and
    only when the previous change is committed and it has committed an entry of its
    own term. Learners receive the log but do not vote or count for quorum;
    voters are capped at ``max_voters``; with ``auto_promote`` the leader promotes a
    caught-up, live learner while below the cap.
  * A leader removed by a committed configuration steps down, after telling its
    most up-to-date voter to campaign (TimeoutNow).
  * A leader tells the nodes its log shows were once members and are not any more
    (``NotMember``, every heartbeat), and any node whose committed configuration
    leaves out the sender of a vote request whose log is no newer than its own
    answers it the same way (a node ignores one from a node with an older log than
    its own: that configuration may predate its joining): a removed
    node that comes back with its old state stops campaigning (see Elections) and
    its daemon asks to rejoin as a learner. It is told again until it is a member
    again; an AppendRequest or InstallSnapshot from a leader clears the mark.
  * ``force_config`` is the operator's escape hatch for a lost quorum: UNSAFE BY
    DESIGN, see its docstring.

Configuration epochs (`swarm recover`)
  * A term is ``epoch * EPOCH_STRIDE + n`` (``messages.epoch_of``). ``force_config``
    moves its node to the first term of the next epoch and appends the forced
    CONFIG entry there, before campaigning; so in every log the first entry of an
    epoch above 0 is that epoch's forced configuration, and the configuration in
    force is of the epoch of the log's last entry.
  * The epoch rule: a node campaigns only while its current term and its log's
    last entry are of the same epoch. A node that hears any term of a newer epoch
    (a rejected pre-vote, a NotMember, an AppendRequest) adopts it like any higher
    term and, its log being of an older epoch, cannot campaign again until a
    leader of the new epoch has replicated that epoch's configuration to it. So
    once the two sides of a recover can talk, the old configuration elects no
    leader: its voters learn the new epoch from the first message of the new side
    and the leader of the new side tells the replaced voters every heartbeat.
    A leader of the old epoch that is still in office steps down on the first
    message of the new side (a higher term) and cannot be elected again.
  * Because epochs order terms, the usual rules order them too: a vote goes to a
    candidate of a newer epoch whatever the length of the voter's log of an older
    one, an old-epoch leader's messages are stale terms, and an (index, term) pair
    never names entries of two epochs. What two sides disconnected from each other
    do is not prevented: a recover while the "missing" voters are alive and form
    a majority elsewhere gives two leaders until they meet (that is what makes
    `swarm recover` the operator's explicit, unsafe act).
  * A follower that a leader of a newer epoch asks to replace entries it had
    committed in the older epoch (they were on the voters `swarm recover` gave
    up) drops its whole log and state machine (an empty snapshot at index 0, a
    ``history_replaced`` event) and receives the new epoch's log from the start.

Leadership transfer and snapshots
  * ``transfer_leadership(to)`` stops new proposals, brings ``to`` up to date and
    sends it TimeoutNow; it is abandoned after an election timeout.
  * ``compact(index, data)`` folds applied entries into a snapshot; a follower
    whose next entry is compacted away receives InstallSnapshot, in chunks of
    ``snapshot_chunk_bytes``: one in flight, the next when the follower acknowledges
    (``SnapshotAck``, which says how much it holds, so a lost or duplicated chunk
    costs a resend, never a gap); the follower installs it once the last arrived.

A proposal to a non-leader raises ``NotLeaderError(leader_hint)``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from swarmcompute.errors import InvariantViolation, NotLeaderError
from swarmcompute.raft.config import Membership, RaftConfig
from swarmcompute.raft.durable import PersistedState
from swarmcompute.raft.log import RaftLog
from swarmcompute.raft.membership_ops import MembershipOps
from swarmcompute.raft.messages import (
    AppendRequest,
    AppendResponse,
    Entry,
    EntryKind,
    HardState,
    InstallSnapshot,
    Message,
    NotMember,
    Snapshot,
    SnapshotAck,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
    decode_config,
    encode_config,
    epoch_of,
)
from swarmcompute.raft.ready import PeerStatus, RaftEvent, Ready, Role, Status
from swarmcompute.raft.replication import IncomingSnapshot, Progress, Replication


class RaftNode(Replication, MembershipOps):
    """One Raft participant. See the module docstring for the rules.

    Replication (``replication.py``) and membership, transfer and compaction
    (``membership_ops.py``) live in mixins to keep each module readable; they
    share this object's state.
    """

    def __init__(
        self,
        node_id: str,
        config: RaftConfig,
        rng: random.Random,
        state: PersistedState | None = None,
        *,
        applied: int = 0,
    ) -> None:
        """Start from persisted state (a restart) or from nothing (a node waiting to be added).

        ``applied``: the state machine already holds the entries up to there (a shell that lost
        its in-memory node to a failed write starts it again from what it persisted, without
        applying those entries twice); it must not exceed the persisted log.
        """
        state = state or PersistedState()
        self.id = node_id
        self.cfg = config
        self._rng = rng
        snap = state.snapshot
        self.log = RaftLog(snap.index, snap.term, state.entries) if snap else RaftLog(0, 0, state.entries)
        self.term = state.hard_state.term
        self.vote = state.hard_state.vote
        self.applied = max(snap.index if snap else 0, min(applied, self.log.last_index))
        self.commit = max(state.hard_state.commit, self.applied)
        self.snapshot = snap
        self.role = Role.FOLLOWER
        self.leader_id: str | None = None
        self.ticks = 0
        self._persisted = state.hard_state
        self._stable_index = self.log.last_index
        self._unstable_from = self._stable_index + 1
        self._pending_snapshot: Snapshot | None = None
        self._incoming_snapshot: IncomingSnapshot | None = None
        """The chunks so far of a snapshot a leader is sending (``replication``)."""
        self._msgs: list[Message] = []
        self._events: list[RaftEvent] = []
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._heartbeat_rounds = 0
        self._lease_ticks = config.election_timeout_ticks - config.heartbeat_interval_ticks
        self._randomized_timeout = self._draw_timeout()
        self._votes: dict[str, bool] = {}
        self.progress: dict[str, Progress] = {}
        self._transferee: str | None = None
        self._transfer_elapsed = 0
        self._leaving = False
        self._snapshot_membership = Membership.from_state(snap) if snap else Membership()
        self._config_indexes = [e.index for e in state.entries if e.kind is EntryKind.CONFIG]
        self._departed: frozenset[str] = frozenset()
        self._told_not_member: str | None = None
        self.membership = Membership()
        self.membership_index = 0
        self._refresh_membership()

    @classmethod
    def bootstrap(cls, node_id: str, voters: Iterable[str], config: RaftConfig, rng: random.Random) -> RaftNode:
        """A brand-new cluster: entry 1 (term 0) holds the initial voters, committed by fiat.

        Every initial voter must bootstrap with the same set. The daemon's first
        node bootstraps alone (``voters=[self]``) and elects itself on its first
        tick; later nodes start empty and are added as learners by the leader.
        """
        node = cls(node_id, config, rng)
        entry = Entry(0, 1, EntryKind.CONFIG, encode_config(frozenset(voters), frozenset()))
        node._append([entry])
        node.commit = 1
        return node

    # ------------------------------------------------------------------ inputs

    def tick(self) -> None:
        """Advance logical time by one tick."""
        self.ticks += 1
        if self.role is Role.LEADER:
            self._tick_leader()
            return
        self._election_elapsed += 1
        if not self._promotable():
            return
        if self.membership.voters == {self.id} or self._election_elapsed >= self._randomized_timeout:
            self._campaign(pre_vote=self.cfg.pre_vote)

    def step(self, msg: Message) -> None:
        """Handle one message from a peer (duplicates and stale messages are safe)."""
        if msg.dst != self.id or msg.src == self.id:
            return
        if (
            isinstance(msg, VoteRequest)
            and self._outside_committed_config(msg.src)
            and (msg.last_log_term, msg.last_log_index) <= (self.log.last_term, self.log.last_index)
        ):  # (a candidate with a newer log may know a newer configuration that has it: it is heard)
            self._send(NotMember(self.term, self.id, msg.src, self.log.last_index, self.log.last_term))
            return
        if msg.term > self.term:
            if isinstance(msg, VoteRequest):
                in_lease = self.cfg.check_quorum and (
                    self.role is Role.LEADER
                    or (self.leader_id is not None and self._election_elapsed < self._lease_ticks)
                )
                if in_lease and not msg.transfer:
                    return
                if not msg.pre_vote:
                    self._become_follower(msg.term, None)
            elif isinstance(msg, VoteResponse) and msg.pre_vote and msg.granted:
                pass  # a pre-vote grant carries the term we are about to campaign in
            else:
                leader = msg.src if isinstance(msg, (AppendRequest, InstallSnapshot)) else None
                self._become_follower(msg.term, leader)
        elif msg.term < self.term:
            if isinstance(msg, (AppendRequest, InstallSnapshot)):
                self._send(AppendResponse(self.term, self.id, msg.src, False, 0))
            elif isinstance(msg, VoteRequest):  # the candidate learns the term (and any newer epoch)
                self._send(VoteResponse(self.term, self.id, msg.src, False, msg.pre_vote))
            return
        if isinstance(msg, VoteRequest):
            self._on_vote_request(msg)
        elif isinstance(msg, VoteResponse):
            self._on_vote_response(msg)
        elif isinstance(msg, AppendRequest):
            self._follow(msg.src)
            self._on_append(msg)
        elif isinstance(msg, AppendResponse):
            if self.role is Role.LEADER:
                self._on_append_response(msg)
        elif isinstance(msg, SnapshotAck):
            if self.role is Role.LEADER:
                self._on_snapshot_ack(msg)
        elif isinstance(msg, InstallSnapshot):
            self._follow(msg.src)
            self._on_install_snapshot(msg)
        elif isinstance(msg, TimeoutNow):
            if self._promotable() and self.role is not Role.LEADER:
                self._event("transfer_campaign", f"asked by {msg.src}")
                self._campaign(pre_vote=False, transfer=True)
        elif isinstance(msg, NotMember):
            self._on_not_member(msg)

    def propose(self, data: bytes) -> int:
        """Append a command; returns its index. Raises ``NotLeaderError`` with the leader hint."""
        self._require_leader()
        return self._append_as_leader(EntryKind.NORMAL, data)

    def campaign(self) -> None:
        """Start an election now (tests, and a daemon that knows the leader is gone)."""
        if self.role is not Role.LEADER and self._promotable():
            self._campaign(pre_vote=self.cfg.pre_vote)

    # ------------------------------------------------------------------ outputs

    def _hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.commit)

    def has_ready(self) -> bool:
        persisted = self._persisted
        return bool(
            self._msgs
            or self._events
            or self._pending_snapshot is not None
            or self._unstable_from <= self.log.last_index
            or self.term != persisted.term
            or self.vote != persisted.vote
            or self.commit != persisted.commit
            or (self.applied < self.commit and self.applied < self.log.last_index)
        )

    def ready(self) -> Ready:
        """The work for the shell: persist, then send, then apply, then ``advance``."""
        hard = self._hard_state()
        return Ready(
            hard_state=hard if hard != self._persisted else None,
            entries=self.log.slice(self._unstable_from, self.log.last_index),
            snapshot=self._pending_snapshot,
            messages=tuple(self._msgs),
            committed=self.log.slice(self.applied + 1, min(self.commit, self.log.last_index)),
            events=tuple(self._events),
        )

    def advance(self, rd: Ready) -> None:
        """The shell has persisted, sent and applied ``rd``."""
        if rd.hard_state is not None:
            self._persisted = rd.hard_state
        if rd.snapshot is not None:
            self._pending_snapshot = None
        if rd.entries:
            self._stable_index = rd.entries[-1].index
            self._unstable_from = self._stable_index + 1
        if rd.committed:
            self.applied = rd.committed[-1].index
        del self._msgs[: len(rd.messages)]
        del self._events[: len(rd.events)]
        if self.role is Role.LEADER:
            self._maybe_commit()

    # ------------------------------------------------------------------ elections

    def _draw_timeout(self) -> int:
        timeout = self.cfg.election_timeout_ticks
        return timeout + self._rng.randrange(timeout)

    def _become_follower(self, term: int, leader: str | None) -> None:
        was_leader = self.role is Role.LEADER
        if term != self.term:
            self.term, self.vote = term, None
        self.role = Role.FOLLOWER
        self.leader_id = leader
        self._election_elapsed = 0
        self._randomized_timeout = self._draw_timeout()
        self._votes.clear()
        self.progress.clear()
        self._transferee = None
        self._leaving = False
        if was_leader:
            self._event("stepped_down", f"leader now {leader}")

    def _follow(self, leader: str) -> None:
        if self.role is Role.LEADER:
            raise InvariantViolation(f"two leaders in term {self.term}: {self.id} and {leader}")
        if self.role is not Role.FOLLOWER:
            self._become_follower(self.term, leader)
        self._told_not_member = None  # a leader replicates to us: we are a member (again)
        self.leader_id = leader
        self._election_elapsed = 0

    def _campaign(self, *, pre_vote: bool, transfer: bool = False) -> None:
        self._election_elapsed = 0
        self._randomized_timeout = self._draw_timeout()
        self.leader_id = None
        self._votes = {self.id: True}
        if pre_vote:
            self.role = Role.PRE_CANDIDATE
            term = self.term + 1
        else:
            self.role = Role.CANDIDATE
            self.term += 1
            self.vote = self.id
            term = self.term
        self._event("campaign", "pre-vote" if pre_vote else "vote")
        for voter in sorted(self.membership.voters - {self.id}):
            self._send(VoteRequest(term, self.id, voter, self.log.last_index, self.log.last_term, pre_vote, transfer))
        self._tally()

    def _on_vote_request(self, msg: VoteRequest) -> None:
        can_vote = (
            self.vote == msg.src
            or (self.vote is None and self.leader_id is None)
            or (msg.pre_vote and msg.term > self.term)
        )
        up_to_date = (msg.last_log_term, msg.last_log_index) >= (self.log.last_term, self.log.last_index)
        if can_vote and up_to_date:
            self._send(VoteResponse(msg.term, self.id, msg.src, True, msg.pre_vote))
            if not msg.pre_vote:
                self.vote = msg.src
                self._election_elapsed = 0
            elif self.role is Role.PRE_CANDIDATE and msg.term == self.term + 1:
                # Two pre-votes crossed: the one with the better (log, id) goes on, the other
                # waits, so the real elections do not split (fatal with two live voters of three).
                ours = (self.log.last_term, self.log.last_index)
                if (msg.last_log_term, msg.last_log_index) > ours or msg.src < self.id:
                    self._event("pre_vote_yielded", f"to {msg.src}")
                    self._become_follower(self.term, None)
        else:
            self._send(VoteResponse(self.term, self.id, msg.src, False, msg.pre_vote))

    def _on_vote_response(self, msg: VoteResponse) -> None:
        if msg.pre_vote:
            if self.role is not Role.PRE_CANDIDATE or (msg.granted and msg.term != self.term + 1):
                return
        elif self.role is not Role.CANDIDATE or msg.term != self.term:
            return
        if msg.src in self.membership.voters:
            self._votes[msg.src] = msg.granted
        self._tally()

    def _tally(self) -> None:
        granted = sum(1 for voter, yes in self._votes.items() if yes and voter in self.membership.voters)
        rejected = sum(1 for voter, yes in self._votes.items() if not yes and voter in self.membership.voters)
        if granted >= self.membership.quorum:
            if self.role is Role.PRE_CANDIDATE:
                self._campaign(pre_vote=False)
            else:
                self._become_leader()
        elif rejected > len(self.membership.voters) - self.membership.quorum:
            self._become_follower(self.term, None)

    def _become_leader(self) -> None:
        self.role = Role.LEADER
        self.leader_id = self.id
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._transferee = None
        self.progress = {}
        self._sync_progress()
        self._event("became_leader", f"log {self.log.last_index}")
        self._append_as_leader(EntryKind.NOOP, b"")

    def _tick_leader(self) -> None:
        self._election_elapsed += 1
        self._heartbeat_elapsed += 1
        if self._transferee is not None:
            self._transfer_elapsed += 1
            if self._transfer_elapsed >= self.cfg.election_timeout_ticks:
                self._event("transfer_abandoned", f"to {self._transferee}")
                self._transferee = None
                if self._leaving:
                    self._become_follower(self.term, None)
                    return
        if self._election_elapsed >= self.cfg.election_timeout_ticks:
            self._election_elapsed = 0
            if self.cfg.check_quorum and not self._quorum_active():
                self._event("stepped_down_no_quorum")
                self._become_follower(self.term, None)
                return
            for pr in self.progress.values():
                pr.recent_active = False
        if self._heartbeat_elapsed >= self.cfg.heartbeat_interval_ticks:
            self._heartbeat_elapsed = 0
            self._heartbeat_rounds += 1
            learners_too = self._heartbeat_rounds % self.cfg.learner_heartbeat_every == 0
            for peer, pr in self.progress.items():
                sent = pr.snapshot_sent_tick
                if sent is not None and self.ticks - sent < self.cfg.election_timeout_ticks:
                    continue  # a snapshot may be large: give it time rather than resend it
                if not learners_too and peer in self.membership.learners:
                    continue
                pr.paused = False
                self._send_append(peer)
            for departed in sorted(self._departed):
                self._send(NotMember(self.term, self.id, departed, self.log.last_index, self.log.last_term))
            self._maybe_promote()

    def _outside_committed_config(self, node_id: str) -> bool:
        """Whether ``node_id`` is known not to be a member: this node's configuration leaves it
        out and is committed (an uncommitted one may still be replaced by a leader)."""
        return (
            node_id not in self.membership.members
            and self.id in self.membership.members
            and self.membership_index <= self.commit
        )

    def _on_not_member(self, msg: NotMember) -> None:
        if self.id not in self.membership.members or self.role is Role.LEADER:
            return  # not a member by our own log either (the daemon is already joining), or stale
        if msg.last_log_term and (msg.last_log_term, msg.last_log_index) < (self.log.last_term, self.log.last_index):
            # The teller's log is older than ours: its configuration may predate our joining (a
            # voter back with a stale log silenced the one voter that could lead: the Raft
            # simulator, seed 270, once snapshots came in chunks).
            return
        if self._told_not_member is None:
            self._event("not_a_member", f"told by {msg.src}")
        self._told_not_member = msg.src
        if self.role is not Role.FOLLOWER:
            self._become_follower(self.term, None)

    @property
    def exclusion(self) -> str:
        """Why this node, whose own configuration names it, is in fact outside the cluster's
        configuration; empty when it is not known to be."""
        if self.log.last_index and epoch_of(self.term) > epoch_of(self.log.last_term):
            return (
                f"`swarm recover` replaced this node's configuration: the cluster is in configuration "
                f"epoch {epoch_of(self.term)}, this node's log in epoch {epoch_of(self.log.last_term)}"
            )
        if self._told_not_member is not None:
            return f"removed from the cluster's configuration (told by {self._told_not_member})"
        return ""

    def _quorum_active(self) -> bool:
        active = {p for p, pr in self.progress.items() if pr.recent_active} | {self.id}
        return self.membership.has_quorum(active)

    # ------------------------------------------------------------------ helpers

    def _require_leader(self) -> None:
        if self.role is not Role.LEADER:
            raise NotLeaderError(self.leader_id)
        if self._transferee is not None or self._leaving:
            raise NotLeaderError(self._transferee)

    def _send(self, msg: Message) -> None:
        self._msgs.append(msg)

    def _event(self, name: str, detail: str = "") -> None:
        self._events.append(RaftEvent(name, self.term, detail))

    def status(self) -> Status:
        """A consistent view for ``swarm status``."""
        peers = tuple(
            PeerStatus(p, p in self.membership.voters, pr.match, pr.next, pr.last_heard_tick, pr.recent_active)
            for p, pr in sorted(self.progress.items())
        )
        is_leader = self.role is Role.LEADER
        horizon = self.ticks - self.cfg.election_timeout_ticks
        missing = tuple(
            sorted(
                v
                for v in self.membership.voters - {self.id}
                if is_leader and ((h := self.progress[v].last_heard_tick) is None or h < horizon)
            )
        )
        quorum_ok = len(self.membership.voters) - len(missing) >= self.membership.quorum if is_leader else None
        return Status(
            node_id=self.id,
            role=self.role,
            term=self.term,
            leader_id=self.leader_id,
            commit=self.commit,
            applied=self.applied,
            last_index=self.log.last_index,
            voters=tuple(sorted(self.membership.voters)),
            learners=tuple(sorted(self.membership.learners)),
            peers=peers,
            quorum_active=quorum_ok,
            missing_voters=missing,
            ticks=self.ticks,
            epoch=epoch_of(self.term),
            excluded=self.exclusion,
        )


__all__ = ["RaftNode", "Progress", "decode_config"]
