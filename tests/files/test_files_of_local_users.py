"""Shipped files on a root daemon that runs each user's jobs as that user (issue 10): the job's
staged directory is the user's (the state directory is not theirs to enter), what it leaves comes
back to that user only. Real daemon, real users (made with useradd, removed after)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarmcompute.testing.daemons import DaemonProcess
from swarmcompute.testing.local_users import LocalUser, unavailable

pytestmark = pytest.mark.skipif(unavailable() is not None, reason=unavailable() or "")


@pytest.fixture(scope="module")
def setup() -> Iterator[tuple[DaemonProcess, LocalUser, LocalUser]]:
    root = Path(tempfile.mkdtemp(prefix="swarm-files-users-", dir="/tmp"))
    root.chmod(0o711)
    user, other = LocalUser.create(), LocalUser.create()
    daemon = DaemonProcess(root / "state")
    try:
        daemon.start()
        yield daemon, user, other
    finally:
        daemon.stop()
        user.remove()
        other.remove()
        shutil.rmtree(root, ignore_errors=True)


def test_a_users_shipped_script_runs_as_them_and_only_they_get_its_results(
    setup: tuple[DaemonProcess, LocalUser, LocalUser],
) -> None:
    daemon, user, other = setup
    state = str(daemon.state_dir)
    script = "#!/bin/sh\nid -un\necho secret > out.txt\n"
    made = user.run(["sh", "-c", f"printf '{script}' > hello.sh && chmod 755 hello.sh"], cwd=user.home)
    assert made.returncode == 0, made.stderr
    run = user.swarm("run", "--state-dir", state, "--name", "mine", "./hello.sh", cwd=user.home)
    assert (run.returncode, run.stdout) == (0, f"{user.name}\n"), run.stderr
    got = user.swarm("cp", "--state-dir", state, "mine:out.txt", "back.txt", cwd=user.home)
    assert got.returncode == 0, got.stderr
    assert (Path(user.home) / "back.txt").read_text() == "secret\n"
    refused = other.swarm("cp", "--state-dir", state, "mine:out.txt", "x.txt", cwd=other.home)
    assert refused.returncode == 2 and "belongs to user" in refused.stderr, refused.stderr
