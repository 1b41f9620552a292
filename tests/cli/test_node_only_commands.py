"""Commands only a node's own daemon answers (`swarm token`, `swarm leave`) say so when they find
none here while ``--url`` names a node: they said only `run swarm join first`, to a user whose
``$SWARM_URL`` made every other command work."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from swarmcompute.testing.daemons import swarm_executable


@pytest.mark.parametrize("command", ["token", "leave"])
def test_a_node_only_command_without_a_daemon_here_says_it_never_goes_over_url(command: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SWARM_STATE_DIR", "SWARM_URL")}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")  # a user's default state directory, for a non-root run
    env["SWARM_SYSTEM_STATE_DIR"] = str(tmp_path / "system")  # root's, here none
    here = subprocess.run(
        [swarm_executable(), "--url", "http://127.0.0.1:9", command],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert here.returncode == 2 and here.stdout == ""
    assert here.stderr.rstrip().endswith(f"(`swarm {command}` runs on the node itself, never over --url)")
    there = subprocess.run(
        [swarm_executable(), command, "--state-dir", str(tmp_path / "elsewhere")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert there.returncode == 2 and "over --url" not in there.stderr
