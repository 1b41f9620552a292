"""What `swarm join` means for this state directory: restart, join, or create a cluster.

* The state dir already holds a cluster key: this node is a member; it comes
  back into that cluster (a different ``--token`` is refused: one node, one
  cluster).
* ``--token`` given: save the key and join the cluster it names, found by
  mDNS or through ``--peer`` addresses.
* Neither: look for clusters on the LAN first. If one answers, refuse and say
  how to join it (never silently make a second cluster); otherwise create a
  new cluster, save its key and bootstrap as its only voter. ``--new-cluster``
  skips the look.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from swarmcompute.discovery.peer_addr import format_peer, parse_peer
from swarmcompute.errors import ClusterFoundError, ConfigError
from swarmcompute.paths import StatePaths
from swarmcompute.transport.keys import ClusterKey, new_cluster_key

log = structlog.get_logger(__name__)

FIND_CLUSTERS_TIMEOUT_S = 1.5
FIND_CLUSTERS_LOOKS = 2
"""Looks for a cluster before creating one: an mDNS responder answers a given question at most
once a second (RFC 6762), so a second ``swarm join`` close behind another one's look could miss
the answer; each look is a fresh query (2 of 27 tries made a second cluster with one look). An
empty LAN costs 3 s, once, when the first node creates its cluster."""


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
            raise ConfigError(
                f"this node already belongs to cluster {key.cluster_id}: to move it to cluster "
                f"{given.cluster_id}, run `swarm leave` and start it with another --state-dir"
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
