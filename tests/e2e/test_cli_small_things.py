"""Small things of the CLI: `--state` filters and is checked, `--node` takes the id prefix the jobs
table shows, a relative `--cwd` is resolved where `swarm run` runs, `--version` and `-h`."""

from __future__ import annotations

from pathlib import Path

from swarmcompute.testing.daemons import DaemonProcess


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
