"""kill -9 in a real loopback cluster: a new leader, dead nodes marked dead, voter slots refilled."""

from __future__ import annotations

import time

from swarmcompute.testing.clusters import leader_of, start_cluster, voters
from swarmcompute.testing.daemons import wait_until


def test_kill_9_of_the_leader_elects_a_new_one_and_jobs_still_run(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    nodes = start_cluster(daemon_factory, 3)
    wait_until(lambda: leader_of(nodes) and all(len(voters(n)) == 3 for n in nodes), 30, "3 voters and a leader")
    old = leader_of(nodes)
    victim = next(n for n in nodes if n.status()["node_id"] == old)
    survivors = [n for n in nodes if n is not victim]
    killed_at = time.monotonic()
    victim.kill()
    new = wait_until(lambda: (lid := leader_of(survivors)) not in (None, old) and lid, 15, "a new leader")
    print(f"\nnew leader {new} {time.monotonic() - killed_at:.2f}s after kill -9 of {old}")
    status = survivors[0].status()
    assert status["quorum"]["healthy"] and status["leader"] == new
    job = survivors[1].client.submit(["echo", "after failover"])
    assert survivors[0].client.wait(job, timeout=30)["state"] == "succeeded"
    wait_until(
        lambda: next(v for v in survivors[0].status()["nodes"] if v["id"] == old)["state"] in ("suspect", "dead"),
        20,
        "the old leader to be suspected by gossip",
    )


def test_a_dead_voter_is_replaced_by_a_spare_node(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    nodes = start_cluster(daemon_factory, 4, "--max-voters", "3", "--voter-grace", "1")
    wait_until(lambda: leader_of(nodes) and len(voters(nodes[0])) == 3, 30, "3 voters and a spare learner")
    leader = leader_of(nodes)
    roles = {v["id"]: v["role"] for v in nodes[0].status()["nodes"]}
    assert sorted(roles.values()) == ["follower", "follower", "leader", "learner"]
    victim_id = next(i for i, r in roles.items() if r == "follower")
    spare_id = next(i for i, r in roles.items() if r == "learner")
    victim = next(n for n in nodes if n.status()["node_id"] == victim_id)
    victim.kill()
    survivors = [n for n in nodes if n is not victim]
    observer = next(n for n in survivors if n.status()["node_id"] == leader)

    def replaced() -> bool:
        status = observer.status()
        by_id = {v["id"]: v for v in status["nodes"]}
        return (
            spare_id in status["quorum"]["voters"]
            and victim_id not in status["quorum"]["voters"]
            and by_id.get(victim_id, {}).get("state", "dead") == "dead"
            and status["quorum"]["healthy"]
        )

    wait_until(replaced, 45, "the dead voter to be marked dead and its slot given to the spare")


def test_five_nodes_have_five_voters(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    nodes = start_cluster(daemon_factory, 5)
    wait_until(lambda: leader_of(nodes) and all(len(voters(n)) == 5 for n in nodes), 45, "5 voters everywhere")
    assert all(len(n.status()["nodes"]) == 5 for n in nodes)
