"""What this machine offers, read with psutil (cpus, load, memory, disk).

Sampling never raises: psutil opens ``/proc`` files, and when the process is out of file
descriptors (``EMFILE``: a flood of connections) or ``/proc`` misbehaves, the sample keeps the
last values it could read and says so in a rate-limited ``resources_sample_failed`` line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import psutil
import structlog

from swarmcompute.transport.ratelimit import LogLimiter

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ResourceSample:
    cpus: int
    cpu_percent: float
    load_1m: float
    mem_total: int
    mem_available: int
    disk_free: int


class ResourceMonitor:
    """Samples on demand; cpu_percent is measured between two samples, so sample periodically."""

    def __init__(self, disk_path: Path) -> None:
        self._disk_path = disk_path
        self._limiter = LogLimiter(burst=1, window_s=60.0)
        self.failures = 0
        try:
            self.cpus = psutil.cpu_count(logical=True) or 1
        except OSError:
            self.cpus = os.cpu_count() or 1
        self.last = ResourceSample(self.cpus, 0.0, 0.0, 0, 0, 0)
        try:
            psutil.cpu_percent(interval=None)  # prime the counter
        except OSError as exc:
            self._failed("cpu_percent", exc)
        self.last = self.sample()

    def sample(self) -> ResourceSample:
        """A fresh sample; whatever cannot be read now keeps its last value."""
        last = self.last
        updates: dict[str, float | int] = {}
        try:
            mem = psutil.virtual_memory()
            updates.update(mem_total=mem.total, mem_available=mem.available)
        except OSError as exc:
            self._failed("memory", exc)
        try:
            updates["disk_free"] = psutil.disk_usage(str(self._disk_path)).free
        except OSError:
            updates["disk_free"] = 0  # no state dir disk: nothing to offer
        try:
            updates["cpu_percent"] = psutil.cpu_percent(interval=None)
        except OSError as exc:
            self._failed("cpu_percent", exc)
        try:
            updates["load_1m"] = os.getloadavg()[0]
        except OSError as exc:
            self._failed("load", exc)
        self.last = replace(last, **updates)  # type: ignore[arg-type]
        return self.last

    def _failed(self, what: str, exc: OSError) -> None:
        self.failures += 1
        self._limiter.warning(log, "resources_sample_failed", what, what=what, error=str(exc))
