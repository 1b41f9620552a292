"""Hypothesis strategies for hostile msgpack: any value msgpack can carry, and values shaped
after each registered message's annotations (so the fuzzer gets past the first type check)."""

from __future__ import annotations

import enum
import functools
import types
import typing
from typing import Any

import msgpack
from hypothesis import strategies as st

from swarmcompute import codec
from swarmcompute.api import messages  # noqa: F401 - registers the control messages
from swarmcompute.membership import messages as gossip_messages  # noqa: F401
from swarmcompute.node import cluster, cluster_messages  # noqa: F401
from swarmcompute.raft import durable  # noqa: F401
from swarmcompute.raft import messages as raft_messages  # noqa: F401
from swarmcompute.rules import lease  # noqa: F401
from swarmcompute.state import commands, snapshot  # noqa: F401

TAGS = sorted(codec._BY_TAG)

INTS = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.sampled_from(
        [0, 1, -1, codec.MAX_COUNT, codec.MAX_COUNT + 1, codec.MAX_INT, codec.MAX_INT + 1, -codec.MAX_INT - 1]
        + [2**63 - 1, 2**63, 2**64 - 1, -(2**63)]
    ),
)
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
TEXT = st.text(max_size=24)
SCALARS = st.one_of(st.none(), st.booleans(), INTS, FLOATS, TEXT, st.binary(max_size=24))


def ext(tag: Any, fields: Any) -> msgpack.ExtType:
    return msgpack.ExtType(1, msgpack.packb([tag, fields], use_bin_type=True))


@functools.cache
def any_values() -> st.SearchStrategy[Any]:
    """Any msgpack value, nested messages (ext types) included, some of them deep."""
    return st.recursive(
        SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=6),
            st.dictionaries(st.one_of(TEXT, INTS), inner, max_size=4),
            st.builds(ext, st.sampled_from(TAGS), st.lists(inner, max_size=6)),
            st.builds(lambda code, data: msgpack.ExtType(code, data), st.integers(0, 127), st.binary(max_size=8)),
        ),
        max_leaves=20,
    )


def _for_hint(hint: Any, depth: int) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(hint)
    if hint is Any:
        return any_values()
    if origin is typing.Annotated:
        return _for_hint(typing.get_args(hint)[0], depth)
    if hint is int:
        return INTS
    if hint is float:
        return st.one_of(FLOATS, INTS)
    if hint is str:
        return TEXT
    if hint is bytes:
        return st.binary(max_size=32)
    if hint is bool:
        return st.booleans()
    if hint is type(None):
        return st.none()
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*[_for_hint(a, depth) for a in typing.get_args(hint)])
    if origin is typing.Literal:
        return st.sampled_from(typing.get_args(hint))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return st.one_of(st.sampled_from([m.value for m in hint]), TEXT)
    if isinstance(hint, type) and hint in codec._TAG_OF:
        if depth > 3:
            return st.builds(ext, st.just(codec._TAG_OF[hint]), st.just([]))
        return st.builds(ext, st.just(codec._TAG_OF[hint]), fields_for(hint, depth + 1))
    args = typing.get_args(hint)
    if origin is dict:
        return st.dictionaries(_for_hint(args[0], depth), _for_hint(args[1], depth), max_size=4)
    if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        return st.tuples(*[_for_hint(a, depth) for a in args]).map(list)
    if origin in (tuple, list, frozenset, set):
        return st.lists(_for_hint(args[0], depth) if args else any_values(), max_size=4)
    return any_values()


@functools.cache
def fields_for(cls: type, depth: int = 0) -> st.SearchStrategy[list[Any]]:
    """Mostly well-typed positional fields for ``cls``, sometimes one short or one long."""
    hints = typing.get_type_hints(cls, include_extras=True)
    names = [name for name, _ in codec._fields_of(cls)]
    typed = st.tuples(*[st.one_of(_for_hint(hints[n], depth), any_values()) for n in names]).map(list)
    return st.one_of(
        typed,
        typed,
        typed,
        typed.map(lambda v: v[:-1]),
        st.tuples(typed, any_values()).map(lambda t: [*t[0], t[1]]),
    )


@st.composite
def message_frames(draw: st.DrawFn, tags: tuple[str, ...] | None = None) -> bytes:
    """``msgpack([version, tag, fields])`` bytes: mostly version 1 and a real tag."""
    tag = draw(st.sampled_from(tags or TAGS))
    fields = draw(fields_for(codec._BY_TAG[tag]))
    version = draw(st.one_of(st.just(1), st.just(1), st.just(1), SCALARS))
    return msgpack.packb([version, tag, fields], use_bin_type=True)


def mutated(data: bytes) -> st.SearchStrategy[bytes]:
    """``data`` with a few bytes flipped, cut, or inserted."""
    if not data:
        return st.binary(max_size=64)

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            if not out:
                break
            i = draw(st.integers(0, len(out) - 1))
            kind = draw(st.sampled_from(["flip", "cut", "insert", "set"]))
            if kind == "flip":
                out[i] ^= 1 << draw(st.integers(0, 7))
            elif kind == "cut":
                del out[i : i + draw(st.integers(1, 8))]
            elif kind == "insert":
                out[i:i] = draw(st.binary(min_size=1, max_size=8))
            else:
                out[i] = draw(st.sampled_from([0x00, 0x7F, 0xC1, 0xCF, 0xD3, 0xDC, 0xDD, 0xDF, 0xC7, 0xFF]))
        return bytes(out)

    return mutate()
