"""`swarm run --array` on a real daemon: one job per index, never more than %N at once."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from swarmcompute import Client
from swarmcompute.errors import InvalidJobSpecError, JobAlreadyExistsError, JobNotFoundError
from swarmcompute.testing.daemons import DaemonProcess, swarm_executable, wait_until


def test_an_array_of_30_with_at_most_4_at_once(daemon: DaemonProcess, tmp_path: Path) -> None:
    live = tmp_path / "live"
    live.mkdir()
    seen = tmp_path / "seen"
    # Each element marks itself live, records how many are live, and unmarks itself 0.2 s later.
    script = (
        f'touch {live}/$SWARM_ARRAY_INDEX; echo "$SWARM_ARRAY_ID $SWARM_ARRAY_INDEX $(ls {live} | wc -l)" >> {seen};'
        f" sleep 0.2; rm {live}/$SWARM_ARRAY_INDEX"
    )
    result = daemon.swarm("run", "--array", "0-29%4", "--cpus", "0", "--name", "sweep", "--", "sh", "-c", script)
    assert (result.returncode, result.stdout) == (0, ""), result.stderr  # the elements print nothing
    said = result.stderr.splitlines()
    array_id = said[0].split()[2].rstrip(":")
    assert said[1:] == [f"swarm: array {array_id}: 30 succeeded"]
    lines = [line.split() for line in seen.read_text().splitlines()]
    assert sorted(int(i) for _, i, _ in lines) == list(range(30))
    assert {a for a, _, _ in lines} == {array_id}
    assert max(int(n) for _, _, n in lines) <= 4

    client = Client(daemon.state_dir)
    jobs = client.wait(array_id, timeout=10)  # the array id stands for all its elements
    assert [j["name"] for j in jobs] == [f"sweep[{i}]" for i in range(30)]
    assert {j["array_id"] for j in jobs} == {array_id}
    shown = client.job(array_id)  # its command from the first element's details (on disk once ended)
    assert (shown["kind"], shown["counts"], shown["name"]) == ("array", {"succeeded": 30}, "sweep")
    assert "SWARM_ARRAY_INDEX" in shown["command"]
    assert [(e["index"], e["state"], e["exit_code"]) for e in shown["elements"]] == [
        (i, "succeeded", 0) for i in range(30)
    ]
    table = daemon.swarm("jobs").stdout
    assert f"{array_id}  sweep[30]  30 succeeded" in table  # one line per array
    newest = daemon.swarm("jobs", "-n", "1").stdout.splitlines()  # -n counts lines: all 30, not the newest one
    assert len(newest) == 2 and f"{array_id}  sweep[30]  30 succeeded" in newest[1]
    (line,) = client.jobs(limit=1, grouped=True)
    assert (line["id"], line["group"]["size"], line["group"]["counts"]) == (f"{array_id}.0", 30, {"succeeded": 30})
    assert "sweep[7]" in daemon.swarm("jobs", "--elements").stdout

    too_big = client.submit(["true"], array="0-2", cpus=1000)  # each element says why it waits
    wait_until(lambda: client.job(too_big)["elements"][2]["message"].startswith("needs 1000 cpus"), 10, "reasons")
    whys = {e["message"] for e in client.job(too_big)["elements"]}
    assert len(whys) == 1 and whys.pop().startswith("needs 1000 cpus")  # the first's record and the others' agree
    client.cancel(too_big)
    held = client.submit(["sleep", "30"], array="0-2", cpus=0)
    cancelled = daemon.swarm("cancel", held)
    assert cancelled.stdout.splitlines() == [f"{held}.{i} cancelled" for i in range(3)]
    bad = daemon.swarm("run", "--array", "9-1", "--", "true")
    assert bad.returncode == 2 and "must go up" in bad.stderr


def test_an_array_that_did_not_all_succeed_names_the_elements_that_did_not_and_how(daemon: DaemonProcess) -> None:
    script = "case $SWARM_ARRAY_INDEX in 2|4|5|6|7|8|9) exit $SWARM_ARRAY_INDEX;; esac"
    result = daemon.swarm("run", "--array", "0-9", "--id", "sweep", "--cpus", "0", "--", "sh", "-c", script)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "swarm: array sweep: 10 jobs; their output follows, in index order (`swarm cancel sweep` stops them)\n"
        "swarm: array sweep: 7 failed, 3 succeeded\n"
        "swarm: not succeeded: sweep.2 (exit 2), sweep.4 (exit 4), sweep.5 (exit 5), sweep.6 (exit 6),"
        " sweep.7 (exit 7) and 2 more; `swarm logs sweep.2` shows one's output\n"
    )


def test_an_attached_array_prints_each_elements_output_in_index_order_whatever_order_they_end_in(
    daemon: DaemonProcess,
) -> None:
    # Element 0 ends last and element 3 first; element 2 fails its first attempt and is retried.
    script = (
        "echo out $SWARM_ARRAY_INDEX try $SWARM_ATTEMPT; echo err $SWARM_ARRAY_INDEX >&2;"
        " sleep 0.$((4 - SWARM_ARRAY_INDEX)); [ $SWARM_ARRAY_INDEX != 2 ] || [ $SWARM_ATTEMPT = 2 ]"
    )
    result = daemon.swarm(
        "run", "--array", "0-3", "--id", "fan", "--retries", "1", "--cpus", "0", "--", "sh", "-c", script
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "out 0 try 1\nout 1 try 1\nout 2 try 1\nout 2 try 2\nout 3 try 1\n"
    node = daemon.status()["nodes"][0]["name"]
    assert result.stderr.splitlines() == [
        "swarm: array fan: 4 jobs; their output follows, in index order (`swarm cancel fan` stops them)",
        "err 0",
        "err 1",
        "err 2",
        f"fan.2: --- attempt 2 on {node} (after exit 1) ---",
        "err 2",
        "err 3",
        "swarm: array fan: 4 succeeded",
    ]
    detached = daemon.swarm("run", "-d", "--array", "0-1", "--cpus", "0", "--", "echo", "hi")
    assert (detached.returncode, detached.stderr) == (0, "")
    assert daemon.client.wait(detached.stdout.strip(), timeout=30)[1]["state"] == "succeeded"  # -d: the id alone


def test_an_attached_array_whose_elements_succeeded_but_lost_some_output_exits_3_as_one_job_does(
    daemon: DaemonProcess,
) -> None:
    job = ("--max-output", "1K", "--cpus", "0", "--", "sh", "-c", "head -c 5000 /dev/zero")
    one = daemon.swarm("run", *job)
    result = daemon.swarm("run", "--array", "0-1", *job)
    assert (one.returncode, result.returncode, len(result.stdout)) == (3, 3, 2 * 1024)
    assert result.stderr.count("output truncated after 1024 bytes") == 2
    assert result.stderr.splitlines()[-1].endswith(": 2 succeeded")
    whole = daemon.swarm("run", "--array", "0-1", "--cpus", "0", "--", "echo", "all of it")
    assert (whole.returncode, whole.stdout) == (0, "all of it\nall of it\n")


def test_an_attached_array_prints_every_attempt_of_an_element_retried_before_its_turn(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    # Element 0 holds the printing until element 1 has failed once and run again.
    script = (
        f"if [ $SWARM_ARRAY_INDEX = 0 ]; then until [ -e {tmp_path}/one.2 ]; do sleep 0.05; done; echo zero;"
        f" else echo one try $SWARM_ATTEMPT; touch {tmp_path}/one.$SWARM_ATTEMPT; [ $SWARM_ATTEMPT = 2 ]; fi"
    )
    args = ("--array", "0-1", "--id", "late", "--retries", "1", "--cpus", "0", "--", "sh", "-c", script)
    result = daemon.swarm("run", *args)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "zero\none try 1\none try 2\n"
    node = daemon.status()["nodes"][0]["name"]
    assert result.stderr.splitlines()[1:] == [
        f"late.1: --- attempt 2 on {node} (after exit 1) ---",
        "swarm: array late: 2 succeeded",
    ]


def test_an_attached_array_past_the_history_bound_prints_every_element_which_stay_until_it_has_ended(
    daemon_factory: Any, tmp_path: Path
) -> None:
    """Removed while their array ran (elements past ``--keep-jobs``), their output was lost to an
    attached `swarm run --array`, which counted them ("jobs had been removed by the history bound
    before their output was printed"); a busy cluster's run stopped on "ambiguous" for an id it had."""
    daemon = daemon_factory("a", extra_args=("--keep-jobs", "3")).start()
    go = tmp_path / "go"
    script = f"[ $SWARM_ARRAY_INDEX != 0 ] || until [ -e {go} ]; do sleep 0.05; done; echo $SWARM_ARRAY_INDEX"
    proc = subprocess.Popen(
        [swarm_executable(), "run", "--array", "0-9", "--id", "held", "--cpus", "0", "--", "sh", "-c", script],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "SWARM_STATE_DIR": str(daemon.state_dir)},
    )  # fmt: skip

    def state_of(job_id: str) -> str:
        try:
            return str(daemon.client.job(job_id)["state"])
        except JobNotFoundError:
            return "none"  # not submitted yet, or removed

    try:
        wait_until(lambda: state_of("held.0") == "running", 30, "element 0 to run (it waits for the go)")
        wait_until(lambda: state_of("held.9") == "succeeded", 30, "the other elements to end")
        time.sleep(1.5)  # the bound's look, once a second: it must leave them
        assert [state_of(f"held.{i}") for i in range(1, 10)] == ["succeeded"] * 9
        go.touch()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert [int(line) for line in out.splitlines()] == list(range(10))
    assert err.splitlines()[1:] == ["swarm: array held: 10 succeeded"]
    assert proc.returncode == 0

    def removed(job_id: str) -> bool:
        try:
            daemon.client.job(job_id)
        except JobNotFoundError:
            return True
        return False

    wait_until(lambda: removed("held.1"), 30, "the array, ended, to leave the table as a whole")


def test_the_jobs_table_shows_a_gang_as_one_line_with_its_attempt_and_node_and_elements_shows_each_rank(
    daemon: DaemonProcess,
) -> None:
    ran = daemon.swarm("run", "--ranks", "3", "--cpus", "0", "--name", "trio", "--", "true")
    assert ran.returncode == 0, ran.stderr
    gang_id = daemon.client.jobs(limit=3)[0]["gang_id"]
    lines = [line.split() for line in daemon.swarm("jobs").stdout.splitlines()[1:]]
    gang = [line for line in lines if line[0] == gang_id]
    assert len(gang) == 1 and not [line for line in lines if line[1].startswith("trio[") and line[0] != gang_id]
    assert gang[0][1:7] == ["trio[3", "ranks]", "3", "succeeded", "-", "1"]  # NAME, STATE, EXIT, TRY
    assert gang[0][7] == daemon.status()["nodes"][0]["name"]  # every rank on this one node
    ranks = [line for line in daemon.swarm("jobs", "--elements").stdout.splitlines() if "trio[" in line]
    assert sorted(line.split()[1] for line in ranks) == ["trio[0]", "trio[1]", "trio[2]"]


def test_an_array_or_gang_id_is_never_also_a_plain_jobs_and_one_job_asked_by_an_array_id_says_how_to_name_one(
    daemon: DaemonProcess,
) -> None:
    client = Client(daemon.state_dir)
    array_id = client.submit(["true"], array="0-2", cpus=0)
    gang_id = client.submit(["true"], ranks=2, cpus=0)
    plain = client.submit(["true"], cpus=0)
    client.wait([array_id, gang_id, plain], timeout=30)

    for taken, kind in ((array_id, "array"), (gang_id, "gang")):
        refused = daemon.swarm("run", "--id", taken, "--", "true")
        assert (refused.returncode, refused.stderr) == (
            2,
            f"swarm: job id {taken} is the id of {kind} {taken}: choose another id\n",
        )
    for shape in (("--array", "0-1"), ("--ranks", "2")):
        refused = daemon.swarm("run", "--id", plain, *shape, "--cpus", "0", "--", "true")
        kind = "array" if shape[0] == "--array" else "gang"
        assert (refused.returncode, refused.stderr) == (
            2,
            f"swarm: {kind} id {plain} is taken by job {plain}: choose another id\n",
        )
    assert client.job(gang_id)["gang_id"] == gang_id  # still the gang: nothing shadows it
    assert client.job(array_id)["kind"] == "array"

    logs = daemon.swarm("logs", array_id)
    assert (logs.returncode, logs.stderr) == (
        2,
        f"swarm: {array_id} is an array of 3 jobs: name one ({array_id}.INDEX, e.g. {array_id}.0)\n",
    )
    again = client.submit(["true"], array="0-2", cpus=0, job_id=array_id)  # the same array again: the same ids
    assert again == array_id


def test_an_array_id_taken_by_an_ended_array_is_refused_to_new_elements_and_the_array_stays_as_it_was(
    daemon: DaemonProcess,
) -> None:
    client = Client(daemon.state_dir)
    client.wait(client.submit(["true"], array="0-1", cpus=0, job_id="nightly"), timeout=30)

    for shape in (("--array", "2"), ("--array", "5-6%1")):  # new indexes: they would join the ended array
        refused = daemon.swarm("run", "-d", "--id", "nightly", *shape, "--cpus", "0", "--", "echo", "other")
        assert (refused.returncode, refused.stderr) == (
            2,
            "swarm: array id nightly is taken by a different array: choose another id\n",
        )
    assert sorted(j["id"] for j in client.jobs(10)) == ["nightly.0", "nightly.1"]
    assert client.submit(["true"], array="0-1", cpus=0, job_id="nightly") == "nightly"  # a retry: the same jobs


def test_a_job_after_an_array_or_gang_waits_for_all_of_it_and_a_failed_element_cancels_it(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    client = Client(daemon.state_dir)
    done = tmp_path / "done"
    done.mkdir()
    mark = f"sleep 0.$SWARM_ARRAY_INDEX$SWARM_RANK; touch {done}/$SWARM_JOB_ID"
    array_id = client.submit(["sh", "-c", mark], array="1-3", cpus=0)
    gang_id = client.submit(["sh", "-c", mark], ranks=2, cpus=0)
    count = f"ls {done} | wc -l > {tmp_path}/seen"
    child = client.submit(["sh", "-c", count], after=[array_id, gang_id], cpus=0)
    assert client.wait(child, timeout=60)["state"] == "succeeded"
    assert (tmp_path / "seen").read_text().strip() == "5"  # every element and rank had ended before it started
    assert len(client.job(child)["after"]) == 5

    failing = client.submit(["sh", "-c", 'exit "$SWARM_ARRAY_INDEX"'], array="0-1", cpus=0)
    orphan = client.submit(["true"], after=[failing], cpus=0)
    ended = client.wait(orphan, timeout=60)
    assert (ended["state"], ended["reason"]) == ("cancelled", "dependency_failed")
    anyway = client.submit(["true"], after_any=[failing], cpus=0)
    assert client.wait(anyway, timeout=60)["state"] == "succeeded"

    huge = client.submit(["sleep", "30"], array="0-10000%1", cpus=0)  # 10,001 jobs, one at a time
    try:
        with pytest.raises(InvalidJobSpecError) as refused:
            client.submit(["true"], after=[huge])
        assert str(refused.value) == f"--after {huge}: its 10001 jobs are more than the 10000 one job can wait on"
    finally:
        client.cancel(huge)


def test_an_array_is_named_by_its_name_as_by_its_id_unless_a_job_goes_by_that_name(daemon: DaemonProcess) -> None:
    """`swarm show sweep` of `swarm run --array 0-2 --name sweep` read "no job matches 'sweep'"."""
    client = Client(daemon.state_dir)
    array_id = client.submit(["sleep", "30"], array="0-2%1", cpus=0, name="sweep")
    child = client.submit(["true"], cpus=0, after=["sweep"])
    assert client.job(child)["after"] == [f"{array_id}.{i}" for i in range(3)]
    shown = json.loads(daemon.swarm("show", "sweep", "--json").stdout)
    assert (shown["kind"], shown["id"], shown["name"]) == ("array", array_id, "sweep")
    by_prefix = json.loads(daemon.swarm("show", array_id[:8], "--json").stdout)  # as a job's prefix names it
    assert (by_prefix["kind"], by_prefix["id"]) == ("array", array_id)
    cancelled = daemon.swarm("cancel", "sweep")
    assert cancelled.returncode == 0, cancelled.stderr
    assert {j["state"] for j in client.wait([array_id], timeout=30)} == {"cancelled"}
    again = daemon.swarm("rerun", "-d", "sweep")  # read "no job matches 'sweep'"
    assert again.returncode == 0, again.stderr
    rerun = json.loads(daemon.swarm("show", again.stdout.strip(), "--json").stdout)
    assert (rerun["kind"], rerun["size"]) == ("array", 3), rerun
    client.cancel(rerun["id"])
    plain = client.submit(["true"], cpus=0, name="sweep")  # a job of that name: the name is its
    assert client.job("sweep")["id"] == plain


def test_a_gang_is_named_by_its_name_as_by_its_id(daemon: DaemonProcess) -> None:
    """`swarm show gang1`, `logs`, `wait` and `cancel` of `swarm run --ranks 2 --name gang1` read
    "no job matches 'gang1'", though `swarm jobs` listed `gang1[2 ranks]`."""
    client = Client(daemon.state_dir)
    gang_id = client.submit(["sh", "-c", "echo rank $SWARM_RANK; sleep 30"], ranks=2, cpus=0, name="gang1")
    child = client.submit(["true"], cpus=0, after=["gang1"])
    assert client.job(child)["after"] == [f"{gang_id}.0", f"{gang_id}.1"]
    by_prefix = client.submit(["true"], cpus=0, after=[gang_id[:8]])  # the whole gang, as its id: not its rank 0
    assert client.job(by_prefix)["after"] == [f"{gang_id}.0", f"{gang_id}.1"]
    wait_until(lambda: client.job(f"{gang_id}.0")["state"] == "running", 30, "the gang to run")
    shown = json.loads(daemon.swarm("show", "gang1", "--json").stdout)
    assert (shown["id"], shown["gang_id"]) == (f"{gang_id}.0", gang_id)
    wait_until(lambda: daemon.swarm("logs", "gang1").stdout == "rank 0\n", 30, "rank 0's output")
    assert daemon.swarm("wait", "gang1", "--timeout", "0").returncode == 2  # it runs
    cancelled = daemon.swarm("cancel", "gang1")
    assert cancelled.returncode == 0, cancelled.stderr
    assert {j["state"] for j in client.wait([f"{gang_id}.0", f"{gang_id}.1"], timeout=30)} == {"cancelled"}
    again = daemon.swarm("rerun", "-d", "gang1")  # the gang, not its rank 0 alone (refused)
    assert again.returncode == 0, again.stderr
    rerun = again.stdout.strip()
    assert client.job(rerun)["gang_id"] == rerun
    client.cancel(rerun)


def test_a_gang_that_failed_says_how_its_rank_failed_and_a_cancel_or_wait_of_it_lists_every_rank(
    daemon: DaemonProcess,
) -> None:
    """A gang's timeout read `failed: rank 0 exited 143`, and a rank whose image was not pulled
    `exited None`: the rank's message says how. `swarm cancel GANG.1` printed only `GANG.1
    cancelled` though every rank was, and `swarm wait GANG` only rank 0's line."""
    ran = daemon.swarm("run", "--ranks", "2", "--cpus", "0", "--timeout", "1s", "--id", "tg", "--", "sleep", "30")
    assert ran.returncode == 143
    assert "swarm: gang tg failed: rank " in ran.stderr and "timed out" in ran.stderr, ran.stderr
    assert "exited 143" not in ran.stderr
    made = daemon.swarm("run", "-d", "--ranks", "2", "--cpus", "0", "--id", "cg", "--", "sleep", "30")
    assert made.returncode == 0, made.stderr
    cancelled = daemon.swarm("cancel", "cg.1")
    assert (cancelled.returncode, sorted(cancelled.stdout.splitlines())) == (0, ["cg.0 cancelled", "cg.1 cancelled"])
    waited = daemon.swarm("wait", "cg")
    assert [line.split()[:2] for line in waited.stdout.splitlines()] == [["cg.0", "cancelled"], ["cg.1", "cancelled"]]


def test_a_failed_gang_without_an_exit_code_says_its_ranks_message_not_none() -> None:
    from swarmcompute.cli.gang_run import gang_status

    record = {
        "gang_id": "g",
        "state": "cancelled",
        "gang": [{"rank": 0, "id": "g.0", "state": "failed", "exit_code": None}],
    }
    failed = {"rank": 0, "exit_code": None, "node_name": "n1", "message": "image alpine:nope could not be pulled"}
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert gang_status(record, failed) == 1
    assert err.getvalue() == "swarm: gang g failed: rank 0 on n1: image alpine:nope could not be pulled\n"
    with contextlib.redirect_stderr(err := io.StringIO()):
        assert gang_status(record, {**failed, "exit_code": 3, "message": "exited with code 3"}) == 3
    assert err.getvalue() == "swarm: gang g failed: rank 0 on n1: exited 3\n"


def test_the_rest_of_an_array_and_a_retry_of_it_go_in_after_its_first_elements_ended_and_were_compacted(
    daemon: DaemonProcess,
) -> None:
    """`swarm run --array 0-20000` goes in requests of 10,000: once the first request's elements had
    ended and been compacted (only the newest 256 ended jobs stay whole), the second read "array id
    ... is taken by a different array" and exit 2, with 10,000 elements in and running."""
    from swarmcompute.arrays import elements
    from swarmcompute.state.job import JobSpec

    client = Client(daemon.state_dir)
    specs = elements(JobSpec("sweep", ("true",), cpus=0, env={"K": "v"}), "0-300")
    assert client._submit(tuple(specs[:290])) == [s.id for s in specs[:290]]
    client.wait("sweep", timeout=30)
    assert client._submit(tuple(specs[290:])) == [s.id for s in specs[290:]]  # the rest of the submission
    assert client._submit(tuple(specs)) == [s.id for s in specs]  # all of it again: a retry, nothing new
    assert len(client.wait("sweep", timeout=30)) == 301
    other = elements(JobSpec("sweep", ("false",), cpus=0, env={"K": "v"}), "301-302")
    with pytest.raises(JobAlreadyExistsError, match="^array id sweep is taken by a different array"):
        client._submit(tuple(other))  # still: a different array under that id
    with pytest.raises(JobAlreadyExistsError, match=r"^job id sweep\.0 is taken by a different job$"):
        client._submit(tuple(elements(JobSpec("sweep", ("true",), cpus=0, env={"K": "w"}), "0")))
