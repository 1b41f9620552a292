"""The ZAP handler: who may finish a CurveZMQ handshake with this node.

libzmq asks the ZAP handler bound at ``inproc://zeromq.zap.01`` *in the same
context* about every CURVE client of a server socket. This one accepts a client
only if its long-term public key is the cluster public key. Because the CURVE
handshake makes the client prove it holds the secret key matching the public
key it presents, an accepted client holds the cluster secret.

Why a small own handler instead of ``zmq.auth.asyncio.AsyncioAuthenticator``:
the rule is one key comparison, and the refusal must be a structlog line with
the remote address, rate-limited; the pyzmq authenticator logs through stdlib
logging and its credentials callback never sees the address. Thirty lines of
RFC 27 are simpler than adapting it.

Most strangers never get here: a client without the cluster key does not know
the server's public key either, so its HELLO fails to decrypt and libzmq drops it
before asking ZAP. That case is logged from the socket monitor (``handshake.py``).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Any

import structlog
import zmq
import zmq.asyncio
from zmq.utils import z85

from swarmcompute.transport.ratelimit import LogLimiter

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_DOMAIN = b"swarm"

log = structlog.get_logger(__name__)


class ZapHandler:
    """Answers ZAP requests on ``context``: CURVE clients with the cluster key only."""

    def __init__(
        self,
        context: zmq.asyncio.Context,
        curve_public_key: bytes,
        limiter: LogLimiter,
        on_accepted: Callable[[str], None] | None = None,
    ) -> None:
        self._context = context
        self._on_accepted = on_accepted
        """Told the remote address of each client let in (the connection gate stops counting it)."""
        self._allowed = z85.decode(curve_public_key)
        self._limiter = limiter
        self._socket: zmq.asyncio.Socket | None = None
        self._task: asyncio.Task[None] | None = None
        self.refused = 0
        self.accepted = 0

    def rekey(self, curve_public_key: bytes, on_accepted: Callable[[str], None] | None) -> None:
        """From now on let in only clients of this key (the cluster key was rotated)."""
        self._allowed = z85.decode(curve_public_key)
        self._on_accepted = on_accepted

    def start(self) -> None:
        """Bind the ZAP endpoint now (before any server socket binds) and serve it in a task."""
        sock = self._context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(ZAP_ENDPOINT)
        self._socket = sock
        self._task = asyncio.get_running_loop().create_task(self._serve(), name="swarm-zap")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    async def _serve(self) -> None:
        assert self._socket is not None
        while True:
            try:
                frames = await self._socket.recv_multipart()
            except zmq.ZMQError as exc:  # the context is going away: nothing left to authenticate
                log.warning("zap_handler_stopped", error=str(exc))
                return
            try:
                reply = self._answer(frames)
            except Exception:  # a task boundary: never let one odd request end authentication
                log.exception("zap_request_failed")
                continue
            if reply is not None:
                try:
                    self._socket.send_multipart(reply, flags=zmq.NOBLOCK)
                except zmq.Again:
                    pass  # libzmq times the handshake out and the client is not let in

    def _answer(self, frames: list[bytes]) -> list[bytes] | None:
        # [requester, b"", version, request_id, domain, address, identity, mechanism, *credentials]
        if len(frames) < 8 or frames[1] != b"":
            return None
        requester, _, version, request_id, _domain, address, _identity, mechanism, *credentials = frames
        ok = (
            version == b"1.0"
            and mechanism == b"CURVE"
            and len(credentials) == 1
            and secrets.compare_digest(credentials[0], self._allowed)
        )
        if ok:
            self.accepted += 1
            if self._on_accepted is not None:
                self._on_accepted(_address(address))
            return [requester, b"", b"1.0", request_id, b"200", b"OK", b"swarm", b""]
        self.refused += 1
        reason = "the peer does not use CurveZMQ" if mechanism != b"CURVE" else "the peer's key is not the cluster key"
        self._limiter.warning(
            log,
            "peer_auth_refused",
            "zap",
            remote=_address(address),
            reason=reason,
        )
        return [requester, b"", b"1.0", request_id, b"400", b"not a member of this cluster", b"", b""]


def _address(raw: Any) -> str:
    """The remote IP as people write it (an IPv4 peer of a dual-stack socket is ``::ffff:a.b.c.d``)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return text.removeprefix("::ffff:") if "." in text else text
