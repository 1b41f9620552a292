"""``Discovery`` and ``find_clusters`` refuse bad arguments before opening any socket."""

from __future__ import annotations

import asyncio

import pytest

from swarmcompute.discovery import Discovery, PeerAd, find_clusters
from swarmcompute.errors import ConfigError, DiscoveryError


def noop(_ad: PeerAd) -> None:
    pass


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"node_id": ""}, "mDNS name"),
        ({"node_id": "a.b"}, "mDNS name"),
        ({"node_id": "x" * 64}, "mDNS name"),
        ({"port": 0}, "outside 1-65535"),
        ({"port": 70000}, "outside 1-65535"),
        ({"bind": "my-laptop"}, "not an IP address"),
        ({"ttl_s": 1}, "ttl_s"),
        ({"refresh_interval_s": 0}, "refresh_interval_s"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs: dict[str, object], says: str) -> None:
    args: dict[str, object] = {"node_id": "abc123", "cluster_id": "c1", "port": 7000, "bind": None, "on_peer": noop}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=says):
        Discovery(**args)  # type: ignore[arg-type]


def test_a_bind_address_that_is_not_here_is_a_discovery_error() -> None:
    discovery = Discovery("abc123", "c1", 7000, bind="198.51.100.77", on_peer=noop)
    with pytest.raises(DiscoveryError, match="no interface here has that address"):
        asyncio.run(discovery.start())
    with pytest.raises(DiscoveryError, match="no interface here"):
        asyncio.run(find_clusters(0.1, bind="198.51.100.77"))
    with pytest.raises(ConfigError, match="not an IP address"):
        asyncio.run(find_clusters(0.1, bind="nope"))
