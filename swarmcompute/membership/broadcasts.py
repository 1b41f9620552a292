"""The piggy-back queue: updates waiting to be gossiped, each a bounded number of times.

memberlist's ``TransmitLimitedQueue``: at most one pending update per node (a
newer claim replaces an older one), least-transmitted first and newest first
among equals, dropped after ``limit`` transmissions. Buckets by transmit count
keep ``take`` O(returned items) even with a thousand pending updates.
"""

from __future__ import annotations

from swarmcompute.membership.messages import MemberUpdate


class BroadcastQueue:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[int, MemberUpdate, int]] = {}
        """node_id -> (transmits, update, estimated size)."""
        self._buckets: list[dict[str, None]] = [{}]

    def __len__(self) -> int:
        return len(self._entries)

    def enqueue(self, update: MemberUpdate) -> None:
        """Queue ``update``, replacing any pending update about the same node."""
        old = self._entries.get(update.node_id)
        if old is not None:
            self._buckets[old[0]].pop(update.node_id, None)
        self._entries[update.node_id] = (0, update, update.approx_size())
        self._buckets[0][update.node_id] = None

    def pending(self, node_id: str) -> MemberUpdate | None:
        entry = self._entries.get(node_id)
        return entry[1] if entry else None

    def take(self, limit: int, max_count: int, max_bytes: int) -> tuple[MemberUpdate, ...]:
        """Up to ``max_count`` updates within ``max_bytes``; each counts one transmission."""
        out: list[MemberUpdate] = []
        taken: list[tuple[str, int]] = []
        used = 0
        full = False
        for transmits, bucket in enumerate(self._buckets):
            while bucket and len(out) < max_count:
                node_id, _ = bucket.popitem()
                _, update, size = self._entries[node_id]
                if out and used + size > max_bytes:
                    bucket[node_id] = None
                    full = True
                    break
                out.append(update)
                used += size
                taken.append((node_id, transmits + 1))
            if full or len(out) >= max_count:
                break
        for node_id, transmits in taken:
            _, update, size = self._entries[node_id]
            if transmits >= limit:
                del self._entries[node_id]
                continue
            self._entries[node_id] = (transmits, update, size)
            while len(self._buckets) <= transmits:
                self._buckets.append({})
            self._buckets[transmits][node_id] = None
        return tuple(out)
