"""Finding peers: mDNS advertise and browse, and static ``--peer HOST:PORT`` addresses."""

from __future__ import annotations

from swarmcompute.discovery.mdns import (
    PROTO_VERSION,
    SERVICE_TYPE,
    Discovery,
    PeerAd,
    find_clusters,
    parse_peer,
)

__all__ = ["PROTO_VERSION", "SERVICE_TYPE", "Discovery", "PeerAd", "find_clusters", "parse_peer"]
