"""Idle cost per daemon: CPU (% of one core) and RSS of idle clusters of 1, 3 and 20 daemons.

    .venv/bin/python benchmarks/idle.py [--nodes 1 3 20] [--seconds 30] [--rounds 2]
        [--http on|off] [--base DIR] [--tree DIR]

Each daemon is a real process bound to 127.0.0.1 in a temporary state directory, with the default
(LAN) gossip timings, started as a user starts it, and stopped by PID at the end. Once the cluster
is formed, every node runs one `true` job (pinned to it), so each daemon has the guardian it keeps
from its first job on; then, after a settling pause, CPU is read from ``/proc/<pid>/stat``
(utime + stime of the daemon and its live children: its guardian) at the start and the end of a
``--seconds`` window, and RSS from ``/proc/<pid>/status`` (daemon + guardian) just before it
(before anything scrapes /metrics: its first scrape imports prometheus_client), with PSS beside
it (RSS counts the interpreter's shared pages once in the daemon and again in its guardian; PSS
shares them out).

``--tree DIR`` runs this tree's daemons from a copy (a snapshot, while the tree is being edited);
``--base DIR`` measures another copy of the package too (a directory holding ``swarmcompute/``,
e.g. ``git archive <commit> swarmcompute | tar -x -C DIR``), run with ``PYTHONPATH=DIR``, in
alternating rounds (base, this tree; this tree, base; ...): both see the same load, and the
ratios are paired. The machine may be shared: every window prints the load average and how busy
the whole machine was, and the summary gives ranges over rounds, not one figure. With HTTP on, a
window also prints the peer messages a daemon received a second, and how many of its probes a
second went unanswered in time and were retried through other nodes (read from each daemon's
/metrics just outside the window). Every window prints how often a daemon's threads woke a
second (context switches, from /proc): its event loop's and its ZeroMQ I/O thread's. On the
2-core VM, quiet, 3 daemons: a follower's loop about 10 times a second (its five heartbeats, each
with its ticks, plus gossip), its I/O thread about 20 (every frame in and out, and ZMTP
heartbeats on each of its four connections every 2 s); the leader's loop about 20. Per wake-up
the loop thread spent about 0.37 ms of CPU (``perf stat``: 40.7 ms in 10 s over 110 switches),
the I/O thread about 0.06 ms.

Targets (issue 15, item 3): CPU <= 0.3 % of a core per daemon at 3 nodes, <= 0.5 % at 20;
RSS <= 35 MiB for a daemon and its guardian together.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from swarmcompute.client import Client
from swarmcompute.testing.daemons import DaemonProcess, free_port, wait_until

CLK_TCK = os.sysconf("SC_CLK_TCK")
START_TOGETHER = 4
"""Daemons started at once (each takes about 1.4 s of CPU to start: 19 at once on a busy 2-core
machine outlast the 20 s a daemon has to answer)."""
SETTLE_S = 5.0
"""After forming and the one job per node: past the join's gossip and early push-pulls."""


def _stat_ticks(pid: int) -> int:
    """utime + stime of ``pid`` in clock ticks (0 when it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return 0
    fields = raw[raw.rfind(b")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _family(pid: int) -> list[int]:
    """``pid`` and its live descendants (the guardian; no job runs while idle)."""
    family, todo = [], [pid]
    while todo:
        p = todo.pop()
        family.append(p)
        todo += _children(p)
    return family


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _pss_mib(pid: int) -> float:
    """The process's proportional set size: its own pages, and its share of those it shares (the
    interpreter's, with the other daemons and its guardian), which RSS counts in full."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _switches(pid: int) -> tuple[int, int]:
    """Context switches so far of ``pid``'s event loop thread (the main one) and of its ZeroMQ I/O
    thread(s): each is a wake-up, which on this VM costs about 0.2 ms of CPU before any Python."""
    loop = io = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0, 0
    for task in tasks:
        try:
            name = (task / "comm").read_text().strip()
            count = sum(
                int(line.split()[1]) for line in (task / "status").read_text().splitlines() if "ctxt_switches" in line
            )
        except OSError:
            continue
        if task.name == str(pid):
            loop += count
        elif name.startswith("ZMQbg/IO"):
            io += count
    return loop, io


def _busy_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


@dataclass
class Window:
    variant: str
    nodes: int
    cpu: list[float]
    """% of one core per daemon (with its guardian), in the order the daemons started."""
    leader_cpu: float
    rss: list[float]
    """MiB per daemon + guardian."""
    pss: list[float]
    guardians: int
    load: float
    machine_busy: float
    """% of the whole machine busy during the window (all processes, all cores)."""
    received: list[float]
    """Peer messages each daemon received a second (from its /metrics; empty with HTTP off)."""
    indirect: list[float]
    """Probes each daemon retried through other nodes a second (``swarm_gossip_indirect_probes``;
    empty where the daemons do not count them)."""
    loop_wakeups: list[float]
    """Wake-ups a second of each daemon's event loop thread."""
    io_wakeups: list[float]
    """Wake-ups a second of each daemon's ZeroMQ I/O thread (a frame in or out, a ZMTP heartbeat)."""


def _rates(before: list[dict[str, float]], after: list[dict[str, float]], name: str, seconds: float) -> list[float]:
    if not all(name in a for a in after):
        return []
    return [(a[name] - b[name]) / seconds for a, b in zip(after, before, strict=True)]


def start_cluster(root: Path, n: int, http: bool, env: dict[str, str]) -> list[DaemonProcess]:
    nodes: list[DaemonProcess] = []
    first_port = free_port()
    http_port: int | str = 0 if http else "off"
    first = DaemonProcess(
        root / "n0", name="n0", port=first_port, log_level="info", http_port=http_port,
        extra_args=("--new-cluster",), extra_env=env,
    )  # fmt: skip
    nodes.append(first)
    try:
        first.start()
        _start_the_rest(root, n, http_port, env, first, nodes)
    except BaseException:  # one that never came up: stop the others, which would outlive the run
        for node in nodes:
            node.stop()
            node.kill()
        raise
    return nodes


def _start_the_rest(
    root: Path, n: int, http_port: int | str, env: dict[str, str], first: DaemonProcess, nodes: list[DaemonProcess]
) -> None:
    first_port = first.port
    token = first.token_from_disk()
    for start in range(1, n, START_TOGETHER):
        group = [
            DaemonProcess(
                root / f"n{i}",
                name=f"n{i}",
                port=free_port(),
                token=token,
                peers=(f"127.0.0.1:{first_port}",),
                log_level="info",
                http_port=http_port,
                extra_env=env,
            )  # fmt: skip
            for i in range(start, min(start + START_TOGETHER, n))
        ]
        nodes += group
        for node in group:
            node.start(wait=False)
        for node in group:
            node.wait_ready()


def formed(nodes: list[DaemonProcess]) -> bool:
    statuses = [n.status() for n in nodes]
    leaders = {s["leader"] for s in statuses}
    voters = min(len(nodes), 5)
    return (
        len(leaders) == 1
        and None not in leaders
        and all(sum(v["state"] == "alive" for v in s["nodes"]) == len(nodes) for s in statuses)
        and all(len(s["quorum"]["voters"]) == voters for s in statuses)
    )


def one_job_each(nodes: list[DaemonProcess]) -> None:
    """A `true` job pinned to every node: each daemon then holds its guardian, as after any job."""
    client: Client = nodes[0].client
    ids = [client.submit(["true"], node=f"n{i}") for i in range(len(nodes))]
    client.wait(ids, timeout=120)


def measure(root: Path, variant: str, n: int, seconds: float, http: bool, env: dict[str, str]) -> Window:
    nodes: list[DaemonProcess] = []
    try:
        nodes = start_cluster(root, n, http, env)
        try:
            wait_until(lambda: formed(nodes), 180, f"{n} nodes to form")
        except AssertionError:
            for node in nodes:
                s = node.status()
                alive = sum(v["state"] == "alive" for v in s["nodes"])
                print(f"  {node.name}: leader {s['leader']}, {alive} alive, voters {len(s['quorum']['voters'])}")
            raise
        one_job_each(nodes)
        time.sleep(SETTLE_S)
        leader = nodes[0].status()["leader"]
        leader_index = next(i for i, node in enumerate(nodes) if node.status()["node_id"] == leader)
        families = [_family(node.pid) for node in nodes]
        rss = [sum(_rss_mib(p) for p in fam) for fam in families]  # before the first scrape, which
        pss = [sum(_pss_mib(p) for p in fam) for fam in families]  # imports prometheus_client (+5 MiB)
        counted = [node.metrics() for node in nodes] if http else []  # read outside the window
        before = [sum(_stat_ticks(p) for p in fam) for fam in families]
        switched = [_switches(node.pid) for node in nodes]
        busy0, total0 = _busy_ticks()
        start = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - start
        after = [sum(_stat_ticks(p) for p in fam) for fam in families]
        wakeups = [
            ((l1 - l0) / elapsed, (i1 - i0) / elapsed)
            for (l0, i0), (l1, i1) in zip(switched, [_switches(node.pid) for node in nodes], strict=True)
        ]
        busy1, total1 = _busy_ticks()
        cpu = [100.0 * (a - b) / CLK_TCK / elapsed for a, b in zip(after, before, strict=True)]
        now = [node.metrics() for node in nodes] if http else []
        return Window(
            variant, n, cpu, cpu[leader_index], rss, pss, sum(len(f) - 1 for f in families),
            os.getloadavg()[0], 100.0 * (busy1 - busy0) / max(total1 - total0, 1),
            _rates(counted, now, "swarm_peer_messages_received_total", elapsed),
            _rates(counted, now, "swarm_gossip_indirect_probes_total", elapsed),
            [w[0] for w in wakeups], [w[1] for w in wakeups],
        )  # fmt: skip
    finally:
        for node in nodes:
            node.stop()
            node.kill()


def _range(values: list[float], fmt: str = ".2f") -> str:
    lo, hi = min(values), max(values)
    return f"{lo:{fmt}}" if f"{lo:{fmt}}" == f"{hi:{fmt}}" else f"{lo:{fmt}}-{hi:{fmt}}"


def _from(directory: Path) -> dict[str, str]:
    """The environment that makes ``python -m swarmcompute.node`` import the package in
    ``directory``: first on the path, and no current directory before it (``-m`` puts it first)."""
    return {"PYTHONPATH": str(directory.resolve()), "PYTHONSAFEPATH": "1"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 3, 20])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--http", choices=("on", "off"), default="on", help="serve HTTP (the default of `swarm join`)")
    parser.add_argument("--base", type=Path, help="a directory holding another swarmcompute/ to compare with")
    parser.add_argument("--tree", type=Path, help="run this tree from a copy in this directory (a snapshot)")
    args = parser.parse_args()
    for where in (args.base, args.tree):
        if where is not None and not (where / "swarmcompute" / "__init__.py").exists():
            parser.error(f"{where} holds no swarmcompute/ package")
    variants: list[tuple[str, dict[str, str]]] = [("this tree", {} if args.tree is None else _from(args.tree))]
    if args.base is not None:
        variants.append(("base", _from(args.base)))
    windows: list[Window] = []
    with tempfile.TemporaryDirectory(prefix="swarm-idle-") as tmp:
        for r in range(args.rounds):
            for n in args.nodes:
                order = variants if r % 2 == 0 else variants[::-1]
                for variant, env in order:
                    w = measure(
                        Path(tmp) / f"r{r}-{n}-{len(windows)}", variant, n, args.seconds, args.http == "on", env
                    )
                    windows.append(w)
                    print(
                        f"round {r + 1}, {n:2d} daemons, {variant:9s}: CPU per daemon mean {statistics.mean(w.cpu):.2f} %"
                        f" (max {max(w.cpu):.2f}, leader {w.leader_cpu:.2f}), all {sum(w.cpu):.1f} %;"
                        f" RSS mean {statistics.mean(w.rss):.1f} MiB (max {max(w.rss):.1f}, PSS"
                        f" {statistics.mean(w.pss):.1f}), {w.guardians} guardians;"
                        f" load {w.load:.1f}, machine {w.machine_busy:.0f} % busy;"
                        f" wake-ups a second per daemon: loop {statistics.mean(w.loop_wakeups):.1f}"
                        f" (max {max(w.loop_wakeups):.1f}), ZeroMQ I/O {statistics.mean(w.io_wakeups):.1f}"
                        + (f"; peer messages received {statistics.mean(w.received):.1f}/s" if w.received else "")
                        + (f", indirect probes {statistics.mean(w.indirect):.2f}/s" if w.indirect else ""),
                        flush=True,
                    )
    print(f"\nsummary over {args.rounds} rounds of {args.seconds:g} s, HTTP {args.http} (ranges over rounds):")
    for n in args.nodes:
        for variant, _ in variants:
            ws = [w for w in windows if w.nodes == n and w.variant == variant]
            print(
                f"  {n:2d} daemons, {variant:9s}: CPU per daemon {_range([statistics.mean(w.cpu) for w in ws])} %"
                f" (leader {_range([w.leader_cpu for w in ws])} %); RSS per daemon+guardian"
                f" {_range([statistics.mean(w.rss) for w in ws], '.1f')} MiB (max {_range([max(w.rss) for w in ws], '.1f')};"
                f" PSS {_range([statistics.mean(w.pss) for w in ws], '.1f')} MiB); wake-ups a second per daemon:"
                f" loop {_range([statistics.mean(w.loop_wakeups) for w in ws], '.1f')},"
                f" ZeroMQ I/O {_range([statistics.mean(w.io_wakeups) for w in ws], '.1f')}"
                + (
                    f"; per daemon a second: {_range([statistics.mean(w.received) for w in ws], '.1f')} peer messages"
                    f" received, {_range([statistics.mean(w.indirect) for w in ws])} indirect probes"
                    if all(w.received and w.indirect for w in ws)
                    else ""
                )
            )
        if len(variants) == 2:
            ours = [statistics.mean(w.cpu) for w in windows if w.nodes == n and w.variant == "this tree"]
            base = [statistics.mean(w.cpu) for w in windows if w.nodes == n and w.variant == "base"]
            ratios = [o / b for o, b in zip(ours, base, strict=True) if b > 0]
            if ratios:
                print(f"  {n:2d} daemons: CPU this tree / base, paired by round: {_range(ratios)}")


if __name__ == "__main__":
    main()
