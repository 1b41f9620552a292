"""The daemon's clock: a function called every interval, from a timer of the event loop; and
``sliced``, the turns a long run of work gives the loop.

Why not a task that sleeps: ``await asyncio.sleep`` costs two turns of the loop per tick (the
timer sets a future, and the task wakes in the next turn), and the daemon ticks ten times a
second, idle or not; a timer callback is one turn. Measured on an idle 3-node cluster: a
follower's loop turned 33 times a second, 10 of them for the second half of its sleeps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


async def every(interval_s: float, tick: Callable[[], None]) -> None:
    """Call ``tick`` ``interval_s`` after the start, then ``interval_s`` after each call returned,
    until cancelled; an exception ``tick`` raises ends the ticking and is raised here."""
    loop = asyncio.get_running_loop()
    failed: asyncio.Future[None] = loop.create_future()
    handle: asyncio.TimerHandle | None = None

    def run() -> None:
        nonlocal handle
        try:
            tick()
        except BaseException as exc:  # the awaiting task raises it, as its own code would have
            if not failed.done():
                failed.set_exception(exc)
            return
        handle = loop.call_later(interval_s, run)

    handle = loop.call_later(interval_s, run)
    try:
        await failed
    finally:
        handle.cancel()


async def sliced(items: Iterable[T], slice_s: float) -> AsyncIterator[T]:
    """``items``, giving the event loop a turn after each ``slice_s`` of work (the consumer's
    included) before the next one: heartbeats, leases and clients go first."""
    ends = time.monotonic() + slice_s
    for item in items:
        if time.monotonic() >= ends:
            await asyncio.sleep(0)
            ends = time.monotonic() + slice_s
        yield item
