"""PeerTransport over real sockets on 127.0.0.1: delivery, authentication, bad input, bounds."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
import zmq
from structlog.testing import capture_logs

from swarmcompute import codec
from swarmcompute.errors import ConfigError, FrameTooLargeError
from swarmcompute.transport import PeerTransport, new_cluster_key

from .helpers import Blob, Inbox, Ping, deliver, events, member_dealer, raw_dealer, transport, until


def test_two_members_exchange_messages_both_ways() -> None:
    async def main() -> None:
        key = new_cluster_key()
        inbox_a, inbox_b = Inbox(), Inbox()
        async with transport(key, "node-a", inbox_a) as a, transport(key, "node-b", inbox_b) as b:
            await deliver(a, b, inbox_b, Ping(1, "hello b"))
            await deliver(b, a, inbox_a, Blob(b"\x00\xffbytes", ("x", "y")))
            # once connected, a burst arrives complete and in order
            for i in range(100, 200):
                assert a.send(f"tcp://127.0.0.1:{b.port}", Ping(i))
            assert await until(lambda: len(inbox_b.items) >= 101)
            seqs = [m.seq for m in inbox_b.of("node-a") if m.seq >= 100]
            assert seqs == list(range(100, 200))
            assert {s for s, _ in inbox_b.items} == {"node-a"}
            assert {s for s, _ in inbox_a.items} == {"node-b"}
            assert b.stats.received == len(inbox_b.items)
            assert a.stats.sent >= 101 and a.stats.peers == 1
            assert b.stats.dropped_bad == 0 and b.stats.auth_refused == 0

    asyncio.run(main())


def test_a_process_without_the_key_can_deliver_nothing() -> None:
    async def main() -> None:
        key = new_cluster_key()
        inbox, good_inbox, evil_inbox = Inbox(), Inbox(), Inbox()
        with capture_logs() as logs:
            async with (
                transport(key, "node-a", inbox) as a,
                transport(key, "node-good", good_inbox) as good,
                transport(new_cluster_key(), "node-evil", evil_inbox) as evil,
            ):
                target = f"127.0.0.1:{a.port}"
                # the stranger tries for a while: nothing is ever accepted for sending
                deadline = time.monotonic() + 0.5
                while time.monotonic() < deadline:
                    assert evil.send(target, Ping(666, "let me in")) is False
                    await asyncio.sleep(0.01)
                # positive control: the path works for a member
                await deliver(good, a, inbox, Ping(1, "member"))
                assert await until(lambda: a.stats.auth_refused > 0)
                await asyncio.sleep(0.2)  # a bounded extra wait for anything late from the stranger
                assert inbox.of("node-evil") == []
                assert all(m.seq != 666 for _, m in inbox.items)
                assert evil.stats.sent == 0
        refused = events(logs, "peer_auth_refused")
        assert refused and "cluster's key" in refused[0]["reason"]
        # A refused handshake says where it came from (unless the connection was gone before the
        # monitor read its ACCEPTED event: then "unknown").
        assert all("remote" in e for e in refused) and any(e["remote"] == "127.0.0.1" for e in refused)

    asyncio.run(main())


def test_zap_refuses_a_client_that_knows_the_server_key_but_not_the_secret() -> None:
    """The ZAP path proper: right server key (it is not secret), wrong client key."""

    async def main() -> None:
        key = new_cluster_key()
        inbox, good_inbox = Inbox(), Inbox()
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        public, secret = zmq.curve_keypair()
        try:
            with capture_logs() as logs:
                async with transport(key, "node-a", inbox) as a, transport(key, "node-good", good_inbox) as good:
                    intruder = raw_dealer(
                        ctx,
                        a.port,
                        server_key=key.curve_public_key,
                        public_key=public,
                        secret_key=secret,
                    )
                    for _ in range(5):
                        try:
                            intruder.send_multipart([b"node-x", codec.encode(Ping(666))], flags=zmq.NOBLOCK)
                        except zmq.Again:
                            pass
                    assert await until(lambda: events(logs, "peer_auth_refused") != [])
                    await deliver(good, a, inbox, Ping(1))
                    intruder.close()
                    assert inbox.of("node-x") == []
            refused = events(logs, "peer_auth_refused")[0]
            assert refused["remote"] == "127.0.0.1"
            assert refused["reason"] == "the peer's key is not the cluster key"
        finally:
            ctx.destroy(linger=0)

    asyncio.run(main())


def test_plaintext_clients_and_raw_garbage_leave_the_transport_running() -> None:
    async def main() -> None:
        key = new_cluster_key()
        inbox, good_inbox = Inbox(), Inbox()
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            with capture_logs() as logs:
                async with transport(key, "node-a", inbox) as a, transport(key, "node-good", good_inbox) as good:
                    # a ZeroMQ client without CurveZMQ
                    plain = raw_dealer(ctx, a.port)
                    plain.send_multipart([b"node-plain", codec.encode(Ping(666))], flags=zmq.NOBLOCK)
                    # raw TCP: garbage, a truncated msgpack message, a 100 MB stream
                    payloads = [
                        b"\x00\x01garbage\xff" * 100,
                        codec.encode(Ping(7, "x" * 100))[:-10],
                        b"\xff" + b"\x00" * 8 + b"\x7f" + b"\xaa" * (100 * 1024 * 1024),
                    ]
                    for payload in payloads:
                        await _blast(a.port, payload)
                    # the plaintext client is refused in its handshake; raw garbage may just be hung up on
                    assert await until(lambda: a.stats.auth_refused >= 1)
                    await deliver(good, a, inbox, Ping(1, "still alive"))
                    plain.close()
                    assert inbox.of("node-plain") == []
                    assert [s for s, _ in inbox.items] == ["node-good"] * len(inbox.items)
            refusals = events(logs, "peer_auth_refused")
            assert "the peer does not use CurveZMQ" in [e["reason"] for e in refusals]
            assert all(e["remote"] in ("127.0.0.1", "unknown") for e in refusals)
        finally:
            ctx.destroy(linger=0)

    asyncio.run(main())


async def _blast(port: int, payload: bytes) -> None:
    """Write ``payload`` on a raw TCP connection; the peer hanging up on us is expected."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await asyncio.wait_for(writer.drain(), timeout=10)
        await asyncio.wait_for(reader.read(1024), timeout=10)  # the server's greeting, or its hang-up
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


def test_bad_frames_from_a_member_are_dropped_and_logged() -> None:
    """Even a key holder cannot crash the loop: every malformed frame is dropped with its reason."""

    async def main() -> None:
        key = new_cluster_key()
        inbox, good_inbox = Inbox(), Inbox()
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            with capture_logs() as logs:
                async with (
                    transport(key, "node-a", inbox, max_message_bytes=1024 * 1024) as a,
                    transport(key, "node-good", good_inbox) as good,
                ):
                    member = member_dealer(ctx, key, a.port)
                    a.describe_sender = {"node-m": "10.9.9.9:7340"}.get  # what the owner knows of it
                    good_frame = codec.encode(Ping(5, "ok"))
                    bad_frames: list[list[bytes]] = [
                        [b"node-m", b"\x00\x01garbage\xff"],  # not msgpack
                        [b"node-m", good_frame[:-2]],  # truncated msgpack
                        [b"node-m", b"\x93\x02" + good_frame[2:]],  # protocol version 2
                        [b"node-m", codec.encode(Ping(5)).replace(b"test.ping", b"test.nope")],  # unknown tag
                        [b"node-m", b"\x93\x01\xa9test.ping\x92\xa3one\xa3two"],  # seq is a str
                        [b"node-m", b"\x91\x01"],  # not [version, tag, fields]
                        [b"node-m", good_frame, good_frame],  # too many frames
                        [good_frame],  # no sender frame
                        [b"", good_frame],  # empty sender
                        [b"\xff\xfe", good_frame],  # sender not UTF-8
                    ]
                    # wait for the handshake with a good frame first (IMMEDIATE drops before it)
                    assert await _send_until_delivered(
                        member, [b"node-m", good_frame], lambda: inbox.of("node-m") != []
                    )
                    for frames in bad_frames:
                        member.send_multipart(frames, flags=zmq.NOBLOCK)
                    assert await until(lambda: a.stats.dropped_bad >= len(bad_frames))
                    # an oversized frame: libzmq drops the connection before buffering it
                    big = Blob(b"\x00" * (2 * 1024 * 1024))
                    monitor = member.get_monitor_socket(zmq.EVENT_DISCONNECTED)
                    member.send_multipart([b"node-m", codec.encode(big)], flags=zmq.NOBLOCK)
                    assert await until(lambda: monitor.poll(0) != 0), "the oversized frame did not cut the connection"
                    member.disable_monitor()
                    monitor.close()
                    await deliver(good, a, inbox, Ping(1, "still alive"))
                    member.close()
                    assert inbox.of("node-m") == [Ping(5, "ok")]
                    assert a.stats.dropped_bad == len(bad_frames)
            reasons = [e["reason"] for e in events(logs, "peer_message_dropped")]
            assert len(reasons) == len(bad_frames)
            assert any("protocol version 2 is not supported" in r for r in reasons)
            assert any("unknown message type 'test.nope'" in r for r in reasons)
            assert any("test.ping.seq" in r for r in reasons)
            assert any("got 3 frames" in r for r in reasons)
            assert any("got 1 frames" in r for r in reasons)
            assert any("empty" in r for r in reasons)
            assert any("not UTF-8" in r for r in reasons)
            assert [e["sender"] for e in events(logs, "peer_message_dropped")][:7] == ["node-m"] * 7
            assert [e["address"] for e in events(logs, "peer_message_dropped")][:7] == ["10.9.9.9:7340"] * 7
        finally:
            ctx.destroy(linger=0)

    asyncio.run(main())


def test_a_100_mb_frame_from_a_member_leaves_the_transport_running() -> None:
    async def main() -> None:
        key = new_cluster_key()
        inbox, good_inbox = Inbox(), Inbox()
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            async with transport(key, "node-a", inbox) as a, transport(key, "node-good", good_inbox) as good:
                member = member_dealer(ctx, key, a.port)
                ok = codec.encode(Ping(5, "ok"))
                assert await _send_until_delivered(member, [b"node-m", ok], lambda: inbox.of("node-m") != [])
                monitor = member.get_monitor_socket(zmq.EVENT_DISCONNECTED)
                member.send_multipart([b"node-m", b"\x00" * (100 * 1024 * 1024)], flags=zmq.NOBLOCK, copy=False)
                assert await until(lambda: monitor.poll(0) != 0, timeout_s=20), (
                    "the 100 MB frame did not cut the connection"
                )
                member.disable_monitor()
                monitor.close()
                await deliver(good, a, inbox, Ping(1, "still alive"))
                member.close()
                got = inbox.of("node-m")  # the ok may have been sent twice before the first was read
                assert got and all(msg == Ping(5, "ok") for msg in got), got
        finally:
            ctx.destroy(linger=0)

    asyncio.run(main())


async def _send_until_delivered(sock: zmq.Socket[bytes], frames: list[bytes], arrived, timeout_s: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not arrived():
        if time.monotonic() > deadline:
            return False
        try:
            sock.send_multipart(frames, flags=zmq.NOBLOCK)
        except zmq.Again:
            pass
        await asyncio.sleep(0.02)
    return True


def test_sending_to_a_dead_address_never_blocks() -> None:
    async def main() -> None:
        key = new_cluster_key()
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            dead_port = s.getsockname()[1]
        async with transport(key, "node-a", Inbox()) as a:
            for address in (f"127.0.0.1:{dead_port}", "10.255.255.1:7340"):  # refused; black hole
                start = time.monotonic()
                results = [a.send(address, Ping(i)) for i in range(1000)]
                elapsed = time.monotonic() - start
                assert not any(results)
                assert elapsed < 0.5, f"1000 sends to {address} took {elapsed:.3f} s"
            assert a.stats.dropped_full == 2000 and a.stats.sent == 0

    asyncio.run(main())


def test_a_slow_peer_fills_its_bounded_queue_and_further_sends_are_dropped() -> None:
    async def main() -> None:
        key = new_cluster_key()
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        slow = ctx.socket(zmq.ROUTER)  # a member that never reads
        try:
            slow.setsockopt(zmq.LINGER, 0)
            slow.setsockopt(zmq.RCVHWM, 1)
            slow.setsockopt(zmq.RCVBUF, 64 * 1024)
            slow.setsockopt(zmq.CURVE_SERVER, 1)
            slow.setsockopt(zmq.CURVE_SECRETKEY, key.curve_secret_key)
            slow_port = slow.bind_to_random_port("tcp://127.0.0.1")
            async with transport(key, "node-a", Inbox(), send_hwm=10) as a:
                address = f"127.0.0.1:{slow_port}"
                blob = Blob(b"\x00" * 65536)
                assert await until(lambda: a.send(address, blob))  # connected
                start = time.monotonic()
                for _ in range(10_000):
                    if not a.send(address, blob):
                        break
                elapsed = time.monotonic() - start
                assert a.stats.dropped_full >= 1, "the queue never filled"
                assert a.stats.sent < 10_000
                assert elapsed < 5.0
        finally:
            slow.close()
            ctx.destroy(linger=0)

    asyncio.run(main())


def test_dealers_are_bounded_and_forgettable() -> None:
    async def main() -> None:
        key = new_cluster_key()
        async with transport(key, "node-a", Inbox(), max_peers=2) as a:
            for port in (1, 2, 3):
                a.send(f"127.0.0.1:{port}", Ping(0))
            assert a.stats.peers == 2
            a.forget("tcp://127.0.0.1:3")
            assert a.stats.peers == 1
            a.forget("127.0.0.1:9")  # unknown: no-op
            assert a.send("not an address", Ping(0)) is False
            assert a.stats.peers == 1

    asyncio.run(main())


def test_handler_errors_and_programming_errors() -> None:
    async def main() -> None:
        key = new_cluster_key()
        calls: list[object] = []

        def explode(sender: str, msg: object) -> None:
            calls.append(msg)
            if len(calls) == 1:
                raise RuntimeError("handler bug")

        good_inbox = Inbox()
        with capture_logs() as logs:
            async with (
                PeerTransport(key, "node-a", explode, bind="127.0.0.1", port=0, max_message_bytes=1024) as a,
                transport(key, "node-good", good_inbox) as good,
            ):
                address = f"127.0.0.1:{a.port}"
                assert await until(lambda: good.send(address, Ping(1)))
                assert await until(lambda: len(calls) >= 1)
                assert await until(lambda: bool(good.send(address, Ping(2))) and len(calls) >= 2)
                with pytest.raises(FrameTooLargeError):
                    a.send(address, Blob(b"\x00" * 2048))
                with pytest.raises(TypeError):
                    a.send(address, object())
        assert events(logs, "peer_handler_failed")

    asyncio.run(main())


def test_port_in_use_is_a_config_error() -> None:
    async def main() -> None:
        key = new_cluster_key()
        async with transport(key, "node-a", Inbox()) as a:
            other = PeerTransport(key, "node-b", Inbox(), bind="127.0.0.1", port=a.port)
            with pytest.raises(ConfigError, match="--port"):
                await other.start()
            await other.close()
        with pytest.raises(ConfigError):
            PeerTransport(key, "", Inbox())

    asyncio.run(main())


def test_one_node_over_two_addresses_is_one_sender_and_nothing_flaps() -> None:
    """Node identity is the node id, not the address: two live connections from one node coexist."""

    async def main() -> None:
        key = new_cluster_key()
        inbox = Inbox()
        async with (
            transport(key, "node-a", Inbox()) as a,
            PeerTransport(key, "node-b", inbox, bind="0.0.0.0", port=0) as b,
        ):
            first, second = f"127.0.0.1:{b.port}", f"127.0.0.2:{b.port}"
            await deliver_via(a, first, inbox, Ping(1))
            await deliver_via(a, second, inbox, Ping(2))
            for i in range(10, 60):
                assert a.send(first if i % 2 else second, Ping(i))
                await asyncio.sleep(0.002)
            assert await until(lambda: len(inbox.items) >= 52)
            assert sorted(m.seq for m in inbox.of("node-a") if m.seq >= 10) == list(range(10, 60))
            assert {s for s, _ in inbox.items} == {"node-a"}
            assert a.stats.peers == 2

    asyncio.run(main())


async def deliver_via(sender: PeerTransport, address: str, inbox: Inbox, msg: Ping) -> None:
    deadline = time.monotonic() + 5
    while msg not in inbox.of(sender.node_id):
        assert time.monotonic() < deadline, f"{msg!r} never arrived via {address}"
        sender.send(address, msg)
        await asyncio.sleep(0.01)


def test_a_flood_of_bad_frames_is_logged_ten_lines_per_ten_seconds() -> None:
    async def main() -> None:
        key = new_cluster_key()
        inbox = Inbox()
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            with capture_logs() as logs:
                async with transport(key, "node-a", inbox) as a:
                    member = member_dealer(ctx, key, a.port)
                    good = codec.encode(Ping(1))
                    assert await _send_until_delivered(member, [b"node-m", good], lambda: inbox.of("node-m") != [])
                    for _ in range(500):
                        member.send_multipart([b"node-m", b"\x00garbage"], flags=zmq.NOBLOCK)
                    assert await until(lambda: a.stats.dropped_bad == 500)
                    member.close()
            lines = events(logs, "peer_message_dropped")
            assert len(lines) == 10  # the rest counted, and said on the next line let through
        finally:
            ctx.destroy(linger=0)

    asyncio.run(main())
