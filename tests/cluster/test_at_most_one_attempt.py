"""At most one running attempt of a job, on a 5-host LAN of network namespaces, under the faults a
home LAN really has: the leader's host cut off (cable pulled) and healed, the leader's daemon frozen
(SIGSTOP) and thawed.

Every job is a marker job: it writes ``start``, a heartbeat every 0.1 s and ``done`` lines, each with
the wall-clock time (one machine, so one clock), into a file named by job and attempt, and a
``term`` line as it exits on SIGTERM. Afterwards the files are compared with the job table: every
job succeeded, exactly one attempt wrote ``done``, and no two attempts of a job were ever running
at the same time (an attempt SIGKILLed, which writes no last line, counts as running until one
heartbeat interval after its last line; counting a SIGTERMed one so too flagged attempts reaped
before their re-run started, under a loaded suite).

The suite runs short versions; ``SWARM_SLOW=1`` adds the issue's full ones (a 20 s cut, jobs of
6-30 s).
"""

from __future__ import annotations

import math
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from swarmcompute.rules.lease import KILL_GRACE_S, LEASE_S
from swarmcompute.testing.clusters import node_by_id
from swarmcompute.testing.daemons import DaemonProcess, wait_until
from swarmcompute.testing.markers import marker_lines
from swarmcompute.testing.netns import CutMode, Host, Lan, nft_unavailable_reason

HEARTBEAT_S = 0.1
SHORTEST_JOB_S = math.ceil(LEASE_S + KILL_GRACE_S + 0.5 + 1.0)
"""The shortest marker job (6 s): longer than the lease and the kill grace, from a start up to half a
second before the fault, plus the second ``date +%s`` may cut off. A job that ends on a cut-off
node before its lease lapses has ended there, but its end cannot reach the majority, which runs it
again: two completions that no rule can prevent (the result never left the node). Jobs of 4 s did
that 2 times in 12 runs of the one-way cut once the lease was 3.2 s."""
MARKER_JOB = r"""
f="$MARKS/$SWARM_JOB_ID.$SWARM_ATTEMPT"
trap 'echo "term $(date +%s.%N)" >> "$f"; exit 143' TERM
echo "start $(date +%s.%N)" >> "$f"
end=$(( $(date +%s) + DURATION ))
while [ "$(date +%s)" -lt "$end" ]; do echo "hb $(date +%s.%N)" >> "$f"; sleep HEARTBEAT; done
echo "done $(date +%s.%N)" >> "$f"
"""


def start_lan_cluster(lan: Lan, daemon_factory: Any, n: int) -> tuple[list[Host], list[DaemonProcess]]:
    hosts = [lan.add_host(f"h{i}") for i in range(n)]

    def node(i: int, token: str | None, peers: tuple[str, ...]) -> DaemonProcess:
        return daemon_factory(
            f"h{i}",
            bind=hosts[i].ip,
            port=7340,
            token=token,
            peers=peers,
            extra_args=() if token else ("--new-cluster",),
            wrap=("ip", "netns", "exec", hosts[i].netns),
            log_level=os.environ.get("SWARM_TEST_LOG_LEVEL", "info"),
        ).start()

    first = node(0, None, ())
    token = first.token_from_disk()
    nodes = [first] + [node(i, token, (f"{hosts[0].ip}:7340",)) for i in range(1, n)]

    def formed() -> bool:
        statuses = [d.status() for d in nodes]
        leader = statuses[0]["leader"]
        return (
            leader is not None
            and all(s["leader"] == leader for s in statuses)
            and all(len(s["nodes"]) == n and all(v["state"] == "alive" for v in s["nodes"]) for s in statuses)
            and len(statuses[0]["quorum"]["voters"]) == min(n, 5)
        )

    wait_until(formed, 60, f"{n} hosts to form a cluster with {min(n, 5)} voters")
    return hosts, nodes


def submit_marker_jobs(node: DaemonProcess, marks: Path, durations: list[int]) -> list[str]:
    specs = []
    for d in durations:
        script = MARKER_JOB.replace("DURATION", str(d)).replace("HEARTBEAT", str(HEARTBEAT_S))
        specs.append({"argv": ["/bin/sh", "-c", script], "env": {"MARKS": str(marks)}, "cpus": 0.5})
    return node.client.submit_many(specs)


def read_marks(marks: Path, job_id: str) -> dict[int, list[tuple[str, float]]]:
    attempts: dict[int, list[tuple[str, float]]] = {}
    for path in marks.glob(f"{job_id}.*"):
        attempts[int(path.suffix[1:])] = marker_lines(path)
    return attempts


def check_exactly_once(marks: Path, jobs: list[dict[str, Any]], fault_at: float) -> dict[str, Any]:
    """Every job succeeded, finished once, and its attempts never overlapped; returns figures,
    among them how long after the fault (wall clock) each re-run attempt started."""
    problems: list[str] = []
    reruns = 0
    rerun_after: list[float] = []
    smallest_gap = float("inf")
    for job in jobs:
        if job["state"] != "succeeded":
            problems.append(f"job {job['id']} is {job['state']}: {job['message']}")
            continue
        attempts = read_marks(marks, job["id"])
        done = [a for a, lines in attempts.items() if any(w == "done" for w, _ in lines)]
        if len(done) != 1:
            problems.append(f"job {job['id']} finished {len(done)} times (attempts {sorted(done)})")
        spans = []
        last = {a: lines[-1][1] for a, lines in attempts.items() if lines}
        for a, lines in sorted(attempts.items()):
            if not lines:
                continue
            # done, or SIGTERMed (its trap wrote the moment it exits): it ended at its last line;
            # SIGKILLed (no last word): it may have run until the next heartbeat was due
            ended = lines[-1][0] in ("done", "term")
            spans.append((lines[0][1], lines[-1][1] + (0.0 if ended else HEARTBEAT_S), a))
        spans.sort()
        reruns += max(len(spans) - 1, 0)
        for (_s1, e1, a1), (s2, _e2, a2) in zip(spans, spans[1:], strict=False):
            smallest_gap = min(smallest_gap, s2 - e1)
            rerun_after.append(round(s2 - fault_at, 2))
            if s2 < e1:
                problems.append(
                    f"job {job['id']}: attempt {a2} started {e1 - s2:.2f} s before attempt {a1} stopped"
                    f" ({s2 - fault_at:.2f} s after the fault; attempt {a1}'s last line {last[a1] - fault_at:.2f} s"
                    f" after it; attempts: {job['attempts']})"
                )
    assert not problems, "\n".join(problems)
    return {"reruns": reruns, "smallest_gap_s": round(smallest_gap, 3), "rerun_after_fault_s": sorted(rerun_after)}


def leader_node(nodes: list[DaemonProcess]) -> DaemonProcess:
    leader = nodes[0].status()["leader"]
    assert leader is not None
    return node_by_id(nodes, leader)


def wait_jobs_on(node: DaemonProcess, ids: list[str], minimum: int) -> None:
    def enough() -> bool:
        jobs = [node.client.job(j) for j in ids]
        return sum(j["state"] == "running" and j["node"] == node.status()["node_id"] for j in jobs) >= minimum

    wait_until(enough, 30, f"at least {minimum} jobs running on the leader")


def wait_all_ended(observer: DaemonProcess, ids: list[str], timeout_s: float) -> list[dict[str, Any]]:
    def ended() -> list[dict[str, Any]] | None:
        jobs = [observer.client.job(j) for j in ids]
        return jobs if all(j["state"] in ("succeeded", "failed", "cancelled") for j in jobs) else None

    return wait_until(ended, timeout_s, "every job to end")


FULL = os.environ.get("SWARM_SLOW") == "1"


def wait_new_leader(observer: DaemonProcess, old_id: str) -> str:
    def elected() -> str | None:
        leader = observer.status()["leader"]
        return leader if leader not in (None, old_id) else None

    return wait_until(elected, 15, "the others to elect a new leader")


@pytest.mark.parametrize(
    ("cut_s", "longest_s", "mode"),
    [
        pytest.param(8, 14, "link", id="8s-cut"),
        pytest.param(8, 14, "nft-in", id="8s-one-way-cut"),
        pytest.param(20, 30, "link", id="20s-cut", marks=pytest.mark.slow),
    ],
)
def test_a_cut_off_leader_stops_its_attempts_before_the_majority_runs_them_again(
    lan: Lan, daemon_factory: Any, tmp_path: Path, cut_s: int, longest_s: int, mode: CutMode
) -> None:
    """``nft-in`` cuts only the traffic arriving at the leader: it still reaches the others."""
    if mode != "link" and (reason := nft_unavailable_reason()):
        pytest.skip(reason)
    hosts, nodes = start_lan_cluster(lan, daemon_factory, 5)
    marks = tmp_path / "marks"
    marks.mkdir()
    rng = random.Random(cut_s)
    leader = leader_node(nodes)
    leader_id = leader.status()["node_id"]
    ids = submit_marker_jobs(leader, marks, [rng.randint(SHORTEST_JOB_S, longest_s) for _ in range(15)])
    wait_jobs_on(leader, ids, 2)

    host = hosts[nodes.index(leader)]
    t_cut, wall_cut = time.monotonic(), time.time()
    host.cut(mode)
    observer = next(d for d in nodes if d is not leader)
    new_leader = wait_new_leader(observer, leader_id)
    elected_s = time.monotonic() - t_cut
    # The fault lasts cut_s: this is the scenario's length, not a wait for an outcome.
    time.sleep(max(cut_s - (time.monotonic() - t_cut), 0.0))
    host.heal()
    jobs = wait_all_ended(node_by_id(nodes, new_leader), ids, 90)
    figures = check_exactly_once(marks, jobs, wall_cut)
    print(f"cut {cut_s}s ({mode}): new leader after {elected_s:.2f}s; {figures}")
    assert figures["reruns"] >= 2  # the cut leader's jobs did run again elsewhere
    # ...and only they: the others' leases outlast the election (a one-way cut the failure detector
    # missed once let every follower's lease lapse first: all 15 jobs ran again)
    moved = [j["id"] for j in jobs if len(j["attempts"]) > 1 and j["attempts"][0]["node"] != leader_id]
    assert not moved, f"jobs of the nodes that were not cut ran again: {moved}"


@pytest.mark.parametrize("frozen_s", [pytest.param(6, id="6s"), pytest.param(10, id="10s", marks=pytest.mark.slow)])
def test_a_frozen_leader_daemon_has_its_attempts_killed_by_its_guardian_before_they_run_elsewhere(
    lan: Lan, daemon_factory: Any, tmp_path: Path, frozen_s: int
) -> None:
    _hosts, nodes = start_lan_cluster(lan, daemon_factory, 5)
    marks = tmp_path / "marks"
    marks.mkdir()
    rng = random.Random(frozen_s)
    leader = leader_node(nodes)
    leader_id = leader.status()["node_id"]
    ids = submit_marker_jobs(leader, marks, [rng.randint(SHORTEST_JOB_S, 14) for _ in range(15)])
    wait_jobs_on(leader, ids, 2)

    t_stop, wall_stop = time.monotonic(), time.time()
    os.kill(leader.pid, signal.SIGSTOP)
    try:
        observer = next(d for d in nodes if d is not leader)
        new_leader = wait_new_leader(observer, leader_id)
        # The freeze lasts frozen_s: the scenario's length, not a wait for an outcome.
        time.sleep(max(frozen_s - (time.monotonic() - t_stop), 0.0))
    finally:
        os.kill(leader.pid, signal.SIGCONT)
    jobs = wait_all_ended(node_by_id(nodes, new_leader), ids, 90)
    figures = check_exactly_once(marks, jobs, wall_stop)
    print(f"frozen {frozen_s}s: {figures}")
    assert figures["reruns"] >= 2
