"""The peer port's connection gate: strangers' idle connections are capped per address and in all."""

from __future__ import annotations

import asyncio
import socket

from swarmcompute.transport import new_cluster_key

from .helpers import Inbox, Ping, deliver, transport, until


def _open_idle(port: int, count: int, source: str = "127.0.0.1") -> list[socket.socket]:
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.setblocking(False)
        s.bind((source, 0))
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        socks.append(s)
    return socks


def test_idle_connections_over_the_per_address_cap_are_cut_and_members_still_get_through() -> None:
    async def main() -> None:
        key = new_cluster_key()
        inbox, other_inbox = Inbox(), Inbox()
        socks: list[socket.socket] = []
        try:
            async with (
                transport(key, "node-a", inbox, max_pending_per_address=5) as a,
                transport(key, "node-b", other_inbox) as b,
            ):
                socks = _open_idle(a.port, 40, source="127.0.0.2")
                assert await until(lambda: a.stats.connections_refused >= 35, timeout_s=10)
                assert a.stats.connections_pending <= 5
                await deliver(b, a, inbox, Ping(1, "a member still gets through"))
        finally:
            for s in socks:
                s.close()

    asyncio.run(main())


def test_idle_connections_over_the_total_cap_are_cut_whatever_their_address() -> None:
    async def main() -> None:
        key = new_cluster_key()
        inbox = Inbox()
        socks: list[socket.socket] = []
        try:
            async with transport(key, "node-a", inbox, max_pending_per_address=5, max_pending_total=20) as a:
                for i in range(2, 12):  # ten loopback source addresses, four connections each
                    socks += _open_idle(a.port, 4, source=f"127.0.0.{i}")
                assert await until(lambda: a.stats.connections_refused >= 20, timeout_s=10)
                assert a.stats.connections_pending <= 20
        finally:
            for s in socks:
                s.close()

    asyncio.run(main())
