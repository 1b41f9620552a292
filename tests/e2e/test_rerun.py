"""`swarm rerun JOB` on 3 real daemons: an ended job runs again as a new job with its command and
options, shipped files and stdin included, through any node; an array's elements that did not
succeed as a new array of those indices; a gang as a new gang; over `--url`, the REST API and the
Python clients alike. What has not ended, or cannot be rerun alone, is said in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from swarmcompute.testing.clusters import formed_cluster
from swarmcompute.testing.daemons import DaemonProcess, swarm_executable
from swarmcompute.web.remote import RemoteClient


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[DaemonProcess]]:
    with formed_cluster(tmp_path_factory.mktemp("rerun"), 3, http_port=0) as nodes:
        yield nodes


@pytest.fixture(scope="module")
def token(trio: list[DaemonProcess]) -> str:
    return trio[0].swarm("api-token", "create", "rerun").stdout.strip().splitlines()[-1]


def swarm(
    node: DaemonProcess,
    *args: str,
    cwd: Path | None = None,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [swarm_executable(), *args], input=stdin, capture_output=True, text=True, timeout=60, cwd=cwd,
        env=env or {**os.environ, "SWARM_STATE_DIR": str(node.state_dir)},
        stdin=subprocess.DEVNULL if stdin is None else None,
    )  # fmt: skip


def test_a_failed_job_reruns_as_a_new_job_with_its_command_env_and_exit_code(trio: list[DaemonProcess]) -> None:
    n0, n1, _ = trio
    first = swarm(n0, "run", "--id", "flaky", "-e", "WHO=me", "--retries", "0", "--", "sh", "-c", 'echo "$WHO"; exit 4')
    assert (first.returncode, first.stdout) == (4, "me\n")
    again = swarm(n1, "rerun", "--id", "flaky2", "flaky")  # through another node
    assert (again.returncode, again.stdout, again.stderr) == (4, "me\n", "swarm: rerun of flaky as job flaky2\n")
    old, new = n1.client.job("flaky"), n1.client.job("flaky2")
    assert (new["command"], new["env"], new["cwd"], new["attempt"]) == (old["command"], old["env"], old["cwd"], 1)
    detached = swarm(n0, "rerun", "-d", "flaky")
    assert (detached.returncode, detached.stderr) == (0, "")
    assert n0.client.wait(detached.stdout.strip(), timeout=30)["exit_code"] == 4


def test_an_arrays_elements_that_did_not_succeed_rerun_as_a_new_array_of_those_indices(
    trio: list[DaemonProcess],
) -> None:
    n0 = trio[0]
    script = 'echo "el $SWARM_ARRAY_INDEX"; [ $((SWARM_ARRAY_INDEX % 3)) != 0 ]'
    first = swarm(n0, "run", "--array", "0-7%2", "--id", "arr", "--name", "part", "--", "sh", "-c", script)
    assert first.returncode == 1, first.stderr
    again = swarm(n0, "rerun", "--id", "arr2", "arr")
    assert (again.returncode, again.stdout) == (1, "el 0\nel 3\nel 6\n")
    assert again.stderr.splitlines()[0] == "swarm: rerun of arr: elements 0,3,6%2"
    shown = n0.client.job("arr2")
    assert [e["index"] for e in shown["elements"]] == [0, 3, 6] and shown["array_limit"] == 2
    assert n0.client.job("arr2.3")["name"] == "part[3]"
    every = swarm(n0, "rerun", "--all", "--id", "arr3", "arr")
    assert every.stdout == "".join(f"el {i}\n" for i in range(8))
    element = swarm(n0, "rerun", "arr.4")  # one element alone: a plain job that sees its index
    assert (element.returncode, element.stdout) == (0, "el 4\n")
    swarm(n0, "run", "--array", "0-1", "--id", "fine", "--", "true")
    nothing = swarm(n0, "rerun", "fine")
    assert (nothing.returncode, nothing.stderr) == (
        2,
        "swarm: every element of array fine succeeded: nothing to rerun (--all runs them all again)\n",
    )


def test_a_gang_reruns_whole_and_a_rank_or_a_running_job_is_refused_in_one_line(trio: list[DaemonProcess]) -> None:
    n0 = trio[0]
    first = swarm(n0, "run", "--ranks", "2", "--cpus", "0", "--id", "g", "--", "sh", "-c", "echo r$SWARM_RANK")
    assert first.returncode == 0, first.stderr
    again = swarm(n0, "rerun", "--id", "g2", "g")
    assert again.returncode == 0, again.stderr
    assert sorted(again.stdout.splitlines()) == ["[0] r0", "[1] r1"]
    assert len(n0.client.job("g2")["gang"]) == 2
    rank = swarm(n0, "rerun", "g.1")
    assert (rank.returncode, rank.stderr) == (
        2,
        "swarm: g.1 is rank 1 of gang g: a rank runs with its gang (rerun g)\n",
    )
    n0.client.submit(["sleep", "60"], job_id="busy", cpus=0)
    try:
        busy = swarm(n0, "rerun", "busy")
        assert (busy.returncode, busy.stderr) == (
            2,
            "swarm: job busy has not ended: `swarm wait busy` first (a rerun runs again what ended)\n",
        )
    finally:
        n0.client.cancel("busy")


def test_a_rerun_ships_the_same_files_and_stdin_after_the_submitter_deleted_them(
    trio: list[DaemonProcess], tmp_path: Path
) -> None:
    n0, _, n2 = trio
    (tmp_path / "s.sh").write_text('#!/bin/sh\necho "script $1"; cat\n')
    (tmp_path / "s.sh").chmod(0o755)
    first = swarm(n0, "run", "--stdin", "--id", "shipped", "--", "./s.sh", "x", cwd=tmp_path, stdin="piped\n")
    assert (first.returncode, first.stdout) == (0, "script x\npiped\n"), first.stderr
    (tmp_path / "s.sh").unlink()
    again = swarm(n2, "rerun", "shipped")  # a node that may hold neither: it fetches them first
    assert (again.returncode, again.stdout) == (0, "script x\npiped\n"), again.stderr


def test_the_python_clients_the_rest_api_and_url_rerun_alike(
    trio: list[DaemonProcess], token: str, tmp_path: Path
) -> None:
    n0, n1, _ = trio
    job = n0.client.submit(["sh", "-c", "echo api; exit 3"], job_id="api", cpus=0)
    n0.client.wait(job, timeout=30)
    new = n1.client.rerun("api", new_id="api2")
    assert (new, n1.client.wait(new, timeout=30)["exit_code"]) == ("api2", 3)
    assert n1.client.rerun("api", new_id="api2") == "api2"  # asked again: the same job, not a third
    remote = RemoteClient(url=n0.http_url, token=token)
    over_http = remote.rerun("api")
    assert remote.wait(over_http, timeout=30)["exit_code"] == 3 and remote.logs(over_http) == "api\n"
    made = requests.post(
        f"{n1.http_url}/api/v1/jobs/api/rerun", json={"job_id": "api4"}, headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )  # fmt: skip
    assert (made.status_code, made.json()["id"]) == (201, "api4")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": ":".join(sys.path)}
    env.update(SWARM_URL=n0.http_url, SWARM_API_TOKEN=token)  # a machine with no daemon
    cli = swarm(n0, "rerun", "--id", "api5", "api", env=env)
    assert (cli.returncode, cli.stdout, cli.stderr) == (3, "api\n", "swarm: rerun of api as job api5\n")
    n0.client.submit(
        ["sh", "-c", "echo el $SWARM_ARRAY_INDEX; exit $SWARM_ARRAY_INDEX"], array="0-2", job_id="far", cpus=0
    )
    n0.client.wait("far", timeout=30)
    array = swarm(n0, "rerun", "--id", "far2", "far", env=env)
    assert (array.returncode, array.stdout) == (1, "el 1\nel 2\n"), array.stderr
    assert array.stderr.splitlines()[:2] == [
        "swarm: rerun of far: elements 1-2",
        "swarm: array far2: 2 jobs; their output follows, in index order (`swarm cancel far2` stops them)",
    ]
    n0.client.submit(["sh", "-c", "echo r$SWARM_RANK"], ranks=2, job_id="farg", cpus=0)
    n0.client.wait("farg", timeout=30)
    gang = swarm(n0, "rerun", "--id", "farg2", "farg", env=env)
    assert (gang.returncode, sorted(gang.stdout.splitlines())) == (0, ["[0] r0", "[1] r1"]), gang.stderr


def test_a_rerun_of_an_array_takes_in_the_failed_elements_the_history_bound_removed(trio: list[DaemonProcess]) -> None:
    n0 = trio[0]
    n0.client.submit(["sh", "-c", "exit $((SWARM_ARRAY_INDEX % 2))"], array="0-5%1", job_id="old", cpus=0)
    n0.client.wait("old", timeout=60)
    n0.client.prune(keep=3)  # the oldest finished go: elements 0-2 (one at a time, in index order)
    assert [e["index"] for e in n0.client.job("old")["elements"]] == [3, 4, 5]
    again = swarm(n0, "rerun", "-d", "--id", "old2", "old")
    assert again.returncode == 0, again.stderr
    assert [e["index"] for e in n0.client.job("old2")["elements"]] == [1, 3, 5]
