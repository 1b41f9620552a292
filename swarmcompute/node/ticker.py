"""The daemon's clock: a function called every interval, from a timer of the event loop or from
a wake-up the loop had anyway (``Clock``); and ``sliced``, the turns a long run of work gives the
loop.

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


SLICE_S = 0.05
"""A long run of work gives the event loop a turn after this long (the start loop, a big
submission's checks). Heartbeats wait while the loop works: a leader silent for 0.4-0.6 s can
lose an election (a follower times out after 0.6-1.2 s, counted from the last heartbeat, which
can be 0.2 s older). Measured before, 3 loopback nodes: a node given 1,000 `true` jobs started
them all in one turn, 0.6-0.7 s of nothing else (1.5-1.9 s at 10,000), and a 10,000-job
submission spent 0.5-0.6 s in its checks; 2 of 3 such submissions ended in an election and
NotLeaderError for the client. Longest stall on every node at 1,000 / 3,000 / 10,000 jobs: 20 ms
slices: none over 0.15 s / 0.18 / 0.48 s; 50 ms: 0.15 / 0.36 / 0.55 s; 100 ms: 0.21 / 0.44 /
0.77 s; 200 ms: 0.41 / 0.60 s (10,000 not run). What the turns cost: each let the notice timer
fire ahead of the exits (``rules.start_notices``) and each follower forward its results so far
(``ReplicatedJobLog.holding``). With both mended, 500-job batches on 3 nodes ran at 0.81-1.32x
(median 1.08) the rate of the earlier slices in 10 paired rounds, and no slices at all at
0.87-1.07x (median 0.99) the rate of these in 8: the cost is gone."""
STALLED_AFTER_TICKS = 2
"""A wake-up more than this many ticks late (and later than the timer's slack) follows a stall."""


class Clock:
    """Calls ``tick`` once per ``interval_s``: from a timer of the event loop that fires up to
    ``slack()`` seconds (at most ``max_late_ticks`` ticks) after a tick is due, or sooner, from
    ``catch_up``, whenever the loop is awake anyway (the peer link calls it after each burst it
    read). Ticks keep their count: a wake-up runs every tick due since the last, in a row; only a
    loop stalled past the slack it was armed with (and past ``STALLED_AFTER_TICKS``) loses the
    ticks it slept through, as a late timer did.

    Why: on a 2-core VM every wake-up of an idle process costs about 200 us of CPU before any
    Python runs (an asyncio loop that wakes ten times a second and does nothing uses 0.20 % of a
    core), and an idle follower woke 16-17 times a second: ten ticks, five heartbeats, gossip.
    With slack, its ticks ride on the heartbeats' wake-ups, and a leader's two ticks per
    heartbeat share one (``tick_slack``). Measured in 2 paired rounds (``benchmarks/idle.py``):
    per daemon 0.48-0.49 % of a core at 3 nodes against 0.70-0.73 %, 0.58-0.66 % at 20 against
    0.77-0.83 %, 0.17-0.20 % alone against 0.40 %; leader failover p50 0.53-0.71 s against
    0.56-0.70 s."""

    def __init__(
        self,
        interval_s: float,
        tick: Callable[[], None],
        slack: Callable[[], float] = lambda: 0.0,
        *,
        max_late_ticks: int = 2,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval_s = interval_s
        self._tick = tick
        self._slack = slack
        self._max_late_s = max_late_ticks * interval_s
        self._late_s = 0.0
        """The slack the timer was last armed with: a wake-up within it is no stall."""
        self._now = now
        self._due = now() + interval_s
        self._timer: asyncio.TimerHandle | None = None
        self._failed: asyncio.Future[None] | None = None
        self.ticks = 0
        self.behind = 0
        """While a tick runs: how many more of this wake-up's ticks run right after it."""
        self.armed_at = float("inf")
        """When (on ``now``'s clock) the timer will wake the loop for the next tick."""

    async def run(self) -> None:
        """Tick until cancelled; an exception ``tick`` raises ends the ticking and is raised here."""
        loop = asyncio.get_running_loop()
        self._failed = loop.create_future()
        self._arm()
        try:
            await self._failed
        finally:
            if self._timer is not None:
                self._timer.cancel()
            self._failed = None

    def catch_up(self) -> int:
        """Run the ticks due by now; how many ran. Re-arms the timer after any."""
        if self._failed is None or self._failed.done():
            return 0
        now = self._now()
        if now < self._due:
            return 0
        due = 1 + int((now - self._due) // self.interval_s)
        if due > 1 + max(STALLED_AFTER_TICKS, round(self._late_s / self.interval_s)):
            # the loop stalled: one tick now, as a late timer's
            due, self._due = 1, now + self.interval_s
        else:
            self._due += due * self.interval_s
        try:
            for behind in range(due - 1, -1, -1):
                self.ticks += 1
                self.behind = behind
                self._tick()
        except BaseException as exc:  # the awaiting task raises it, as its own code would have
            self._failed.set_exception(exc)
            return due
        finally:
            self.behind = 0
        self._arm()
        return due

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._late_s = late = min(max(self._slack(), 0.0), self._max_late_s)
        self.armed_at = self._due + late
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(loop.time() + (self.armed_at - self._now()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        if self.catch_up() == 0 and self._failed is not None and not self._failed.done():
            self._arm()  # fired a hair early against ``now``'s clock: wait for the tick


def tick_slack(
    interval_s: float,
    *,
    leads_peers: bool,
    is_leader: bool,
    heard_ago_s: float,
    heartbeat_ticks: int,
    lease_left_s: float,
) -> float:
    """How late the clock may run a tick (``Clock``): never past this node's lease, which a
    tick checks; otherwise

    - a leader with peers: its heartbeat's ticks in one wake-up, ``heartbeat_ticks - 1`` ticks
      late at most, so heartbeats still leave every ``heartbeat_ticks`` ticks;
    - a follower that heard a peer within two of its heartbeat intervals (``heartbeat_ticks``:
      a voter's, or a learner's longer one): one interval, so its ticks ride on the next
      heartbeat's wake-up (they arrive one interval after the last);
    - a node alone, leading only itself: two ticks (nobody waits for it);
    - a follower that hears nothing: none. Its election timer counts on time, as before."""
    if is_leader:
        late = (heartbeat_ticks - 1) * interval_s if leads_peers else 2 * interval_s
    elif heard_ago_s < 2 * heartbeat_ticks * interval_s:
        late = heartbeat_ticks * interval_s
    else:
        late = 0.0
    return max(0.0, min(late, lease_left_s))


async def sliced(items: Iterable[T], slice_s: float) -> AsyncIterator[T]:
    """``items``, giving the event loop a turn after each ``slice_s`` of work (the consumer's
    included) before the next one: heartbeats, leases and clients go first."""
    ends = time.monotonic() + slice_s
    for item in items:
        if time.monotonic() >= ends:
            await asyncio.sleep(0)
            ends = time.monotonic() + slice_s
        yield item
