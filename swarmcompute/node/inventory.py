"""What this node advertises through gossip, gathered without ever blocking the loop.

CPU, memory and disk come from the ``ResourceMonitor`` samples the daemon
already takes. GPUs (``nvidia-smi``: index, uuid, model, memory) and Docker
images are read in a thread every ``IMAGES_INTERVAL_S`` (nvidia-smi can take a
second; a card that falls off the bus or a driver installed later shows within
that), so the scheduler can prefer nodes that hold a job's image and give image
jobs only to nodes whose engine answered (``docker``). Labels are the node's own
(``swarm join --label``, ``swarm label``), kept in its state dir by the daemon.

The images a job could not get here (``could_not_get``: no registry reachable, or the registry
does not have it) are gossiped as ``unpulled``, and no image job of one is placed here until the
image is here (``docker load``, a build: the next look sees it) or ``UNPULLED_FOR_S`` has passed.
Before, nothing remembered it: with the one holder of a locally built image busy, placement
sent its jobs to the idle node that could not pull it, and each retry went back there (3 of 3
attempts failed there in 1.7 s).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from swarmcompute.membership.meta import MAX_UNPULLED, GpuInfo, NodeMeta
from swarmcompute.membership.resources import sample_gpus
from swarmcompute.node.resources import ResourceMonitor
from swarmcompute.users import LocalUsers
from swarmcompute.versions import CURRENT, Versions

log = structlog.get_logger(__name__)

IMAGES_INTERVAL_S = 30.0
UNPULLED_FOR_S = 600.0
"""How long a node remembers an image it could not get (``Inventory.could_not_get``), unless the
image shows up here first: long enough that a busy holder's queue, not this node, takes its jobs
(a retry's backoff is at most ``state.job.RETRY_BACKOFF_MAX_S``), short enough that a registry
that comes back, or an image pushed to it since, is tried again within minutes without anyone
having to say so."""


class Inventory:
    def __init__(
        self,
        name: str,
        resources: ResourceMonitor,
        *,
        list_images: Callable[[], list[str] | None] | None = None,
        labels: tuple[tuple[str, str], ...] = (),
        on_change: Callable[[], None] | None = None,
        versions: Versions = CURRENT,
        disk_problem: Callable[[], str | None] = lambda: None,
        clock_off: Callable[[], int] = lambda: 0,
        http_port: Callable[[], int] = lambda: 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._name = name
        self._versions = versions
        self._resources = resources
        self._list_images = list_images
        """Image refs of the local engine; None when no engine answers."""
        self.gpus: tuple[GpuInfo, ...] = ()
        self.images: tuple[str, ...] = ()
        self.docker = False
        """The engine answered the last look (``list_images`` did not return None nor raise)."""
        self.labels = labels
        self._on_change = on_change
        """Called when the GPUs, the engine's answer or its images changed (a leader then places
        again: gossip tells the others, but nothing else tells this node about itself)."""
        self._users = LocalUsers()
        self._disk_problem = disk_problem
        """What keeps the state directory from taking writes now (``DiskWatch.problem``)."""
        self._clock_off = clock_off
        """How far this node's clock is off the leader's, as gossiped (``node.clock_check``)."""
        self._http_port = http_port
        """The port this node serves HTTP on (0: none)."""
        self._clock = clock
        self._unpulled: dict[str, float] = {}
        """Image -> when a job here last could not get it (``clock``), oldest first."""

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
            version=self._versions.package,
            protocol=str(self._versions.protocol),
            users=self._users.names(),
            labels=self.labels,
            docker=self.docker,
            disk_full=self._disk_problem() is not None,
            clock_off_s=self._clock_off(),
            http_port=self._http_port(),
            unpulled=self.unpulled(),
        ).capped()

    def unpulled(self) -> tuple[str, ...]:
        """The images a job could not get here in the last ``UNPULLED_FOR_S``, newest first, that
        are not here now (at most ``MAX_UNPULLED``)."""
        now = self._clock()
        for image in [i for i, at in self._unpulled.items() if now - at >= UNPULLED_FOR_S or i in self.images]:
            del self._unpulled[image]
        return tuple(reversed(self._unpulled))[:MAX_UNPULLED]

    def could_not_get(self, image: str) -> None:
        """A job found ``image`` missing here and could not pull it (no registry reachable, or the
        registry does not have it): gossip it at once (``on_change``), so that the leader places
        no more of its jobs here (``NodeMeta.unpulled``)."""
        before = self.unpulled()
        self._unpulled.pop(image, None)
        self._unpulled[image] = self._clock()
        while len(self._unpulled) > MAX_UNPULLED:
            del self._unpulled[next(iter(self._unpulled))]
        if self.unpulled() != before and self._on_change is not None:
            self._on_change()

    def engine_lost(self) -> None:
        """A job found the engine gone: no Docker from now on, until a look finds it answering
        (``refresh``); what this node gossips and places by changes at once."""
        was, self.docker = self.docker, False
        if was and self._on_change is not None:
            self._on_change()

    async def run(self) -> None:
        """Keep the GPU and image lists fresh until cancelled."""
        while True:
            await self.refresh()
            await asyncio.sleep(IMAGES_INTERVAL_S)

    async def refresh(self) -> None:
        """Read the GPUs and the engine's images once (each in a thread); an image found here, or
        one not got for ``UNPULLED_FOR_S``, leaves ``unpulled``."""
        before = (self.gpus, self.docker, self.images, tuple(self._unpulled))  # expired ones too: told when gone
        try:
            await self._refresh()
        finally:
            self.unpulled()  # drops those here now and those past their time
            if (self.gpus, self.docker, self.images, tuple(self._unpulled)) != before and self._on_change is not None:
                self._on_change()

    async def _refresh(self) -> None:
        gpus = await asyncio.to_thread(sample_gpus)
        if gpus != self.gpus:
            log.info("gpus_found", gpus=[f"{g.index}: {g.name}" for g in gpus])
        self.gpus = gpus
        if self._list_images is None:
            return
        try:
            images = await asyncio.to_thread(self._list_images)
        except Exception as exc:  # an engine that went away just means "no images known"
            log.debug("docker_images_unavailable", error=str(exc))
            images = None
        self.docker = images is not None
        self.images = tuple(sorted(set(images or ())))
