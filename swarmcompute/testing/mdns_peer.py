"""A stand-in node for discovery tests: run ``Discovery`` and print what it sees as JSON lines.

    python -m swarmcompute.testing.mdns_peer --node-id a --cluster-id c1 --port 7000
    python -m swarmcompute.testing.mdns_peer --find --timeout 1.5

Each line on stdout is one event with ``t`` = ``time.monotonic()`` (shared by every
process on the machine, network namespaces included), so a test measures discovery
from before it started the process. Events: ``started`` (with the advertised
addresses), ``peer`` (a ``PeerAd``), ``removed`` (a node id), ``clusters`` (``--find``).
Logs go to stderr. A line ``update_address HOST`` on stdin calls
``Discovery.update_address``. It runs until SIGTERM/SIGINT, closing ``Discovery``
cleanly so peers see its goodbye; ``--no-goodbye`` exits without one, like a node that
lost power.

``start_peer`` runs it on a ``netns.Host`` and returns a ``PeerProcess`` to wait on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import structlog

from swarmcompute.discovery import Discovery, PeerAd, find_clusters
from swarmcompute.testing.jsonlines import Event, JsonLines

if TYPE_CHECKING:
    from swarmcompute.testing.netns import Host


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
    commands: asyncio.Queue[str] = asyncio.Queue(maxsize=16)
    threading.Thread(target=_read_commands, args=(loop, commands), daemon=True).start()
    while not stop.is_set():
        waiter = asyncio.ensure_future(commands.get())
        stopper = asyncio.ensure_future(stop.wait())
        done, pending = await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if waiter in done:
            verb, _, arg = waiter.result().partition(" ")
            if verb == "update_address":
                await discovery.update_address(arg.strip())
                _emit("address_updated", node_id=args.node_id, addresses=discovery.addresses)
    if args.no_goodbye:
        os._exit(0)
    await discovery.close()
    _emit("stopped", node_id=args.node_id)


def _read_commands(loop: asyncio.AbstractEventLoop, commands: asyncio.Queue[str]) -> None:
    for line in sys.stdin:
        if line.strip():
            loop.call_soon_threadsafe(commands.put_nowait, line.strip())


async def _run_find(args: argparse.Namespace) -> None:
    _emit("begin")
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


def visible_peers(events: list[Event]) -> dict[str, Event]:
    """The peers a stand-in sees after ``events``: the latest ``peer`` line per node id,
    minus those ``removed`` since."""
    state: dict[str, Event] = {}
    for event in events:
        if event.get("event") == "peer":
            state[str(event["node_id"])] = event
        elif event.get("event") == "removed":
            state.pop(str(event["node_id"]), None)
    return state


@dataclass
class PeerProcess:
    """A running stand-in node on a ``Host``, with its output being read."""

    host: Host
    node_id: str
    proc: subprocess.Popen[str]
    lines: JsonLines

    def wait_visible(self, expect: dict[str, str], timeout_s: float, *, since: int = 0) -> dict[str, Event]:
        """Wait until exactly the peers ``expect`` (node id -> host) are visible; return them."""

        def check(events: list[Event]) -> list[dict[str, Event]] | None:
            seen = visible_peers(self.lines.events[:since] + events)
            ok = {n: e["host"] for n, e in seen.items()} == expect
            return [seen] if ok else None  # a list, so that seeing nobody is truthy too

        return self.lines.wait(check, timeout_s, f"{self.node_id} to see exactly {expect}", since=since)[0]

    def command(self, line: str) -> None:
        """Send one stdin command (``update_address HOST``)."""
        if self.proc.stdin is None:
            raise RuntimeError("started without a stdin pipe")
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> int:
        """SIGTERM (a clean close with goodbye), SIGKILL after a grace period."""
        return self.host.lan.stop_process(self.proc)


def start_peer(
    host: Host,
    node_id: str,
    cluster_id: str = "c1",
    *,
    port: int = 7000,
    bind: str | None = None,
    ttl_s: int = 4,
    refresh_s: float = 1.0,
    no_goodbye: bool = False,
    **popen: Any,
) -> PeerProcess:
    """Run a stand-in node on ``host`` (short TTL and refresh by default, for quick tests)."""
    argv = [sys.executable, "-m", "swarmcompute.testing.mdns_peer", "--node-id", node_id, "--cluster-id", cluster_id]
    argv += ["--port", str(port), "--ttl", str(ttl_s), "--refresh", str(refresh_s)]
    if bind is not None:
        argv += ["--bind", bind]
    if no_goodbye:
        argv.append("--no-goodbye")
    popen.setdefault("stdin", subprocess.PIPE)
    proc = host.popen(argv, **popen)
    if proc.stdout is None:
        raise RuntimeError("start_peer needs stdout as a pipe")
    return PeerProcess(host, node_id, proc, JsonLines(proc.stdout, f"{host.name}/{node_id}"))


if __name__ == "__main__":
    main()
