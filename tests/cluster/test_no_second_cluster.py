"""`swarm join` without a token never makes a second cluster beside a live one, also when it is tried
again and again (an mDNS responder answers one question at most once a second: one look used to
miss the answer 2 times in 27). ``SWARM_SLOW=1`` runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from swarmcompute.testing.daemons import free_port

TRIES = 27


@pytest.mark.slow
def test_join_without_token_refuses_every_time_a_cluster_answers(daemon_factory: Any, tmp_path: Path) -> None:
    daemon_factory("r0", port=free_port(), mdns=True, extra_args=("--gossip", "local", "--new-cluster")).start()
    created = []
    for i in range(TRIES):
        state = tmp_path / f"try{i}"
        result = subprocess.run(
            [sys.executable, "-m", "swarmcompute.node", "--state-dir", str(state), "--bind", "127.0.0.1"]
            + ["--port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 2 or (state / "cluster.key").exists():
            created.append(i)
        else:
            assert "found swarm cluster" in result.stderr
    assert not created, f"tries {created} made a second cluster"
