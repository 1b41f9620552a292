"""`swarm join`'s config file and `swarm config`: what a user writes, what the node then uses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import psutil
import pytest

from swarmcompute.cli import config
from swarmcompute.cli.config_cmd import join_table
from swarmcompute.errors import ConfigError
from swarmcompute.paths import DEFAULT_PORT
from swarmcompute.testing.daemons import swarm_executable, wait_until


def swarm(*args: str, env: dict[str, str], timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([swarm_executable(), *args], capture_output=True, text=True, env=env, timeout=timeout_s)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment whose config file is ``tmp_path/config.toml`` and whose state is in ``tmp_path/node``
    (never the user's own file or root's /etc one)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    return {**clean, "SWARM_CONFIG": str(tmp_path / "config.toml"), "SWARM_STATE_DIR": str(tmp_path / "node")}


def join_command() -> Any:
    from typer.main import get_command

    from swarmcompute.cli.app import app

    return get_command(app).commands["join"]  # type: ignore[attr-defined]


def settings(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document["settings"]


def test_a_setting_comes_from_the_default_then_the_file_then_the_environment_then_a_flag(
    env: dict[str, str], tmp_path: Path
) -> None:
    conf = tmp_path / "config.toml"
    conf.write_text("")
    assert settings(swarm("config", "--json", env=env))["log-level"] == {
        "value": "info",
        "source": "default",
        "from": "default",
    }
    conf.write_text('log-level = "debug"\n')
    assert settings(swarm("config", "--json", env=env))["log-level"] == {
        "value": "debug",
        "source": "file",
        "from": str(conf),
    }
    env["SWARM_LOG_LEVEL"] = "warning"
    assert settings(swarm("config", "--json", env=env))["log-level"] == {
        "value": "warning",
        "source": "env",
        "from": "$SWARM_LOG_LEVEL",
    }
    assert settings(swarm("config", "--json", "--log-level", "error", env=env))["log-level"] == {
        "value": "error",
        "source": "flag",
        "from": "--log-level",
    }


def test_swarm_config_prints_every_setting_with_where_it_came_from(env: dict[str, str], tmp_path: Path) -> None:
    conf = tmp_path / "config.toml"
    conf.write_text(
        'name = "attic"\nlabels = ["gpu=yes", "zone=attic"]\nhttp-port = 8080\nmdns = false\n'
        'token-file = "secrets/token"\nkeep-jobs = 500\n'
    )
    result = swarm("config", "--port", "7400", env=env)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[1:]}
    assert result.stdout.splitlines()[0] == f"config file: {conf}"
    assert lines["name"] == ["attic", str(conf)]
    assert lines["labels"] == ["gpu=yes,zone=attic", str(conf)]
    assert lines["http-port"] == ["8080", str(conf)]
    assert lines["mdns"] == ["false", str(conf)]
    assert lines["keep-jobs"] == ["500", str(conf)]
    assert lines["token-file"] == [str(tmp_path / "secrets" / "token"), str(conf)]  # relative to the file
    assert lines["port"] == ["7400", "--port"]
    assert lines["bind"] == ["0.0.0.0", "default"]
    as_json = swarm("config", "--json", env=env)
    assert json.loads(as_json.stdout)["file"] == str(conf) and json.loads(as_json.stdout)["file_found"] is True
    keys = set(settings(as_json))
    assert {"name", "port", "http-port", "bind", "peers", "labels", "mdns", "voter-grace", "log-level"} <= keys
    assert {"log-format", "keep-jobs", "keep-history", "token-file", "tls-cert", "tls-key"} <= keys


def test_without_a_file_every_setting_is_a_default_and_the_file_is_named(env: dict[str, str], tmp_path: Path) -> None:
    del env["SWARM_CONFIG"]
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    result = swarm("config", "--json", env=env)
    document = json.loads(result.stdout)
    expected = "/etc/swarmcompute/config.toml" if os.geteuid() == 0 else str(tmp_path / "xdg/swarmcompute/config.toml")
    assert document["file"] == expected and document["file_found"] is False
    assert {s["source"] for s in document["settings"].values()} == {"default"}


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("prot = 7400\n", "unknown key 'prot': did you mean port?"),
        ("http_port = 8080\n", "unknown key 'http_port': did you mean http-port?"),
        ("[http]\nport = 1\n", "unknown key 'http': did you mean http-port?"),
        ('port = "7400"\n', "port must be a whole number, got the string '7400'"),
        ("mdns = 0\n", "mdns must be true or false, got the number 0"),
        ("voter-grace = nan\n", "voter-grace must be a number, got the number nan"),
        ('peers = "10.0.0.2:7340"\n', "peers must be a list of strings, got the string '10.0.0.2:7340'"),
        ("labels = [1]\n", "labels must be a list of strings, got the number 1 in the list"),
        ('log-level = "loud"\n', "log-level must be one of debug, info, warning, error, got the string 'loud'"),
        ('token = "swarm1-abc"\n', "token is a secret and does not go in a config file: put it in a file only you"),
        ("metrics-token = 'x'\n", 'set metrics-token-file = "PATH"'),
        ("name = attic\n", "is not valid TOML: Invalid value (at line 1, column 8)"),
    ],
)
def test_a_wrong_file_is_one_error_line_naming_the_file_and_the_key(tmp_path: Path, text: str, said: str) -> None:
    conf = tmp_path / "config.toml"
    conf.write_text(text)
    with pytest.raises(ConfigError) as refused:
        config.read_file(conf, join_table(join_command()))
    assert str(refused.value).startswith(str(conf)) and said in str(refused.value)
    assert "\n" not in str(refused.value)


def test_swarm_config_and_join_refuse_a_wrong_file_in_one_line_and_join_starts_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    conf = tmp_path / "config.toml"
    conf.write_text('name = "attic"\nprot = 7400\n')
    for command in (["config"], ["join", "--detach"]):
        result = swarm(*command, env=env)
        assert result.returncode == 2 and result.stdout == "", (command, result)
        assert result.stderr == f"swarm: {conf}: unknown key 'prot': did you mean port?\n"
    assert not (tmp_path / "node").exists()  # join stopped before it made a state dir


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("keep-jobs = -5", "keep-jobs must be a number of jobs from 0 to 1000000000, got '-5'"),
        ('http-port = "99999"', "http-port must be 0 to 65535 or off, got '99999'"),
        ("port = 70000", "port must be 0 to 65535, got 70000"),
        ('keep-history = "2x"', "keep-history: cannot read '2x' as a duration"),
        ('bind = "eth0"', "bind takes an IP address of this machine (0.0.0.0: every one), got 'eth0'"),
    ],
)
def test_swarm_config_refuses_a_value_join_would_refuse_as_join_does_naming_the_files_key(
    env: dict[str, str], tmp_path: Path, line: str, said: str
) -> None:
    """Not a flag the user never gave: `port = 70000` read `--port must be 0 to 65535`."""
    conf = tmp_path / "config.toml"
    conf.write_text(line + "\n")
    for command in (["config"], ["join", "--detach"]):
        result = swarm(*command, env=env)
        assert (result.returncode, result.stdout) == (2, ""), command
        assert result.stderr.startswith(f"swarm: {conf}: {said.format(dir=tmp_path)}"), (command, result.stderr)
        assert len(result.stderr.splitlines()) == 1, result.stderr
    assert not (tmp_path / "node").exists()
    flagged = swarm("config", "--port", "70000", env=env)  # a flag's is said as the flag
    assert flagged.stderr == "swarm: --port must be 0 to 65535, got 70000\n"


def test_an_unknown_key_is_answered_with_the_keys_a_file_may_hold_not_the_secrets(tmp_path: Path) -> None:
    conf = tmp_path / "config.toml"
    conf.write_text("zzzzqqqq = 1\n")
    with pytest.raises(ConfigError) as refused:
        config.read_file(conf, join_table(join_command()))
    keys = str(refused.value).split("the keys are: ")[1].split(", ")
    assert "port" in keys and "token-file" in keys and "token" not in keys and "metrics-token" not in keys


def test_a_config_file_named_but_missing_is_an_error_and_a_missing_default_one_is_not(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = swarm("config", "--config", str(tmp_path / "nope.toml"), env=env)
    assert result.returncode == 2
    assert result.stderr == f"swarm: no config file {tmp_path / 'nope.toml'} (named by --config or $SWARM_CONFIG)\n"
    del env["SWARM_CONFIG"]
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    assert swarm("config", env=env).returncode == 0


def in_process(*args: str, tmp_path: Path) -> tuple[int, str]:
    """`swarm ARGS` run in this process (a fraction of a second, where a subprocess takes seconds):
    the exit code and what it wrote, stderr included."""
    from typer.testing import CliRunner

    from swarmcompute.cli.app import app

    result = CliRunner().invoke(app, list(args), env={"SWARM_STATE_DIR": str(tmp_path / "node"), "SWARM_TOKEN": None})
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ('labels = ["gpu"]', "labels: a label is KEY=VALUE, got 'gpu'"),
        ('name = "a\\nb"', "name must be printable, without control characters or line breaks, got 'a\\nb'"),
    ],
)
def test_swarm_config_refuses_the_labels_and_name_join_refuses_naming_the_files_key(
    tmp_path: Path, line: str, said: str
) -> None:
    """`labels = ["gpu"]` passed `swarm config` (exit 0) and join said a bare `a label is KEY=VALUE`;
    `name = "a\\nb"` passed both and printed across two lines. Both share one check now."""
    conf = tmp_path / "config.toml"
    conf.write_text(line + "\n")
    assert in_process("config", "--config", str(conf), tmp_path=tmp_path) == (2, f"swarm: {conf}: {said}\n")
    if line.startswith("labels"):  # (old code would start a daemon on the name: join is checked by the same call)
        assert in_process("join", "--detach", "--config", str(conf), tmp_path=tmp_path) == (
            2,
            f"swarm: {conf}: {said}\n",
        )
    assert not (tmp_path / "node").exists()


def test_a_token_file_that_is_not_there_is_refused_by_join_and_a_warning_of_swarm_config_naming_the_files_key(
    tmp_path: Path,
) -> None:
    """`swarm config` said nothing of it; it shows settings, often written before the token is
    fetched, so it warns (exit 0) where join refuses (exit 2, starting nothing)."""
    conf = tmp_path / "config.toml"
    conf.write_text('token-file = "no-such.token"\n')
    problem = f"{conf}: token-file: {tmp_path / 'no-such.token'} does not exist"
    code, said = in_process("config", "--config", str(conf), tmp_path=tmp_path)
    assert code == 0 and said.startswith(
        f"swarm: warning: {problem}: `swarm join` refuses it until the token is there\n"
    )
    code, said = in_process("join", "--detach", "--config", str(conf), tmp_path=tmp_path)
    assert code == 2 and said.startswith(f"swarm: {problem}: put the join token there")
    assert not (tmp_path / "node").exists()


def test_the_token_from_the_environment_wins_over_the_files_token_file(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('token-file = "no-such-file"\n')
    assert (
        "token-file: " + str(tmp_path / "no-such-file") + " does not exist" in swarm("join", "--detach", env=env).stderr
    )
    env["SWARM_TOKEN"] = "swarm1-not-a-token"
    result = swarm("join", "--detach", env=env)
    assert result.returncode == 2 and "no-such-file" not in result.stderr
    assert "token" in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    shown = json.loads(swarm("config", "--json", env=env).stdout)["settings"]  # and `swarm config` says so
    assert shown["token"]["from"] == "$SWARM_TOKEN" and shown["token-file"]["from"].endswith(
        "(not used: $SWARM_TOKEN wins)"
    ), shown


def test_join_started_with_a_config_file_runs_the_node_it_describes(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        'name = "attic"\nbind = "127.0.0.1"\nport = 0\nmdns = false\nhttp-port = "off"\n'
        'labels = ["gpu=yes", "zone=attic"]\nlog-level = "warning"\nkeep-jobs = 77\n'
    )
    state = tmp_path / "node"
    joined = swarm("join", "--detach", env=env)
    pid = int((state / "daemon.pid").read_text()) if (state / "daemon.pid").exists() else None
    try:
        assert joined.returncode == 0, joined.stderr
        assert "node attic" in joined.stdout
        nodes = json.loads(swarm("nodes", "--json", env=env).stdout)
        assert [(n["name"], n["labels"]) for n in nodes] == [("attic", {"gpu": "yes", "zone": "attic"})]
        assert nodes[0]["address"].startswith("127.0.0.1:")
        argv = psutil.Process(pid).cmdline()
        assert argv[argv.index("--log-level") + 1] == "warning" and argv[argv.index("--keep-jobs") + 1] == "77"
        assert "--no-mdns" in argv and argv[argv.index("--http-port") + 1] == "off"
        status = json.loads(swarm("status", "--json", env=env).stdout)
        assert not status.get("http")  # http-port = "off": no HTTP API
        left = swarm("leave", env=env)
        assert left.returncode == 0, left.stderr
        wait_until(lambda: not psutil.pid_exists(pid), 10, "the daemon to exit")
    finally:
        if pid is not None and psutil.pid_exists(pid):
            os.kill(pid, signal.SIGKILL)


def test_the_files_keys_and_defaults_are_read_off_swarm_join_itself() -> None:
    table = {s.key: s for s in join_table(join_command())}
    assert (table["port"].default, table["keep-history"].default, table["name"].default) == (DEFAULT_PORT, "7d", None)
    assert (table["port"].kind, table["voter-grace"].kind, table["mdns"].kind) == ("int", "float", "bool")
    assert (table["peers"].many, table["labels"].many, table["token-file"].kind) == (True, True, "path")
    assert table["log-level"].choices == ("debug", "info", "warning", "error")
    assert table["log-level"].envvar == "SWARM_LOG_LEVEL"
    assert not {"state-dir", "detach", "new-cluster", "config"} & set(table)
    assert config.parse_settings(
        {"tls-cert": "/abs.pem", "tls-key": "k.pem"}, Path("/x/c.toml"), list(table.values())
    ) == {
        "tls_cert": "/abs.pem",
        "tls_key": "/x/k.pem",
    }


def test_the_default_file_is_roots_etc_file_or_the_users_xdg_one() -> None:
    assert config.default_config_file({"XDG_CONFIG_HOME": "/c"}, euid=0) == Path("/etc/swarmcompute/config.toml")
    assert config.default_config_file({"XDG_CONFIG_HOME": "/c"}, euid=1000) == Path("/c/swarmcompute/config.toml")
    home = {"XDG_CONFIG_HOME": "relative/ignored", "HOME": "/home/ann"}
    assert config.default_config_file(home, euid=1000) == Path("/home/ann/.config/swarmcompute/config.toml")
