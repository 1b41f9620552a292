"""Bounded logging for events a remote party can trigger at will.

A peer (or a stranger) can send garbage or retry a refused handshake as fast as
the network allows; one log line per frame would let it fill the disk. Each kind
of event gets a small budget per window; what is over budget is counted and the
count is reported on the next line that is let through (``suppressed=N``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

MAX_KEYS = 64
"""How many distinct event kinds are tracked; more are folded into one shared bucket."""


class LogLimiter:
    """At most ``burst`` lines per ``window_s`` for each key (an event name, a reason class)."""

    def __init__(
        self,
        *,
        burst: int = 10,
        window_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._burst = burst
        self._window_s = window_s
        self._clock = clock
        # key -> [window start, lines in window, suppressed since last line]
        self._buckets: dict[str, list[float]] = {}

    def allow(self, key: str) -> int | None:
        """``None`` if this line must be dropped, else how many were suppressed before it."""
        now = self._clock()
        if key not in self._buckets and len(self._buckets) >= MAX_KEYS:
            key = "__other__"
        bucket = self._buckets.setdefault(key, [now, 0, 0])
        if now - bucket[0] >= self._window_s:
            bucket[0], bucket[1] = now, 0
        if bucket[1] >= self._burst:
            bucket[2] += 1
            return None
        bucket[1] += 1
        suppressed = int(bucket[2])
        bucket[2] = 0
        return suppressed

    def warning(self, log: Any, event: str, key: str, **kw: object) -> None:
        """Log ``event`` as a warning if ``key`` has budget left."""
        suppressed = self.allow(key)
        if suppressed is None:
            return
        if suppressed:
            kw["suppressed"] = suppressed
        log.warning(event, **kw)
