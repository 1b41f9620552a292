"""The piggy-back queue: updates waiting to be gossiped, each a bounded number of times.

memberlist's ``TransmitLimitedQueue``: at most one pending update per node (a
newer claim replaces an older one), least-transmitted first and newest first
among equals, dropped after ``limit`` transmissions. Buckets by transmit count
keep ``take`` O(returned items) even with a thousand pending updates.
"""

from __future__ import annotations

from swarmcompute.membership.messages import MemberUpdate


class _Entry:
    """One pending update: how often it was sent, the update, its node and its estimated size."""

    __slots__ = ("transmits", "update", "node_id", "size")

    def __init__(self, update: MemberUpdate, size: int) -> None:
        self.transmits = 0
        self.update = update
        self.node_id = update.node_id
        self.size = size


class BroadcastQueue:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        """node_id -> its pending entry (mutable: its transmit count is updated in place)."""
        self._buckets: list[dict[str, _Entry]] = [{}]
        """By transmit count: node_id -> entry, oldest first (``take`` pops the newest)."""

    def __len__(self) -> int:
        return len(self._entries)

    def enqueue(self, update: MemberUpdate, size: int | None = None) -> None:
        """Queue ``update``, replacing any pending update about the same node; ``size``: its
        ``approx_size()`` when the caller knows it already."""
        node_id = update.node_id
        old = self._entries.get(node_id)
        if old is not None:
            self._buckets[old.transmits].pop(node_id, None)
        entry = self._entries[node_id] = _Entry(update, update.approx_size() if size is None else size)
        self._buckets[0][node_id] = entry

    def pending(self, node_id: str) -> MemberUpdate | None:
        entry = self._entries.get(node_id)
        return entry.update if entry is not None else None

    def take(self, limit: int, max_count: int, max_bytes: int) -> tuple[MemberUpdate, ...]:
        """Up to ``max_count`` updates within ``max_bytes``; each counts one transmission."""
        taken: list[_Entry] = []
        keep = taken.append
        used = 0
        n = 0
        for bucket in self._buckets:
            while bucket and n < max_count:
                node_id, entry = bucket.popitem()
                size = entry.size
                if n and used + size > max_bytes:
                    bucket[node_id] = entry
                    max_count = 0
                    break
                keep(entry)
                used += size
                n += 1
            if n >= max_count:
                break
        out = tuple([entry.update for entry in taken])
        buckets = self._buckets
        entries = self._entries
        for entry in taken:
            transmits = entry.transmits + 1
            if transmits >= limit:
                del entries[entry.node_id]
                continue
            entry.transmits = transmits
            if len(buckets) <= transmits:
                buckets.append({})
            buckets[transmits][entry.node_id] = entry
        return out
