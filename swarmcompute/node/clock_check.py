"""How far this node's wall clock is off its leader's, and when to tell the others.

Every lease grant carries the leader's ``time.time`` (``LeaseGrant.wall``); the asker reads its
offset off each one (``LeaseHost.clock_offset``, the one-way delay included: milliseconds). The
job table keeps its times on the leader's clock whatever a node's says (``JobTable.apply``), so a
wrong clock no longer costs work; what it still costs is what a job itself stamps (its files, its
own logs) and this daemon's log lines. So a node whose clock is over a minute off says so: in its
log, and in its gossip (``NodeMeta.clock_off_s``), which every `swarm status` turns into a line.
The value gossiped changes only when the offset moves by half a minute or comes back within the
minute, so that the delay's jitter never sets off a round of gossip.
"""

from __future__ import annotations

from swarmcompute.state.table import NODE_CLOCK_TRUSTED_S

RETELL_S = 30
"""A told offset is told again once it moved by this much."""


def clock_off_to_tell(offset: float | None, told: int) -> int:
    """What to gossip as ``NodeMeta.clock_off_s`` now that the offset reads ``offset`` (None: no
    grant yet) and ``told`` was gossiped last: 0 within ``NODE_CLOCK_TRUSTED_S``, else the offset
    in whole seconds."""
    if offset is None:
        return told
    if abs(offset) <= NODE_CLOCK_TRUSTED_S:
        return 0
    now = round(offset)
    return told if told and abs(now - told) < RETELL_S else now
