"""The bounded log limiter used for remotely triggerable log lines."""

from __future__ import annotations

from swarmcompute.transport.ratelimit import MAX_KEYS, LogLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_suppressed_then_reported() -> None:
    clock = FakeClock()
    limiter = LogLimiter(burst=3, window_s=10.0, clock=clock)
    assert [limiter.allow("drop") for _ in range(5)] == [0, 0, 0, None, None]
    assert limiter.allow("other") == 0  # keys have their own budget
    clock.now = 10.0
    assert limiter.allow("drop") == 2  # the next line says how many were left out
    assert limiter.allow("drop") == 0


def test_keys_are_bounded() -> None:
    limiter = LogLimiter(burst=1, window_s=10.0, clock=FakeClock())
    allowed = [limiter.allow(f"k{i}") for i in range(MAX_KEYS * 3)]
    assert len(limiter._buckets) <= MAX_KEYS + 1
    assert allowed.count(None) >= MAX_KEYS * 2 - 1
