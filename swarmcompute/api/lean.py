"""The `swarm run` hot path's view of the control protocol, with almost no imports.

Why it exists: `swarm run -- true` must finish in about 50 ms, and on a small
machine importing ``dataclasses``/``typing``/``pathlib`` (what the typed codec
and the full client pull in) costs more than half of that. This module speaks
the same frames as ``swarmcompute.codec`` + ``api.messages`` using only
msgpack, struct and the C ``_socket`` module (``socket.py`` alone costs 14 ms of
imports: enum and selectors). ``tests/api/test_lean_parity.py`` checks that its
frames are byte-identical to the codec's, so the two cannot drift apart.

Replies come back as ``(tag, fields)`` tuples; the caller dispatches on tag.
"""

from __future__ import annotations

import _socket
import os
import struct

import msgpack

PROTOCOL_VERSION = 1
EXT_MESSAGE = 1
MAX_FRAME_BYTES = 16 * 1024 * 1024
_LEN = struct.Struct(">I")
_MAX_UNIX_PATH = 100
TIMEOUT_S = 30.0
"""How long a client waits for a daemon to take a connection and answer a request (not an
open-ended wait): ``Client``'s default, and `swarm run`'s for its job's submission and its cancel.
A healthy daemon answers within ``node.committer.LEADER_WAIT_S`` even with no leader."""


def see_its_log(state_dir: str | os.PathLike[str]) -> str:
    """Where to look when the daemon of ``state_dir`` does not answer: the ``daemon.log`` of
    `swarm join --detach` when there is one, else the journal (`swarm service`) or the terminal of
    its `swarm join`."""
    path = os.path.join(state_dir, "daemon.log")
    if os.path.exists(path):
        return f"See its log, {path}"
    return "See its log (`journalctl -u swarmcompute` under `swarm service`, or its `swarm join`'s terminal)"


# JobSpec fields in declaration order (swarmcompute.state.job.JobSpec).
SPEC_FIELDS = (
    "id",
    "argv",
    "name",
    "env",
    "cwd",
    "timeout_s",
    "retries",
    "priority",
    "cpus",
    "mem_bytes",
    "gpus",
    "after",
    "after_any",
    "node",
    "image",
    "on_disconnect",
    "keep_on_exit",
    "user",
    "max_procs",
    "max_file_size",
    "max_output_bytes",
    "files",
    "keep",
    "gpu_mem",
    "constraints",
    "array_id",
    "array_index",
    "array_limit",
    "gang_id",
    "rank",
    "ranks",
    "ranks_per_node",
    "mounts",
    "stdin",
    "hold",
    "begin_at",
    "every_s",
    "occurrence",
    "notify",
    "warn_signal",
    "warn_before_s",
    "preemptible",
)
SPEC_DEFAULTS: dict[str, object] = {
    "name": "",
    "env": {},
    "cwd": None,
    "timeout_s": None,
    "retries": 0,
    "priority": 0,
    "cpus": 1.0,
    "mem_bytes": 0,
    "gpus": 0,
    "after": [],
    "after_any": [],
    "node": None,
    "image": None,
    "on_disconnect": "stop",
    "keep_on_exit": False,
    "user": "",
    "max_procs": 0,
    "max_file_size": 0,
    "max_output_bytes": 0,
    "files": [],
    "keep": [],
    "gpu_mem": 0,
    "constraints": [],
    "array_id": "",
    "array_index": 0,
    "array_limit": 0,
    "gang_id": "",
    "rank": 0,
    "ranks": 0,
    "ranks_per_node": 0,
    "mounts": [],
    "stdin": None,
    "hold": False,
    "begin_at": 0.0,
    "every_s": 0.0,
    "occurrence": 0,
    "notify": "",
    "warn_signal": 0,
    "warn_before_s": 0.0,
    "preemptible": False,
}


class LeanError(Exception):
    """The daemon cannot be reached or spoke something unexpected."""


class ClosedError(LeanError):
    """The daemon closed the connection (it stopped, or restarts)."""


def spec_fields(values: dict[str, object]) -> list[object]:
    """Positional JobSpec fields from a mapping (defaults filled in)."""
    return [values[name] if name in values else SPEC_DEFAULTS[name] for name in SPEC_FIELDS]


def submit_frame(spec: dict[str, object], attach: bool) -> bytes:
    """The framed ``Submit((JobSpec(**spec),), attach)`` request."""
    nested = msgpack.ExtType(EXT_MESSAGE, msgpack.packb(["job.spec", spec_fields(spec)], use_bin_type=True))
    body = msgpack.packb([PROTOCOL_VERSION, "api.submit", [[nested], attach]], use_bin_type=True)
    return _LEN.pack(len(body)) + body


def request_frame(tag: str, fields: list[object]) -> bytes:
    """A framed request with plain fields (e.g. ``api.cancel``)."""
    body = msgpack.packb([PROTOCOL_VERSION, tag, fields], use_bin_type=True)
    return _LEN.pack(len(body)) + body


def connect(path: str, timeout_s: float | None = None) -> _socket.socket:
    """Connect to a control socket; ``FileNotFoundError``/``ConnectionRefusedError`` mean no daemon.

    Paths longer than a unix socket address allows (deep temp dirs) go through
    ``/proc/self/fd/N/name`` of the open parent directory.
    """
    dir_fd = None
    address = path
    if len(path) > _MAX_UNIX_PATH:
        parent, _, name = path.rpartition("/")
        dir_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
        address = f"/proc/self/fd/{dir_fd}/{name}"
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout_s)
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
    return sock


class FrameReader:
    """Reads ``(tag, fields)`` replies off a blocking socket."""

    def __init__(self, sock: _socket.socket) -> None:
        self._sock = sock
        self._buf = bytearray()

    def next(self) -> tuple[str, list[object]]:
        (length,) = _LEN.unpack(self._exactly(_LEN.size))
        if length > MAX_FRAME_BYTES:
            raise LeanError(f"reply of {length} bytes is over the limit")
        raw = msgpack.unpackb(self._exactly(length), raw=False, ext_hook=_nested, strict_map_key=False)
        if not (isinstance(raw, list) and len(raw) == 3 and raw[0] == PROTOCOL_VERSION):
            raise LeanError("the daemon speaks another protocol version: upgrade both")
        return raw[1], raw[2]

    def _exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ClosedError("the daemon closed the connection")
            self._buf += chunk
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data


def _nested(code: int, data: bytes) -> object:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)
