"""``python -m swarmcompute.sim --seeds N [--start S] [--nodes K] [--workers W] [--trace SEED]``

Runs the whole-cluster simulator (``swarmcompute.sim.cluster``: Raft, gossip, leases, every
node's rules and the scheduler, on 5 nodes unless ``--nodes`` says otherwise) over many seeds and
prints one summary line; ``--raft`` runs the Raft cluster alone, ``--jobs`` the job simulation
over an abstract log; ``--holds`` adds users holding and releasing jobs. Exits 1 on any
violation, after printing ``SWARM_SEED=<n>`` for every failing seed and the event trace of the
first one (replayed from its seed alone).
This is a shell: it may read the wall clock to report throughput.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from swarmcompute.sim.cluster import ClusterResult, run_cluster_seed
from swarmcompute.sim.jobs import run_job_seed
from swarmcompute.sim.raft_cluster import SimOptions
from swarmcompute.sim.sweep import cluster_sweep, job_sweep, replay_with_trace, sweep

TRACE_TAIL_LINES = 400
PROGRESS_EVERY = 500
"""A long whole-cluster sweep says how far it got (on stderr) every this many seeds."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m swarmcompute.sim", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--seeds", type=int, default=100, help="how many seeds to run")
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument(
        "--nodes", type=int, default=None, help="cluster size (default 5; with --raft: 3 to 5, chosen by the seed)"
    )
    parser.add_argument(
        "--trace", type=int, metavar="SEED", default=None, help="run one seed and print its whole trace"
    )
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the seeds (default 1)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--raft", action="store_true", help="sweep the Raft cluster alone")
    mode.add_argument("--jobs", action="store_true", help="sweep the job simulation over an abstract log")
    parser.add_argument("--holds", action="store_true", help="users hold and release jobs too (not with --raft)")
    defaults = SimOptions()
    parser.add_argument("--safety-ticks", type=int, default=defaults.safety_ticks, help="with --raft")
    parser.add_argument("--liveness-ticks", type=int, default=defaults.liveness_ticks, help="with --raft")
    args = parser.parse_args(argv)
    if args.jobs:
        return _jobs(args.seeds, args.start, args.nodes or 5, args.trace, args.holds)
    if args.raft:
        return _raft(args, replace(defaults, safety_ticks=args.safety_ticks, liveness_ticks=args.liveness_ticks))
    return _cluster(args.seeds, args.start, args.nodes or 5, args.trace, args.workers, args.holds)


def _cluster(seeds: int, start: int, nodes: int, trace: int | None, workers: int, holds: bool = False) -> int:
    if trace is not None:
        one = run_cluster_seed(trace, nodes, trace=True, holds=holds)
        return _traced(one.trace, one.seed, one.nodes, 0 if one.ok else 1)
    started = time.monotonic()

    def progress(result: ClusterResult) -> None:
        if not result.ok:
            print(f"SWARM_SEED={result.seed} nodes={result.nodes}: {result.violation}", file=sys.stderr, flush=True)
        done = result.seed - start + 1
        if done % PROGRESS_EVERY == 0:
            took = time.monotonic() - started
            print(f"progress: {done} seeds in {took:.0f} s", file=sys.stderr, flush=True)

    summary = cluster_sweep(seeds, start, nodes, on_result=progress, workers=workers, holds=holds)
    wall_s = time.monotonic() - started
    return _reported(
        f"{summary.line()} wall_s={wall_s:.1f} seeds_per_s={summary.seeds / max(wall_s, 1e-9):.2f}",
        [(f.seed, f.nodes, str(f.violation)) for f in summary.failures],
        lambda seed, n: run_cluster_seed(seed, n, trace=True, holds=holds).trace,
        "--holds " if holds else "",
    )


def _raft(args: argparse.Namespace, options: SimOptions) -> int:
    if args.trace is not None:
        one = replay_with_trace(args.trace, args.nodes, options)
        return _traced(one.trace, one.seed, one.nodes, len(one.violations))
    started = time.monotonic()
    summary = sweep(args.seeds, args.start, args.nodes, options)
    wall_s = time.monotonic() - started
    return _reported(
        f"{summary.line()} wall_s={wall_s:.1f} commits_per_s={summary.commits / max(wall_s, 1e-9):.0f}",
        [(f.seed, f.nodes, f.violations[0]) for f in summary.failures],
        lambda seed, n: replay_with_trace(seed, n, options).trace,
        "--raft ",
    )


def _jobs(seeds: int, start: int, nodes: int, trace: int | None, holds: bool = False) -> int:
    if trace is not None:
        one = run_job_seed(trace, nodes, trace=True, holds=holds)
        return _traced(one.trace, one.seed, one.nodes, 0 if one.ok else 1)
    started = time.monotonic()
    summary = job_sweep(seeds, start, nodes, holds=holds)
    wall_s = time.monotonic() - started
    return _reported(
        f"{summary.line()} wall_s={wall_s:.1f} seeds_per_s={summary.seeds / max(wall_s, 1e-9):.1f}",
        [(f.seed, f.nodes, str(f.violation)) for f in summary.failures],
        lambda seed, n: run_job_seed(seed, n, trace=True, holds=holds).trace,
        "--jobs --holds " if holds else "--jobs ",
    )


def _traced(trace: list[str], seed: int, nodes: int, violations: int) -> int:
    """``--trace SEED``: the whole trace, then one line; exits 1 when the seed broke a rule."""
    print("\n".join(trace))
    print(f"SWARM_SEED={seed} nodes={nodes} violations={violations}")
    return 0 if violations == 0 else 1


def _reported(
    line: str, failures: list[tuple[int, int, str]], replay: Callable[[int, int], list[str]], mode: str
) -> int:
    """A sweep's summary line; on failures each failing seed and the first one's trace, exit 1."""
    print(line)
    if not failures:
        return 0
    for seed, nodes, violation in failures:
        print(f"SWARM_SEED={seed} nodes={nodes}: {violation}")
    seed, nodes, _ = failures[0]
    _print_tail(replay(seed, nodes), seed, f"{mode}--trace {seed} --nodes {nodes}")
    return 1


def _print_tail(trace: list[str], seed: int, replay: str) -> None:
    tail = trace[-TRACE_TAIL_LINES:]
    print(
        f"--- trace of SWARM_SEED={seed} (last {len(tail)} of {len(trace)} lines; "
        f"all of it: python -m swarmcompute.sim {replay}) ---"
    )
    print("\n".join(tail))


if __name__ == "__main__":
    sys.exit(main())
