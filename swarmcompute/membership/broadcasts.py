"""The piggy-back queue: updates waiting to be gossiped, each a bounded number of times.

memberlist's ``TransmitLimitedQueue``: at most one pending update per node (a
newer claim replaces an older one), least-transmitted first and newest first
among equals, dropped after ``limit`` transmissions. Buckets by transmit count
keep ``take`` O(returned items) even with a thousand pending updates.
"""

from __future__ import annotations

from swarmcompute.membership.messages import MemberUpdate


class _Entry:
    """One pending update: how often it was sent, the update and its estimated size."""

    __slots__ = ("transmits", "update", "size")

    def __init__(self, update: MemberUpdate) -> None:
        self.transmits = 0
        self.update = update
        self.size = update.approx_size()


class BroadcastQueue:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        """node_id -> its pending entry (mutable: its transmit count is updated in place)."""
        self._buckets: list[dict[str, None]] = [{}]

    def __len__(self) -> int:
        return len(self._entries)

    def enqueue(self, update: MemberUpdate) -> None:
        """Queue ``update``, replacing any pending update about the same node."""
        old = self._entries.get(update.node_id)
        if old is not None:
            self._buckets[old.transmits].pop(update.node_id, None)
        self._entries[update.node_id] = _Entry(update)
        self._buckets[0][update.node_id] = None

    def pending(self, node_id: str) -> MemberUpdate | None:
        entry = self._entries.get(node_id)
        return entry.update if entry is not None else None

    def take(self, limit: int, max_count: int, max_bytes: int) -> tuple[MemberUpdate, ...]:
        """Up to ``max_count`` updates within ``max_bytes``; each counts one transmission."""
        out: list[MemberUpdate] = []
        taken: list[_Entry] = []
        used = 0
        entries = self._entries
        for bucket in self._buckets:
            while bucket and len(out) < max_count:
                node_id = bucket.popitem()[0]
                entry = entries[node_id]
                size = entry.size
                if out and used + size > max_bytes:
                    bucket[node_id] = None
                    max_count = 0
                    break
                out.append(entry.update)
                used += size
                taken.append(entry)
            if len(out) >= max_count:
                break
        buckets = self._buckets
        for entry in taken:
            transmits = entry.transmits + 1
            update = entry.update
            if transmits >= limit:
                del entries[update.node_id]
                continue
            entry.transmits = transmits
            if len(buckets) <= transmits:
                buckets.append({})
            buckets[transmits][update.node_id] = None
        return tuple(out)
