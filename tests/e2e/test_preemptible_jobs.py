"""Preemption on a real daemon (Slurm's preemption by requeue): a job of a higher priority that
finds the node full of ``--preemptible`` work has it stopped (SIGTERM, the job's chance to save its
work), runs, and the preempted job runs again from the start, once, no retry spent; work not
submitted preemptible is never stopped for another."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swarmcompute.errors import InvalidJobSpecError
from swarmcompute.testing.daemons import DaemonProcess, wait_until

SCRIPT = """
echo "start {name} $SWARM_ATTEMPT $(date +%s.%N)" >> {out}/log
trap 'sleep 1; echo "stop {name} $SWARM_ATTEMPT $(date +%s.%N)" >> {out}/log; exit 143' TERM
if [ "{name}" = bg ] && [ "$SWARM_ATTEMPT" = 1 ]; then while :; do sleep 0.05; done; fi
if [ "{name}" = plain ]; then sleep 2; fi
echo "done {name} $SWARM_ATTEMPT $(date +%s.%N)" >> {out}/log
"""
"""The first attempt of ``bg`` runs until stopped, ``plain`` 2 s; each writes when it starts, stops
(a second after its SIGTERM: saving its work takes time) and ends."""


def _log(out: Path) -> list[tuple[str, str, int, float]]:
    path = out / "log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(what, name, int(attempt), float(at)) for what, name, attempt, at in (line.split() for line in lines)]


def _script(name: str, out: Path) -> list[str]:
    return ["sh", "-c", SCRIPT.format(name=name, out=out)]


def test_a_higher_priority_job_stops_preemptible_work_which_runs_again_after_it(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    whole = next(row["cpus"] for row in daemon.client.nodes())  # each job takes the whole node
    bg = daemon.client.submit(_script("bg", tmp_path), cpus=whole, preemptible=True, name="bg")
    wait_until(lambda: _log(tmp_path)[:1] and daemon.client.job(bg)["state"] == "running", 30, "bg runs")
    made = daemon.swarm(
        "run", "-d", "--priority", "5", "--cpus", str(whole), "--name", "urgent", "--", *_script("urgent", tmp_path)
    )
    assert made.returncode == 0, made.stderr
    urgent = made.stdout.strip()
    # While bg saves its work (its trap's second), each says why:
    waits = f"it starts once {bg} stops (preempted for it)"
    wait_until(
        lambda: daemon.client.job(urgent)["message"].endswith(waits), 30, "the urgent job to say what it waits for"
    )
    stopping = f"attempt 1 stopping: preempted by job {urgent} (priority 5); it runs again"
    assert daemon.client.job(bg)["message"] == stopping
    ended = daemon.client.wait([urgent, bg], timeout=60)
    assert [(v["state"], v["attempt"], v["failures"]) for v in ended] == [("succeeded", 1, 0), ("succeeded", 2, 0)]
    assert [a["ended"] for a in ended[1]["attempts"]] == [f"preempted by job {urgent} (priority 5)", "exit 0"]
    steps = [(what, name, attempt) for what, name, attempt, _ in _log(tmp_path)]
    assert steps == [
        ("start", "bg", 1),
        ("stop", "bg", 1),  # SIGTERM, and the time its trap took to save its work (a cancel's grace)
        ("start", "urgent", 1),
        ("done", "urgent", 1),
        ("start", "bg", 2),  # from the start, after the job it gave way to: never two at once
        ("done", "bg", 2),
    ]
    assert "\npriority   0, preemptible\n" in daemon.swarm("show", bg).stdout
    views = [json.loads(daemon.swarm("show", job_id, "--json").stdout) for job_id in (bg, urgent)]
    assert [v["preemptible"] for v in views] == [True, False]


def test_work_not_submitted_preemptible_is_never_stopped_for_a_higher_priority_job(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    whole = next(row["cpus"] for row in daemon.client.nodes())
    plain = daemon.client.submit(_script("plain", tmp_path), cpus=whole, name="plain")
    wait_until(lambda: _log(tmp_path)[:1], 30, "plain runs")
    urgent = daemon.client.submit(_script("urgent", tmp_path), cpus=whole, priority=5)
    ended = daemon.client.wait([plain, urgent], timeout=60)
    assert [(v["state"], v["attempt"]) for v in ended] == [("succeeded", 1), ("succeeded", 1)]
    steps = [(what, name) for what, name, _, _ in _log(tmp_path)]
    assert steps == [("start", "plain"), ("done", "plain"), ("start", "urgent"), ("done", "urgent")]


GANG = """
echo "start rank$SWARM_RANK $SWARM_ATTEMPT $(date +%s.%N)" >> {out}/log
trap 'echo "stop rank$SWARM_RANK $SWARM_ATTEMPT $(date +%s.%N)" >> {out}/log; exit 143' TERM
if [ "$SWARM_ATTEMPT" = 1 ]; then while :; do sleep 0.05; done; fi
echo "done rank$SWARM_RANK $SWARM_ATTEMPT $(date +%s.%N)" >> {out}/log
"""


def test_a_preemptible_gang_gives_way_whole_and_runs_again_whole_after_the_urgent_job(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    """A gang of 2 ranks, half the node each (a distributed training run that checkpoints), and a
    priority-5 job of half the node: one rank is preempted, so the whole gang stops (one rank
    cannot run on alone), the urgent job runs, and the gang runs again, both ranks, from the start."""
    half = next(row["cpus"] for row in daemon.client.nodes()) / 2
    gang = daemon.client.submit(["sh", "-c", GANG.format(out=tmp_path)], ranks=2, cpus=half, preemptible=True)
    wait_until(lambda: len(_log(tmp_path)) == 2, 30, "both ranks run")
    urgent = daemon.client.submit(_script("urgent", tmp_path), cpus=half, priority=5)
    ended = daemon.client.wait([urgent, f"{gang}.0", f"{gang}.1"], timeout=60)
    assert [(v["state"], v["attempt"], v["failures"]) for v in ended] == [
        ("succeeded", 1, 0),
        ("succeeded", 2, 0),
        ("succeeded", 2, 0),
    ]
    firsts = [v["attempts"][0]["ended"] for v in ended[1:]]
    assert f"preempted by job {urgent} (priority 5)" in firsts, firsts
    log = _log(tmp_path)
    stops = [at for what, name, attempt, at in log if what == "stop" and attempt == 1]
    again = [at for what, name, attempt, at in log if what == "start" and name.startswith("rank") and attempt == 2]
    urgent_start = next(at for what, name, _, at in log if (what, name) == ("start", "urgent"))
    assert len(stops) == 2 and len(again) == 2
    assert min(stops) <= urgent_start and max(stops) <= min(again)  # never a rank of each attempt at once
    shown = daemon.swarm("show", f"{gang}.0").stdout
    assert "\npriority   0, preemptible\n" in shown


def test_a_running_job_made_preemptible_by_swarm_update_gives_way_from_then_on(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    whole = next(row["cpus"] for row in daemon.client.nodes())
    bg = daemon.client.submit(_script("bg", tmp_path), cpus=whole, name="bg")
    wait_until(lambda: _log(tmp_path)[:1] and daemon.client.job(bg)["state"] == "running", 30, "bg runs")
    made = daemon.swarm("update", bg, "--preemptible")
    assert (made.returncode, made.stdout, made.stderr) == (0, f"{bg} updated\n", "")
    urgent = daemon.client.submit(_script("urgent", tmp_path), cpus=whole, priority=5)
    ended = daemon.client.wait([urgent, bg], timeout=60)
    assert [(v["state"], v["attempt"], v["preemptible"]) for v in ended] == [
        ("succeeded", 1, False),
        ("succeeded", 2, True),
    ]
    assert [(what, name, attempt) for what, name, attempt, _ in _log(tmp_path)] == [
        ("start", "bg", 1),
        ("stop", "bg", 1),
        ("start", "urgent", 1),
        ("done", "urgent", 1),
        ("start", "bg", 2),
        ("done", "bg", 2),
    ]
    with pytest.raises(InvalidJobSpecError, match="preemptible must be true or false, got 'no'"):
        daemon.client.update(bg, preemptible="no")


def test_a_priority_gang_has_preemptible_work_stopped_to_start_whole_and_that_work_runs_again(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    """A node full of preemptible work (two jobs of half the node) and a gang of 2 ranks of half
    the node, priority 5: no room for all its ranks at once, so the leader stops both jobs (their
    traps save), the gang starts whole, and the work runs again after it, from the start."""
    half = next(row["cpus"] for row in daemon.client.nodes()) / 2
    bgs = [daemon.client.submit(_script("bg", tmp_path), cpus=half, preemptible=True) for _ in range(2)]
    wait_until(lambda: [daemon.client.job(b)["state"] for b in bgs] == ["running"] * 2, 30, "both bg jobs run")
    gang = daemon.client.submit(_script("urgent", tmp_path), cpus=half, priority=5, ranks=2)
    ended = daemon.client.wait([f"{gang}.0", f"{gang}.1", *bgs], timeout=60)
    assert [(v["state"], v["attempt"], v["failures"]) for v in ended] == [("succeeded", 1, 0)] * 2 + [
        ("succeeded", 2, 0)
    ] * 2
    assert {v["attempts"][0]["ended"] for v in ended[2:]} == {f"preempted by gang {gang} (priority 5)"}
    log = _log(tmp_path)
    stops = [at for what, name, _, at in log if (what, name) == ("stop", "bg")]
    ranks = [at for what, name, _, at in log if (what, name) == ("start", "urgent")]
    again = [at for what, name, attempt, at in log if (what, name, attempt) == ("start", "bg", 2)]
    assert len(stops) == len(ranks) == len(again) == 2
    assert max(stops) <= min(ranks) and max(ranks) <= min(again)  # never more than the node at once
