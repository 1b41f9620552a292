"""Bounded history: the daemon's RSS with many finished jobs, and after the history bound removed them.

    .venv/bin/python benchmarks/history.py [--jobs 100000] [--keep-jobs 10000]

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--keep-jobs", type=int, default=10_000)
    args = parser.parse_args()
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
