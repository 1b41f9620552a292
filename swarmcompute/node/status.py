"""`swarm status` as data: the nodes as this daemon sees them, the leader, quorum health.

Sources: the Raft status (roles, term, which voters the leader hears from),
the gossip view (liveness, addresses, advertised resources) and the job table
(running jobs per node). On a follower, a voter counts as missing when gossip
does not see it alive; on the leader, when Raft has not heard from it within
an election timeout or gossip holds it gone. ``quorum["reason"]`` says in one line why quorum is not
healthy: missing voters, an election under way, or this node being outside the
cluster's configuration (removed, or replaced by `swarm recover`) while it asks
to rejoin.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from swarmcompute.membership.members import Member
from swarmcompute.membership.meta import NodeMeta
from swarmcompute.node.resources import ResourceSample
from swarmcompute.raft.ready import Role, Status
from swarmcompute.state.job import ACTIVE_STATES
from swarmcompute.state.table import JobTable


def role_of(node_id: str, raft: Status) -> str:
    if node_id == raft.node_id and raft.excluded:
        return "joining"  # our own log still lists us, but the cluster does not
    if node_id == raft.leader_id:
        return "leader"
    if node_id in raft.voters:
        return "follower"
    if node_id in raft.learners:
        return "learner"
    return "joining"


RECOVER_HINT = "if they are gone for good: swarm recover"


def quorum_view(
    raft: Status,
    alive: set[str],
    names: dict[str, str] | None = None,
    suspect: Collection[str] = (),
    cannot_vote: Collection[str] = (),
) -> dict[str, Any]:
    """Voters, the missing ones, and whether a quorum holds. ``alive``: the voters gossip sees
    alive; ``suspect``: those it only suspects; ``names``: node id -> name, for the ``reason`` a
    person reads (``missing`` keeps the ids); ``cannot_vote``: voters whose state directory takes
    no writes (gossip's ``disk_full``): present, so `swarm recover` keeps them, but the reason
    names them where quorum is short, as they neither vote nor acknowledge (it said "an election
    is under way" while one with a full disk and one dead held a 4-voter cluster without a leader).

    On a follower a voter is missing when gossip does not see it alive: the faster signal, and
    the only one it has. On the leader a voter is missing when Raft has not heard from it within
    an election timeout, or gossip holds it gone (neither alive nor suspect); a voter gossip
    only suspects but Raft has just heard from is present. Counting a suspect as missing there
    had a leader fresh from its election, holding the survivor's vote, report quorum unhealthy
    for a moment because gossip suspected that survivor (a loaded 2-core machine)."""
    voters = list(raft.voters)
    if raft.role is Role.LEADER:
        missing = {v for v in voters if v not in alive and v not in suspect} | set(raft.missing_voters)
    else:
        missing = {v for v in voters if v not in alive}
    missing.discard(raft.node_id)
    missing_sorted = sorted(missing)
    needed = len(voters) // 2 + 1
    if raft.excluded:
        reason = f"this node is not in the cluster's configuration: {raft.excluded}; it asks to rejoin as a learner"
        return {"healthy": False, "voters": voters, "missing": [], "needed": needed, "reason": reason}
    healthy = bool(voters) and len(voters) - len(missing_sorted) >= needed and raft.leader_id is not None
    if healthy:
        reason = ""
    elif not voters:
        reason = "this node is not in a configuration yet: it is joining"
    elif len(voters) - len(missing_sorted) < needed:
        shown = ", ".join(_named(missing_sorted, names))
        reason = f"missing voters {shown} ({needed} of {len(voters)} needed); {RECOVER_HINT}"
    elif (
        len(voters)
        - len(missing_sorted)
        - len(full := _named([v for v in cannot_vote if v in voters and v not in missing], names))
        < needed
    ):
        shown = ", ".join(_named(missing_sorted, names))
        gone = f"missing voters {shown}; " if shown else ""
        reason = (
            f"no leader: {gone}{', '.join(full)} cannot vote while {'its' if len(full) == 1 else 'their'} state"
            f" directory is full: free space there ({needed} of {len(voters)} needed)"
        )
    else:
        reason = "no leader yet: an election is under way"
    return {"healthy": healthy, "voters": voters, "missing": missing_sorted, "needed": needed, "reason": reason}


def stale_line(quorum: dict[str, Any], unleased_s: float | None, raft_problem: str | None) -> str | None:
    """Why what this node shows (its job table, its nodes' running counts) may be out of date, in
    one line, or None. Its table moves only with the entries it writes to its Raft log: one that
    cannot write that log (``raft_problem``), or that holds no lease (``unleased_s``: no leader
    backed by a quorum has heard from it) while ``quorum`` is not healthy, stands still, and a
    cut-off node showed jobs it had killed as running, for as long as the cut lasted, with only
    `swarm status` saying so. A node briefly without a leader (an election) still holds its lease,
    and its table is still right, so it says nothing."""
    if raft_problem is not None:
        return f"this node cannot write its raft log ({raft_problem}): what it shows may be out of date"
    if unleased_s is None or quorum.get("healthy"):
        return None
    reason = str(quorum.get("reason") or "")
    why = f"quorum lost: {reason}" if reason.startswith("missing voters") else reason
    return f"this node has not heard from a leader for {unleased_s:.0f} s ({why}): what it shows may be out of date"


def _named(node_ids: Iterable[str], names: dict[str, str] | None) -> list[str]:
    """The names of ``node_ids`` (an id where none is known), sorted, as the quorum line says them."""
    return sorted((names or {}).get(v) or v for v in node_ids)


def node_view(
    node_id: str,
    *,
    member: Member | None,
    raft: Status,
    table: JobTable,
    local: ResourceSample | None,
    local_name: str,
    local_address: str,
    images: list[str],
    own_meta: NodeMeta | None = None,
) -> dict[str, Any]:
    """One node as `swarm status` and `swarm nodes` show it (``own_meta``: this node's inventory
    now, fresher than what it gossiped)."""
    meta: NodeMeta | None = own_meta if local is not None and own_meta is not None else None
    if meta is None and member is not None:
        meta = member.meta
    running = sum(1 for j in table.open_jobs() if j.state in ACTIVE_STATES and j.node == node_id)
    view: dict[str, Any] = {
        "id": node_id,
        "name": meta.name if meta else (local_name if local else ""),
        "address": member.address if member is not None else (local_address if local else ""),
        "role": role_of(node_id, raft),
        "voter": node_id in raft.voters,
        "state": (member.state.value if member is not None else ("alive" if local else "unknown")),
        "cpus": meta.cpus if meta else 0,
        "cpu_percent": meta.cpu_percent if meta else 0.0,
        "load_1m": meta.load_1m if meta else 0.0,
        "mem_total": meta.mem_total if meta else 0,
        "mem_available": meta.mem_available if meta else 0,
        "disk_free": meta.disk_free if meta else 0,
        "disk_full": meta.disk_full if meta else False,
        "clock_off_s": meta.clock_off_s if meta else 0,
        "http_port": meta.http_port if meta else 0,
        "gpus": [{"index": g.index, "uuid": g.uuid, "name": g.name, "mem_total": g.mem_total} for g in meta.gpus]
        if meta
        else [],
        "labels": dict(meta.labels) if meta else {},
        "docker": meta.docker if meta else False,
        "drained": node_id in table.drained,
        "images": list(meta.images) if meta else [],
        "running_jobs": running,
        "version": meta.version if meta else "",
        "protocol": (meta.protocol or "1.0") if meta else "",
    }
    if local is not None:  # our own numbers are fresher than what we gossip
        view.update(
            name=local_name,
            address=local_address,
            state="alive",
            cpus=local.cpus,
            cpu_percent=local.cpu_percent,
            load_1m=local.load_1m,
            mem_total=local.mem_total,
            mem_available=local.mem_available,
            disk_free=local.disk_free,
            images=images,
        )
    return view
