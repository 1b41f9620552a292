"""Framing for the local control socket: ``u32 big-endian length | codec message``.

A unix socket in the state directory; only the local user can reach it (the
socket file is 0600). Frames above ``MAX_FRAME_BYTES`` are refused before any
allocation, so a bad client cannot make the daemon swallow gigabytes.
"""

from __future__ import annotations

import _socket
import os
import socket
import struct
from pathlib import Path
from typing import Any

from swarmcompute import codec
from swarmcompute.errors import FrameTooLargeError, ProtocolError
from swarmcompute.limits import MAX_REQUEST_BYTES

MAX_FRAME_BYTES = MAX_REQUEST_BYTES
LENGTH_PREFIX = struct.Struct(">I")
_MAX_UNIX_PATH = 100


def frame(msg: object) -> bytes:
    data = codec.encode(msg)
    if len(data) > MAX_FRAME_BYTES:
        raise FrameTooLargeError(f"message of {len(data)} bytes exceeds {MAX_FRAME_BYTES}")
    return LENGTH_PREFIX.pack(len(data)) + data


def socket_address(path: Path) -> tuple[str, int | None]:
    """A path usable with bind/connect, working around the 108-byte sun_path limit.

    Long paths (deep temp dirs) go through ``/proc/self/fd/N/name`` of an open
    directory descriptor; the caller closes that descriptor once connected.
    """
    text = str(path)
    if len(text) <= _MAX_UNIX_PATH:
        return text, None
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    return f"/proc/self/fd/{dir_fd}/{path.name}", dir_fd


class BlockingChannel:
    """The client side: a blocking unix-socket connection speaking frames."""

    def __init__(self, sock: socket.socket | _socket.socket) -> None:
        self._sock = sock
        self._buf = bytearray()

    @classmethod
    def connect(cls, path: Path, timeout_s: float | None = None) -> BlockingChannel:
        from swarmcompute.api.lean import connect

        return cls(connect(str(path), timeout_s))

    def send(self, msg: object) -> None:
        self._sock.sendall(frame(msg))

    def settimeout(self, timeout_s: float | None) -> None:
        self._sock.settimeout(timeout_s)

    def receive(self) -> Any:
        """The next message; ``ProtocolError`` if the daemon closed the connection."""
        header = self._read_exactly(LENGTH_PREFIX.size)
        (length,) = LENGTH_PREFIX.unpack(header)
        if length > MAX_FRAME_BYTES:
            raise FrameTooLargeError(f"frame of {length} bytes exceeds {MAX_FRAME_BYTES}")
        return codec.decode(self._read_exactly(length))

    def _read_exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self._sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise ProtocolError("the daemon closed the connection")
            self._buf += chunk
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> BlockingChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
