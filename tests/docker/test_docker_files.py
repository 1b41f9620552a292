"""Docker jobs and files (issue 11 item 7): the CLI leaves a container in its image's WORKDIR
unless --cwd is given, and a job that ships files gets its staged directory mounted as its
working directory, whose results `swarm cp` fetches."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from docker_helpers import BUSYBOX_TAG, Engine

from swarmcompute.testing.daemons import DaemonProcess, swarm_executable

WORKDIR_TAG = "swarm-test/withworkdir:1"


@pytest.fixture
def node(daemon_factory, engine: Engine) -> DaemonProcess:  # type: ignore[no-untyped-def]
    dockerfile = f"FROM {BUSYBOX_TAG}\nWORKDIR /srv\nCOPY data.txt /srv/data.txt\n".encode()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, body in (("Dockerfile", dockerfile), ("data.txt", b"from the image\n")):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    context.seek(0)
    engine.client.images.build(fileobj=context, custom_context=True, tag=WORKDIR_TAG, rm=True, network_mode="none")
    return daemon_factory("dnode", extra_env={"DOCKER_HOST": engine.dockerd.host}).start()  # type: ignore[no-any-return]


def run(node: DaemonProcess, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SWARM_STATE_DIR": str(node.state_dir)}
    return subprocess.run([swarm_executable(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_a_container_keeps_its_image_workdir_unless_cwd_is_given(node: DaemonProcess, tmp_path: Path) -> None:
    kept = run(node, "run", "--image", WORKDIR_TAG, "--", "cat", "data.txt", cwd=tmp_path)
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout == "from the image\n"
    moved = run(node, "run", "--image", WORKDIR_TAG, "--cwd", "/bin", "--", "pwd", cwd=tmp_path)
    assert moved.stdout == "/bin\n", moved.stderr


def test_a_container_runs_in_its_mounted_staged_directory_and_its_results_come_back(
    node: DaemonProcess, tmp_path: Path
) -> None:
    (tmp_path / "job.sh").write_text('#!/bin/sh\necho "in $(pwd): $(cat /srv/data.txt)"\necho done > out.txt\n')
    (tmp_path / "job.sh").chmod(0o755)
    result = run(node, "run", "--image", WORKDIR_TAG, "--name", "boxed", "--", "sh", "job.sh", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "in /swarm/work: from the image\n"
    got = run(node, "cp", "boxed:out.txt", str(tmp_path / "back.txt"), cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "back.txt").read_text() == "done\n"
