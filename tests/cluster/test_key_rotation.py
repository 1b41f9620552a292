"""`swarm token --rotate` on a running cluster: every member switches to the new key without a
restart and keeps running its jobs, a node with the new token joins, one with the old token is
refused, and neither token reaches a log."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from swarmcompute.membership.messages import Ping
from swarmcompute.testing.clusters import FAST_GOSSIP, formed, start_cluster
from swarmcompute.testing.daemons import free_port, wait_until
from swarmcompute.transport.keys import ClusterKey
from swarmcompute.transport.peer import PeerTransport


def test_rotating_the_key_keeps_members_and_jobs_and_refuses_the_old_token(daemon_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    nodes = start_cluster(daemon_factory, 2)
    first, second = nodes
    wait_until(lambda: formed(nodes), 30, "a 2-node cluster")
    old_token = first.token_from_disk()
    gate = tmp_path / "gate"
    job = first.client.submit(["sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.05; done; echo done"], node="n1")
    wait_until(lambda: first.client.job(job)["state"] == "running", 20, "the job to run on n1")

    t0 = time.monotonic()
    rotated = first.swarm("token", "--rotate")
    assert rotated.returncode == 0, rotated.stderr
    new_token = rotated.stdout.strip()
    assert rotated.stdout == new_token + "\n" and new_token.startswith("swarm1-") and new_token != old_token
    wait_until(
        lambda: all(ClusterKey.load(n.state_dir / "cluster.key").token == new_token for n in nodes),
        10,
        "every member to save the key",
    )
    wait_until(lambda: formed(nodes), 10, "the cluster to be whole on the new key")
    print(f"both members on the new key and healthy {time.monotonic() - t0:.2f} s after the rotation")
    assert first.status()["cluster_id"] == new_token.split("-")[1]

    gate.touch()
    record = first.client.wait(job, timeout=20)
    assert record["state"] == "succeeded" and record["attempt"] == 1  # ran on through the switch

    address = next(v["address"] for v in first.status()["nodes"] if v["id"] == first.status()["node_id"])
    joiner = daemon_factory("n2", port=free_port(), token=new_token, peers=(address,), extra_args=FAST_GOSSIP).start()
    wait_until(lambda: formed([*nodes, joiner]), 30, "a node with the new token to join")

    asyncio.run(_old_key_gets_nothing_in(ClusterKey.from_token(old_token), address))
    wait_until(lambda: "peer_auth_refused" in first.log_tail(400), 10, "the member to log the refusal")
    assert len(first.status()["nodes"]) == 3

    assert second.swarm("token").stdout == new_token + "\n"
    for node in (*nodes, joiner):
        log = node.log_path.read_text(errors="replace")
        assert new_token not in log and new_token.split("-")[2] not in log
        assert old_token.split("-")[2] not in log


async def _old_key_gets_nothing_in(old: ClusterKey, address: str) -> None:
    """Whoever holds only the old token cannot even finish a handshake: no send ever leaves."""
    async with PeerTransport(old, "intruder", lambda sender, msg: None, bind="127.0.0.1", port=0) as intruder:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            assert intruder.send(address, Ping("intruder", "127.0.0.1:1", 1, "x")) is False
            await asyncio.sleep(0.05)
