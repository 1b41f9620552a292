"""Tunables of the gossip core, in ticks, with memberlist-style presets.

The core never reads a clock: the shell calls ``tick()`` every ``tick_ms``
milliseconds and every interval below counts those calls. The presets follow
hashicorp/memberlist's ``DefaultLANConfig``/``DefaultLocalConfig`` but lean
slower where a home LAN needs it (Wi-Fi retransmits, busy Raspberry Pis): a
suspect gets at least ``suspicion_mult`` probe intervals to refute, scaled up
by log10 of the cluster size, before anyone declares it dead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from swarmcompute.errors import ConfigError

_DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class GossipConfig:
    tick_ms: int = 100
    """What one tick means to the shell; the core only counts ticks."""
    probe_interval_ticks: int = 10
    """One failure-detection probe (ping, then ping-req) per interval, round-robin over members."""
    probe_timeout_ticks: int = 5
    """Wait this long for a direct ack before asking ``indirect_checks`` peers to probe for us."""
    indirect_checks: int = 3
    gossip_interval_ticks: int = 2
    gossip_nodes: int = 3
    """Random peers that get queued updates every gossip interval."""
    retransmit_mult: int = 4
    """Each update is piggy-backed ``retransmit_mult * ceil(log10(N + 1))`` times..."""
    min_retransmits: int = 12
    """...but at least this often: while a cluster forms, N is small and views are partial, and
    memberlist's 4 copies per rumour left 8-node clusters waiting for the next push-pull."""
    suspicion_mult: int = 5
    """Suspicion timeout = ``suspicion_mult * max(1, log10(N)) * probe_interval_ticks``."""
    push_pull_interval_ticks: int = 300
    """Full-state exchange with one random live peer (anti-entropy, partition healing);
    scaled up past 32 members by ``push_pull_gap_ticks``."""
    early_push_pull_ticks: int = 20
    """After a join the push-pull gap starts here and doubles up to the interval above: a
    view formed during a join burst (every box boots after a power cut) misses rumours."""
    gossip_to_the_dead_ticks: int = 300
    """Keep gossiping to a node this long after it is declared dead, so it can hear and refute."""
    reconnect_interval_ticks: int = 300
    """Serf-style: try a push-pull with one random dead member this often..."""
    reconnect_timeout_ticks: int = _DAY_MS // 100
    """...for this long after it died; after ``reap_ticks`` its tombstone is dropped."""
    reap_ticks: int = _DAY_MS // 100
    join_retry_ticks: int = 50
    """Re-send the join push-pull to the seeds while no peer has answered."""
    announce_ticks: int = 20
    """After this node's address changed, tell every live member directly, every gossip interval
    for this long (the first sends on new connections can be lost while they connect)."""
    max_piggyback: int = 32
    """Updates per gossip, ping or ack message..."""
    max_message_bytes: int = 8 * 1024
    """...and their estimated bytes; one oversized update still travels alone."""
    max_push_pull_bytes: int = 64 * 1024
    """A full-state sync is chunked into messages of at most this many estimated bytes."""
    settle_max_ticks: int = 20
    """A starting node takes part in the cluster once it has had a peer's full state and checked
    it (``Membership.settled``), or after this long when no peer answers."""

    def __post_init__(self) -> None:
        positive = (
            "tick_ms",
            "probe_interval_ticks",
            "probe_timeout_ticks",
            "gossip_interval_ticks",
            "retransmit_mult",
            "suspicion_mult",
            "push_pull_interval_ticks",
            "early_push_pull_ticks",
            "reconnect_interval_ticks",
            "join_retry_ticks",
            "announce_ticks",
            "max_piggyback",
            "max_message_bytes",
            "max_push_pull_bytes",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"GossipConfig.{name} must be at least 1")
        if self.probe_timeout_ticks >= self.probe_interval_ticks:
            raise ConfigError("probe_timeout_ticks must be below probe_interval_ticks")
        if self.indirect_checks < 0 or self.gossip_nodes < 1:
            raise ConfigError("indirect_checks must be >= 0 and gossip_nodes >= 1")

    @classmethod
    def lan(cls) -> GossipConfig:
        """A home LAN at 100 ms ticks: probe 1 s (ack within 500 ms), gossip 200 ms to 3
        peers, suspicion >= 5 s, push-pull every 30 s."""
        return cls()

    @classmethod
    def local(cls) -> GossipConfig:
        """Loopback / one machine at 100 ms ticks: faster acks and suspicion, push-pull 15 s."""
        return cls(
            probe_timeout_ticks=2,
            gossip_interval_ticks=1,
            suspicion_mult=3,
            push_pull_interval_ticks=150,
            gossip_to_the_dead_ticks=150,
            reconnect_interval_ticks=150,
        )

    @classmethod
    def simulation(cls) -> GossipConfig:
        """The LAN timings with short tombstones, so long simulated runs stay small."""
        return cls(reconnect_timeout_ticks=6000, reap_ticks=6000)

    def retransmit_limit(self, n_members: int) -> int:
        return max(self.min_retransmits, self.retransmit_mult * math.ceil(math.log10(n_members + 1)))

    def suspicion_timeout_ticks(self, n_members: int) -> int:
        scale = max(1.0, math.log10(max(1, n_members)))
        return math.ceil(self.suspicion_mult * scale * self.probe_interval_ticks)

    def push_pull_gap_ticks(self, n_members: int) -> int:
        """memberlist's ``pushPullScale``: the full-state sync slows down past 32 members
        (x2 at 33-64, ..., x6 at 1000), since each one carries every member."""
        if n_members <= 32:
            return self.push_pull_interval_ticks
        return self.push_pull_interval_ticks * (math.ceil(math.log2(n_members) - 5) + 1)

    def seconds(self, ticks: float) -> float:
        """Ticks as seconds of shell time, for reports."""
        return ticks * self.tick_ms / 1000.0
