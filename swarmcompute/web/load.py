"""The dashboard's CPU chart: each node's CPU use, one point every 30 s for the last hour.

Apart from the routes (``app``) so that a daemon samples it from its start while its HTTP stack
is not loaded yet (``server``: loaded at the first connection).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swarmcompute.api.node_api import NodeAPI

LOAD_HISTORY_S = 3600.0
LOAD_SAMPLE_S = 30.0


class LoadHistory:
    """``run`` samples it: one wakeup every 30 s; the stream also samples when a point is due."""

    def __init__(self, daemon: NodeAPI) -> None:
        self._daemon = daemon
        self._points: deque[tuple[float, dict[str, float]]] = deque()

    async def run(self) -> None:
        while True:
            self.history()
            await asyncio.sleep(LOAD_SAMPLE_S)

    def history(self) -> list[dict[str, Any]]:
        """``[{"t": unix seconds, "cpu": {node id: percent}}]``, oldest first, ending with now. By
        id, which a node keeps across restarts, not by its name: that is not known until gossip
        brings it, and a restarted node was two lines (its id's, then its name's) for an hour; the
        dashboard names the lines from the status's nodes."""
        now = time.time()
        nodes = self._daemon.status()["nodes"]
        current = {n["id"]: float(n.get("cpu_percent") or 0) for n in nodes}
        if not self._points or now - self._points[-1][0] >= LOAD_SAMPLE_S - 1:
            self._points.append((now, current))
        while self._points and now - self._points[0][0] > LOAD_HISTORY_S:
            self._points.popleft()
        points = [{"t": t, "cpu": cpu} for t, cpu in self._points]
        if self._points[-1][0] < now:
            points.append({"t": now, "cpu": current})
        return points
