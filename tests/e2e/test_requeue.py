"""`swarm requeue` on a real daemon (`scontrol requeue`): a running job's attempt is stopped as
lost, not failed, and the job runs again only after it stopped; a job not placed is left as it
is and said so in one line."""

from __future__ import annotations

import json
from pathlib import Path

from swarmcompute.testing.daemons import DaemonProcess, wait_until

SCRIPT = """
echo "start $SWARM_ATTEMPT $(date +%s.%N)" >> {out}/log
trap 'sleep 1; echo "stop $SWARM_ATTEMPT $(date +%s.%N)" >> {out}/log; exit 143' TERM
if [ "$SWARM_ATTEMPT" = 1 ]; then while :; do sleep 0.05; done; fi
echo "done $SWARM_ATTEMPT $(date +%s.%N)" >> {out}/log
"""
"""Attempt 1 runs until stopped, and takes a second after its SIGTERM to save its work (a cancel's
grace: 5 s); attempt 2 ends at once; each writes when it starts and ends."""


def _log(out: Path) -> list[tuple[str, int, float]]:
    path = out / "log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(what, int(attempt), float(at)) for what, attempt, at in (line.split() for line in lines)]


def test_a_requeued_job_stops_then_runs_again_once_and_no_retry_is_spent(daemon: DaemonProcess, tmp_path: Path) -> None:
    job_id = daemon.client.submit(["sh", "-c", SCRIPT.format(out=tmp_path)], cpus=0, name="moved")
    wait_until(lambda: _log(tmp_path)[:1] and daemon.client.job(job_id)["state"] == "running", 30, "attempt 1 runs")
    result = daemon.swarm("requeue", "moved")
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        f"{job_id} requeued: attempt 1 stops, and it runs again\n",
        "",
    )
    view = daemon.client.wait([job_id], timeout=30)[0]
    assert (view["state"], view["attempt"], view["failures"], view["retries"]) == ("succeeded", 2, 0, 0)
    assert [a["ended"] for a in view["attempts"]] == ["requeued by root", "exit 0"]
    log = _log(tmp_path)
    assert [(what, attempt) for what, attempt, _ in log] == [("start", 1), ("stop", 1), ("start", 2), ("done", 2)]
    assert log[1][2] <= log[2][2]  # attempt 2 started after attempt 1 had stopped: never both at once


def test_a_job_not_placed_is_left_as_it_is_and_said_so_in_one_line(daemon: DaemonProcess) -> None:
    held = daemon.client.submit(["true"], cpus=0, hold=True, name="later")
    done = daemon.client.submit(["true"], cpus=0)
    daemon.client.wait([done], timeout=30)
    result = daemon.swarm("requeue", held, done)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"{held} is pending: only an assigned or running job is requeued\n"
        f"{done} is succeeded: it has ended (swarm rerun runs it again)\n"
    )
    running = daemon.client.submit(["sleep", "60"], cpus=0, name="sweep-1")
    wait_until(lambda: daemon.client.job(running)["state"] == "running", 30, "it runs")
    picked = daemon.swarm("requeue", "--name", "sweep-*", "--json")
    assert picked.returncode == 0, picked.stderr
    assert json.loads(picked.stdout) == [{"id": running, "state": "running", "attempt": 1, "outcome": "requeued"}]
    wait_until(lambda: daemon.client.job(running)["attempt"] == 2, 30, "it runs again")
    nothing = daemon.swarm("requeue", "--name", "later")
    assert (nothing.returncode, nothing.stderr) == (
        0,
        "swarm: no assigned or running job of yours matches: nothing to requeue\n",
    )
    for args, said in [
        (["requeue"], "swarm: name the jobs to requeue, or select them with --name, --user or --all\n"),
        (["requeue", held, "--all"], "swarm: give job ids, or select jobs with --name, --user or --all: not both\n"),
    ]:
        refused = daemon.swarm(*args)
        assert (refused.returncode, refused.stderr) == (2, said)
    for job_id in (held, running):
        daemon.client.cancel(job_id)


def test_requeue_hold_stops_a_job_and_keeps_it_until_released(daemon: DaemonProcess) -> None:
    """`swarm requeue --hold` (``scontrol requeuehold``): a node freed now, the job kept for later."""
    job_id = daemon.client.submit(["sleep", "60"], cpus=0)
    wait_until(lambda: daemon.client.job(job_id)["state"] == "running", 30, "it runs")
    result = daemon.swarm("requeue", "--hold", job_id)
    assert (result.returncode, result.stdout) == (
        0,
        f"{job_id} requeued: attempt 1 stops, and it waits, held, until swarm release\n",
    ), result.stderr
    wait_until(lambda: daemon.client.job(job_id)["state"] == "pending", 30, "it stopped")
    view = daemon.client.job(job_id)
    assert (view["held"], view["reason"], view["attempt"], view["failures"]) == (True, "held", 1, 0)
    assert daemon.swarm("release", job_id).stdout == f"{job_id} released\n"
    wait_until(lambda: daemon.client.job(job_id)["attempt"] == 2, 30, "it runs again once released")
    daemon.client.cancel(job_id)


def test_a_gang_requeued_held_waits_whole_with_its_rank_that_had_exited_0(daemon: DaemonProcess) -> None:
    """`swarm requeue --hold GANG` while rank 0 has exited 0 and waits for the others: the gang is
    requeued, rank 0 with it (exit 0, not `rank 0 is pending`), every rank then waits held, and
    `swarm release` runs the whole gang again."""
    gang = daemon.client.submit(
        ["sh", "-c", 'if [ "$SWARM_ATTEMPT$SWARM_RANK" = 11 ]; then sleep 60; fi'], ranks=2, cpus=0
    )
    ranks = [f"{gang}.0", f"{gang}.1"]

    def rank_done_and_running() -> bool:
        views = [daemon.client.job(r) for r in ranks]
        return (views[0]["reason"], views[1]["state"]) == ("rank_done", "running")

    wait_until(rank_done_and_running, 30, "rank 0 exited 0 and waits for rank 1")
    result = daemon.swarm("requeue", "--hold", gang)
    assert (result.returncode, result.stderr) == (0, ""), result.stdout
    assert result.stdout == (
        f"{gang}.0 requeued: attempt 1 ended, and it waits, held, until swarm release\n"
        f"{gang}.1 requeued: attempt 1 stops, and it waits, held, until swarm release\n"
    )
    wait_until(lambda: all(daemon.client.job(r)["held"] for r in ranks), 30, "both ranks held")
    assert [daemon.client.job(r)["state"] for r in ranks] == ["pending", "pending"]
    assert daemon.swarm("release", gang).returncode == 0
    views = daemon.client.wait(ranks, timeout=30)
    assert [(v["state"], v["attempt"], v["failures"]) for v in views] == [("succeeded", 2, 0)] * 2


def test_an_array_requeued_held_holds_its_pending_elements_too_so_none_starts_in_the_room_freed(
    daemon: DaemonProcess,
) -> None:
    array = daemon.client.submit(["sleep", "60"], array="0-3%2", cpus=0)
    elements = [f"{array}.{i}" for i in range(4)]

    def states() -> list[str]:
        return [daemon.client.job(e)["state"] for e in elements]

    wait_until(lambda: sorted(states()) == ["pending", "pending", "running", "running"], 30, "two elements run")
    running = [e for e, s in zip(elements, states(), strict=True) if s == "running"]
    waiting = [e for e in elements if e not in running]
    result = daemon.swarm("requeue", "--hold", array)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == sorted(
        [f"{e} requeued: attempt 1 stops, and it waits, held, until swarm release" for e in running]
        + [f"{e} held: it waits with its array until swarm release" for e in waiting]
    )
    assert all(daemon.client.job(e)["held"] for e in waiting)  # before the room was freed
    wait_until(lambda: states() == ["pending"] * 4, 30, "the running two stopped")
    views = [daemon.client.job(e) for e in elements]
    assert all(v["held"] for v in views) and sorted(v["attempt"] for v in views) == [0, 0, 1, 1]
    assert daemon.swarm("release", array).returncode == 0
    wait_until(lambda: sorted(states()) == ["pending", "pending", "running", "running"], 30, "it runs again")
    daemon.client.cancel(array)


def test_a_job_waiting_again_after_its_attempt_stopped_shows_no_start_or_runtime(daemon: DaemonProcess) -> None:
    """The record keeps the earlier attempt's start (`--json`); `swarm show` and `swarm jobs` showed
    it as the job's, `started 30s ago` and a runtime that kept growing while it waited."""
    job_id = daemon.client.submit(["sleep", "60"], cpus=0, job_id="waits-again")
    wait_until(lambda: daemon.client.job(job_id)["state"] == "running", 30, "it runs")
    assert daemon.swarm("requeue", "--hold", job_id).returncode == 0
    wait_until(lambda: daemon.client.job(job_id)["state"] == "pending", 30, "it stopped")
    try:
        assert json.loads(daemon.swarm("show", job_id, "--json").stdout)["started_at"] is not None  # attempt 1's
        shown = dict(line.split(None, 1) for line in daemon.swarm("show", job_id).stdout.splitlines() if " " in line)
        assert (shown["started"], shown["runtime"]) == ("-", "-")
        header, line = daemon.swarm("jobs").stdout.splitlines()[:2]
        assert line.split()[:2] == [job_id, "held"]
        assert line[header.index("RUNTIME") :].split()[0] == "-"
    finally:
        daemon.client.cancel(job_id)
