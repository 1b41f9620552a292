"""The member table and the SWIM precedence rules for merging claims about others.

Rules (higher incarnation = newer; ``i`` incoming, ``j`` held):

    alive(i)    beats alive/suspect(j) if i > j; beats dead/left(j) if i > j
    suspect(i)  beats alive(j) if i >= j, suspect(j) if i > j; never dead/left
    dead(i)     beats alive/suspect(j) if i >= j; a left record stays left
    left(i)     beats alive/suspect/dead(j) if i >= j

Unknown nodes enter only through an alive claim. Claims about the local node
never come here: the core refutes them instead. The table keeps an O(1)
sample-able list of the members worth probing and gossiping to (alive and
suspect), because at a thousand nodes an O(N) scan per gossip round is the cost.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Literal

from swarmcompute.membership.effects import (
    MemberDead,
    MemberEvent,
    MemberLeft,
    MemberSuspect,
    MemberUp,
    MemberUpdated,
)
from swarmcompute.membership.messages import MemberState, MemberUpdate
from swarmcompute.membership.meta import NodeMeta

ALIVE, SUSPECT, DEAD, LEFT = MemberState.ALIVE, MemberState.SUSPECT, MemberState.DEAD, MemberState.LEFT


@dataclass(frozen=True, slots=True)
class Member:
    node_id: str
    address: str
    incarnation: int
    state: MemberState
    meta: NodeMeta | None
    state_changed_tick: int

    def as_update(self, *, with_meta: bool = True) -> MemberUpdate:
        return MemberUpdate(self.node_id, self.address, self.incarnation, self.state, self.meta if with_meta else None)


class _IdSet:
    """A set with O(1) add, remove and uniform random sampling."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self._index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, item: str) -> bool:
        return item in self._index

    def add(self, item: str) -> None:
        if item not in self._index:
            self._index[item] = len(self.items)
            self.items.append(item)

    def discard(self, item: str) -> None:
        i = self._index.pop(item, None)
        if i is None:
            return
        last = self.items.pop()
        if last != item:
            self.items[i] = last
            self._index[last] = i

    def sample(self, rng: random.Random, k: int, exclude: str | None = None) -> list[str]:
        pool = self.items
        if exclude is not None and exclude in self._index:
            picked = rng.sample(pool, min(k + 1, len(pool)))
            return [p for p in picked if p != exclude][:k]
        return rng.sample(pool, min(k, len(pool)))


class MemberTable:
    def __init__(self, local: Member) -> None:
        self.local_id = local.node_id
        self.by_id: dict[str, Member] = {local.node_id: local}
        self.live = _IdSet()
        """Alive and suspect members other than the local node."""
        self.alive_count = 1
        """Alive members, the local node included (it is always alive in its own view)."""
        self._records: dict[str, tuple[Member, MemberUpdate, int]] = {}
        """node_id -> (the member as held, its ``as_update()``, that update's ``approx_size``)."""

    def get(self, node_id: str) -> Member | None:
        return self.by_id.get(node_id)

    def record(self, m: Member) -> tuple[MemberUpdate, int]:
        """``m.as_update()`` and its estimated size, built once per version of a member.

        A push-pull carries every member's record, and building and sizing them afresh was a
        quarter of a 400-node simulated join (``benchmarks/gossip_convergence.py``). Held members
        are immutable and replaced on every change, so the one held is the cache's key."""
        hit = self._records.get(m.node_id)
        if hit is not None and hit[0] is m:
            return hit[1], hit[2]
        update = m.as_update()
        size = update.approx_size()
        self._records[m.node_id] = (m, update, size)
        return update, size

    def _adopt(self, m: Member, u: MemberUpdate) -> None:
        """The alive claim ``u`` that made ``m`` is ``m.as_update()`` when it carried meta: keep
        it as ``m``'s record, so every node passes on the very object it received."""
        if u.meta is not None:
            self._records[m.node_id] = (m, u, u.approx_size())

    def set_local(self, member: Member) -> None:
        self.by_id[self.local_id] = member

    def _put(self, new: Member, old: Member | None) -> None:
        self.by_id[new.node_id] = new
        was_alive = old is not None and old.state is ALIVE
        if new.state is ALIVE and not was_alive:
            self.alive_count += 1
        elif was_alive and new.state is not ALIVE:
            self.alive_count -= 1
        if new.state is ALIVE or new.state is SUSPECT:
            self.live.add(new.node_id)
        else:
            self.live.discard(new.node_id)

    def remove(self, node_id: str) -> None:
        old = self.by_id.pop(node_id, None)
        self._records.pop(node_id, None)
        if old is not None and old.state is ALIVE:
            self.alive_count -= 1
        self.live.discard(node_id)

    def set_address(self, node_id: str, address: str) -> MemberUpdated | None:
        """Direct evidence (a message from it) that a live member now uses ``address``."""
        m = self.by_id.get(node_id)
        if m is None or m.address == address or m.state not in (ALIVE, SUSPECT):
            return None
        self.by_id[node_id] = replace(m, address=address)
        return MemberUpdated(node_id, address, m.incarnation, m.meta, ("address",))

    def apply(self, u: MemberUpdate, tick: int) -> MemberEvent | None | Literal[False]:
        """Merge one claim about another node.

        Returns False if it was stale or redundant (do not gossip it further),
        else the event it caused (None when accepted without a visible change).
        """
        m = self.by_id.get(u.node_id)
        state = u.state
        if m is None:
            if state is not ALIVE:
                return False
            new = Member(u.node_id, u.address, u.incarnation, ALIVE, u.meta, tick)
            self._put(new, None)
            self._adopt(new, u)
            return MemberUp(u.node_id, u.address, u.incarnation, u.meta, None)
        if state is ALIVE:
            if u.incarnation <= m.incarnation:
                return False
            meta = u.meta if u.meta is not None else m.meta
            new = Member(
                u.node_id, u.address, u.incarnation, ALIVE, meta, tick if m.state is not ALIVE else m.state_changed_tick
            )
            self._put(new, m)
            self._adopt(new, u)
            if m.state is not ALIVE:
                return MemberUp(u.node_id, u.address, u.incarnation, meta, m.state)
            changed = tuple(n for n, a, b in (("address", m.address, u.address), ("meta", m.meta, meta)) if a != b)
            return MemberUpdated(u.node_id, u.address, u.incarnation, meta, changed) if changed else None
        if state is SUSPECT:
            if m.state is DEAD or m.state is LEFT:
                return False
            if m.state is SUSPECT and u.incarnation <= m.incarnation:
                return False
            if m.state is ALIVE and u.incarnation < m.incarnation:
                return False
            was = m.state
            self._put(
                replace(
                    m,
                    incarnation=u.incarnation,
                    state=SUSPECT,
                    state_changed_tick=tick if was is ALIVE else m.state_changed_tick,
                ),
                m,
            )
            return MemberSuspect(u.node_id, m.address, u.incarnation) if was is ALIVE else None
        # dead or left
        if u.incarnation < m.incarnation or m.state is LEFT or (m.state is DEAD and state is DEAD):
            return False
        self._put(replace(m, incarnation=u.incarnation, state=state, state_changed_tick=tick), m)
        if state is LEFT:
            return MemberLeft(u.node_id, m.address, u.incarnation)
        return MemberDead(u.node_id, m.address, u.incarnation)
