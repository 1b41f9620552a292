"""A joining node the cluster refuses is told why in one line, instead of `is up`: a wrong token (with the
address that refused it), or a name a live member holds (two would make every table ambiguous)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from swarmcompute.testing.daemons import DaemonProcess, free_port, stop_detached, wait_until
from swarmcompute.transport.keys import new_cluster_key


def test_a_wrong_token_is_refused_by_the_peer_and_said_in_one_line_then_the_right_one_joins(
    daemon_factory: Any, tmp_path: Path
) -> None:
    port = free_port()
    member: DaemonProcess = daemon_factory("m", port=port, extra_args=("--new-cluster",)).start()
    joiner = DaemonProcess(tmp_path / "joiner", name="j")  # its state dir; `swarm join` starts it
    joiner.state_dir.mkdir()
    common = ("join", "--detach", "--bind", "127.0.0.1", "--port", "0", "--no-mdns", "--peer", f"127.0.0.1:{port}")
    started = time.monotonic()
    wrong = joiner.swarm(*common, "--token", new_cluster_key().token)
    try:
        assert wrong.returncode == 2, wrong.stdout + wrong.stderr
        assert wrong.stderr.startswith(f"swarm: token refused by 127.0.0.1:{port}: ")
        assert wrong.stderr.count("\n") == 1 and "is up" not in wrong.stdout
        assert time.monotonic() - started < 10.0
        assert not (joiner.state_dir / "cluster.key").exists()  # the next join starts clean
        right = joiner.swarm(*common, "--token", member.token_from_disk())
        assert right.returncode == 0, right.stderr
        assert "is up" in right.stdout and right.stderr == ""
    finally:
        stop_detached(joiner.state_dir)


def test_a_node_whose_name_a_live_member_holds_is_refused_in_one_line(daemon_factory: Any, tmp_path: Path) -> None:
    port = free_port()
    first: DaemonProcess = daemon_factory("pi", port=port, extra_args=("--new-cluster",)).start()
    twin = DaemonProcess(tmp_path / "twin")  # its state dir; `swarm join` starts it
    twin.state_dir.mkdir()
    try:
        joined = twin.swarm(
            *("join", "--detach", "--name", "pi", "--bind", "127.0.0.1", "--port", "0", "--no-mdns"),
            *("--peer", f"127.0.0.1:{port}", "--token", first.token_from_disk()),
        )
        assert joined.returncode == 2, joined.stdout + joined.stderr
        assert joined.stderr.startswith("swarm: name taken: 'pi' by node ") and joined.stderr.count("\n") == 1
        assert "--name" in joined.stderr
        assert [n["name"] for n in first.status()["nodes"]] == ["pi"]
    finally:
        stop_detached(twin.state_dir)


def test_a_restart_that_cannot_reach_its_cluster_says_so_after_is_up(daemon_factory: Any, tmp_path: Path) -> None:
    """It said `is up` and nothing more for a node that could not reach its cluster."""
    port = free_port()
    member: DaemonProcess = daemon_factory("m", port=port, extra_args=("--new-cluster",)).start()
    joiner = DaemonProcess(tmp_path / "joiner", name="j")
    joiner.state_dir.mkdir()
    common = ("join", "--detach", "--bind", "127.0.0.1", "--port", "0", "--no-mdns", "--http-port", "off")
    try:
        first = joiner.swarm(*common, "--peer", f"127.0.0.1:{port}", "--token", member.token_from_disk())
        assert first.returncode == 0 and first.stderr == "", first.stderr
        wait_until(lambda: len(joiner.status()["quorum"]["voters"]) == 2, 30, "a second voter")
        stop_detached(joiner.state_dir)
        member.stop()  # the one other voter: the restart finds no quorum
        again = joiner.swarm(*common)
        assert again.returncode == 0 and "is up" in again.stdout, again.stderr
        assert again.stderr.startswith("not in touch with its cluster after 10s: "), again.stderr
        assert "it keeps trying" in again.stderr and again.stderr.count("\n") == 1
    finally:
        stop_detached(joiner.state_dir)
