"""Arrays, gangs and node commands from a host without a daemon (`swarm --url`,
``Client(url=...)``), against a real 2-node cluster on loopback: what works on a node works over
HTTP too."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from swarmcompute import Client
from swarmcompute.errors import InvalidJobSpecError
from swarmcompute.state.gangs import rank_id
from swarmcompute.testing.clusters import formed_cluster
from swarmcompute.testing.daemons import DaemonProcess, swarm_executable, wait_until

Swarm = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[DaemonProcess]]:
    with formed_cluster(tmp_path_factory.mktemp("url"), 2, http_port=0) as nodes:
        yield nodes


@pytest.fixture(scope="module")
def token(cluster: list[DaemonProcess]) -> str:
    made = cluster[0].swarm("api-token", "create", "remote")
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1]


@pytest.fixture
def url_env(cluster: list[DaemonProcess], token: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a host with no daemon: only $SWARM_URL and $SWARM_API_TOKEN lead to the cluster."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": ":".join(sys.path),
        "SWARM_URL": cluster[1].http_url,
        "SWARM_API_TOKEN": token,
    }


@pytest.fixture
def swarm(url_env: dict[str, str], tmp_path: Path) -> Swarm:
    """`swarm` on a host with no daemon (``url_env``)."""
    env = url_env

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [swarm_executable(), *args], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path
        )

    return run


def test_an_array_is_run_shown_listed_waited_for_and_cancelled_over_url(
    cluster: list[DaemonProcess], token: str, swarm: Swarm
) -> None:
    script = "echo $SWARM_ARRAY_INDEX; echo e$SWARM_ARRAY_INDEX >&2"
    ran = swarm("run", "--array", "0-5%2", "--name", "sweep", "--cpus", "0", "--", "sh", "-c", script)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "0\n1\n2\n3\n4\n5\n"  # each element's output, in index order, from both nodes
    said = ran.stderr.splitlines()
    array_id = said[0].split()[2].rstrip(":")
    assert said == [
        f"swarm: array {array_id}: 6 jobs; their output follows, in index order (`swarm cancel {array_id}` stops them)",
        *(f"e{i}" for i in range(6)),
        f"swarm: array {array_id}: 6 succeeded",
    ]

    shown = swarm("show", array_id)
    assert shown.returncode == 0, shown.stderr
    assert "array of 6, at most 2 at once" in shown.stdout and "6 succeeded (at most 2 at once)" in shown.stdout
    assert f"5      {array_id}.5  succeeded  0" in shown.stdout
    record = json.loads(swarm("show", "--json", array_id).stdout)
    assert (record["kind"], record["state"], record["size"], record["array_limit"]) == ("array", "succeeded", 6, 2)
    assert [e["index"] for e in record["elements"]] == list(range(6))
    assert {e["node_name"] for e in record["elements"]} <= {"n0", "n1"}

    waited = swarm("wait", "--json", array_id)
    assert waited.returncode == 0 and [j["name"] for j in json.loads(waited.stdout)] == [
        f"sweep[{i}]" for i in range(6)
    ]
    assert f"{array_id}  sweep[6]  6 succeeded" in swarm("jobs").stdout  # one line per array
    assert f"{array_id}  sweep[6]  6 succeeded" in swarm("jobs", "-n", "1").stdout  # -n counts lines, not jobs
    assert "sweep[3]" in swarm("jobs", "--elements").stdout

    held = swarm("run", "-d", "--array", "0-2", "--cpus", "0", "--", "sleep", "30")
    assert held.returncode == 0, held.stderr
    held_id = held.stdout.strip()
    cancelled = swarm("cancel", held_id)
    assert cancelled.stdout.splitlines() == [f"{held_id}.{i} cancelled" for i in range(3)], cancelled.stderr
    again = swarm("cancel", held_id)  # the node says which had ended: no clock compared across machines
    assert again.stdout.splitlines() == [f"{held_id}.{i} had already ended: cancelled" for i in range(3)]
    bad = swarm("run", "--array", "9-1", "--", "true")
    assert bad.returncode == 2 and "must go up" in bad.stderr

    client = Client(url=cluster[0].http_url, token=token)  # the same from Python
    sweep = client.submit(["true"], array="1,3,5", cpus=0)
    assert [j["array_index"] for j in client.wait(sweep, timeout=30)] == [1, 3, 5]
    assert client.job(sweep)["counts"] == {"succeeded": 3}
    assert [r["id"] for r in client.cancel(sweep)] == [f"{sweep}.{i}" for i in (1, 3, 5)]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_gang_runs_over_url_each_rank_streamed_and_tagged(cluster: list[DaemonProcess], swarm: Swarm) -> None:
    ran = swarm(
        "run", "--ranks", "2", "--ranks-per-node", "1", "--cpus", "0", "--",
        "sh", "-c", 'echo "rank $SWARM_RANK of $SWARM_WORLD_SIZE"; echo "oops $SWARM_RANK" >&2',
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert sorted(ran.stdout.splitlines()) == ["[0] rank 0 of 2", "[1] rank 1 of 2"]
    said = ran.stderr.splitlines()
    gang_id = said[0].split()[2].rstrip(":")
    assert said[0] == f"swarm: gang {gang_id}: 2 ranks (swarm logs {gang_id}.R for rank R)"
    assert "[0] oops 0" in said and "[1] oops 1" in said
    shown = json.loads(swarm("show", "--json", gang_id).stdout)
    assert [r["state"] for r in shown["gang"]] == ["succeeded", "succeeded"]
    assert len({r["node"] for r in shown["gang"]}) == 2  # one rank on each node
    logs = swarm("logs", f"{gang_id}.1")
    assert (logs.stdout, logs.stderr) == ("rank 1 of 2\n", "oops 1\n")

    failed = swarm("run", "--ranks", "2", "--cpus", "0", "--", "sh", "-c", 'exit "$((SWARM_RANK * 3))"')
    assert failed.returncode == 3 and re.search(r"failed: rank 1 on \S+: exited 3\n", failed.stderr), failed.stderr

    detached = swarm("run", "-d", "--ranks", "2", "--cpus", "0", "--", "sleep", "30")
    assert detached.returncode == 0, detached.stderr
    held = detached.stdout.strip()
    assert swarm("cancel", held).returncode == 0
    ranks = json.loads(swarm("show", "--json", held).stdout)["gang"]
    assert [r["state"] for r in ranks] == ["cancelled", "cancelled"]  # cancelled together
    both = swarm("run", "--ranks", "2", "--array", "0-1", "--", "true")
    assert both.returncode == 2 and "an array (--array) or a gang (--ranks), not both" in both.stderr
    too_many = swarm("run", "--ranks", "3", "--ranks-per-node", "4", "--", "true")
    assert too_many.returncode == 2 and "--ranks-per-node must be a whole number from 1 to --ranks" in too_many.stderr


@pytest.mark.parametrize(
    ("kind", "signum"),
    [("job", signal.SIGTERM), ("job", signal.SIGINT), ("array", signal.SIGHUP), ("gang", signal.SIGTERM)],
)
def test_ctrl_c_or_a_signal_that_ends_run_over_url_cancels_what_it_ran_at_once_in_one_line(
    cluster: list[DaemonProcess], token: str, url_env: dict[str, str], tmp_path: Path, kind: str, signum: int
) -> None:
    shape = {"job": (), "array": ("--array", "0-1"), "gang": ("--ranks", "2")}[kind]
    script = f"touch {tmp_path}/started.$SWARM_ARRAY_INDEX$SWARM_RANK; sleep 300"
    proc = subprocess.Popen(
        [swarm_executable(), "run", *shape, "--cpus", "0", "--", "sh", "-c", script],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=url_env, cwd=tmp_path,
    )  # fmt: skip
    try:
        markers = [tmp_path / "started."] if kind == "job" else [tmp_path / "started.0", tmp_path / "started.1"]
        wait_until(lambda: proc.poll() is None and all(m.exists() for m in markers), 20, f"the {kind} to start")
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
    said = err.decode()
    client = Client(url=cluster[0].http_url, token=token)
    try:
        _ended_in_one_line(client, kind, signum, script, out.decode(), said, proc.returncode, len(markers))
    finally:  # nothing of it left running for the next tests, whatever went wrong
        for job in client.jobs(20, states=["pending", "running"]):
            if job["argv"][-1] == script:
                client.cancel(job["id"])


def _ended_in_one_line(
    client: Client, kind: str, signum: int, script: str, out: str, said: str, returncode: int | None, n: int
) -> None:
    assert "Traceback" not in said and returncode == (130 if signum == signal.SIGINT else 128 + signum), said
    last = said.splitlines()[-1].split()
    group_id = last[last.index(kind) + 1]  # "... cancelled KIND ID ...": the line says what it cancelled
    if signum == signal.SIGINT:
        assert said.splitlines()[-1] == f"swarm: cancelled {kind} {group_id}"
    else:
        assert said.splitlines()[-1] == (
            f"swarm: ended by signal {signum}: cancelled {kind} {group_id} (--keep-on-exit keeps it running)"
        )
    if kind == "job":
        [job] = [j for j in client.jobs(10) if j["argv"][-1] == script]
        assert job["id"] == group_id
        ended = [client.wait(group_id, timeout=30)]
    elif kind == "array":
        assert out in ("", f"{group_id}\n")  # its id, unless the signal came before the node answered
        ended = client.wait(group_id, timeout=30)
    else:
        client.wait(group_id, timeout=30)
        ended = [client.job(rank_id(group_id, r)) for r in range(2)]
    assert [j["state"] for j in ended] == ["cancelled"] * n
    assert all("its swarm run went away" not in j["message"] for j in ended)  # cancelled by `swarm run` itself


def test_run_over_url_into_a_pipe_that_closes_cancels_the_job(
    cluster: list[DaemonProcess], token: str, url_env: dict[str, str], tmp_path: Path
) -> None:
    script = (
        f"{swarm_executable()} run --name piped --cpus 0 -- sh -c 'while :; do echo tick; sleep 0.05; done'"
        " | head -1; echo status ${PIPESTATUS[0]}"
    )
    result = subprocess.run(
        script,
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        env=url_env,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.stdout == "tick\nstatus 141\n"
    client = Client(url=cluster[0].http_url, token=token)
    job = client.wait(client.job("piped")["id"], timeout=30)
    assert job["state"] == "cancelled"
    assert (
        result.stderr == f"swarm: the output pipe closed: cancelled job {job['id']} (--keep-on-exit keeps it running)\n"
    )


def test_a_gang_is_submitted_and_waited_for_from_python_over_url(cluster: list[DaemonProcess], token: str) -> None:
    client = Client(url=cluster[0].http_url, token=token)
    gang = client.submit(["sh", "-c", "echo $SWARM_RANK"], ranks=2, cpus=0)
    assert client.wait(gang, timeout=30)["state"] == "succeeded"
    assert [r["state"] for r in client.job(gang)["gang"]] == ["succeeded", "succeeded"]
    with pytest.raises(InvalidJobSpecError, match="ranks_per_node needs ranks"):
        client.submit(["true"], ranks_per_node=1)
    both = {"argv": ["true"], "ranks": 2, "array": "0-1"}  # the API checks what the client checks
    refused = requests.post(f"{cluster[0].http_url}/api/v1/jobs", json=both, headers=_bearer(token), timeout=30)
    assert refused.status_code == 400 and refused.json()["code"] == "InvalidJobSpecError", refused.text


def test_a_pipeline_goes_in_one_submit_many_over_url(cluster: list[DaemonProcess], token: str) -> None:
    client = Client(url=cluster[0].http_url, token=token)
    pipeline = [
        {"argv": "echo reduce", "job_id": "url-reduce", "after": ["url-sweep", "url-pair"], "cpus": 0},
        {"argv": "echo $SWARM_ARRAY_INDEX", "job_id": "url-sweep", "array": "0-2", "cpus": 0},
        {"argv": "echo $SWARM_RANK", "job_id": "url-pair", "ranks": 2, "cpus": 0},
    ]
    assert client.submit_many(pipeline) == ["url-reduce", "url-sweep", "url-pair"]  # one id a spec
    reduce = client.wait("url-reduce", timeout=60)
    sweep = client.wait("url-sweep", timeout=30)
    assert reduce["state"] == "succeeded" and [j["state"] for j in sweep] == ["succeeded"] * 3
    assert reduce["started_at"] >= max(j["finished_at"] for j in sweep)


def test_nodes_are_listed_drained_labelled_and_undrained_over_url(
    cluster: list[DaemonProcess], token: str, swarm: Swarm
) -> None:
    nodes = json.loads(swarm("nodes", "--json").stdout)
    assert sorted(n["name"] for n in nodes) == ["n0", "n1"]
    labelled = swarm("label", "n1", "rack=2")
    assert labelled.returncode == 0 and labelled.stdout == "n1: labels change committed; the node applies them\n"
    # (that the node applies and gossips its labels is `tests/e2e/test_node_labels_and_drain.py`'s)

    client = Client(url=cluster[0].http_url, token=token)
    running = client.submit(["sleep", "1"], node="n1", cpus=0)
    wait_until(lambda: client.job(running)["state"] == "running", 20, "the job on n1 to run")
    row = client.drain("n1", wait="30s")  # returns once n1 runs nothing
    assert row["name"] == "n1" and row["drained"] and not row["running_jobs"]
    assert client.job(running)["state"] == "succeeded"
    later = client.submit(["true"], node="n1", cpus=0)
    why = wait_until(lambda: "drained" in (m := client.job(later)["message"]) and m, 20, "why it waits")
    assert "drained" in why
    undrained = swarm("undrain", "n1")
    assert undrained.stdout == "n1: back in service\n", undrained.stderr
    assert client.wait(later, timeout=30)["state"] == "succeeded"
    assert swarm("drain", "nope").stderr.startswith("swarm: no node 'nope'")
    assert client.label("n1", "rack=")["name"] == "n1"
