"""Finding peers: mDNS advertise and browse, and static ``--peer HOST:PORT`` addresses.

The names below load on first use: importing ``discovery.peer_addr`` (which
every ``swarm join`` does) must not pull in zeroconf for a node run with
``--no-mdns``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PROTO_VERSION", "SERVICE_TYPE", "Discovery", "PeerAd", "find_clusters", "parse_peer"]


def __getattr__(name: str) -> Any:
    if name == "parse_peer":
        from swarmcompute.discovery.peer_addr import parse_peer

        return parse_peer
    if name in __all__:
        from swarmcompute.discovery import mdns

        return getattr(mdns, name)
    raise AttributeError(name)
