"""The codec turns every kind of bad input into a ProtocolError, never a crash."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest

from swarmcompute import codec
from swarmcompute.api import messages as m
from swarmcompute.client import job_spec
from swarmcompute.errors import ProtocolError, ProtocolVersionError
from swarmcompute.state.commands import FinishAttempt
from swarmcompute.state.job import AttemptEnd, JobSpec


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
    with pytest.raises(ProtocolVersionError, match="protocol version 2") as raised:
        codec.decode(msgpack.packb([2, "api.status", []]))
    assert raised.value.version == 2


def test_fields_a_newer_minor_version_added_at_the_end_are_read_past() -> None:
    """A rolling upgrade: the next minor version adds fields at the end of a message (nested ones
    too); this version decodes what it knows and ignores the rest, on both decoding paths."""
    spec = job_spec(["echo", "hi"], name="n")
    newer_spec = msgpack.ExtType(1, msgpack.packb(["job.spec", [*codec.to_msgpack_obj(spec)[1], "new", 7]]))
    frame = msgpack.packb([1, "api.submit", [[newer_spec], True, {"a": "field"}, [1, 2]]])
    assert codec.decode(frame) == m.Submit((spec,), attach=True)
    assert codec.decode(msgpack.packb([1, "api.logs", ["x", False, None, True, 1, 2]])) == m.Logs(
        "x", False, None, True
    )


def test_only_the_handshake_messages_are_read_from_another_major_version() -> None:
    from swarmcompute.node.cluster_messages import JoinRequest, VersionRefused

    join = JoinRequest("id", "n3", "10.0.0.3:7340", "2.0", "2.0.0")
    assert codec.decode(codec.encode(join, version=2)) == join
    refused = VersionRefused("n1", "10.0.0.1:7340", "1.0", "0.1.0", "nodes of different major versions ...")
    assert codec.decode(codec.encode(refused), version=2) == refused
    with pytest.raises(ProtocolVersionError):
        codec.decode(codec.encode(m.Status(), version=2))


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
    pool += [2**52, 2**52 + 1, 2**53 - 1, 2**53, -(2**53), 2**64 - 1, float("nan"), float("inf"), -float("inf")]
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


def _nested_ext(levels: int) -> bytes:
    inner = msgpack.packb(["api.status", []])
    for _ in range(levels):
        inner = msgpack.packb(["api.reply", [msgpack.ExtType(1, inner)]])
    return msgpack.packb([1, "api.reply", [msgpack.ExtType(1, inner)]])


def test_deeply_nested_messages_are_refused_before_they_are_unpacked() -> None:
    """200 nested ext types (731 bytes) used to overflow the C stack and kill the process."""
    assert isinstance(codec.decode(_nested_ext(codec.MAX_DEPTH - 1)), m.Reply)
    for levels in (codec.MAX_DEPTH, 200, 5000):
        with pytest.raises(ProtocolError, match="nested"):
            codec.decode(_nested_ext(levels))
    with pytest.raises(ProtocolError):
        codec.decode(b"\x91" * 100_000 + b"\xc0")  # plain arrays: msgpack's own stack bound


@pytest.mark.parametrize("value", [2**53, -(2**53), 2**63, 2**64 - 1, -(2**63)])
def test_ints_out_of_range_are_refused(value: int) -> None:
    with pytest.raises(ProtocolError, match="outside"):
        codec.decode(msgpack.packb([1, "api.list_jobs", [value, []]]))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 2**60])
def test_floats_are_finite_and_in_range(value: float) -> None:
    with pytest.raises(ProtocolError):
        codec.decode(msgpack.packb([1, "api.wait", [[], value]]))


def test_collection_and_string_sizes_are_bounded() -> None:
    with pytest.raises(ProtocolError):
        codec.decode(msgpack.packb([1, "api.wait", [["x"] * (codec.MAX_ARRAY_LEN + 1), None]]))
    with pytest.raises(ProtocolError):
        codec.decode(msgpack.packb([1, "api.reply", [{i: 0 for i in range(codec.MAX_MAP_LEN + 1)}]]))
    with pytest.raises(ProtocolError, match=r"^undecodable msgpack: 4194305 exceeds max_str_len\(4194304\)$"):
        codec.decode(msgpack.packb([1, "api.get_job", ["x" * (codec.MAX_STR_BYTES + 1), True]]))  # says which bound


def test_error_messages_stay_short_for_huge_values() -> None:
    with pytest.raises(ProtocolError) as info:
        codec.decode(msgpack.packb([1, "t" * 100_000, []]))
    assert len(str(info.value)) < 200


def test_a_decoded_message_is_the_frozen_object_its_constructor_builds() -> None:
    """The generated decoders set a frozen slots class's fields without calling its __init__ (what
    that __init__ does, in half the time); the result is equal, hashes alike and stays frozen."""
    spec = JobSpec(id="a", argv=("echo", "hi"), env={"K": "V"}, timeout_s=3.0, priority=2)
    decoded = codec.decode(codec.encode(spec))
    assert decoded == spec and type(decoded) is JobSpec
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.priority = 3  # type: ignore[misc]
    result = FinishAttempt("a", 1, "n1", 0, AttemptEnd.EXITED, None, b"tail", 1.0, 2.0)
    assert hash(codec.decode(codec.encode(result))) == hash(result)


@dataclasses.dataclass(slots=True)
class _Checked:
    n: int

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError("n must not be negative")


@dataclasses.dataclass(slots=True)
class _Watched:
    n: int

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value * 2 if isinstance(value, int) else value)


def test_a_class_whose_init_does_more_than_set_its_fields_is_built_by_its_init() -> None:
    assert codec._fast_builder(_Checked)([1]) == _Checked(1)
    with pytest.raises(ValueError, match="negative"):
        codec._fast_builder(_Checked)([-1])
    assert codec._fast_builder(_Watched)([2]).n == 4
