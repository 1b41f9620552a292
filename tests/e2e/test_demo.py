"""`swarm demo`, the README's first command, run as a user runs it: a real `swarm` process that
brings up 3 daemons on loopback, kills the leader and tears everything down. Each test checks the
demo's claims independently of the demo: the demo runs under a child subreaper
(``PR_SET_CHILD_SUBREAPER``), so every process it leaves behind, however deep, is found by PID."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from swarmcompute.testing.daemons import swarm_executable

SUBREAPER = r"""
import ctypes, json, os, subprocess, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: what the demo orphans comes here
done = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=float(os.environ["DEMO_LIMIT_S"]))
left = {}
for pid in os.listdir("/proc"):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        continue
    if int(fields[1]) == os.getpid() and fields[0] != "Z":  # a live child of ours: the demo's leftover
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            left[int(pid)] = f.read().replace(b"\0", b" ").decode(errors="replace")
if os.environ.get("DEMO_LEAVES") != "1":
    for pid in left:  # stop them by pid, so that a failing test leaves nothing either
        os.kill(pid, 9)
print(json.dumps({"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr, "left": left}))
"""


def run_demo(tmp_path: Path, *args: str, limit_s: float = 60.0, leaves: bool = False) -> dict[str, Any]:
    """`swarm demo ARGS` under a subreaper, its temporary directory in ``tmp_path``: its exit
    status, output and ``left``, the processes it left running (SIGKILLed by PID unless ``leaves``)."""
    env = {**os.environ, "TMPDIR": str(tmp_path), "DEMO_LIMIT_S": str(limit_s), "DEMO_LEAVES": str(int(leaves))}
    env.pop("SWARM_STATE_DIR", None)
    wrapped = subprocess.run(
        [sys.executable, "-c", SUBREAPER, swarm_executable(), "demo", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=limit_s + 30,
    )
    assert wrapped.returncode == 0, wrapped.stderr
    return json.loads(wrapped.stdout)  # type: ignore[no-any-return]


def test_demo_kills_the_leader_and_every_job_finishes_elsewhere_exactly_once_then_leaves_nothing(
    tmp_path: Path,
) -> None:
    result = run_demo(tmp_path)
    out = result["stdout"]
    assert result["rc"] == 0, f"{out}\n{result['stderr']}"
    assert result["stderr"] == ""
    short = out.replace(str(tmp_path), "/tmp")
    assert all(len(line) <= 80 for line in short.splitlines()), out  # a person reads it

    killed = re.search(r"^kill -9 (n\d) \(the leader, pid (\d+)\) while it runs (\d+) of them$", out, re.M)
    elected = re.search(r"^  \+(\d+ ms|[\d.]+ s) +new leader: (n\d) \(term \d+\)$", out, re.M)
    moved = re.search(r"^  \+[\d.]+ s +its (\d+) jobs run again: (.*)$", out, re.M)
    assert killed and elected and moved, out
    assert elected.group(2) in {"n1", "n2", "n3"} - {killed.group(1)}
    assert int(killed.group(3)) >= 1 and moved.group(1) == killed.group(3)
    assert killed.group(1) not in moved.group(2)  # run again on the survivors only
    assert "  12 of 12 jobs succeeded" in out
    assert "ran to the end: 12 once, 0 twice, 0 never" in out
    assert "sum of squares 0..11 from their output: 506" in out

    # Teardown: nothing it started runs any more, the dead leader's guardian and jobs included,
    # and its directory is gone.
    assert "teardown: 3 daemons stopped by pid, 0 of their" in out
    assert result["left"] == {}
    assert not _running(int(killed.group(2)))
    assert list(tmp_path.iterdir()) == []
    total = float(re.search(r"^done in ([\d.]+) s$", out, re.M).group(1))  # type: ignore[union-attr]
    assert total < 60


@pytest.mark.slow  # 15-30 s: a second whole demo, and the killed node's rejoin
def test_demo_keep_leaves_three_nodes_that_the_printed_commands_reach_and_stop(tmp_path: Path) -> None:
    result = run_demo(tmp_path, "--keep", "--json", leaves=True)
    left = {int(pid) for pid in result["left"]}
    try:
        assert result["rc"] == 0, result["stderr"]
        summary = json.loads(result["stdout"])
        assert summary["ok"] and summary["kept"]
        assert summary["new_leader"] != summary["killed"]["name"]
        assert summary["jobs"]["succeeded"] == summary["jobs"]["ran_once"] == 12
        assert summary["jobs"]["ran_twice"] == 0
        assert sum(summary["jobs"]["moved_to"].values()) == summary["jobs"]["on_killed_leader"] >= 1
        # What runs on: the three daemons (the killed one brought back), nothing else.
        assert left == {n["pid"] for n in summary["nodes"]}

        status = subprocess.run(
            [*_command(summary["status_command"]), "--json"], capture_output=True, text=True, timeout=30
        )
        assert status.returncode == 0, status.stderr
        view = json.loads(status.stdout)
        assert sorted(n["name"] for n in view["nodes"]) == ["n1", "n2", "n3"]
        assert all(n["state"] == "alive" for n in view["nodes"]) and view["quorum"]["healthy"]

        stopped = subprocess.run(_command(summary["stop_command"]), capture_output=True, text=True, timeout=60)
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout == f"stopped 3 daemons by pid (0 needed SIGKILL); removed {summary['state_dir']}\n"
        assert not [p for p in left if _running(p)]
        assert not Path(summary["state_dir"]).exists()
    finally:
        for pid in left:  # whatever the test did not stop, by pid
            if _running(pid):
                os.kill(pid, 9)


def _command(printed: str) -> list[str]:
    """A command the demo printed, with `swarm` made this install's."""
    words = shlex.split(printed)
    return [swarm_executable() if words[0] == "swarm" else words[0], *words[1:]]


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_demo_stop_refuses_a_directory_the_demo_did_not_leave_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "keep-me").write_text("x")
    done = subprocess.run(
        [swarm_executable(), "demo", "--stop", str(tmp_path)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "is not a directory `swarm demo --keep` left" in done.stderr
    assert (tmp_path / "keep-me").exists()
