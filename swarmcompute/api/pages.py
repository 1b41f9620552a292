"""Replies too large for one control frame, asked for in pages: the one loop both clients use.

A control frame holds at most 16 MiB (``api.protocol.MAX_FRAME_BYTES``); a job's record without
its output is about 0.65 KiB, so a `swarm wait` on 100,000 jobs (65 MB of records) failed with
``FrameTooLargeError``. ``Wait`` takes ``offset`` and ``limit``: the daemon waits for every job
each time and answers with that slice of the records (``limit`` 0, as the HTTP API asks: all).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

WAIT_PAGE = 5_000
"""Records per page: 3.3 MB at 0.65 KiB each, room for large environments under 16 MiB."""


def in_pages(ask: Callable[[int, int], list[Any]], page: int | None = None) -> list[Any]:
    """``ask(offset, limit)`` until a page comes back short: every record, in order. Later pages
    find every job ended already, so only the first one waits."""
    page = page or WAIT_PAGE
    records: list[Any] = []
    while True:
        got = ask(len(records), page)
        records += got
        if len(got) < page:
            return records
