"""A node whose Raft log is damaged (a failing SD card) or gone (its ``raft/`` removed to get past
the damage): real loopback daemons, a real flipped byte. Raft's safety rests on each voter keeping
its log and its vote, so such a node must not come back as the same voter: it stops in one line
that says how to come back as a new node, and doing what it says works. (Before: a removed
``raft/`` came back as the same voter with an empty log, and a job given to it never ran.)"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from swarmcompute.errors import EXIT_MUST_NOT_RUN
from swarmcompute.local_cluster import FAST_GOSSIP, stop_all
from swarmcompute.testing.clusters import formed_cluster
from swarmcompute.testing.daemons import DaemonProcess, wait_until

REMEDY = (
    "it must not vote or acknowledge with what it lost. On another member run `swarm forget n2` (once it is seen "
    "dead), then move {root} away and `swarm join` again (with the token `swarm token` prints on a member) to come "
    "back as a new node; its jobs' output stays in the moved directory"
)


def refused(node: DaemonProcess) -> str:
    """Start ``node`` and return the one line it exits with: ``EXIT_MUST_NOT_RUN`` (78), on which
    the systemd unit does not start it again."""
    node.start(wait=False)
    assert node.proc is not None
    assert node.proc.wait(timeout=30) == EXIT_MUST_NOT_RUN
    said = [line for line in node.log_tail(200).splitlines() if line.startswith("swarm: ")]
    assert len(said) == 1, node.log_tail(60)
    return said[0]


def test_a_damaged_raft_log_stops_the_node_in_one_line_and_doing_what_it_says_brings_it_back(tmp_path: Path) -> None:
    with formed_cluster(tmp_path / "c", 3) as nodes:
        n0, n2 = nodes[0], nodes[2]
        ran = n0.client.wait(n0.client.submit("echo kept", node="n2"), timeout=30)
        n2.kill()
        raft_log = n2.state_dir / "raft" / "raft.log"
        data = bytearray(raft_log.read_bytes())
        data[len(data) // 2] ^= 0xFF  # one bad byte in the middle: not a torn tail
        raft_log.write_bytes(bytes(data))

        line = refused(n2)
        damage = r"record at byte \d+ (failed its CRC check|has a bad length \d+)"  # the byte hit a payload or a length
        said = re.escape(f"swarm: this node's Raft log is damaged ({raft_log}: ") + damage
        assert re.fullmatch(
            said + re.escape(": a failing disk or SD card?); " + REMEDY.format(root=n2.state_dir)), line
        )

        wait_until(lambda: n0.swarm("forget", "n2").returncode == 0, 30, "`swarm forget n2` once n2 is seen dead")
        moved = shutil.move(n2.state_dir, tmp_path / "n2.damaged")
        again = DaemonProcess(
            tmp_path / "n2",
            name="n2",
            port=n2.port,
            token=n0.token_from_disk(),
            peers=(f"127.0.0.1:{n0.port}",),
            extra_args=FAST_GOSSIP,
        )
        try:
            again.start()
            job = n0.client.wait(n0.client.submit("echo back", node="n2"), timeout=30)
            assert job["state"] == "succeeded"
            assert again.status()["node_id"] != ran["node"]  # a new node, under the old name
            assert (Path(moved) / "files").is_dir()
            wait_until(lambda: n0.status()["quorum"]["healthy"], 20, "a healthy quorum")
        finally:
            stop_all([again])


@pytest.mark.parametrize("removed", ["raft", "raft/raft.log"])
def test_a_node_whose_raft_log_was_removed_is_refused_rather_than_voting_with_nothing(
    tmp_path: Path, removed: str
) -> None:
    with formed_cluster(tmp_path / "c", 3) as nodes:
        n2 = nodes[2]
        n2.kill()
        gone = n2.state_dir / removed
        if gone.is_dir():
            shutil.rmtree(gone)
        else:
            gone.unlink()  # the snapshot, when there is one, keeps no vote or term
        line = refused(n2)
        assert line == (
            f"swarm: this node's Raft log is gone ({n2.state_dir / 'raft' / 'raft.log'} was removed); "
            + REMEDY.format(root=n2.state_dir)
        )
        n2.start(wait=False)  # and again: it stays refused
        assert n2.proc is not None and n2.proc.wait(timeout=30) == EXIT_MUST_NOT_RUN


def test_a_one_node_cluster_whose_raft_log_is_damaged_is_told_to_start_a_new_cluster(tmp_path: Path) -> None:
    with formed_cluster(tmp_path / "c", 1) as nodes:
        (only,) = nodes
        only.client.wait(only.client.submit("echo kept"), timeout=30)
        only.kill()
        (only.state_dir / "raft" / "raft.log").unlink()
        assert refused(only) == (
            f"swarm: this node's Raft log is gone ({only.state_dir / 'raft' / 'raft.log'} was removed); it must not "
            f"vote or acknowledge with what it lost. It knew no other member: move {only.state_dir} away and "
            "`swarm join` to start a new cluster (the job history was in that log; its jobs' output stays in the "
            "moved directory)"
        )
