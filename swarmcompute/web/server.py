"""uvicorn inside the daemon's loop, loaded at the first connection: bind first (so a busy port
or a certificate that does not load is a clear error at start, not uvicorn's ``sys.exit``), then,
once someone connects, import the HTTP stack and ``Server.serve`` that socket as a task; no
signal handlers of its own (the daemon's SIGTERM handler stays in charge), no logging
configuration, no proxy headers trusted.

Why at the first connection: most nodes serve HTTP (the default port) that nobody asks, and
uvicorn, h11, Starlette and the routes cost an idle daemon 4.8 MiB of RSS (measured: 44.4 MiB
with them, 39.6 without, a one-node daemon on a 2-core VM). The first request waits for them
(about 0.2 s); the connection itself waits in the listening socket's backlog meanwhile. The
dashboard's CPU chart (``load``) is sampled from the start all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import sys
import time
import types
from collections.abc import Iterator
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

import structlog

from swarmcompute.errors import ConfigError
from swarmcompute.web.load import LoadHistory

if TYPE_CHECKING:
    from swarmcompute.api.node_api import NodeAPI
    from swarmcompute.api.server import ControlServer

log = structlog.get_logger(__name__)

DEFAULT_HTTP_PORT = 7341
SHUTDOWN_GRACE_S = 1
"""Open streams (SSE) get this long to end when the daemon stops."""
MAX_CONNECTIONS = 256
"""Open connections (each follower of a log or the dashboard holds one); beyond it, 503."""


def _without_uvicorn_cli() -> None:
    """uvicorn's package ``__init__`` imports its command line (``uvicorn.main``, with click): about
    1 MiB of RSS a daemon never uses. A stand-in module takes its place, as the daemon does for rich
    (``node.__main__._without_rich``); only ``uvicorn.config`` and ``uvicorn.server`` are used here."""
    if "uvicorn" not in sys.modules:
        stand_in = types.ModuleType("uvicorn.main", "stands in for uvicorn's command line: not loaded")
        stand_in.Server = stand_in.main = stand_in.run = None  # type: ignore[attr-defined]
        sys.modules.setdefault("uvicorn.main", stand_in)


def dated(app: Any, headers: list[tuple[bytes, bytes]]) -> Any:
    """``app`` behind a keeper of the ``Date`` header (RFC 9110: an origin server with a clock
    sends one) in ``headers``, the list uvicorn adds to every response (``default_headers``).

    Why: uvicorn's own ``main_loop`` wakes every 100 ms, for ever, to refresh that header each
    second and to see whether it should stop: 10 timers and 20 turns of the daemon's loop a second
    once anyone connected (a Prometheus scrape, the dashboard). Here the header is refreshed when a
    request comes in a new second, in place (a request's response reads the list as it sends),
    and the server waits for its stop on an event. Measured (``benchmarks/idle.py``, HTTP loaded by
    its scrapes, 2 paired rounds of 20 s): per daemon of 3, 0.67-0.70 % of a core against
    0.97-1.00 % (the leader 0.90-1.00 against 1.25-1.30); a lone daemon 0.25-0.45 % against
    0.45-0.50; its loop's thread woke 3.4 times a second against 13.4."""
    second = -1

    async def keep_date(scope: Any, receive: Any, send: Any) -> None:
        nonlocal second
        now = time.time()
        if int(now) != second:
            second = int(now)
            headers[:] = [(b"date", formatdate(now, usegmt=True).encode())]
        await app(scope, receive, send)

    return keep_date


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
        self._control = control
        self._bind = bind
        self._port = port
        self._tls = (tls_cert, tls_key) if tls_cert else None
        self._metrics_token = metrics_token
        self._sock: socket.socket | None = None
        self.load = LoadHistory(daemon)
        self._app: Any = None
        self._server: Any = None
        """uvicorn's ``Server``, once the first connection loaded it."""
        self._waiting = False
        """The listening socket is watched for the first connection."""
        self._task: asyncio.Task[None] | None = None
        self._sampler: asyncio.Task[None] | None = None

    @property
    def loaded(self) -> bool:
        """Whether the HTTP stack is imported and serving (someone connected)."""
        return self._server is not None

    def bind(self) -> str:
        """Bind the listening socket; return ``http(s)://HOST:PORT``. Raises ``ConfigError``."""
        family = socket.AF_INET6 if ":" in self._bind else socket.AF_INET
        # TCP by name: asyncio sets TCP_NODELAY only on a socket whose proto says so (an accepted
        # one inherits it). Without it every answer on a kept-alive connection (a browser, a
        # Prometheus scrape, a REST session) waited 40 ms for the client's delayed ACK: uvicorn
        # writes a response's head and body apart (44 ms a request against 1 ms, measured here).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._bind, self._port))
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"cannot serve HTTP on {self._bind}:{self._port}: {exc.strerror}; "
                "pass --http-port with a free port, or --http-port off"
            ) from None
        if self._tls is not None:
            try:  # what uvicorn loads at the first connection: a certificate that does not load is said now
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(*self._tls)
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
        self._sampler = loop.create_task(self.load.run(), name="http-load-history")
        loop.add_reader(self._sock.fileno(), self._first_connection)
        self._waiting = True

    def _first_connection(self) -> None:
        """Someone connects: load the HTTP stack and serve (uvicorn accepts that connection)."""
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._sock.fileno())
        self._waiting = False
        try:
            self._server = self._load()
        except Exception:
            log.exception("http_server_failed")
            return
        log.info("http_stack_loaded")
        self._task = loop.create_task(self._serve(self._sock), name="http")

    def _load(self) -> Any:
        _without_uvicorn_cli()
        from uvicorn.config import Config
        from uvicorn.server import Server

        from swarmcompute.web.app import build_app

        class _Server(Server):
            stopping = asyncio.Event()

            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield  # the daemon's own handlers stop it, and it stops this server

            async def main_loop(self) -> None:
                await self.stopping.wait()  # see ``dated``: no 100 ms poll

        self._app = build_app(self._daemon, self._control, metrics_token=self._metrics_token, load=self.load)
        tls_cert, tls_key = self._tls or (None, None)
        headers: list[tuple[bytes, bytes]] = []
        config = Config(
            dated(self._app, headers),
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
            date_header=False,  # ``dated`` keeps it
        )
        server = _Server(config)
        server.server_state.default_headers = headers
        return server

    async def _serve(self, sock: socket.socket) -> None:
        try:
            await self._server.serve(sockets=[sock])
        except Exception:
            log.exception("http_server_failed")

    async def close(self) -> None:
        if self._waiting and self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._waiting = False
        if self._app is not None:
            self._app.state.api.closing.set()  # open streams end now, rather than at the grace's end
        if self._sampler is not None:
            self._sampler.cancel()
        if self._server is not None:
            self._server.should_exit = True
            self._server.stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, SHUTDOWN_GRACE_S + 2)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        if self._sock is not None:
            self._sock.close()
