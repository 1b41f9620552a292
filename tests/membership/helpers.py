"""Small helpers for hand-driven gossip tests: build nodes, shuttle chosen messages."""

from __future__ import annotations

import random

from swarmcompute.membership import (
    Effect,
    GossipConfig,
    Membership,
    MemberState,
    MemberUpdate,
    NodeMeta,
    Send,
)

CFG = GossipConfig.lan()


def node(node_id: str, seed: int = 0, config: GossipConfig = CFG, incarnation: int = 0) -> Membership:
    return Membership(
        node_id,
        f"{node_id}:7946",
        config,
        random.Random(f"{seed}/{node_id}"),
        meta=NodeMeta(name=node_id),
        incarnation=incarnation,
    )


def alive(node_id: str, incarnation: int = 0, address: str | None = None, meta: NodeMeta | None = None) -> MemberUpdate:
    return MemberUpdate(
        node_id, address or f"{node_id}:7946", incarnation, MemberState.ALIVE, meta or NodeMeta(name=node_id)
    )


def know(n: Membership, *ids: str) -> None:
    """Teach ``n`` that ``ids`` are alive (as a push-pull would)."""
    from swarmcompute.membership import PushPull

    n.step(None, PushPull("zz-teacher", "zz:1", tuple(alive(i) for i in ids)))


def sends(effects: list[Effect], kind: type | None = None) -> list[Send]:
    return [e for e in effects if isinstance(e, Send) and (kind is None or isinstance(e.msg, kind))]


def events(effects: list[Effect], kind: type) -> list[Effect]:
    return [e for e in effects if isinstance(e, kind)]


def tick_until(n: Membership, pred, limit: int = 1000) -> list[Effect]:  # type: ignore[no-untyped-def]
    """Tick ``n`` until ``pred(effects)`` is true for one tick's effects; return those effects."""
    for _ in range(limit):
        out = n.tick()
        if pred(out):
            return out
    raise AssertionError(f"condition not reached within {limit} ticks")
