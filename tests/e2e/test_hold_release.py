"""`swarm hold` / `swarm release` and `swarm run --hold` on a real daemon (`scontrol hold`,
`sbatch --hold`): a held job waits, pending, while everything else runs; released, it runs as any
other; a job that is not pending is left as it is, and said so in one line."""

from __future__ import annotations

import json
import os
import subprocess

from swarmcompute.testing.daemons import DaemonProcess, swarm_executable, wait_until


def test_a_job_submitted_held_waits_while_others_run_and_runs_once_released(daemon: DaemonProcess) -> None:
    held = daemon.swarm("run", "-d", "--hold", "--name", "later", "--", "echo", "done")
    assert held.returncode == 0, held.stderr
    job_id = held.stdout.strip()
    other = daemon.swarm("run", "--", "echo", "meanwhile")
    assert other.returncode == 0 and other.stdout == "meanwhile\n"  # a held job holds nothing else back
    view = daemon.client.job(job_id)
    assert (view["state"], view["held"], view["reason"], view["attempt"]) == ("pending", True, "held", 0)
    assert view["message"] == f"`swarm release {job_id}` lets it run (submitted held)"
    line = next(x for x in daemon.swarm("jobs").stdout.splitlines() if x.startswith(job_id))
    assert line.split()[1:3] == ["later", "held"]
    shown = daemon.swarm("show", job_id).stdout
    assert f"reason     held: `swarm release {job_id}` lets it run (submitted held)" in shown

    released = daemon.swarm("release", "later")
    assert (released.returncode, released.stdout, released.stderr) == (0, f"{job_id} released\n", "")
    done = daemon.client.wait([job_id], timeout=30)[0]
    assert (done["state"], done["held"], done["attempt"]) == ("succeeded", False, 1)
    assert daemon.swarm("logs", job_id).stdout == "done\n"


def test_a_running_job_is_left_running_and_said_so_and_a_second_hold_changes_nothing(daemon: DaemonProcess) -> None:
    running = daemon.client.submit(["sleep", "30"], cpus=0)
    wait_until(lambda: daemon.client.job(running)["state"] == "running", 30, "the job runs")
    pending = daemon.client.submit(["true"], cpus=0, hold=True)
    result = daemon.swarm("hold", running, pending)
    assert result.returncode == 1
    assert result.stdout == f"{pending} was already held\n"
    assert result.stderr == f"{running} is running: only a pending job is held\n"
    assert daemon.client.job(running)["state"] == "running" and not daemon.client.job(running)["held"]
    assert daemon.swarm("release", running).stderr == f"{running} is running: only a pending job is released\n"
    daemon.client.cancel(running)
    cancelled = daemon.swarm("cancel", pending)
    assert cancelled.stdout == f"{pending} cancelled\n"
    view = daemon.client.job(pending)
    assert (view["state"], view["held"]) == ("cancelled", False)


def test_hold_and_release_select_by_name_and_all_and_say_when_nothing_matches(daemon: DaemonProcess) -> None:
    blocker = daemon.client.submit(["sleep", "30"], cpus=0, name="blocker")
    # A job too big for the node stays pending: the ones a selection can hold.
    big = [daemon.client.submit(["true"], cpus=10**4, name=f"sweep-{i}") for i in range(3)]
    keep = daemon.client.submit(["true"], cpus=10**4, name="keep-me")
    held = daemon.swarm("hold", "--name", "sweep-*", "--json")
    assert held.returncode == 0, held.stderr
    records = json.loads(held.stdout)
    assert sorted(r["id"] for r in records) == sorted(big)
    assert all(r["outcome"] == "held" and r["held"] and r["state"] == "pending" for r in records)
    assert not daemon.client.job(keep)["held"] and not daemon.client.job(blocker)["held"]
    again = daemon.swarm("hold", "--name", "sweep-*")
    assert again.returncode == 0 and again.stdout == ""
    assert again.stderr == "swarm: no pending job of yours that is not held matches: nothing to hold\n"
    everything = daemon.swarm("release", "--all")
    assert sorted(everything.stdout.split()) == sorted([*big, *["released"] * 3])
    assert daemon.swarm("release", "--all").stderr == "swarm: no held job of yours matches: nothing to release\n"
    both = daemon.swarm("hold", big[0], "--all")
    assert (
        both.returncode == 2
        and both.stderr == "swarm: give job ids, or select jobs with --name, --user or --all: not both\n"
    )
    neither = daemon.swarm("release")
    assert neither.returncode == 2 and "name the jobs to release" in neither.stderr
    for job_id in (*big, keep, blocker):
        daemon.client.cancel(job_id)


def test_held_jobs_are_listed_and_cancelled_by_state_held(daemon: DaemonProcess) -> None:
    """`--state held`: the held pending jobs, in `swarm jobs` (its table and --json), `swarm cancel`
    and the HTTP API's list; `--state pending` takes them too; `swarm status` counts them."""
    held = [daemon.client.submit(["true"], cpus=10**4, hold=True, name=f"h{i}") for i in range(2)]
    waiting = daemon.client.submit(["true"], cpus=10**4, name="waiting")
    listed = daemon.swarm("jobs", "--state", "held", "--json")
    assert listed.returncode == 0, listed.stderr
    assert sorted(j["id"] for j in json.loads(listed.stdout)) == sorted(held)
    table = daemon.swarm("jobs", "--state", "HELD").stdout.splitlines()
    assert len(table) == 3 and all(line.split()[2] == "held" for line in table[1:])
    pending = json.loads(daemon.swarm("jobs", "--state", "pending", "--json").stdout)
    assert sorted(j["id"] for j in pending) == sorted([*held, waiting])
    assert [j["id"] for j in daemon.client.jobs(states=["held"], name="h1")] == [held[1]]
    refused = daemon.swarm("jobs", "--state", "parked")
    assert refused.returncode == 2 and refused.stderr == (
        "swarm: --state 'parked' is not a job state: use one of pending, assigned, running, succeeded, failed,"
        " cancelled, held\n"
    )
    assert json.loads(daemon.swarm("status", "--json").stdout)["held_jobs"] == 2
    assert "pending 3 (2 held)" in daemon.swarm("status").stdout
    cancelled = daemon.swarm("cancel", "--state", "held")
    assert cancelled.returncode == 0 and sorted(cancelled.stdout.split()) == sorted([*held, "cancelled", "cancelled"])
    assert daemon.client.job(waiting)["state"] == "pending"
    daemon.client.cancel(waiting)


def test_an_array_is_held_and_released_by_its_id(daemon: DaemonProcess) -> None:
    array_id = daemon.swarm("run", "-d", "--hold", "--array", "0-3", "--cpus", "0", "--", "true").stdout.strip()
    elements = [j for j in daemon.client.jobs() if j.get("array_id") == array_id]
    assert len(elements) == 4 and all(j["held"] for j in elements)
    released = daemon.swarm("release", array_id)
    assert released.returncode == 0 and released.stdout.count(" released\n") == 4
    ended = daemon.client.wait([array_id], timeout=30)
    assert [j["state"] for j in ended] == ["succeeded"] * 4


def test_an_attached_run_submitted_held_says_so_and_streams_once_released(daemon: DaemonProcess) -> None:
    env = {**os.environ, "SWARM_STATE_DIR": str(daemon.state_dir)}
    run = subprocess.Popen(
        [swarm_executable(), "run", "--hold", "--id", "attached1", "--", "echo", "hello"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        listed = lambda: [j for j in daemon.client.jobs() if j["id"] == "attached1" and j["held"]]  # noqa: E731
        wait_until(listed, 30, "the held job is in the table")
        assert run.poll() is None  # it waits with its job
        assert daemon.swarm("release", "attached1").returncode == 0
        out, err = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0 and out == "hello\n"
    assert err.startswith("swarm: job attached1 is held: it starts once `swarm release attached1` lets it\n")


def test_a_running_gang_whose_rank_exited_0_is_not_held_in_part_and_succeeds_once(daemon: DaemonProcess) -> None:
    """`swarm hold` of a gang while rank 0 has exited 0 and rank 1 runs: nothing is held (a gang
    is held whole, and it runs), each rank said so; when rank 1 exits 0 the gang has succeeded,
    once. Holding rank 0 alone once made the whole gang run again after both had exited 0."""
    gang = daemon.client.submit(["sh", "-c", 'if [ "$SWARM_RANK" = 1 ]; then sleep 2; fi'], ranks=2, cpus=0)
    wait_until(lambda: daemon.client.job(f"{gang}.0")["reason"] == "rank_done", 30, "rank 0 exited 0")
    done, runs = daemon.client.job(f"{gang}.0"), daemon.client.job(f"{gang}.1")
    assert done["node"] == runs["node"] is not None  # where it ran, pending as it is
    assert done["node_name"] == runs["node_name"] and done["gang"][0]["node"] == runs["node"]
    result = daemon.swarm("hold", gang)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"{gang}.0 exited 0 and waits for the other ranks of its gang: only a pending job is held\n"
        f"{gang}.1 is running: only a pending job is held\n"
    )
    views = daemon.client.wait([f"{gang}.0", f"{gang}.1"], timeout=30)
    assert [(v["state"], v["attempt"], v["held"]) for v in views] == [("succeeded", 1, False)] * 2


def test_a_release_while_a_requeue_hold_still_stops_the_job_lets_it_run_again(daemon: DaemonProcess) -> None:
    """`swarm requeue --hold` then, changing one's mind, `swarm release` while the job still takes
    its grace to stop: it runs again once stopped, not held."""
    job_id = daemon.client.submit(["sh", "-c", "trap 'sleep 1; exit 143' TERM; sleep 60 & wait"], cpus=0)
    wait_until(lambda: daemon.client.job(job_id)["state"] == "running", 30, "it runs")
    assert daemon.swarm("requeue", "--hold", job_id).returncode == 0
    released = daemon.swarm("release", job_id)
    assert (released.returncode, released.stdout, released.stderr) == (0, f"{job_id} released\n", "")
    wait_until(lambda: daemon.client.job(job_id)["attempt"] == 2, 30, "it runs again, not held")
    view = daemon.client.job(job_id)
    assert (view["held"], view["failures"]) == (False, 0)
    daemon.client.cancel(job_id)


def test_an_array_id_stands_for_the_elements_a_command_applies_to_and_the_rest_are_left_out(
    daemon: DaemonProcess,
) -> None:
    """An array of 4 at most 2 at once (`%2`): elements 0 and 1 run, 2 and 3 wait. `swarm hold`,
    `update` and `release` of its id act on the waiting two, `signal` and `requeue` on the running
    two; each exits 0 and says nothing of the others. With nothing to act on, each element says why."""
    array = daemon.client.submit(["sleep", "60"], cpus=0, array="0-3%2")
    elements = [f"{array}.{i}" for i in range(4)]
    wait_until(lambda: [daemon.client.job(e)["state"] for e in elements[:2]] == ["running"] * 2, 30, "two run")

    def said(*args: str) -> tuple[int, list[str], str]:
        result = daemon.swarm(*args)
        return result.returncode, sorted(result.stdout.splitlines()), result.stderr

    assert said("hold", array) == (0, [f"{e} held" for e in elements[2:]], "")
    assert said("update", "--priority", "2", array) == (0, [f"{e} updated" for e in elements[2:]], "")
    assert said("release", array) == (0, [f"{e} released" for e in elements[2:]], "")
    assert said("signal", "-s", "CONT", array) == (0, [f"{e} sent SIGCONT (attempt 1)" for e in elements[:2]], "")
    daemon.client.hold(*elements[2:])
    requeued = said("requeue", "--hold", array)
    assert requeued == (
        0,
        [f"{e} requeued: attempt 1 stops, and it waits, held, until swarm release" for e in elements[:2]],
        "",
    )
    wait_until(lambda: all(daemon.client.job(e)["held"] for e in elements), 30, "every element held")
    nothing = daemon.swarm("signal", array)  # none runs: each says why
    assert (nothing.returncode, nothing.stdout) == (1, "")
    assert nothing.stderr == "".join(f"{e} is pending: only a running job takes a signal\n" for e in elements)
    daemon.client.cancel(array)


def test_cancel_by_state_pending_leaves_a_running_gang_whose_rank_exited_0_alone(daemon: DaemonProcess) -> None:
    """A gang's rank that exited 0 waits, pending, for the others; it is in no state's selection,
    so `swarm cancel --state pending` (clearing the queue) no longer cancels its running gang."""
    gang = daemon.client.submit(["sh", "-c", 'if [ "$SWARM_RANK" = 1 ]; then sleep 2; fi'], ranks=2, cpus=0)
    waiting = daemon.client.submit(["true"], cpus=0, hold=True)
    wait_until(lambda: daemon.client.job(f"{gang}.0")["reason"] == "rank_done", 30, "rank 0 exited 0")
    assert [j["id"] for j in daemon.client.jobs(states=["pending"])] == [waiting]
    cancelled = daemon.swarm("cancel", "--state", "pending")
    assert (cancelled.returncode, cancelled.stdout) == (0, f"{waiting} cancelled\n"), cancelled.stderr
    views = daemon.client.wait([f"{gang}.0", f"{gang}.1"], timeout=30)
    assert [v["state"] for v in views] == ["succeeded"] * 2
