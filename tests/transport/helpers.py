"""Shared pieces for the transport tests: test message types, polling, raw sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zmq

from swarmcompute import codec
from swarmcompute.transport import ClusterKey, PeerTransport


@codec.message("test.ping")
@dataclass(frozen=True, slots=True)
class Ping:
    seq: int
    text: str = ""


@codec.message("test.blob")
@dataclass(frozen=True, slots=True)
class Blob:
    data: bytes
    tags: tuple[str, ...] = ()


@dataclass
class Inbox:
    """Collects ``(sender, msg)`` from a transport's on_message."""

    items: list[tuple[str, Any]] = field(default_factory=list)

    def __call__(self, sender: str, msg: Any) -> None:
        self.items.append((sender, msg))

    def of(self, sender: str) -> list[Any]:
        return [m for s, m in self.items if s == sender]


async def until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Poll ``predicate`` every 10 ms for at most ``timeout_s``; never sleeps for a fixed time."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def deliver(
    sender: PeerTransport, receiver: PeerTransport, inbox: Inbox, msg: Any, timeout_s: float = 5.0
) -> None:
    """Send ``msg`` (resending while the connection comes up) until ``inbox`` has it from ``sender``."""
    deadline = time.monotonic() + timeout_s
    address = f"127.0.0.1:{receiver.port}"
    while msg not in inbox.of(sender.node_id):
        assert time.monotonic() < deadline, f"{msg!r} never arrived from {sender.node_id}"
        sender.send(address, msg)
        await asyncio.sleep(0.01)


def transport(key: ClusterKey, node_id: str, inbox: Inbox, **kwargs: Any) -> PeerTransport:
    return PeerTransport(key, node_id, inbox, bind="127.0.0.1", port=0, **kwargs)


def raw_dealer(
    ctx: zmq.Context[zmq.Socket[bytes]],
    port: int,
    *,
    server_key: bytes | None = None,
    public_key: bytes | None = None,
    secret_key: bytes | None = None,
) -> zmq.Socket[bytes]:
    """A bare DEALER, with CURVE credentials if given, connected to the transport on ``port``."""
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if server_key is not None:
        assert public_key is not None and secret_key is not None
        sock.setsockopt(zmq.CURVE_SERVERKEY, server_key)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, public_key)
        sock.setsockopt(zmq.CURVE_SECRETKEY, secret_key)
    sock.connect(f"tcp://127.0.0.1:{port}")
    return sock


def member_dealer(ctx: zmq.Context[zmq.Socket[bytes]], key: ClusterKey, port: int) -> zmq.Socket[bytes]:
    """A DEALER holding the cluster key: what a buggy or hostile *member* could send with."""
    return raw_dealer(
        ctx,
        port,
        server_key=key.curve_public_key,
        public_key=key.curve_public_key,
        secret_key=key.curve_secret_key,
    )


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]
