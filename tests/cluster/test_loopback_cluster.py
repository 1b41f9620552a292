"""Real daemons on 127.0.0.1 form one cluster: joined by --peer, one leader, every node listed."""

from __future__ import annotations

from collections.abc import Callable

from swarmcompute.testing.daemons import DaemonProcess, free_port, wait_until


def start_cluster(daemon_factory: Callable[..., DaemonProcess], n: int) -> list[DaemonProcess]:
    first_port = free_port()
    first = daemon_factory("n0", port=first_port).start()
    token = first.token_from_disk()
    nodes = [first]
    for i in range(1, n):
        nodes.append(daemon_factory(f"n{i}", port=free_port(), token=token, peers=(f"127.0.0.1:{first_port}",)).start())
    return nodes


def converged(nodes: list[DaemonProcess], voters: int) -> bool:
    statuses = [n.status() for n in nodes]
    leaders = {s["leader"] for s in statuses}
    if len(leaders) != 1 or None in leaders:
        return False
    for s in statuses:
        if len(s["nodes"]) != len(nodes) or any(v["state"] != "alive" for v in s["nodes"]):
            return False
        if len(s["quorum"]["voters"]) != voters or not s["quorum"]["healthy"]:
            return False
    return True


def test_three_nodes_by_peer_elect_one_leader_and_list_everyone(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    nodes = start_cluster(daemon_factory, 3)
    wait_until(lambda: converged(nodes, voters=3), 30, "3 nodes to agree on a leader and see each other alive")
    status = nodes[2].status()
    names = sorted(v["name"] for v in status["nodes"])
    assert names == ["n0", "n1", "n2"]
    roles = sorted(v["role"] for v in status["nodes"])
    assert roles == ["follower", "follower", "leader"]
    assert {s["cluster_id"] for s in (n.status() for n in nodes)} == {status["cluster_id"]}
    for view in status["nodes"]:
        assert view["cpus"] >= 1 and view["mem_total"] > 0 and view["address"].startswith("127.0.0.1:")


def test_jobs_submitted_on_a_follower_run_and_are_seen_everywhere(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    nodes = start_cluster(daemon_factory, 3)
    wait_until(lambda: converged(nodes, voters=3), 30, "the cluster to form")
    leader_id = nodes[0].status()["leader"]
    follower = next(n for n in nodes if n.status()["node_id"] != leader_id)
    ids = follower.client.submit_many([{"argv": ["sh", "-c", f"echo job {i}"], "cpus": 0.5} for i in range(12)])
    jobs = follower.client.wait(ids, timeout=60)
    assert all(j["state"] == "succeeded" for j in jobs)
    for node in nodes:
        assert [j["state"] for j in node.client.wait(ids, timeout=30)] == ["succeeded"] * 12
