"""What this node advertises through gossip, gathered without ever blocking the loop.

CPU, memory and disk come from the ``ResourceMonitor`` samples the daemon
already takes. GPUs (``nvidia-smi``) are read once at start, in a thread: the
inventory does not change while the daemon runs, and nvidia-smi can take a
second. Docker images are re-listed in a thread every ``IMAGES_INTERVAL_S``
when an engine is reachable, so the scheduler can prefer nodes that hold a
job's image.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from swarmcompute import __version__
from swarmcompute.membership.meta import GpuInfo, NodeMeta
from swarmcompute.membership.resources import sample_gpus
from swarmcompute.node.resources import ResourceMonitor
from swarmcompute.users import LocalUsers

log = structlog.get_logger(__name__)

IMAGES_INTERVAL_S = 30.0


class Inventory:
    def __init__(
        self, name: str, resources: ResourceMonitor, *, list_images: Callable[[], list[str]] | None = None
    ) -> None:
        self._name = name
        self._resources = resources
        self._list_images = list_images
        self.gpus: tuple[GpuInfo, ...] = ()
        self.images: tuple[str, ...] = ()
        self._users = LocalUsers()

    def meta(self) -> NodeMeta:
        last = self._resources.last
        return NodeMeta(
            name=self._name,
            cpus=last.cpus,
            cpu_percent=last.cpu_percent,
            load_1m=last.load_1m,
            mem_total=last.mem_total,
            mem_available=last.mem_available,
            disk_free=last.disk_free,
            gpus=self.gpus,
            images=self.images,
            version=__version__,
            users=self._users.names(),
        ).capped()

    async def run(self) -> None:
        """Read the GPUs once, then keep the image list fresh until cancelled."""
        self.gpus = await asyncio.to_thread(sample_gpus)
        if self.gpus:
            log.info("gpus_found", gpus=[g.name for g in self.gpus])
        if self._list_images is None:
            return
        while True:
            try:
                self.images = tuple(sorted(set(await asyncio.to_thread(self._list_images))))
            except Exception as exc:  # an engine that went away just means "no images known"
                log.debug("docker_images_unavailable", error=str(exc))
                self.images = ()
            await asyncio.sleep(IMAGES_INTERVAL_S)
