"""Which interfaces mDNS uses and which advertised address a peer dials: plain functions."""

from __future__ import annotations

import ipaddress

import pytest
from zeroconf import InterfaceChoice, IPVersion

from swarmcompute.discovery import addresses
from swarmcompute.discovery.addresses import (
    advertised_addresses,
    interfaces_for,
    is_wildcard,
    local_ipv4_addresses,
    multicast_source_address,
    pick_host,
)


@pytest.mark.parametrize("bind", [None, "", "0.0.0.0", "::"])
def test_wildcard_bind_uses_every_ipv4_interface(bind: str | None) -> None:
    assert is_wildcard(bind)
    assert interfaces_for(bind) == (InterfaceChoice.All, IPVersion.V4Only)


def test_specific_bind_restricts_to_that_address() -> None:
    assert interfaces_for("127.0.0.1") == (["127.0.0.1"], IPVersion.V4Only)
    assert interfaces_for("fd00::5") == (["fd00::5"], IPVersion.V6Only)
    assert advertised_addresses("10.1.2.3") == ["10.1.2.3"]


def test_wildcard_advertises_no_loopback_unless_alone() -> None:
    found = advertised_addresses(None)
    assert found
    non_loopback = [a for a in found if not ipaddress.IPv4Address(a).is_loopback]
    assert non_loopback == found or found == ["127.0.0.1"]


NETS = [ipaddress.IPv4Network("10.9.8.0/24"), ipaddress.IPv4Network("127.0.0.0/8")]


def test_pick_host_prefers_a_shared_subnet_in_the_given_order() -> None:
    assert pick_host(["192.168.5.5", "10.9.8.7", "10.9.8.9"], NETS) == "10.9.8.7"
    assert pick_host(["172.16.0.1", "192.168.5.5"], NETS) == "172.16.0.1"
    assert pick_host(["fe80::1", "10.9.8.7"], NETS) == "10.9.8.7"
    assert pick_host([], NETS) is None


def test_pick_host_dials_an_address_this_machine_has_too_only_when_it_is_all_there_is() -> None:
    docker_host = [*NETS, ipaddress.IPv4Network("172.17.0.0/16")]  # every Docker host has 172.17.0.1
    own = {"10.9.8.2", "172.17.0.1", "127.0.0.1"}
    assert pick_host(["172.17.0.1", "10.9.8.7"], docker_host, own) == "10.9.8.7"  # it dialled itself, before
    assert pick_host(["172.17.0.1", "192.168.5.5"], docker_host, own) == "192.168.5.5"  # routed, but not this machine
    assert pick_host(["10.9.8.2", "172.17.0.1"], docker_host, own) == "10.9.8.2"  # a node on this machine
    assert pick_host(["127.0.0.1"], NETS, own) == "127.0.0.1"


def test_a_node_answers_at_the_address_it_sends_to_the_lan_from_not_the_first_bridge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # docker0 made before the LAN's interface came up (a USB Ethernet adapter): first in order.
    monkeypatch.setattr(addresses, "local_ipv4_addresses", lambda: ["172.17.0.1", "10.9.8.2", "127.0.0.1"])
    monkeypatch.setattr(addresses, "multicast_source_address", lambda: "10.9.8.2")
    assert advertised_addresses(None) == ["10.9.8.2", "172.17.0.1"]
    monkeypatch.setattr(addresses, "multicast_source_address", lambda: None)  # no route to the group
    assert advertised_addresses(None) == ["172.17.0.1", "10.9.8.2"]


def test_the_address_toward_the_mdns_group_is_one_of_this_machines() -> None:
    routed = multicast_source_address()  # this machine's real routing table; nothing is sent
    assert routed is None or routed in local_ipv4_addresses()
    if routed is not None and not ipaddress.IPv4Address(routed).is_loopback:
        assert advertised_addresses(None)[0] == routed
