"""A seeded, lossy network for simulated clusters: delay, drop, duplicate, reorder, partitions.

Payloads are opaque: Raft messages today, gossip and scheduler messages later.
Reordering comes from independent random delays (with occasional long
spikes). Partitions are directed cuts between node ids: ``partition`` makes
symmetric ones, ``cut_one_way`` a link that works in only one direction. A cut
is checked on delivery, so messages in flight when a partition starts are lost.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from swarmcompute.sim.clock import SimClock


@dataclass(frozen=True, slots=True)
class NetworkFaults:
    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    min_delay_ms: int = 1
    max_delay_ms: int = 10
    spike_rate: float = 0.0
    """Share of messages delayed by up to ``spike_delay_ms`` (they overtake nothing, others overtake them)."""
    spike_delay_ms: int = 400

    @classmethod
    def clean(cls) -> NetworkFaults:
        return cls()


Deliver = Callable[[str, str, Any], None]


class SimNetwork:
    def __init__(
        self, clock: SimClock, rng: random.Random, deliver: Deliver, faults: NetworkFaults | None = None
    ) -> None:
        self._clock = clock
        self._rng = rng
        self._deliver = deliver
        self.faults = faults or NetworkFaults()
        self._cut: set[tuple[str, str]] = set()
        self.sent = 0
        self.dropped = 0

    def send(self, src: str, dst: str, payload: Any) -> None:
        """Schedule delivery (maybe never, maybe twice) according to the current faults."""
        self.sent += 1
        f = self.faults
        rng = self._rng
        if f.drop_rate and rng.random() < f.drop_rate:
            self.dropped += 1
            return
        copies = 2 if f.duplicate_rate and rng.random() < f.duplicate_rate else 1
        for _ in range(copies):
            delay = rng.randint(f.min_delay_ms, f.max_delay_ms)
            if f.spike_rate and rng.random() < f.spike_rate:
                delay += rng.randint(0, f.spike_delay_ms)
            self._clock.call_later(delay, self._arrive, src, dst, payload)

    def _arrive(self, src: str, dst: str, payload: Any) -> None:
        if (src, dst) in self._cut:
            self.dropped += 1
            return
        self._deliver(src, dst, payload)

    def connected(self, src: str, dst: str) -> bool:
        return (src, dst) not in self._cut

    def partition(self, groups: Iterable[Iterable[str]]) -> None:
        """Cut every link between different groups, both ways (links inside a group stay)."""
        groups = [sorted(g) for g in groups]
        for i, a in enumerate(groups):
            for b in groups[i + 1 :]:
                for x in a:
                    for y in b:
                        self._cut.add((x, y))
                        self._cut.add((y, x))

    def cut_one_way(self, src: str, dst: str) -> None:
        self._cut.add((src, dst))

    def heal(self) -> None:
        self._cut.clear()

    @property
    def cuts(self) -> list[tuple[str, str]]:
        return sorted(self._cut)
