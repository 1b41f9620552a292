"""2,000 fake mDNS ads carrying a cluster's (public) id, sent with real zeroconf on a host's
loopback: the member keeps serving, a new node still joins by mDNS, and neither writes one
fake address to peers.json (so a restart after the flood starts from real members only)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from swarmcompute.testing.daemons import DaemonProcess, wait_until
from swarmcompute.testing.jsonlines import JsonLines
from swarmcompute.testing.netns import Lan

FAST = ("--gossip", "local")
FAKES = 2000


def _formed(nodes: list[DaemonProcess]) -> bool:
    statuses = [d.status() for d in nodes]
    return all(
        s["leader"] is not None
        and len(s["nodes"]) == len(nodes)
        and all(v["state"] == "alive" for v in s["nodes"])
        and s["quorum"]["healthy"]
        for s in statuses
    )


def _peers_file(node: DaemonProcess) -> dict[str, object]:
    path = node.state_dir / "peers.json"
    return json.loads(path.read_text()) if path.exists() else {}


def test_2000_fake_ads_leave_the_member_serving_and_a_new_node_joining(lan: Lan, tmp_path: Path) -> None:
    host = lan.add_host("h")
    wrap = ("ip", "netns", "exec", host.netns)

    def node(name: str, port: int, token: str | None, *extra: str) -> DaemonProcess:
        return DaemonProcess(
            tmp_path / name, name=name, port=port, mdns=True, token=token, extra_args=(*FAST, *extra), wrap=wrap
        )

    first = node("a", 7340, None, "--new-cluster").start()
    second: DaemonProcess | None = None
    try:
        flood = host.popen(
            [
                sys.executable,
                "-m",
                "swarmcompute.testing.mdns_flood",
                "--cluster-id",
                first.status()["cluster_id"],
                "--count",
                str(FAKES),
                "--bind",
                "127.0.0.1",
            ]
        )
        assert flood.stdout is not None
        lines = JsonLines(flood.stdout, "flood")
        ready = lines.wait_event(lambda e: e["event"] == "ready", 60, "the fake ads to be announced")
        print(f"{FAKES} fake ads announced in {ready['seconds']:.1f} s")

        job = first.client.submit(["echo", "still serving"])
        assert first.client.wait(job, timeout=30)["state"] == "succeeded"

        t0 = time.monotonic()
        second = node("b", 7341, first.token_from_disk()).start()
        wait_until(lambda: _formed([first, second]), 60, "the new node to join by mDNS through the flood")
        print(f"joined through {FAKES} fake ads in {time.monotonic() - t0:.1f} s")
        assert first.alive()

        for member in (first, second):
            wait_until(lambda m=member: len(_peers_file(m)) == 1, 10, "peers.json to hold the other member")
            saved = _peers_file(member)
            assert not any(str(n).startswith("fake") for n in saved)

    finally:
        if second is not None:
            second.stop()
            second.kill()
        first.stop()
        first.kill()
