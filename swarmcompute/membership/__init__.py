"""Gossip membership: who is in the cluster, who is alive, and what each node offers.

A pure SWIM/memberlist core (``Membership``) driven by ticks and messages, its
wire messages (``gossip.*``), the effects it returns, tick-based presets
(``GossipConfig.lan()``/``local()``/``simulation()``), and a seeded simulator.
``resources.sample_meta`` is the shell-side helper that reads psutil and
``nvidia-smi``; it is not imported here, so the core stays pure.
"""

from __future__ import annotations

from swarmcompute.membership.config import GossipConfig
from swarmcompute.membership.core import Membership
from swarmcompute.membership.effects import (
    Effect,
    MemberDead,
    MemberEvent,
    MemberLeft,
    MemberSuspect,
    MemberUp,
    MemberUpdated,
    Send,
)
from swarmcompute.membership.members import Member
from swarmcompute.membership.messages import (
    Ack,
    Gossip,
    GossipMessage,
    MemberState,
    MemberUpdate,
    Ping,
    PingReq,
    PushPull,
)
from swarmcompute.membership.meta import GpuInfo, NodeMeta

__all__ = [
    "Ack",
    "Effect",
    "GpuInfo",
    "Gossip",
    "GossipConfig",
    "GossipMessage",
    "Member",
    "MemberDead",
    "MemberEvent",
    "MemberLeft",
    "MemberState",
    "MemberSuspect",
    "MemberUp",
    "MemberUpdate",
    "MemberUpdated",
    "Membership",
    "NodeMeta",
    "Ping",
    "PingReq",
    "PushPull",
    "Send",
]
