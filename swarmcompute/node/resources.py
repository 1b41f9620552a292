"""What this machine offers, read with psutil (cpus, load, memory, disk)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import psutil


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
        self.cpus = psutil.cpu_count(logical=True) or 1
        psutil.cpu_percent(interval=None)  # prime the counter
        self.last = self.sample()

    def sample(self) -> ResourceSample:
        mem = psutil.virtual_memory()
        try:
            disk_free = psutil.disk_usage(str(self._disk_path)).free
        except OSError:
            disk_free = 0
        self.last = ResourceSample(
            cpus=self.cpus,
            cpu_percent=psutil.cpu_percent(interval=None),
            load_1m=os.getloadavg()[0],
            mem_total=mem.total,
            mem_available=mem.available,
            disk_free=disk_free,
        )
        return self.last
