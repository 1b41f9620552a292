"""Read commands from a shell: `swarm status`, `swarm jobs`, `swarm show`, `swarm wait` against
`swarm run -- true`, each a fresh process, in interleaved rounds (issue 15, item 4).

    .venv/bin/python benchmarks/read_commands.py [--rounds 5] [--runs 10] [--jobs 50]

Starts one daemon in a temporary state directory (stopped by PID at the end), gives it ``--jobs``
finished jobs so `swarm jobs` prints a table, then runs ``--rounds`` rounds; in each, every
command runs ``--runs`` times, the commands taking turns (one run of each, in an order that
rotates every pass), so a busy spell of the machine falls on all of them alike. It prints each
command's p50 and p90 over all runs with the range of the per-round p50s, and the paired ratio
of `swarm status` to `swarm run -- true` round by round. "typer status" is the same `swarm
status` through the typer app (what every read command cost before the lean path), for scale.

Target: `swarm status` p50 <= `swarm run -- true` p50.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from swarmcompute.testing.daemons import DaemonProcess, compile_package, swarm_executable

TYPER_APP = (
    "import sys; sys.argv[0] = 'swarm'; from swarmcompute.cli.entry import _one_line_errors;"
    " from swarmcompute.cli.app import app; sys.exit(_one_line_errors(app))"
)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=10, help="runs of each command per round")
    parser.add_argument("--jobs", type=int, default=50, help="finished jobs the daemon holds")
    parser.add_argument("--no-typer", action="store_true", help="leave out the typer app's `swarm status`")
    args = parser.parse_args()

    compile_package()
    with tempfile.TemporaryDirectory(prefix="swarm-bench-") as tmp:
        daemon = DaemonProcess(Path(tmp) / "node", name="bench", log_level="info")
        daemon.start()
        try:
            ids = daemon.client.submit_many([{"argv": ["true"]} for _ in range(args.jobs)])
            daemon.client.wait(ids, timeout=300)
            exe = swarm_executable()
            env = {**os.environ, "SWARM_STATE_DIR": str(daemon.state_dir)}
            env.pop("SWARM_URL", None)
            commands = {
                "run -- true": [exe, "run", "--", "true"],
                "status": [exe, "status"],
                "jobs": [exe, "jobs"],
                "show JOB": [exe, "show", ids[0]],
                "wait JOB": [exe, "wait", ids[0]],
                "status --json": [exe, "status", "--json"],
            }
            if not args.no_typer:
                commands["status (typer)"] = [sys.executable, "-c", TYPER_APP, "status"]
            for argv in commands.values():  # warm the page cache
                _timed(argv, env)
            names = list(commands)
            rounds: list[dict[str, list[float]]] = []
            for r in range(args.rounds):
                times: dict[str, list[float]] = {name: [] for name in names}
                for i in range(args.runs):
                    shift = (r * args.runs + i) % len(names)
                    for name in names[shift:] + names[:shift]:
                        times[name].append(_timed(commands[name], env))
                rounds.append(times)
        finally:
            daemon.stop()
            daemon.kill()

    print(f"{args.rounds} rounds x {args.runs} runs of each command, fresh process each, 1 node, {args.jobs} jobs held")
    print(f"{'command':<22} {'p50':>9} {'p90':>9}   per-round p50")
    for name in names:
        every = [t for times in rounds for t in times[name]]
        per_round = [statistics.median(times[name]) * 1000 for times in rounds]
        print(
            f"swarm {name:<16} {statistics.median(every) * 1000:6.1f} ms {_quantile(every, 0.9) * 1000:6.1f} ms"
            f"   {min(per_round):.1f}-{max(per_round):.1f} ms"
        )
    ratios = [statistics.median(t["status"]) / statistics.median(t["run -- true"]) for t in rounds]
    print(
        f"status / run -- true, per-round p50 ratio: {min(ratios):.2f}-{max(ratios):.2f}"
        f" (median {statistics.median(ratios):.2f}; target <= 1)"
    )


if __name__ == "__main__":
    main()
