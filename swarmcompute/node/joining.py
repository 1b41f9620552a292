"""What `swarm join` means for this state directory: restart, join, or create a cluster.

* The state dir already holds a cluster key: this node is a member; it comes
  back into that cluster with that key. A token of another cluster is refused
  (one node, one cluster); a token of this cluster's key from before a
  `swarm token --rotate` (its cluster id is in ``cluster.earlier``, which
  every rotation the node applies adds to) is the token a service unit or a
  config file still holds: the saved key wins, and the node starts with a
  warning to update the token. Otherwise every such node would fail to start
  at its next reboot after a rotation.
* ``--token`` given: save the key and join the cluster it names, found by
  mDNS or through ``--peer`` addresses.
* Neither: look for clusters on the LAN first. If one answers, refuse and say
  how to join it (never silently make a second cluster); otherwise create a
  new cluster, save its key and bootstrap as its only voter. ``--new-cluster``
  skips the look.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import structlog

from swarmcompute.discovery.peer_addr import format_peer, parse_peer
from swarmcompute.errors import ClusterFoundError, ConfigError, SwarmError
from swarmcompute.paths import StatePaths
from swarmcompute.transport.keys import ClusterKey, new_cluster_key

log = structlog.get_logger(__name__)

FIND_CLUSTERS_TIMEOUT_S = 1.5
FIND_CLUSTERS_LOOKS = 2
"""Looks for a cluster before creating one: an mDNS responder answers a given question at most
once a second (RFC 6762), so a second ``swarm join`` close behind another one's look could miss
the answer; each look is a fresh query (2 of 27 tries made a second cluster with one look). An
empty LAN costs 3 s, once, when the first node creates its cluster."""

EARLIER_KEYS_KEPT = 64
"""Cluster ids of earlier keys a state dir remembers (the newest): a token this many rotations
old is then refused as another cluster's."""


@dataclass(frozen=True, slots=True)
class ClusterPlan:
    key: ClusterKey
    bootstrap: bool
    """Only the node that created the cluster writes its first configuration."""
    created_now: bool
    seeds: tuple[str, ...]
    """``--peer`` addresses, normalized to host:port."""


async def plan_cluster(
    paths: StatePaths,
    *,
    token: str | None,
    peers: tuple[str, ...],
    new_cluster: bool,
    mdns: bool,
    bind: str,
) -> ClusterPlan:
    seeds = tuple(format_peer(*parse_peer(p)) for p in peers)
    given = ClusterKey.from_token(token) if token else None
    if paths.cluster_key.exists():
        key = ClusterKey.load(paths.cluster_key)
        if given is not None and given.cluster_id != key.cluster_id:
            if given.cluster_id not in earlier_cluster_ids(paths):
                raise ConfigError(
                    f"this node's state ({paths.root}) is of cluster {key.cluster_id}, not the token's "
                    f"cluster {given.cluster_id}: start it without the token to run it in its cluster, "
                    "or with another --state-dir to make this machine a node of the token's"
                )
            log.warning(
                "token_from_before_rotation",
                token_cluster_id=given.cluster_id,
                cluster_id=key.cluster_id,
                action=EARLIER_TOKEN_ACTION,
            )
        return ClusterPlan(key, paths.cluster_created.exists(), False, seeds)
    if given is not None:
        given.save(paths.cluster_key)
        log.info("cluster_key_saved", cluster_id=given.cluster_id)
        return ClusterPlan(given, False, False, seeds)
    if seeds:
        raise ConfigError("--peer needs --token: print the token on a member with `swarm token`")
    if mdns and not new_cluster:
        from swarmcompute.discovery.mdns import PeerAd, find_clusters

        clusters: dict[str, list[PeerAd]] = {}
        for _ in range(FIND_CLUSTERS_LOOKS):  # look again right before creating
            clusters = await find_clusters(FIND_CLUSTERS_TIMEOUT_S, bind=None if bind == "0.0.0.0" else bind)
            if clusters:
                break
        if clusters:
            cluster_id, ads = next(iter(sorted(clusters.items())))
            nodes = ", ".join(f"{a.host}:{a.port}" for a in ads[:3])
            raise ClusterFoundError(
                f"found swarm cluster {cluster_id} on this network ({nodes}): join it with "
                "`swarm join --token TOKEN` (run `swarm token` on one of its nodes), "
                "or start a separate cluster with `swarm join --new-cluster`"
            )
    key = new_cluster_key()
    key.save(paths.cluster_key)
    paths.cluster_created.write_text(key.cluster_id + "\n")
    log.info("cluster_created", cluster_id=key.cluster_id)
    return ClusterPlan(key, True, True, seeds)


EARLIER_TOKEN_ACTION = (
    "the node runs on with the cluster's current key; update the token where it is kept "
    "(`swarm token` prints the current one)"
)


def earlier_cluster_ids(paths: StatePaths) -> list[str]:
    """The cluster ids of the keys this node held before rotations, oldest first (none: [])."""
    try:
        text = paths.earlier_cluster_ids.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return []
    return [line.strip() for line in text.splitlines() if line.strip()]


def remember_earlier_key(paths: StatePaths, cluster_id: str) -> None:
    """Note that this node held the key of ``cluster_id`` (its key is about to be replaced by a
    rotation): the newest ``EARLIER_KEYS_KEPT``, written atomically. Raises ``OSError`` (a full
    disk), for the caller to retry before it replaces the key."""
    ids = [i for i in earlier_cluster_ids(paths) if i != cluster_id] + [cluster_id]
    target: Path = paths.earlier_cluster_ids
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write("".join(i + "\n" for i in ids[-EARLIER_KEYS_KEPT:]))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def is_earlier_token(paths: StatePaths, token: str) -> bool:
    """Whether ``token`` is this state dir's cluster's, from before a rotation (`swarm join`
    warns; ``plan_cluster`` starts the node with its saved key)."""
    try:
        given = ClusterKey.from_token(token)
        key = ClusterKey.load(paths.cluster_key)
    except SwarmError:
        return False
    return given.cluster_id != key.cluster_id and given.cluster_id in earlier_cluster_ids(paths)
