"""What a gang rank's process is told (``swarm run --ranks``; ``swarmcompute.state.gangs``).

Every rank's node knows the whole attempt from its own table: where each rank was placed
(``Job.attempt_nodes``), the rank's local rank and the attempt's port (both chosen with the
placement, ``scheduler.gang``). So each rank's environment is made on its own node at start,
without asking anyone:

- ``SWARM_RANK``, ``SWARM_WORLD_SIZE``, ``SWARM_LOCAL_RANK``, ``SWARM_LOCAL_WORLD_SIZE``
  (the ranks of the attempt on this node) and ``SWARM_GANG_ID``;
- ``SWARM_MASTER_ADDR``: the address rank 0's node is reached at (its peer address, from gossip),
  and ``SWARM_MASTER_PORT``, chosen for the attempt from ``scheduler.gang.GANG_PORTS``: what
  ``torch.distributed``'s ``env://`` wants as ``MASTER_ADDR``/``MASTER_PORT``;
- the same under the names ``torchrun`` gives them (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
  ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), so that ``torch.distributed``'s
  ``env://`` rendezvous works as under ``torchrun``, unless the job's own ``--env`` sets them;
- ``SWARM_HOSTFILE``: an MPI hostfile, ``HOST slots=K`` per node in rank order (``mpirun
  --hostfile``), written 0644 in the system's temporary directory (a root daemon's jobs run as
  their users, who cannot enter its state directory) and removed when the attempt ends, or
  (named by the node's id) when the node next starts a gang rank, after a kill -9 left it. A
  rank in a container (``--image``) gets it bind-mounted read-only at the same path.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from swarmcompute.state.job import Job, JobSpec
from swarmcompute.state.table import JobTable


def host_of(address: str) -> str:
    """The host part of a peer address (``host:port``, ``[v6]:port``)."""
    host = address.rpartition(":")[0] if ":" in address else address
    return host.strip("[]") or address


class GangEnv:
    """The environment of gang ranks started on this node, and their hostfiles."""

    def __init__(self, address_of: Callable[[str], str | None], node_id: str = "") -> None:
        """``node_id``: this node's, in its hostfiles' names; those an earlier life of the node
        left (killed -9 while ranks ran: its job processes died with it) are removed now."""
        self._address_of = address_of
        """Node id -> its peer address (``host:port``), or None when gossip does not know it."""
        self._hostfiles: dict[tuple[str, int], Path] = {}
        self._prefix = f"swarm-{node_id}-" if node_id else "swarm-"
        if node_id:
            for stale in Path(tempfile.gettempdir()).glob(f"{self._prefix}*.hosts"):
                with contextlib.suppress(OSError):
                    stale.unlink()

    def spec_to_start(self, table: JobTable, job: Job, attempt: int) -> JobSpec:
        """``job``'s spec with its rank's variables (any other job's spec as it is)."""
        spec = job.spec
        if not spec.ranks:
            return spec
        nodes = _attempt_nodes(table, job, attempt)
        here = nodes[spec.rank] if spec.rank < len(nodes) else job.node or ""
        hosts: dict[str, int] = {}
        for node_id in nodes:
            host = self._host(node_id)
            hosts[host] = hosts.get(host, 0) + 1
        ours = {
            "RANK": str(spec.rank),
            "WORLD_SIZE": str(spec.ranks),
            "LOCAL_RANK": str(job.local_rank),
            "LOCAL_WORLD_SIZE": str(sum(1 for n in nodes if n == here)),
            "MASTER_ADDR": self._host(nodes[0]) if nodes else "127.0.0.1",
            "MASTER_PORT": str(job.gang_port),
        }
        env = {
            **ours,  # torchrun's names: the job's own --env may set them otherwise
            **spec.env,
            "SWARM_GANG_ID": spec.gang_id,
            **{f"SWARM_{name}": value for name, value in ours.items()},
        }
        hostfile = self._hostfile(job.id, attempt, hosts)
        if hostfile is None:
            return replace(spec, env=env)
        env["SWARM_HOSTFILE"] = str(hostfile)
        mounts = (*spec.mounts, f"{hostfile}:{hostfile}:ro") if spec.image else spec.mounts
        return replace(spec, env=env, mounts=mounts)

    def ended(self, job_id: str, attempt: int) -> None:
        """The attempt's process ended here: its hostfile goes."""
        path = self._hostfiles.pop((job_id, attempt), None)
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()

    def close(self) -> None:
        for job_id, attempt in list(self._hostfiles):
            self.ended(job_id, attempt)

    def _host(self, node_id: str) -> str:
        address = self._address_of(node_id)
        return host_of(address) if address else node_id

    def _hostfile(self, job_id: str, attempt: int, hosts: dict[str, int]) -> Path | None:
        """Write the attempt's hostfile; None when it cannot be written (a full disk: the job
        starts without ``SWARM_HOSTFILE`` rather than not at all)."""
        try:
            fd, name = tempfile.mkstemp(prefix=f"{self._prefix}{job_id}-{attempt}-", suffix=".hosts")
            with os.fdopen(fd, "w") as out:
                out.write("".join(f"{host} slots={n}\n" for host, n in hosts.items()))
            os.chmod(name, 0o644)  # host addresses only: the job's user reads it
        except OSError:
            return None
        self._hostfiles[(job_id, attempt)] = Path(name)
        return Path(name)


def _attempt_nodes(table: JobTable, job: Job, attempt: int) -> list[str]:
    """The node of each rank of ``job``'s gang in ``attempt``, by rank."""
    out = []
    for rank in table.gang(job.spec.gang_id):
        placed = rank.attempt_nodes
        out.append(placed[attempt - 1] if len(placed) >= attempt else rank.node or "")
    return out


def gang_view(table: JobTable, job: Job, name_of: Callable[[str], str]) -> list[dict[str, object]]:
    """Every rank of ``job``'s gang as its record's ``gang`` list shows it (``swarm show --json``)."""
    return [
        {
            "rank": r.spec.rank,
            "id": r.id,
            "state": r.state.value,
            "attempt": r.attempt,
            "node": r.shown_node,
            "node_name": name_of(node) if (node := r.shown_node) else None,
            "local_rank": r.local_rank if r.attempt else None,
            "exit_code": r.exit_code,
        }
        for r in table.gang(job.spec.gang_id)
    ]
