"""What a node advertises about itself: resources, GPUs and cached Docker images.

``NodeMeta`` travels inside every ``alive`` update, so it is bounded
(``MAX_IMAGES``, ``MAX_STR``) and has a cheap conservative size estimate the
core uses to keep gossip messages under their byte budget without encoding.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from swarmcompute import codec

MAX_IMAGES = 64
"""Image refs advertised per node; the scheduler only needs the likely-hot ones."""
MAX_UNPULLED = 16
"""Images a node says it could not get (``NodeMeta.unpulled``), newest first: a node asked for
more missing images than this within ``node.inventory.UNPULLED_FOR_S`` forgets the oldest, which
then may be placed there, and fail there, once more."""
MAX_GPUS = 16
MAX_STR = 200
MAX_LABELS = 32
MAX_USERS = 256
"""User names a root node advertises (``swarmcompute.users.MAX_USERS``)."""


@codec.message("gossip.gpu")
@dataclass(frozen=True, slots=True)
class GpuInfo:
    index: int
    name: str
    mem_total: int
    """Bytes."""
    uuid: str = ""
    """``GPU-...`` as nvidia-smi names it ("" from an older node)."""


@codec.message("gossip.meta")
@dataclass(frozen=True, slots=True)
class NodeMeta:
    name: str
    cpus: int = 0
    cpu_percent: float = 0.0
    load_1m: float = 0.0
    mem_total: int = 0
    mem_available: int = 0
    disk_free: int = 0
    gpus: tuple[GpuInfo, ...] = ()
    images: tuple[str, ...] = ()
    version: str = ""
    roles: tuple[str, ...] = ()
    """Hints for the Raft layer, e.g. ``("voter",)`` for a node that may vote."""
    users: tuple[str, ...] | None = None
    """The local users a root node runs jobs as (``swarmcompute.users``: at most ``MAX_USERS``);
    None: a node run by a normal user, which runs every job as itself."""
    labels: tuple[tuple[str, str], ...] = ()
    """(key, value) pairs sorted by key (``swarm join --label``, ``swarm label``): what
    ``swarm run --constraint`` matches; at most ``MAX_LABELS``."""
    docker: bool = False
    """Its Docker engine answered the last probe: only such a node is given image jobs."""
    protocol: str = ""
    """The peer protocol version it speaks, ``MAJOR.MINOR`` (``swarmcompute.versions``; "": 1.0)."""
    disk_full: bool = False
    """Its state directory takes no writes (``storage.disk.DiskWatch``: full, over a quota,
    read-only): it is given no new jobs, whose output and records it could not keep."""
    clock_off_s: int = 0
    """How far its wall clock is ahead of the leader's (negative: behind), in seconds, when that is
    over a minute (``node.clock_check``); 0: within a minute, or not known."""
    http_port: int = 0
    """The port it serves its dashboard, REST API and /metrics on (``/api/v1/sd`` lists each node
    with its own); 0: it serves none, or it is of a release that did not say (an older decoder
    reads past this field, ``codec``)."""
    unpulled: tuple[str, ...] = ()
    """Images a job asked for here that it could not get (no registry reachable, or the registry
    does not have it) and that it does not hold since (``node.inventory``: at most ``MAX_UNPULLED``,
    each for ``UNPULLED_FOR_S``): no image job of one goes here (``scheduler.placement.may_run_on``).
    An older decoder reads past this last field; an older node's meta reads as none."""

    def capped(self) -> NodeMeta:
        """The same meta within the advertised bounds (long lists and strings cut)."""
        if (
            len(self.images) <= MAX_IMAGES
            and len(self.unpulled) <= MAX_UNPULLED
            and len(self.gpus) <= MAX_GPUS
            and len(self.roles) <= 8
            and len(self.users or ()) <= MAX_USERS
            and len(self.labels) <= MAX_LABELS
            and all(
                len(s) <= MAX_STR
                for s in (self.name, self.version, self.protocol, *self.images, *self.unpulled, *self.roles)
            )
            and all(len(u) <= MAX_STR for u in self.users or ())
            and all(len(g.name) <= MAX_STR and len(g.uuid) <= MAX_STR for g in self.gpus)
            and all(len(k) <= MAX_STR and len(v) <= MAX_STR for k, v in self.labels)
        ):
            return self
        return replace(
            self,
            name=self.name[:MAX_STR],
            version=self.version[:MAX_STR],
            protocol=self.protocol[:MAX_STR],
            images=tuple(i[:MAX_STR] for i in self.images[:MAX_IMAGES]),
            unpulled=tuple(i for i in self.unpulled[:MAX_UNPULLED] if len(i) <= MAX_STR),
            gpus=tuple(replace(g, name=g.name[:MAX_STR], uuid=g.uuid[:MAX_STR]) for g in self.gpus[:MAX_GPUS]),
            roles=tuple(r[:MAX_STR] for r in self.roles[:8]),
            users=None if self.users is None else tuple(u for u in self.users[:MAX_USERS] if len(u) <= MAX_STR),
            labels=tuple((k, v) for k, v in self.labels[:MAX_LABELS] if len(k) <= MAX_STR and len(v) <= MAX_STR),
        )

    def approx_size(self) -> int:
        """An upper bound on the encoded bytes (msgpack ext header, tag, every field)."""
        strings = (
            self.name, self.version, self.protocol, *self.images, *self.unpulled, *self.roles, *(self.users or ())
        )  # fmt: skip
        gpu = sum(45 + len(g.name.encode()) + len(g.uuid.encode()) for g in self.gpus)
        labels = sum(12 + len(k.encode()) + len(v.encode()) for k, v in self.labels)
        return 104 + sum(5 + len(s.encode()) for s in strings) + gpu + labels
