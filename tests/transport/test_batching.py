"""Coalesced sends (``PeerTransport.post``, ``transport.outbox``): fewer frames, the same messages.

Real transports on 127.0.0.1. Each test first connects the two (``deliver`` resends while the
connection comes up), then posts and counts what arrives and how many frames carried it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from swarmcompute import codec
from swarmcompute.transport import PeerTransport, new_cluster_key
from swarmcompute.transport.outbox import LAZY_GATHER_S, LAZY_S, Batch, Outbox

from .helpers import Inbox, Ping, deliver, transport, until


def introduced(a: PeerTransport, b: PeerTransport) -> None:
    """What ``ClusterLink`` does: each side can say where the other's node id is."""
    a.describe_sender = lambda node_id: f"127.0.0.1:{b.port}" if node_id == b.node_id else "unknown"
    b.describe_sender = lambda node_id: f"127.0.0.1:{a.port}" if node_id == a.node_id else "unknown"


async def connected(a: PeerTransport, b: PeerTransport, inbox_a: Inbox, inbox_b: Inbox) -> None:
    introduced(a, b)
    await deliver(a, b, inbox_b, Ping(-1))
    await deliver(b, a, inbox_a, Ping(-2))


@contextlib.asynccontextmanager
async def connected_pair() -> AsyncIterator[tuple[PeerTransport, PeerTransport, Inbox, Inbox]]:
    """Two transports of one cluster, ``node-a`` and ``node-b``, connected both ways."""
    key = new_cluster_key()
    inbox_a, inbox_b = Inbox(), Inbox()
    async with transport(key, "node-a", inbox_a) as a, transport(key, "node-b", inbox_b) as b:
        await connected(a, b, inbox_a, inbox_b)
        yield a, b, inbox_a, inbox_b


def seqs(inbox: Inbox, sender: str) -> list[int]:
    return [m.seq for m in inbox.of(sender) if m.seq >= 0]


def test_messages_posted_in_one_turn_arrive_in_order_in_one_frame_once_the_peer_reads_batches() -> None:
    async def main() -> None:
        async with connected_pair() as (a, b, inbox_a, inbox_b):
            to_b, to_a = f"127.0.0.1:{b.port}", f"127.0.0.1:{a.port}"
            # first round: b has never sent a-batch, so a sends one by one, then an empty probe
            for i in range(3):
                a.post(to_b, Ping(i))
            assert await until(lambda: seqs(inbox_b, "node-a") == [0, 1, 2])
            assert a.frames_sent == 4  # three messages and the probe
            # b now knows a reads batches: its answer of three goes as one frame
            for i in range(10, 13):
                b.post(to_a, Ping(i))
            assert await until(lambda: seqs(inbox_a, "node-b") == [10, 11, 12])
            assert b.frames_sent == 1
            # and so a learnt that b reads them: one frame from here on
            before = a.frames_sent
            for i in range(20, 25):
                a.post(to_b, Ping(i))
            assert await until(lambda: seqs(inbox_b, "node-a")[-5:] == [20, 21, 22, 23, 24])
            assert a.frames_sent == before + 1
            assert b.stats.received == len(inbox_b.items) and b.stats.dropped_bad == 0
            assert a.stats.sent >= 9  # messages, however many frames carried them

    asyncio.run(main())


def test_an_immediate_send_goes_after_what_was_posted_before_it() -> None:
    async def main() -> None:
        async with connected_pair() as (a, b, inbox_a, inbox_b):
            to_b = f"127.0.0.1:{b.port}"
            a.post(to_b, Ping(1))
            a.post(to_b, Ping(2), lazy=True)
            assert a.send(to_b, Ping(3))
            a.post(to_b, Ping(4))
            assert await until(lambda: seqs(inbox_b, "node-a") == [1, 2, 3, 4])

    asyncio.run(main())


def test_a_lazy_message_rides_with_the_next_one_goes_alone_when_none_comes_and_gives_way_to_a_newer_one() -> None:
    async def main() -> None:
        async with connected_pair() as (a, b, inbox_a, inbox_b):
            to_b, to_a = f"127.0.0.1:{b.port}", f"127.0.0.1:{a.port}"
            a.post(to_b, Ping(0))
            a.post(to_b, Ping(1))  # the probe that teaches b
            assert await until(lambda: len(seqs(inbox_b, "node-a")) == 2)
            b.post(to_a, Ping(100))
            b.post(to_a, Ping(101))  # b's batch teaches a
            assert await until(lambda: len(seqs(inbox_a, "node-b")) == 2)

            loop = asyncio.get_running_loop()
            frames, start = a.frames_sent, loop.time()
            a.post(to_b, Ping(2), lazy=True)
            await asyncio.sleep(0)  # a turn passes: a lazy message alone does not leave
            await asyncio.sleep(0)
            assert seqs(inbox_b, "node-a")[-1] == 1 and a.frames_sent == frames
            a.post(to_b, Ping(3))  # company: both leave now, in one frame
            assert await until(lambda: seqs(inbox_b, "node-a")[-2:] == [2, 3])
            assert a.frames_sent == frames + 1 and loop.time() - start < LAZY_S

            start = loop.time()
            a.post(to_b, Ping(4), lazy=True)  # no company: it goes alone, LAZY_S later
            assert await until(lambda: seqs(inbox_b, "node-a")[-1] == 4)
            assert loop.time() - start >= LAZY_S * 0.9
            assert a.frames_sent == frames + 2

            a.post(to_b, Ping(5), lazy=True)
            a.post(to_b, Ping(6), lazy=True)  # a newer renewal of the same kind: the older is moot
            a.post(to_b, Ping(7))
            assert await until(lambda: seqs(inbox_b, "node-a")[-2:] == [6, 7])
            assert 5 not in seqs(inbox_b, "node-a") and a.frames_sent == frames + 3

    asyncio.run(main())


class OlderNode(PeerTransport):
    """A node of a release before batches: it drops one as an unknown message type."""

    dropped_batches = 0

    def _batch(self, raw_sender: bytes, sender: str, batch: Batch) -> None:
        self.dropped_batches += 1
        self._drop(raw_sender, "unknown message tag 'peer.batch'", 0)


def test_a_node_that_never_sends_a_batch_gets_every_message_one_by_one() -> None:
    async def main() -> None:
        key = new_cluster_key()
        inbox_a, inbox_old = Inbox(), Inbox()
        old = OlderNode(key, "node-old", inbox_old, bind="127.0.0.1", port=0)
        async with transport(key, "node-a", inbox_a) as a, old:
            await connected(a, old, inbox_a, inbox_old)
            to_old = f"127.0.0.1:{old.port}"
            for i in range(40):
                a.post(to_old, Ping(2 * i))
                a.post(to_old, Ping(2 * i + 1), lazy=i % 2 == 0)
                await asyncio.sleep(0)
            assert await until(lambda: seqs(inbox_old, "node-a") == list(range(80)))
            assert old.dropped_batches == 1  # only the probe, and it carried nothing

    asyncio.run(main())


def test_a_bad_message_in_a_batch_is_dropped_alone() -> None:
    async def main() -> None:
        async with connected_pair() as (a, b, inbox_a, inbox_b):
            batch = Batch((codec.encode(Ping(7)), b"\xc1garbage", codec.encode(Batch(())), codec.encode(Ping(8))))
            assert a.send(f"127.0.0.1:{b.port}", batch)
            assert await until(lambda: seqs(inbox_b, "node-a") == [7, 8])
            assert b.stats.dropped_bad == 2  # the garbage and the batch inside the batch

    asyncio.run(main())


def test_lazy_messages_to_several_nodes_due_close_together_leave_in_one_wake_up() -> None:
    """A leader's renewals to many learners, each alone between their heartbeats: one timer."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        pushed: list[tuple[str, float]] = []
        outbox = Outbox(lambda address, data, count: pushed.append((address, loop.time())) or True, codec.encode)
        start = loop.time()
        outbox.post("e1", "a1", b"1", lazy=True, kind=Ping)
        await asyncio.sleep(LAZY_GATHER_S / 2)
        outbox.post("e2", "a2", b"2", lazy=True, kind=Ping)
        await asyncio.sleep(LAZY_S + LAZY_GATHER_S)
        assert [address for address, _ in pushed] == ["a1", "a2"]
        assert pushed[1][1] - pushed[0][1] < 0.01 and pushed[0][1] - start >= LAZY_S * 0.9  # one wake-up, on time
        outbox.post("e3", "a3", b"3", lazy=True, kind=Ping)
        await asyncio.sleep(LAZY_GATHER_S * 2)
        outbox.post("e4", "a4", b"4", lazy=True, kind=Ping)  # not due soon after e3's: its own
        await asyncio.sleep(LAZY_S + LAZY_GATHER_S * 2)
        assert [address for address, _ in pushed[2:]] == ["a3", "a4"] and pushed[3][1] - pushed[2][1] > LAZY_GATHER_S
        outbox.close()

    asyncio.run(main())
