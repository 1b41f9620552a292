"""Fake mDNS adverts for tests of hostile discovery: many made-up nodes that carry a real
cluster id (public: any host on the LAN sees it) and point at ports where nothing answers.

    python -m swarmcompute.testing.mdns_flood --cluster-id ID --count 2000 --bind 127.0.0.1

Registers ``--count`` services of ``_swarmcompute._tcp.local.`` through real zeroconf (no
probes, as a node's own ad), prints ``{"event": "ready", "count": N, "seconds": S}`` once all
are announced, and holds them until SIGTERM/SIGINT; it then exits without goodbyes (as a
flooder would), so the ads linger in caches until their TTL ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time

from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from swarmcompute.discovery.addresses import interfaces_for
from swarmcompute.discovery.browse import PROTO_VERSION, SERVICE_TYPE


async def _flood(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    interfaces, ip_version = interfaces_for(args.bind)
    azc = AsyncZeroconf(interfaces=interfaces, ip_version=ip_version)
    started = time.monotonic()
    batch = 500
    for first in range(0, args.count, batch):
        infos = [
            AsyncServiceInfo(
                SERVICE_TYPE,
                f"fake{n:05d}x{os.getpid()}.{SERVICE_TYPE}",
                port=args.port_base + n % 1000,
                properties={"node_id": f"fake{n:05d}", "cluster_id": args.cluster_id, "proto": PROTO_VERSION},
                server=f"fake{n:05d}.local.",
                host_ttl=args.ttl,
                other_ttl=args.ttl,
                parsed_addresses=[args.address or args.bind],
            )
            for n in range(first, min(first + batch, args.count))
        ]
        tasks = await asyncio.gather(*(azc.async_register_service(info, cooperating_responders=True) for info in infos))
        await asyncio.gather(*tasks)
    print(json.dumps({"event": "ready", "count": args.count, "seconds": time.monotonic() - started}), flush=True)
    await stop.wait()
    os._exit(0)  # no goodbyes


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m swarmcompute.testing.mdns_flood")
    parser.add_argument("--cluster-id", required=True)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--address", help="the address the ads point at (default: --bind)")
    parser.add_argument("--port-base", type=int, default=40000)
    parser.add_argument("--ttl", type=int, default=120)
    asyncio.run(_flood(parser.parse_args()))


if __name__ == "__main__":
    main()
