"""What the core asks its shell to do: send messages, and report membership events.

The shell carries out ``Send`` with its transport and logs the events; the
Raft layer watches ``MemberDead`` (plus its own grace period) to replace voters
and ``MemberUp`` to add or restore them.
"""

from __future__ import annotations

from dataclasses import dataclass

from swarmcompute.membership.messages import GossipMessage, MemberState
from swarmcompute.membership.meta import NodeMeta


@dataclass(frozen=True, slots=True)
class Send:
    address: str
    msg: GossipMessage
    node_id: str | None = None
    """The intended receiver when known (a join seed is only an address)."""
    urgent: bool = False
    """A ``Gossip`` told to one node directly (our new address, our leave, its suspicion, its
    death), which the shell sends at once; the others are rumours, which it may hold a moment to
    ride with other traffic (``GossipHost``)."""


@dataclass(frozen=True, slots=True)
class MemberUp:
    """A node became alive in this view: new, back from dead/left, or a suspect refuted."""

    node_id: str
    address: str
    incarnation: int
    meta: NodeMeta | None
    previous: MemberState | None


@dataclass(frozen=True, slots=True)
class MemberSuspect:
    node_id: str
    address: str
    incarnation: int


@dataclass(frozen=True, slots=True)
class MemberDead:
    node_id: str
    address: str
    incarnation: int


@dataclass(frozen=True, slots=True)
class MemberLeft:
    node_id: str
    address: str
    incarnation: int


@dataclass(frozen=True, slots=True)
class MemberUpdated:
    """An alive node changed its address and/or meta; ``changed`` names which."""

    node_id: str
    address: str
    incarnation: int
    meta: NodeMeta | None
    changed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TwinFound:
    """Another process runs this node's id at ``address`` (a copy of its state directory).
    ``step_aside``: this one is the younger (or, started within ``TWIN_AGE_MARGIN_MS`` of each
    other, the one at the higher address) and must stop before it takes part in the cluster;
    the other keeps the id. Both ends decide alike from the same two ages."""

    address: str
    our_age_ms: int
    their_age_ms: int
    step_aside: bool


MemberEvent = MemberUp | MemberSuspect | MemberDead | MemberLeft | MemberUpdated
Effect = Send | MemberEvent | TwinFound
