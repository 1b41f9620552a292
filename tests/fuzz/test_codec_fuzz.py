"""The codec and the control socket's framing against hostile bytes: a ``ProtocolError`` or a
bounded, re-encodable message, never another exception, a crash or an unbounded value."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
import typing
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmcompute import codec
from swarmcompute.api import messages as m
from swarmcompute.api.protocol import frame
from swarmcompute.api.server import read_message
from swarmcompute.errors import ProtocolError
from swarmcompute.membership.messages import MemberState, MemberUpdate, Ping
from swarmcompute.raft.messages import AppendRequest, Entry, EntryKind, VoteRequest
from swarmcompute.state.commands import SubmitJobs
from swarmcompute.state.job import JobSpec

from .strategies import any_values, message_frames, mutated

SPEC = JobSpec(id="a1", argv=("echo", "hi"), name="n", env={"K": "V"}, timeout_s=3.0, after=("b",))
CORPUS = [
    codec.encode(msg)
    for msg in (
        m.Submit((SPEC,), attach=True),
        m.ListJobs(10, ("running",)),
        m.Logs("a1", True, 2),
        SubmitJobs((SPEC, SPEC), 5.0, "n1"),
        VoteRequest(7, "n1", "n2", 10, 6),
        AppendRequest(7, "n1", "n2", 3, 6, (Entry(7, 4, EntryKind.NORMAL, b"x"), Entry(7, 5, EntryKind.NOOP, b"")), 3),
        Ping("n1", "127.0.0.1:1", 4, "n2", (MemberUpdate("n3", "h:1", 2, MemberState.ALIVE, None),)),
    )
]


def check_bounded(value: object) -> None:
    """Every int and float a decoded message holds in a typed field is within the codec's bounds."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            if "Any" not in str(_hints(type(value))[f.name]):  # Any: the sender's own data, unchecked
                check_bounded(getattr(value, f.name))
    elif isinstance(value, bool):
        pass
    elif isinstance(value, int):
        assert -codec.MAX_INT <= value <= codec.MAX_INT
    elif isinstance(value, (tuple, frozenset)):
        for item in value:
            check_bounded(item)
    elif isinstance(value, dict):
        for item in value.values():
            check_bounded(item)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def decoded_or_refused(data: bytes) -> object | None:
    try:
        msg = codec.decode(data)
    except ProtocolError:
        return None
    for f in dataclasses.fields(msg):
        value = getattr(msg, f.name)
        if isinstance(value, float) and _hints(type(msg))[f.name] is not Any:  # Any: the sender's own data
            assert math.isfinite(value), f.name
    if not isinstance(msg, (m.Reply,)):  # Reply.value is Any: the daemon's own JSON
        check_bounded(msg)
    again = codec.encode(msg)  # what was accepted can be sent on, and reads back the same
    assert codec.encode(codec.decode(again)) == again
    return msg


@given(st.binary(max_size=512))
def test_any_bytes(data: bytes) -> None:
    decoded_or_refused(data)


@given(message_frames())
def test_hostile_messages_of_every_registered_type(data: bytes) -> None:
    decoded_or_refused(data)


@given(st.sampled_from(CORPUS).flatmap(mutated))
def test_mutated_real_messages(data: bytes) -> None:
    decoded_or_refused(data)


@given(any_values())
def test_any_msgpack_value_as_fields(values: object) -> None:
    decoded_or_refused(msgpack.packb([1, "api.submit", values], use_bin_type=True))


@given(st.integers(1, 3000))
def test_nesting_is_bounded_at_any_depth(levels: int) -> None:
    inner = msgpack.packb(["api.status", []])
    for _ in range(levels):
        inner = msgpack.packb(["api.reply", [msgpack.ExtType(1, inner)]])
    data = msgpack.packb([1, "api.reply", [msgpack.ExtType(1, inner)]])
    if levels < codec.MAX_DEPTH:
        assert isinstance(codec.decode(data), m.Reply)
    else:
        with pytest.raises(ProtocolError):
            codec.decode(data)


def _read_all(data: bytes) -> list[object]:
    async def go() -> list[object]:
        reader = asyncio.StreamReader(limit=2**20)
        reader.feed_data(data)
        reader.feed_eof()
        out = []
        while (msg := await read_message(reader)) is not None:
            out.append(msg)
        return out

    return asyncio.run(go())


@given(
    st.lists(
        st.one_of(
            st.binary(max_size=64),
            message_frames().map(lambda b: len(b).to_bytes(4, "big") + b),
            st.sampled_from([frame(m.Status()), frame(m.Submit((SPEC,)))]),
            st.sampled_from(CORPUS).flatmap(mutated).map(lambda b: len(b).to_bytes(4, "big") + b),
        ),
        max_size=4,
    )
)
def test_control_frames(chunks: list[bytes]) -> None:
    """The daemon's reader of the control socket: messages, then the end, or a ProtocolError."""
    try:
        _read_all(b"".join(chunks))
    except ProtocolError:
        pass
