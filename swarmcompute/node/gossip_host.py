"""The gossip shell: ticks the pure ``Membership`` core and carries out its effects.

``Send`` effects go out through the peer transport (by address); member events
go to the daemon, which logs them, updates its address book and, on the
leader, re-queues the attempts of a dead node and replaces dead voters.
The node's own resources are re-sampled every ``META_INTERVAL_S`` and
advertised as its ``NodeMeta``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import structlog

from swarmcompute.membership.config import GossipConfig
from swarmcompute.membership.core import Membership
from swarmcompute.membership.effects import Effect, MemberEvent, Send
from swarmcompute.membership.members import Member
from swarmcompute.membership.meta import NodeMeta

log = structlog.get_logger(__name__)

META_INTERVAL_S = 5.0


class GossipHost:
    def __init__(
        self,
        node_id: str,
        address: str,
        *,
        send: Callable[[str, object], bool],
        on_event: Callable[[MemberEvent], None],
        sample_meta: Callable[[], NodeMeta],
        config: GossipConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config or GossipConfig.lan()
        self._send = send
        self._on_event = on_event
        self._sample_meta = sample_meta
        self.core = Membership(node_id, address, self.config, rng or random.Random(), meta=sample_meta())
        self._ticks = 0
        self._ticks_per_meta = max(1, round(META_INTERVAL_S * 1000.0 / self.config.tick_ms))

    async def run(self) -> None:
        """Tick until cancelled (the daemon ticks through its shared clock instead)."""
        while True:
            await asyncio.sleep(self.config.tick_ms / 1000.0)
            self.tick()

    def tick(self) -> None:
        """One gossip tick; every ``META_INTERVAL_S`` also re-advertise our resources."""
        self._carry(self.core.tick())
        self._ticks += 1
        if self._ticks % self._ticks_per_meta == 0:
            self._carry(self.core.set_meta(self._sample_meta()))

    def step(self, sender: str, msg: object) -> None:
        self._carry(self.core.step(sender, msg))  # type: ignore[arg-type]

    def join(self, seeds: list[str]) -> None:
        if seeds:
            self._carry(self.core.join(seeds))

    def leave(self) -> None:
        self._carry(self.core.leave())

    def members(self) -> list[Member]:
        return self.core.members()

    def member(self, node_id: str) -> Member | None:
        return self.core.member(node_id)

    def _carry(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self._send(effect.address, effect.msg)
            else:
                try:
                    self._on_event(effect)
                except Exception:
                    log.exception("member_event_handler_failed", event=type(effect).__name__)
