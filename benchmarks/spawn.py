"""What starting one `true` job costs the daemon's thread: wall time against CPU time.

    .venv/bin/python benchmarks/spawn.py [--spawns 3000] [--rounds 2]

A job starts as ``executor.spawn`` starts it: ``subprocess.Popen`` with a new session, all other
descriptors closed, stdin on /dev/null, stdout and stderr on a pipe and the job's umask, which
CPython runs through ``vfork``. The calling thread waits in ``vfork`` until the child has exec'd,
so a spawn holds the daemon's event loop longer than the CPU it uses. Printed per spawn, in
alternating rounds: that ``Popen`` from the main thread (wall and this process's CPU), the same
from a pool of 2 and 3 threads (whether spawning off the loop's thread would overlap the waits),
and ``os.posix_spawn`` with the same descriptors and session (which cannot close inherited
descriptors, change directory or set a umask, so the executor does not use it: the figure says
what it would save).

On the 2-core VM, quiet, 2 rounds: ``Popen`` 0.39-0.42 ms of wall per spawn, of which 0.09 ms
this process's CPU; from 2 or 3 threads 0.39-0.42 ms again (no overlap: the spawns take turns,
as under one lock); ``posix_spawn`` 0.39-0.42 ms with 0.10 ms CPU. So a spawn holds the loop about
0.3 ms longer than it computes, and at a thousand jobs a second a third of the daemon's loop
waits for children to exec: 10,000 ``--cpus 0`` `true` jobs on one node ran at 920-940 jobs/s
(3 rounds) with the daemon at 0.62-0.67 ms of CPU per job, the jobs at 0.64-0.70, and the whole
machine only 65 % busy (read from ``/proc`` around each batch). Only a spawner outside the
daemon's thread would overlap those waits, and a job must stay the daemon's child (its exit
status, the guardian's pid pinning): CPython offers no ``clone(CLONE_PARENT)``.

The wait is not the GIL's: CPython 3.11's ``fork_exec`` releases it (a thread counting in a loop
went on counting through it). Tried in the daemon, 5,000-job batches on 1 node, 2 rounds each:
the spawn handed to a one-thread pool and awaited ran at 617-693 jobs/s against 911-1,081 in
the loop's thread; the same with up to 8 spawns in flight at 773-848 jobs/s with the machine
81-84 % busy against 61-72 %: every spawn then pays two GIL hand-offs and two thread wake-ups,
more than the wait it overlaps. What a `true` job costs the whole machine, for scale (1 node,
5,000 jobs): 1.32-1.34 ms of CPU, of which the daemon 0.45-0.49 and the `true` process itself
0.84-0.85 (its exec, dynamic linking and exit); run by PATH, `true` also tries each directory
before /usr/bin (8 failed execve here, 0.03-0.05 ms of the spawn's wait).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

_DEVNULL = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
_TRUE = "/usr/bin/true" if os.path.exists("/usr/bin/true") else "/bin/true"


def _popen(_: object = None) -> Callable[[], object]:
    read, write = os.pipe2(os.O_CLOEXEC)
    try:
        proc = subprocess.Popen(
            [_TRUE], stdin=_DEVNULL, stdout=write, stderr=write, start_new_session=True, close_fds=True, umask=0o022
        )
    finally:
        os.close(write)
        os.close(read)
    return proc.wait


def _posix_spawn(_: object = None) -> Callable[[], object]:
    read, write = os.pipe2(os.O_CLOEXEC)
    try:
        actions = [(os.POSIX_SPAWN_DUP2, _DEVNULL, 0), (os.POSIX_SPAWN_DUP2, write, 1), (os.POSIX_SPAWN_DUP2, write, 2)]
        pid = os.posix_spawn(_TRUE, [_TRUE], os.environ, file_actions=actions, setsid=True)
    finally:
        os.close(write)
        os.close(read)
    return lambda: os.waitpid(pid, 0)


def _time(spawns: int, threads: int, spawn: Callable[[object], Callable[[], object]]) -> tuple[float, float]:
    """Wall and CPU milliseconds per spawn (the children reaped after the clock stops)."""
    wall, cpu = time.perf_counter(), time.process_time()
    if threads:
        with ThreadPoolExecutor(threads) as pool:
            reapers = list(pool.map(spawn, range(spawns)))
    else:
        reapers = [spawn(None) for _ in range(spawns)]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    for reap in reapers:
        reap()
    return wall * 1000 / spawns, cpu * 1000 / spawns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spawns", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    ways: list[tuple[str, int, Callable[[object], Callable[[], object]]]] = [
        ("Popen, the loop's thread", 0, _popen),
        ("Popen, 2 threads", 2, _popen),
        ("Popen, 3 threads", 3, _popen),
        ("posix_spawn", 0, _posix_spawn),
    ]
    results: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in ways}
    for r in range(args.rounds):
        for name, threads, spawn in ways if r % 2 == 0 else ways[::-1]:
            results[name].append(_time(args.spawns, threads, spawn))
    print(f"{args.spawns} spawns of `true`, {args.rounds} rounds (min-max over rounds), per spawn:")
    for name, got in results.items():
        walls, cpus = [w for w, _ in got], [c for _, c in got]
        print(
            f"  {name:26s} wall {min(walls):.3f}-{max(walls):.3f} ms, CPU of this process"
            f" {min(cpus):.3f}-{max(cpus):.3f} ms"
        )


if __name__ == "__main__":
    main()
