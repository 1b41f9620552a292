"""`swarm update` on a real daemon (`scontrol update`): a pending job that asked for more than any
node has is made to fit and runs, without losing its place or the jobs that wait on it; a job no
longer pending is left as it is and said so in one line; what cannot be is refused in one line."""

from __future__ import annotations

import json
import time

from swarmcompute.testing.daemons import DaemonProcess, wait_until


def test_a_job_too_big_for_any_node_is_made_to_fit_and_runs_and_its_child_follows(daemon: DaemonProcess) -> None:
    big = daemon.client.submit(["echo", "fits now"], cpus=10**4, mem="1G", name="big")
    child = daemon.client.submit(["echo", "after"], cpus=0, after=[big])
    view = daemon.client.job(big)
    assert (view["state"], view["reason"]) == ("pending", "waiting_resources")
    result = daemon.swarm("update", "big", "--cpus", "0", "--mem", "0", "--priority", "3", "--timeout", "1h")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{big} updated\n", "")
    done = daemon.client.wait([big, child], timeout=30)
    assert [d["state"] for d in done] == ["succeeded", "succeeded"]  # the child still waited for it
    assert (done[0]["cpus"], done[0]["mem_bytes"], done[0]["priority"], done[0]["timeout_s"]) == (0.0, 0, 3, 3600.0)
    assert daemon.swarm("logs", big).stdout == "fits now\n"


def test_a_running_job_is_left_as_it_is_and_a_second_update_changes_nothing(daemon: DaemonProcess) -> None:
    running = daemon.client.submit(["sleep", "30"], cpus=0)
    wait_until(lambda: daemon.client.job(running)["state"] == "running", 30, "the job runs")
    pending = daemon.client.submit(["true"], cpus=0, hold=True, priority=2)
    result = daemon.swarm("update", running, pending, "--priority", "2")
    assert result.returncode == 1
    assert result.stdout == f"{pending} unchanged: it already was so\n"
    assert result.stderr == f"{running} is running: a placed job takes only --timeout, --retries and --preemptible\n"
    assert daemon.client.job(running)["priority"] == 0
    moved = daemon.swarm("update", pending, "--priority", "7", "--json")
    assert moved.returncode == 0 and json.loads(moved.stdout) == [
        {"id": pending, "state": "pending", "outcome": "updated"}
    ]
    view = daemon.client.job(pending)
    assert (view["priority"], view["held"], view["reason"]) == (7, True, "held")  # still held
    for job_id in (running, pending):
        daemon.client.cancel(job_id)


def test_update_selects_by_name_and_refuses_what_cannot_be_in_one_line(daemon: DaemonProcess) -> None:
    big = [daemon.client.submit(["true"], cpus=10**4, name=f"sweep-{i}") for i in range(2)]
    keep = daemon.client.submit(["true"], cpus=10**4, name="keep-me")
    result = daemon.swarm("update", "--name", "sweep-*", "--constraint", "disk=ssd", "--node", "nowhere")
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split("\n")[:-1]) == sorted(f"{b} updated" for b in big)
    for job_id in big:
        view = daemon.client.job(job_id)
        assert (view["constraints"], view["pinned_node"]) == (["disk=ssd"], "nowhere")
    assert daemon.client.job(keep)["constraints"] == []
    unpinned = daemon.swarm("update", *big, "--any-node", "--no-constraints", "--json")
    assert [r["outcome"] for r in json.loads(unpinned.stdout)] == ["updated", "updated"]
    assert daemon.client.job(big[0])["pinned_node"] is None and daemon.client.job(big[0])["constraints"] == []

    for args, said in [
        (["update", keep], "swarm: say what to change: --priority, --cpus"),
        (["update", keep, "--cpus", "-1"], "swarm: cpus must be at least 0"),
        (["update", keep, "--mem", "lots"], "swarm: cannot read 'lots' as a size"),
        (["update", keep, "--begin", "3099-01-01"], "swarm: --begin must be a time from 1970 to 2200"),
        (["update", keep, "--constraint", "nokey"], "swarm: "),
        (["update", keep, "--node", "a", "--any-node"], "swarm: give --node or --any-node, not both"),
        (["update", "--cpus", "1"], "swarm: name the jobs to update, or select them"),
        (["update", "nosuchjob", "--cpus", "1"], "swarm: "),
    ]:
        refused = daemon.swarm(*args)
        assert refused.returncode == 2 and refused.stderr.startswith(said), (args, refused.stderr)
        assert refused.stderr.count("\n") == 1 and refused.stdout == "", (args, refused.stderr)
    nothing = daemon.swarm("update", "--name", "no-such-*", "--cpus", "1")
    assert (nothing.returncode, nothing.stderr) == (0, "swarm: no pending job of yours matches: nothing to update\n")
    for job_id in (*big, keep):
        daemon.client.cancel(job_id)


def test_a_start_time_set_later_is_kept_and_now_lifts_it(daemon: DaemonProcess) -> None:
    job = daemon.client.submit(["true"], cpus=0, hold=True)
    assert daemon.swarm("update", job, "--begin", "1h").returncode == 0
    daemon.client.release(job)
    view = daemon.client.job(job)
    assert (view["state"], view["reason"]) == ("pending", "begin_time")
    assert daemon.swarm("update", job, "--begin", "now").returncode == 0
    assert daemon.client.wait([job], timeout=30)[0]["state"] == "succeeded"


def test_a_running_jobs_time_limit_is_extended_and_then_cut_short(daemon: DaemonProcess) -> None:
    """`scontrol update TimeLimit=`: a job started with 2 s to live runs past them once given an
    hour, and is stopped as timed out at once when its limit is cut below what it already ran."""
    job_id = daemon.client.submit(["sleep", "60"], cpus=0, timeout="2s")
    wait_until(lambda: daemon.client.job(job_id)["state"] == "running", 30, "the job runs")
    extended = daemon.swarm("update", job_id, "--timeout", "1h", "--retries", "0")
    assert (extended.returncode, extended.stdout) == (0, f"{job_id} updated\n"), extended.stderr
    started = daemon.client.job(job_id)["started_at"]
    wait_until(lambda: time.time() > started + 4.0, 10, "past its first time limit and the kill grace")
    view = daemon.client.job(job_id)
    assert (view["state"], view["timeout_s"]) == ("running", 3600.0)
    cut = daemon.swarm("update", job_id, "--timeout", "1s")
    assert cut.returncode == 0, cut.stderr
    ended = daemon.client.wait(job_id, timeout=30)
    assert (ended["state"], ended["reason"], ended["attempt"]) == ("failed", "timeout", 1), ended
    assert daemon.swarm("update", job_id, "--timeout", "1h").stderr == f"{job_id} is failed: it has ended\n"


def test_a_job_that_ran_takes_no_begin_and_no_retries_below_the_failures_it_had_and_says_how_to_stop_it(
    daemon: DaemonProcess,
) -> None:
    """Both were said `updated` and did nothing: the job showed its new start time and ran on,
    or ran the retry its backoff had granted and failed with 'failures 5 of 1 retries'."""
    job = daemon.client.submit(["sh", "-c", "exit 1"], cpus=0, retries=8)

    def held_in_backoff() -> bool:  # from the third failure on, a backoff of 2 s or more
        view = daemon.client.job(job)
        if view["state"] != "pending" or view["failures"] < 3:
            return False
        daemon.client.hold(job)
        return bool(daemon.client.job(job)["held"])

    wait_until(held_in_backoff, 60, "the job held while it waits out a retry's backoff")
    failures = daemon.client.job(job)["failures"]
    for args, said in [
        (
            ["--begin", "10m"],
            f"swarm: {job} ran already (attempt {failures}): --begin holds back a job's first attempt only",
        ),
        (
            ["--retries", "1"],
            f"swarm: {job} failed {failures} times already, more than --retries 1 allows: `swarm cancel {job}` stops it",
        ),
    ]:
        refused = daemon.swarm("update", job, *args)
        assert (refused.returncode, refused.stdout, refused.stderr) == (2, "", said + "\n")
    view = daemon.client.job(job)
    assert (view["retries"], view["begin_at"]) == (8, None)
    assert daemon.swarm("update", job, "--retries", str(failures)).returncode == 0  # no retry left, and it says so
    daemon.client.cancel(job)
