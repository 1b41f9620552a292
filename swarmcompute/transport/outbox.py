"""Coalesced peer sends: at most one ZeroMQ message to a peer per loop turn.

Why: an idle cluster's peer traffic is a few small messages in step. Every 200 ms the leader
sends each follower a heartbeat (AppendEntries) and a lease grant, and each follower answers the
heartbeat and asks for its next lease; gossip adds a ping and an ack per node per second. Each
ZeroMQ message costs both ends far more than its bytes (a send wakes the I/O thread, which
encrypts it and writes it; the receiver's loop wakes, reads and dispatches it), and those
wake-ups were most of an idle daemon's CPU (issue 15: 30 % of an idle worker's samples were
ZeroMQ sends).

What ``PeerTransport.post`` does instead: an encoded message joins its address's queue, and the
queues are flushed once, at the end of the current loop turn (``call_soon``): one message goes
as itself, several as one ``Batch`` frame. A heartbeat round then costs one frame each way: the
answer to a heartbeat and the lease ask (or a gossip ack) leave together, as the heartbeat and
the grant do. A *lazy* message (a lease renewal: nothing waits on it) schedules no flush of its
own: it rides with the next message to the same address, and goes alone after ``LAZY_S`` at the
latest. The grant to an ask then leaves with the next heartbeat, and the ask with the next
answer to one. A lazy message takes the place of one of the same kind still waiting for the
same address (a newer renewal makes the older one moot: dropping it is as if it was lost, which
the lease rules allow): a learner, whose ticks run three asks' worth at each of its heartbeats
(every 600 ms), sent three asks with each answer, and its leader answered each. Otherwise order
per address is kept: a queue is flushed whole, and ``send`` (immediate) flushes its address's
queue first.

Compatibility: a node that does not know ``peer.batch`` drops it whole, so batches go only to
an address whose node has shown that it reads them by sending one (``read_batches``). Until then
several queued messages go one by one, followed, at most every ``PROBE_S``, by an empty batch:
the probe that makes a node of this release answer with batches, and that an older one drops
(and logs). An address that sent no batch for ``TRUST_S`` is probed again before it is trusted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from swarmcompute import codec

LAZY_S = 0.25
"""The longest a lazy message waits for company: longer than a voter's heartbeat interval (200 ms).
Not a learner's (600 ms): a grant to a learner goes alone between its heartbeats. Holding them
0.65 s made the whole-cluster simulator fail seeds 1440, 4115 and 8250 (renewals that late move
leases into cases nobody has looked at yet), so a learner pays that frame for now."""
LAZY_GATHER_S = 0.1
"""Lazy messages due this soon after others leave with them (earlier than ``LAZY_S``, never later)."""
PROBE_S = 30.0
"""How often an address not known to read batches is sent an empty one to find out."""
TRUST_S = 120.0
"""An address whose node sent no batch for this long is not trusted to read them (it may have
restarted as an older release) until it sends one again."""
MAX_BATCH_BYTES = 256 * 1024
"""Messages are batched up to this many bytes; a bigger message goes alone (zero-copy)."""


@codec.message("peer.batch")
@dataclass(frozen=True, slots=True)
class Batch:
    """Several messages to one node in one frame, each encoded as it would travel alone (so each
    is decoded, bounded and version-checked on its own, and a bad one is dropped alone)."""

    messages: tuple[bytes, ...]


Push = Callable[[str, bytes, int], bool]
"""``push(address, frame, messages in it)``: hand one frame to ZeroMQ; False when dropped."""


class _Queue:
    __slots__ = ("endpoint", "address", "frames", "size", "due", "lazy")

    def __init__(self, endpoint: str, address: str) -> None:
        self.endpoint = endpoint
        self.address = address
        self.frames: list[bytes] = []
        self.size = 0
        self.due = False
        """A flush at the end of this loop turn is scheduled."""
        self.lazy: dict[object, int] = {}
        """The kind of each lazy message waiting -> its place in ``frames``."""


class Outbox:
    """Per-address queues of encoded messages, flushed through ``push`` (see the module doc)."""

    def __init__(
        self, push: Push, encode: Callable[[object], bytes], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._push = push
        self._encode = encode
        self._clock = clock
        self._queues: dict[str, _Queue] = {}
        """Normalized endpoint -> its queue (only while it holds messages)."""
        self._due: list[_Queue] = []
        self._flush_handle: asyncio.Handle | None = None
        self._reads_batches: dict[str, float] = {}
        """Endpoint -> when its node last sent us a batch."""
        self._probed: dict[str, float] = {}
        """Endpoint -> when we last sent it an empty batch."""
        self.frames = 0
        """Frames handed to ZeroMQ, batches counted once (for the tests and benchmarks)."""
        self._lazy: dict[str, float] = {}
        """Endpoint -> when its queue, holding only lazy messages, goes at the latest (loop time:
        ``LAZY_S`` after the first of them)."""
        self._lazy_timer: asyncio.TimerHandle | None = None
        self._lazy_timer_at = float("inf")

    def post(self, endpoint: str, address: str, data: bytes, *, lazy: bool, kind: object = None) -> None:
        """Queue ``data`` for ``endpoint``; a lazy one of a ``kind`` already waiting replaces it."""
        queue = self._queues.get(endpoint)
        if queue is None:
            queue = self._queues[endpoint] = _Queue(endpoint, address)
        if lazy and kind is not None:
            at = queue.lazy.get(kind)
            if at is not None:
                queue.size += len(data) - len(queue.frames[at])
                queue.frames[at] = data
                return
            queue.lazy[kind] = len(queue.frames)
        queue.frames.append(data)
        queue.size += len(data)
        if not lazy:
            if not queue.due:
                queue.due = True
                self._due.append(queue)
                if self._flush_handle is None:
                    self._flush_handle = asyncio.get_running_loop().call_soon(self._flush_due)
        elif not queue.due and endpoint not in self._lazy:
            self._lazy[endpoint] = until = asyncio.get_running_loop().time() + LAZY_S
            if until < self._lazy_timer_at:
                self._arm_lazy(until)

    def _arm_lazy(self, at: float | None = None) -> None:
        """Set the one timer of the lazy queues: at ``at``, or at the nearest deadline (none: off)."""
        if self._lazy_timer is not None:
            self._lazy_timer.cancel()
        self._lazy_timer, self._lazy_timer_at = None, float("inf")
        if at is None:
            at = min(self._lazy.values(), default=None)
        if at is not None:
            self._lazy_timer, self._lazy_timer_at = asyncio.get_running_loop().call_at(at, self._flush_lazy), at

    def _flush_lazy(self) -> None:
        """One timer for every queue of lazy messages: when it fires, every queue due within
        ``LAZY_GATHER_S`` goes too, so that a leader's renewals to many learners (each alone
        between two of their heartbeats) leave in one wake-up, not one each."""
        self._lazy_timer, self._lazy_timer_at = None, float("inf")
        soon = asyncio.get_running_loop().time() + LAZY_GATHER_S
        for endpoint, until in list(self._lazy.items()):
            if until <= soon:
                self.flush(endpoint)
        self._arm_lazy()

    def pending(self, endpoint: str) -> bool:
        return endpoint in self._queues

    def read_batches(self, endpoint: str) -> None:
        """The node at ``endpoint`` sent us a batch: it reads them too."""
        self._reads_batches[endpoint] = self._clock()
        self._probed.pop(endpoint, None)

    def forget(self, endpoint: str) -> None:
        self._reads_batches.pop(endpoint, None)
        self._probed.pop(endpoint, None)

    def flush_due(self) -> None:
        """Flush now every queue that was to be flushed at the end of this loop turn."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._flush_due()

    def _flush_due(self) -> None:
        self._flush_handle = None
        due, self._due = self._due, []
        for queue in due:
            if self._queues.get(queue.endpoint) is queue:
                self.flush(queue.endpoint)

    def flush(self, endpoint: str) -> None:
        """Send what waits for ``endpoint`` now (``send`` calls it to keep the order)."""
        queue = self._queues.pop(endpoint, None)
        if queue is None:
            return
        if self._lazy.pop(endpoint, None) == self._lazy_timer_at:
            self._arm_lazy()  # it left with company: the timer waits for the next one, if any
        frames = queue.frames
        if len(frames) == 1:
            self._send(queue.address, frames[0], 1)
            return
        now = self._clock()
        heard = self._reads_batches.get(endpoint)
        if heard is not None and now - heard < TRUST_S:
            self._send_batched(queue.address, frames)
            return
        for data in frames:
            self._send(queue.address, data, 1)
        if now - self._probed.get(endpoint, float("-inf")) >= PROBE_S:
            self._probed[endpoint] = now
            self._send(queue.address, self._encode(Batch(())), 0)

    def _send_batched(self, address: str, frames: list[bytes]) -> None:
        group: list[bytes] = []
        size = 0
        for data in frames:
            if len(data) > MAX_BATCH_BYTES // 4:  # a big message goes alone, zero-copy
                self._send_group(address, group)
                group, size = [], 0
                self._send(address, data, 1)
                continue
            if group and size + len(data) > MAX_BATCH_BYTES:
                self._send_group(address, group)
                group, size = [], 0
            group.append(data)
            size += len(data)
        self._send_group(address, group)

    def _send_group(self, address: str, group: list[bytes]) -> None:
        if len(group) == 1:
            self._send(address, group[0], 1)
        elif group:
            self._send(address, self._encode(Batch(tuple(group))), len(group))

    def _send(self, address: str, data: bytes, count: int) -> None:
        self.frames += 1
        self._push(address, data, count)

    def flush_all(self) -> None:
        """Send everything that waits now (the transport is about to close)."""
        for endpoint in list(self._queues):
            self.flush(endpoint)

    def close(self) -> None:
        """Drop whatever waits (the transport is closing)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._lazy.clear()
        self._arm_lazy()  # off: nothing waits
        self._queues.clear()
        self._due.clear()
