"""``--bind 127.0.0.1``: nodes on one machine find each other over loopback.

Run inside a fresh namespace (a ``Lan`` host), never on the machine's own ``lo``. Its
``lo`` is like most machines': LOOPBACK without MULTICAST and no multicast route via
``lo``; discovery works anyway (see ``swarmcompute.discovery.mdns``).
"""

from __future__ import annotations

import time

import pytest

from swarmcompute.testing.mdns_peer import start_peer
from swarmcompute.testing.netns import Lan, nft_unavailable_reason, sh


def test_two_processes_on_loopback_find_each_other(lan: Lan) -> None:
    host = lan.add_host("a")
    flags = sh(["ip", "-n", host.netns, "link", "show", "lo"]).stdout
    assert "LOOPBACK" in flags and "MULTICAST" not in flags  # the common case, and it needs no fix
    t0 = time.monotonic()
    one = start_peer(host, "one", port=7001, bind="127.0.0.1")
    two = start_peer(host, "two", port=7002, bind="127.0.0.1")
    seen_by_one = one.wait_visible({"two": "127.0.0.1"}, 10)
    seen_by_two = two.wait_visible({"one": "127.0.0.1"}, 10)
    assert seen_by_one["two"]["port"] == 7002 and seen_by_two["one"]["port"] == 7001
    print(f"loopback discovery in {time.monotonic() - t0:.3f} s")
    # Bound to lo, neither node advertised or leaked anything on eth0's LAN.
    neighbour = start_peer(lan.add_host("b"), "three", port=7003)
    with pytest.raises(AssertionError, match="timed out"):
        neighbour.lines.wait_event(lambda e: e["event"] == "peer", 2.0, "a peer from loopback")


def test_no_multicast_on_loopback_is_said_plainly(lan: Lan) -> None:
    if reason := nft_unavailable_reason():
        pytest.skip(reason)
    host = lan.add_host("a")
    rules = 'table inet nomdns {\n chain out {\n  type filter hook output priority 0;\n  oifname "lo" udp dport 5353 drop\n }\n}\n'
    sh(["ip", "netns", "exec", host.netns, "nft", "-f", "-"], input_text=rules)
    one = start_peer(host, "one", port=7001, bind="127.0.0.1")
    one.lines.wait_event(lambda e: e["event"] == "started", 10, "start")
    log = lan.stderr_path(one.proc)
    assert log is not None
    deadline = time.monotonic() + 8
    while "mdns_self_not_heard" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    text = log.read_text()
    assert "mdns_self_not_heard" in text, text
    assert "--peer HOST:PORT" in text and "ip link set lo multicast on" in text
    assert text.count("mdns_self_not_heard") == 1
