"""The gossip shell: the pure ``Membership`` core, ticked by the daemon's clock, and its effects.

``Send`` effects go out through the peer transport (by address); member events
go to the daemon, which logs them, updates its address book and, on the
leader, re-queues the attempts of a dead node and replaces dead voters.
The node's own resources are re-sampled every ``META_INTERVAL_S`` and
advertised as its ``NodeMeta``.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import structlog

from swarmcompute.membership.config import GossipConfig
from swarmcompute.membership.core import Membership
from swarmcompute.membership.effects import Effect, MemberEvent, Send, TwinFound
from swarmcompute.membership.members import Member
from swarmcompute.membership.messages import Gossip
from swarmcompute.membership.meta import NodeMeta

log = structlog.get_logger(__name__)

META_INTERVAL_S = 5.0
META_REFRESH_S = 60.0
"""Resources are re-advertised when they changed noticeably, and at least this often..."""
META_REFRESH_PER_NODE_S = 15.0
"""...or, in a bigger cluster, every this many seconds per live member. Each refresh is a rumour
that every node passes on a dozen times, so a refresh a minute from each of 20 idle nodes kept
every node sending and reading 4 to 9 gossip messages a second, more than its Raft heartbeats
(measured on a 20-node loopback cluster); scaled so, the whole cluster sends one refresh every
15 s whatever its size. A change of inventory (what the scheduler places by) goes out at once."""
SWING_GAP_PER_NODE_S = 3.0
"""A noticeable swing of the figures only people read (CPU use, load, free memory and disk:
``swarm status``, the dashboard, /metrics) goes out once this many seconds per live member have
passed since the last advertisement, 10 s at least: on a busy machine they swing every few
seconds, and 20 nodes on a shared machine re-advertised 91 times a minute, 6 to 8 gossip
messages a second for every node; this bounds it to a swing every 3 s in the whole cluster."""
SWING_GAP_MIN_S = 10.0


class GossipHost:
    def __init__(
        self,
        node_id: str,
        address: str,
        *,
        send: Callable[[str, object], bool],
        on_event: Callable[[MemberEvent | TwinFound], None],
        sample_meta: Callable[[], NodeMeta],
        config: GossipConfig | None = None,
        rng: random.Random | None = None,
        send_lazily: Callable[[str, object], bool] | None = None,
    ) -> None:
        self.config = config or GossipConfig.lan()
        self._send = send
        self._send_lazily = send_lazily or send
        """For rumours (``Gossip``): they ride with the next message to the same node, up to
        ``transport.outbox.LAZY_S`` later (a rumour a quarter second late changes nothing, and
        after a change every node sends a dozen of them). Probes, full states and what is told
        to one node directly (``Send.urgent``) go at once: a renumbered node's announcement held
        back made its first connections 0.25 s late, and a member whose probe of the old address
        timed out meanwhile suspected it (members learnt the address 0.46-0.54 s after the move)."""
        self._on_event = on_event
        self._sample_meta = sample_meta
        self._advertised = sample_meta()
        self.core = Membership(node_id, address, self.config, rng or random.Random(), meta=self._advertised)
        self._ticks = 0
        self._ticks_per_meta = max(1, round(META_INTERVAL_S * 1000.0 / self.config.tick_ms))
        self._ticks_per_refresh = max(1, round(META_REFRESH_S * 1000.0 / self.config.tick_ms))
        self._ticks_per_member_refresh = max(1, round(META_REFRESH_PER_NODE_S * 1000.0 / self.config.tick_ms))
        self._ticks_per_swing = max(1, round(SWING_GAP_MIN_S * 1000.0 / self.config.tick_ms))
        self._ticks_per_member_swing = max(1, round(SWING_GAP_PER_NODE_S * 1000.0 / self.config.tick_ms))
        self._advertised_tick = 0

    def tick(self, behind: int = 0) -> None:
        """One gossip tick (``behind``: ``Membership.tick``'s); every ``META_INTERVAL_S`` look
        whether our resources changed enough to be worth a round of gossip (every update costs a
        dozen retransmissions)."""
        self._carry(self.core.tick(behind))
        self._ticks += 1
        if self._ticks % self._ticks_per_meta:
            return
        meta = self._sample_meta()
        live, since = self.core.num_live, self._ticks - self._advertised_tick
        if (
            inventory_changed(self._advertised, meta)
            or since >= max(self._ticks_per_refresh, self._ticks_per_member_refresh * live)
            or (
                since >= max(self._ticks_per_swing, self._ticks_per_member_swing * live)
                and changed_noticeably(self._advertised, meta)
            )
        ):
            self._advertise(meta)

    def advertise_now(self) -> None:
        """Advertise our meta at once if what the scheduler places by changed (a full state
        directory: the leader should stop giving us jobs within a second, not ``META_INTERVAL_S``)."""
        meta = self._sample_meta()
        if inventory_changed(self._advertised, meta):
            self._advertise(meta)

    def _advertise(self, meta: NodeMeta) -> None:
        self._advertised, self._advertised_tick = meta, self._ticks
        self._carry(self.core.set_meta(meta))

    def step(self, sender: str, msg: object) -> None:
        self._carry(self.core.step(sender, msg))  # type: ignore[arg-type]

    def join(self, seeds: list[str]) -> None:
        if seeds:
            self._carry(self.core.join(seeds))

    def set_address(self, address: str) -> None:
        """This node's own address changed: a new incarnation, announced to every live member."""
        self._carry(self.core.set_address(address))

    def leave(self) -> None:
        self._carry(self.core.leave())

    def forget(self, node_id: str) -> bool:
        """Drop a dead or left member's record now (`swarm forget`); False for a live one."""
        return self.core.forget(node_id)

    def members(self) -> list[Member]:
        return self.core.members()

    def member(self, node_id: str) -> Member | None:
        return self.core.member(node_id)

    def _carry(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                if isinstance(effect.msg, Gossip) and not effect.urgent:
                    self._send_lazily(effect.address, effect.msg)
                else:
                    self._send(effect.address, effect.msg)
            else:
                try:
                    self._on_event(effect)
                except Exception:
                    log.exception("member_event_handler_failed", event=type(effect).__name__)


_INVENTORY = (
    "name",
    "cpus",
    "mem_total",
    "gpus",
    "images",
    "version",
    "protocol",
    "labels",
    "docker",
    "users",
    "roles",
    "disk_full",
    "clock_off_s",
    "http_port",
    "unpulled",
)
"""What the scheduler and `swarm status` care about (``users``: a new account is placeable;
``clock_off_s``: a clock over a minute off the leader's, told at most every half minute of drift)."""


def inventory_changed(old: NodeMeta, new: NodeMeta) -> bool:
    """What the scheduler places by (and joins and labels change): worth a rumour at once."""
    return any(getattr(old, key) != getattr(new, key) for key in _INVENTORY)


def changed_noticeably(old: NodeMeta, new: NodeMeta) -> bool:
    """What the scheduler and `swarm status` would care about: inventory, or a real swing in use.

    The load average moves by a quarter of itself at least (and by 1.0): on a busy machine it
    wanders by more than 1.0 every few seconds, and each such rumour cost every node of a
    20-node cluster a dozen gossip messages (a busy shared machine: 69 re-advertisements in 40 s)."""
    if inventory_changed(old, new):
        return True
    total = max(new.mem_total, 1)
    return (
        abs(old.cpu_percent - new.cpu_percent) >= 20.0
        or abs(old.mem_available - new.mem_available) / total >= 0.05
        or abs(old.load_1m - new.load_1m) >= max(1.0, 0.25 * max(old.load_1m, new.load_1m))
        or abs(old.disk_free - new.disk_free) >= max(old.disk_free, 1) * 0.05
    )
