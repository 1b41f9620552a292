"""Bounded history: the daemon's RSS with many finished jobs, and after the history bound removed them.

    .venv/bin/python benchmarks/history.py [--jobs 100000] [--keep-jobs 10000]
    .venv/bin/python benchmarks/history.py --sweep 10000,50000,100000

``--sweep``: one daemon holding every finished job (``--keep-jobs`` above the last step), which
are submitted and cancelled a thousand at a time (so the queue never holds more); at each step
its RSS and the RSS each finished job costs ((RSS - idle RSS) / finished jobs), the size of its
Raft snapshot file, and the time `swarm show` takes for a finished job (its details are read
from disk: ``swarmcompute.state.compact``).

Starts one daemon (in a temporary state directory, stopped by PID at the end) with ``--keep-jobs``,
submits ``--jobs`` jobs pinned to a node that does not exist (they stay pending, so nothing runs and
every record is held), reads the RSS, cancels them all (they are now finished, and the leader
prunes all but ``--keep-jobs`` of them), and reads the RSS again once the table holds only those.
A second daemon with ``--keep-jobs`` above ``--jobs`` holds every cancelled job, for comparison.

Measured (2 shared cores, 100,000 jobs, --keep-jobs 10000): see the README's *Bounded history*.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import psutil

from swarmcompute.api import messages as m
from swarmcompute.testing.daemons import DaemonProcess, wait_until

BATCH = 10_000
SWEEP_BATCH = 1_000


def rss_mib(daemon: DaemonProcess) -> float:
    return psutil.Process(daemon.pid).memory_info().rss / 2**20


def fill(daemon: DaemonProcess, jobs: int) -> list[str]:
    ids: list[str] = []
    for start in range(0, jobs, BATCH):
        count = min(BATCH, jobs - start)
        ids += daemon.client.submit_many([{"argv": ["true"], "node": "nowhere"} for _ in range(count)])
    return ids


def cancel(daemon: DaemonProcess, ids: list[str]) -> None:
    for start in range(0, len(ids), BATCH):
        daemon.client._call(m.Cancel(tuple(ids[start : start + BATCH])))


def finished(daemon: DaemonProcess) -> int:
    return int(daemon.status()["jobs"]["cancelled"])


def run(root: Path, jobs: int, keep_jobs: int) -> dict[str, float]:
    daemon = DaemonProcess(root, name="h", extra_args=("--keep-jobs", str(keep_jobs)), log_level="info").start()
    try:
        idle = rss_mib(daemon)
        started = time.monotonic()
        ids = fill(daemon, jobs)
        submitted_s = time.monotonic() - started
        held = rss_mib(daemon)
        cancel(daemon, ids)
        kept = min(keep_jobs, jobs)
        started = time.monotonic()
        wait_until(lambda: finished(daemon) == kept, 600, f"the table to keep {kept} finished jobs", interval_s=0.5)
        pruned_s = time.monotonic() - started
        time.sleep(3)  # the figure after the prune settles (a measurement, not a wait for a condition)
        return {"idle": idle, "held": held, "after": rss_mib(daemon), "submit_s": submitted_s, "prune_s": pruned_s}
    finally:
        daemon.stop()
        daemon.kill()


def snapshot_bytes(root: Path) -> int:
    """The size of the newest Raft snapshot file in a state directory (0: none yet)."""
    return max((p.stat().st_size for p in root.rglob("raft.snapshot")), default=0)


def show_ms(daemon: DaemonProcess, job_id: str, rounds: int = 20) -> float:
    """The median time of ``Client.job`` for a finished job, in milliseconds."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        daemon.client.job(job_id)
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2] * 1000


def sweep(root: Path, steps: list[int]) -> None:
    """RSS per finished job at each step of ``steps`` (cumulative finished jobs), one daemon."""
    daemon = DaemonProcess(root, name="h", extra_args=("--keep-jobs", str(steps[-1] + 1)), log_level="info").start()
    try:
        time.sleep(3)  # the idle figure once start-up settled (a measurement, not a wait for a condition)
        idle = rss_mib(daemon)
        print(f"idle: {idle:.1f} MiB")
        held = 0
        oldest = ""
        for step in steps:
            while held < step:  # a thousand at a time: what is measured is finished jobs, not a queue
                ids = fill(daemon, min(SWEEP_BATCH, step - held))
                cancel(daemon, ids)
                held += len(ids)
                oldest = oldest or ids[0]
            wait_until(lambda n=held: finished(daemon) == n, 600, f"{held} finished jobs", interval_s=0.5)
            time.sleep(3)  # as above
            rss = rss_mib(daemon)
            per_job = (rss - idle) * 1024 / held
            print(
                f"{held:>7} finished jobs: RSS {rss:.1f} MiB, {per_job:.2f} KiB per finished job; "
                f"snapshot {snapshot_bytes(root) / 1e6:.2f} MB; swarm show of a finished job "
                f"{show_ms(daemon, oldest):.1f} ms (median)",
                flush=True,
            )
    finally:
        daemon.stop()
        daemon.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--keep-jobs", type=int, default=10_000)
    parser.add_argument("--sweep", help="comma-separated finished-job counts, e.g. 10000,50000,100000")
    args = parser.parse_args()
    if args.sweep:
        with tempfile.TemporaryDirectory(prefix="swarm-history-") as tmp:
            sweep(Path(tmp) / "sweep", sorted(int(n) for n in args.sweep.split(",")))
        return
    with tempfile.TemporaryDirectory(prefix="swarm-history-") as tmp:
        bounded = run(Path(tmp) / "bounded", args.jobs, args.keep_jobs)
        print(
            f"--keep-jobs {args.keep_jobs}: idle {bounded['idle']:.1f} MiB; {args.jobs} jobs held "
            f"{bounded['held']:.1f} MiB; after pruning to {args.keep_jobs}: {bounded['after']:.1f} MiB "
            f"(submitted in {bounded['submit_s']:.1f} s, pruned in {bounded['prune_s']:.1f} s)"
        )
        unbounded = run(Path(tmp) / "unbounded", args.jobs, args.jobs + 1)
        print(f"--keep-jobs {args.jobs + 1}: {args.jobs} finished jobs held {unbounded['after']:.1f} MiB")


if __name__ == "__main__":
    main()
