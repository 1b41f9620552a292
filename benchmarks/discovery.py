"""mDNS discovery time on a 3-host LAN of network namespaces (needs root and `ip`).

    .venv/bin/python benchmarks/discovery.py [--runs 5] [--hosts 3]

Each run builds a fresh LAN, starts one stand-in node per host at once (the real
``Discovery`` with its default TTL and refresh, no address given) and measures from
just before the first process starts to the moment the last host sees all the others.
That includes Python's start-up, as ``swarm join`` would. Also measured: how long
``find_clusters`` (what ``swarm join`` asks first) takes to answer on that LAN.
Target (issue "The cluster"): discovery <= 2 s. Everything started is stopped by PID
and every namespace deleted, even on failure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from swarmcompute.testing.mdns_peer import start_peer
from swarmcompute.testing.netns import Lan, cleanup_stale, lan_unavailable_reason

TARGET_S = 2.0


def one_run(n_hosts: int) -> tuple[float, float]:
    """Seconds to visible-on-all, and seconds ``find_clusters`` took, on a fresh LAN."""
    with Lan(show_logs=False) as lan:
        hosts = [lan.add_host(f"h{i}") for i in range(n_hosts)]
        t0 = time.monotonic()
        peers = [start_peer(h, f"node{i}", "bench", port=7000, ttl_s=30, refresh_s=5.0) for i, h in enumerate(hosts)]
        done_at = 0.0
        for me in peers:
            expect = {p.node_id: p.host.ip for p in peers if p is not me}
            seen = me.wait_visible(expect, timeout_s=30)
            done_at = max(done_at, *(e["t"] for e in seen.values()))
        prober = lan.add_host("probe")
        argv = [sys.executable, "-m", "swarmcompute.testing.mdns_peer", "--find", "--timeout", "1.5"]
        events = [json.loads(line) for line in prober.run(argv).stdout.splitlines()]
        begin = next(e["t"] for e in events if e["event"] == "begin")
        found = next(e for e in events if e["event"] == "clusters")
        if len(found["clusters"].get("bench", [])) != n_hosts:
            raise SystemExit(f"find_clusters saw {found['clusters']}, expected {n_hosts} nodes")
        return done_at - t0, found["t"] - begin


def main() -> None:
    """Run the benchmark and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--hosts", type=int, default=3)
    args = parser.parse_args()
    if reason := lan_unavailable_reason():
        raise SystemExit(f"cannot run: {reason}")
    cleanup_stale()
    discovery, finding = [], []
    for i in range(args.runs):
        d, f = one_run(args.hosts)
        discovery.append(d)
        finding.append(f)
        print(f"run {i + 1}: visible on all {args.hosts} hosts in {d * 1000:.0f} ms; find_clusters {f * 1000:.0f} ms")
    median = statistics.median(discovery)
    verdict = "ok" if median <= TARGET_S else "OVER TARGET"
    print(
        f"discovery, start to visible on every host ({args.hosts} hosts, {args.runs} runs): "
        f"median {median * 1000:.0f} ms, max {max(discovery) * 1000:.0f} ms (target <= {TARGET_S:g} s: {verdict})"
    )
    print(f"find_clusters on a running cluster: median {statistics.median(finding) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
