"""`swarm service install | uninstall | status`: the systemd units it writes pass
`systemd-analyze verify`, carry the join token only as a credential, and come off again.

Every install here writes under ``--root`` (or a private $HOME), so no test ever enables a unit
on the machine that runs it; ``systemd-analyze verify`` checks the units as they would be
installed, with the real `swarm` of this install as their ``ExecStart``."""

from __future__ import annotations

import json
import os
import shlex
import signal
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from swarmcompute.testing.daemons import DaemonProcess, free_port, swarm_executable, wait_until
from swarmcompute.transport.keys import new_cluster_key

ANALYZE = "/usr/bin/systemd-analyze"


def swarm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("SWARM_STATE_DIR", "SWARM_TOKEN")}
    return subprocess.run(
        [swarm_executable(), *args], capture_output=True, text=True, timeout=60, env={**base, **(env or {})}
    )


def verify(unit: Path, *, user: bool, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze [--user] verify UNIT``: exit 0 and not a word (a warning is a failure)."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_COLOR": "0"}
    return subprocess.run(
        [ANALYZE, *(["--user"] if user else []), "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.fixture
def token_file(tmp_path: Path) -> tuple[str, Path]:
    token = new_cluster_key().token
    path = tmp_path / "token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token, path


@pytest.mark.parametrize("state_dir", [None, "/srv/swarm 100% $HOME"])
def test_system_unit_passes_systemd_analyze_and_hands_the_token_over_only_as_a_credential(
    tmp_path: Path, token_file: tuple[str, Path], state_dir: str | None
) -> None:
    token, path = token_file
    root = tmp_path / "root"
    extra = () if state_dir is None else ("--state-dir", state_dir)
    done = swarm("service", "install", "--root", str(root), "--token-file", str(path), *extra)
    assert done.returncode == 0, done.stderr
    unit = root / "etc/systemd/system/swarmcompute.service"
    assert done.stdout.startswith(f"wrote {unit} (system unit")
    assert done.stderr == (
        "not enabled (--root): on that system run "
        "`systemctl daemon-reload && systemctl enable --now swarmcompute.service`\n"
    )

    credential = root / "etc/swarmcompute/join.token"
    assert credential.read_text() == token + "\n"
    assert stat.S_IMODE(credential.stat().st_mode) == 0o600
    text = unit.read_text()
    assert token not in text and token.split("-")[-1] not in text
    state = "/var/lib/swarmcompute" if state_dir is None else '"/srv/swarm 100%% $$HOME"'
    assert (
        f"ExecStart={swarm_executable()} join --state-dir {state} --token-file ${{CREDENTIALS_DIRECTORY}}/swarm-token\n"
        in text
    )
    for line in (
        "LoadCredential=swarm-token:/etc/swarmcompute/join.token",
        "Restart=on-failure",
        "RestartPreventExitStatus=78",
        "KillMode=mixed",
        "Delegate=yes",
        "After=network-online.target docker.service",
        "WantedBy=multi-user.target",
    ):
        assert f"\n{line}\n" in text

    checked = verify(unit, user=False, tmp_path=tmp_path)
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")

    # `status` reads the state dir back out of the unit, quoting and escapes undone.
    shown = swarm("service", "status", "--root", str(root), "--json")
    assert shown.returncode == 0, shown.stderr
    facts = json.loads(shown.stdout)
    assert facts["installed"] and facts["scope"] == "system" and facts["token_file"] == str(credential)
    assert facts["state_dir"] == (state_dir or "/var/lib/swarmcompute")


def test_user_unit_lives_in_the_users_config_and_passes_systemd_analyze(
    tmp_path: Path, token_file: tuple[str, Path]
) -> None:
    token, path = token_file
    home, root = tmp_path / "home", tmp_path / "root"
    env = {"HOME": str(home), "XDG_CONFIG_HOME": "", "XDG_DATA_HOME": ""}
    done = swarm("service", "install", "--user", "--root", str(root), "--token-file", str(path), env=env)
    assert done.returncode == 0, done.stderr
    unit = root / str(home).lstrip("/") / ".config/systemd/user/swarmcompute.service"
    credential = root / str(home).lstrip("/") / ".config/swarmcompute/join.token"
    assert done.stdout.startswith(f"wrote {unit} (user unit")
    assert "systemctl --user daemon-reload && systemctl --user enable --now swarmcompute.service" in done.stderr
    assert credential.read_text() == token + "\n"
    text = unit.read_text()
    assert f"--state-dir {home}/.local/share/swarmcompute --token-file" in text
    assert f"\nLoadCredential=swarm-token:{home}/.config/swarmcompute/join.token\n" in text
    assert "\nWantedBy=default.target\n" in text and "network-online" not in text
    assert token not in text

    checked = verify(unit, user=True, tmp_path=tmp_path)
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")


def test_without_systemd_running_install_writes_the_unit_and_says_in_one_line_how_to_enable_it(
    tmp_path: Path, token_file: tuple[str, Path]
) -> None:
    if Path("/run/systemd/system").exists():
        pytest.skip("systemd runs this machine: an install without --root would enable a real unit")
    _, path = token_file
    home = tmp_path / "home"
    env = {"HOME": str(home), "XDG_CONFIG_HOME": "", "XDG_DATA_HOME": ""}
    done = swarm("service", "install", "--user", "--token-file", str(path), env=env)
    assert done.returncode == 0, done.stderr
    assert (home / ".config/systemd/user/swarmcompute.service").exists()
    assert done.stderr == (
        "systemd is not running on this machine, so the unit is not enabled: where it runs, "
        "`systemctl --user daemon-reload && systemctl --user enable --now swarmcompute.service`\n"
    )
    shown = swarm("service", "status", "--user", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "systemd: not running on this machine" in shown.stdout
    assert f"daemon: not running (state in {home}/.local/share/swarmcompute)" in shown.stdout


def test_uninstall_removes_the_unit_and_the_token_and_keeps_the_state(
    tmp_path: Path, token_file: tuple[str, Path]
) -> None:
    _, path = token_file
    root = tmp_path / "root"
    assert swarm("service", "install", "--root", str(root), "--token-file", str(path)).returncode == 0
    unit, credential = root / "etc/systemd/system/swarmcompute.service", root / "etc/swarmcompute/join.token"

    gone = swarm("service", "uninstall", "--root", str(root))
    assert gone.returncode == 0, gone.stderr
    assert gone.stdout == (
        f"removed {unit}, {credential}\n"
        "the node's state stays in /var/lib/swarmcompute (`swarm leave` takes a node out of its cluster)\n"
    )
    assert not unit.exists() and not credential.exists()
    shown = swarm("service", "status", "--root", str(root))
    assert shown.returncode == 1
    assert shown.stdout == f"no system unit installed ({unit}): `swarm service install`\n"
    again = swarm("service", "uninstall", "--root", str(root))
    assert again.returncode == 0 and again.stdout == f"no system unit was installed ({unit})\n"


def test_install_without_a_token_writes_a_unit_without_a_credential(tmp_path: Path) -> None:
    root = tmp_path / "root"
    done = swarm("service", "install", "--root", str(root), "--state-dir", str(tmp_path / "state"))
    assert done.returncode == 0, done.stderr
    text = (root / "etc/systemd/system/swarmcompute.service").read_text()
    assert "LoadCredential" not in text and "--token-file" not in text
    assert "no token: at its first start the node creates a new cluster" in done.stderr


def test_a_malformed_token_is_refused_in_one_line_and_nothing_is_written(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_text("swarm1-not-a-token\n")
    bad.chmod(0o600)
    root = tmp_path / "root"
    done = swarm("service", "install", "--root", str(root), "--token-file", str(bad))
    assert done.returncode == 2
    assert done.stderr.startswith("swarm: ") and done.stderr.count("\n") == 1
    assert not root.exists()


def test_a_system_unit_needs_root(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to run the command as another user")
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", swarm_executable(), "service", "install"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert done.returncode == 2
    assert done.stderr == (
        "swarm: a system unit needs root: `sudo swarm service install`, or `swarm service install --user`\n"
    )


def test_the_units_command_run_as_systemd_runs_it_joins_the_cluster_with_the_credential_and_stops_cleanly(
    tmp_path: Path, token_file: tuple[str, Path], daemon_factory: Any
) -> None:
    """What systemd would do with the unit: copy the LoadCredential file into a private
    credentials directory, run ExecStart with $CREDENTIALS_DIRECTORY set, stop it with SIGTERM.
    The settings come from the config file `swarm join` reads (here named by $SWARM_CONFIG)."""
    port = free_port()
    member: DaemonProcess = daemon_factory("m", port=port, extra_args=("--new-cluster",)).start()
    token_path = tmp_path / "member.token"
    token_path.write_text(member.token_from_disk() + "\n")
    token_path.chmod(0o600)
    root = tmp_path / "root"
    installed = swarm(
        "service", "install", "--root", str(root), "--token-file", str(token_path), "--state-dir", str(tmp_path / "svc")
    )
    assert installed.returncode == 0, installed.stderr
    text = (root / "etc/systemd/system/swarmcompute.service").read_text()

    credentials = tmp_path / "credentials"
    credentials.mkdir(mode=0o700)
    source = next(line for line in text.splitlines() if line.startswith("LoadCredential=")).split(":", 1)[1]
    (credentials / "swarm-token").write_bytes((root / source.lstrip("/")).read_bytes())
    (credentials / "swarm-token").chmod(0o400)
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))[len("ExecStart=") :]
    argv = [word.replace("${CREDENTIALS_DIRECTORY}", str(credentials)) for word in shlex.split(exec_start)]
    conf = tmp_path / "config.toml"
    conf.write_text(
        f'name = "svc"\nbind = "127.0.0.1"\nport = 0\nmdns = false\npeers = ["127.0.0.1:{port}"]\nhttp-port = "off"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    with open(tmp_path / "journal", "wb") as journal:
        proc = subprocess.Popen(argv, env={**env, "SWARM_CONFIG": str(conf)}, stdout=journal, stderr=subprocess.STDOUT)
    try:

        def joined() -> bool:
            nodes = {n["name"]: n for n in member.status()["nodes"]}
            return "svc" in nodes and nodes["svc"]["state"] == "alive" and nodes["svc"]["role"] != "joining"

        wait_until(joined, 30, "the unit's node to join the cluster")
        token = member.token_from_disk()
        assert token.encode() not in Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert token.encode() not in Path(f"/proc/{proc.pid}/environ").read_bytes()
        proc.send_signal(signal.SIGTERM)  # `systemctl stop`, KillMode=mixed: the daemon alone
        assert proc.wait(timeout=30) == 0  # a clean stop: Restart=on-failure leaves it stopped
        assert token not in (tmp_path / "journal").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
