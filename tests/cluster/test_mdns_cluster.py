"""Clusters found by mDNS alone: on loopback, and on a LAN of network namespaces (cut and healed)."""

from __future__ import annotations

import subprocess
import sys

from swarmcompute.errors import EXIT_MUST_NOT_RUN
from swarmcompute.local_cluster import stop_all
from swarmcompute.testing.daemons import DaemonProcess, copy_of, free_port, wait_until
from swarmcompute.testing.netns import Host, Lan

FAST = ("--gossip", "local")


def formed(nodes: list[DaemonProcess], n: int) -> bool:
    statuses = [d.status() for d in nodes]
    return (
        len({s["leader"] for s in statuses}) == 1
        and statuses[0]["leader"] is not None
        and all(len(s["nodes"]) == n and all(v["state"] == "alive" for v in s["nodes"]) for s in statuses)
        and all(s["quorum"]["healthy"] for s in statuses)
    )


def test_loopback_nodes_join_by_mdns_alone(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    first = daemon_factory("m0", port=free_port(), mdns=True, extra_args=(*FAST, "--new-cluster")).start()
    token = first.token_from_disk()
    others = [
        daemon_factory(f"m{i}", port=free_port(), mdns=True, token=token, extra_args=FAST).start() for i in (1, 2)
    ]
    nodes = [first, *others]
    wait_until(lambda: formed(nodes, 3), 30, "3 loopback nodes to find each other by mDNS")


def test_join_without_token_refuses_when_a_cluster_answers(daemon_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    daemon_factory("r0", port=free_port(), mdns=True, extra_args=(*FAST, "--new-cluster")).start()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "swarmcompute.node",
            "--state-dir",
            str(tmp_path / "second"),
            "--bind",
            "127.0.0.1",
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "found swarm cluster" in result.stderr and "swarm join --token" in result.stderr
    assert "--new-cluster" in result.stderr
    assert not (tmp_path / "second" / "cluster.key").exists()


def test_lan_of_three_hosts_by_mdns_survives_a_cut(lan: Lan, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    hosts = [lan.add_host(f"h{i}") for i in range(3)]
    nodes = _one_on_each(daemon_factory, hosts)
    first = nodes[0]
    wait_until(lambda: formed(nodes, 3), 30, "3 hosts to form a cluster with no address given")
    addresses = sorted(v["address"] for v in first.status()["nodes"])
    assert addresses == sorted(f"{h.ip}:7340" for h in hosts)

    cut_id = nodes[2].status()["node_id"]
    hosts[2].cut()
    rest = nodes[:2]

    def cut_seen() -> bool:
        statuses = [d.status() for d in rest]
        return all(
            next(v for v in s["nodes"] if v["id"] == cut_id)["state"] == "dead" and s["quorum"]["healthy"]
            for s in statuses
        )

    wait_until(cut_seen, 30, "the others to mark the cut host dead while keeping quorum")
    job = nodes[1].client.submit(["echo", "during the cut"])
    assert nodes[0].client.wait(job, timeout=30)["state"] == "succeeded"

    hosts[2].heal()
    wait_until(lambda: formed(nodes, 3), 45, "the healed host to be alive again everywhere")


def test_a_lan_of_docker_hosts_forms_by_mdns_with_every_interface_bound(lan: Lan, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    # Docker gives every host a docker0 bridge at 172.17.0.1/16: a subnet all the hosts "share". A
    # node that picked a peer's ad address there dialled itself, and no node joined another.
    hosts = [lan.add_host(f"d{i}") for i in range(3)]
    for host in hosts:
        host.run(["ip", "link", "add", "docker0", "type", "bridge"])
        host.run(["ip", "addr", "add", "172.17.0.1/16", "dev", "docker0"])
        host.run(["ip", "link", "set", "docker0", "up"])
    nodes = _one_on_each(daemon_factory, hosts, bind="0.0.0.0")  # swarm join's default: every interface
    first = nodes[0]
    wait_until(lambda: formed(nodes, 3), 30, "3 Docker hosts to find each other by mDNS")
    addresses = sorted(v["address"] for v in first.status()["nodes"])
    assert addresses == sorted(f"{h.ip}:7340" for h in hosts)


def test_a_cloned_sd_card_on_a_fourth_host_stops_and_the_node_it_copied_keeps_its_place(  # type: ignore[no-untyped-def]
    lan: Lan, daemon_factory, tmp_path
) -> None:
    # The card of h2 imaged (while it ran) into a fourth machine, which boots it: same node id,
    # same port, its own IP; it finds the cluster by mDNS and its copied peer book.
    hosts = [lan.add_host(f"h{i}") for i in range(4)]
    nodes = _one_on_each(daemon_factory, hosts[:3])
    wait_until(lambda: formed(nodes, 3), 30, "3 hosts to form a cluster by mDNS")
    original, spare = nodes[2], hosts[3]
    copy = DaemonProcess(
        copy_of(original, tmp_path / "card"),
        name="h2",
        bind=spare.ip,
        port=7340,
        mdns=True,
        extra_args=FAST,
        wrap=("ip", "netns", "exec", spare.netns),
    )
    try:
        copy.start(wait=False)
        assert copy.proc is not None
        assert copy.proc.wait(timeout=30) == EXIT_MUST_NOT_RUN
        said = [line for line in copy.log_tail(200).splitlines() if line.startswith("swarm: ")]
    finally:
        stop_all([copy])
    assert len(said) == 1 and said[0].startswith(f"swarm: another machine ({hosts[2].ip}:7340) runs node h2 ("), said
    wait_until(lambda: formed(nodes, 3), 20, "the three hosts' cluster as before")
    for node in nodes:  # the copy's ad may have reached a peer first: the original's own word wins
        wait_until(
            lambda node=node: {v["name"]: v["address"] for v in node.status()["nodes"]}["h2"] == f"{hosts[2].ip}:7340",  # type: ignore[misc]
            10,
            f"h2 at its own address for {node.name}",
        )
    assert original.status()["copy_seen"]["address"] == f"{spare.ip}:7340"  # and says it in `swarm status`
    job = nodes[0].client.submit(["echo", "on h2"], node="h2")
    assert nodes[0].client.wait(job, timeout=30)["state"] == "succeeded"


def _one_on_each(daemon_factory, hosts: list[Host], bind: str | None = None) -> list[DaemonProcess]:  # type: ignore[no-untyped-def]
    """A node found by mDNS on each host (bound to its address, or ``bind``), named after it: the
    first makes the cluster, the others join it with its token and no address."""

    def node(host: Host, token: str | None) -> DaemonProcess:
        return daemon_factory(
            host.name,
            bind=bind or host.ip,
            port=7340,
            mdns=True,
            token=token,
            extra_args=FAST,
            wrap=("ip", "netns", "exec", host.netns),
        ).start()

    first = node(hosts[0], None)
    token = first.token_from_disk()
    return [first, *(node(host, token) for host in hosts[1:])]
