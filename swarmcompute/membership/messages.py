"""Gossip wire messages (tags ``gossip.*``) and the member states they carry.

Every message names its sender's id and current address: identity is the id,
the address is only where to reach it now. Updates ride piggy-back on pings,
acks and gossip; ``PushPull`` carries a (chunked) full state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from swarmcompute import codec
from swarmcompute.membership.meta import NodeMeta


class MemberState(str, enum.Enum):
    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"
    LEFT = "left"
    """Gone on purpose (graceful leave): no suspicion, no reconnect attempts."""


@codec.message("gossip.update")
@dataclass(frozen=True, slots=True)
class MemberUpdate:
    """One claim about one member; a higher incarnation wins (SWIM precedence rules)."""

    node_id: str
    address: str
    incarnation: codec.Count
    state: MemberState
    meta: NodeMeta | None = None
    """Only in alive updates and full-state records; meta is versioned by incarnation."""

    def approx_size(self) -> int:
        base = 40 + len(self.node_id.encode()) + len(self.address.encode())
        return base + (_meta_size(self.meta) if self.meta is not None else 0)


_META_SIZES: dict[int, tuple[NodeMeta, int]] = {}
"""id(meta) -> (meta, ``meta.approx_size()``): the updates about one member version share its
meta, and sizing it anew for each was a tenth of a 500-node simulated join. Holding the meta
keeps its id from being reused while cached; the cache only ever answers what it was asked."""
_META_SIZES_MAX = 4096


def _meta_size(meta: NodeMeta) -> int:
    hit = _META_SIZES.get(id(meta))
    if hit is None or hit[0] is not meta:
        if len(_META_SIZES) >= _META_SIZES_MAX:
            _META_SIZES.clear()
        hit = _META_SIZES[id(meta)] = (meta, meta.approx_size())
    return hit[1]


@codec.message("gossip.ping")
@dataclass(frozen=True, slots=True)
class Ping:
    sender: str
    sender_addr: str
    seq: codec.Count
    target_id: str
    """A ping for another id (the address now belongs to someone else) is not acked."""
    updates: tuple[MemberUpdate, ...] = ()


@codec.message("gossip.ack")
@dataclass(frozen=True, slots=True)
class Ack:
    sender: str
    sender_addr: str
    seq: codec.Count
    updates: tuple[MemberUpdate, ...] = ()


@codec.message("gossip.ping_req")
@dataclass(frozen=True, slots=True)
class PingReq:
    """Ask the receiver to ping ``target_id`` for us and forward its ack (indirect probe)."""

    sender: str
    sender_addr: str
    seq: codec.Count
    target_id: str
    target_addr: str
    updates: tuple[MemberUpdate, ...] = ()


@codec.message("gossip.gossip")
@dataclass(frozen=True, slots=True)
class Gossip:
    sender: str
    sender_addr: str
    updates: tuple[MemberUpdate, ...] = ()


@codec.message("gossip.push_pull")
@dataclass(frozen=True, slots=True)
class PushPull:
    """One chunk of a full state; the first chunk of a request has ``want_reply``."""

    sender: str
    sender_addr: str
    states: tuple[MemberUpdate, ...]
    want_reply: bool = False
    join: bool = False


@codec.message("gossip.twin_check")
@dataclass(frozen=True, slots=True)
class TwinCheck:
    """Sent to an address where a peer says this node is, when that is not where it is: a
    process that answers it (a message signed with its own id) is another machine running the
    same node id (its state directory copied: a cloned SD card or disk image). ``age_ms`` is how
    long the sender's gossip has run, on its own clock: the younger process steps aside
    (``Membership._twin_found``)."""

    sender: str
    sender_addr: str
    age_ms: codec.Count
    incarnation: codec.Count
    """The sender's: the one that stays announces itself above it."""
    reply: bool = True


GossipMessage = Ping | Ack | PingReq | Gossip | PushPull | TwinCheck
