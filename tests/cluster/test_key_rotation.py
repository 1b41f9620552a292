"""`swarm token --rotate` on a running cluster: every member switches to the new key without a
restart and keeps running its jobs, a node with the new token joins, one with the old token is
refused, and neither token reaches a log."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from swarmcompute.membership.messages import Ping
from swarmcompute.testing.clusters import FAST_GOSSIP, formed, start_cluster
from swarmcompute.testing.daemons import free_port, stop_detached, wait_until
from swarmcompute.transport.keys import ClusterKey, new_cluster_key
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


def test_a_member_restarted_with_its_token_from_before_a_rotation_starts_with_the_current_key_and_a_warning(
    daemon_factory, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """What a service unit's credential or a config file's token-file holds after a rotation:
    the node was set up with it, so it must still start (the saved key wins), not crash-loop."""
    nodes = start_cluster(daemon_factory, 2)
    first, second = nodes
    wait_until(lambda: formed(nodes), 30, "a 2-node cluster")
    old_token = first.token_from_disk()
    rotated = first.swarm("token", "--rotate")
    assert rotated.returncode == 0, rotated.stderr
    new_token = rotated.stdout.strip()
    wait_until(
        lambda: ClusterKey.load(second.state_dir / "cluster.key").token == new_token, 10, "n1 to save the new key"
    )
    second.stop()
    token_file = tmp_path / "join.token"
    token_file.write_text(old_token + "\n")
    token_file.chmod(0o600)
    join = ("join", "--detach", "--bind", "127.0.0.1", "--port", str(second.port), "--no-mdns")
    try:
        restarted = second.swarm(*join, "--token-file", str(token_file))
        assert restarted.returncode == 0, restarted.stderr
        assert "is up" in restarted.stdout
        assert restarted.stderr.count("\n") == 1 and restarted.stderr.startswith("swarm: warning: ")
        assert "before `swarm token --rotate`" in restarted.stderr and "`swarm token`" in restarted.stderr
        assert second.token_from_disk() == new_token  # the saved key won
        wait_until(lambda: formed(nodes), 30, "the cluster to be whole again")
        assert second.status()["cluster_id"] == new_token.split("-")[1]
    finally:
        stop_detached(second.state_dir)

    other = second.swarm(*join, "--token", new_cluster_key().token)  # a truly different cluster's
    assert other.returncode == 2 and other.stdout == ""
    assert other.stderr.count("\n") == 1 and "--state-dir" in other.stderr and "swarm leave" not in other.stderr
    assert f"is of cluster {new_token.split('-')[1]}" in other.stderr
    assert not (second.state_dir / "daemon.pid").exists()


def test_a_member_that_was_down_during_a_rotation_and_returns_within_the_grace_period_gets_the_new_key(
    daemon_factory,
) -> None:  # type: ignore[no-untyped-def]
    """It comes back on the old key, which members still reach it with but no member's port lets
    in: told the new key by the members, it switches and is a voter of the cluster again."""
    nodes = start_cluster(daemon_factory, 3)
    first, _, third = nodes
    wait_until(lambda: formed(nodes, 3), 30, "a 3-voter cluster")
    third.stop()
    rotated = first.swarm("token", "--rotate")
    assert rotated.returncode == 0, rotated.stderr
    new_token = rotated.stdout.strip()
    time.sleep(3)
    third.token = None  # restarted as it was set up, with nothing but its state dir
    t0 = time.monotonic()
    third.start()
    wait_until(lambda: third.token_from_disk() == new_token, 20, "the returning member to get the new key")
    wait_until(lambda: formed(nodes, 3), 30, "the cluster to be whole again, three voters")
    print(f"the returning member was back in the cluster {time.monotonic() - t0:.2f} s after it started")
    assert third.status()["cluster_id"] == new_token.split("-")[1]
    assert "cluster_key_noticed" in third.log_path.read_text(errors="replace")
    job = third.client.submit(["echo", "back"], node="n2")
    assert third.client.wait(job, timeout=20)["state"] == "succeeded"


def test_a_member_that_returns_after_the_grace_period_stops_saying_it_must_join_again(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    """No member reaches it any more and each refuses its key: it stops in one line (exit 78, which
    the systemd unit does not restart on) instead of running on alone without a quorum."""
    grace = {"SWARM_TEST_KEY_GRACE_S": "1"}
    nodes = start_cluster(lambda name, **kw: daemon_factory(name, extra_env=grace, **kw), 3)
    first, _, third = nodes
    wait_until(lambda: formed(nodes, 3), 30, "a 3-voter cluster")
    third.stop()
    assert first.swarm("token", "--rotate").returncode == 0
    wait_until(lambda: "peer_transport_old_key_dropped" in first.log_tail(200), 10, "the grace period to end")
    third.token = None
    third.start()
    assert third.proc is not None
    third.proc.wait(timeout=60)
    said = [line for line in third.log_tail(20).splitlines() if line.startswith("swarm: ")]
    assert third.proc.returncode == 78, third.log_tail(20)
    assert said == [said[-1]] and said[-1].startswith("swarm: every member this node knows (127.0.0.1:")
    assert "rotated while it was down" in said[-1] and "--state-dir" in said[-1] and "`swarm token`" in said[-1]
