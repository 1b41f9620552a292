"""Log handshakes that the peer socket refused before ZAP was asked.

A process without the cluster key fails the CURVE handshake at its first
message (it cannot encrypt to the cluster public key), and a plaintext ZMTP
client or a random TCP client fails the greeting; libzmq drops those
connections without asking ZAP. The socket monitor is the only place they show
up, so this turns its events into rate-limited ``peer_auth_refused`` /
``peer_handshake_failed`` lines. The monitor API available (v1) names the local
endpoint only, not the remote address.
"""

from __future__ import annotations

import asyncio
import struct

import structlog
import zmq
import zmq.asyncio

from swarmcompute.transport.ratelimit import LogLimiter

log = structlog.get_logger(__name__)

WATCHED_EVENTS = (
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)

_AUTH_REASONS: dict[int, str] = {
    int(zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC): "the peer does not have this cluster's key",
    int(zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH): "the peer does not use CurveZMQ",
}


class HandshakeWatch:
    """Reads the monitor of one server socket and logs failed handshakes (bounded)."""

    def __init__(self, sock: zmq.asyncio.Socket, limiter: LogLimiter) -> None:
        self._sock = sock
        self._limiter = limiter
        self._monitor: zmq.asyncio.Socket | None = None
        self._task: asyncio.Task[None] | None = None
        self.refused = 0
        self.failed = 0

    def start(self) -> None:
        self._monitor = self._sock.get_monitor_socket(WATCHED_EVENTS)
        self._monitor.setsockopt(zmq.LINGER, 0)
        self._task = asyncio.get_running_loop().create_task(self._serve(), name="swarm-handshake-watch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._monitor is not None:
            try:
                self._sock.disable_monitor()
            except zmq.ZMQError:
                pass
            self._monitor.close(linger=0)
            self._monitor = None

    async def _serve(self) -> None:
        assert self._monitor is not None
        while True:
            try:
                frames = await self._monitor.recv_multipart()
            except zmq.ZMQError:  # the monitored socket is closing
                return
            if len(frames) != 2 or len(frames[0]) != 6:
                continue
            event, value = struct.unpack("=HI", frames[0])
            self._report(event, value, frames[1].decode("utf-8", "replace"))

    def _report(self, event: int, value: int, endpoint: str) -> None:
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            return  # ZAP said no, and the ZAP handler logged it with the remote address
        reason = _AUTH_REASONS.get(value) if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL else None
        if reason is not None:
            self.refused += 1
            self._limiter.warning(
                log, "peer_auth_refused", f"handshake:{value}", local_endpoint=endpoint, reason=reason
            )
            return
        self.failed += 1
        detail = (
            f"protocol error {value:#x}"
            if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            else "malformed or truncated greeting"
        )
        self._limiter.warning(
            log, "peer_handshake_failed", f"handshake:{event}:{value}", local_endpoint=endpoint, reason=detail
        )
