"""Bad input on the control socket is dropped with a log line; the daemon keeps serving (invariant 6)."""

from __future__ import annotations

import struct

import msgpack
import pytest

from swarmcompute.api import messages as m
from swarmcompute.api.protocol import BlockingChannel, frame
from swarmcompute.testing.daemons import DaemonProcess, length_prefixed, send_raw_control


@pytest.mark.parametrize(
    "payload",
    [
        b"GET / HTTP/1.1\r\n\r\n",
        length_prefixed(b"\xc1\xc1\xc1"),
        length_prefixed(msgpack.packb([1, "api.submit", [[1, 2, 3], True]])),
        length_prefixed(msgpack.packb([1, "api.no_such_request", []])),
        length_prefixed(msgpack.packb([99, "api.status", []])),
        length_prefixed(msgpack.packb([1, "api.reply", [None]])),
        struct.pack(">I", 2**31) + b"x" * 100,
        frame(m.Status())[:7],
    ],
    ids=["http", "garbage", "wrong-types", "unknown-type", "other-version", "a-reply", "huge-frame", "truncated"],
)
def test_bad_frames_are_dropped_and_the_daemon_keeps_serving(daemon: DaemonProcess, payload: bytes) -> None:
    send_raw_control(daemon, payload)
    assert daemon.alive()
    job_id = daemon.client.submit(["echo", "still here"])
    assert daemon.client.wait(job_id, timeout=30)["state"] == "succeeded"
    assert "control_message_dropped" in daemon.log_path.read_text()


def test_a_bad_request_gets_an_error_reply(daemon: DaemonProcess) -> None:
    answer = send_raw_control(daemon, length_prefixed(msgpack.packb([1, "api.no_such_request", []])))
    (length,) = struct.unpack(">I", answer[:4])
    reply = msgpack.unpackb(answer[4 : 4 + length])
    assert reply[1] == "api.error" and reply[2][0] == "ProtocolError"


def test_other_connections_are_unaffected(daemon: DaemonProcess) -> None:
    with BlockingChannel.connect(daemon.state_dir / "control.sock", 10) as good:
        send_raw_control(daemon, length_prefixed(b"\xff" * 64))
        good.send(m.Status())
        assert isinstance(good.receive(), m.Reply)
