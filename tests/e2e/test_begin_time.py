"""`swarm run --begin` on a real daemon (`sbatch --begin`): the job waits, pending, until its
start time by the leader's clock, says so, then runs as any other; a start time that does not
read is one line on stderr before anything is sent. `swarm run --every` (a cron line, Nomad's
periodic jobs): each run added once the one before ended, until its pending run is cancelled."""

from __future__ import annotations

import time
from typing import Any

from swarmcompute.testing.daemons import DaemonProcess, wait_until


def test_a_job_with_a_begin_time_waits_for_it_says_so_and_then_runs(daemon: DaemonProcess) -> None:
    asked_at = time.time()
    made = daemon.swarm("run", "-d", "--begin", "3s", "--cpus", "0", "--", "echo", "on time")
    assert made.returncode == 0, made.stderr
    job_id = made.stdout.strip()
    view = daemon.client.job(job_id)
    assert view["state"] == "pending" and asked_at + 3 <= view["begin_at"] <= time.time() + 3
    if time.time() < view["begin_at"] - 0.5:  # still well before it (a slow machine may be past it)
        assert (view["reason"], view["message"]) == ("begin_time", "waits for its start time (--begin)")
        shown = daemon.swarm("show", job_id).stdout
        assert "begins     " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(view["begin_at"])) in shown
    done = daemon.client.wait([job_id], timeout=30)[0]
    assert done["state"] == "succeeded" and done["started_at"] >= view["begin_at"]
    assert daemon.swarm("logs", job_id).stdout == "on time\n"


def test_an_attached_run_with_a_begin_time_says_when_and_streams_its_output_then(daemon: DaemonProcess) -> None:
    run = daemon.swarm("run", "--begin", "now+1s", "--id", "soon1", "--", "echo", "hello")
    assert (run.returncode, run.stdout) == (0, "hello\n"), run.stderr
    assert run.stderr.startswith("swarm: job soon1 waits for its start time, ")
    assert run.stderr.splitlines()[0].endswith(" (--begin)")
    view = daemon.client.job("soon1")
    assert view["started_at"] >= view["begin_at"]


def test_a_begin_time_that_does_not_read_is_refused_in_one_line_before_anything_is_sent(
    daemon: DaemonProcess,
) -> None:
    for args, said in (
        (("--begin", "tomorrowish"), "swarm run: cannot read 'tomorrowish' as a start time: use e.g. 30m, now+2h,"),
        (("--begin", "20260-01-01"), "swarm run: cannot read '20260-01-01' as a start time"),
        (("--begin", "2300-01-01"), "swarm run: --begin must be a time from 1970 to 2200"),  # checked here too
        (("--every", "500ms"), "swarm run: --every must be from 1s to 10 years"),
    ):
        refused = daemon.swarm("run", "-d", *args, "--", "true")
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
        assert refused.stderr.startswith(said), refused.stderr
    assert daemon.client.jobs() == []
    through_api = daemon.client.submit(["true"], begin=time.time() - 5, cpus=0)  # a time passed: at once
    assert daemon.client.wait([through_api], timeout=30)[0]["state"] == "succeeded"


def test_a_job_run_every_period_runs_again_once_each_run_ended_until_its_next_run_is_cancelled(
    daemon: DaemonProcess,
) -> None:
    made = daemon.swarm("run", "-d", "--every", "1s", "--id", "tick", "--cpus", "0", "--", "echo", "tock")
    assert made.returncode == 0 and made.stdout == "tick\n", made.stderr
    third = wait_until(lambda: [j for j in daemon.client.jobs() if j["id"] == "tick.2"], 30, "the third run")[0]
    first, second = daemon.client.wait(["tick", "tick.1"], timeout=30)
    assert (first["state"], second["state"]) == ("succeeded", "succeeded")
    start = first["submitted_at"]  # no --begin: the series starts when it was submitted
    for before, run in ((first, second), (second, third)):  # each at the first whole period after the end
        periods = run["begin_at"] - start
        # (the leader stamps the end a little after the node measured it: a period's edge may fall between)
        assert periods == round(periods) >= 1 and run["begin_at"] - 1.5 <= before["finished_at"] < run["begin_at"]
    assert second["started_at"] >= second["begin_at"]
    assert (second["every_s"], second["occurrence"], second["name"]) == (1.0, 1, "")
    assert daemon.swarm("logs", "tick.1").stdout == "tock\n"
    shown = daemon.swarm("show", "tick.1").stdout
    assert "every      1s: run 1 of tick (tick.2 came after it)" in shown


def test_a_series_stops_when_its_pending_run_is_cancelled(daemon: DaemonProcess) -> None:
    made = daemon.swarm("run", "--every", "1h", "--id", "hourly", "--", "echo", "on the hour")
    assert (made.returncode, made.stdout) == (0, "on the hour\n"), made.stderr
    assert "swarm: job hourly runs every 1h: this follows its first run; the next are hourly.1," in made.stderr
    first = daemon.client.job("hourly")
    nxt = wait_until(lambda: [j for j in daemon.client.jobs() if j["id"] == "hourly.1"], 30, "the next run")[0]
    assert (nxt["state"], nxt["reason"], nxt["begin_at"]) == ("pending", "begin_time", first["submitted_at"] + 3600)
    assert nxt["message"] == "run 1 of hourly (--every 1h): waits for its start time"
    stopped = daemon.swarm("cancel", "hourly.1")
    assert stopped.stdout == "hourly.1 cancelled\n"
    assert sorted(j["id"] for j in daemon.client.jobs()) == ["hourly", "hourly.1"]
    assert (
        "every      1h: run 1 of hourly (cancelled: the series ended with it)"
        in daemon.swarm("show", "hourly.1").stdout
    )
    assert "every      1h: run 0 of hourly (hourly.1 came after it)" in daemon.swarm("show", "hourly").stdout
    assert not [j for j in daemon.client.jobs() if j["state"] not in ("succeeded", "cancelled")]


def test_the_series_id_names_its_open_run_once_its_first_run_ended(daemon: DaemonProcess) -> None:
    """`swarm run --every -d` prints the series' id; a cancel of it, once run 0 ended, said `had
    already ended` while the series ran on. It now acts on the open run, as an array's id on its
    elements: held, released, updated and cancelled through that id."""
    made = daemon.swarm("run", "--every", "1h", "--id", "nightly", "--cpus", "0", "--", "echo", "backup")
    assert (made.returncode, made.stdout) == (0, "backup\n"), made.stderr
    assert "(`swarm cancel nightly` stops them)" in made.stderr
    wait_until(lambda: [j for j in daemon.client.jobs() if j["id"] == "nightly.1"], 30, "the next run")
    assert daemon.client.job("nightly")["every_next"] == "nightly.1"
    shown = daemon.swarm("show", "nightly").stdout
    assert "every      1h: run 0 of nightly (now at nightly.1: `swarm cancel nightly` ends the series)" in shown
    assert daemon.swarm("hold", "nightly").stdout == "nightly.1 held\n"
    assert daemon.swarm("update", "nightly", "--priority", "5").stdout == "nightly.1 updated\n"
    assert daemon.swarm("release", "nightly").stdout == "nightly.1 released\n"
    assert (daemon.client.job("nightly.1")["priority"], daemon.client.job("nightly.1")["held"]) == (5, False)
    stopped = daemon.swarm("cancel", "nightly")
    assert (stopped.returncode, stopped.stdout) == (0, "nightly.1 cancelled\n"), stopped.stderr
    assert daemon.client.job("nightly.1")["state"] == "cancelled"
    assert daemon.client.job("nightly")["every_next"] is None
    assert "(nightly.1 came after it)" in daemon.swarm("show", "nightly").stdout
    again = daemon.swarm("cancel", "nightly")  # the series ended: the job itself, as before
    assert again.stdout == "nightly had already ended: succeeded\n"
    assert sorted(j["id"] for j in daemon.client.jobs()) == ["nightly", "nightly.1"]


def test_the_series_id_still_names_the_series_once_the_history_bound_removed_its_first_run(
    daemon_factory: Any,
) -> None:
    """Once `--keep-jobs` removed run 0, `swarm cancel ID` and `swarm hold ID` read "job id prefix
    'ID' is ambiguous (ID.2, ID.3)" and `swarm wait ID` "removed since by the history bound" while
    the series ran on (a `--every 1d` job's after a week by default): the id names its open run."""
    daemon = daemon_factory("h", extra_args=("--keep-jobs", "2")).start()
    made = daemon.swarm("run", "-d", "--every", "1s", "--id", "hs", "--cpus", "0", "--", "true")
    assert made.returncode == 0, made.stderr
    wait_until(lambda: "hs" not in {j["id"] for j in daemon.client.jobs()}, 30, "run 0 to be removed")
    held = daemon.swarm("hold", "hs")
    assert held.returncode in (0, 1) and held.stdout.startswith("hs."), held.stderr  # (1: it ran already)
    waited = daemon.swarm("wait", "hs", "--timeout", "0", "--json")
    assert "removed since" not in waited.stdout + waited.stderr and waited.returncode in (0, 2), waited.stderr
    stopped = daemon.swarm("cancel", "hs")
    assert stopped.returncode == 0 and stopped.stdout.startswith("hs."), stopped.stderr
    run = stopped.stdout.split()[0]
    assert daemon.client.job(run)["state"] == "cancelled"
    assert daemon.swarm("show", "hs", "--json").returncode == 0
    time.sleep(2)  # no run follows a cancelled one
    assert not [j for j in daemon.client.jobs() if j["state"] not in ("succeeded", "cancelled")]
