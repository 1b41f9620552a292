"""Lost quorum is said plainly and `swarm recover` is the way out; `swarm leave` on the leader hands over."""

from __future__ import annotations

import json
import time

from swarmcompute.testing.clusters import leader_of, start_cluster, voters
from swarmcompute.testing.daemons import DaemonProcess, wait_until


def test_lost_quorum_names_the_missing_voters_and_recover_brings_the_survivor_back(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    nodes = start_cluster(daemon_factory, 3)
    wait_until(lambda: leader_of(nodes) and all(len(voters(n)) == 3 for n in nodes), 30, "3 voters")
    survivor, *doomed = nodes
    doomed_ids = sorted(n.status()["node_id"] for n in doomed)
    running = survivor.client.submit(["sleep", "300"], cpus=0, node=survivor.status()["node_id"])
    wait_until(lambda: survivor.client.job(running)["state"] == "running", 20, "a job running on the survivor")
    for node in doomed:
        node.kill()

    def lost() -> bool:
        status = survivor.status()
        states = {v["id"]: v["state"] for v in status["nodes"]}
        quorum = status["quorum"]
        return (
            not quorum["healthy"] and quorum["missing"] == doomed_ids and all(states[i] == "dead" for i in doomed_ids)
        )

    wait_until(lost, 30, "the survivor to report lost quorum naming both dead voters")
    text = survivor.swarm("status").stdout
    assert "LOST" in text and all(i in text for i in doomed_ids)
    names = ", ".join(sorted(n.name for n in doomed))  # names for people, and the way out
    assert f"LOST: missing voters {names} (2 of 3 needed); if they are gone for good: swarm recover" in text
    assert survivor.client.job(running)["state"] == "running"  # running jobs keep running
    started = time.monotonic()
    refused_run = survivor.swarm("run", "-d", "--", "true")  # fails fast, one line, no phantom job id
    assert time.monotonic() - started < 5.0
    assert refused_run.returncode == 2 and refused_run.stdout == ""
    assert refused_run.stderr.count("\n") == 1 and "no quorum" in refused_run.stderr and names in refused_run.stderr

    refused = survivor.swarm("recover", input="y\n")  # not a terminal: nobody is asked, not even a pipe
    assert refused.returncode == 2 and "voters missing" in refused.stdout and "--yes" in refused.stderr
    recovered = survivor.swarm("recover", "--yes")
    assert recovered.returncode == 0, recovered.stderr
    wait_until(lambda: survivor.status()["quorum"]["healthy"], 20, "quorum after recover")
    status = survivor.status()
    assert status["quorum"]["voters"] == [status["node_id"]] and status["leader"] == status["node_id"]
    job = survivor.client.submit(["echo", "recovered"], cpus=0)
    assert survivor.client.wait(job, timeout=30)["state"] == "succeeded"
    survivor.client.cancel(running)


def test_recover_refuses_when_quorum_is_healthy(daemon: DaemonProcess) -> None:
    result = daemon.swarm("recover", "--yes")
    assert result.returncode == 2 and "quorum is healthy" in result.stderr


def test_leave_on_the_leader_transfers_leadership_first(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    nodes = start_cluster(daemon_factory, 3)
    wait_until(lambda: leader_of(nodes) and all(len(voters(n)) == 3 for n in nodes), 30, "3 voters")
    old = leader_of(nodes)
    leaving = next(n for n in nodes if n.status()["node_id"] == old)
    rest = [n for n in nodes if n is not leaving]
    started = time.monotonic()
    left = leaving.swarm("leave")
    assert left.returncode == 0, left.stderr
    new = wait_until(lambda: (lid := leader_of(rest)) not in (None, old) and lid, 10, "a new leader")
    handover_s = time.monotonic() - started
    assert "leadership_transferred" in leaving.log_path.read_text()
    print(f"\nleadership handed from {old} to {new}; leave took {handover_s:.2f}s")
    states = {v["id"]: v["state"] for v in json.loads(rest[0].swarm("status", "--json").stdout)["nodes"]}
    wait_until(  # a node that left is listed by `swarm nodes --all`, not `swarm status`
        lambda: {v["id"]: v["state"] for v in rest[0].client.nodes(all=True)}.get(old) in ("left", "dead"),
        15,
        "the leaver to be shown as left",
    )
    assert states.get(new) == "alive"


def test_leave_of_a_follower_runs_each_of_its_jobs_again_once_elsewhere(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    nodes = start_cluster(daemon_factory, 3)
    wait_until(lambda: leader_of(nodes) and all(len(voters(n)) == 3 for n in nodes), 30, "3 voters")
    leader = leader_of(nodes)
    leaving = next(n for n in nodes if n.status()["node_id"] != leader)
    leaver_id = leaving.status()["node_id"]
    client = next(n for n in nodes if n is not leaving).client
    ids = [client.submit(["sh", "-c", "sleep 3; echo attempt $SWARM_ATTEMPT"], cpus=0) for _ in range(6)]
    wait_until(lambda: all(client.job(i)["state"] == "running" for i in ids), 30, "6 running jobs")
    moved = [i for i in ids if client.job(i)["node"] == leaver_id]
    assert moved, "no job ran on the follower"

    left = leaving.swarm("leave")
    assert left.returncode == 0, left.stderr
    ended = client.wait(ids, timeout=60)
    assert {j["state"] for j in ended} == {"succeeded"}
    # it was placed on the leaving node again and again, refused each time: attempt 9
    assert {i: client.job(i)["attempt"] for i in moved} == {i: 2 for i in moved}
    assert all(client.job(i)["node"] != leaver_id for i in moved)
    # A job pinned to the node that left says so, and how to run it elsewhere ("which is not live"
    # read as a node that is down and comes back by itself)
    name = leaving.name
    pinned = client.submit(["true"], cpus=0, node=name)
    why = (
        f"pinned to node {name!r}, which left the cluster (swarm leave): it runs once that node joins"
        f" again; `swarm update {pinned} --any-node` lets it run elsewhere"
    )
    wait_until(lambda: client.job(pinned)["message"] == why, 15, "the pinned job to say its node left")
    assert client.update(pinned, node="")[0]["outcome"] == "updated"
    assert client.wait(pinned, timeout=30)["state"] == "succeeded"
