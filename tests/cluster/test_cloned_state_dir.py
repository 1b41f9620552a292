"""A node's state directory copied to a second machine while the first runs (an SD card or disk
image cloned after the node joined): two processes with one node id, one Raft voter with two
minds. Real loopback daemons; the copy is a real copy of a running node's directory. The rules
(who finds whom, who steps aside, that the copy never settled) are swept by the gossip simulator
(``tests/membership/test_twins.py``); this checks the daemon around them."""

from __future__ import annotations

import time
from pathlib import Path

from swarmcompute.errors import EXIT_MUST_NOT_RUN
from swarmcompute.local_cluster import FAST_GOSSIP, free_port, stop_all
from swarmcompute.testing.clusters import formed_cluster, leader_of
from swarmcompute.testing.daemons import DaemonProcess, copy_of, wait_until


def test_a_copy_of_a_running_node_stops_in_one_line_and_the_node_keeps_its_place_and_its_jobs(
    tmp_path: Path,
) -> None:
    with formed_cluster(tmp_path / "c", 3) as nodes:
        n0, original = nodes[0], nodes[2]
        leader, term = leader_of(nodes), n0.status()["term"]
        address = next(n["address"] for n in n0.status()["nodes"] if n["name"] == "n2")
        running = n0.client.submit("sleep 30", node="n2")
        wait_until(lambda: n0.client.job(running)["state"] == "running", 20, "the job on n2 to start")
        copy = DaemonProcess(
            copy_of(original, tmp_path / "copy"),
            name="n2",
            port=free_port(),
            peers=(f"127.0.0.1:{n0.port}",),
            extra_args=FAST_GOSSIP,
        )
        try:
            copy.start(wait=False)
            assert copy.proc is not None
            rc = copy.proc.wait(timeout=30)
            said = [line for line in copy.log_tail(200).splitlines() if line.startswith("swarm: ")]
        finally:
            stop_all([copy])
        assert rc == EXIT_MUST_NOT_RUN  # 78: the systemd unit does not start it again
        assert said == [
            f"swarm: another machine ({address}) runs node n2 ({original.status()['node_id']}) too, from a copy of "
            f"this state directory ({copy.state_dir}; a cloned disk or SD card?). This one stopped, so that the cluster "
            "does not count one node twice: move the directory away and `swarm join` again to make this machine a node "
            "of its own"
        ]
        log = copy.log_path.read_text()
        assert "raft_became_leader" not in log and "lease_gained" not in log, "the copy took part before it stopped"
        assert "this one keeps the node" in original.log_path.read_text()
        seen = original.status()["copy_seen"]  # said where a person looks, not only in a log
        assert seen is not None and seen["address"] == f"127.0.0.1:{copy.port}" and seen["at"] <= time.time()
        said_in_status = original.swarm("status").stdout
        assert (
            f"copy     a copy of this node's state directory ran at 127.0.0.1:{copy.port} " in said_in_status
            and "and stopped itself: give that machine a state directory of its own" in said_in_status
        ), said_in_status
        assert n0.status()["copy_seen"] is None
        # The original keeps its place, its address everywhere, and its job: never run twice.
        for node in nodes:
            wait_until(
                lambda node=node: (
                    {n["name"]: (n["state"], n["address"]) for n in node.status()["nodes"]}["n2"]  # type: ignore[misc]
                    == ("alive", address)
                ),
                10,
                f"n2 alive at {address} for {node.name}",
            )
        assert (leader_of(nodes), n0.status()["term"]) == (leader, term)
        job = n0.client.job(running)
        assert (job["state"], job["attempt"], job["node_name"]) == ("running", 1, "n2"), job
        assert n0.client.wait(n0.client.submit("echo on n2", node="n2"), timeout=30)["state"] == "succeeded"


def test_a_node_restarted_on_another_port_is_not_taken_for_a_copy_of_itself(tmp_path: Path) -> None:
    with formed_cluster(tmp_path / "c", 3) as nodes:
        n0, old = nodes[0], nodes[2]
        old.kill()  # its last address stays in its peers' tables until they see it back
        began = time.monotonic()
        back = DaemonProcess(
            old.state_dir, name="n2", port=free_port(), peers=(f"127.0.0.1:{n0.port}",), extra_args=FAST_GOSSIP
        )
        try:
            back.start()
            job = n0.client.wait(n0.client.submit("echo back", node="n2"), timeout=30)
            took = time.monotonic() - began
            assert job["state"] == "succeeded", job
            assert back.alive()
            assert "duplicate_node" not in back.log_path.read_text()
            assert took < 15, took
        finally:
            stop_all([back])
