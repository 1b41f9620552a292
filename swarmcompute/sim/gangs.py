"""What the simulators check of gangs (``--ranks``, ``swarmcompute.state.gangs``), on the ground
truth of the simulated processes rather than on any table:

- **One attempt at a time.** No rank of a gang starts an attempt while a rank of another attempt
  of that gang still runs (each rank's own at-most-one is the simulator's per-job check).
- **Distinct slots.** The ranks of one attempt that run on a node hold distinct local ranks, and
  never more than ``ranks_per_node`` of them.
- **No partial run past the lease.** Once a rank of an attempt has ended without exiting 0 (lost
  with its node, stopped, killed, failed), every other rank of the attempt still running is told
  to stop (SIGTERM; the job may take its grace period) within ``PARTIAL_MAX_S``: the leader's
  re-run wait after a silent node's last grant (``RERUN_AFTER_S``), the stop's kill grace, and
  the round trips that carry the news (a commit and its apply, each of which the simulated network
  may delay by up to ``SPIKE_MAX_S`` and drop, resent after ``FORWARD_RESEND_S``).
- **Success means every rank exited 0.** At the end, a gang rank that succeeded did so in an
  attempt whose process exited 0, and its gang's ranks all succeeded in that same attempt.

``partial_max_s`` and ``start_spread_max_s`` (from the first rank's start to the last's, in
attempts that all started) are measured for the sweep's report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from swarmcompute.node.committer import FORWARD_RESEND_S
from swarmcompute.rules.lease import KILL_GRACE_S, RERUN_AFTER_S
from swarmcompute.state.job import Job, JobState
from swarmcompute.state.table import JobTable

SPIKE_MAX_S = 1.5
"""The longest extra delay the simulated network gives a message (``JobSim._send``)."""
PARTIAL_MAX_S = RERUN_AFTER_S + KILL_GRACE_S + 2 * (SPIKE_MAX_S + FORWARD_RESEND_S)

GangKey = tuple[str, int, float]
"""An attempt of a gang: (gang id, attempt number, when it was assigned). The time tells apart two
attempts of one number in two histories (`swarm recover` gives up one and numbers from 1 again)."""


@dataclass(slots=True)
class _Attempt:
    ranks: int
    per_node: int
    running: dict[str, tuple[str, int]] = field(default_factory=dict)
    """Rank job id -> (node, local rank) of each rank process alive now."""
    started: dict[str, float] = field(default_factory=dict)
    bad_since: float | None = None
    """When a rank of it first ended without exiting 0."""


class GangWatch:
    def __init__(self) -> None:
        self._attempts: dict[GangKey, _Attempt] = {}
        self._key_of: dict[tuple[str, int], GangKey] = {}  # (rank job id, attempt) -> its gang attempt
        self._live: dict[str, set[GangKey]] = {}  # gang id -> attempts with a rank process alive
        self._broken: set[GangKey] = set()  # attempts with a bad end and ranks still alive
        self._ok: set[tuple[str, int, float]] = set()  # (rank job id, attempt, assigned) that exited 0
        self.partial_max_s = 0.0
        self.start_spread_max_s = 0.0
        self.gang_attempts = 0

    def started(self, node_id: str, job: Job, attempt: int, now: float) -> str | None:
        """A rank's process starts on ``node_id`` (``job`` as that node's table has it); a
        violation, or None."""
        spec = job.spec
        gang = spec.gang_id
        key = (gang, attempt, job.assigned_at or 0.0)
        self._key_of[(job.id, attempt)] = key
        others = sorted(k for k in self._live.get(gang, ()) if k != key)
        if others:
            return f"gang {gang} starts attempt {attempt} (rank {spec.rank}) while attempt {others[0][1]} still runs"
        run = self._attempts.get(key)
        if run is None:
            run = self._attempts[key] = _Attempt(spec.ranks, spec.ranks_per_node)
            self.gang_attempts += 1
        slot = (node_id, job.local_rank)
        if slot in run.running.values():
            return f"two ranks of gang {gang} attempt {attempt} hold local rank {job.local_rank} on {node_id}"
        if run.per_node and sum(1 for n, _ in run.running.values() if n == node_id) >= run.per_node:
            return f"gang {gang} attempt {attempt} runs more than {run.per_node} ranks on {node_id}"
        run.running[job.id] = slot
        run.started[job.id] = now
        self._live.setdefault(gang, set()).add(key)
        if len(run.started) == run.ranks:
            self.start_spread_max_s = max(self.start_spread_max_s, now - min(run.started.values()))
        return None

    def ended(self, job_id: str, attempt: int, *, ok: bool, now: float) -> None:
        """A rank's process is gone: it exited 0 (``ok``), or anything else (killed, with its node)."""
        key = self._key_of.get((job_id, attempt))
        if key is None:
            return
        run = self._attempts.get(key)
        if run is None or run.running.pop(job_id, None) is None:
            return
        if ok:
            self._ok.add((job_id, attempt, key[2]))
        elif run.bad_since is None:
            run.bad_since = now
        if run.running:
            if run.bad_since is not None:
                self._broken.add(key)
        else:
            self._broken.discard(key)
            live = self._live.get(key[0])
            if live is not None:
                live.discard(key)

    def check(self, now: float, told_to_stop: Callable[[str, int, str], bool]) -> str | None:
        """After every event: a broken attempt's other ranks are told to stop in time.
        ``told_to_stop(job id, attempt, node)``: whether that process was SIGTERMed."""
        for key in list(self._broken):
            run = self._attempts[key]
            assert run.bad_since is not None
            left = [j for j, (n, _) in run.running.items() if not told_to_stop(j, key[1], n)]
            if not left:
                self._broken.discard(key)
                self.partial_max_s = max(self.partial_max_s, now - run.bad_since)
                continue
            if now - run.bad_since > PARTIAL_MAX_S:
                return (
                    f"gang {key[0]} attempt {key[1]} runs partially for {now - run.bad_since:.2f} s "
                    f"(> {PARTIAL_MAX_S:.2f} s): {sorted(left)} not told to stop"
                )
        return None

    def check_end(self, table: JobTable) -> str | None:
        """At the end: a gang succeeded only if every rank's last attempt exited 0."""
        gangs: dict[str, list[Job]] = {}
        for job in table.jobs():
            if job.spec.ranks:
                gangs.setdefault(job.spec.gang_id, []).append(job)
        for gang, ranks in sorted(gangs.items()):
            won = [r for r in ranks if r.state is JobState.SUCCEEDED]
            if not won:
                continue
            if len(won) != len(ranks) or len({r.attempt for r in ranks}) != 1:
                states = {r.id: (r.state.value, r.attempt) for r in ranks}
                return f"gang {gang} partly succeeded: {states}"
            for r in won:
                if (r.id, r.attempt, r.assigned_at or 0.0) not in self._ok:
                    return f"gang rank {r.id} succeeded, but its attempt {r.attempt} did not exit 0"
        return None
