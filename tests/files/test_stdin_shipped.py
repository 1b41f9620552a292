"""`swarm run --stdin` on 3 real daemons: what is piped into `swarm run` is read to its end,
shipped as a file's bytes are, and read from its first byte by every attempt on whatever node
runs it: a retry, an array's every element, a re-run after the submitter's node died."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from swarmcompute.testing.clusters import formed, formed_cluster
from swarmcompute.testing.daemons import DaemonProcess, swarm_executable, wait_until
from swarmcompute.web.remote import STDIN_OVER_URL, RemoteClient

LINES = "".join(f"line {i}\n" for i in range(1, 1001))


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[DaemonProcess]]:
    with formed_cluster(tmp_path_factory.mktemp("stdin"), 3, http_port=0) as nodes:
        yield nodes


def swarm(
    node: DaemonProcess, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [swarm_executable(), *args], input=stdin, capture_output=True, text=True, timeout=60,
        env=env or {**os.environ, "SWARM_STATE_DIR": str(node.state_dir)},
        stdin=subprocess.DEVNULL if stdin is None else None,
    )  # fmt: skip


@pytest.fixture(scope="module")
def token(trio: list[DaemonProcess]) -> str:
    return trio[0].swarm("api-token", "create", "stdin").stdout.strip().splitlines()[-1]


def test_what_is_piped_into_run_with_stdin_is_the_jobs_stdin_on_another_node(trio: list[DaemonProcess]) -> None:
    n0 = trio[0]
    run = swarm(n0, "run", "--stdin", "--id", "counted", "--node", "n2", "--", "wc", "-l", stdin=LINES)
    assert (run.returncode, run.stdout.strip(), run.stderr) == (0, "1000", "")
    shown = json.loads(swarm(trio[1], "show", "counted", "--json").stdout)
    assert (shown["stdin_bytes"], shown["node_name"]) == (len(LINES), "n2")
    assert "stdin      8.7 KiB shipped (every attempt reads it from the start)" in swarm(n0, "show", "counted").stdout


def test_a_retry_reads_its_stdin_again_from_the_first_byte(trio: list[DaemonProcess]) -> None:
    script = 'read first; echo "attempt $SWARM_ATTEMPT read $first"; [ "$SWARM_ATTEMPT" = 2 ] && wc -l || exit 1'
    run = swarm(trio[0], "run", "--stdin", "--retries", "1", "--", "sh", "-c", script, stdin=LINES)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "attempt 1 read line 1\nattempt 2 read line 1\n999\n"


def test_every_element_of_an_array_reads_the_same_stdin(trio: list[DaemonProcess]) -> None:
    run = swarm(
        trio[1], "run", "--stdin", "--array", "0-2", "--", "sh", "-c", 'echo "$SWARM_ARRAY_INDEX $(wc -l)"', stdin=LINES
    )
    assert (run.returncode, run.stdout) == (0, "0 1000\n1 1000\n2 1000\n"), run.stderr


def test_stdin_over_the_upload_cap_or_closed_is_refused_in_one_line_and_nothing_is_submitted(
    trio: list[DaemonProcess],
) -> None:
    n0 = trio[0]
    before = len(n0.client.jobs(limit=10_000))
    big = swarm(n0, "run", "--stdin", "--max-upload", "1K", "--", "wc", "-c", stdin="x" * 2048)
    assert (big.returncode, big.stdout) == (2, "")
    assert big.stderr == (
        "swarm: stdin holds more than 1.0 KiB: ship it as a file (--upload PATH) or raise --max-upload\n"
    )
    closed = subprocess.run(
        ["sh", "-c", f"{swarm_executable()} run --stdin -- cat <&-"], capture_output=True, text=True, timeout=60,
        env={**os.environ, "SWARM_STATE_DIR": str(n0.state_dir)},
    )  # fmt: skip
    assert (closed.returncode, closed.stderr) == (
        2,
        "swarm: --stdin ships what is piped or redirected into swarm run: `swarm run --stdin -- CMD < FILE`\n",
    )
    assert len(n0.client.jobs(limit=10_000)) == before


def test_without_stdin_the_piped_input_goes_nowhere_and_run_says_how_to_ship_it(trio: list[DaemonProcess]) -> None:
    run = swarm(trio[0], "run", "--", "wc", "-l", stdin=LINES)
    assert (run.returncode, run.stdout.strip()) == (0, "0")
    assert "(--stdin ships it with the job; `< /dev/null` says nothing)" in run.stderr


def test_the_python_client_ships_bytes_or_a_binary_file_as_stdin(trio: list[DaemonProcess], tmp_path: Path) -> None:
    client = trio[2].client
    job = client.submit(["wc", "-c"], stdin=b"hello", cpus=0)
    assert client.wait(job, timeout=30)["state"] == "succeeded"
    assert client.logs(job).strip() == "5"
    (tmp_path / "in.txt").write_bytes(LINES.encode())
    with open(tmp_path / "in.txt", "rb") as f:
        events = list(client.run(["wc", "-l"], stdin=f, cpus=0))
    assert b"".join(e.data for e in events if hasattr(e, "data")).strip() == b"1000"


def test_a_rerun_after_the_submitters_node_died_reads_the_stdin_from_the_copy_another_node_holds(
    tmp_path: Path,
) -> None:
    with formed_cluster(tmp_path / "c", 3) as nodes:
        n0, n1, n2 = nodes
        for other in ("n1", "n2"):  # the first attempt runs on n0, the node the input was sent to
            assert swarm(n0, "drain", other).returncode == 0
        script = '[ "$SWARM_ATTEMPT" = 1 ] && { touch started; sleep 60; }; wc -l'
        run = swarm(
            n0, "run", "-d", "--stdin", "--id", "moved", "--cwd", str(tmp_path), "--", "sh", "-c", script, stdin=LINES
        )
        assert run.returncode == 0, run.stderr
        wait_until(lambda: (tmp_path / "started").exists(), 30, "attempt 1 to start on n0")
        for other in ("n1", "n2"):
            assert swarm(n1, "undrain", other).returncode == 0
        n0.kill()  # the node that holds the input as it was sent
        wait_until(lambda: formed([n1, n2], 3), 30, "a leader without n0")
        done = n1.client.wait("moved", timeout=60)
        assert (done["state"], done["attempt"]) == ("succeeded", 2), done["message"]
        assert n1.client.logs("moved").strip() == "1000"


BINARY = bytes(range(256)) * 64  # 16 KiB, most of it not UTF-8


def test_over_url_run_stdin_and_the_remote_client_ship_bytes_that_are_not_text_unchanged(
    trio: list[DaemonProcess], token: str, tmp_path: Path
) -> None:
    url = trio[0].http_url
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": ":".join(sys.path)}
    env.update(SWARM_URL=url, SWARM_API_TOKEN=token)  # a machine with no daemon
    (tmp_path / "in.bin").write_bytes(BINARY)
    with open(tmp_path / "in.bin", "rb") as f:
        run = subprocess.run(
            [swarm_executable(), "run", "--stdin", "--node", "n1", "--", "sha256sum"],
            stdin=f, env=env, capture_output=True, timeout=60,
        )  # fmt: skip
    assert (run.returncode, run.stderr) == (0, b"")
    assert run.stdout.decode().split()[0] == hashlib.sha256(BINARY).hexdigest()
    remote = RemoteClient(url=url, token=token)
    job = remote.submit(["sha256sum"], stdin=BINARY[:1000], cpus=0)
    assert remote.wait(job, timeout=30)["stdin_bytes"] == 1000
    assert remote.logs(job).split()[0] == hashlib.sha256(BINARY[:1000]).hexdigest()


def test_the_rest_api_takes_a_jobs_stdin_as_text(trio: list[DaemonProcess], token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    made = requests.post(
        f"{trio[1].http_url}/api/v1/jobs", json={"argv": "wc -l", "stdin": "a\nb\n"}, headers=auth, timeout=30
    )
    assert made.status_code == 201, made.text
    job = made.json()["id"]
    assert trio[2].client.wait(job, timeout=30)["state"] == "succeeded"
    assert trio[2].client.logs(job).strip() == "2"


def test_over_url_a_stdin_past_what_a_submission_carries_is_uploaded_first_and_past_max_upload_refused(
    trio: list[DaemonProcess], token: str, tmp_path: Path
) -> None:
    """It was refused past 4 MiB (`over --url at most that goes with the job`)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": ":".join(sys.path)}
    env.update(SWARM_URL=trio[0].http_url, SWARM_API_TOKEN=token)
    data = "x" * (STDIN_OVER_URL + 1)
    run = swarm(trio[0], "run", "--stdin", "--node", "n2", "--", "wc", "-c", stdin=data, env=env)
    assert (run.returncode, run.stdout.strip(), run.stderr) == (0, str(len(data)), "")
    capped = swarm(trio[0], "run", "--stdin", "--max-upload", "1M", "--", "wc", "-c", stdin=data, env=env)
    assert (capped.returncode, capped.stdout) == (2, "")
    assert (
        capped.stderr
        == "swarm: stdin holds more than 1.0 MiB: ship it as a file (--upload PATH) or raise --max-upload\n"
    )
    remote = RemoteClient(url=trio[1].http_url, token=token)
    job = remote.submit(["sha256sum"], stdin=BINARY * 300, cpus=0)  # 4.7 MiB, past the bound too
    assert remote.wait(job, timeout=30)["stdin_bytes"] == 300 * len(BINARY) > STDIN_OVER_URL
    assert remote.logs(job).split()[0] == hashlib.sha256(BINARY * 300).hexdigest()
