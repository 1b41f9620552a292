"""This machine's own address changes: which address a wildcard-bound node moves to, and the
netlink watch that says when to look (run inside a network namespace of the test LAN)."""

from __future__ import annotations

import sys
import time

from swarmcompute.discovery.address_watch import new_own_address
from swarmcompute.testing.netns import Lan

WATCHER = """
import asyncio, sys
from swarmcompute.discovery.address_watch import AddressWatch
from swarmcompute.discovery.addresses import advertised_addresses

async def main():
    seen = asyncio.Event()
    watch = AddressWatch(seen.set)
    print("started" if watch.start() else "unavailable", flush=True)
    await asyncio.wait_for(seen.wait(), 20)
    print("changed", advertised_addresses(None)[0], flush=True)
    watch.close()

asyncio.run(main())
"""


def test_a_node_keeps_its_address_while_the_machine_still_has_it() -> None:
    assert new_own_address("10.0.0.5", ["10.0.0.5", "10.0.0.9"]) is None
    assert new_own_address("10.0.0.5", ["10.0.0.9", "10.0.0.5"]) is None  # a second address changes nothing


def test_a_node_that_lost_its_address_moves_to_the_first_one_advertised() -> None:
    assert new_own_address("10.0.0.5", ["10.0.0.9", "192.168.1.4"]) == "10.0.0.9"


def test_a_node_never_moves_to_loopback_when_the_network_is_gone_but_leaves_loopback_when_one_comes() -> None:
    assert new_own_address("10.0.0.5", ["127.0.0.1"]) is None
    assert new_own_address("127.0.0.1", ["127.0.0.1"]) is None
    assert new_own_address("127.0.0.1", ["192.168.1.4"]) == "192.168.1.4"


def test_the_netlink_watch_reports_a_renumbering_at_once(lan: Lan) -> None:
    host = lan.add_host("a")
    proc = host.popen([sys.executable, "-c", WATCHER])
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    new = str(lan.subnet.network_address + 99)
    moved_at = time.monotonic()
    host.set_ip(new)
    line = proc.stdout.readline().split()  # the watcher gives up (and prints nothing) after 20 s
    assert line == ["changed", new]
    assert time.monotonic() - moved_at < 2.0
