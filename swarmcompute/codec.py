"""msgpack encoding of typed messages: the only place that knows the wire format.

Every message, log command and control request is a frozen dataclass registered
here under a short, stable tag. On the wire a message is

    msgpack([PROTOCOL_VERSION, tag, [field values in declaration order]])

with nested registered dataclasses carried as msgpack ext type 1 holding
``[tag, [fields]]``. Decoding checks the version, the tag, the field count and
every field's type against the dataclass annotations, so garbage from a socket
becomes a ``ProtocolError`` (invariant 6) and never a half-built object.

Why positional fields: frames stay small and decoding fast; adding a field at
the end with a default keeps old frames readable, and a decoder ignores fields past
the ones it knows, so a node of the next minor protocol version (``swarmcompute.versions``)
may add fields at the end that this one reads past.

The envelope's version is the protocol's *major* version: a message of another major is a
``ProtocolVersionError``, except the few registered ``any_version`` (the join handshake and its
refusal), whose first fields never change, so two majors can still tell each other why not.

Bounds (hostile input): everything is limited before anything is built. msgpack
itself refuses strings over ``MAX_STR_BYTES``, arrays over ``MAX_ARRAY_LEN`` and
maps over ``MAX_MAP_LEN`` items, and messages nest at most ``MAX_DEPTH`` deep
(each level of nesting costs a C stack frame of tens of KiB in msgpack: 200
levels used to overflow the stack and crash the process). Every ``int`` field is
within ``±MAX_INT`` and every ``float`` field finite. Fields annotated ``Count``
(Raft terms and indexes, gossip incarnations) are within ``0..MAX_COUNT``, half of
``MAX_INT``: a peer can push our counters that far, and what we then add by
ourselves (one per election, per entry) still reads back and still encodes.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import operator
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import msgpack

from swarmcompute.errors import ProtocolError, ProtocolVersionError
from swarmcompute.limits import MAX_STRING_BYTES

PROTOCOL_VERSION = 1
_EXT_MESSAGE = 1

MAX_DEPTH = 8
"""Messages nested inside one message (a JobSpec in a SubmitJobs in a ForwardCommands is 2)."""
MAX_INT = 2**53 - 1
"""Every int field, both signs: exact in every JSON reader, and far from what msgpack can encode."""
MAX_COUNT = 2**52
"""The bound of ``Count`` fields (terms, log indexes, incarnations): half of ``MAX_INT``."""
MAX_STR_BYTES = MAX_STRING_BYTES
MAX_ARRAY_LEN = 1_000_000
MAX_MAP_LEN = 100_000


@dataclasses.dataclass(frozen=True, slots=True)
class Range:
    """``Annotated[int, Range(lo, hi)]``: an int field the decoder keeps within ``lo..hi``."""

    lo: int
    hi: int


Count = Annotated[int, Range(0, MAX_COUNT)]
"""A counter a peer sends (a Raft term or index, a gossip incarnation or sequence number)."""

T = TypeVar("T")

_BY_TAG: dict[str, type] = {}
_TAG_OF: dict[type, str] = {}
_FIELDS: dict[type, tuple[tuple[str, Callable[[Any], Any]], ...]] = {}
_REQUIRED: dict[type, int] = {}
_FAST: dict[type, Callable[[list[Any]], Any]] = {}
_CHECKS: dict[type, Callable[[Any], None]] = {}
_ANY_VERSION: set[str] = set()
"""Tags decoded whatever the envelope's major version (see the module doc)."""
_VALUES: dict[type, Callable[[Any], tuple[Any, ...]]] = {}
"""Per class, its field values in declaration order: ``dataclasses.fields`` once at registration,
not per message (it was 14 % of encoding a 200-node gossip run's push-pulls)."""


def message(
    tag: str, *, check: Callable[[Any], None] | None = None, any_version: bool = False
) -> Callable[[type[T]], type[T]]:
    """Class decorator: register a frozen dataclass under ``tag`` (unique, stable).

    ``check(msg)`` runs on every decoded ``msg`` of the class (never on ones built locally) and
    raises ``ValueError`` for a message whose fields are each fine but do not fit together.
    ``any_version``: decoded from any major protocol version; its fields may only ever be added to.
    """

    def register(cls: type[T]) -> type[T]:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} must be a dataclass to be a message")
        if tag in _BY_TAG and _BY_TAG[tag] is not cls:
            raise TypeError(f"message tag {tag!r} is used by {_BY_TAG[tag].__name__} already")
        _BY_TAG[tag] = cls
        _TAG_OF[cls] = tag
        _VALUES[cls] = _values_getter(tuple(f.name for f in dataclasses.fields(cls)))
        if check is not None:
            _CHECKS[cls] = check
        if any_version:
            _ANY_VERSION.add(tag)
        return cls

    return register


def _values_getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    if len(names) == 1:
        one = operator.attrgetter(names[0])
        return lambda obj: (one(obj),)
    if not names:
        return lambda obj: ()
    return operator.attrgetter(*names)


def tag_of(obj: object) -> str:
    return _TAG_OF[type(obj)]


def to_msgpack_obj(obj: object) -> list[Any]:
    """``[tag, [fields]]`` for a registered message (nested ones become ext types)."""
    cls = type(obj)
    values = _VALUES.get(cls)
    if values is None:
        raise TypeError(f"{cls.__name__} is not a registered message")
    return [_TAG_OF[cls], values(obj)]


def _default(obj: object) -> Any:
    if type(obj) in _VALUES:
        return msgpack.ExtType(_EXT_MESSAGE, _packb(to_msgpack_obj(obj)))
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _packb(obj: Any) -> bytes:
    return msgpack.packb(obj, default=_default, use_bin_type=True)


def encode_nested(msg: object) -> bytes:
    """A registered message as it is encoded inside another one (ext type 1)."""
    return _packb(msg)


def encode(msg: object, *, version: int = PROTOCOL_VERSION, padding: tuple[Any, ...] = ()) -> bytes:
    """Serialize a registered message with the protocol (major) version; ``padding``: values
    appended to its fields, as a newer minor version's additions (the test hook of ``versions``)."""
    tag, values = to_msgpack_obj(msg)
    return _packb([version, tag, [*values, *padding] if padding else values])


def _unpack(data: bytes, depth: int) -> Any:
    """msgpack with every bound, nested messages built by ``_ext_hook`` one level deeper."""

    def ext_hook(code: int, nested: bytes) -> Any:
        if code != _EXT_MESSAGE:
            raise ProtocolError(f"unknown msgpack ext type {code}")
        if depth >= MAX_DEPTH:  # checked before unpacking: each level costs C stack
            raise ProtocolError(f"messages nested more than {MAX_DEPTH} deep")
        raw = _unpack(nested, depth + 1)
        if not (isinstance(raw, list) and len(raw) == 2):
            raise ProtocolError("malformed nested message")
        return build(raw[0], raw[1])

    return msgpack.unpackb(
        data,
        ext_hook=ext_hook,
        raw=False,
        strict_map_key=False,
        max_str_len=MAX_STR_BYTES,
        max_bin_len=len(data),
        max_array_len=MAX_ARRAY_LEN,
        max_map_len=MAX_MAP_LEN,
        max_ext_len=len(data),
    )


def decode(data: bytes, *, max_bytes: int = 64 * 1024 * 1024, version: int = PROTOCOL_VERSION) -> Any:
    """Parse and type-check one message; any problem is a ``ProtocolError`` (of another major
    ``version``: a ``ProtocolVersionError``, unless the message is ``any_version``)."""
    if len(data) > max_bytes:
        raise ProtocolError(f"message of {len(data)} bytes exceeds the {max_bytes}-byte limit")
    try:
        raw = _unpack(data, 0)
    except ProtocolError:
        raise
    except ValueError as exc:  # a bound (max_str_len, max_array_len...) or garbage: say which
        raise ProtocolError(f"undecodable msgpack: {str(exc)[:100] or type(exc).__name__}") from None
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise ProtocolError(f"undecodable msgpack: {type(exc).__name__}") from None
    if not (isinstance(raw, list) and len(raw) == 3):
        raise ProtocolError("a message must be [version, tag, fields]")
    theirs, tag, values = raw
    if theirs != version and not (isinstance(tag, str) and tag in _ANY_VERSION):
        raise ProtocolVersionError(
            f"protocol version {_short(theirs)} is not supported (this node speaks {version})",
            theirs if type(theirs) is int else None,
        )
    return build(tag, values)


def _short(value: Any) -> str:
    """A bounded repr for error messages (a hostile value can be megabytes, or nested deep)."""
    if isinstance(value, (str, bytes, int, float, bool)) or value is None:
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    return type(value).__name__


def build(tag: Any, values: Any) -> Any:
    """Construct the message ``tag`` from positional ``values``, checking types."""
    cls = _BY_TAG.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise ProtocolError(f"unknown message type {_short(tag)}")
    if not isinstance(values, list):
        raise ProtocolError(f"{tag}: fields must be a list")
    fast = _FAST.get(cls)
    if fast is None:
        fast = _FAST[cls] = _fast_builder(cls)
    try:
        msg = fast(values)
    except (TypeError, ValueError, IndexError, OverflowError):
        msg = _checked_build(tag, cls, values)  # raises the precise ProtocolError
    check = _CHECKS.get(cls) if _CHECKS else None
    if check is not None:
        try:
            check(msg)
        except ValueError as exc:
            raise ProtocolError(f"{tag}: {exc}") from None
    return msg


def _checked_build(tag: str, cls: type, values: list[Any]) -> Any:
    """The reference path: field by field, naming the field that is wrong. Fields past the known
    ones (a newer minor version's additions) are ignored."""
    fields = _fields_of(cls)
    if len(values) < _REQUIRED[cls]:
        raise ProtocolError(f"{tag}: expected {len(fields)} fields, got {len(values)}")
    kwargs = {}
    for (name, coerce), value in zip(fields, values, strict=False):
        try:
            kwargs[name] = coerce(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ProtocolError(f"{tag}.{name}: {exc}") from None
    return cls(**kwargs)


def _fast_builder(cls: type) -> Callable[[list[Any]], Any]:
    """A decoder for ``cls`` generated once, with each field's type check written inline.

    Decoding is on every node's hot path (each Raft entry is decoded by every replica), and a
    call per field through the generic coercers cost ~25 us per JobSpec. The generated function
    accepts exactly what ``_checked_build`` accepts for a full-length (or longer) field list and raises
    TypeError or ValueError otherwise, so ``build`` can fall back to the reference path for
    the precise message (and for short lists that rely on defaults).
    """
    fields = _fields_of(cls)
    hints = typing.get_type_hints(cls, include_extras=True)
    env: dict[str, Any] = {"cls": cls, "_bad": _bad}
    lines = ["def fast(v):", f"    if len(v) < {len(fields)}: raise ValueError('length')"]
    for i, (name, coerce) in enumerate(fields):
        env[f"c{i}"] = coerce
        lines.append(f"    x = v[{i}]")
        lines.extend("    " + line for line in _inline_check(hints[name], f"c{i}"))
        lines.append(f"    a{i} = x")
    if _settable(cls, fields):
        # What the frozen dataclass's __init__ does, without its call: each slot set in turn
        # (``object.__setattr__``, the slot's descriptor): 500 submissions decode in 3.6 ms, not 4.9.
        env["new"] = object.__new__
        env.update({f"s{i}": getattr(cls, name).__set__ for i, (name, _) in enumerate(fields)})
        lines.append("    o = new(cls)")
        lines.extend(f"    s{i}(o, a{i})" for i in range(len(fields)))
        lines.append("    return o")
    else:
        lines.append(f"    return cls({', '.join(f'a{i}' for i in range(len(fields)))})")
    exec("\n".join(lines), env)  # noqa: S102 - the source is built above from annotations only
    return env["fast"]  # type: ignore[no-any-return]


def _settable(cls: type, fields: tuple[tuple[str, Callable[[Any], Any]], ...]) -> bool:
    """Whether building ``cls`` is exactly setting its fields: a slots dataclass whose generated
    __init__ takes every field and does nothing more (no __post_init__, no field left out)."""
    if not dataclasses.is_dataclass(cls) or "__slots__" not in cls.__dict__ or hasattr(cls, "__post_init__"):
        return False
    if not cls.__dataclass_params__.frozen and cls.__setattr__ is not object.__setattr__:  # type: ignore[attr-defined]
        return False  # __init__ would go through its own __setattr__
    names = [f.name for f in dataclasses.fields(cls)]
    return names == [name for name, _ in fields] and all(
        isinstance(getattr(cls, name, None), types.MemberDescriptorType) for name in names
    )


def _inline_check(hint: Any, coerce: str) -> list[str]:
    """Statements that leave ``x`` checked (and converted) for ``hint``, or raise."""
    simple = _simple_check(hint)
    if simple is not None:
        return simple
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else ()
    if len(options) == 2 and type(None) in options:
        inner = _simple_check(next(o for o in options if o is not type(None)))
        if inner is not None:
            return ["if x is not None:", *("    " + line for line in inner)]
    return [f"x = {coerce}(x)"]


def _simple_check(hint: Any) -> list[str] | None:
    if hint in (str, bytes, bool):
        return [f"if type(x) is not {hint.__name__}: _bad()"]
    bounds = _int_bounds(hint)
    if bounds is not None:
        return [f"if type(x) is not int or not {bounds[0]} <= x <= {bounds[1]}: _bad()"]
    if hint is float:
        # x - x is 0.0 for every finite float and nan for inf and nan
        return [
            "if type(x) is not float:",
            f"    x = float(x) if type(x) is int and -{MAX_INT} <= x <= {MAX_INT} else _bad()",
            "elif x - x != 0.0: _bad()",
        ]
    return None


def _int_bounds(hint: Any) -> tuple[int, int] | None:
    """``(lo, hi)`` for ``int`` and ``Annotated[int, Range(lo, hi)]``, else None."""
    if hint is int:
        return (-MAX_INT, MAX_INT)
    if typing.get_origin(hint) is Annotated:
        base, *extras = typing.get_args(hint)
        ranges = [e for e in extras if isinstance(e, Range)]
        if base is int and ranges:
            return (max(-MAX_INT, ranges[0].lo), min(MAX_INT, ranges[0].hi))
    return None


def _bad() -> Any:
    raise TypeError("wrong type")


def _fields_of(cls: type) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    cached = _FIELDS.get(cls)
    if cached is None:
        hints = typing.get_type_hints(cls, include_extras=True)
        dc_fields = [f for f in dataclasses.fields(cls) if f.init]
        cached = tuple((f.name, _coercer(hints[f.name])) for f in dc_fields)
        _REQUIRED[cls] = sum(
            1 for f in dc_fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        )
        _FIELDS[cls] = cached
    return cached


def _coercer(hint: Any) -> Callable[[Any], Any]:
    """Build a function that checks (and, for tuples and enums, converts) one value."""
    if hint is Any:
        return lambda v: v
    bounds = _int_bounds(hint)
    if bounds is not None:
        lo, hi = bounds

        def as_int(v: Any) -> int:
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"expected an int, got {type(v).__name__}")
            if not lo <= v <= hi:
                raise ValueError(f"{_short(v)} is outside {lo}..{hi}")
            return v

        return as_int
    if typing.get_origin(hint) is Annotated:
        return _coercer(typing.get_args(hint)[0])
    if hint is type(None):
        return _exact(type(None))
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [_coercer(a) for a in typing.get_args(hint)]

        def union(v: Any) -> Any:
            for option in options:
                try:
                    return option(v)
                except (TypeError, ValueError):
                    continue
            raise TypeError(f"{_short(v)} matches none of {hint}")

        return union
    if origin in (list, tuple, dict, frozenset, set) or hint in (list, tuple, dict):
        return _container_coercer(hint, origin or hint)
    if origin is typing.Literal:
        allowed = typing.get_args(hint)

        def literal(v: Any) -> Any:
            if v not in allowed:
                raise ValueError(f"{_short(v)} is not one of {allowed}")
            return v

        return literal
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return lambda v: hint(v)
    if isinstance(hint, type) and hint in _TAG_OF:
        return _exact(hint)
    if hint is float:

        def as_float(v: Any) -> float:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"expected a number, got {type(v).__name__}")
            if isinstance(v, int) and not -MAX_INT <= v <= MAX_INT:
                raise ValueError(f"{_short(v)} is outside -{MAX_INT}..{MAX_INT}")
            if not math.isfinite(v):
                raise ValueError(f"{v} is not a finite number")
            return float(v)

        return as_float
    if hint in (str, bytes, bool):
        return _exact(hint)
    raise TypeError(f"codec cannot handle the annotation {hint!r}")


def _exact(t: type) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if type(v) is not t:
            raise TypeError(f"expected {t.__name__}, got {type(v).__name__}")
        return v

    return check


def _container_coercer(hint: Any, origin: Any) -> Callable[[Any], Any]:
    args = typing.get_args(hint)
    if origin is dict:
        key = _coercer(args[0]) if args else (lambda v: v)
        val = _coercer(args[1]) if args else (lambda v: v)

        def as_dict(v: Any) -> dict[Any, Any]:
            if not isinstance(v, dict):
                raise TypeError(f"expected a map, got {type(v).__name__}")
            return {key(k): val(x) for k, x in v.items()}

        return as_dict
    if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        items = [_coercer(a) for a in args]

        def as_fixed_tuple(v: Any) -> tuple[Any, ...]:
            if not isinstance(v, (list, tuple)) or len(v) != len(items):
                raise TypeError(f"expected {len(items)} items")
            return tuple(c(x) for c, x in zip(items, v, strict=False))

        return as_fixed_tuple
    item = _coercer(args[0]) if args else (lambda v: v)
    build_container: Callable[[Any], Any] = {list: list, tuple: tuple, frozenset: frozenset, set: frozenset}[origin]

    empty = build_container(())

    def as_seq(v: Any) -> Any:
        if not isinstance(v, (list, tuple)):
            raise TypeError(f"expected an array, got {type(v).__name__}")
        if not v:  # most of a job's sequences (after, keep, mounts, files...): no generator to run
            return empty if origin is not list else []
        return build_container(item(x) for x in v)

    return as_seq
