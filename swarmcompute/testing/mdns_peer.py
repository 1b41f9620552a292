"""A stand-in node for discovery tests: run ``Discovery`` and print what it sees as JSON lines.

    python -m swarmcompute.testing.mdns_peer --node-id a --cluster-id c1 --port 7000
    python -m swarmcompute.testing.mdns_peer --find --timeout 1.5

Each line on stdout is one event with ``t`` = ``time.monotonic()`` (shared by every
process on the machine, network namespaces included), so a test measures discovery
from before it started the process. Events: ``started`` (with the advertised
addresses), ``peer`` (a ``PeerAd``), ``removed`` (a node id), ``clusters`` (``--find``).
Logs go to stderr. It runs until SIGTERM/SIGINT,
closing ``Discovery`` cleanly so peers see its goodbye; ``--no-goodbye`` exits without
one, like a node that lost power.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from dataclasses import asdict

import structlog

from swarmcompute.discovery import Discovery, PeerAd, find_clusters


def _emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, "t": time.monotonic(), **fields}), flush=True)


async def _run_node(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    discovery = Discovery(
        args.node_id,
        args.cluster_id,
        args.port,
        bind=args.bind,
        on_peer=lambda ad: _emit("peer", **asdict(ad)),
        on_peer_removed=lambda node_id: _emit("removed", node_id=node_id),
        ttl_s=args.ttl,
        refresh_interval_s=args.refresh,
    )
    await discovery.start()
    _emit("started", node_id=args.node_id, addresses=discovery.addresses)
    await stop.wait()
    if args.no_goodbye:
        os._exit(0)
    await discovery.close()
    _emit("stopped", node_id=args.node_id)


async def _run_find(args: argparse.Namespace) -> None:
    clusters = await find_clusters(args.timeout, bind=args.bind)
    _emit("clusters", clusters={c: [asdict(ad) for ad in ads] for c, ads in clusters.items()})


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and run one stand-in node (or one ``find_clusters``)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--node-id", default="")
    parser.add_argument("--cluster-id", default="")
    parser.add_argument("--port", type=int, default=7946)
    parser.add_argument("--bind", default=None)
    parser.add_argument("--ttl", type=int, default=30)
    parser.add_argument("--refresh", type=float, default=5.0)
    parser.add_argument("--find", action="store_true")
    parser.add_argument("--timeout", type=float, default=1.5)
    parser.add_argument("--no-goodbye", action="store_true")
    args = parser.parse_args(argv)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    asyncio.run(_run_find(args) if args.find else _run_node(args))


def peer_from_event(event: dict[str, object]) -> PeerAd:
    """The ``PeerAd`` in a ``peer`` line, for assertions."""
    return PeerAd(
        node_id=str(event["node_id"]),
        cluster_id=str(event["cluster_id"]),
        host=str(event["host"]),
        port=int(str(event["port"])),
    )


if __name__ == "__main__":
    main()
