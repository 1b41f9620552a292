"""The namespace LAN itself: reachability, cutting and healing, renumbering, and cleanup
that holds even when a test fails or a run was killed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from swarmcompute.testing.netns import (
    PREFIX,
    Host,
    Lan,
    cleanup_stale,
    lan_unavailable_reason,
    list_netns,
    nft_unavailable_reason,
    sh,
)

PROBE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(float(sys.argv[2]))
try:
    s.connect((sys.argv[1], 9))
    s.send(b"x")
    s.recv(16)
except ConnectionRefusedError:
    print("reachable")   # the peer's kernel answered: port unreachable
except OSError as exc:
    print("unreachable", type(exc).__name__)
"""


def reachable(src: Host, dst_ip: str, timeout_s: float = 0.5) -> bool:
    """Whether ``src`` gets an answer from ``dst_ip``'s kernel (no ping needed)."""
    out = src.run([sys.executable, "-c", PROBE, dst_ip, str(timeout_s)]).stdout
    return out.startswith("reachable")


def test_hosts_reach_each_other_and_names_are_unique(lan: Lan) -> None:
    a, b, c = (lan.add_host(n) for n in "abc")
    assert len({a.ip, b.ip, c.ip}) == 3
    assert all(ipaddress_in(h.ip, str(lan.subnet)) for h in (a, b, c))
    assert reachable(a, b.ip) and reachable(b, c.ip) and reachable(c, a.ip)
    assert {h.netns for h in (a, b, c)} | {lan.switch_netns} <= set(list_netns())
    assert lan.id.startswith(f"{PREFIX}{os.getpid()}x")
    with Lan() as other:
        assert other.id != lan.id
        x = other.add_host("a")
        assert x.netns != a.netns
        assert not reachable(x, b.ip, 0.2)  # two LANs are two separate switches


def ipaddress_in(ip: str, net: str) -> bool:
    import ipaddress

    return ipaddress.ip_address(ip) in ipaddress.ip_network(net)


@pytest.mark.parametrize("mode", ["link", "nft"])
def test_cut_and_heal(lan: Lan, mode: str) -> None:
    if mode == "nft" and (reason := nft_unavailable_reason()):
        pytest.skip(reason)
    a, b, c = (lan.add_host(n) for n in "abc")
    c.cut(mode)  # type: ignore[arg-type]
    assert not reachable(a, c.ip, 0.3)
    assert not reachable(c, b.ip, 0.3)
    assert reachable(a, b.ip)
    c.heal()
    assert reachable(a, c.ip, 2.0) and reachable(c, b.ip, 2.0)


def test_set_ip_renumbers_a_host(lan: Lan) -> None:
    a, b = lan.add_host("a"), lan.add_host("b")
    old = b.ip
    new = str(lan.subnet.network_address + 77)
    b.set_ip(new)
    assert b.ip == new
    assert reachable(a, new) and not reachable(a, old, 0.3)


IGNORES_SIGTERM = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("up", flush=True)
time.sleep(600)
"""


def test_close_stops_processes_and_deletes_everything_even_after_a_failure() -> None:
    if reason := lan_unavailable_reason():
        pytest.skip(reason)
    with pytest.raises(RuntimeError, match="test failed"):
        with Lan() as lan:
            host = lan.add_host("a")
            proc = host.popen([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(600)"])
            assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
            ignoring = host.popen([sys.executable, "-c", IGNORES_SIGTERM])
            assert ignoring.stdout is not None and ignoring.stdout.readline().strip() == "up"
            names = [host.netns, lan.switch_netns]
            raise RuntimeError("test failed")
    assert proc.returncode is not None and ignoring.returncode == -9  # SIGKILL after the grace period
    for pid in (proc.pid, ignoring.pid):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not set(names) & set(list_netns())
    assert lan.leftovers() == []


def test_cleanup_stale_removes_only_namespaces_of_dead_runs(lan: Lan) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # reaped: this pid's run is gone
    stale = f"{PREFIX}{dead_pid}x1-sw"
    if stale in list_netns():
        pytest.skip("pid reused by a namespace already")
    sh(["ip", "netns", "add", stale])
    try:
        lan.add_host("a")
        cleanup_stale()  # a run beside this one (another xdist worker, another suite) may clean it first
        assert stale not in list_netns()
        assert lan.switch_netns in list_netns()  # ours: the pid is alive
    finally:
        sh(["ip", "netns", "delete", stale], check=False)
