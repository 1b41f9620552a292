"""The private-dockerd helper leaves the host as it found it: no docker0 bridge, the iptables
FORWARD policy untouched, no process and no directory left after ``stop``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import psutil
import pytest
from docker_helpers import Engine

from swarmcompute.testing.dockerd import PrivateDockerd, is_static_busybox, missing_tools


def _forward_policy() -> str | None:
    if shutil.which("iptables") is None:
        return None
    out = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0] if out.returncode == 0 and out.stdout else None


def test_stop_leaves_nothing_behind(engine: Engine) -> None:
    policy_before = _forward_policy()
    dockerd = PrivateDockerd()
    try:
        dockerd.start()
        assert dockerd.proc is not None
        pid = dockerd.proc.pid
        assert not Path("/sys/class/net/docker0").exists()
        assert _forward_policy() == policy_before
    finally:
        dockerd.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not dockerd.base_dir.exists()
    assert not any(str(dockerd.base_dir) in line for line in Path("/proc/self/mounts").read_text().splitlines())


def test_busybox_detection() -> None:
    if missing_tools() is not None:
        pytest.skip(missing_tools())
    assert is_static_busybox(Path("/bin/busybox"))
    assert not is_static_busybox(Path("/bin/ls"))  # dynamically linked
    assert not is_static_busybox(Path("/nonexistent"))
