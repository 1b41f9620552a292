"""`--mount` on the node that runs the job (``executor.mount_check``): each SRC is resolved and
checked by the kernel as the job's user, in a forked child that is that user. Real users (made
with useradd, removed after), real files; no engine needed."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarmcompute.executor.mount_check import protected_paths, resolve_mounts
from swarmcompute.executor.spawn import SpawnFailed
from swarmcompute.testing.local_users import LocalUser, unavailable
from swarmcompute.users import RunAs

pytestmark = pytest.mark.skipif(unavailable() is not None, reason=unavailable() or "")


@pytest.fixture(scope="module")
def user() -> Iterator[RunAs]:
    made = LocalUser.create()
    try:
        found = RunAs.lookup(made.name)
        assert found is not None
        yield found
    finally:
        made.remove()


@pytest.fixture
def tree(user: RunAs) -> Iterator[Path]:
    """In /tmp (pytest's own directory is root's alone): ``open/`` (the user's, with ``data.txt``
    and ``ro/`` they may only read), ``private/`` (root's, 0700, holding a world-readable
    ``secret.txt``) and ``state/`` (a node's)."""
    tmp_path = Path(tempfile.mkdtemp(prefix="swarm-mounts-", dir="/tmp"))
    tmp_path.chmod(0o755)
    try:
        yield _fill(tmp_path, user)
    finally:
        shutil.rmtree(tmp_path)


def _fill(tmp_path: Path, user: RunAs) -> Path:
    (tmp_path / "open" / "ro").mkdir(parents=True)
    (tmp_path / "open" / "data.txt").write_text("data\n")
    for path in (tmp_path / "open", tmp_path / "open" / "data.txt"):
        os.chown(path, user.uid, user.gid)
    (tmp_path / "open" / "ro").chmod(0o755)  # root's: the user may read it, not write it
    (tmp_path / "private").mkdir(mode=0o700)
    (tmp_path / "private" / "secret.txt").write_text("secret\n")
    (tmp_path / "private" / "secret.txt").chmod(0o644)
    (tmp_path / "state").mkdir(mode=0o700)
    return tmp_path


def check(tree: Path, user: RunAs | None, *mounts: str, staged: bool = False) -> tuple[tuple[str, str, bool], ...]:
    protected = protected_paths(tree / "state", "unix:///nonexistent/docker.sock")
    return resolve_mounts(mounts, user, node_name="n1", protected=protected, staged=staged)


def refusal(tree: Path, user: RunAs | None, *mounts: str, staged: bool = False) -> str:
    with pytest.raises(SpawnFailed) as caught:
        check(tree, user, *mounts, staged=staged)
    assert "\n" not in caught.value.error
    return caught.value.error


def test_a_path_the_user_may_read_is_mounted_by_its_resolved_path(tree: Path, user: RunAs) -> None:
    link = tree / "open" / "link"
    link.symlink_to(tree / "open" / "data.txt")
    got = check(tree, user, f"{link}:/in/data.txt:ro", f"{tree}/open:/out")
    assert got == ((str(tree / "open" / "data.txt"), "/in/data.txt", True), (str(tree / "open"), "/out", False))


def test_a_readable_file_in_a_directory_the_user_cannot_enter_is_refused(tree: Path, user: RunAs) -> None:
    secret = tree / "private" / "secret.txt"
    assert refusal(tree, user, f"{secret}:/s:ro") == (
        f"--mount {secret}: user {user.name} may not read it on node n1: mount a path they can read"
    )
    assert check(tree, None, f"{secret}:/s:ro")[0][0] == str(secret)  # root's own job: root may


def test_a_link_cannot_lead_the_mount_where_the_user_could_not_go(tree: Path, user: RunAs) -> None:
    link = tree / "open" / "escape"
    link.symlink_to(tree / "private")
    assert f"user {user.name} may not read it" in refusal(tree, user, f"{link}:/s:ro")


def test_a_path_the_user_may_only_read_needs_ro(tree: Path, user: RunAs) -> None:
    ro = tree / "open" / "ro"
    assert refusal(tree, user, f"{ro}:/data") == (
        f"--mount {ro}: user {user.name} may not write it on node n1: add :ro to mount it read-only"
    )
    assert check(tree, user, f"{ro}:/data:ro") == ((str(ro), "/data", True),)


def test_a_missing_path_says_so(tree: Path, user: RunAs) -> None:
    assert refusal(tree, user, f"{tree}/open/nothing:/x") == (
        f"--mount {tree}/open/nothing: no such file or directory on node n1: mount a path that exists there"
    )


def test_the_state_directory_and_the_engine_socket_are_refused_even_to_root(tree: Path) -> None:
    (tree / "state" / "cluster.key").touch()
    assert "it is this node's state directory" in refusal(tree, None, f"{tree}/state:/s:ro")
    assert "it is in this node's state directory" in refusal(tree, None, f"{tree}/state/cluster.key:/k:ro")
    assert "it holds this node's state directory" in refusal(tree, None, f"{tree}:/s:ro")
    assert "it holds this node's state directory" in refusal(tree, None, "/:/host:ro")
    sock = tree / "open" / "engine.sock"
    sock.touch()
    protected = protected_paths(tree / "state", f"unix://{sock}")
    with pytest.raises(SpawnFailed, match="it is the Docker engine's socket"):
        resolve_mounts([f"{sock}:/var/run/docker.sock"], None, node_name="n1", protected=protected)


def test_the_staged_directory_keeps_its_place_and_a_malformed_mount_is_one_line(tree: Path, user: RunAs) -> None:
    assert "the job's shipped files are mounted there" in refusal(tree, user, f"{tree}/open:/swarm/work/", staged=True)
    assert refusal(tree, user, "open:/in").startswith("--mount takes SRC:DST or SRC:DST:ro")


def test_checking_costs_a_fork(tree: Path, user: RunAs) -> None:
    """One fork per job: 15-35 ms on a 2-core machine at load 6-8 (a container's start: 170-480 ms)."""
    started = time.monotonic()
    for _ in range(20):
        check(tree, user, f"{tree}/open:/out", f"{tree}/open/data.txt:/in:ro")
    per_check_s = (time.monotonic() - started) / 20
    print(f"one check of two mounts as another user: {per_check_s * 1000:.1f} ms")
    assert per_check_s < 0.5
