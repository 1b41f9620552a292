"""Each bad input to the CLI is exit 2 and one line on stderr saying what is wrong (no daemon
needed: the options are checked before anything is sent)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from swarmcompute.cli import run_cmd
from swarmcompute.cli.app import app
from swarmcompute.testing.daemons import free_port, swarm_executable


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cpus", "nan"], "cpus must be a finite number"),
        (["--cpus", "inf"], "cpus must be a finite number"),
        (["--cpus", "1e999"], "cpus must be a finite number"),
        (["--cpus", "-1"], "cpus must be at least 0"),
        (["--mem", "18446744073709551616"], "mem must be between 0 and"),
        (["--mem", "1" * 400], "too large"),
        (["--priority", str(2**64)], "priority must be between"),
        (["--retries", str(2**64)], "retries must be between"),
        (["--retries", "9" * 5000], "needs a whole number"),
        (["--gpus", "-1"], "gpus must be between"),
        (["--gpus", "0", "--gpu-mem", "10G"], "--gpus 0 for none"),  # it ran on a card before
        (["--timeout", "nan"], "cannot read 'nan' as a duration"),
        (["--timeout", "1" * 400], "finite number of seconds"),
        (["--id", "é1"], "must be ASCII letters"),
        (["--id", "ＡＢＣ"], "must be ASCII letters"),
        (["--id", "x" * 65], "must be 1-64 characters"),
        (["--id", ".."], "starting with a letter or digit"),
        (["--name", "a\nb"], "control or other unprintable"),
        (["--name", "\x1b]0;owned\x07"], "control or other unprintable"),
        (["--on-disconnect", "maybe"], "must be stop or keep"),
        (["--after", ""], "is empty"),
        (["--bogus\x1b[2J"], "no such option: --bogus\\x1b[2J"),
    ],
)
def test_bad_run_options(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cmd.main([*args, "--", "true"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and message in err and err.strip().isprintable(), err


def test_from_a_fresh_process_too(tmp_path: Path) -> None:
    env = {**os.environ, "SWARM_STATE_DIR": str(tmp_path / "none")}
    result = subprocess.run(
        [swarm_executable(), "run", "--cpus", "nan", "--priority", "100", "--", "true"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr == "swarm run: cpus must be a finite number, got nan\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["jobs", "-n", str(10**30)], "-n must be from 0 to 10,000"),
        (["logs", "x", "--attempt", "0"], "attempt must be a positive whole number"),
        (["join", "--port", "70000"], "--port must be 0 to 65535"),
        (["join", "--voter-grace", "nan"], "--voter-grace must be a positive number"),
        (["leave", "--timeout", "nan"], "--timeout must be a positive number"),
        (["wait", "x", "--timeout", "nan"], "cannot read 'nan' as a duration"),
    ],
)
def test_bad_options_of_the_other_commands(args: list[str], message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [*args, "--state-dir", str(tmp_path / "none")])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr


def test_jobs_with_too_many_rows_is_said_as_its_option(tmp_path: Path) -> None:
    """It read `limit must be a whole number from 0 to 10000`: the API's name, not -n."""
    env = {**os.environ, "SWARM_STATE_DIR": str(tmp_path / "none")}
    result = subprocess.run(
        [swarm_executable(), "jobs", "-n", "100000"], capture_output=True, text=True, env=env, timeout=30
    )
    assert (result.returncode, result.stderr) == (
        2,
        "swarm: -n must be from 0 to 10,000, got 100,000: narrow with --state, --name or --user\n",
    )


def test_drain_with_a_timeout_but_no_wait_is_refused_not_ignored(tmp_path: Path) -> None:
    env = {**os.environ, "SWARM_STATE_DIR": str(tmp_path / "none")}
    result = subprocess.run(
        [swarm_executable(), "drain", "n1", "--timeout", "2s"], capture_output=True, text=True, env=env, timeout=30
    )
    assert (result.returncode, result.stderr) == (
        2,
        "swarm: --timeout is how long --wait waits: give --wait too, or leave --timeout out\n",
    )


def test_a_first_join_with_no_mdns_and_no_peer_is_refused_not_left_looking_for_ever(tmp_path: Path) -> None:
    from swarmcompute.transport.keys import new_cluster_key

    token = new_cluster_key().token
    state = tmp_path / "n"
    args = ["join", "--detach", "--state-dir", str(state), "--no-mdns", "--token", token]
    args += ["--bind", "127.0.0.1", "--port", str(free_port()), "--http-port", "off"]
    try:
        result = subprocess.run([swarm_executable(), *args], capture_output=True, text=True, timeout=30)
    finally:  # (before, a daemon started, and looked for ever)
        subprocess.run([swarm_executable(), "leave", "--state-dir", str(state)], capture_output=True, timeout=60)
    assert (result.returncode, result.stderr) == (
        2,
        "swarm: with --no-mdns a first join has no way to find the cluster: give --peer HOST:7340, or drop --no-mdns\n",
    )
