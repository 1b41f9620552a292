"""uvicorn inside the daemon's loop: bind first (so a busy port is a clear error, not uvicorn's
``sys.exit``), then ``Server.serve`` as a task; no signal handlers of its own (the daemon's
SIGTERM handler stays in charge), no logging configuration, no proxy headers trusted.

Measured (2-core VM, idle one-node daemon): RSS 43.6 MiB serving HTTP, 38.5 MiB with
``--http-port off``; 1.4 MiB less than with uvicorn's command line (click) imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import types
from collections.abc import Iterator
from typing import TYPE_CHECKING

import structlog


def _without_uvicorn_cli() -> None:
    """uvicorn's package ``__init__`` imports its command line (``uvicorn.main``, with click): about
    1 MiB of RSS a daemon never uses. A stand-in module takes its place, as the daemon does for rich
    (``node.__main__._without_rich``); only ``uvicorn.config`` and ``uvicorn.server`` are used here."""
    if "uvicorn" not in sys.modules:
        stand_in = types.ModuleType("uvicorn.main", "stands in for uvicorn's command line: not loaded")
        stand_in.Server = stand_in.main = stand_in.run = None  # type: ignore[attr-defined]
        sys.modules.setdefault("uvicorn.main", stand_in)


_without_uvicorn_cli()

from uvicorn.config import Config  # noqa: E402
from uvicorn.server import Server  # noqa: E402

from swarmcompute.errors import ConfigError  # noqa: E402
from swarmcompute.web.app import build_app  # noqa: E402

if TYPE_CHECKING:
    from swarmcompute.api.node_api import NodeAPI
    from swarmcompute.api.server import ControlServer

log = structlog.get_logger(__name__)

DEFAULT_HTTP_PORT = 7341
SHUTDOWN_GRACE_S = 1
MAX_CONNECTIONS = 256
"""Open connections (each follower of a log or the dashboard holds one); beyond it, 503."""
"""Open streams (SSE) get this long to end when the daemon stops."""


class _Server(Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the daemon's own handlers stop it, and it stops this server


class WebServer:
    def __init__(
        self,
        daemon: NodeAPI,
        control: ControlServer,
        *,
        bind: str,
        port: int,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        metrics_token: str | None = None,
    ) -> None:
        self._daemon = daemon
        self._bind = bind
        self._port = port
        self._tls = (tls_cert, tls_key) if tls_cert else None
        self._sock: socket.socket | None = None
        app = self._app = build_app(daemon, control, metrics_token=metrics_token)
        self._config = Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            ws="none",
            http="h11",
            interface="asgi3",
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
            limit_concurrency=MAX_CONNECTIONS,
            ssl_certfile=tls_cert,
            ssl_keyfile=tls_key,
        )
        self._server = _Server(self._config)
        self._task: asyncio.Task[None] | None = None
        self._sampler: asyncio.Task[None] | None = None

    def bind(self) -> str:
        """Bind the listening socket; return ``http(s)://HOST:PORT``. Raises ``ConfigError``."""
        family = socket.AF_INET6 if ":" in self._bind else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._bind, self._port))
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"cannot serve HTTP on {self._bind}:{self._port}: {exc.strerror}; "
                "pass --http-port with a free port, or --http-port off"
            ) from None
        try:
            self._config.load()  # builds the TLS context: a certificate that does not load is said here
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            sock.close()
            raise ConfigError(f"cannot use --tls-cert/--tls-key: {exc}") from None
        sock.listen(128)
        sock.setblocking(False)
        self._sock = sock
        port = sock.getsockname()[1]
        host = self._bind if family == socket.AF_INET else f"[{self._bind}]"
        if self._bind in ("0.0.0.0", "::"):
            from swarmcompute.node.daemon import _advertise_host

            host = _advertise_host(self._bind)
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{host}:{port}"

    def start(self) -> None:
        if self._sock is None:
            raise ConfigError("WebServer.start before bind")
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._serve(self._sock), name="http")
        self._sampler = loop.create_task(self._app.state.api.load.run(), name="http-load-history")

    async def _serve(self, sock: socket.socket) -> None:
        try:
            await self._server.serve(sockets=[sock])
        except Exception:
            log.exception("http_server_failed")

    async def close(self) -> None:
        self._app.state.api.closing.set()  # open streams end now, rather than at the grace's end
        if self._sampler is not None:
            self._sampler.cancel()
        self._server.should_exit = True
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, SHUTDOWN_GRACE_S + 2)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        if self._sock is not None:
            self._sock.close()
