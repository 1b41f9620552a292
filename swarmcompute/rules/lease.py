"""Leases: at most one running attempt of a job in the whole cluster, at any instant.

A node may start, and keep running, an attempt of a default job (``on_disconnect="stop"``) only
while it holds a lease: a grant from a leader that itself holds a quorum lease. The leader runs a
silent node's attempts elsewhere only once that lease has surely expired there. Nothing assumes
that two machines agree on the time, nor that a message arrives within any bound: every lease is
measured on one machine's own clock (``CLOCK_BOOTTIME``, which keeps counting through suspend),
from a reading that machine took *before* the message that extends it was sent.

The rules, with ``LEASE`` = ``LEASE_S`` and all times on the named machine's clock:

1. **Asking.** Every ``ASK_INTERVAL_S`` a node sends its current term's leader a ``LeaseAsk``
   carrying its term, its clock reading ``r0`` and ``echo``, the leader's stamp from the newest
   grant of that term it has received.
2. **The leader's quorum lease.** The leader keeps, per voter, the newest ``echo`` received in an
   ask *of its own term*; its own entry is "now". With ``h_q`` the quorum-th freshest of those
   stamps, its quorum lease lasts until ``h_q + LEASE`` (leader's clock). A voter's term only
   grows and it asks only its current term's leader, so once it has voted for a later leader it
   never extends this one's lease again. A later leader is elected by a majority, which shares a
   voter with every quorum the old leader counts; that voter echoed before voting, so the old
   leader's quorum lease ends before the new leader's election + LEASE (real time, up to drift).
3. **Grants.** The leader answers an ask of its term with ``LeaseGrant(term, r0, stamp=now,
   remaining=d)`` where ``d`` is what is left of its quorum lease (zero or less: no lease, but the
   stamp still travels so voters can echo it). The node's lease then lasts until
   ``r0 + min(LEASE, d)`` on its own clock: ``r0`` was read before the grant was sent, so this
   never outlasts the leader's quorum lease, however late the grant arrives.
4. **Losing it.** A node whose lease lapses SIGTERMs its stop-on-disconnect attempts at once and
   its guardian process SIGKILLs their groups ``KILL_GRACE_S`` later, even if the daemon itself
   is frozen (SIGSTOP, a stuck disk). It starts no attempt without a lease.
5. **Re-running.** A leader re-runs a node's attempts only once, on its own clock,
   ``now >= max(term_start, last positive grant to that node) + RERUN_AFTER_S``, where
   ``RERUN_AFTER_S = LEASE * (1 + DRIFT) + KILL_GRACE_S + MARGIN_S``. Every lease granted by this
   leader ends by its last grant + LEASE; every lease granted by an earlier leader ends by this
   leader's term start + LEASE (rule 2).
6. **The exception.** A node that is a voter in a configuration of at most two voters keeps its
   attempts past its lease: no quorum can exist without it, so nobody can re-run them (in a
   one-node cluster the node is its own quorum anyway). Jobs submitted with
   ``on_disconnect="keep"`` keep running too, and may then run twice: their owner chose that.

What it costs: a node (or leader) cut off from the majority stops its attempts ``LEASE`` to
``LEASE + KILL_GRACE_S`` after its last renewal; the majority re-runs them ``RERUN_AFTER_S`` after
its leader's term start (about 1.2 s after a cut for a new election) or after its last grant to a
cut-off follower. A blip shorter than ``LEASE`` minus one ask interval costs nothing.

This module is pure: the caller passes its clock reading in every call and carries out what the
answers say. ``NodeLease`` is the node's half, ``LeaseGrantor`` the leader's.
"""

from __future__ import annotations

from dataclasses import dataclass

from swarmcompute import codec

LEASE_S = 1.0
"""How long one grant holds. Asks go out five times within it, so four can be lost in a row."""
ASK_INTERVAL_S = 0.2
DRIFT = 0.05
"""Allowance for two machines' clocks running at different rates (real clocks differ by parts per
million; this is generous so that a VM's clock that is slewed hard is still covered)."""
KILL_GRACE_S = 0.3
"""Between the SIGTERM at a lapsed lease and the guardian's SIGKILL."""
MARGIN_S = 0.2
"""For the kill to take effect and for scheduling jitter on a busy machine."""
RERUN_AFTER_S = LEASE_S * (1 + DRIFT) + KILL_GRACE_S + MARGIN_S

NO_STAMP = -1.0


@codec.message("lease.ask")
@dataclass(frozen=True, slots=True)
class LeaseAsk:
    """A node asks its term's leader for a lease (rule 1)."""

    term: int
    asked_at: float
    """The asker's clock when it sent this: a grant echoing it holds from then."""
    echo: float = NO_STAMP
    """The newest leader stamp of ``term`` the asker has received (``NO_STAMP``: none yet)."""


@codec.message("lease.grant")
@dataclass(frozen=True, slots=True)
class LeaseGrant:
    """The leader's answer (rule 3)."""

    term: int
    asked_at: float
    stamp: float
    """The leader's clock when it granted: echoed back in the next ask."""
    remaining: float
    """What is left of the leader's quorum lease, in seconds; zero or less grants nothing."""


def keeps_past_lease(node_id: str, voters: frozenset[str] | set[str]) -> bool:
    """Rule 6: True where no quorum can exist without ``node_id``."""
    return node_id in voters and len(voters) <= 2


class NodeLease:
    """The node's half: whether it holds a lease now, and what to ask."""

    def __init__(self) -> None:
        self.until = float("-inf")
        """The lease holds while ``now < until`` (this node's clock)."""
        self._term = -1
        self._echo = NO_STAMP
        self._last_ask = float("-inf")

    def valid(self, now: float) -> bool:
        return now < self.until

    def ask(self, term: int, now: float) -> LeaseAsk:
        """The ask to send now to ``term``'s leader."""
        if term != self._term:
            self._term, self._echo = term, NO_STAMP
        self._last_ask = now
        return LeaseAsk(term, now, self._echo)

    def on_grant(self, grant: LeaseGrant, now: float) -> bool:
        """Take a grant; return True when it extended the lease."""
        if grant.asked_at > now or grant.asked_at > self._last_ask:
            return False  # echoes a reading this node never took: not an answer to our ask
        if grant.term == self._term and grant.stamp > self._echo:
            self._echo = grant.stamp
        if grant.remaining <= 0:
            return False
        until = grant.asked_at + min(LEASE_S, grant.remaining)
        if until <= self.until:
            return False
        self.until = until
        return True

    def grant_self(self, until: float) -> None:
        """The leader holds its own lease as far as its quorum lease goes."""
        if until > self.until:
            self.until = until


class LeaseGrantor:
    """The leader's half for one term: its quorum lease, its grants, and when it may re-run."""

    def __init__(self, node_id: str, term: int, now: float) -> None:
        self.node_id = node_id
        self.term = term
        self.term_start = now
        self._echoes: dict[str, float] = {}
        self._last_grant: dict[str, float] = {}

    def quorum_lease_until(self, voters: frozenset[str] | set[str], now: float) -> float:
        """Rule 2: until when this leader's quorum lease holds (``-inf``: it holds none)."""
        if not voters:
            return float("-inf")
        stamps = sorted(
            (now if v == self.node_id else self._echoes.get(v, float("-inf")) for v in voters), reverse=True
        )
        quorum = len(voters) // 2 + 1
        return stamps[quorum - 1] + LEASE_S

    def on_ask(self, sender: str, ask: LeaseAsk, voters: frozenset[str] | set[str], now: float) -> LeaseGrant | None:
        """Rule 3: the grant to send back, or None for an ask of another term."""
        if ask.term != self.term:
            return None
        if sender in voters and ask.echo > self._echoes.get(sender, float("-inf")) and ask.echo <= now:
            self._echoes[sender] = ask.echo
        remaining = self.quorum_lease_until(voters, now) - now
        if remaining > 0:
            self._last_grant[sender] = now
        return LeaseGrant(self.term, ask.asked_at, now, remaining)

    def may_rerun(self, node_id: str, now: float) -> bool:
        """Rule 5: whether every lease ``node_id`` could hold has surely expired there."""
        since = max(self.term_start, self._last_grant.get(node_id, float("-inf")))
        return now >= since + RERUN_AFTER_S

    def rerun_at(self, node_id: str) -> float:
        """The earliest time ``may_rerun`` can hold for ``node_id`` (for saying when)."""
        return max(self.term_start, self._last_grant.get(node_id, float("-inf"))) + RERUN_AFTER_S
