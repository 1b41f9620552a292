"""Versions in the join handshake (``swarmcompute.versions``), with real daemons: one claiming the
next minor version (``SWARM_TEST_VERSION``, which also makes it append an unknown field to every
peer message) joins and runs jobs beside the current release; one claiming another major is
refused in one line naming both versions, on its own terminal, and exits 2."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from swarmcompute import __version__
from swarmcompute.testing.clusters import FAST_GOSSIP, formed, formed_cluster
from swarmcompute.testing.daemons import DaemonProcess, free_port, swarm_executable, wait_until
from swarmcompute.versions import OVERRIDE_ENV, PROTOCOL

NEXT_MINOR = f"{PROTOCOL.major}.{PROTOCOL.minor + 1}"
OTHER_MAJOR = f"{PROTOCOL.major + 1}.0"


def test_a_node_one_minor_version_ahead_joins_and_jobs_run_on_both_releases(tmp_path: Path) -> None:
    with formed_cluster(tmp_path, 1) as nodes:
        first = nodes[0]
        newer = DaemonProcess(
            tmp_path / "new",
            name="new",
            port=free_port(),
            token=first.token_from_disk(),
            peers=(f"127.0.0.1:{first.port}",),
            extra_args=FAST_GOSSIP,
            extra_env={OVERRIDE_ENV: f"{NEXT_MINOR}/9.9.9"},
        )
        try:
            newer.start()
            cluster = [*nodes, newer]
            wait_until(lambda: formed(cluster), 30, "the node one minor ahead to be in the cluster")
            rows = {n["name"]: n for n in first.status()["nodes"]}
            assert (rows["new"]["protocol"], rows["new"]["version"]) == (NEXT_MINOR, "9.9.9")
            assert (rows["n0"]["protocol"], rows["n0"]["version"]) == (str(PROTOCOL), __version__)
            assert first.status()["versions"]["incompatible"] == []
            # jobs pinned to each release, submitted through each: both ways across the versions
            ids = [first.client.submit(["echo", name], node=name, cpus=0) for name in ("new", "n0")]
            ids += [newer.client.submit(["echo", name], node=name, cpus=0) for name in ("n0", "new")]
            done = first.client.wait(ids, timeout=30)
            assert [(j["state"], j["node_name"]) for j in done] == [
                ("succeeded", "new"),
                ("succeeded", "n0"),
                ("succeeded", "n0"),
                ("succeeded", "new"),
            ]
            assert first.client.logs(ids[0]) == "new\n" and newer.client.logs(ids[2]) == "n0\n"
            dropped = "peer_message_dropped"
            assert dropped not in first.log_path.read_text() and dropped not in newer.log_path.read_text()
        finally:
            newer.stop()
            newer.kill()


def test_a_node_of_another_major_version_is_refused_in_one_line_naming_both_versions_and_exits_2(
    daemon_factory: Any, tmp_path: Path
) -> None:
    port = free_port()
    member: DaemonProcess = daemon_factory("m", port=port, extra_args=("--new-cluster",)).start()
    state = tmp_path / "other"
    state.mkdir()
    env = {**os.environ, "SWARM_STATE_DIR": str(state), OVERRIDE_ENV: f"{OTHER_MAJOR}/2.0.0"}
    joined = _join(env, member.token_from_disk(), port)
    try:
        assert joined.returncode == 2, joined.stdout + joined.stderr
        assert joined.stderr.count("\n") == 1 and "is up" not in joined.stdout
        line = joined.stderr
        assert line.startswith(f"swarm: refused by 127.0.0.1:{port} (node m): ")
        assert f"protocol {OTHER_MAJOR} (swarmcompute 2.0.0)" in line
        assert f"protocol {PROTOCOL} (swarmcompute {__version__})" in line
        assert "different major versions" in line
        # the member lists it (one line in `swarm status`), and never took it in
        incompatible = member.status()["versions"]["incompatible"]
        assert [(r["name"], r["protocol"], r["version"]) for r in incompatible] == [("other", OTHER_MAJOR, "2.0.0")]
        text = member.swarm("status").stdout
        shown = [line for line in text.splitlines() if line.startswith("refused ")]
        assert len(shown) == 1 and OTHER_MAJOR in shown[0] and str(PROTOCOL) in shown[0]
        assert [n["name"] for n in member.status()["nodes"]] == ["m"]
    finally:
        _stop_detached(state)


def _join(env: dict[str, str], token: str, port: int) -> subprocess.CompletedProcess[str]:
    args = ["join", "--detach", "--name", "other", "--bind", "127.0.0.1", "--port", "0", "--no-mdns"]
    return subprocess.run(
        [swarm_executable(), *args, "--peer", f"127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "SWARM_TOKEN": token},
        check=False,
    )


def _stop_detached(state_dir: Path) -> None:
    """Stop a daemon `swarm join --detach` started, by the pid it wrote (if it still runs)."""
    pid_file = state_dir / "daemon.pid"
    if not pid_file.exists():
        return
    try:
        os.kill(int(pid_file.read_text()), signal.SIGTERM)
    except ProcessLookupError:
        return
    wait_until(lambda: not pid_file.exists(), 20, "the detached daemon to stop")
