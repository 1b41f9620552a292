"""``python -m swarmcompute.node``: run a daemon in the foreground (what `swarm join` starts).

The join token never travels on this command line or in this environment when `swarm join`
starts the daemon: the CLI writes it into a pipe and passes the read end as ``--token-fd N``
(see ``cli.app``). ``--token`` is still accepted for tests and scripts, with the warning that
``ps`` shows it.

Before anything else the daemon makes its state private and itself robust (``harden_process``):
umask 077 (its files 0600, directories 0700; jobs get the umask it was started with), the state
dir made 0700 and older 0644 files brought to 0600, the soft fd limit raised to the hard one,
and ``SWARM_TOKEN`` removed from its environment so that no job inherits it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import signal
import sys
from typing import Any, TextIO

from swarmcompute.errors import (
    EXIT_MUST_NOT_RUN,
    ConfigError,
    DuplicateNodeError,
    KeyOutdatedError,
    RaftStateLostError,
    SwarmError,
)
from swarmcompute.paths import DEFAULT_PORT, StatePaths

SECRET_ENV = ("SWARM_TOKEN",)
"""Environment variables that carry secrets: read by the CLI, never passed on to a job."""
MAX_NOFILE = 1 << 20
"""The soft fd limit the daemon raises itself to: the hard limit, at most this."""
TOKEN_READ_MAX = 4096


def _without_rich() -> None:
    """structlog imports rich (which typer installs) just to pretty-print tracebacks: ~10 MiB
    and 80 ms a daemon does not need. Marking it absent makes structlog use plain tracebacks."""
    sys.modules.setdefault("rich", None)  # type: ignore[arg-type]


def _few_malloc_arenas() -> None:
    """glibc gives each thread that allocates its own malloc arena; the daemon's few helper
    threads (zmq, asyncio.to_thread) would each pin megabytes of RSS. Two arenas are plenty."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune


def main(argv: list[str] | None = None) -> int:
    _without_rich()
    _few_malloc_arenas()
    parser = argparse.ArgumentParser(prog="python -m swarmcompute.node")
    parser.add_argument("--state-dir")
    parser.add_argument("--name")
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--token", help="the join token (visible in ps: `swarm join` uses --token-fd)")
    parser.add_argument("--token-fd", type=int, help="read the join token from this inherited fd, then close it")
    parser.add_argument("--peer", action="append", default=[])
    parser.add_argument("--new-cluster", action="store_true")
    parser.add_argument("--no-mdns", action="store_true")
    parser.add_argument("--voter-grace", type=float, default=30.0)
    parser.add_argument("--max-voters", type=int, default=5)
    parser.add_argument(
        "--keep-jobs", default="10000", help="finished jobs the cluster keeps, oldest removed first (default 10000)"
    )
    parser.add_argument(
        "--keep-history", default="7d", help="finished jobs are removed this long after they ended (default 7d)"
    )
    parser.add_argument(
        "--forget-after", default="1h", help="dead nodes (not voters) leave `swarm status` after this long (default 1h)"
    )
    parser.add_argument(
        "--gossip",
        choices=["lan", "local"],
        default="lan",
        help="gossip timings: lan (default) or local (one machine: faster failure detection)",
    )
    parser.add_argument(
        "--max-log-bytes",
        type=int,
        default=64 * 1024 * 1024,
        help="the bound on one attempt's log file (default 64 MiB); output beyond it is dropped and said",
    )
    parser.add_argument(
        "--http-port",
        help="serve the HTTP API, dashboard and /metrics on this port (default 7341; off: none)",
    )
    parser.add_argument("--metrics-token", help="require this Bearer token for /metrics and /health")
    parser.add_argument("--metrics-token-file", help="--metrics-token, read from this file (not seen in ps)")
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM), with --tls-key")
    parser.add_argument("--tls-key", help="the private key (PEM) of --tls-cert")
    parser.add_argument("--log-format", choices=["console", "json"], default="console")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--log-file", help="the file fds 1 and 2 point at, rotated past 10 MiB (detached mode)")
    parser.add_argument("--error-fd", type=int, help="an inherited pipe that what goes to stderr goes to too")
    args = parser.parse_args(argv)
    if args.error_fd is not None:
        sys.stderr = _AlsoToPipe(sys.stderr, args.error_fd)
    try:
        keep_jobs, keep_s = parse_retention(args.keep_jobs, args.keep_history)
        forget_after_s = parse_forget_after(args.forget_after)
        http_port = parse_http_port(args.http_port)
        if bool(args.tls_cert) != bool(args.tls_key):
            raise ConfigError("give --tls-cert and --tls-key together")
    except ConfigError as exc:
        print(f"swarm: {exc}", file=sys.stderr)
        return 2
    token = args.token
    if args.token_fd is not None:
        try:
            token = read_token_fd(args.token_fd)
        except ConfigError as exc:
            print(f"swarm: {exc}", file=sys.stderr)
            return 2
    metrics_token = args.metrics_token
    if args.metrics_token_file is not None:
        try:
            with open(args.metrics_token_file, encoding="utf-8") as f:
                metrics_token = f.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            print(f"swarm: cannot read --metrics-token-file {args.metrics_token_file}: {exc}", file=sys.stderr)
            return 2
        if not metrics_token:
            print(f"swarm: --metrics-token-file {args.metrics_token_file} is empty", file=sys.stderr)
            return 2
    return run_daemon(
        StatePaths.resolve(args.state_dir),
        name=args.name,
        bind=args.bind,
        port=args.port,
        token=token,
        peers=tuple(args.peer),
        new_cluster=args.new_cluster,
        mdns=not args.no_mdns,
        voter_grace_s=args.voter_grace,
        max_voters=args.max_voters,
        keep_jobs=keep_jobs,
        keep_s=keep_s,
        forget_after_s=forget_after_s,
        gossip=args.gossip,
        json_logs=args.log_format == "json",
        log_level=args.log_level,
        log_file=args.log_file,
        max_log_bytes=args.max_log_bytes,
        http_port=http_port,
        http_optional=args.http_port is None,
        metrics_token=metrics_token,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )


DEFAULT_HTTP_PORT = 7341


def parse_http_port(value: str | None) -> int | None:
    """``--http-port``: a port (0: any free one), ``off`` for none; unset is the default 7341."""
    if value is None:
        return DEFAULT_HTTP_PORT
    if value.strip().lower() in ("off", "none", "no", "false"):
        return None
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ConfigError(f"--http-port must be 0 to 65535 or off, got {value[:40]!r}")
    return port


def parse_retention(keep_jobs: str, keep_history: str) -> tuple[int, float]:
    """``--keep-jobs N`` (0 to a billion) and ``--keep-history 7d`` (see ``state.history``)."""
    from swarmcompute.units import parse_duration

    try:
        jobs = int(keep_jobs)
    except ValueError:
        jobs = -1
    if not 0 <= jobs <= 10**9:
        raise ConfigError(f"--keep-jobs must be a number of jobs from 0 to 1000000000, got {keep_jobs[:40]!r}")
    try:
        seconds = parse_duration(keep_history)
    except ConfigError as exc:
        raise ConfigError(f"--keep-history: {exc}") from None
    assert seconds is not None
    if seconds > 100 * 365 * 86400:
        raise ConfigError(f"--keep-history must be at most a century, got {keep_history[:40]!r}")
    return jobs, seconds


def parse_forget_after(value: str) -> float:
    """``--forget-after 1h``: how long a dead node stays in `swarm status` (``node.housekeeping``)."""
    from swarmcompute.units import parse_duration

    try:
        seconds = parse_duration(value)
    except ConfigError as exc:
        raise ConfigError(f"--forget-after: {exc}") from None
    if seconds is None or not 0 < seconds <= 100 * 365 * 86400:
        raise ConfigError(f"--forget-after must be a positive duration (30m, 1h, 7d), got {value[:40]!r}")
    return seconds


class _AlsoToPipe:
    """``sys.stderr`` that also writes to the pipe `swarm join --detach` reads while it waits for the
    daemon to be ready (``--error-fd``): why it could not start reaches the user when the log, on a
    full disk, could not take it (`swarm join` printed "its log is ...:" and nothing). The pipe is
    never waited on (non-blocking): once its reader is gone, or it is full, it is dropped. A
    stderr the disk refuses is no error of the daemon's either."""

    def __init__(self, stream: TextIO, fd: int) -> None:
        self._stream = stream
        self._fd: int | None = fd
        os.set_blocking(fd, False)

    def write(self, text: str) -> int:
        if self._fd is not None:
            try:
                os.write(self._fd, text.encode(errors="replace"))
            except OSError:  # its reader is gone (the CLI saw the daemon ready), or it is full
                os.close(self._fd)
                self._fd = None
        with contextlib.suppress(OSError):
            self._stream.write(text)
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError):
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def read_token_fd(fd: int) -> str:
    """Read the token the CLI wrote into a pipe (to EOF, bounded) and close the fd."""
    chunks: list[bytes] = []
    try:
        while sum(map(len, chunks)) <= TOKEN_READ_MAX:
            chunk = os.read(fd, TOKEN_READ_MAX)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError as exc:
        raise ConfigError(f"cannot read the join token from fd {fd}: {exc.strerror}") from None
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    token = b"".join(chunks).decode("ascii", "replace").strip()
    if not token:
        raise ConfigError(f"no join token on fd {fd}")
    return token


def harden_process(paths: StatePaths) -> dict[str, object]:
    """Private state, no secrets in the environment, all the fds the system allows.

    Returns what it did, for the daemon's first log line. Raises ``ConfigError`` if the
    state directory cannot be made private.
    """
    from swarmcompute.executor import spawn
    from swarmcompute.paths import secure_state_dir

    job_umask = os.umask(0o077)
    spawn.set_job_umask(job_umask)
    for name in SECRET_ENV:
        os.environ.pop(name, None)
    from swarmcompute.storage.disk import check_writable

    if paths.root.is_dir():
        check_writable(paths.root)  # read-only or unwritable: one line and exit 2, not a traceback
    changed = secure_state_dir(paths.root)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_NOFILE if hard == resource.RLIM_INFINITY else min(hard, MAX_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    return {"fd_limit": soft, "fd_limit_hard": hard, "modes_fixed": changed, "job_umask": f"{job_umask:03o}"}


def run_daemon(
    paths: StatePaths,
    *,
    name: str | None,
    bind: str,
    port: int,
    token: str | None = None,
    peers: tuple[str, ...] = (),
    new_cluster: bool = False,
    mdns: bool = True,
    voter_grace_s: float = 30.0,
    max_voters: int = 5,
    keep_jobs: int = 10_000,
    keep_s: float = 7 * 86400.0,
    forget_after_s: float = 3600.0,
    gossip: str = "lan",
    json_logs: bool = False,
    log_level: str = "info",
    log_file: str | None = None,
    max_log_bytes: int = 64 * 1024 * 1024,
    http_port: int | None = None,
    http_optional: bool = False,
    metrics_token: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> int:
    """Run one daemon until SIGTERM/SIGINT or `swarm leave`; return the exit status."""
    from pathlib import Path

    import structlog

    from swarmcompute.membership.config import GossipConfig
    from swarmcompute.node.daemon import Daemon, DaemonConfig
    from swarmcompute.node.logging_setup import RotatingStdio, configure

    configure(RotatingStdio(Path(log_file)) if log_file else None, json=json_logs, level=log_level)
    try:
        hardened = harden_process(paths)
    except SwarmError as exc:
        print(f"swarm: {exc}", file=sys.stderr)
        return 2
    structlog.get_logger(__name__).info("process_hardened", **hardened)
    daemon = Daemon(
        DaemonConfig(
            paths=paths,
            name=name,
            bind=bind,
            port=port,
            token=token,
            peers=peers,
            new_cluster=new_cluster,
            mdns=mdns,
            voter_grace_s=voter_grace_s,
            max_voters=max_voters,
            keep_jobs=keep_jobs,
            keep_s=keep_s,
            forget_after_s=forget_after_s,
            max_log_bytes=max_log_bytes,
            http_port=http_port,
            http_optional=http_optional,
            metrics_token=metrics_token,
            tls_cert=tls_cert,
            tls_key=tls_key,
            gossip=GossipConfig.local() if gossip == "local" else GossipConfig.lan(),
        )
    )

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, daemon.stop)
        await daemon.run()

    try:
        asyncio.run(serve())
    except SwarmError as exc:
        print(f"swarm: {exc}", file=sys.stderr)
        return EXIT_MUST_NOT_RUN if isinstance(exc, (DuplicateNodeError, RaftStateLostError, KeyOutdatedError)) else 2
    except OSError as exc:  # a write while starting (identity, key) on a full or broken disk
        from swarmcompute.storage.disk import describe

        print(
            f"swarm: cannot start: {describe(paths.root, exc, Path(exc.filename) if exc.filename else None)}",
            file=sys.stderr,
        )
        return 2
    except BaseExceptionGroup as group:  # an error inside the daemon's task group
        expected = group.subgroup(SwarmError)
        if expected is None:
            raise
        first = expected.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        print(f"swarm: {first}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
