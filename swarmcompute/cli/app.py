"""The `swarm` commands (typer). Each one is a thin layer over ``Client``.

Errors: every ``SwarmError`` is printed as one line, ``swarm: <what to do>``,
and the command exits 2. `swarm run` is parsed in ``run_cmd`` (fast path).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer

from swarmcompute.cli import complete, help_style, read_cmds, rerun_cmd
from swarmcompute.client import Client
from swarmcompute.errors import DaemonAlreadyRunningError, DaemonNotRunningError, SwarmError
from swarmcompute.local_cluster import token_pipe
from swarmcompute.paths import DEFAULT_PORT, StatePaths
from swarmcompute.units import counted

help_style.apply()  # TEXT/INTEGER/PATH after options, nothing after flags (not typer's <str>, <bool>)

app = typer.Typer(
    name="swarm",
    rich_markup_mode="markdown",  # docstrings reflow into paragraphs instead of keeping source line breaks
    help="A peer-to-peer compute cluster for home labs: `swarm join` on each machine, then `swarm run -- CMD`.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

StateDir = Annotated[
    str | None,
    typer.Option("--state-dir", envvar="SWARM_STATE_DIR", help="The node's state directory.", show_default=False),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output (keys in the README).")]

F = TypeVar("F", bound=Callable[..., Any])
_T = TypeVar("_T")
JOIN_READY_TIMEOUT_S = 15.0
JOIN_MEMBER_WAIT_S = 10.0
"""`swarm join --token` waits this long for the cluster to take the node in (a refused token stops
the daemon within a second, and that is said instead)."""


def _fail(message: str, code: int = 2, *, lines: bool = False) -> typer.Exit:
    """One line on stderr (whatever a name or a daemon's message held) and exit ``code``;
    ``lines``: several lines (a log tail), each made safe for the terminal."""
    from swarmcompute.limits import printable

    text = "\n".join(printable(line) for line in message.split("\n")) if lines else printable(message)
    typer.echo(f"swarm: {text}", err=True)
    return typer.Exit(code)


def _print_version(wanted: bool) -> None:
    if wanted:
        from swarmcompute import __version__

        typer.echo(f"swarm {__version__}")
        raise typer.Exit()


@app.callback()
def _remote(
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            envvar="SWARM_URL",
            help="Talk to the cluster through this node's HTTP API (http://NODE:7341) instead of a local daemon.",
            show_default=False,
        ),
    ] = None,
    api_token: Annotated[
        str | None,
        typer.Option("--api-token", envvar="SWARM_API_TOKEN", help="The API token for --url.", show_default=False),
    ] = None,
    state_dir: Annotated[
        str | None,
        typer.Option(
            "--state-dir",
            help="The node's state directory, for every command (as each command's own --state-dir).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Global options: --url and --api-token reach every command through the Client (``Client(url=...)``);
    --state-dir before the command stands for the command's own (``swarm --state-dir D logs J``
    read "No such option")."""
    if state_dir:
        os.environ["SWARM_STATE_DIR"] = state_dir
    if url:
        os.environ["SWARM_URL"] = url
    if api_token:
        os.environ["SWARM_API_TOKEN"] = api_token


def _client(state_dir: str | None) -> Client:
    return _call(lambda: Client(state_dir))  # type: ignore[no-any-return]


def _here_only(state_dir: str | None, command: str) -> str:
    """What to add when a command that only a node's own daemon answers found none here while
    ``--url`` (``$SWARM_URL``) names a node: it does not go there."""
    if state_dir is not None or not os.environ.get("SWARM_URL"):
        return ""
    return f" (`swarm {command}` runs on the node itself, never over --url)"


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True))


@app.command()
def join(
    ctx: typer.Context,
    state_dir: StateDir = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            envvar="SWARM_CONFIG",
            is_eager=True,
            callback=_load_config,
            help="Read settings from this TOML file (default: ~/.config/swarmcompute/config.toml; "
            "root: /etc/swarmcompute/config.toml); flags and $SWARM_* win over it. `swarm config` shows them.",
            show_default=False,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="SWARM_TOKEN",
            help="Join the cluster this token names (`swarm token` prints it on a member). "
            "Visible in `ps` while this command runs: prefer --token-file or $SWARM_TOKEN.",
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option("--token-file", help="Read the join token from this file (- for stdin)."),
    ] = None,
    peer: Annotated[
        list[str] | None, typer.Option("--peer", help="HOST:PORT of a member, where mDNS does not reach (repeatable).")
    ] = None,
    new_cluster: Annotated[
        bool, typer.Option("--new-cluster", help="Create a new cluster even if one answers on this LAN.")
    ] = False,
    mdns: Annotated[bool, typer.Option("--mdns/--no-mdns", help="Find and announce nodes with mDNS.")] = True,
    name: Annotated[str | None, typer.Option(help="This node's name (default: the hostname).")] = None,
    label: Annotated[
        list[str] | None,
        typer.Option(
            "--label", help="K=V: a label `swarm run --constraint` matches (repeatable; replaces the node's)."
        ),
    ] = None,
    port: Annotated[int, typer.Option(help="Peer port (0: any free port).")] = DEFAULT_PORT,
    bind: Annotated[str, typer.Option(help="Address to bind for peer traffic.")] = "0.0.0.0",
    voter_grace: Annotated[
        float, typer.Option(help="Seconds a voter may be dead before a live node replaces it.")
    ] = 30.0,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Run in the background.")] = False,
    log_format: Annotated[str, typer.Option(help="console or json.")] = "console",
    log_level: Annotated[
        Literal["debug", "info", "warning", "error"],
        typer.Option("--log-level", envvar="SWARM_LOG_LEVEL", help="The daemon's least important log events."),
    ] = "info",
    http_port: Annotated[
        str | None,
        typer.Option(
            help="Port of the HTTP API, dashboard and /metrics (default 7341; off: none).", show_default=False
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="Serve HTTPS with this certificate (PEM); with --tls-key.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="The private key (PEM) of --tls-cert.")] = None,
    metrics_token: Annotated[
        str | None,
        typer.Option(
            help="Require this Bearer token for /metrics and /health (kept in the state dir, 0600).",
            show_default=False,
        ),
    ] = None,
    metrics_token_file: Annotated[
        Path | None, typer.Option("--metrics-token-file", help="Read --metrics-token from this file.")
    ] = None,
    keep_jobs: Annotated[
        str, typer.Option("--keep-jobs", help="Finished jobs kept, oldest removed first (the leader's applies).")
    ] = "10000",
    keep_history: Annotated[
        str, typer.Option("--keep-history", help="Finished jobs are removed this long after they ended.")
    ] = "7d",
    forget_after: Annotated[
        str,
        typer.Option("--forget-after", help="Dead nodes (not voters) leave `swarm status` after this long."),
    ] = "1h",
) -> None:
    """Start this machine's daemon: create a cluster, or join one with --token (in the foreground unless --detach).

    The token reaches the daemon through an inherited pipe (``--token-fd``), never its command
    line, environment or a file: ``ps`` and ``/proc/PID/environ`` of the daemon and its jobs
    never show it. In the foreground with a token the CLI execs the daemon that way, so its
    own command line (``--token T``) is gone too.
    """
    keep_jobs_n, keep_s, forget_after_s, http = checked_join_values(
        port,
        voter_grace,
        log_format,
        keep_jobs,
        keep_history,
        forget_after,
        http_port,
        ctx=ctx,
        bind=bind,
        name=name,
        labels=label,
        token=token,
        token_file=token_file,
    )
    paths = _call(lambda: StatePaths.resolve(state_dir))
    peers = tuple(peer or ())
    if token and token_file is not None and _from_config(ctx, "token_file"):
        token_file = None  # --token or $SWARM_TOKEN wins over the config file's token-file
    if token_file is not None:
        if token:
            raise _fail("give the token either with --token (or $SWARM_TOKEN) or with --token-file, not both")
        token = _read_token_file(token_file)
    if token is not None:
        from swarmcompute.transport.keys import ClusterKey

        token = token.strip()
        _call(lambda: ClusterKey.from_token(token))  # a typo is said here, not in the daemon's log
        if not mdns and not peers and not paths.cluster_key.exists():  # it would look for ever
            raise _fail(
                "with --no-mdns a first join has no way to find the cluster: give --peer HOST:7340, or drop --no-mdns"
            )
        from swarmcompute.node.joining import EARLIER_TOKEN_ACTION, is_earlier_token

        if detach and is_earlier_token(paths, token):  # in the foreground the daemon's log says it
            typer.echo(
                f"swarm: warning: the token is from before `swarm token --rotate`: {EARLIER_TOKEN_ACTION}", err=True
            )
    args = [
        "--state-dir",
        str(paths.root),
        "--bind",
        bind,
        "--port",
        str(port),
        "--log-format",
        log_format,
        "--log-level",
        log_level,
        "--voter-grace",
        str(voter_grace),
        "--keep-jobs",
        str(keep_jobs_n),
        "--keep-history",
        f"{keep_s}s",
        "--forget-after",
        f"{forget_after_s}s",
    ]
    if name:
        args += ["--name", name]
    for address in peers:
        args += ["--peer", address]
    if new_cluster:
        args += ["--new-cluster"]
    if not mdns:
        args += ["--no-mdns"]
    if http_port is not None:
        args += ["--http-port", "off" if http is None else str(http)]
    for flag, value in (("--tls-cert", tls_cert), ("--tls-key", tls_key)):
        if value:
            args += [flag, str(value)]
    if metrics_token_file is not None and not (metrics_token and _from_config(ctx, "metrics_token_file")):
        if metrics_token:
            raise _fail("give the metrics token either with --metrics-token or with --metrics-token-file, not both")
        metrics_token = _read_token_file(metrics_token_file)
    if metrics_token:  # to the daemon in a 0600 file of its state dir, never on its command line
        args += ["--metrics-token-file", str(_call(lambda: _save_metrics_token(paths, metrics_token)))]
    if bool(tls_cert) != bool(tls_key):
        raise _fail("give --tls-cert and --tls-key together")
    if label:
        _call(lambda: _save_join_labels(paths, label))
    if not detach:
        if token is not None:
            _exec_foreground(args, token)  # does not return
        from swarmcompute.node.__main__ import run_daemon

        raise typer.Exit(
            run_daemon(
                paths,
                name=name,
                bind=bind,
                port=port,
                peers=peers,
                new_cluster=new_cluster,
                mdns=mdns,
                voter_grace_s=voter_grace,
                keep_jobs=keep_jobs_n,
                keep_s=keep_s,
                forget_after_s=forget_after_s,
                json_logs=log_format == "json",
                log_level=log_level,
                http_port=http,
                http_optional=http_port is None,
                metrics_token=metrics_token,
                tls_cert=str(tls_cert) if tls_cert else None,
                tls_key=str(tls_key) if tls_key else None,
            )
        )
    client = Client(paths.root)
    if client.ping():
        raise _fail(str(DaemonAlreadyRunningError(str(paths.root), paths.read_pid())))
    from swarmcompute.paths import ensure_private_dir
    from swarmcompute.storage.disk import check_writable

    if paths.root.is_dir():
        _call(lambda: check_writable(paths.root))  # read-only or unwritable: one line, exit 2
    _call(lambda: ensure_private_dir(paths.root))
    args = [sys.executable, "-m", "swarmcompute.node", *args, "--log-file", str(paths.daemon_log)]
    created_before = paths.cluster_created.exists()  # a restart of the node that created it: no token shown
    token_fd = None
    if token is not None:
        token_fd = token_pipe(token)
        args += ["--token-fd", str(token_fd)]
    said, error_fd = os.pipe()  # what the daemon says on stderr while we wait (its log may be on a full disk)
    args += ["--error-fd", str(error_fd)]
    try:
        logfd = os.open(paths.daemon_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(logfd, 0o600)  # a log an older version created 0644
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=logfd,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=(error_fd,) if token_fd is None else (token_fd, error_fd),
                env=_daemon_environment(),
            )
        finally:
            os.close(logfd)
    finally:
        os.close(error_fd)
        if token_fd is not None:
            os.close(token_fd)
    try:
        _wait_ready(proc, paths, said, token=token, http_port=http_port, created_before=created_before)
    finally:
        os.close(said)  # the daemon's writes to it fail from now on, and it drops it


def _wait_ready(
    proc: subprocess.Popen[bytes],
    paths: StatePaths,
    said: int,
    *,
    token: str | None,
    http_port: str | None,
    created_before: bool,
) -> None:
    """Wait for the daemon ``proc`` that `swarm join --detach` started to answer, and say it is
    up; or say why it stopped first: its own line, read from its log or, where the log could not
    take it (a full disk), from the pipe ``said`` its stderr also goes to."""
    from swarmcompute.limits import printable

    client = Client(paths.root)
    os.set_blocking(said, False)
    stderr = b""
    deadline = time.monotonic() + JOIN_READY_TIMEOUT_S
    joined_by = 0.0
    while time.monotonic() < deadline:
        with contextlib.suppress(BlockingIOError):
            while len(stderr) < 1 << 20 and (chunk := os.read(said, 65536)):
                stderr += chunk
        if proc.poll() is not None:
            with contextlib.suppress(BlockingIOError):
                stderr += os.read(said, 65536)
            raise _fail(_startup_failure(paths, proc.returncode, stderr.decode(errors="replace")), lines=True)
        if client.ping(timeout_s=0.5):
            try:
                status = client.status()
            except SwarmError:  # it stopped between the ping and the question (a refused name, a
                continue  # refused token): the poll above then says why, in the daemon's own line
            me = next(n for n in status["nodes"] if n["id"] == status["node_id"])
            apart = not status["quorum"]["healthy"]  # a restart that has not reached its cluster (yet)
            if (token and me["role"] == "joining") or apart:  # not in the cluster yet: "up" would be a promise
                joined_by = joined_by or time.monotonic() + JOIN_MEMBER_WAIT_S
                if time.monotonic() < joined_by:
                    time.sleep(0.1)
                    continue
            typer.echo(
                f"node {me['name']} ({me['id']}) is up at {me['address']}, pid {proc.pid}; "
                f"cluster {status['cluster_id']}; state in {paths.root}"
            )
            if status.get("http"):
                typer.echo(f"dashboard, REST API and /metrics at {status['http']}")
            elif http_port is None:  # the default port, taken: said in its log only
                from swarmcompute.node.__main__ import DEFAULT_HTTP_PORT

                typer.echo(
                    f"no dashboard or HTTP API on this node: port {DEFAULT_HTTP_PORT} is taken (by another node"
                    " on this machine?); pass --http-port P to serve them on another",
                    err=True,
                )
            if token and me["role"] == "joining":
                typer.echo(
                    f"not in the cluster yet: no member answered within {JOIN_MEMBER_WAIT_S:g}s; it keeps "
                    "looking (`swarm status` shows when it joined)",
                    err=True,
                )
            elif apart:  # (it said "up" for a node that could not reach its cluster, and nothing more)
                typer.echo(
                    f"not in touch with its cluster after {JOIN_MEMBER_WAIT_S:g}s: "
                    f"{printable(status['quorum']['reason'])}; it keeps trying (`swarm status` shows when)",
                    err=True,
                )
            if not created_before and paths.cluster_created.exists() and not token:
                from swarmcompute.transport.keys import ClusterKey

                typer.echo(f"join other machines with:  swarm join --token {ClusterKey.load(paths.cluster_key).token}")
            return
        time.sleep(0.05)
    raise _fail(f"the daemon (pid {proc.pid}) did not answer within {JOIN_READY_TIMEOUT_S:g}s; see {paths.daemon_log}")


def _load_config(ctx: typer.Context, value: Path | None) -> Path | None:
    from swarmcompute.cli.config_cmd import load_config

    return load_config(ctx, value)


def _from_config(ctx: typer.Context, param: str) -> bool:
    source = ctx.get_parameter_source(param)
    return source is not None and source.name == "DEFAULT_MAP"


@app.command(
    "config",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    options_metavar="[JOIN OPTIONS] [--json]",
)
def config_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """The settings `swarm join` would use and where each came from: default, the config file,
    $SWARM_*, a flag. Takes every option of `swarm join` (`swarm join -h`), to show what it changes."""
    from swarmcompute.cli.config_cmd import show_config

    show_config(ctx, as_json)


def checked_join_values(
    port: int,
    voter_grace: float,
    log_format: str,
    keep_jobs: str,
    keep_history: str,
    forget_after: str,
    http_port: str | None,
    *,
    ctx: typer.Context | None = None,
    bind: str = "0.0.0.0",
    name: str | None = None,
    labels: list[str] | None = None,
    token: str | None = None,
    token_file: Path | None = None,
    warn_missing_token_file: bool = False,
) -> tuple[int, float, float, int | None]:
    """`swarm join`'s values checked, as join and `swarm config` both say it (exit 2, one line):
    ``--keep-jobs`` and ``--keep-history``, ``--forget-after`` and ``--http-port`` parsed, the
    name printable, the labels ``K=V``, the token file there (unless ``token`` wins over the
    file's). One check for both, before join does anything, so `swarm config` passes only what
    join takes, but for a missing token file (``warn_missing_token_file``): `swarm config` shows
    settings, often written before the token is fetched, so it warns where join refuses. A value from the config file (``ctx``: join's) is said as the file's key
    (``FILE: port``), not as a flag the user never gave: `port = 99999` in the file read
    `--port must be 0 to 65535`, and `labels = ["gpu"]` a bare `a label is KEY=VALUE`."""
    from swarmcompute.cli.config_cmd import FILE_META
    from swarmcompute.limits import printable

    def said(param: str) -> str:
        flag = "--" + param.replace("_", "-")
        if ctx is None or not _from_config(ctx, param):
            return flag
        return f"{ctx.meta[FILE_META][0]}: {flag[2:]}" + ("s" if param == "label" else "")  # the file's key

    def checked(params: tuple[str, ...], parse: Callable[[], _T]) -> _T:
        try:
            return parse()
        except SwarmError as exc:
            text = str(exc)
            for param in params:
                text = text.replace("--" + param.replace("_", "-"), said(param), 1)
            raise _fail(text) from None

    if not 0 <= port <= 65535:
        raise _fail(f"{said('port')} must be 0 to 65535, got {port}")
    import ipaddress

    try:
        ipaddress.ip_address(bind)
    except ValueError:  # the daemon said ZeroMQ's "No such device"
        raise _fail(
            f"{said('bind')} takes an IP address of this machine (0.0.0.0: every one), got {bind[:60]!r}"
        ) from None
    if not 0 < voter_grace <= 1e6:  # also false for nan
        raise _fail(f"{said('voter_grace')} must be a positive number of seconds, got {voter_grace}")
    if log_format not in ("console", "json"):
        raise _fail(f"{said('log_format')} must be console or json, got {log_format[:40]!r}")
    if name is not None and not name.isprintable():
        raise _fail(f"{said('name')} must be printable, without control characters or line breaks, got {name[:60]!r}")
    if labels:
        from swarmcompute.node.labels import parse_labels

        try:
            parse_labels(labels, removals=False)
        except SwarmError as exc:
            raise _fail(f"{said('label')}: {exc}") from None
    overridden = bool(token) and ctx is not None and _from_config(ctx, "token_file")  # as join: --token wins
    if token_file is not None and str(token_file) != "-" and not overridden and not token_file.is_file():
        why = "is not a file" if token_file.exists() else "does not exist"
        problem = f"{said('token_file')}: {token_file} {why}"
        if not warn_missing_token_file:
            raise _fail(f"{problem}: put the join token there (`swarm token` on a member) or fix the path")
        typer.echo(f"swarm: warning: {printable(problem)}: `swarm join` refuses it until the token is there", err=True)
    from swarmcompute.node.__main__ import parse_forget_after, parse_http_port, parse_retention

    keep_jobs_n, keep_s = checked(("keep_jobs", "keep_history"), lambda: parse_retention(keep_jobs, keep_history))
    forget_after_s = checked(("forget_after",), lambda: parse_forget_after(forget_after))
    http = checked(("http_port",), lambda: parse_http_port(http_port))
    return keep_jobs_n, keep_s, forget_after_s, http


def _save_metrics_token(paths: StatePaths, token: str) -> Path:
    from swarmcompute.paths import PRIVATE_FILE_MODE, ensure_private_dir

    ensure_private_dir(paths.root)
    path = paths.root / "metrics.token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return path


def _save_join_labels(paths: StatePaths, texts: list[str]) -> None:
    """`swarm join --label`: the node's labels, in its state dir before its daemon starts."""
    from swarmcompute.node.labels import parse_labels, write_labels
    from swarmcompute.paths import ensure_private_dir

    labels = parse_labels(texts, removals=False)
    ensure_private_dir(paths.root)
    write_labels(paths.labels_file, labels, time.time())


def _read_token_file(path: Path) -> str:
    """The token in ``path`` (``-``: stdin); a file other users can read gets a warning."""
    import stat

    if str(path) == "-":
        return sys.stdin.readline().strip()
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise _fail(f"cannot read the token file {path}: {exc.strerror}") from None
    if mode & 0o077:
        typer.echo(f"swarm: warning: the token file {path} is readable by other users: `chmod 600 {path}`", err=True)
    return text.strip()


def _daemon_environment() -> dict[str, str]:
    """This environment without the secrets the daemon must not carry (``SWARM_TOKEN``)."""
    from swarmcompute.executor.spawn import SECRET_ENV

    return {k: v for k, v in os.environ.items() if k not in SECRET_ENV}


def _exec_foreground(args: list[str], token: str) -> None:
    """Become the daemon (same pid, same terminal), with the token on a pipe, not in argv/env."""
    token_fd = token_pipe(token)
    argv = [sys.executable, "-m", "swarmcompute.node", *args, "--token-fd", str(token_fd)]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, argv, _daemon_environment())
    except OSError as exc:
        os.close(token_fd)
        raise _fail(f"cannot start the daemon ({sys.executable}): {exc.strerror}") from None


@app.command()
def token(
    state_dir: StateDir = None,
    rotate: Annotated[
        bool,
        typer.Option(
            "--rotate",
            help="Give the cluster a new key (a leaked token): every member switches, the old token is refused.",
        ),
    ] = False,
) -> None:
    """Print the join token of this node's cluster (treat it like a password)."""
    from swarmcompute.transport.keys import ClusterKey

    if rotate:  # printed here only: it never goes to a log
        typer.echo(_call(lambda: _client(state_dir).rotate_key()))
        return
    paths = StatePaths.resolve(state_dir)
    if not paths.cluster_key.exists():
        raise _fail(f"no cluster key in {paths.root}: run `swarm join` first{_here_only(state_dir, 'token')}")
    if not os.access(paths.cluster_key, os.R_OK):  # another user of a shared node: not [Errno 13]
        from swarmcompute.api.tokens import user_name

        owner = user_name(paths.cluster_key.stat().st_uid)
        how = "`sudo swarm token`" if owner == "root" else f"`swarm token` as {owner}"
        raise _fail(f"only {owner} (the daemon's user) may read the cluster's join token: run {how}")
    typer.echo(_call(lambda: ClusterKey.load(paths.cluster_key)).token)


@app.command()
def recover(
    state_dir: StateDir = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation (scripts).")] = False,
) -> None:
    """Lost quorum for good? Make the live voters the whole cluster. Unsafe if the missing ones are alive."""
    from swarmcompute.users import RUN_AS_SUBMITTERS, check_admin

    client = _client(state_dir)
    status = _call(client.status)
    # who may is said first, as the daemon would: a user was told `quorum is healthy`
    _call(lambda: check_admin(os.getuid(), "recover the cluster", shared=status.get("run_as") == RUN_AS_SUBMITTERS))
    quorum = status["quorum"]
    if quorum["healthy"]:
        raise _fail("quorum is healthy: nothing to recover (see `swarm status`)")
    if not quorum["missing"]:
        raise _fail(f"nothing to recover: {quorum.get('reason') or 'no voter is missing'} (see `swarm status`)")
    names = {n["id"]: n.get("name") or n["id"] for n in status["nodes"]}
    typer.echo(
        f"voters missing: {', '.join(names.get(v, v) for v in quorum['missing'])}. Recovering makes the live voters the whole "
        "configuration, in a new configuration epoch.\n"
        "Once the missing voters can reach this node again they cannot elect a leader any more: they "
        "rejoin as learners and drop whatever they committed that this node does not have. But if they "
        "are alive now, cut off from this node, and still a majority, they go on running jobs on their "
        "own until then: only do this when the missing machines are gone for good."
    )
    if not yes and not sys.stdin.isatty():  # a script or a pipe: a prompt there reads no answer and aborts
        raise _fail("not a terminal to confirm on: run `swarm recover --yes` to recover without asking")
    if not yes and not typer.confirm("recover now?", default=False):
        raise typer.Exit(1)
    voters = _call(client.recover)
    typer.echo(f"recovered: voters are now {', '.join(names.get(v, v) for v in voters)}")


@app.command()
def leave(
    state_dir: StateDir = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the daemon to stop.")] = 30.0,
) -> None:
    """Stop this machine's daemon gracefully (running jobs are stopped and re-run later)."""
    if not 0 < timeout <= 1e6:  # also false for nan
        raise _fail(f"--timeout must be a positive number of seconds, got {timeout}")
    paths = StatePaths.resolve(state_dir)
    client = Client(paths.root)
    pid = paths.read_pid()  # read now: the daemon removes the file as it stops
    try:
        client.shutdown()
    except SwarmError as exc:
        raise _fail(
            f"{exc}{_here_only(state_dir, 'leave') if isinstance(exc, DaemonNotRunningError) else ''}"
        ) from None
    deadline = time.monotonic() + timeout
    while not _lock_free(paths) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not _lock_free(paths):
        raise _fail(f"the daemon (pid {pid}) is still stopping after {timeout:g}s; check {paths.daemon_log}")
    typer.echo(f"left: the daemon in {paths.root} has stopped")


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
    cls=complete.RunCompletion,
)
def run(ctx: typer.Context) -> None:
    """Run a command on the cluster and stream its output: swarm run [OPTIONS] -- CMD [ARGS]..."""
    from swarmcompute.cli.run_cmd import main as run_main

    raise typer.Exit(run_main(ctx.args))


@app.command()
def status(state_dir: StateDir = None, as_json: JsonFlag = False) -> None:
    """The cluster: nodes, leader, resources and job counts."""
    _exit(read_cmds.status(state_dir, as_json))


NodeArg = Annotated[
    str, typer.Argument(help="The node: its name, id or a unique id prefix.", autocompletion=complete.nodes)
]


@app.command()
def label(
    node: NodeArg,
    labels: Annotated[list[str], typer.Argument(help="K=V to set, K= to remove (one or more).")],
    state_dir: StateDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Set or remove a node's labels (what `swarm run --constraint` matches); the node keeps them."""
    row = _call(lambda: _client(state_dir).label(node, *labels))
    if as_json:
        _print_json(row)
    else:
        typer.echo(f"{_node_shown(row)}: labels change committed; the node applies them")


@app.command()
def drain(
    node: NodeArg,
    wait: Annotated[bool, typer.Option("--wait", help="Return once the node runs nothing.")] = False,
    timeout: Annotated[str | None, typer.Option(help="With --wait: give up after this long (e.g. 10m).")] = None,
    state_dir: StateDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Give a node no new work; what runs there finishes, what it had queued goes elsewhere."""
    if timeout is not None and not wait:  # it was ignored: the drain returned at once
        raise _fail("--timeout is how long --wait waits: give --wait too, or leave --timeout out")
    client = _client(state_dir)
    row = _call(lambda: client.drain(node, wait=(timeout or True) if wait else False))
    if as_json:
        _print_json(row)
    elif wait:
        typer.echo(f"{_node_shown(row)}: drained, nothing runs there")
    else:
        typer.echo(f"{_node_shown(row)}: drained, {counted(row.get('running_jobs', 0), 'job')} still there")


@app.command()
def undrain(node: NodeArg, state_dir: StateDir = None, as_json: JsonFlag = False) -> None:
    """Put a drained node back in service."""
    row = _call(lambda: _client(state_dir).undrain(node))
    if as_json:
        _print_json(row)
    else:
        typer.echo(f"{_node_shown(row)}: back in service")


def _node_shown(row: dict[str, Any]) -> str:
    from swarmcompute.limits import printable

    return printable(str(row.get("name") or row.get("id")))


ElementsOpt = Annotated[
    bool,
    typer.Option(
        "--elements", help="Each element of an array and rank of a gang on its own line (else one line for each)."
    ),
]


LimitOpt = Annotated[
    int,
    typer.Option(
        "--limit",
        "-n",
        help="How many lines, newest first (an array or a gang is one; with --elements or --json, how many jobs).",
    ),
]
StateOpt = Annotated[
    list[str] | None, typer.Option("--state", help="Only jobs in this state, or held ones (repeatable).")
]


NameOpt = Annotated[
    str,
    typer.Option("--name", help="Only jobs whose name this shell pattern matches (sweep-*; without *?[: that name)."),
]
NodeOpt = Annotated[str, typer.Option("--node", help="Only jobs whose current attempt is on this node (name or id).")]
UserOpt = Annotated[str, typer.Option("--user", help="Only jobs this user submitted.")]


@app.command()
def jobs(
    state_dir: StateDir = None,
    as_json: JsonFlag = False,
    limit: LimitOpt = 50,
    state: StateOpt = None,
    elements: ElementsOpt = False,
    name: NameOpt = "",
    node: NodeOpt = "",
    user: UserOpt = "",
) -> None:
    """Recent jobs, newest first (an array as one line with its counts)."""
    _exit(read_cmds.jobs(state_dir, as_json, limit, state, elements, name, node, user))


@app.command("ps")
def ps(
    state_dir: StateDir = None,
    as_json: JsonFlag = False,
    limit: LimitOpt = 50,
    state: StateOpt = None,
    elements: ElementsOpt = False,
    name: NameOpt = "",
    node: NodeOpt = "",
    user: UserOpt = "",
) -> None:
    """Alias of `swarm jobs`."""
    _exit(read_cmds.jobs(state_dir, as_json, limit, state, elements, name, node, user))


@app.command()
def show(
    job: Annotated[str, typer.Argument(autocompletion=complete.jobs)],
    state_dir: StateDir = None,
    as_json: JsonFlag = False,
) -> None:
    """One job, with the reason it is in its state. JOB: an id, a unique prefix or a name."""
    _exit(read_cmds.show(state_dir, job, as_json))


@app.command()
def logs(
    job: Annotated[str, typer.Argument(autocompletion=complete.jobs)],
    state_dir: StateDir = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")] = False,
    attempt: Annotated[int | None, typer.Option(help="Show this attempt (default: the latest).")] = None,
    raw_path: Annotated[
        bool, typer.Option("--raw-path", help="Print where this node keeps the attempt's output files (cat, less).")
    ] = False,
    rank: Annotated[
        int | None, typer.Option("--rank", help="Of a gang (swarm run --ranks): rank R's output (JOB: the gang).")
    ] = None,
) -> None:
    """Print a job's output (stdout to stdout, stderr to stderr); exit 3 if some of it is missing."""
    _exit(read_cmds.logs(state_dir, job, follow, attempt, raw_path, rank))


@app.command()
def cancel(
    jobs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Job ids, prefixes or names (or select them with the options).", autocompletion=complete.open_jobs
        ),
    ] = None,
    state_dir: StateDir = None,
    state: Annotated[
        list[str] | None, typer.Option("--state", help="Only open jobs in this state (repeatable).")
    ] = None,
    name: NameOpt = "",
    node: NodeOpt = "",
    user: UserOpt = "",
    every: Annotated[bool, typer.Option("--all", help="Every open job of yours (every user's, for root).")] = False,
) -> None:
    """Cancel jobs; their processes are stopped (SIGTERM, then SIGKILL). Without ids: the open jobs
    of yours (every user's for root) that --state, --name, --node and --user select, or --all."""
    _exit(read_cmds.cancel(state_dir, jobs or (), state, name, node, user, every))


PendingJobsArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Job ids, prefixes or names; an array's id: its elements; a gang's id: its ranks (or select them).",
        autocompletion=complete.pending_jobs,
    ),
]


@app.command()
def hold(
    jobs: PendingJobsArg = None,
    state_dir: StateDir = None,
    name: NameOpt = "",
    user: UserOpt = "",
    every: Annotated[bool, typer.Option("--all", help="Every pending job of yours (every user's, for root).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Hold pending jobs: they wait, never started, until swarm release (scontrol hold). Without
    ids: the pending jobs of yours (every user's for root) that --name and --user select, or --all."""
    _exit(_held(True, state_dir, jobs or (), name, user, every, as_json))


@app.command()
def release(
    jobs: PendingJobsArg = None,
    state_dir: StateDir = None,
    name: NameOpt = "",
    user: UserOpt = "",
    every: Annotated[bool, typer.Option("--all", help="Every held job of yours (every user's, for root).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Release held jobs: they are placed as any pending job. Without ids: the held jobs of yours
    (every user's for root) that --name and --user select, or --all."""
    _exit(_held(False, state_dir, jobs or (), name, user, every, as_json))


def _is(state: str) -> str:
    """ "is running", as a hold, update or requeue answer says a job's state; a pending job it
    left as it was is a gang rank that exited 0 while the other ranks of its gang run."""
    return "exited 0 and waits for the other ranks of its gang" if state == "pending" else f"is {state}"


def _named_or_selected(jobs: Sequence[str] | None, selecting: object, verb: str) -> None:
    """`swarm hold`, `release`, `update`, `requeue`, `signal`: job ids or a selection (--name,
    --user, --all), one of the two; else one line, exit 2."""
    if jobs and selecting:
        raise _fail("give job ids, or select jobs with --name, --user or --all: not both")
    if not jobs and not selecting:
        raise _fail(f"name the jobs to {verb}, or select them with --name, --user or --all")


def _held(
    held: bool, state_dir: str | None, jobs: Sequence[str], name: str, user: str, every: bool, as_json: bool
) -> int:
    """`swarm hold` / `swarm release`: a line a job; exit 1 if one could not be (it was not pending)."""
    from swarmcompute.limits import printable

    verb = "hold" if held else "release"
    _named_or_selected(jobs, name or user or every, verb)
    client = _client(state_dir)
    call = client.hold if held else client.release
    records = _call(lambda: call(*jobs, name=name, user=user, every=every))
    if as_json:
        _print_json(records)
    elif not records:
        which = "pending job of yours that is not held" if held else "held job of yours"
        typer.echo(f"swarm: no {which} matches: nothing to {verb}", err=True)
    for r in [] if as_json else records:
        job_id = printable(str(r["id"]))
        if r["outcome"] == "not_pending":
            typer.echo(f"{job_id} {_is(r['state'])}: only a pending job is {'held' if held else 'released'}", err=True)
        elif r["outcome"] == "already":
            typer.echo(f"{job_id} was {'already held' if held else 'not held'}")
        else:
            typer.echo(f"{job_id} {r['outcome']}")
    return 1 if any(r["outcome"] == "not_pending" for r in records) else 0


@app.command()
def update(
    jobs: PendingJobsArg = None,
    state_dir: StateDir = None,
    priority: Annotated[int | None, typer.Option(help="Its new priority (higher runs first).")] = None,
    cpus: Annotated[float | None, typer.Option(help="CPUs it needs.")] = None,
    mem: Annotated[str | None, typer.Option(help="Memory it needs, e.g. 4G.")] = None,
    gpus: Annotated[int | None, typer.Option(help="GPUs it needs.")] = None,
    gpu_mem: Annotated[str | None, typer.Option("--gpu-mem", help="Memory each of its GPUs has, e.g. 10G.")] = None,
    constraint: Annotated[
        list[str] | None, typer.Option(help="Run only on nodes labelled K=V (K!=V: not): replaces its constraints.")
    ] = None,
    no_constraints: Annotated[bool, typer.Option("--no-constraints", help="Drop its constraints.")] = False,
    node: Annotated[str | None, typer.Option(help="Pin it to this node (name or id).")] = None,
    any_node: Annotated[bool, typer.Option("--any-node", help="Unpin it: any node may run it.")] = False,
    timeout: Annotated[str | None, typer.Option(help="Its time limit, e.g. 2h (0 or none: no limit).")] = None,
    retries: Annotated[int | None, typer.Option(help="How often it is run again after a failure.")] = None,
    begin: Annotated[str | None, typer.Option(help="Start it no sooner than this (as swarm run --begin; now).")] = None,
    preemptible: Annotated[
        bool | None,
        typer.Option(
            "--preemptible/--no-preemptible",
            help="A job of a higher priority may stop it, to run first (as swarm run --preemptible), or no longer.",
            show_default=False,
        ),
    ] = None,
    name: NameOpt = "",
    user: UserOpt = "",
    every: Annotated[bool, typer.Option("--all", help="Every pending job of yours (every user's, for root).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Change pending jobs (scontrol update): priority, size, where they may run, time limit,
    retries, start time, whether they may be preempted; and the time limit, retries and
    preemptibility of running ones. A job keeps its place in
    line within its priority; a held one stays held.
    Without ids: the pending jobs of yours (every user's for root) that --name and --user select, or --all."""
    from swarmcompute.limits import printable

    _named_or_selected(jobs, name or user or every, "update")
    if constraint and no_constraints:
        raise _fail("give --constraint or --no-constraints, not both")
    if node is not None and any_node:
        raise _fail("give --node or --any-node, not both")
    changes = {
        "priority": priority, "cpus": cpus, "mem": mem, "gpus": gpus, "gpu_mem": gpu_mem,
        "constraints": () if no_constraints else constraint or None, "node": "" if any_node else node,
        "timeout": timeout, "retries": retries, "begin": begin, "preemptible": preemptible,
    }  # fmt: skip
    if all(v is None for v in changes.values()):
        raise _fail(
            "say what to change: --priority, --cpus, --mem, --gpus, --gpu-mem, --constraint,"
            " --no-constraints, --node, --any-node, --timeout, --retries, --begin, --preemptible or --no-preemptible"
        )
    client = _client(state_dir)
    records = _call(lambda: client.update(*(jobs or ()), name=name, user=user, every=every, **changes))
    if as_json:
        _print_json(records)
    elif not records:
        typer.echo("swarm: no pending job of yours matches: nothing to update", err=True)
    for r in [] if as_json else records:
        job_id = printable(str(r["id"]))
        if r["outcome"] == "not_pending" and r["state"] in ("assigned", "running", "pending"):
            typer.echo(
                f"{job_id} {_is(r['state'])}: a placed job takes only --timeout, --retries and --preemptible",
                err=True,
            )
        elif r["outcome"] == "not_pending":
            typer.echo(f"{job_id} is {r['state']}: it has ended", err=True)
        elif r["outcome"] == "unchanged":
            typer.echo(f"{job_id} unchanged: it already was so")
        else:
            typer.echo(f"{job_id} updated")
    _exit(1 if any(r["outcome"] == "not_pending" for r in records) else 0)


@app.command()
def requeue(
    jobs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Job ids, prefixes or names; an array's id: its elements; a gang's id: its ranks (or select them).",
            autocompletion=complete.open_jobs,
        ),
    ] = None,
    state_dir: StateDir = None,
    hold: Annotated[
        bool, typer.Option("--hold", help="Hold it once back: it waits until swarm release (scontrol requeuehold).")
    ] = False,
    name: NameOpt = "",
    user: UserOpt = "",
    every: Annotated[
        bool, typer.Option("--all", help="Every assigned and running job of yours (every user's, for root).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Send placed jobs back to be placed again (scontrol requeue): each one's attempt is stopped as
    lost, not failed, and it runs again, once, wherever there is room (--hold: once released).
    Without ids: the assigned and running jobs of yours (every user's for root) that --name and
    --user select, or --all."""
    from swarmcompute.limits import printable

    _named_or_selected(jobs, name or user or every, "requeue")
    client = _client(state_dir)
    records = _call(lambda: client.requeue(*(jobs or ()), hold=hold, name=name, user=user, every=every))
    if as_json:
        _print_json(records)
    elif not records:
        typer.echo("swarm: no assigned or running job of yours matches: nothing to requeue", err=True)
    for r in [] if as_json else records:
        job_id = printable(str(r["id"]))
        if r["outcome"] == "not_placed" and r["state"] == "pending":
            typer.echo(f"{job_id} is pending: only an assigned or running job is requeued", err=True)
        elif r["outcome"] == "not_placed":
            typer.echo(f"{job_id} is {r['state']}: it has ended (swarm rerun runs it again)", err=True)
        elif r["outcome"] == "already":
            typer.echo(f"{job_id} was already stopping, to run again")
        elif r["outcome"] == "held":  # a pending element of an array requeued --hold: it waits with it
            typer.echo(f"{job_id} held: it waits with its array until swarm release")
        else:  # a pending one's attempt ended already (a gang rank that exited 0 runs again with its gang)
            stops = "ended" if r["state"] == "pending" else "stops"
            then = "it waits, held, until swarm release" if hold else "it runs again"
            typer.echo(f"{job_id} requeued: attempt {r['attempt']} {stops}, and {then}")
    _exit(1 if any(r["outcome"] == "not_placed" for r in records) else 0)


@app.command()
def signal(
    jobs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Job ids, prefixes or names; an array's id: its elements; a gang's id: its ranks (or select them).",
            autocompletion=complete.running_jobs,
        ),
    ] = None,
    state_dir: StateDir = None,
    signal: Annotated[
        str, typer.Option("--signal", "-s", help="The signal: a name as kill -l lists them (USR1, HUP) or a number.")
    ] = "TERM",
    group: Annotated[
        bool, typer.Option("--group", help="To the job's whole process group, not its main process alone.")
    ] = False,
    name: NameOpt = "",
    user: UserOpt = "",
    every: Annotated[bool, typer.Option("--all", help="Every running job of yours (every user's, for root).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Send a signal to running jobs (docker kill -s, scancel --signal): their node sends it to the
    job's main process (--group: its whole process group; a Docker job's: its container's main
    process), e.g. USR1 to make it checkpoint. Without ids: the running jobs of yours (every user's
    for root) that --name and --user select, or --all."""
    from swarmcompute.limits import MAX_SIGNALS, printable, signal_name, signal_number

    _named_or_selected(jobs, name or user or every, "signal")
    try:
        signum = signal_number(signal)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    client = _client(state_dir)
    records = _call(lambda: client.signal(*(jobs or ()), signal=signum, group=group, name=name, user=user, every=every))
    if as_json:
        _print_json(records)
    elif not records:
        typer.echo("swarm: no running job of yours matches: nothing to signal", err=True)
    for r in [] if as_json else records:
        job_id = printable(str(r["id"]))
        if r["outcome"] == "not_running":
            typer.echo(f"{job_id} is {r['state']}: only a running job takes a signal", err=True)
        elif r["outcome"] == "too_many":
            typer.echo(f"{job_id} was sent {MAX_SIGNALS} signals already this attempt: cancel it instead", err=True)
        else:
            typer.echo(f"{job_id} sent SIG{signal_name(signum)} (attempt {r['attempt']})")
    _exit(1 if any(r["outcome"] != "signalled" for r in records) else 0)


@app.command()
def wait(
    jobs: Annotated[list[str], typer.Argument(help="Job ids, prefixes or names.", autocompletion=complete.jobs)],
    state_dir: StateDir = None,
    timeout: Annotated[str | None, typer.Option(help="Give up after this long (e.g. 10m).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Wait for jobs to end; exit 0 only if all succeeded."""
    _exit(read_cmds.wait(state_dir, jobs, timeout, as_json))


@app.command()
def rerun(
    job: Annotated[str, typer.Argument(autocompletion=complete.ended_jobs)],
    state_dir: StateDir = None,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Print the new job id and return at once.")] = False,
    every: Annotated[
        bool, typer.Option("--all", help="An array: rerun every element, not only those that did not succeed.")
    ] = False,
    job_id: Annotated[
        str | None, typer.Option("--id", help="Choose the new job id (asking again with it is a no-op).")
    ] = None,
) -> None:
    """Run an ended job again as a new job with its command and options (its shipped files and
    stdin too), streamed as swarm run does; an array id: its elements that did not succeed, as a
    new array; a gang id: a new gang of its shape."""
    _exit(rerun_cmd.rerun(state_dir, job, detach, every, job_id))


def _exit(status: int) -> None:
    """The end of a command whose body (``cli.read_cmds``) returned its exit status."""
    if status:
        raise typer.Exit(status)


api_token_app = typer.Typer(
    rich_markup_mode="markdown",
    help="HTTP API tokens: each acts as the user who created it (`Authorization: Bearer TOKEN`).",
    no_args_is_help=True,
)
app.add_typer(api_token_app, name="api-token")


@api_token_app.command("create")
def api_token_create(
    name: Annotated[str, typer.Argument(help="A name for the token (letters, digits, . _ -).")],
    state_dir: StateDir = None,
    read_only: Annotated[bool, typer.Option("--read-only", help="May read, never submit or cancel.")] = False,
    expires: Annotated[str | None, typer.Option(help="Expire after this long (e.g. 30d, 12h).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Make a token for the HTTP API; it is printed once, as the last line, and stored only hashed."""
    record = _call(lambda: _client(state_dir).create_api_token(name, read_only=read_only, expires=expires))
    if as_json:
        _print_json(record)
        return
    scope = "read-only" if record["read_only"] else "read-write"
    until = "never expires" if record["expires_at"] is None else f"expires {_when(record['expires_at'])}"
    typer.echo(f"API token {record['name']} ({scope}, acts as {record['user']}, {until}); keep it secret:", err=True)
    typer.echo(record["token"])


@api_token_app.command("list")
def api_token_list(state_dir: StateDir = None, as_json: JsonFlag = False) -> None:
    """The cluster's API tokens (names and scopes; never the tokens)."""
    records = _call(lambda: _client(state_dir).api_tokens())
    if as_json:
        _print_json(records)
        return
    if not records:
        typer.echo("no API tokens: `swarm api-token create NAME` makes one", err=True)
        return
    from swarmcompute.cli.format import table

    rows = [
        (
            r["name"],
            "read-only" if r["read_only"] else "read-write",
            r["user"],
            _when(r["created_at"]),
            "never" if r["expires_at"] is None else _when(r["expires_at"]) + (" (expired)" if r["expired"] else ""),
        )
        for r in records
    ]
    typer.echo(table(["NAME", "SCOPE", "ACTS AS", "CREATED", "EXPIRES"], rows))


@api_token_app.command("revoke")
def api_token_revoke(
    name: Annotated[str, typer.Argument(help="The token's name.")], state_dir: StateDir = None
) -> None:
    """Revoke a token on every node."""
    _call(lambda: _client(state_dir).revoke_api_token(name))
    typer.echo(f"API token {name} revoked")


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


policy_app = typer.Typer(
    rich_markup_mode="markdown",
    help="The cluster's command policy: which commands jobs may run (checked at submission and on the node).",
    no_args_is_help=True,
)
app.add_typer(policy_app, name="policy")

from swarmcompute.cli import demo as _demo  # noqa: E402  (registration: `swarm demo`, `swarm service`)
from swarmcompute.cli import service as _service  # noqa: E402

app.command("demo")(_demo.demo)
app.add_typer(_service.service_app, name="service")


@policy_app.command("show")
def policy_show(state_dir: StateDir = None) -> None:
    """Print the command policy as TOML: save it, edit it, `swarm policy set` it."""
    typer.echo(_call(lambda: _client(state_dir).policy()), nl=False)


@policy_app.command("set")
def policy_set(
    file: Annotated[str, typer.Argument(help="A policy file (TOML, as `swarm policy show` prints it).")],
    state_dir: StateDir = None,
) -> None:
    """Replace the command policy on the whole cluster (only root, on a node shared by every user)."""
    from swarmcompute.policy import read_policy_file

    text = _call(lambda: read_policy_file(file))
    _call(lambda: _client(state_dir).set_policy(text))
    typer.echo("swarm: command policy set on the whole cluster (`swarm policy show` prints it)", err=True)


@app.command("cp")
def cp(
    source: Annotated[str, typer.Argument(help="JOB:PATH: a file or directory the job left ('JOB:' for all).")],
    dest: Annotated[
        str | None,
        typer.Argument(
            help="Where to copy it; - for stdout (a directory as a tar archive). Without it: list what the job left."
        ),
    ] = None,
    attempt: Annotated[
        int | None, typer.Option("--attempt", min=1, help="That attempt's files (default: the latest that ran).")
    ] = None,
    state_dir: StateDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Copy a file the job left in its staged directory (jobs run with --upload, --workdir or a
    shipped script) to DEST, as docker cp does; asked on any node, also after the job ended."""
    from swarmcompute.units import format_size

    job, colon, path = source.partition(":")
    if not colon or not job:
        raise _fail(f"swarm cp takes JOB:PATH, got {source[:80]!r} (e.g. `swarm cp myjob:out.txt .`)")
    client = _client(state_dir)
    if dest is None:
        listing = _call(lambda: client.files(job, attempt))
        if as_json:
            _print_json(listing)
            return
        for f in listing["files"]:
            typer.echo(f"{format_size(f['size']):>8}  {f['path']}")
        _say_not_kept(listing["dropped"], then_exit=False)
        return
    from swarmcompute.api.lean_client import job_ref
    from swarmcompute.files import transfer

    ref = _call(lambda: job_ref(job))
    if dest == "-":  # to stdout, as docker cp: a file's bytes, a directory as a tar archive
        if as_json:
            raise _fail("--json lists the files written: it does not go with `-` (stdout) as DEST")
        try:
            lost = _call(lambda: transfer.fetch_to(client, ref, path, sys.stdout.buffer, attempt))
        except BrokenPipeError:
            raise typer.Exit(141) from None
        _say_not_kept(lost)
        return
    written, lost = _call(lambda: transfer.fetch_all(client, ref, path, dest, attempt))
    if as_json:
        _print_json({"written": written})
    _say_not_kept(lost)


def _say_not_kept(lost: list[dict[str, Any]], *, then_exit: bool = True) -> None:
    """Each file a job wrote that its node did not keep (over the cap, a link) in a `swarm: not
    kept: PATH: WHY` line, names made safe (the job chose them, escape sequences included); after
    `swarm cp JOB:DIR` copied what was kept (``then_exit``), exit 3, as `swarm run --download`
    does: the rest was copied without a word, as if that was all of it."""
    from swarmcompute.limits import printable

    for d in lost:
        typer.echo(f"swarm: not kept: {printable(d['path'])}: {printable(d['why'])}", err=True)
    if lost and then_exit:
        raise typer.Exit(3)


def _call(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except SwarmError as exc:  # DaemonNotRunningError included: its message says what to do
        raise _fail(str(exc)) from None


def _lock_free(paths: StatePaths) -> bool:
    """True once no daemon holds the state-dir lock (it is released when the process ends)."""
    import fcntl

    try:
        fd = os.open(paths.lock_file, os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def _startup_failure(paths: StatePaths, status: int, stderr: str = "") -> str:
    """The daemon's own one-line error when it printed one (in its log, or on ``stderr``, which
    the CLI read through a pipe: a log on a full disk holds nothing), else the tail of its log."""
    tail = _log_tail(paths.daemon_log)
    errors = [line for line in (tail + "\n" + stderr).splitlines() if line.startswith("swarm: ")]
    if errors:
        return errors[-1][len("swarm: ") :]
    return f"the daemon exited with status {status} before it was ready; its log is {paths.daemon_log}:\n{tail}"


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


from swarmcompute.cli import cluster_cmds as _cluster_cmds  # noqa: E402  (registration: nodes, forget, prune)

app.command("nodes")(_cluster_cmds.nodes)
app.command("forget")(_cluster_cmds.forget)
app.command("prune")(_cluster_cmds.prune)
