"""`swarm run --image IMAGE --mount SRC:DST[:ro]` (issue 11 item 7): a host path of the node that
runs the job, bind-mounted into its container (read-only with :ro), and only where the submitting
user may read it there: a root daemon refuses another user's mount of a path they cannot reach,
in the job's message. A real daemon with a private dockerd; real users (useradd, removed after)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker_helpers import BUSYBOX_TAG, Engine

from swarmcompute.testing.daemons import DaemonProcess
from swarmcompute.testing.local_users import LocalUser, unavailable


@pytest.fixture(scope="module")
def root_dir() -> Iterator[Path]:
    """In /tmp, 0711: other users reach the node's control socket inside (as on a real node)."""
    root = Path(tempfile.mkdtemp(prefix="swarm-mounts-", dir="/tmp"))
    root.chmod(0o711)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def node(engine: Engine, root_dir: Path) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(root_dir / "state", name="mnode", extra_env={"DOCKER_HOST": engine.dockerd.host})
    try:
        yield daemon.start()
    finally:
        daemon.stop()
        daemon.kill()


def test_a_mount_is_seen_in_the_container_and_ro_is_read_only(node: DaemonProcess, root_dir: Path) -> None:
    (root_dir / "in").mkdir()
    (root_dir / "in" / "x.txt").write_text("from the host\n")
    (root_dir / "out").mkdir()
    script = "cat /in/x.txt; echo made > /out/y.txt; touch /in/z"
    ran = node.swarm(
        "run", "--name", "mounted", "--image", BUSYBOX_TAG, "--mount", f"{root_dir}/in:/in:ro",
        "--mount", f"{root_dir}/out:/out", "--", "sh", "-c", script,
    )  # fmt: skip
    assert ran.stdout == "from the host\n", ran.stderr
    assert ran.returncode == 1 and "Read-only file system" in ran.stderr
    assert (root_dir / "out" / "y.txt").read_text() == "made\n" and not (root_dir / "in" / "z").exists()
    shown = json.loads(node.swarm("show", "mounted", "--json").stdout)
    assert shown["mounts"] == [f"{root_dir}/in:/in:ro", f"{root_dir}/out:/out"]


@pytest.mark.skipif(unavailable() is not None, reason=unavailable() or "")
def test_a_user_mounts_what_they_may_read_and_not_a_path_they_cannot_reach(node: DaemonProcess, root_dir: Path) -> None:
    user = LocalUser.create()
    try:
        secret = root_dir / "private" / "notes.txt"  # world-readable, in a directory only root enters
        secret.parent.mkdir(mode=0o700)
        secret.write_text("root's\n")
        secret.chmod(0o644)
        (Path(user.home) / "mine.txt").write_text("theirs\n")
        state = str(node.state_dir)
        own = user.swarm("run", "--state-dir", state, "--image", BUSYBOX_TAG, "--mount", f"{user.home}:/h:ro",
                         "--", "cat", "/h/mine.txt")  # fmt: skip
        assert (own.returncode, own.stdout) == (0, "theirs\n"), own.stderr
        refused = user.swarm("run", "--state-dir", state, "--image", BUSYBOX_TAG, "--mount", f"{secret}:/s:ro",
                             "--", "cat", "/s")  # fmt: skip
        assert refused.returncode == 1 and refused.stdout == ""
        assert refused.stderr.endswith(
            f": --mount {secret}: user {user.name} may not read it on node mnode: mount a path they can read\n"
        ), refused.stderr
    finally:
        user.remove()


def test_gang_ranks_in_containers_read_their_hostfile(node: DaemonProcess) -> None:
    """``SWARM_HOSTFILE`` is a path on the node: each rank's container gets it mounted read-only
    there, and the job's own mounts (what `swarm show` lists) stay as given."""
    script = 'cat "$SWARM_HOSTFILE"; if echo x >> "$SWARM_HOSTFILE"; then echo writable; else echo read-only; fi'
    ran = node.swarm(
        "run", "--name", "ganged", "--image", BUSYBOX_TAG, "--ranks", "2", "--cpus", "0", "--", "sh", "-c", script,
    )  # fmt: skip
    assert ran.returncode == 0, (ran.stdout, ran.stderr)
    lines = sorted(ran.stdout.splitlines())
    assert lines == ["[0] 127.0.0.1 slots=2", "[0] read-only", "[1] 127.0.0.1 slots=2", "[1] read-only"], lines
    ranks = [j for j in node.client.jobs(limit=10) if j["name"].startswith("ganged[")]
    assert len(ranks) == 2 and all(j["mounts"] == [] for j in ranks)


def test_gang_ranks_in_containers_reach_rank_0_at_the_master_address(node: DaemonProcess) -> None:
    """A gang's containers share the node's network, as `docker run --network host` for mpirun or
    torchrun: rank 1 reaches rank 0's rendezvous port at ``SWARM_MASTER_ADDR``. On a bridge
    network the port was inside rank 0's container, and rank 1 was refused."""
    script = (
        'if [ "$SWARM_RANK" = 0 ]; then nc -l -p "$SWARM_MASTER_PORT" -w 30; '
        'else i=0; until echo "hello from rank 1" | nc -w 2 "$SWARM_MASTER_ADDR" "$SWARM_MASTER_PORT"; do '
        "i=$((i + 1)); [ $i -lt 300 ] || exit 7; sleep 0.1; done; fi"
    )
    ran = node.swarm("run", "--image", BUSYBOX_TAG, "--ranks", "2", "--cpus", "0", "--", "sh", "-c", script)
    assert (ran.returncode, ran.stdout) == (0, "[0] hello from rank 1\n"), ran.stderr
