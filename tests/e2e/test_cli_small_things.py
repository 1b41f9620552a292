"""Small things of the CLI: `--state` filters and is checked, `--node` takes the id prefix the jobs
table shows, a relative `--cwd` is resolved where `swarm run` runs, `--version` and `-h`, a stdout that cannot be written."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from swarmcompute.testing.daemons import DaemonProcess, swarm_executable


def test_ps_state_filters_case_blind_and_refuses_an_unknown_state_in_one_line(daemon: DaemonProcess) -> None:
    ok = daemon.client.submit(["true"], cpus=0)
    bad = daemon.client.submit(["false"], cpus=0)
    daemon.client.wait([ok, bad], timeout=30)
    listed = daemon.swarm("ps", "--state", "FAILED").stdout
    assert bad in listed and ok not in listed
    refused = daemon.swarm("ps", "--state", "bogus")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "not a job state" in refused.stderr


def test_node_takes_the_id_prefix_and_a_relative_cwd_is_resolved_here(daemon: DaemonProcess, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    prefix = daemon.status()["node_id"][:12]
    run = daemon.swarm("run", "--node", prefix, "--cwd", "sub", "--", "pwd", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(tmp_path / "sub")


def test_version_and_short_help_everywhere(daemon: DaemonProcess) -> None:
    version = daemon.swarm("--version")
    assert version.returncode == 0 and version.stdout.startswith("swarm ")
    for command in ("status", "jobs", "join", "show", "logs"):
        shown = daemon.swarm(command, "-h")
        assert shown.returncode == 0 and "Usage" in shown.stdout, command


def test_usage_errors_are_one_line_that_says_where_the_help_is(daemon: DaemonProcess) -> None:
    for args, said in (
        (("show",), "swarm: Missing argument 'job' (see `swarm show -h`)"),
        (("jobs", "--limit", "x"), "swarm: Invalid value for '--limit'"),
        (("bogus",), "swarm: No such command 'bogus'"),
    ):
        result = daemon.swarm(*args)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith(said), result.stderr


def _into_dev_full(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """`swarm ARGS > /dev/full`: every write to stdout fails with ENOSPC, as on a full disk."""
    env = {**os.environ, "SWARM_STATE_DIR": str(daemon.state_dir)}
    with open("/dev/full", "w") as full:
        return subprocess.run(
            [swarm_executable(), *args], stdout=full, stderr=subprocess.PIPE, text=True, env=env, timeout=60
        )


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_a_stdout_that_cannot_be_written_is_one_line_and_exit_2_not_a_traceback(daemon: DaemonProcess) -> None:
    assert daemon.swarm("run", "--id", "printed", "--", "echo", "hello").returncode == 0
    full = "[Errno 28] No space left on device"
    for args in (("jobs",), ("jobs", "--json"), ("show", "printed"), ("logs", "printed"), ("status",)):
        result = _into_dev_full(daemon, *args)
        assert (result.returncode, result.stderr) == (2, f"swarm: could not write to stdout: {full}\n"), args


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
@pytest.mark.parametrize("kind", ["job", "array"])
def test_run_whose_output_cannot_be_written_cancels_what_it_ran_in_one_line_and_exits_2(
    daemon: DaemonProcess, kind: str
) -> None:
    shape = ("--array", "0-1") if kind == "array" else ()
    result = _into_dev_full(
        daemon, "run", "--id", "unread", *shape, "--cpus", "0", "--", "sh", "-c", "echo x; sleep 300"
    )
    assert "Traceback" not in result.stderr
    assert (result.returncode, result.stderr.splitlines()[-1]) == (
        2,
        f"swarm: could not write the {kind}'s output to stdout: [Errno 28] No space left on device:"
        f" cancelled {kind} unread (--keep-on-exit keeps it running)",
    )
    ended = daemon.client.wait("unread", timeout=30)
    assert [j["state"] for j in (ended if kind == "array" else [ended])] == ["cancelled"] * (
        2 if kind == "array" else 1
    )
