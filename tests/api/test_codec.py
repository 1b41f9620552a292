"""The codec turns every kind of bad input into a ProtocolError, never a crash."""

from __future__ import annotations

import msgpack
import pytest

from swarmcompute import codec
from swarmcompute.api import messages as m
from swarmcompute.errors import ProtocolError
from swarmcompute.state.job import JobSpec


def test_round_trip_with_nested_messages() -> None:
    msg = m.Submit((JobSpec(id="a", argv=("echo", "hi"), env={"K": "V"}, timeout_s=3.0),), attach=True)
    assert codec.decode(codec.encode(msg)) == msg


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        b"\xff" * 10,
        codec.encode(m.Status())[:-1] + b"\xde",
        msgpack.packb([1, "api.nope", []]),
        msgpack.packb([2, "api.status", []]),
        msgpack.packb([1, "api.logs", [5, True, None]]),
        msgpack.packb([1, "api.logs", ["x", "yes", None]]),
        msgpack.packb([1, "api.logs", []]),
        msgpack.packb([1, "api.logs", ["x", False, None, 1, 2]]),
        msgpack.packb({"a": 1}),
        msgpack.packb([1, "api.submit", [[msgpack.ExtType(9, b"x")], True]]),
        msgpack.packb([1, "api.submit", [[msgpack.ExtType(1, b"\xc1")], True]]),
    ],
)
def test_garbage_is_a_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        codec.decode(data)


def test_size_limit() -> None:
    with pytest.raises(ProtocolError):
        codec.decode(codec.encode(m.Status()), max_bytes=2)


def test_version_mismatch_says_so() -> None:
    with pytest.raises(ProtocolError, match="protocol version 2"):
        codec.decode(msgpack.packb([2, "api.status", []]))
