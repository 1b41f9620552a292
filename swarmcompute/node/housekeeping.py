"""Housekeeping a person asks for, and nodes long gone fading from `swarm status`.

`swarm prune`: finished jobs and their output go *now*, under the cluster's history bounds
(``--keep-jobs``, ``--keep-history`` of the node asked) or the overrides ``keep`` and
``older_than_s``, oldest first and batch by batch, through the same ``PruneJobs`` command the
leader proposes once a second (``state.history``): a job that an unfinished job waits on is
never removed. What it reports: how many jobs left the table, and the bytes of their output (the
logs of attempts that ran here and the copies this node held) that this node deleted.

`swarm forget NODE`: a node gone for good is dropped from every node's view through the log
(``state.forgotten``): when a node applies ``ForgetNode`` it drops the node's gossip record and
its ``peers.json`` entry, and a leader takes it out of the Raft configuration (now, and each
second until done: one configuration change at a time). A live or suspect node is refused, and
so is any node while the cluster has no quorum (a voter lost with it is `swarm recover`'s case);
a dead voter leaves the configuration only while the voters left keep a quorum, which is said.

Fading: a node that is neither alive nor suspect, not a voter (a missing voter is the quorum's
business, and stays listed), and that left, or has been dead longer than ``forget_after_s``
(``--forget-after``, default 1 h), or that gossip has not known for that long, is no longer in
``nodes`` but in ``hidden_nodes`` (`swarm nodes --all`); a forgotten one is in neither.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from swarmcompute.errors import MembershipChangeError, NodeAliveError, NoQuorumError, NotLeaderError
from swarmcompute.membership.members import ALIVE, DEAD, LEFT, SUSPECT, Member
from swarmcompute.node.labels import resolve_node
from swarmcompute.state.forgotten import ForgetNode
from swarmcompute.state.history import PruneJobs, kept_anyway, prunable

if TYPE_CHECKING:
    from swarmcompute.node.daemon import Daemon

log = structlog.get_logger(__name__)

DEFAULT_FORGET_AFTER_S = 3600.0
FORGET_WAIT_S = 5.0
"""`swarm forget` waits this long for the leader to take a member out of the configuration."""


class Housekeeping:
    """The daemon's side of `swarm prune`, `swarm forget` and fading (see the module doc)."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._seen: dict[str, float] = {}

    # -- swarm prune -------------------------------------------------------------------

    async def prune(self, *, older_than_s: float | None = None, keep: int | None = None) -> dict[str, Any]:
        """Remove the finished jobs past the bounds now; what went (``removed``, ``bytes``) and
        what is kept (``finished_kept``, ``held``: finished jobs kept for an unfinished one)."""
        daemon = self._daemon
        keep_jobs = daemon.config.keep_jobs if keep is None else keep
        keep_s = daemon.config.keep_s if older_than_s is None else older_than_s
        self._require_quorum("nothing can be pruned")
        removed: list[str] = []
        freed = 0
        while ids := prunable(daemon.table, keep_jobs=keep_jobs, keep_s=keep_s, now=time.time()):
            sizes = await asyncio.to_thread(
                _output_sizes, daemon.paths.job_output_dir, daemon.paths.job_copies_dir, ids
            )
            await daemon.commit([PruneJobs(tuple(ids), time.time(), "swarm prune")])
            gone = [i for i in ids if i not in daemon.table]
            if not gone:
                break  # whatever is left of them is re-checked on apply and kept (held since)
            removed += gone
            freed += sum(sizes.get(i, 0) for i in gone)
        table = daemon.table
        held = kept_anyway(table)
        kept_held = sum(1 for j in table.finished_jobs() if j.id in held)
        if removed:
            log.info("jobs_pruned", jobs=len(removed), bytes=freed, why="swarm prune")
        return {
            "removed": len(removed),
            "bytes": freed,
            "finished_kept": table.finished_count,
            "held": kept_held,
            "keep_jobs": keep_jobs,
            "keep_s": keep_s,
        }

    # -- swarm forget ------------------------------------------------------------------

    async def forget(self, ref: str) -> dict[str, Any]:
        """Forget the gone node ``ref`` names, on every node; its row of what happened."""
        daemon = self._daemon
        node_id, name = resolve_node(daemon, ref)
        if node_id == daemon.node_id:
            raise NodeAliveError(f"{name} is this node: stop it with `swarm leave` (forget it from another node)")
        member = daemon.gossip.member(node_id)
        if member is not None and member.state in (ALIVE, SUSPECT):
            gossip = daemon.gossip
            c = gossip.config
            within = c.seconds(c.probe_interval_ticks + c.suspicion_timeout_ticks(gossip.core.num_live))
            seen = "is alive at" if member.state is ALIVE else "is suspect, maybe alive, at"
            raise NodeAliveError(
                f"{name} {seen} {member.address}: only a node gone for good can be forgotten. Run `swarm leave` "
                f"on it; if it is down, it shows dead in `swarm nodes` within about {within:.0f} s: forget it then"
            )
        raft = daemon.committer.raft.node
        was_voter = node_id in raft.membership.voters
        was_member = node_id in raft.membership.members
        self._require_quorum(
            f"{name} cannot be forgotten"
            + ("; a lost voter that leaves no quorum is replaced with `swarm recover`" if was_voter else "")
        )
        await daemon.commit([ForgetNode(node_id, time.time())])
        self.applied()  # here now; the others within a second (their maintenance looks)
        deadline = time.monotonic() + FORGET_WAIT_S
        while was_member and time.monotonic() < deadline and not self._out_of_configuration(node_id):
            await daemon.wait_changed(0.2)
        out = not was_member or self._out_of_configuration(node_id)
        voters = sorted(daemon.node_name(v) for v in daemon.committer.raft.node.membership.voters)
        quorum = daemon.quorum()
        if was_voter and out:
            alive = len(quorum["voters"]) - len(quorum["missing"])
            text = (
                f"forgot {name}: it was a voter; the voters are now {', '.join(voters)} and quorum holds "
                f"({alive} of {len(quorum['voters'])} alive, {quorum['needed']} needed)"
            )
        elif out:
            text = f"forgot {name}: gone from the cluster's configuration, every node's view and peers.json"
        else:
            text = f"forgot {name}: gone from every node's view; the leader takes it out of the configuration next"
        log.info("node_forgotten", node=name, node_id=node_id, voter=was_voter)
        return {
            "id": node_id,
            "name": name,
            "was_voter": was_voter,
            "out_of_configuration": out,
            "voters": voters,
            "message": text,
        }

    def _out_of_configuration(self, node_id: str) -> bool:
        node = self._daemon.committer.raft.node
        return node_id not in node.membership.members and node.membership_index <= node.commit

    def _require_quorum(self, what: str) -> None:
        daemon = self._daemon
        if daemon.committer.raft.node.membership.voters == {daemon.node_id}:
            return  # its own quorum
        quorum = daemon.quorum()
        if not quorum["healthy"]:
            raise NoQuorumError(f"no quorum, so {what}: {quorum['reason']}")

    # -- every node: acting on ForgetNode ------------------------------------------------

    def applied(self) -> None:
        """After applied entries: drop newly forgotten nodes from this node's gossip view and
        address book; a leader also takes them out of the configuration."""
        daemon = self._daemon
        forgotten = daemon.table.forgotten
        if forgotten == self._seen:
            return
        new = [n for n, at in forgotten.items() if self._seen.get(n) != at]
        self._seen = dict(forgotten)
        for node_id in new:
            if daemon.node_alive(node_id) or node_id == daemon.node_id:
                continue  # it came back before this node applied the command: it stays
            daemon.gossip.forget(node_id)
            daemon.link.forget_node(node_id)
            log.info("node_forgotten", node_id=node_id)
        if new and daemon.is_leader():
            self.maintenance()

    def maintenance(self) -> None:
        """On the leader, once a second: take a forgotten, not alive member out of the Raft
        configuration (a voter only while the voters left keep a quorum), one at a time."""
        daemon = self._daemon
        raft = daemon.committer.raft
        membership = raft.node.membership
        for node_id in daemon.table.forgotten:
            if node_id not in membership.members or daemon.node_alive(node_id):
                continue
            if node_id in membership.voters:
                remaining = membership.voters - {node_id}
                if sum(1 for v in remaining if daemon.node_alive(v)) < len(remaining) // 2 + 1:
                    continue
            try:
                raft.remove(node_id)
                log.info("forgotten_node_removed", node_id=node_id)
            except (MembershipChangeError, NotLeaderError) as exc:
                log.debug("forgotten_node_removal_deferred", node_id=node_id, reason=str(exc))
            return

    # -- fading ------------------------------------------------------------------------

    def split(
        self, rows: list[dict[str, Any]], members: dict[str, Member]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """``rows`` (`swarm status`'s nodes) as (shown, hidden): see the module doc. Each row
        gets ``down_s``, how long it has been dead or left as far as this node knows (None)."""
        daemon = self._daemon
        gossip = daemon.gossip
        now_tick, tick_s = gossip.core.now_tick, gossip.config.tick_ms / 1000.0
        fade_s = daemon.config.forget_after_s
        uptime_s = time.monotonic() - daemon.started_monotonic
        forgotten = daemon.table.forgotten
        shown: list[dict[str, Any]] = []
        hidden: list[dict[str, Any]] = []
        for row in rows:
            member = members.get(row["id"])
            gone = member is not None and (member.state is DEAD or member.state is LEFT)
            row["down_s"] = round((now_tick - member.state_changed_tick) * tick_s, 1) if gone and member else None
            if row["id"] == daemon.node_id or row["state"] in ("alive", "suspect"):
                shown.append(row)
            elif row["id"] in forgotten:
                continue  # forgotten: in neither list while it is not alive
            elif row["voter"]:
                shown.append(row)
            elif row["state"] == "left" or (row["down_s"] or 0.0) >= fade_s:
                hidden.append(row)
            elif row["state"] not in ("dead", "left") and member is None and uptime_s >= fade_s:
                hidden.append(row)  # not in gossip any more (reaped), so gone at least that long
            else:
                shown.append(row)
        return shown, hidden


def _output_sizes(output_dir: Path, copies_dir: Path, job_ids: list[str]) -> dict[str, int]:
    """Bytes each job holds on this node: its attempts' logs and the copies this node keeps."""
    sizes: dict[str, int] = {}
    for job_id in job_ids:
        if not job_id or "/" in job_id or job_id in (".", ".."):
            continue
        total = 0
        for root in (output_dir / job_id, copies_dir / job_id):
            if root.is_symlink() or not root.is_dir():
                continue
            for dirpath, _dirs, files in os.walk(root):
                for name in files:
                    try:
                        total += os.lstat(os.path.join(dirpath, name)).st_size
                    except OSError:
                        pass
        sizes[job_id] = total
    return sizes
