"""`swarm prune` on a real daemon: finished jobs and their output go now, oldest first, under the
history bounds or ``--keep``/``--older-than``; a job an unfinished one waits on stays; what went
is said (jobs, bytes). The same through ``Client.prune`` and the HTTP API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from swarmcompute.client import Client
from swarmcompute.testing.daemons import DaemonProcess, wait_until


def outputs(daemon: DaemonProcess) -> set[str]:
    out = daemon.state_dir / "output"
    return {p.name for p in out.iterdir()} if out.is_dir() else set()


def test_prune_removes_the_oldest_finished_jobs_and_their_output_but_never_a_held_one(
    daemon_factory: Any, tmp_path: Path
) -> None:
    daemon: DaemonProcess = daemon_factory("p", http_port=0).start()
    client = daemon.client
    gate = tmp_path / "gate"
    parent = client.submit(["sh", "-c", "head -c 3000 /dev/zero"], cpus=0)  # the oldest: held by the child
    blocker = client.submit(["sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.05; done"], cpus=0)
    child = client.submit(["true"], cpus=0, after=[parent, blocker])
    client.wait(parent, timeout=30)
    older = client.submit_many([{"argv": ["echo", str(i)], "cpus": 0} for i in range(6)])
    ended = client.wait(older, timeout=60)
    assert {j["state"] for j in ended} == {"succeeded"}
    # They run at once: oldest first is the order they ended in, which a loaded machine may mix up.
    older = [j["id"] for j in sorted(ended, key=lambda j: j["finished_at"])]
    assert parent in outputs(daemon)

    nothing = client.prune(older_than="1h")  # everything ended just now, and far fewer than --keep-jobs
    assert (nothing["removed"], nothing["bytes"], nothing["finished_kept"]) == (0, 0, 7)

    cli = daemon.swarm("prune", "--keep", "3")
    assert cli.returncode == 0, cli.stderr
    # 7 finished, keep 3: the 4 oldest go, but the parent is held, so the 4 oldest of the others
    kept = {j["id"] for j in client.jobs(limit=100) if j["state"] == "succeeded"}
    assert parent in kept and kept - {parent} == set(older[4:])
    assert cli.stdout.startswith("removed 4 finished jobs and ")
    assert cli.stdout.endswith(
        "of their output on this node; 3 finished jobs kept, 1 of them kept for jobs that wait on them\n"
    )
    wait_until(lambda: not set(older[:4]) & outputs(daemon), 10, "the removed jobs' output to be deleted")
    assert set(older[4:]) <= outputs(daemon)

    token = client.create_api_token("pruner")["token"]
    remote = Client(url=daemon.http_url, token=token)
    everything = remote.prune(keep=0)
    assert (everything["removed"], everything["finished_kept"], everything["held"]) == (2, 1, 1)
    assert everything["bytes"] > 0
    gate.touch()
    assert client.wait(child, timeout=30)["state"] == "succeeded"
    last = client.prune(keep=0)  # nothing waits on the parent any more
    assert (last["removed"], last["finished_kept"], last["held"]) == (3, 0, 0)
    wait_until(lambda: outputs(daemon) == set(), 10, "every output to be deleted")


def test_bad_prune_bounds_are_one_line_and_exit_2(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path / "none")  # refused before any daemon is asked
    for args in (("--keep", "-1"), ("--older-than", "soon")):
        result = daemon.swarm("prune", *args)
        assert result.returncode == 2, result.stdout
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("swarm: "), result.stderr


def test_a_pruned_job_id_is_refused_for_a_new_job_named_as_pruned_and_still_a_parent(daemon_factory: Any) -> None:
    daemon: DaemonProcess = daemon_factory("t").start()
    client = daemon.client
    first = client.submit(["true"], cpus=0, job_id="nightly-1")
    assert client.wait(first, timeout=30)["state"] == "succeeded"
    assert client.prune(keep=0)["removed"] == 1

    again = daemon.swarm("run", "--id", "nightly-1", "--", "true")
    assert again.returncode != 0
    assert again.stderr == (
        "swarm: job id nightly-1 was used by a job the history bound removed: choose another id\n"
    ), again.stderr
    shown = daemon.swarm("show", "nightly-1")
    assert shown.returncode != 0
    assert shown.stderr == (
        "swarm: job nightly-1 succeeded and was removed by the history bound: "
        "raise --keep-jobs or --keep-history to keep jobs longer\n"
    ), shown.stderr
    child = client.submit(["true"], cpus=0, after=["nightly-1"])  # it succeeded: the child may run
    assert client.wait(child, timeout=30)["state"] == "succeeded"


def test_an_array_all_of_whose_elements_were_pruned_is_said_so_and_still_a_parent(daemon_factory: Any) -> None:
    daemon: DaemonProcess = daemon_factory("t").start()
    client = daemon.client
    array_id = client.submit(["sh", "-c", 'exit "$SWARM_ARRAY_INDEX"'], array="0-1", cpus=0, job_id="sweep")
    client.wait(array_id, timeout=30)
    assert client.prune(keep=0)["removed"] == 2

    shown = daemon.swarm("show", "sweep")  # it read "no job matches 'sweep'"
    assert (shown.returncode, shown.stderr) == (
        2,
        "swarm: array sweep: its 2 jobs ended and were removed by the history bound: "
        "raise --keep-jobs or --keep-history to keep jobs longer\n",
    )
    child = client.submit(["true"], cpus=0, after=["sweep"])  # refused as no job before
    ended = client.wait(child, timeout=30)
    assert (ended["state"], ended["reason"], ended["after"]) == (
        "cancelled",
        "dependency_failed",
        ["sweep.0", "sweep.1"],
    )


def test_the_job_counters_in_metrics_never_go_down_when_history_is_pruned_nor_at_a_restart(
    daemon_factory: Any,
) -> None:
    """`/metrics`' job counters and histograms count since the cluster began (``JobTable.totals``,
    ``JobTable.timings``): a prune that removes every finished job leaves them as they were (they
    counted the jobs kept, so a Prometheus `rate()` saw a reset), and so does a restart of the
    daemon."""
    daemon: DaemonProcess = daemon_factory("m", http_port=0).start()
    client = daemon.client
    ok = client.submit(["true"], cpus=0)
    bad = client.submit(["false"], cpus=0, retries=1)
    gone = client.submit(["true"], cpus=0, hold=True)
    client.cancel(gone)
    client.wait([ok, bad], timeout=60)
    wanted = {
        "swarm_jobs_submitted_total": 3.0,
        "swarm_jobs_finished_total": 3.0,
        "swarm_jobs_succeeded_total": 1.0,
        "swarm_jobs_failed_total": 1.0,
        "swarm_jobs_cancelled_total": 1.0,
        "swarm_job_retries_total": 1.0,
        "swarm_job_attempts_lost_total": 0.0,
        "swarm_job_preemptions_total": 0.0,
        "swarm_job_placement_seconds_count": 2.0,  # ok and bad, once each; gone was never placed
        "swarm_job_run_seconds_count": 2.0,
    }
    sums = ("swarm_job_placement_seconds_sum", "swarm_job_run_seconds_sum")

    def counters() -> dict[str, float]:
        metrics = daemon.metrics()
        return {name: metrics[name] for name in (*wanted, *sums)}

    counted = counters()
    assert {name: counted[name] for name in wanted} == wanted
    assert counted["swarm_job_run_seconds_sum"] > 0  # placement's may be 0: placed in the entry that took them
    assert client.prune(keep=0)["removed"] == 3
    assert client.jobs(limit=10) == []  # nothing kept, all counted
    assert counters() == counted
    daemon.stop()
    daemon.start()
    assert counters() == counted


def test_the_queue_depth_leaves_out_a_gangs_rank_that_exited_0_and_waits_for_the_others(daemon_factory: Any) -> None:
    """`swarm_queue_depth` is the jobs waiting for a node: a rank that exited 0 is pending while its
    gang's others run, but waits for none (a gang of 64 whose 63 ranks were done read 63)."""
    daemon: DaemonProcess = daemon_factory("q", http_port=0).start()
    gang = daemon.client.submit(["sh", "-c", 'if [ "$SWARM_RANK" = 1 ]; then sleep 60; fi'], ranks=2, cpus=0)
    daemon.client.submit(["true"], cpus=0, hold=True)
    wait_until(lambda: daemon.client.job(f"{gang}.0")["reason"] == "rank_done", 30, "rank 0 exited 0")
    assert daemon.metrics()["swarm_queue_depth"] == 1.0  # the held job
    daemon.client.cancel(gang)
