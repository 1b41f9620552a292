"""The shell around the lease rules (``swarmcompute.rules.lease``): clocks, messages, the guardian.

It asks the leader for a lease every ``ASK_INTERVAL_S`` (and answers asks when this node leads),
tells the guardian the deadline after which it must kill leased attempts on its own, and says
when this node starts or stops holding a lease so the daemon can stop its attempts or start its
queue. Every decision is the rules module's; this class only reads the clock and sends.

Renewals go lazily (``send_lazily``: the daemon's transport holds them for the next message to
the same node, ``transport.outbox``): an ask while this node holds more than half a lease from
the leader it asked last, and a grant to a node that holds more than half of one from this
leader. The ask then leaves with the next answer to a heartbeat, the grant with the next
heartbeat, and an idle leader and follower trade one frame each way per heartbeat instead of
two. A lease is measured from the asker's own clock reading, so a grant that arrives later is
only a shorter lease (rule 3), never a wrong one. Everything else goes at once: a first ask to a
new leader, the echo of a first stamp, grants that start a lease.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import structlog

from swarmcompute.node.raft_host import RaftHost
from swarmcompute.rules.lease import (
    KILL_GRACE_S,
    LEASE_S,
    LeaseAsk,
    LeaseGrant,
    LeaseGrantor,
    NodeLease,
    keeps_past_lease,
)

log = structlog.get_logger(__name__)


def lease_clock() -> float:
    """Seconds on ``CLOCK_BOOTTIME``: monotonic, and counting through suspend, unlike
    ``time.monotonic`` (a laptop that slept must not wake up still holding its lease)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


class LeaseHost:
    def __init__(
        self,
        node_id: str,
        raft: RaftHost,
        *,
        send_to: Callable[[str, object], bool],
        set_deadline: Callable[[int], None],
        on_change: Callable[[bool], None],
        clock: Callable[[], float] = lease_clock,
        send_lazily: Callable[[str, object], bool] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.node_id = node_id
        self.raft = raft
        self._clock = clock
        """``lease_clock``; the simulator gives each node its own drifting clock."""
        self._started = clock()
        self.lease = NodeLease(self._started)
        self._grantor: LeaseGrantor | None = None  # this node's, while it leads; see ``grantor``
        self._asked: tuple[str, int] | None = None  # the leader and term asked last
        self._send_to = send_to
        self._send_lazily = send_lazily or send_to
        """For renewals (see the module doc); ``send_to`` when not given (the simulator)."""
        self._granted: dict[str, float] = {}
        """Node -> when this leader last granted it a lease, in ``_granted_term``."""
        self._granted_term = -1
        self._set_deadline = set_deadline
        self._on_change = on_change
        self._held = False
        self._deadline_ns = -1
        self._wall_clock = wall_clock
        self.clock_offset: float | None = None
        """How far this node's wall clock is ahead of its leader's, read off the leader's last grant
        (its one-way delay included: milliseconds); 0 while it leads, None before a grant."""

    @property
    def grantor(self) -> LeaseGrantor | None:
        """The leader's half of the rule, only for the term this node leads now: between two ticks
        a node can lose and win leadership again, and an earlier term's grantor must then decide
        nothing (its grants and bounds are not this term's)."""
        grantor = self._grantor
        if grantor is None or not self.raft.is_leader or grantor.term != self.raft.node.term:
            return None
        return grantor

    def voters(self) -> frozenset[str]:
        return frozenset(self.raft.node.membership.voters)

    def holds(self, now: float | None = None) -> bool:
        """Whether this node may keep its leased attempts running now."""
        if keeps_past_lease(self.node_id, self.voters()):
            return True
        return self.lease.valid(self._clock() if now is None else now)

    def may_start(self) -> bool:
        """Whether this node may start a leased attempt now (the lease and its fence).

        The guardian is told the deadline this answer rests on first: a lease extended since the
        last ``check`` (the leader's own, by an ask) or a configuration that now keeps attempts past
        the lease would otherwise start an attempt under the older deadline, and the guardian would
        SIGKILL it at once (found by the whole-cluster simulator: a new leader's first attempts, and
        the first ones after `swarm recover`, died at once and counted as failures).

        Only the one voter of a one-voter configuration starts without a lease: its own log is
        the whole history. Rule 7 keeps a node's running attempts past its lease in a two-voter
        one too, but never lets it start one without a lease and its fence: after `swarm recover`
        left two voters, one started an attempt its stale table held while the new history, which
        it had acknowledged but not applied, ran the job again on the other (simulator seed 540)."""
        now = self._clock()
        self.check(now)
        if self.voters() == {self.node_id}:
            return True
        return self.lease.may_start(now, self.raft.applied_index)

    def rerunning(self, node_id: str) -> None:
        """This leader re-runs ``node_id``'s leased attempts: no lease for it until ``rerun_applied``."""
        if (grantor := self.grantor) is not None:
            grantor.rerunning(node_id)

    def rerun_applied(self, node_id: str) -> None:
        if (grantor := self.grantor) is not None:
            grantor.rerun_applied(node_id, self.raft.applied_index)

    def tick(self, *, ask: bool = True) -> None:
        """Every Raft tick: lead, or ask (every ask interval, and at once for a new leader);
        then say what changed."""
        now = self._clock()
        node = self.raft.node
        if self.raft.is_leader:
            if self._grantor is None or self._grantor.term != node.term:
                self._grantor = LeaseGrantor(
                    self.node_id, node.term, now, self.lease.prior_receipt(node.term), node.log.last_index
                )
            self.lease.grant_self(
                self._grantor.quorum_lease_until(self.voters(), now), self._grantor.term_index, term=node.term, now=now
            )
            self._asked = None
            self.clock_offset = 0.0
        else:
            self._grantor = None
            leader = node.leader_id
            if leader is not None and leader != self.node_id and (ask or (leader, node.term) != self._asked):
                renewal = (leader, node.term) == self._asked and self.lease.until - now > LEASE_S / 2
                self._asked = (leader, node.term)
                send = self._send_lazily if renewal else self._send_to
                send(leader, self.lease.ask(node.term, now))
        self.check(now)

    def on_message(self, sender: str, msg: LeaseAsk | LeaseGrant) -> None:
        now = self._clock()
        if isinstance(msg, LeaseAsk):
            grantor = self.grantor
            if grantor is None:
                return
            voters = self.voters()
            if self._granted_term != grantor.term:
                self._granted, self._granted_term = {}, grantor.term
            wall = self._wall_clock()
            for node, grant in grantor.on_ask(sender, msg, voters, now):
                renewal = grant.remaining > LEASE_S / 2 and now - self._granted.get(node, float("-inf")) < LEASE_S / 2
                if grant.remaining > 0:
                    self._granted[node] = now
                (self._send_lazily if renewal else self._send_to)(node, replace(grant, wall=wall))
            self.lease.grant_self(
                grantor.quorum_lease_until(voters, now), grantor.term_index, term=grantor.term, now=now
            )
            self.check(now)  # the guardian follows the leader's own lease too, even if we freeze now
        else:
            if msg.wall is not None and msg.term == self.raft.node.term and sender == self.raft.leader_id:
                self.clock_offset = self._wall_clock() - msg.wall
            if self.lease.on_grant(msg, now):
                self.check(now)
            if self.lease.ask_again and msg.term == self.raft.node.term and not self.raft.is_leader:
                self._send_to(sender, self.lease.ask(msg.term, now))  # echo the new stamp at once

    def unleased_s(self, now: float | None = None) -> float | None:
        """How long this node has held no lease, None while it holds one: a lease is a leader's
        word, backed by a quorum, that it heard from this node, so this is how long it has not been
        in touch with one (since its last lease began, or since it started). Rule 7's keeping of
        attempts past a lapsed lease does not count: it keeps jobs, not contact."""
        now = self._clock() if now is None else now
        if self.lease.valid(now):
            return None
        since = self.lease.until - LEASE_S if self.lease.until != float("-inf") else self._started
        return max(0.0, now - max(since, self._started))

    def left(self, now: float) -> float:
        """How long this node's lease still holds (``inf`` where it keeps its attempts anyway)."""
        if keeps_past_lease(self.node_id, self.voters()):
            return float("inf")
        return self.lease.until - now

    def may_rerun(self, node_id: str, now: float | None = None) -> bool:
        """On the leader: whether ``node_id``'s leased attempts may run elsewhere now."""
        voters = self.voters()
        grantor = self.grantor
        if grantor is None or keeps_past_lease(node_id, voters):
            return False
        return grantor.may_rerun(node_id, voters, self._clock() if now is None else now)

    def check(self, now: float | None = None) -> None:
        """Push the deadline to the guardian, and report a gained or lost lease."""
        now = self._clock() if now is None else now
        keeps = keeps_past_lease(self.node_id, self.voters())
        if keeps:
            deadline_ns = 0
        elif self.lease.until == float("-inf"):
            deadline_ns = 1  # no lease yet: any leased group dies at once (none should exist)
        else:
            deadline_ns = max(int((self.lease.until + KILL_GRACE_S) * 1e9), 1)
        if deadline_ns != self._deadline_ns:
            self._deadline_ns = deadline_ns
            self._set_deadline(deadline_ns)
        held = keeps or self.lease.valid(now)
        if held != self._held:
            self._held = held
            log.info("lease_gained" if held else "lease_lost", keeps_past_lease=keeps)
            self._on_change(held)
