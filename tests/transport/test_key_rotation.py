"""Rotating the cluster key in a running transport: the port is rebound with the new keypair,
the old key is refused at once, and peers that have not switched yet are still reached with
the old key for the grace period (then no more)."""

from __future__ import annotations

import asyncio
import time

from swarmcompute.transport import new_cluster_key

from .helpers import Inbox, Ping, deliver, transport, until


def test_a_rotated_transport_keeps_its_port_refuses_the_old_key_and_reaches_unswitched_peers() -> None:
    async def main() -> None:
        old, new = new_cluster_key(), new_cluster_key()
        inbox_a, inbox_b, inbox_c = Inbox(), Inbox(), Inbox()
        async with transport(old, "a", inbox_a) as a, transport(old, "b", inbox_b) as b:
            async with transport(old, "c", inbox_c) as stale:
                await deliver(b, a, inbox_a, Ping(1))
                port = a.port
                await a.rotate(new, grace_s=30.0)
                assert a.port == port and a.key == new
                await deliver(a, b, inbox_b, Ping(2))  # b has not switched: a reaches it with the old key
                # whoever holds only the old key cannot get a message into a any more
                deadline = time.monotonic() + 1.0
                while time.monotonic() < deadline:
                    stale.send(f"127.0.0.1:{port}", Ping(666))
                    await asyncio.sleep(0.02)
                assert inbox_a.of("c") == []
                assert await until(lambda: a.stats.auth_refused > 0)
                t0 = time.monotonic()
                await b.rotate(new, grace_s=30.0)
                await deliver(b, a, inbox_a, Ping(3))  # both on the new key
                await deliver(a, b, inbox_b, Ping(4))
                print(f"peers reached each other {time.monotonic() - t0:.2f} s after the second switch")

    asyncio.run(main())


def test_after_the_grace_period_the_old_key_reaches_no_one() -> None:
    async def main() -> None:
        old, new = new_cluster_key(), new_cluster_key()
        inbox_a, inbox_b = Inbox(), Inbox()
        async with transport(old, "a", inbox_a) as a, transport(old, "b", inbox_b) as b:
            await a.rotate(new, grace_s=0.3)
            await deliver(a, b, inbox_b, Ping(1))
            await asyncio.sleep(0.35)
            a.expire_old_key()
            before = len(inbox_b.items)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                assert a.send(f"127.0.0.1:{b.port}", Ping(2)) is False
                await asyncio.sleep(0.02)
            assert len(inbox_b.items) == before

    asyncio.run(main())
