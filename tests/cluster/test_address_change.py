"""A node whose address changes while it runs (DHCP renewal, Wi-Fi to Ethernet), on a 5-host LAN of
network namespaces, with mDNS off: the new address can only be learned from authenticated peer
messages. Every node binds the wildcard address (the default), as a home-lab node does.

What must hold: within a few seconds every node lists the moved node at its new address, alive; the
leader's quorum is healthy; a job pinned to the moved node runs; no other node was ever suspected
meanwhile; and the jobs that ran across the move kept their first attempt (nothing bounced).

Measured: see the docstring of ``swarmcompute.discovery.address_watch``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest

from swarmcompute.testing.clusters import formed, node_by_id
from swarmcompute.testing.daemons import DaemonProcess, wait_until
from swarmcompute.testing.netns import Host, Lan

RECOVER_DEADLINE_S = 5.0


def start_wildcard_cluster(lan: Lan, daemon_factory: Any, n: int) -> tuple[list[Host], list[DaemonProcess]]:
    hosts = [lan.add_host(f"h{i}") for i in range(n)]

    def node(i: int, token: str | None) -> DaemonProcess:
        return daemon_factory(
            f"h{i}",
            bind="0.0.0.0",
            port=7340,
            token=token,
            peers=() if token is None else (f"{hosts[0].ip}:7340",),
            extra_args=() if token else ("--new-cluster",),
            wrap=("ip", "netns", "exec", hosts[i].netns),
            log_level=os.environ.get("SWARM_TEST_LOG_LEVEL", "info"),
        ).start()

    first = node(0, None)
    token = first.token_from_disk()
    nodes = [first] + [node(i, token) for i in range(1, n)]
    wait_until(lambda: formed(nodes, min(n, 5)), 60, f"{n} hosts to form a cluster")
    return hosts, nodes


class StateWatch:
    """Polls every node's view in a thread and records each (observer, node) state change."""

    def __init__(self, nodes: list[DaemonProcess]) -> None:
        self.nodes = nodes
        self.changes: list[tuple[float, str, str, str]] = []
        self._last: dict[tuple[str, str], str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StateWatch:
        self._thread.start()
        return self

    def seen(self) -> int:
        """How many (observer, node) views the watch has read so far."""
        return len(self._last)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            for d in self.nodes:
                try:
                    status = d.status()
                except Exception:  # a node busy past the client's timeout: try again next round
                    continue
                for v in status["nodes"]:
                    key = (status["node_id"], v["id"])
                    if self._last.get(key) != v["state"]:
                        if key in self._last:
                            self.changes.append((time.monotonic(), key[0], key[1], v["state"]))
                        self._last[key] = v["state"]
            self._stop.wait(0.05)


def moved_everywhere(nodes: list[DaemonProcess], moved_id: str, address: str) -> bool:
    for d in nodes:
        status = d.status()
        if not status["quorum"]["healthy"] or status["leader"] is None:
            return False
        view = next((v for v in status["nodes"] if v["id"] == moved_id), None)
        if view is None or view["address"] != address or view["state"] != "alive":
            return False
        if any(v["state"] != "alive" for v in status["nodes"]):
            return False
    return True


def move(lan: Lan, nodes: list[DaemonProcess], hosts: list[Host], moved: DaemonProcess, last_octet: int) -> float:
    """Renumber ``moved``'s host; return the seconds until every node lists it at its new address
    (alive, every node alive, quorum healthy everywhere), after which a job pinned to it runs."""
    moved_id = moved.status()["node_id"]
    new_ip = str(lan.subnet.network_address + last_octet)
    moved_at = time.monotonic()
    hosts[nodes.index(moved)].set_ip(new_ip)
    wait_until(
        lambda: moved_everywhere(nodes, moved_id, f"{new_ip}:7340"),
        RECOVER_DEADLINE_S + 25,
        "every node to list the moved node at its new address",
    )
    recovered_s = time.monotonic() - moved_at
    observer = next(d for d in nodes if d is not moved)
    pinned = observer.client.submit(["echo", "here"], node=moved.name)
    assert observer.client.wait(pinned, timeout=15)["state"] == "succeeded"
    return recovered_s


def test_a_follower_then_the_leader_change_address_and_are_reached_at_the_new_one_within_seconds_while_nothing_moves(
    lan: Lan, daemon_factory: Any
) -> None:
    hosts, nodes = start_wildcard_cluster(lan, daemon_factory, 5)
    leader = node_by_id(nodes, nodes[0].status()["leader"])
    follower = next(d for d in nodes if d is not leader)
    # one long job pinned to every node, to see that none is stopped and run again
    long_ids = [leader.client.submit(["sleep", "60"], node=d.name, cpus=0) for d in nodes]
    wait_until(lambda: all(leader.client.job(j)["state"] == "running" for j in long_ids), 30, "the long jobs to run")

    with StateWatch(nodes) as watch:
        wait_until(lambda: watch.seen() == len(nodes) ** 2, 10, "the watch to see every node's view")
        follower_s = move(lan, nodes, hosts, follower, 200)
        leader_s = move(lan, nodes, hosts, leader, 201)
    print(
        f"moved: the follower was reached at its new address after {follower_s:.2f}s, the leader after {leader_s:.2f}s"
    )
    not_alive = [c for c in watch.changes if c[3] != "alive"]
    assert not not_alive, f"nodes were suspected or declared dead across the moves: {not_alive}"
    jobs = [follower.client.job(j) for j in long_ids]
    bounced = {j["id"]: (j["state"], j["attempt"]) for j in jobs if j["attempt"] != 1 or j["state"] != "running"}
    assert not bounced, f"jobs were stopped or run again across the moves: {bounced}"
    assert follower_s < RECOVER_DEADLINE_S and leader_s < RECOVER_DEADLINE_S
    for d in nodes:  # stopped together, not one by one (each would wait out the next election)
        if d.proc is not None and d.proc.poll() is None:
            d.proc.send_signal(signal.SIGTERM)


@pytest.mark.slow  # about 30 s: deselected unless SWARM_SLOW=1 (root conftest)
def test_a_node_asleep_long_enough_to_be_declared_dead_wakes_on_another_address_and_rejoins_without_a_restart(
    lan: Lan, daemon_factory: Any
) -> None:
    """A laptop shut for a while and opened on another network: its daemon is frozen (SIGSTOP) long
    enough for every other node to declare it dead, its host is renumbered meanwhile, and then it
    runs on (SIGCONT). The same process, never restarted, must be listed alive at its new address
    by every node and run a job pinned to it."""
    hosts, nodes = start_wildcard_cluster(lan, daemon_factory, 3)
    sleeper = next(d for d in nodes if d.status()["node_id"] != d.status()["leader"])
    sleeper_id, pid = sleeper.status()["node_id"], sleeper.pid
    awake = [d for d in nodes if d is not sleeper]
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_until(
            lambda: all(
                next(v for v in d.status()["nodes"] if v["id"] == sleeper_id)["state"] == "dead" for d in awake
            ),
            60,
            "the others to declare the sleeping node dead",
        )
        new_ip = str(lan.subnet.network_address + 210)
        hosts[nodes.index(sleeper)].set_ip(new_ip)
    finally:
        os.kill(pid, signal.SIGCONT)
    woke = time.monotonic()
    wait_until(
        lambda: moved_everywhere(nodes, sleeper_id, f"{new_ip}:7340"),
        60,
        "every node to list the woken node alive at its new address",
    )
    rejoined_s = time.monotonic() - woke
    assert sleeper.pid == pid and sleeper.proc is not None and sleeper.proc.poll() is None  # never restarted
    pinned = awake[0].client.submit(["echo", "here"], node=sleeper.name)
    assert awake[0].client.wait(pinned, timeout=30)["state"] == "succeeded"
    print(f"woken on a new address: alive there for every node after {rejoined_s:.2f}s")
    for d in nodes:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.send_signal(signal.SIGTERM)
