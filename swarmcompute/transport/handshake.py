"""Log handshakes that the peer socket refused before ZAP was asked.

A process without the cluster key fails the CURVE handshake at its first
message (it cannot encrypt to the cluster public key), and a plaintext ZMTP
client or a random TCP client fails the greeting; libzmq drops those
connections without asking ZAP. The socket monitor is the only place they show
up, so this turns its events into rate-limited ``peer_auth_refused`` /
``peer_handshake_failed`` lines (10 per 10 s per reason, with a count of those left out).
The monitor API available (v1) names the local endpoint only, not the remote address, but
libzmq reports a failed handshake and then, at once and from the same I/O thread, the
``DISCONNECTED`` event of that connection with its fd: the line is written then, naming the
remote address the gate read from that fd when it was accepted (``remote="unknown"`` when
the gate never saw it).

It is also the transport's connection gate: libzmq accepts every TCP connection and has no
limit of its own (``ZMQ_MAX_SOCKETS`` counts zmq sockets, not connections), so a stranger
could hold as many descriptors as it opens connections. The monitor's ``ACCEPTED`` event
carries the new connection's fd: the gate reads its remote address from that fd (without
duplicating it) and, while the connection is still *young* (younger than the handshake
timeout, so not yet authenticated: libzmq drops a connection that has not finished its
handshake by then), counts it against its address and against the total. A young connection
over ``max_pending_per_address`` or ``max_pending_total`` is shut down at once (libzmq then
closes it; ``refused_connections`` counts them, ``peer_connection_refused`` logs them,
rate-limited). A connection stops counting once the ZAP handler lets a member in from its
address (``authenticated``; the oldest young one of that address, since ZAP names the address,
not the fd), or once it lived past the handshake timeout. Members' connections are never cut. If the fd was already closed and reused when the event is read, the check acts
on what the fd is *now*, and only if it is a TCP connection to this port: at worst it cuts
another young connection from an address that is over its cap.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import socket
import struct
import time
from collections.abc import Callable

import structlog
import zmq
import zmq.asyncio

from swarmcompute.transport.ratelimit import LogLimiter

log = structlog.get_logger(__name__)

WATCHED_EVENTS = (
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_ACCEPTED
    | zmq.EVENT_DISCONNECTED
)
_BATCH = 256
_MAX_CREDIT_ADDRESSES = 1024
DEFAULT_MAX_PENDING_PER_ADDRESS = 32
"""Unauthenticated (young) connections one remote address may hold at once."""
DEFAULT_MAX_PENDING_TOTAL = 512
"""Unauthenticated (young) connections all addresses together may hold at once."""

_AUTH_REASONS: dict[int, str] = {
    int(zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC): "the peer does not have this cluster's key",
    int(zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH): "the peer does not use CurveZMQ",
}


class HandshakeWatch:
    """Reads the monitor of one server socket and logs failed handshakes (bounded)."""

    def __init__(
        self,
        sock: zmq.asyncio.Socket,
        limiter: LogLimiter,
        *,
        handshake_timeout_s: float = 5.0,
        max_pending_per_address: int = DEFAULT_MAX_PENDING_PER_ADDRESS,
        max_pending_total: int = DEFAULT_MAX_PENDING_TOTAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sock = sock
        self._limiter = limiter
        self._monitor: zmq.asyncio.Socket | None = None
        self._task: asyncio.Task[None] | None = None
        self.refused = 0
        self.failed = 0
        self.refused_connections = 0
        """Young connections shut down for being over a cap (per address or in total)."""
        self.local_port: int | None = None
        """The listening port; set once bound. Until then the gate counts nothing."""
        self._young_s = handshake_timeout_s + 1.0
        self._max_per_address = max_pending_per_address
        self._max_total = max_pending_total
        self._clock = clock
        self._pending: dict[int, tuple[str, float]] = {}  # fd -> (remote address, accepted at); oldest first
        self._per_address: collections.Counter[str] = collections.Counter()
        self._credit: dict[str, list[float]] = {}  # address -> times ZAP let one in before we saw it accepted
        self._failure: tuple[int, int, str] | None = None  # a failed handshake whose fd comes next

    @property
    def pending(self) -> int:
        """Connections accepted within the handshake timeout and still open (as far as known)."""
        return len(self._pending)

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
        # A connection flood is thousands of events a second: after each awaited one, handle what
        # else is ready through a plain shadow socket (no Future each), a bounded batch at a time.
        drain: zmq.Socket[bytes] = zmq.Socket.shadow(self._monitor.underlying)
        while True:
            try:
                self._event(await self._monitor.recv_multipart())
                for _ in range(_BATCH - 1):
                    try:
                        frames = drain.recv_multipart(flags=zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self._event(frames)
            except zmq.ZMQError:  # the monitored socket is closing
                return
            await asyncio.sleep(0)

    def _event(self, frames: list[bytes]) -> None:
        if len(frames) != 2 or len(frames[0]) != 6:
            return
        event, value = struct.unpack("=HI", frames[0])
        if event == zmq.EVENT_ACCEPTED:
            self._accepted(value)
        elif event == zmq.EVENT_DISCONNECTED:
            failure, self._failure = self._failure, None
            if failure is not None:
                entry = self._pending.get(value)
                self._report(*failure, remote=entry[0] if entry is not None else "unknown")
            self._forget(value)
        else:
            if self._failure is not None:  # its DISCONNECTED never came: say it without the address
                self._report(*self._failure, remote="unknown")
            self._failure = (event, value, frames[1].decode("utf-8", "replace"))
            self._count(event, value)

    # -- the connection gate ------------------------------------------------------------

    def authenticated(self, remote: str) -> None:
        """ZAP let a member in from ``remote``: its oldest young connection stops counting."""
        for fd, (address, _) in self._pending.items():
            if address == remote:
                self._forget(fd)
                return
        if len(self._credit) < _MAX_CREDIT_ADDRESSES:  # ZAP answered before the monitor told us
            self._credit.setdefault(remote, []).append(self._clock())

    def _accepted(self, fd: int) -> None:
        self._forget(fd)  # a number reused before its DISCONNECTED was read
        self._expire()
        if self.local_port is None:
            return
        remote = _remote_address(fd, self.local_port)
        if remote is None:
            return  # already closed (or no longer a connection to this port)
        credit = self._credit.get(remote)
        if credit:
            credit.pop(0)
            if not credit:
                del self._credit[remote]
            return
        self._pending[fd] = (remote, self._clock())
        self._per_address[remote] += 1
        if self._per_address[remote] > self._max_per_address:
            self._refuse(fd, remote, f"more than {self._max_per_address} unauthenticated connections from it")
        elif len(self._pending) > self._max_total:
            self._refuse(fd, remote, f"more than {self._max_total} unauthenticated connections in all")

    def _refuse(self, fd: int, remote: str, why: str) -> None:
        if _shutdown(fd, self.local_port, remote):
            self.refused_connections += 1
            self._limiter.warning(log, "peer_connection_refused", "gate", remote=remote, reason=why)
        self._forget(fd)

    def _forget(self, fd: int) -> None:
        entry = self._pending.pop(fd, None)
        if entry is not None:
            remote = entry[0]
            self._per_address[remote] -= 1
            if self._per_address[remote] <= 0:
                del self._per_address[remote]

    def _expire(self) -> None:
        """Drop connections past the handshake timeout: authenticated by now, or closed."""
        horizon = self._clock() - self._young_s
        for remote in [r for r, times in self._credit.items() if times[-1] <= horizon]:
            del self._credit[remote]
        while self._pending:
            fd, (_, accepted_at) = next(iter(self._pending.items()))
            if accepted_at > horizon:
                break
            self._forget(fd)

    def _count(self, event: int, value: int) -> None:
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            return
        if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and value in _AUTH_REASONS:
            self.refused += 1
        else:
            self.failed += 1

    def _report(self, event: int, value: int, endpoint: str, *, remote: str) -> None:
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            return  # ZAP said no, and the ZAP handler logged it with the remote address
        reason = _AUTH_REASONS.get(value) if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL else None
        if reason is not None:
            self._limiter.warning(
                log, "peer_auth_refused", f"handshake:{value}", remote=remote, local_endpoint=endpoint, reason=reason
            )
            return
        detail = (
            f"protocol error {value:#x}"
            if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            else "malformed or truncated greeting"
        )
        self._limiter.warning(
            log,
            "peer_handshake_failed",
            f"handshake:{event}:{value}",
            remote=remote,
            local_endpoint=endpoint,
            reason=detail,
        )


def _remote_address(fd: int, local_port: int) -> str | None:
    """The remote IP of the TCP connection behind ``fd`` if it is one to ``local_port``, else None.

    Uses the fd in place (``socket(fileno=...)`` then ``detach``): no descriptor is created,
    which matters exactly when descriptors are scarce.
    """
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return None
    try:
        if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
            return None
        if sock.getsockname()[1] != local_port:
            return None
        host = str(sock.getpeername()[0])
    except OSError:
        return None
    finally:
        sock.detach()
    return host.removeprefix("::ffff:") if "." in host else host


def _shutdown(fd: int, local_port: int | None, remote: str) -> bool:
    """Shut the connection on ``fd`` down if it still is the one from ``remote`` to our port."""
    if local_port is None or _remote_address(fd, local_port) != remote:
        return False
    sock = socket.socket(fileno=fd)
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError as exc:
        return exc.errno == errno.ENOTCONN
    finally:
        sock.detach()
    return True
