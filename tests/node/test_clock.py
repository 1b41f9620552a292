"""The daemon's clock keeps its ticks' count and lets them run late, within a slack, so that they
ride on wake-ups the loop has anyway (an idle follower's heartbeats)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from swarmcompute.node.ticker import Clock, tick_slack


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _with_clock(
    scenario: Callable[[Clock, FakeTime], Awaitable[None]],
    slack: float = 0.0,
    max_late_ticks: int = 2,
    on_tick: Callable[[], None] = lambda: None,
) -> None:
    """Run ``scenario`` against a running Clock on a fake clock (its timer is on the loop's real
    clock, far in the future in loop time: only ``catch_up`` runs ticks)."""

    async def main() -> None:
        time = FakeTime()
        clock = Clock(0.1, on_tick, lambda: slack, max_late_ticks=max_late_ticks, now=time)
        runner = asyncio.create_task(clock.run())
        await asyncio.sleep(0)  # run() armed the timer
        try:
            await scenario(clock, time)
        finally:
            runner.cancel()
            with pytest.raises(asyncio.CancelledError):
                await runner

    asyncio.run(main())


def test_a_wake_up_runs_every_tick_due_since_the_last_in_a_row() -> None:
    async def scenario(clock: Clock, time: FakeTime) -> None:
        time.now = 0.05
        assert clock.catch_up() == 0
        time.now = 0.25  # ticks due at 0.1 and 0.2
        assert clock.catch_up() == 2 and clock.ticks == 2
        time.now = 0.299
        assert clock.catch_up() == 0
        time.now = 0.301
        assert clock.catch_up() == 1 and clock.ticks == 3

    _with_clock(scenario)


def test_each_tick_of_a_wake_up_knows_how_many_more_run_right_after_it() -> None:
    clocks: list[Clock] = []
    seen: list[int] = []

    async def scenario(clock: Clock, time: FakeTime) -> None:
        clocks.append(clock)
        time.now = 0.35  # ticks due at 0.1, 0.2 and 0.3
        assert clock.catch_up() == 3
        assert seen == [2, 1, 0] and clock.behind == 0
        time.now = 0.41
        assert clock.catch_up() == 1 and seen == [2, 1, 0, 0]

    _with_clock(scenario, slack=0.3, max_late_ticks=3, on_tick=lambda: seen.append(clocks[0].behind))


def test_a_loop_stalled_past_the_late_ticks_runs_one_tick_and_loses_the_rest() -> None:
    async def scenario(clock: Clock, time: FakeTime) -> None:
        time.now = 1.0  # nine ticks due; at most three run in a row
        assert clock.catch_up() == 1
        time.now = 1.099
        assert clock.catch_up() == 0
        time.now = 1.101  # counting on from the wake-up, as a late timer did
        assert clock.catch_up() == 1 and clock.ticks == 2

    _with_clock(scenario)


def test_a_wake_up_within_a_long_slack_runs_every_tick_due_and_past_it_loses_them() -> None:
    """A learner's ticks wait up to 0.6 s for its heartbeat: that is no stall."""

    async def scenario(clock: Clock, time: FakeTime) -> None:
        assert clock.armed_at == pytest.approx(0.7)
        time.now = 0.75  # seven ticks due, all within the slack the timer was armed with
        assert clock.catch_up() == 7
        time.now = 2.0  # thirteen due: past the slack, a stall
        assert clock.catch_up() == 1 and clock.ticks == 8

    _with_clock(scenario, slack=0.6, max_late_ticks=6)


def test_the_timer_is_armed_the_slack_after_the_next_tick_and_moves_on_with_each_catch_up() -> None:
    async def scenario(clock: Clock, time: FakeTime) -> None:
        assert clock.armed_at == pytest.approx(0.3)  # the tick due at 0.1, 0.2 late
        time.now = 0.15
        clock.catch_up()
        assert clock.armed_at == pytest.approx(0.4)

    _with_clock(scenario, slack=0.2)


def test_the_slack_never_reaches_past_the_ticks_a_wake_up_may_run() -> None:
    async def scenario(clock: Clock, time: FakeTime) -> None:
        assert clock.armed_at == pytest.approx(0.3)  # 2 late ticks at most

    _with_clock(scenario, slack=5.0)


def test_the_timer_alone_ticks_on_the_loops_clock() -> None:
    async def main() -> None:
        three = asyncio.Event()
        clock: Clock

        def tick() -> None:
            if clock.ticks >= 3:
                three.set()

        clock = Clock(0.01, tick)
        runner = asyncio.create_task(clock.run())
        await asyncio.wait_for(three.wait(), 10)
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner

    asyncio.run(main())


def test_a_tick_that_raises_ends_run_with_its_exception() -> None:
    async def main() -> None:
        def tick() -> None:
            raise ValueError("broken tick")

        with pytest.raises(ValueError, match="broken tick"):
            await asyncio.wait_for(Clock(0.01, tick).run(), 10)

    asyncio.run(main())


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ({"is_leader": True, "leads_peers": True, "heard_ago_s": 0.0}, 0.1),  # heartbeats every 2 ticks
        ({"is_leader": True, "leads_peers": False, "heard_ago_s": 9.0}, 0.2),  # alone
        ({"is_leader": False, "leads_peers": False, "heard_ago_s": 0.19}, 0.2),  # heartbeats carry its ticks
        ({"is_leader": False, "leads_peers": False, "heard_ago_s": 0.4}, 0.0),  # silence: the election timer on time
        ({"is_leader": False, "leads_peers": False, "heard_ago_s": 0.0, "lease_left_s": 0.05}, 0.05),
        ({"is_leader": True, "leads_peers": True, "heard_ago_s": 0.0, "lease_left_s": -1.0}, 0.0),
        # a learner hears a heartbeat every 6 ticks: its ticks wait for the next one
        ({"is_leader": False, "leads_peers": False, "heard_ago_s": 0.5, "heartbeat_ticks": 6}, 0.6),
        ({"is_leader": False, "leads_peers": False, "heard_ago_s": 1.3, "heartbeat_ticks": 6}, 0.0),
    ],
)
def test_tick_slack_lets_ticks_wait_for_a_wake_up_only_where_nothing_waits_on_them(
    case: dict[str, object], expected: float
) -> None:
    args = {"lease_left_s": float("inf"), "heartbeat_ticks": 2, **case}
    assert tick_slack(0.1, **args) == pytest.approx(expected)  # type: ignore[arg-type]
