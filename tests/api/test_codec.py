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


@pytest.mark.parametrize("seed", range(20))
def test_generated_decoders_accept_exactly_what_the_field_by_field_path_accepts(seed: int) -> None:
    """``build`` runs a generated decoder per class; it must agree with the reference path on
    every input, valid or not (wrong types, bools for numbers, ints for floats, None)."""
    import random

    from swarmcompute.api import messages  # noqa: F401 - registers the control messages
    from swarmcompute.node import cluster_messages  # noqa: F401
    from swarmcompute.state import commands  # noqa: F401

    rng = random.Random(seed)
    pool: list[object] = ["x", "", 0, 7, -1, 2.5, True, False, None, b"b", [], ["a"], {}, {"k": "v"}, [1, 2]]
    for tag, cls in sorted(codec._BY_TAG.items()):
        width = len(codec._fields_of(cls))
        for _ in range(30):
            values = [rng.choice(pool) for _ in range(width)]
            try:
                expected: object = codec._checked_build(tag, cls, values)
            except ProtocolError:
                expected = ProtocolError
            try:
                got: object = codec.build(tag, values)
            except ProtocolError:
                got = ProtocolError
            assert got == expected, (tag, values)
