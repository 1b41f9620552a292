"""`swarm signal` on a real daemon (`docker kill -s`, `scancel --signal`): a running job's main
process gets the signal, or with ``--group`` its whole process group, each said in its output; a
job that is not running is left as it is and said so in one line; what cannot be is refused in one
line."""

from __future__ import annotations

import json
from pathlib import Path

from swarmcompute.testing.daemons import DaemonProcess, wait_until

SCRIPT = """
trap 'echo main >> {out}/got' USR1
sh -c 'trap "echo child >> {out}/got" USR1; touch {out}/ready; while [ ! -e {out}/stop ]; do sleep 0.05; done' &
while [ ! -e {out}/stop ]; do sleep 0.05; done
wait
"""
"""A job whose main shell and a child shell each write a line to ``got`` on SIGUSR1, until ``stop``."""


def _got(out: Path) -> list[str]:
    got = out / "got"
    return got.read_text().split() if got.exists() else []


def test_a_signal_reaches_the_main_process_and_with_group_every_process_of_the_job(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    job_id = daemon.client.submit(["sh", "-c", SCRIPT.format(out=tmp_path)], cpus=0, name="trapper")
    wait_until(lambda: (tmp_path / "ready").exists(), 30, "the job and its child run")
    sent = daemon.swarm("signal", "-s", "usr1", "trapper")
    assert (sent.returncode, sent.stdout, sent.stderr) == (0, f"{job_id} sent SIGUSR1 (attempt 1)\n", "")
    wait_until(lambda: _got(tmp_path) == ["main"], 10, "the main shell got it, the child did not")
    grouped = daemon.swarm("signal", "--signal", "SIGUSR1", "--group", job_id, "--json")
    assert grouped.returncode == 0, grouped.stderr
    assert json.loads(grouped.stdout) == [{"id": job_id, "state": "running", "attempt": 1, "outcome": "signalled"}]
    wait_until(lambda: sorted(_got(tmp_path)) == ["child", "main", "main"], 10, "both shells got the second")
    view = daemon.client.job(job_id)
    assert view["signals"] == [{"signal": "USR1", "group": False}, {"signal": "USR1", "group": True}]
    assert view["message"] == "attempt 1 running on node node; sent SIGUSR1 by root"  # the node's name
    shown = daemon.swarm("show", job_id).stdout
    assert "\nsignals    SIGUSR1, SIGUSR1 (to its process group)\n" in shown, shown
    (tmp_path / "stop").touch()
    assert daemon.client.wait([job_id], timeout=30)[0]["state"] == "succeeded"  # it trapped them: it ran on
    said = daemon.swarm("logs", job_id).stderr
    assert "[swarm: sending SIGUSR1 to the job's main process (swarm signal)]\n" in said
    assert "[swarm: sending SIGUSR1 to the job's process group (swarm signal)]\n" in said


def test_a_term_ends_a_job_that_does_not_trap_it_and_its_retry_starts_with_no_signals(daemon: DaemonProcess) -> None:
    job_id = daemon.client.submit(["sleep", "60"], cpus=0, retries=1)
    wait_until(lambda: daemon.client.job(job_id)["state"] == "running", 30, "the job runs")
    sent = daemon.swarm("signal", job_id)  # TERM, as kill(1)
    assert (sent.returncode, sent.stdout) == (0, f"{job_id} sent SIGTERM (attempt 1)\n"), sent.stderr
    wait_until(lambda: daemon.client.job(job_id)["attempt"] == 2, 30, "it failed and runs again")
    wait_until(lambda: daemon.client.job(job_id)["state"] == "running", 30, "its retry runs")
    view = daemon.client.job(job_id)
    assert (view["signals"], view["attempts"][0]["ended"], view["failures"]) == ([], "exit 143", 1)
    daemon.client.cancel(job_id)


def test_a_job_not_running_is_left_as_it_is_and_what_cannot_be_is_refused_in_one_line(
    daemon: DaemonProcess,
) -> None:
    held = daemon.client.submit(["true"], cpus=0, hold=True, name="later")
    done = daemon.client.submit(["true"], cpus=0)
    daemon.client.wait([done], timeout=30)
    result = daemon.swarm("signal", "-s", "HUP", held, done)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"{held} is pending: only a running job takes a signal\n{done} is succeeded: only a running job takes a signal\n"
    )
    assert daemon.client.job(held)["signals"] == []
    for args, said in [
        (["signal", "-s", "FOO", held], "swarm: unknown signal 'FOO': give a name as `kill -l` lists them"),
        (["signal", "-s", "0", held], "swarm: unknown signal '0'"),
        (["signal"], "swarm: name the jobs to signal, or select them with --name, --user or --all"),
        (["signal", held, "--all"], "swarm: give job ids, or select jobs with --name, --user or --all: not both"),
        (["signal", "no-such-job"], "swarm: no job matches 'no-such-job': see `swarm jobs`"),
    ]:
        refused = daemon.swarm(*args)
        assert refused.returncode == 2 and refused.stderr.startswith(said), (args, refused.stderr)
        assert refused.stderr.count("\n") == 1, refused.stderr
    nothing = daemon.swarm("signal", "--name", "later")
    assert (nothing.returncode, nothing.stderr) == (0, "swarm: no running job of yours matches: nothing to signal\n")
    daemon.client.cancel(held)


def test_an_array_id_or_a_selection_signals_each_running_element(daemon: DaemonProcess) -> None:
    array = daemon.client.submit(["sleep", "60"], cpus=0, array="0-1", name="sweep")
    elements = [f"{array}.0", f"{array}.1"]
    wait_until(lambda: all(daemon.client.job(e)["state"] == "running" for e in elements), 30, "both run")
    result = daemon.swarm("signal", "-s", "CONT", array)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == [f"{e} sent SIGCONT (attempt 1)" for e in elements]
    picked = daemon.client.signal(name="sweep*", signal="usr2")  # its elements are sweep[0] and sweep[1]
    assert sorted((r["id"], r["outcome"]) for r in picked) == [(e, "signalled") for e in elements]
    assert daemon.client.job(elements[0])["signals"] == [
        {"signal": "CONT", "group": False},
        {"signal": "USR2", "group": False},
    ]
    daemon.client.cancel(array)


def test_swarm_run_signal_warns_the_job_before_its_time_limit_so_it_checkpoints_and_ends_well(
    daemon: DaemonProcess,
) -> None:
    """`swarm run --timeout 3s --signal USR1@2s` (Slurm's ``--signal``): USR1 a second in, time
    for the job to save its work and end as it chooses, before the SIGTERM of its time limit."""
    script = "trap 'echo checkpoint; exit 0' USR1; while :; do sleep 0.05; done"
    result = daemon.swarm("run", "--name", "warned", "--timeout", "3s", "--signal", "USR1@2s", "--", "sh", "-c", script)
    assert (result.returncode, result.stdout) == (0, "checkpoint\n"), result.stderr
    assert "[swarm: sending SIGUSR1 to the job's main process (--signal, 2s before its time limit)]\n" in result.stderr
    view = daemon.client.job("warned")
    assert (view["state"], view["warn_signal"], view["warn_before_s"], view["signals"]) == (
        "succeeded",
        "USR1",
        2.0,
        [],
    )
    by_api = daemon.client.job(daemon.client.submit(["true"], timeout="1h", signal="SIGHUP", hold=True))
    assert (by_api["warn_signal"], by_api["warn_before_s"]) == ("HUP", 60.0)  # Slurm's 60 s by default
    assert "\nsignal     SIGHUP, 1m before its time limit\n" in daemon.swarm("show", by_api["id"]).stdout
    daemon.client.cancel(by_api["id"])
    for args, said in [
        (
            ["--signal", "USR1", "--", "true"],
            "swarm run: --signal SIG@TIME is sent TIME before the job's time limit: give it --timeout too\n",
        ),
        (
            ["--timeout", "1m", "--signal", "FOO@5s", "--", "true"],
            "swarm run: --signal 'FOO@5s': unknown signal 'FOO': give a name",
        ),
    ]:
        refused = daemon.swarm("run", *args)
        assert refused.returncode == 2 and refused.stderr.startswith(said), (args, refused.stderr)


def test_a_gangs_id_signals_its_running_ranks_and_leaves_out_one_that_exited_0(daemon: DaemonProcess) -> None:
    """`swarm signal GANG` while rank 0 has exited 0 and waits for rank 1: rank 1 gets it, rank 0
    is done and left out, not refused (exit 0)."""
    gang = daemon.client.submit(["sh", "-c", 'if [ "$SWARM_RANK" = 1 ]; then sleep 60; fi'], ranks=2, cpus=0)
    wait_until(lambda: daemon.client.job(f"{gang}.0")["reason"] == "rank_done", 30, "rank 0 exited 0")
    wait_until(lambda: daemon.client.job(f"{gang}.1")["state"] == "running", 30, "rank 1 runs")
    result = daemon.swarm("signal", "-s", "CONT", gang)
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{gang}.1 sent SIGCONT (attempt 1)\n", "")
    daemon.client.cancel(gang)
