"""Peer traffic: one encrypted ZeroMQ endpoint per node, bounded everywhere.

Shape (why each part is there):

- One ROUTER, bound on ``tcp://{bind}:{port}``, is the only listening socket. It
  is a CURVE server with the cluster keypair; the ZAP handler (``zap.py``) lets a
  client in only if it holds the cluster key, and the socket monitor
  (``handshake.py``) logs everyone else. The ROUTER only receives.
- Per peer *address*, one DEALER (a CURVE client with the same keypair), made on
  the first send. Every message is two frames, ``[sender node id, payload]``:
  the receiver learns who sent it from the frame, never from an address, so a
  node that comes back on a new IP is the same node. Why not the DEALER's
  routing id (the obvious place): the ROUTER refuses or hands over duplicate
  routing ids, so two live connections from one node (an old and a new address,
  IPv4 and IPv6, a static --peer and an mDNS address) would knock each other
  off or be silently refused. With libzmq-generated routing ids they coexist.
- Strangers cannot hold many descriptors: a connection that has not finished its
  handshake is dropped after ``HANDSHAKE_IVL`` (5 s), and the socket monitor cuts
  young (unauthenticated) connections over ``max_pending_per_address`` (32) from one
  address or ``max_pending_total`` (512) in all (``handshake.py``). The daemon also
  raises its fd limit to the hard one, and creating a DEALER when descriptors run out
  is a dropped send, not an exception.
- ``send`` never blocks: ``IMMEDIATE`` means nothing is queued for a peer that is
  not connected and authenticated, ``SNDHWM`` bounds what is queued for a slow
  one, and the send is ``NOBLOCK``; a full or absent queue is a ``False`` return
  and a ``dropped_full`` count. Callers (Raft, gossip) resend on their own
  timers, so a drop costs a retry, never a stuck loop. ZMTP heartbeats drop the
  connection to a dead peer, so its sends fail fast instead of filling the HWM.
- ``post`` is ``send`` at the end of the loop turn, batched: what goes to one address in one
  turn leaves as one frame (``outbox.Batch``), a lazy message with the next one; Raft, lease and
  gossip traffic go this way (``outbox`` says why: an idle cluster's wake-ups).
- Frames are read by a reader on the ROUTER's descriptor, not by awaiting ``zmq.asyncio``: a
  plain non-blocking read per frame, a bounded burst per turn (``_readable``).
- ``rotate`` switches to a new cluster key in place (`swarm token --rotate`): the ROUTER is
  bound again on the same port with the new keypair and ZAP lets in only the new key, so the
  old token is refused at once; connections out keep a second DEALER per peer with the old
  key for ``grace_s``, used while the new one is not connected, so peers that have not
  switched yet (they switch when they apply the same log entry, within a heartbeat) are
  still reached. New DEALERs then retry every 0.5 s at most, to find a peer that switched.
  The ROUTER cannot let the old key in too (a CURVE server has one keypair, and the port one
  ROUTER), so a peer still on the old key is reached but cannot answer: ``old_key_peers``
  names the addresses reached only with the old key, for the owner to send the new key to
  (``node.key_rotation``: a member that was down during the rotation and came back).
- Every received frame goes through ``codec.decode``; anything bad (garbage,
  truncated msgpack, another major protocol version, unknown tag, wrong types,
  a wrong frame count, no node id) is counted and logged as ``peer_message_dropped``
  with the reason and the address known for the sender id it claims (``describe_sender``; the
  frames' own peer address would cost a Frame object per frame, about 2.5x the receive time),
  rate-limited, and the loop goes on; a message of another major version is also handed to
  ``on_foreign_version``, so the owner can tell that node why (``swarmcompute.versions``),
  except the ``any_version`` ones (the join handshake), which arrive as usual. ``MAXMSGSIZE`` makes
  libzmq drop the connection of a peer that announces an oversized frame
  before any of it is buffered.

The transport owns its zmq context (the ZAP handler is per context), and closes
exactly what it created.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import structlog
import zmq
import zmq.asyncio

from swarmcompute import codec
from swarmcompute.errors import ConfigError, FrameTooLargeError, ProtocolError, ProtocolVersionError
from swarmcompute.limits import MAX_PEER_MESSAGE_BYTES
from swarmcompute.paths import DEFAULT_PORT
from swarmcompute.transport.handshake import (
    DEFAULT_MAX_PENDING_PER_ADDRESS,
    DEFAULT_MAX_PENDING_TOTAL,
    HandshakeWatch,
)
from swarmcompute.transport.keys import ClusterKey
from swarmcompute.transport.outbox import Batch, Outbox
from swarmcompute.transport.ratelimit import LogLimiter
from swarmcompute.transport.zap import ZAP_DOMAIN, ZapHandler

log = structlog.get_logger(__name__)

OnMessage = Callable[[str, Any], None]
"""``on_message(sender_node_id, msg)``: called on the loop for each good frame; must not block."""

DEFAULT_MAX_MESSAGE_BYTES = MAX_PEER_MESSAGE_BYTES
_CURVE_OVERHEAD_BYTES = 64  # a CURVE MESSAGE command adds 33 bytes to the frame on the wire
MAX_NODE_ID_BYTES = 255
_NOBLOCK = int(zmq.NOBLOCK)  # plain ints: IntFlag arithmetic per send shows up in profiles
_NOBLOCK_MORE = int(zmq.NOBLOCK | zmq.SNDMORE)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_BATCH = 64  # frames handled back to back before letting other tasks run


@dataclass(frozen=True, slots=True)
class TransportStats:
    """Counters since start, for `swarm status` and /metrics."""

    sent: int
    received: int
    dropped_full: int
    """Sends refused because the peer is not connected or its queue is at the high-water mark."""
    dropped_bad: int
    """Received frames dropped as undecodable, of another version, or otherwise malformed."""
    auth_refused: int
    """Connections refused for not holding the cluster key (or not speaking CurveZMQ)."""
    handshake_failed: int
    """Connections that failed the ZMTP handshake otherwise (garbage, truncated greeting)."""
    peers: int
    """Open outgoing connections (DEALERs)."""
    connections_refused: int = 0
    """Unauthenticated connections cut for being over a per-address or total cap."""
    connections_pending: int = 0
    sent_bytes: int = 0
    """Bytes of the messages counted in ``sent`` (encoded, before encryption and framing)."""
    received_bytes: int = 0
    """Bytes of the messages counted in ``received``."""
    """Incoming connections younger than the handshake timeout (not yet members)."""


class PeerTransport:
    """The node's peer endpoint: ``start()``, then ``send()`` freely; ``close()`` at the end."""

    def __init__(
        self,
        key: ClusterKey,
        node_id: str,
        on_message: OnMessage,
        *,
        bind: str = "0.0.0.0",
        port: int = DEFAULT_PORT,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        send_hwm: int = 1000,
        recv_hwm: int = 10_000,
        max_peers: int = 256,
        heartbeat_ivl_ms: int = 2000,
        heartbeat_timeout_ms: int = 6000,
        handshake_ivl_ms: int = 5000,
        max_pending_per_address: int = DEFAULT_MAX_PENDING_PER_ADDRESS,
        max_pending_total: int = DEFAULT_MAX_PENDING_TOTAL,
        protocol_major: int = codec.PROTOCOL_VERSION,
    ) -> None:
        raw_id = node_id.encode("utf-8")
        if not 1 <= len(raw_id) <= MAX_NODE_ID_BYTES:
            raise ConfigError(f"a node id is 1 to {MAX_NODE_ID_BYTES} bytes of UTF-8, not {node_id!r}")
        self.key = key
        self.node_id = node_id
        self._sender_frame = raw_id
        self._on_message = on_message
        self._bind = bind
        self._requested_port = port
        self._max_message_bytes = max_message_bytes
        self._send_hwm = send_hwm
        self._recv_hwm = recv_hwm
        self._max_peers = max_peers
        self._heartbeat_ivl_ms = heartbeat_ivl_ms
        self._heartbeat_timeout_ms = heartbeat_timeout_ms
        self._handshake_ivl_ms = handshake_ivl_ms
        self._max_pending_per_address = max_pending_per_address
        self._max_pending_total = max_pending_total
        self._limiter = LogLimiter()
        self._context: zmq.asyncio.Context | None = None
        self._sync_context: zmq.Context[zmq.Socket[bytes]] | None = None
        self._router: zmq.asyncio.Socket | None = None
        self._zap: ZapHandler | None = None
        self._watch: HandshakeWatch | None = None
        self._reader: zmq.Socket[bytes] | None = None
        """A plain (shadow) socket on the ROUTER, read when its descriptor says so (``_readable``)."""
        self._reader_fd = -1
        self._more: asyncio.Handle | None = None
        self._outbox = Outbox(self._flushed, self._encode)
        self.on_flushed: Callable[[str, bool], None] | None = None
        """Told (address, sent) for each frame of posted messages handed to ZeroMQ or dropped."""
        self.on_drained: Callable[[], None] | None = None
        """Called when every frame that was waiting has been handled (the owner finishes what
        they started, e.g. Raft's Ready), before the posts they made are flushed."""
        self._dealers: collections.OrderedDict[str, zmq.Socket[bytes]] = collections.OrderedDict()
        self._old_key: ClusterKey | None = None
        """The key before the last rotation, still used to reach peers until ``_old_until``."""
        self._old_dealers: collections.OrderedDict[str, zmq.Socket[bytes]] = collections.OrderedDict()
        self._old_until = 0.0
        self._old_key_only: set[str] = set()
        """Addresses a frame reached only with the old key since ``old_key_peers`` last said."""
        self.describe_sender: Callable[[str], str] | None = None
        """The address known for a node id, for log lines about what it sent (set by the owner)."""
        self.protocol_major = protocol_major
        """The envelope version sent and accepted (``swarmcompute.versions``; a test may claim another)."""
        self.padding: tuple[Any, ...] = ()
        """Values appended to every message sent (``versions``: a test's claim of a newer minor)."""
        self.on_foreign_version: Callable[[str, int | None], None] | None = None
        """Called with (sender id, its major) for each message dropped as another major version."""
        self._port: int | None = None
        self._sent = 0
        self._received = 0
        self._sent_bytes = 0
        self._received_bytes = 0
        self._dropped_full = 0
        self._dropped_bad = 0

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Start the ZAP handler, then bind the ROUTER and start receiving.

        Raises ``ConfigError`` if the address cannot be bound (port in use, bad --bind).
        """
        if self._context is not None:
            raise RuntimeError("PeerTransport.start() called twice")
        self._context = zmq.asyncio.Context()
        # DEALERs are only ever sent on, without waiting: plain sockets on a shadow of the
        # same context avoid a Future per send.
        self._sync_context = zmq.Context.shadow(self._context.underlying)
        try:
            self._router = self._make_router()
            self._watch = HandshakeWatch(
                self._router,
                self._limiter,
                handshake_timeout_s=self._handshake_ivl_ms / 1000,
                max_pending_per_address=self._max_pending_per_address,
                max_pending_total=self._max_pending_total,
            )
            self._zap = ZapHandler(
                self._context, self.key.curve_public_key, self._limiter, on_accepted=self._watch.authenticated
            )
            self._zap.start()  # before the ROUTER binds: no client is ever asked about without it
            self._watch.start()
            self._bind_router()
            self._watch.local_port = self._port
        except BaseException:
            await self.close()
            raise
        self._start_receiver()
        log.info("peer_transport_started", endpoint=self.endpoint, node_id=self.node_id, cluster_id=self.key.cluster_id)

    def _start_receiver(self) -> None:
        assert self._router is not None
        self._reader = zmq.Socket.shadow(self._router.underlying)
        self._reader_fd = cast(int, self._reader.getsockopt(zmq.FD))
        loop = asyncio.get_running_loop()
        loop.add_reader(self._reader_fd, self._readable)
        self._more = loop.call_soon(self._readable)  # frames that came before the reader did

    async def _stop_receiver(self) -> None:
        if self._reader is not None:
            asyncio.get_running_loop().remove_reader(self._reader_fd)
            if self._more is not None:
                self._more.cancel()
                self._more = None
            self._reader = None

    async def close(self) -> None:
        """Close every socket and the context this transport created. Idempotent."""
        if self._context is not None:
            self._outbox.flush_all()  # what was posted in this loop turn still leaves
        await self._stop_receiver()
        self._outbox.close()
        if self._watch is not None:
            await self._watch.close()
        for sock in self._dealers.values():
            sock.close(linger=0)
        self._dealers.clear()
        self._drop_old_key()
        if self._router is not None:
            self._router.close(linger=0)
            self._router = None
        if self._zap is not None:
            await self._zap.close()
        if self._context is not None:
            self._context.destroy(linger=0)  # every socket is closed by now; this is the safety net
            self._context = None
            self._sync_context = None

    async def __aenter__(self) -> PeerTransport:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        """The bound TCP port (the one the OS picked when constructed with ``port=0``)."""
        if self._port is None:
            raise RuntimeError("the transport is not started")
        return self._port

    @property
    def endpoint(self) -> str:
        host = self._bind if ":" not in self._bind else f"[{self._bind}]"
        return f"tcp://{host}:{self.port}"

    @property
    def stats(self) -> TransportStats:
        return TransportStats(
            sent=self._sent,
            received=self._received,
            dropped_full=self._dropped_full,
            dropped_bad=self._dropped_bad,
            auth_refused=(self._zap.refused if self._zap else 0) + (self._watch.refused if self._watch else 0),
            handshake_failed=self._watch.failed if self._watch else 0,
            peers=len(self._dealers),
            connections_refused=self._watch.refused_connections if self._watch else 0,
            connections_pending=self._watch.pending if self._watch else 0,
            sent_bytes=self._sent_bytes,
            received_bytes=self._received_bytes,
        )

    # --- sending -------------------------------------------------------------------

    def send(self, address: str, msg: object) -> bool:
        """Queue ``msg`` for the node at ``address`` ("host:port" or "tcp://host:port").

        Never blocks. ``False`` means it was dropped: the peer is not connected yet
        (the first sends to a new address always are, until the handshake is done),
        its queue is full, or the address is unusable. Raises only for programming
        errors: an unregistered message type, or one above ``max_message_bytes``.
        Messages ``post``ed to the same address before go first.
        """
        data = self._encode(msg)
        endpoint = _normalize(address)
        if self._outbox.pending(endpoint):
            self._outbox.flush(endpoint)
        return self._push(address, data, 1)

    def post(self, address: str, msg: object, *, lazy: bool = False) -> None:
        """Send ``msg`` at the end of this loop turn, in one frame with whatever else goes to
        ``address`` then (``outbox``); ``lazy``: with the next such frame, at most ``LAZY_S``
        later, in place of a lazy message of the same type still waiting for ``address``. Whether
        it was dropped is told to ``on_flushed``. Raises as ``send``."""
        self._outbox.post(_normalize(address), address, self._encode(msg), lazy=lazy, kind=type(msg))

    @property
    def frames_sent(self) -> int:
        """Frames of posted messages handed to ZeroMQ (a batch counts once)."""
        return self._outbox.frames

    def _encode(self, msg: object) -> bytes:
        data = codec.encode(msg, version=self.protocol_major, padding=self.padding)
        if len(data) > self._max_message_bytes:
            raise FrameTooLargeError(
                f"{codec.tag_of(msg)} is {len(data)} bytes, above the {self._max_message_bytes}-byte limit"
            )
        return data

    def _push(self, address: str, data: bytes, count: int) -> bool:
        """Hand one frame holding ``count`` messages to ZeroMQ (0: an empty batch, a probe)."""
        sent = self._push_to(self._dealer(address), data, address)
        if sent and self._old_dealers:  # the peer switched: its old-key connection only knocks
            stale = self._old_dealers.pop(_normalize(address), None)
            if stale is not None:
                stale.close(linger=0)
        elif not sent and self._old_key is not None:
            if time.monotonic() < self._old_until:  # a peer that has not switched keys yet
                sent = self._push_to(self._dealer(address, old=True), data, address)
                if sent:
                    self._old_key_only.add(_normalize(address))
            else:
                self._drop_old_key()
        if not sent:
            self._dropped_full += count
        else:
            self._sent += count
            self._sent_bytes += len(data)
        return sent

    def _flushed(self, address: str, data: bytes, count: int) -> bool:
        sent = self._push(address, data, count)
        if count and self.on_flushed is not None:
            self.on_flushed(address, sent)
        return sent

    def _push_to(self, sock: zmq.Socket[bytes] | None, data: bytes, address: str) -> bool:
        if sock is None:
            return False
        try:
            # all frames of a message are queued together or not at all, so NOBLOCK holds for both
            sock.send(self._sender_frame, flags=_NOBLOCK_MORE)
            sock.send(data, flags=_NOBLOCK, copy=len(data) < 65536)
        except zmq.Again:
            return False
        except zmq.ZMQError as exc:
            self._limiter.warning(log, "peer_send_failed", "send", address=address, error=str(exc))
            return False
        return True

    async def rotate(self, key: ClusterKey, grace_s: float) -> None:
        """Use ``key`` from now on, without a restart (see the module doc); the old key only
        reaches peers that have not switched yet, for ``grace_s``. Raises ``ConfigError`` if
        the port cannot be bound again."""
        if key.curve_public_key == self.key.curve_public_key:
            return
        if self._router is None or self._zap is None or self._watch is None:
            raise RuntimeError("the transport is not started")
        self._drop_old_key()  # one generation back at most
        self._old_key, self._old_dealers = self.key, self._dealers
        self._old_until = time.monotonic() + grace_s
        self.key, self._dealers = key, collections.OrderedDict()
        await self._stop_receiver()
        await self._watch.close()
        self._router.close(linger=0)
        self._router = self._make_router()
        self._watch = HandshakeWatch(
            self._router,
            self._limiter,
            handshake_timeout_s=self._handshake_ivl_ms / 1000,
            max_pending_per_address=self._max_pending_per_address,
            max_pending_total=self._max_pending_total,
        )
        self._zap.rekey(key.curve_public_key, self._watch.authenticated)
        self._watch.start()
        deadline = time.monotonic() + 5.0
        while True:  # libzmq closes the old listener on its I/O thread, a moment after close()
            try:
                self._bind_router(port=self._port)
                break
            except ConfigError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.02)
        self._watch.local_port = self._port
        self._start_receiver()
        log.info("peer_transport_rekeyed", cluster_id=key.cluster_id, old_key_until_s=grace_s)

    def old_key_peers(self) -> set[str]:
        """The addresses ("tcp://host:port") reached only with the old key since the last call:
        peers that have not switched keys. A peer that is on the old key cannot answer this
        node (its ROUTER lets in only the new key), so it never learns of the rotation by
        itself; whoever owns the transport tells it."""
        peers, self._old_key_only = self._old_key_only, set()
        return peers

    def expire_old_key(self) -> None:
        """Close the old key's connections once its grace period is over (called now and then)."""
        if self._old_key is not None and time.monotonic() >= self._old_until:
            self._drop_old_key()

    def _drop_old_key(self) -> None:
        if self._old_key is None:
            return
        for sock in self._old_dealers.values():
            sock.close(linger=0)
        self._old_dealers.clear()
        self._old_key_only.clear()
        self._old_key = None
        log.info("peer_transport_old_key_dropped")

    def forget(self, address: str) -> None:
        """Close the connection to ``address`` (a peer that left, or moved to another address)."""
        self._outbox.forget(_normalize(address))
        for pool in (self._dealers, self._old_dealers):
            sock = pool.pop(_normalize(address), None)
            if sock is not None:
                sock.close(linger=0)

    def forget_all(self) -> int:
        """Close every outgoing connection (this node's own address changed: connections made
        from the old one are dead, though the kernel does not say so until heartbeats time out);
        the next send to each peer connects afresh, from the new address. Returns how many."""
        count = len(self._dealers)
        for pool in (self._dealers, self._old_dealers):
            for sock in pool.values():
                sock.close(linger=0)
            pool.clear()
        return count

    def _dealer(self, address: str, *, old: bool = False) -> zmq.Socket[bytes] | None:
        pool, key = (self._old_dealers, self._old_key) if old else (self._dealers, self.key)
        if key is None:
            return None
        endpoint = _normalize(address)
        sock = pool.get(endpoint)
        if sock is not None:
            pool.move_to_end(endpoint)
            return sock
        if self._sync_context is None:
            raise RuntimeError("the transport is not started")
        while len(pool) >= self._max_peers:
            old_endpoint, evicted = pool.popitem(last=False)
            evicted.close(linger=0)
            log.debug("peer_connection_evicted", address=old_endpoint)
        try:
            sock = self._sync_context.socket(zmq.DEALER)
        except zmq.ZMQError as exc:  # EMFILE, or ZMQ_MAX_SOCKETS: a dropped send, retried by the caller
            self._limiter.warning(log, "peer_socket_failed", "socket", address=address, error=str(exc))
            return None
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.IMMEDIATE, 1)
            sock.setsockopt(zmq.SNDHWM, self._send_hwm)
            sock.setsockopt(zmq.RCVHWM, 1)  # the peer's ROUTER never sends back
            sock.setsockopt(zmq.MAXMSGSIZE, 1024)
            sock.setsockopt(zmq.IPV6, 1)
            sock.setsockopt(zmq.RECONNECT_IVL, 200)
            # while a rotation's grace lasts, a peer that switches must be found again quickly
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, 5000 if self._old_key is None else 500)
            self._set_heartbeat(sock)
            sock.setsockopt(zmq.CURVE_SERVERKEY, key.curve_public_key)
            sock.setsockopt(zmq.CURVE_PUBLICKEY, key.curve_public_key)
            sock.setsockopt(zmq.CURVE_SECRETKEY, key.curve_secret_key)
            sock.connect(endpoint)
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            self._limiter.warning(log, "peer_address_invalid", "address", address=address, error=str(exc))
            return None
        pool[endpoint] = sock
        return sock

    # --- receiving -----------------------------------------------------------------

    def _make_router(self) -> zmq.asyncio.Socket:
        assert self._context is not None
        sock = self._context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.key.curve_secret_key)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.key.curve_public_key)
        sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN)
        sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)  # no ZAP handler means refuse, never accept
        sock.setsockopt(zmq.MAXMSGSIZE, self._max_message_bytes + _CURVE_OVERHEAD_BYTES)
        sock.setsockopt(zmq.RCVHWM, self._recv_hwm)
        sock.setsockopt(zmq.SNDHWM, 1)
        sock.setsockopt(zmq.HANDSHAKE_IVL, self._handshake_ivl_ms)
        sock.setsockopt(zmq.IPV6, 1)
        self._set_heartbeat(sock)
        return sock

    def _set_heartbeat(self, sock: zmq.Socket[Any]) -> None:
        sock.setsockopt(zmq.HEARTBEAT_IVL, self._heartbeat_ivl_ms)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, self._heartbeat_timeout_ms)

    def _bind_router(self, port: int | None = None) -> None:
        assert self._router is not None
        host = self._bind if ":" not in self._bind else f"[{self._bind}]"
        wanted = self._requested_port if port is None else port
        port_text = "*" if wanted == 0 else str(wanted)
        try:
            self._router.bind(f"tcp://{host}:{port_text}")
        except zmq.ZMQError as exc:
            raise ConfigError(
                f"cannot listen for peers on {host}:{port_text}: {exc.strerror}; pass another --port or --bind"
            ) from None
        last = self._router.getsockopt(zmq.LAST_ENDPOINT)
        assert isinstance(last, bytes)
        self._port = int(last.rsplit(b":", 1)[1])

    def _readable(self) -> None:
        """The ROUTER's descriptor woke the loop (or a batch left frames waiting): read what is
        there, at most ``_BATCH`` frames, then give the loop a turn before reading on.

        A plain non-blocking read where ``zmq.asyncio`` spent a Future, a callback and a failed
        read (an exception) on every frame: that was a third of an idle leader's CPU. The
        descriptor signals only changes, so ``EVENTS`` is asked before each read (which also
        rearms it), and a full batch schedules the next one itself."""
        self._more = None
        sock = self._reader
        if sock is None:
            return
        try:
            for _ in range(_BATCH):
                if not cast(int, sock.getsockopt(_EVENTS)) & _POLLIN:
                    break
                try:
                    frames = sock.recv_multipart(flags=_NOBLOCK)
                except zmq.Again:
                    break
                self._handle(frames)
                if self._reader is not sock:  # a handler closed or rekeyed the transport
                    return
            else:
                self._more = asyncio.get_running_loop().call_soon(self._readable)
        except zmq.ZMQError as exc:
            log.error("peer_receive_stopped", error=str(exc))
            asyncio.get_running_loop().remove_reader(self._reader_fd)
            self._reader = None
            return
        if self.on_drained is not None:
            try:
                self.on_drained()
            except Exception:  # a task boundary, as for on_message
                if self._limiter.allow("handler") is not None:
                    log.exception("peer_handler_failed", message="drained")
        self.flush()

    def flush(self) -> None:
        """Send now what was posted for the end of this loop turn (the clock calls it after a
        tick, the reader after a burst: one wake-up of the loop fewer each)."""
        self._outbox.flush_due()

    def _handle(self, frames: list[bytes]) -> None:
        # frames[0] is the connection's libzmq routing id; then [sender node id, payload]
        if len(frames) != 3:
            claimed = frames[1] if len(frames) > 1 else b""
            self._drop(claimed, f"expected [node id, message], got {len(frames) - 1} frames", sum(map(len, frames[1:])))
            return
        _, raw_sender, data = frames
        if not 1 <= len(raw_sender) <= MAX_NODE_ID_BYTES:
            self._drop(raw_sender, "the sender node id is empty or too long", len(data))
            return
        try:
            sender = raw_sender.decode("utf-8")
        except UnicodeDecodeError:
            self._drop(raw_sender, "the sender node id is not UTF-8", len(data))
            return
        try:
            msg = codec.decode(data, max_bytes=self._max_message_bytes, version=self.protocol_major)
        except ProtocolError as exc:
            self._drop(raw_sender, str(exc), len(data))
            if isinstance(exc, ProtocolVersionError) and self.on_foreign_version is not None:
                try:
                    self.on_foreign_version(sender, exc.version)
                except Exception:  # a task boundary, as for on_message
                    if self._limiter.allow("handler") is not None:
                        log.exception("peer_handler_failed", sender=sender, message="foreign version")
            return
        except Exception as exc:  # a codec bug must not end the receive loop
            self._drop(raw_sender, f"decoder failed: {type(exc).__name__}", len(data))
            return
        if type(msg) is Batch:
            self._batch(raw_sender, sender, msg)
            return
        self._deliver(sender, msg, len(data))

    def _batch(self, raw_sender: bytes, sender: str, batch: Batch) -> None:
        """Each message of a batch as if it came alone (a batch in a batch is dropped)."""
        if self.describe_sender is not None:
            try:
                known = self.describe_sender(sender)
            except Exception:  # only a hint: batches go there once it is known
                known = "unknown"
            if known != "unknown":
                self._outbox.read_batches(_normalize(known))
        for data in batch.messages:
            try:
                msg = codec.decode(data, max_bytes=self._max_message_bytes, version=self.protocol_major)
            except ProtocolError as exc:
                self._drop(raw_sender, str(exc), len(data))
                continue
            except Exception as exc:  # a codec bug must not end the receive loop
                self._drop(raw_sender, f"decoder failed: {type(exc).__name__}", len(data))
                continue
            if type(msg) is Batch:
                self._drop(raw_sender, "a batch inside a batch", len(data))
                continue
            self._deliver(sender, msg, len(data))

    def _deliver(self, sender: str, msg: Any, size: int) -> None:
        self._received += 1
        self._received_bytes += size
        try:
            self._on_message(sender, msg)
        except Exception:  # a task boundary: the handler's bug is logged, the loop goes on
            if self._limiter.allow("handler") is not None:
                log.exception("peer_handler_failed", sender=sender, message=codec.tag_of(msg))

    def _drop(self, raw_sender: bytes, reason: str, size: int) -> None:
        self._dropped_bad += 1
        suppressed = self._limiter.allow("drop")
        if suppressed is None:
            return
        sender = raw_sender[:64].decode("utf-8", "replace")
        address = "unknown"
        if self.describe_sender is not None:
            try:
                address = self.describe_sender(sender)
            except Exception:  # a log line must not end the receive loop
                address = "unknown"
        fields: dict[str, object] = {"sender": sender, "address": address, "reason": reason, "size": size}
        if suppressed:
            fields["suppressed"] = suppressed
        log.warning("peer_message_dropped", **fields)


def _normalize(address: str) -> str:
    """``host:port`` or ``tcp://host:port`` -> ``tcp://host:port``."""
    address = address.strip()
    return address if "://" in address else f"tcp://{address}"
