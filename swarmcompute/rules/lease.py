"""Leases: at most one running attempt of a job in the whole cluster, at any instant.

A node may start, and keep running, an attempt of a default job (``on_disconnect="stop"``) only
while it holds a lease: a grant from a leader that itself holds a quorum lease. The leader runs a
silent node's attempts elsewhere only once that lease has surely expired there. Nothing assumes
that two machines agree on the time, nor that a message arrives within any bound: every lease is
measured on one machine's own clock (``CLOCK_BOOTTIME``, which keeps counting through suspend),
from a reading that machine took *before* the message that extends it was sent.

The rules, with ``LEASE`` = ``LEASE_S`` and all times on the named machine's clock:

1. **Asking.** Every ``ASK_INTERVAL_S`` (and at once when it learns of a new leader, or when a
   grant brought a new stamp but no lease yet) a node sends its current term's leader a
   ``LeaseAsk`` carrying its term, its clock reading ``r0``, ``echo`` (the leader's stamp from the
   newest grant of that term it has received) and ``prior_age`` (how long ago it last received a
   grant of an *earlier* term, or started, whichever is later).
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
4. **Fences.** A lease lets a node *keep* running what it runs; to *start* an attempt it must also
   have applied the log up to the grant's ``fence`` index. A leader's grants carry at least the
   index it had at its election (so every re-run an earlier leader committed is known before
   anything starts under the new one), and, for a node whose attempts it decided to re-run, the
   index at which that re-run was applied. Between that decision and that index the node gets
   no lease at all. Without this, a node that was given an attempt while it had no lease could
   be granted one, and start the attempt, in the moments before it learns that the attempt was
   re-queued: the leader's decision would then not cover it.
5. **Losing it.** A node whose lease lapses SIGTERMs its stop-on-disconnect attempts at once and
   its guardian process SIGKILLs their groups ``KILL_GRACE_S`` later, even if the daemon itself
   is frozen (SIGSTOP, a stuck disk). It starts no attempt without a lease.
6. **Re-running.** A leader re-runs a node's attempts only once, on its own clock,
   ``now >= max(earlier_end, last positive grant to that node + LEASE') + KILL_GRACE_S + MARGIN_S``
   with ``LEASE' = LEASE * (1 + DRIFT)``. Every lease this leader granted ends by its grant +
   LEASE'. Every lease an earlier leader granted ends with that leader's quorum lease, which
   ``earlier_end`` bounds in two ways, the earlier of which counts: this leader's term start +
   LEASE' (rule 2); and, once a majority of voters has asked in this term, the quorum-th earliest
   of their last receipts of an earlier-term grant + LEASE', where leading an earlier term
   counts as receiving its grants for as long as it led. (Proof of the second: the old leader's
   quorum lease rests on echoes from a majority, its own counting as "now"; any majority that has
   moved to this term shares a voter W with it; W's echo was received, or W itself was leading,
   no later than W's last earlier-term receipt; so the old quorum lease ends by that receipt +
   LEASE. The seeded job simulator found the case where W is the old leader itself.) A leader
   decides a re-run only while its own quorum lease holds (a frozen leader that resumes sees every
   node silent), and only in its own term: the decision carries the term and is never forwarded.
   The second bound is what makes a cut-off leader's work run elsewhere about ``RERUN_AFTER_S``
   after the cut rather than after the election.
7. **The exception.** A node that is a voter in a configuration of at most two voters keeps its
   attempts past its lease: no quorum can exist without it, so nobody can re-run them (in a
   one-node cluster the node is its own quorum anyway). Jobs submitted with
   ``on_disconnect="keep"`` keep running too, and may then run twice: their owner chose that.

What it costs: a node (or leader) cut off from the majority stops its attempts ``LEASE`` to
``LEASE + KILL_GRACE_S`` after its last renewal; the majority re-runs them about
``RERUN_AFTER_S`` after the cut. ``LEASE`` must outlast an election (0.6-1.2 s of silence, then a
vote), or every follower would lose its lease, and stop its jobs, whenever the leader changes.
A blip shorter than ``LEASE`` minus one ask interval costs nothing.

This module is pure: the caller passes its clock reading in every call and carries out what the
answers say. ``NodeLease`` is the node's half, ``LeaseGrantor`` the leader's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from swarmcompute import codec

LEASE_S = 3.2
"""How long one grant holds. It must outlast an election (0.6-1.2 s of silence, a vote, at times a
second round of 0.6-1.2 s more) plus the new leader's first round of grants, or every follower
would stop its jobs whenever the leader changes; a follower's lease can start up to two ask
intervals old: 1.2 + 1.2 + 0.2 + 0.4 = 3.0 s at worst. It was 2.4 s, which covered one round
only: on a 5-host namespace LAN under load, a one-way cut of the leader whose election split its
first vote (two followers campaigned 3 ms apart) took 1.93 s to a new leader, and the three
followers that held jobs lost their leases 30 ms before its first grants reached them: their jobs
were stopped and run again, though nothing had cut them off. The cost: a lost node's jobs run
elsewhere about 0.8 s later (``RERUN_AFTER_S``)."""
ASK_INTERVAL_S = 0.2
DRIFT = 0.02
"""Allowance for two machines' clocks running at different rates: real clocks differ by parts per
million, NTP slews by at most 500 ppm; 2 % also covers a VM's clock slewed hard."""
KILL_GRACE_S = 0.2
"""Between the SIGTERM at a lapsed lease and the guardian's SIGKILL."""
MARGIN_S = 0.15
"""For the kill to take effect (the guardian waits on a timer; SIGKILL acts at once) and for the
leader's check interval."""
RERUN_AFTER_S = LEASE_S * (1 + DRIFT) + KILL_GRACE_S + MARGIN_S
_LEASE_BOUND_S = LEASE_S * (1 + DRIFT)

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
    prior_age: float = -1.0
    """Seconds since the asker last received a grant of an earlier term, or started if later
    (negative: unknown). Bounds the earlier leaders' quorum leases (rule 6)."""


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
    fence: int = 0
    """Start nothing under this grant before the log is applied up to this index (rule 4)."""
    wall: float | None = None
    """The leader's wall clock (``time.time``) when it sent the grant, put on by its shell
    (``LeaseHost``); no rule reads it: the asker tells how far its own clock is off the leader's
    (``node.clock_check``). None from a version before it."""


def keeps_past_lease(node_id: str, voters: frozenset[str] | set[str]) -> bool:
    """Rule 7: True where no quorum can exist without ``node_id``."""
    return node_id in voters and len(voters) <= 2


class NodeLease:
    """The node's half: whether it holds a lease now, and what to ask.

    ``started_at`` is this process's start on the lease clock: a previous life of the node may
    have received grants before it, never after."""

    def __init__(self, started_at: float) -> None:
        self.until = float("-inf")
        """The lease holds while ``now < until`` (this node's clock)."""
        self._term = -1
        self._echo = NO_STAMP
        self._last_ask = float("-inf")
        self._receipts: dict[int, float] = {}  # term -> last grant received of it (two terms kept)
        self._started_at = started_at
        self.ask_again = False
        """A grant brought the term's first stamp but no lease: ask again now, not at the next tick."""
        self.fence = 0
        """The highest fence of the grants received (rule 4)."""

    def valid(self, now: float) -> bool:
        return now < self.until

    def ask(self, term: int, now: float) -> LeaseAsk:
        """The ask to send now to ``term``'s leader."""
        if term != self._term:
            self._term, self._echo = term, NO_STAMP
        self._last_ask = now
        self.ask_again = False
        return LeaseAsk(term, now, self._echo, now - self.prior_receipt(term))

    def on_grant(self, grant: LeaseGrant, now: float) -> bool:
        """Take a grant; return True when it extended the lease."""
        if grant.asked_at > now or grant.asked_at > self._last_ask:
            return False  # echoes a reading this node never took: not an answer to our ask
        self._note_receipt(grant.term, now)
        if grant.term == self._term and grant.stamp > self._echo:
            # The first stamp of a term, without a lease yet: echo it at once (a new leader has
            # its quorum lease one round trip later, not one ask interval later). Only the first,
            # so a leader without a quorum is not asked in a loop.
            self.ask_again = grant.remaining <= 0 and self._echo == NO_STAMP
            self._echo = grant.stamp
        if grant.remaining <= 0:
            return False
        until = grant.asked_at + min(LEASE_S, grant.remaining)
        self.fence = max(self.fence, grant.fence)
        if until <= self.until:
            return False
        self.until = until
        return True

    def may_start(self, now: float, applied_index: int) -> bool:
        """Rule 4: whether an attempt may start now (the lease holds and the fence is passed)."""
        return self.valid(now) and applied_index >= self.fence

    def _note_receipt(self, term: int, now: float) -> None:
        self._receipts[term] = max(now, self._receipts.get(term, float("-inf")))
        if len(self._receipts) > 2:
            del self._receipts[min(self._receipts)]

    def prior_receipt(self, term: int) -> float:
        """When this node last received a grant of a term before ``term``, or started if later."""
        return max([self._started_at, *(at for t, at in self._receipts.items() if t < term)])

    def grant_self(self, until: float, fence: int, *, term: int, now: float) -> None:
        """The leader holds its own lease as far as its quorum lease goes.

        Its quorum lease counts itself as ``now``, so for the receipts bound (rule 6) leading a
        term at ``now`` is as good as receiving a grant of it then: a later leader must learn
        that this node led until ``now``, not only when it last heard another leader."""
        self._note_receipt(term, now)
        self.fence = max(self.fence, fence)
        if until > self.until:
            self.until = until


class LeaseGrantor:
    """The leader's half for one term: its quorum lease, its grants, and when it may re-run."""

    def __init__(self, node_id: str, term: int, now: float, prior_receipt: float, term_index: int) -> None:
        """``prior_receipt``: when this node last received a grant of an earlier term, or
        started if later (its own ``LeaseAsk.prior_age``, as a time). ``term_index``: the last
        index of its log when it became leader (the least fence of its grants, rule 4)."""
        self.node_id = node_id
        self.term = term
        self.term_start = now
        self.term_index = term_index
        self._fences: dict[str, int | None] = {}  # node -> fence after a re-run; None: not applied yet
        self._echoes: dict[str, float] = {}
        self._last_grant: dict[str, float] = {}
        self._prior: dict[str, float] = {node_id: prior_receipt}
        self._unanswered: dict[str, float] = {}  # node -> asked_at of an ask answered without a lease

    def quorum_lease_until(self, voters: frozenset[str] | set[str], now: float) -> float:
        """Rule 2: until when this leader's quorum lease holds (``-inf``: it holds none)."""
        if not voters:
            return float("-inf")
        stamps = sorted(
            (now if v == self.node_id else self._echoes.get(v, float("-inf")) for v in voters), reverse=True
        )
        quorum = len(voters) // 2 + 1
        return stamps[quorum - 1] + LEASE_S

    def on_ask(
        self, sender: str, ask: LeaseAsk, voters: frozenset[str] | set[str], now: float
    ) -> list[tuple[str, LeaseGrant]]:
        """Rule 3: the grants to send, as (node, grant): the answer to this ask, and, when this
        ask completed the quorum lease, a grant to every node that asked before it did (so that
        a new leader's followers are renewed one round trip after its election, not an ask
        interval later). Nothing for an ask of another term."""
        if ask.term != self.term:
            return []
        if sender in voters and NO_STAMP < ask.echo <= now and ask.echo > self._echoes.get(sender, float("-inf")):
            self._echoes[sender] = ask.echo
        if ask.prior_age >= 0:
            # The ask was sent no later than now, so the receipt was at most prior_age before now
            # (measured by the asker's clock, which may run fast: hence the drift allowance).
            prior = now - ask.prior_age / (1 + DRIFT)
            self._prior[sender] = max(prior, self._prior.get(sender, float("-inf")))
        remaining = self.quorum_lease_until(voters, now) - now
        if remaining <= 0 or self._fences.get(sender, 0) is None:
            if remaining <= 0:
                self._unanswered[sender] = ask.asked_at
            return [(sender, LeaseGrant(self.term, ask.asked_at, now, 0.0))]  # a stamp, no lease
        self._unanswered.pop(sender, None)
        asks = [(sender, ask.asked_at)] + [
            (n, at) for n, at in self._unanswered.items() if self._fences.get(n, 0) is not None
        ]
        self._unanswered.clear()
        grants = []
        for node, asked_at in asks:
            fence = max(self.term_index, self._fences.get(node) or 0)
            grants.append((node, LeaseGrant(self.term, asked_at, now, remaining, fence)))
            self._last_grant[node] = now
        return grants

    def rerunning(self, node_id: str) -> None:
        """Rule 4: this leader decided to re-run ``node_id``'s attempts; no lease for that node
        until ``rerun_applied``."""
        self._fences[node_id] = None

    def rerun_applied(self, node_id: str, applied_index: int) -> None:
        """Rule 4: the re-run is applied here up to ``applied_index``: grants may go to
        ``node_id`` again, fenced at that index."""
        self._fences[node_id] = applied_index

    def fenced(self) -> list[str]:
        """Nodes waiting for ``rerun_applied``."""
        return [n for n, f in self._fences.items() if f is None]

    def unplaceable(self, nodes: Iterable[str], voters: frozenset[str] | set[str], now: float) -> set[str]:
        """Nodes that must not be given work now: their lease has surely expired (this leader
        would re-run what it gives them at once) or a re-run of theirs is not applied yet. A node
        that keeps its attempts past its lease (rule 7) is never among them."""
        return {
            n
            for n in nodes
            if n != self.node_id
            and not keeps_past_lease(n, voters)
            and (self._fences.get(n, 0) is None or self.may_rerun(n, voters, now))
        }

    def earlier_leases_end(self, voters: frozenset[str] | set[str]) -> float:
        """Rule 6: by when every lease granted by an earlier term's leader has ended."""
        by_term = self.term_start + _LEASE_BOUND_S
        if not voters:
            return by_term
        receipts = sorted(self._prior.get(v, float("inf")) for v in voters)
        by_receipts = receipts[len(voters) // 2] + _LEASE_BOUND_S  # the quorum-th earliest
        return min(by_term, by_receipts)

    def rerun_at(self, node_id: str, voters: frozenset[str] | set[str]) -> float:
        """Rule 6: from when ``node_id``'s attempts may run elsewhere (this leader's clock)."""
        own = self._last_grant.get(node_id, float("-inf")) + _LEASE_BOUND_S
        return max(self.earlier_leases_end(voters), own) + KILL_GRACE_S + MARGIN_S

    def may_rerun(self, node_id: str, voters: frozenset[str] | set[str], now: float) -> bool:
        """Rule 6: whether every lease ``node_id`` could hold has surely expired there, asked of a
        leader that holds its quorum lease now. Without a quorum lease it may have been deposed
        without knowing it (a frozen leader that resumes sees everyone silent): it decides nothing."""
        return now >= self.rerun_at(node_id, voters) and self.quorum_lease_until(voters, now) > now
