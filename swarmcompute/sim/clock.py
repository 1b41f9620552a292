"""Simulated time: a fake clock and the one queue of everything that will happen.

Single-threaded and deterministic: events at the same instant run in the order
they were scheduled (a sequence number breaks ties), so a seed replays exactly.
Reusable by any simulated core (Raft now; gossip and the scheduler later).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

# (at_ms, seq, action, args): a plain tuple, since the heap compares millions of them.
_Scheduled = tuple[int, int, Callable[..., None], tuple[Any, ...]]


class SimClock:
    """``now_ms`` only moves when the next event is taken off the queue."""

    def __init__(self) -> None:
        self.now_ms = 0
        self._queue: list[_Scheduled] = []
        self._seq = 0

    def call_at(self, at_ms: int, action: Callable[..., None], *args: Any) -> None:
        if at_ms < self.now_ms:
            raise ValueError(f"cannot schedule in the past ({at_ms} < {self.now_ms})")
        self._seq += 1
        heapq.heappush(self._queue, (at_ms, self._seq, action, args))

    def call_later(self, delay_ms: int, action: Callable[..., None], *args: Any) -> None:
        self.call_at(self.now_ms + delay_ms, action, *args)

    def run_next(self, until_ms: int) -> bool:
        """Run the next event due at or before ``until_ms``; False when there is none."""
        if not self._queue or self._queue[0][0] > until_ms:
            self.now_ms = max(self.now_ms, until_ms)
            return False
        at_ms, _, action, args = heapq.heappop(self._queue)
        self.now_ms = at_ms
        action(*args)
        return True

    def __len__(self) -> int:
        return len(self._queue)
