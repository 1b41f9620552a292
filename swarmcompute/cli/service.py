"""`swarm service install | uninstall | status`: start this machine's daemon at boot with systemd.

The unit runs `swarm join` in the foreground (its settings come from the config file that
`swarm join` reads, ``/etc/swarmcompute/config.toml`` for root, ``~/.config/swarmcompute/config.toml``
for a user; ``--state-dir`` is the one flag the unit carries), restarts it when it fails, and
stops it with SIGTERM to the daemon alone (``KillMode=mixed``: the daemon stops its jobs itself,
whatever is left gets SIGKILL after ``TimeoutStopSec``). ``Delegate=yes`` gives the daemon its
cgroup subtree, for ``--cpus``/``--mem`` limits (``executor.cgroups``).

The join token never appears in the unit, on a command line or in an environment: `install`
copies it into a 0600 credentials file (``/etc/swarmcompute/join.token``, or
``~/.config/swarmcompute/join.token`` for ``--user``), systemd hands it to the service alone as a
credential (``LoadCredential=``, in ``$CREDENTIALS_DIRECTORY``, readable only by the service), and
the unit runs `swarm join --token-file ${CREDENTIALS_DIRECTORY}/swarm-token`. Once a node is a
member its state directory holds the cluster key; the token file is then only checked against it.

Two scopes: a system unit (root; ``/etc/systemd/system``, state in ``/var/lib/swarmcompute``) and a
user unit (``--user``; ``~/.config/systemd/user``, state in ``~/.local/share/swarmcompute``; it
starts at boot only with ``loginctl enable-linger``). ``--root DIR`` writes every file under DIR
as if it were / (an image being built, tests) and runs no systemctl. Where systemd is not running
(a container, WSL without systemd), `install` writes the unit and says in one line what to run to
enable it.

``unit_text`` is pure: the tests check its output with ``systemd-analyze verify``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from swarmcompute.errors import EXIT_MUST_NOT_RUN


def _fail(message: str) -> typer.Exit:
    from swarmcompute.cli.app import _fail as fail  # the CLI's one-line error (app imports this module)

    return fail(message)


def _print_json(value: Any) -> None:
    from swarmcompute.cli.app import _print_json as print_json

    print_json(value)


def _read_token_file(path: Path) -> str:
    from swarmcompute.cli.app import _read_token_file as read  # `-` is stdin; warns of a readable file

    return read(path)


UNIT_NAME = "swarmcompute.service"
CREDENTIAL = "swarm-token"
"""The credential's name: the file ``$CREDENTIALS_DIRECTORY/swarm-token`` in the service."""
TOKEN_FILE_NAME = "join.token"
SYSTEMCTL_TIMEOUT_S = 60.0

service_app = typer.Typer(
    rich_markup_mode="markdown",
    help="Start the daemon at boot with systemd: `swarm service install [--user]`, `uninstall`, `status`.",
    no_args_is_help=True,
)

UserFlag = Annotated[
    bool,
    typer.Option("--user", help="A user unit (~/.config/systemd/user) instead of the system unit (root)."),
]
RootDir = Annotated[
    Path | None,
    typer.Option(
        "--root",
        help="Write (or look) under this directory as if it were / (a disk image, tests); runs no systemctl.",
        metavar="DIR",
        show_default=False,
    ),
]
StateDirOption = Annotated[
    str | None,
    typer.Option(
        "--state-dir",
        envvar="SWARM_STATE_DIR",
        help="The node's state directory (default: /var/lib/swarmcompute, or ~/.local/share/swarmcompute with --user).",
        show_default=False,
    ),
]


@dataclass(frozen=True, slots=True)
class Scope:
    """Where the unit and its token file are, for systemd (``unit``, ``token_file``: the real
    paths, as the unit names them) and on this disk (``on_disk``: under ``--root``)."""

    user: bool
    unit: Path
    token_file: Path
    state_dir: Path
    root: Path | None

    def on_disk(self, path: Path) -> Path:
        return path if self.root is None else self.root / path.relative_to("/")

    @property
    def name(self) -> str:
        return "user" if self.user else "system"

    def systemctl(self, *args: str) -> list[str]:
        return ["systemctl", *(["--user"] if self.user else []), *args]


def scope(user: bool, root: Path | None, state_dir: str | None) -> Scope:
    """The paths of a system unit (``user`` False) or of this user's unit."""
    from swarmcompute.state_dir import system_state_dir

    if user:
        home = Path(os.path.expanduser("~"))
        config = _xdg("XDG_CONFIG_HOME", home / ".config")
        data = _xdg("XDG_DATA_HOME", home / ".local" / "share")
        unit_dir, token_dir, default_state = config / "systemd" / "user", config / "swarmcompute", data / "swarmcompute"
    else:
        unit_dir, token_dir = Path("/etc/systemd/system"), Path("/etc/swarmcompute")
        default_state = Path(system_state_dir())
    state = Path(os.path.abspath(os.path.expanduser(state_dir))) if state_dir else default_state
    return Scope(user, unit_dir / UNIT_NAME, token_dir / TOKEN_FILE_NAME, state, root)


def _xdg(variable: str, default: Path) -> Path:
    """An XDG base directory: the variable when it holds an absolute path (as the spec says), else the default."""
    value = os.environ.get(variable, "")
    return Path(value) if os.path.isabs(value) else default


def unit_text(*, user: bool, swarm: str, state_dir: Path, token_file: Path | None) -> str:
    """The unit file: `swarm join` in the foreground, restarted on failure, the token (when
    ``token_file``) a credential passed as a file, never an argument."""
    command = [swarm, "join", "--state-dir", str(state_dir)]
    exec_start = " ".join(_exec_word(word) for word in command)
    if token_file is not None:
        exec_start += f" --token-file ${{CREDENTIALS_DIRECTORY}}/{CREDENTIAL}"
    lines = [
        "# Written by `swarm service install`; `swarm service uninstall` removes it.",
        "# Settings: the config file `swarm join` reads (`swarm config` shows them).",
        "[Unit]",
        "Description=swarmcompute node (peer-to-peer compute cluster)",
    ]
    if not user:  # a user manager has neither target
        lines += ["Wants=network-online.target", "After=network-online.target docker.service"]
    lines += [
        "",
        "[Service]",
        "Type=exec",
        f"ExecStart={exec_start}",
    ]
    if token_file is not None:
        lines.append(f"LoadCredential={CREDENTIAL}:{_unit_path(token_file)}")
    lines += [
        "Restart=on-failure",
        f"RestartPreventExitStatus={EXIT_MUST_NOT_RUN}",
        "RestartSec=5s",
        "KillMode=mixed",
        "TimeoutStopSec=30s",
        "Delegate=yes",
        "",
        "[Install]",
        f"WantedBy={'default.target' if user else 'multi-user.target'}",
        "",
    ]
    return "\n".join(lines)


def _exec_word(word: str) -> str:
    """One word of ``ExecStart=``, kept whole: ``%`` and ``$`` escaped, quoted when it has a space."""
    escaped = word.replace("\\", "\\\\").replace("%", "%%").replace("$", "$$")
    if any(c in escaped for c in " \t\"'"):
        return '"' + escaped.replace('"', '\\"') + '"'
    return escaped


def _unit_path(path: Path) -> str:
    """A path in a unit setting that takes one (``%`` is a specifier there)."""
    text = str(path)
    if any(c.isspace() for c in text):
        raise _fail(f"systemd cannot take a path with spaces here: {text}")
    return text.replace("%", "%%")


@service_app.command("install")
def install(
    user: UserFlag = False,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help="The cluster's join token, in this file (- for stdin); copied to a 0600 credentials file.",
        ),
    ] = None,
    state_dir: StateDirOption = None,
    root: RootDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output (keys in the README).")] = False,
) -> None:
    """Write and enable a systemd unit that runs `swarm join` at boot and after a failure."""
    if not user and root is None and os.geteuid() != 0:
        raise _fail("a system unit needs root: `sudo swarm service install`, or `swarm service install --user`")
    where = scope(user, root, state_dir)
    token = os.environ.get("SWARM_TOKEN", "").strip() or None
    if token_file is not None:
        token = _read_token_file(token_file)
    if token is not None:
        from swarmcompute.errors import SwarmError
        from swarmcompute.transport.keys import ClusterKey  # (imports zmq: only when there is a token)

        try:
            ClusterKey.from_token(token)
        except SwarmError as exc:
            raise _fail(str(exc)) from None
    text = unit_text(
        user=user, swarm=_swarm_path(), state_dir=where.state_dir, token_file=where.token_file if token else None
    )
    unit_path = where.on_disk(where.unit)
    try:
        if token is not None:
            _write(where.on_disk(where.token_file), token + "\n", 0o600)
        else:
            where.on_disk(where.token_file).unlink(missing_ok=True)  # an older install's token
        _write(unit_path, text, 0o644)
    except OSError as exc:
        raise _fail(f"cannot write {exc.filename}: {exc.strerror}") from None
    enabled, how = _enable(where)
    if as_json:
        _print_json({**_facts(where), "enabled": enabled, "message": how})
        return
    typer.echo(f"wrote {unit_path} ({where.name} unit: `swarm join --state-dir {where.state_dir}`)")
    if token is not None:
        typer.echo(f"the join token is in {where.on_disk(where.token_file)} (0600), passed as a systemd credential")
    elif not (where.state_dir / "cluster.key").exists():
        typer.echo(
            "no token: at its first start the node creates a new cluster (give --token-file to join one)", err=True
        )
    typer.echo(how, err=not enabled)


@service_app.command("uninstall")
def uninstall(
    user: UserFlag = False,
    root: RootDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output (keys in the README).")] = False,
) -> None:
    """Stop and disable the unit, remove it and its token file; the state directory is kept."""
    if not user and root is None and os.geteuid() != 0:
        raise _fail("the system unit is root's: `sudo swarm service uninstall`, or `swarm service uninstall --user`")
    where = scope(user, root, _state_dir_in(scope(user, root, None)))
    said = None
    if where.root is None and _systemd_running(where):
        done = _systemctl(where, "disable", "--now", UNIT_NAME)
        said = None if done.returncode == 0 else _last_line(done)
    removed = []
    for path in (where.on_disk(where.unit), where.on_disk(where.token_file)):
        try:
            path.unlink()
            removed.append(str(path))
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise _fail(f"cannot remove {path}: {exc.strerror}") from None
    if where.root is None and _systemd_running(where):
        _systemctl(where, "daemon-reload")
    if as_json:
        _print_json({"removed": removed, "state_dir": str(where.state_dir), "systemctl": said})
        return
    if said:
        typer.echo(f"swarm: systemctl disable: {said}", err=True)
    if not removed:
        typer.echo(f"no {where.name} unit was installed ({where.on_disk(where.unit)})")
        return
    typer.echo(f"removed {', '.join(removed)}")
    typer.echo(f"the node's state stays in {where.state_dir} (`swarm leave` takes a node out of its cluster)")


@service_app.command("status")
def status(
    user: UserFlag = False,
    root: RootDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output (keys in the README).")] = False,
) -> None:
    """Whether the unit is installed, enabled and running, and whether its daemon answers (exit 1: not installed)."""
    where = scope(user, root, _state_dir_in(scope(user, root, None)))
    facts = _facts(where)
    if as_json:
        _print_json(facts)
        raise typer.Exit(0 if facts["installed"] else 1)
    if not facts["installed"]:
        typer.echo(
            f"no {where.name} unit installed ({facts['unit']}): `swarm service install{' --user' if user else ''}`"
        )
        raise typer.Exit(1)
    token = f"token from {facts['token_file']}" if facts["token_file"] else "no token file"
    typer.echo(f"unit: {facts['unit']} ({where.name}; {token})")
    systemd = facts["systemd"]
    if systemd["running"]:
        typer.echo(f"systemd: {systemd['enabled']}, {systemd['active']}")
    else:
        typer.echo("systemd: not running on this machine (the unit is written, not enabled)")
    daemon = facts["daemon"]
    if daemon["running"]:
        typer.echo(
            f"daemon: node {daemon['node']} answers, leader {daemon['leader'] or 'none'} (state in {where.state_dir})"
        )
    else:
        typer.echo(f"daemon: not running (state in {where.state_dir})")


def _facts(where: Scope) -> dict[str, Any]:
    """What `status --json` (and `install --json`) says: the README lists these keys."""
    unit = where.on_disk(where.unit)
    installed = unit.exists()
    token_file = where.on_disk(where.token_file)
    systemd: dict[str, Any] = {
        "running": where.root is None and _systemd_running(where),
        "enabled": None,
        "active": None,
    }
    if systemd["running"] and installed:
        systemd["enabled"] = _last_line(_systemctl(where, "is-enabled", UNIT_NAME)) or None
        systemd["active"] = _last_line(_systemctl(where, "is-active", UNIT_NAME)) or None
    daemon: dict[str, Any] = {"running": False, "node": None, "leader": None}
    if where.root is None:
        daemon.update(_daemon(where.state_dir))
    return {
        "scope": where.name,
        "unit": str(unit),
        "installed": installed,
        "token_file": str(token_file) if installed and token_file.exists() else None,
        "state_dir": str(where.state_dir),
        "systemd": systemd,
        "daemon": daemon,
    }


def _daemon(state_dir: Path) -> dict[str, Any]:
    from swarmcompute.client import Client
    from swarmcompute.errors import SwarmError

    try:
        client = Client(state_dir, timeout_s=5.0)
        if not client.ping():
            return {}
        status = client.status()
    except SwarmError:
        return {}
    names = {n["id"]: n["name"] for n in status.get("nodes", [])}
    return {"running": True, "node": names.get(status["node_id"]), "leader": names.get(status.get("leader"))}


def _state_dir_in(where: Scope) -> str | None:
    """The ``--state-dir`` of an installed unit's ``ExecStart``, or None."""
    import shlex

    try:
        text = where.on_disk(where.unit).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("ExecStart="):
            words = shlex.split(line[len("ExecStart=") :].replace("%%", "%").replace("$$", "$"))
            if "--state-dir" in words[:-1]:
                return words[words.index("--state-dir") + 1]
    return None


def _enable(where: Scope) -> tuple[bool, str]:
    """Enable and start the unit; or say in one line why not and what to run."""
    user = " --user" if where.user else ""
    then = f"systemctl{user} daemon-reload && systemctl{user} enable --now {UNIT_NAME}"
    if where.root is not None:
        return False, f"not enabled (--root): on that system run `{then}`"
    if not _systemd_running(where):
        return False, f"systemd is not running on this machine, so the unit is not enabled: where it runs, `{then}`"
    for args in (("daemon-reload",), ("enable", "--now", UNIT_NAME)):
        done = _systemctl(where, *args)
        if done.returncode != 0:
            return False, f"swarm: systemctl{user} {' '.join(args)} failed: {_last_line(done)} (then: `{then}`)"
    hint = f"; to start it at boot without a login: `loginctl enable-linger {_user_name()}`" if where.user else ""
    return True, f"enabled and started: `swarm service status{user}` shows it{hint}"


def _systemd_running(where: Scope) -> bool:
    """systemd is this machine's init (``sd_booted``: /run/systemd/system) and systemctl is here."""
    return shutil.which("systemctl") is not None and Path("/run/systemd/system").is_dir()


def _systemctl(where: Scope, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            where.systemctl(*args), capture_output=True, text=True, timeout=SYSTEMCTL_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(where.systemctl(*args), 1, "", str(exc))


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = (done.stdout + "\n" + done.stderr).strip().splitlines()
    return lines[-1].strip() if lines else f"exit {done.returncode}"


def _write(path: Path, text: str, mode: int) -> None:
    """Write ``path`` whole (a temporary file renamed over it), ``mode`` from its creation on."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _swarm_path() -> str:
    """The absolute path of this `swarm` (the unit must not depend on a login's PATH)."""
    me = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    for candidate in (me, Path(sys.executable).parent / "swarm", shutil.which("swarm")):
        if candidate is not None and Path(candidate).name == "swarm" and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    raise _fail("cannot find the `swarm` executable to put in the unit: install the package (pip install .)")


def _user_name() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name
