"""Nodes gone for good stop cluttering `swarm status`: `swarm forget` drops a dead node from every
node's view, peers.json and the Raft configuration (a voter while quorum holds; a live node is
refused in one line), and a dead non-voter fades from `swarm status`/`swarm nodes` after
``--forget-after`` (one line counts them; `swarm nodes --all` lists them)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from swarmcompute.errors import NodeNotFoundError
from swarmcompute.testing.clusters import formed, leader_of, start_cluster
from swarmcompute.testing.daemons import DaemonProcess, wait_until


def _cluster(tmp_path: Path, n: int, *extra: str) -> tuple[list[DaemonProcess], list[DaemonProcess]]:
    started: list[DaemonProcess] = []

    def make(name: str, **kwargs: object) -> DaemonProcess:
        node = DaemonProcess(tmp_path / name, name=name, **kwargs)  # type: ignore[arg-type]
        started.append(node)
        return node

    try:
        return start_cluster(make, n, *extra), started
    except BaseException:
        _stop(started)
        raise


def _stop(started: list[DaemonProcess]) -> None:
    for node in started:
        node.stop()
        node.kill()


def _peers(node: DaemonProcess) -> dict[str, object]:
    return dict(json.loads((node.state_dir / "peers.json").read_text()))


def _listed(node: DaemonProcess) -> dict[str, str]:
    """Where ``node`` lists ``node_id``: shown, hidden (`--all` only), or nowhere."""
    status = node.status()
    shown = {n["id"]: "shown" for n in status["nodes"]}
    return {**{n["id"]: "hidden" for n in status["hidden_nodes"]}, **shown}


def test_a_dead_voter_is_forgotten_by_every_node_while_quorum_holds_and_a_live_node_is_refused(
    tmp_path: Path,
) -> None:
    nodes, started = _cluster(tmp_path, 3, "--voter-grace", "300")
    try:
        wait_until(lambda: formed(nodes, 3), 30, "a formed 3-node cluster")
        leader = leader_of(nodes)
        victim = next(n for n in nodes if n.status()["node_id"] != leader)
        victim_id = victim.status()["node_id"]
        survivors = [n for n in nodes if n is not victim]
        follower = next(n for n in survivors if n.status()["node_id"] != leader)
        alive = follower.swarm("forget", survivors[0].name or "")
        assert alive.returncode == 2 and alive.stderr.count("\n") == 1, alive.stderr
        assert "is alive at" in alive.stderr and "swarm leave" in alive.stderr
        victim.kill()
        early = follower.swarm("forget", victim.name or "")  # down, not yet seen so: says when to try
        assert early.returncode == 2 and early.stderr.count("\n") == 1, early.stderr
        assert re.search(r"it shows dead in `swarm nodes` within about \d+ s: forget it then$", early.stderr), early
        for node in survivors:
            wait_until(
                lambda node=node: any(n["id"] == victim_id and n["state"] == "dead" for n in node.status()["nodes"]),
                30,
                "the victim to be declared dead",
            )
        forgot = follower.swarm("forget", victim.name or "")  # through a follower: forwarded to the leader
        assert forgot.returncode == 0, forgot.stderr
        names = sorted(n.name or "" for n in survivors)
        assert forgot.stdout == (
            f"forgot {victim.name}: it was a voter; the voters are now {', '.join(names)} and quorum holds "
            "(2 of 2 alive, 2 needed)\n"
        )
        for node in survivors:
            wait_until(
                lambda node=node: victim_id not in _listed(node) and victim_id not in _peers(node),
                10,
                "every node to forget it, peers.json too",
            )
            status = node.status()
            assert len(status["quorum"]["voters"]) == 2 and status["quorum"]["healthy"]
        with pytest.raises(NodeNotFoundError, match="no node"):
            follower.client.forget(victim.name or "")
        # the cluster works on: a job runs on the two that are left
        job = follower.client.submit(["echo", "on"], cpus=0)
        assert follower.client.wait(job, timeout=30)["state"] == "succeeded"
    finally:
        _stop(started)


def test_a_dead_non_voter_fades_from_status_after_forget_after_and_forget_drops_it_from_all(
    tmp_path: Path,
) -> None:
    nodes, started = _cluster(tmp_path, 2, "--max-voters", "1", "--forget-after", "1s")
    try:
        wait_until(lambda: formed(nodes, 1), 30, "a formed cluster of one voter and one learner")
        voter, learner = nodes
        learner_id = learner.status()["node_id"]
        learner.kill()
        wait_until(lambda: _listed(voter).get(learner_id) == "hidden", 30, "the dead learner to fade")
        [row] = voter.status()["hidden_nodes"]
        assert row["id"] == learner_id and row["state"] == "dead" and row["down_s"] >= 1.0
        hidden = "1 long-gone node hidden (left, or dead over 1s): swarm nodes --all"
        status_text = voter.swarm("status").stdout
        assert hidden in status_text and learner_id not in status_text
        listed = voter.swarm("nodes").stdout
        assert listed.endswith(hidden + "\n") and f"{learner.name} " not in listed
        assert [(r["id"], r["state"]) for r in voter.client.nodes(all=True)][-1] == (learner_id, "dead")
        forgot = voter.client.forget(learner.name or "")
        assert forgot["message"].startswith(f"forgot {learner.name}: gone from the cluster's configuration")
        assert [r["id"] for r in voter.client.nodes(all=True)] == [voter.status()["node_id"]]
        assert hidden not in voter.swarm("status").stdout
    finally:
        _stop(started)
