"""Replies too large for one control frame, asked for in pages: the one loop both clients use.

A control frame holds at most 16 MiB (``api.protocol.MAX_FRAME_BYTES``); a job's record without
its output is about 0.65 KiB, so a `swarm wait` on 100,000 jobs (65 MB of records) failed with
``FrameTooLargeError``. ``Wait`` takes ``offset``, ``limit`` and a ``cursor`` the client picks:
the daemon waits for every job, answers with the first page, and keeps the wait's jobs under the
cursor (``KeptPages``) for the later pages, which carry no ids (the table may have dropped a
finished job by then: ``--keep-jobs``). ``limit`` 0, as the HTTP API asks: all at once.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from swarmcompute.errors import FrameTooLargeError

WAIT_PAGE = 5_000
"""Records per page: 3.3 MB at 0.65 KiB each; records of 8 KiB environments (42 MB a page) are
asked for in pages of 1,250 after two refusals (``in_pages``)."""


KEEP_S = 300.0
"""How long the daemon keeps a wait's jobs for its later pages."""
MAX_KEPT = 16
"""Waits kept at once; the oldest goes first."""


def new_cursor() -> str:
    return os.urandom(8).hex()


def in_pages(ask: Callable[[int, int], list[Any]], page: int | None = None) -> list[Any]:
    """``ask(offset, limit)`` until a page comes back short (or long: a daemon of an older version
    answers all at once): every record, in order. Only the first page waits: the daemon reads the
    later ones from what it kept (``KeptPages``). A page too large for a frame (records with big
    environments or command lines) is asked for again with half as many records, and so are the
    pages after it."""
    page = page or WAIT_PAGE
    records: list[Any] = []
    while True:
        try:
            got = ask(len(records), page)
        except FrameTooLargeError:
            if page == 1:
                raise
            page //= 2
            continue
        records += got
        if len(got) != page:
            return records


class KeptPages:
    """The daemon's side: the jobs of waits answered in pages, by cursor, for ``KEEP_S`` at most."""

    def __init__(self) -> None:
        self._kept: OrderedDict[str, tuple[float, list[Any]]] = OrderedDict()

    def keep(self, cursor: str, items: list[Any]) -> None:
        self._expire()
        self._kept[cursor] = (time.monotonic() + KEEP_S, items)
        while len(self._kept) > MAX_KEPT:
            self._kept.popitem(last=False)

    def get(self, cursor: str) -> list[Any] | None:
        self._expire()
        kept = self._kept.get(cursor)
        return None if kept is None else kept[1]

    def __delitem__(self, cursor: str) -> None:
        self._kept.pop(cursor, None)

    def _expire(self) -> None:
        now = time.monotonic()
        while self._kept and next(iter(self._kept.values()))[0] < now:
            self._kept.popitem(last=False)
