"""Gangs (``swarm run --ranks N --ranks-per-node K``) on real daemons: ranks on two namespace
hosts meet at rank 0's address and port and sum their ranks (with sockets; ``SWARM_SLOW=1`` adds
examples/allreduce.py, a torch.distributed all_reduce), and a gang that loses a rank's node runs
again whole.

The second test's ranks are marker jobs: each writes ``start``, a heartbeat every 0.1 s and
``done`` (or ``term`` when SIGTERMed), with the time, into a file named by rank and attempt (one
machine, so one clock); one SIGKILLed counts as running until a heartbeat after its last line.
Afterwards the files say that attempt 1 of every rank stopped before attempt 2 of any rank
started (no partial double run), and that attempt 2 of every rank finished.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from swarmcompute.testing.clusters import formed_cluster, node_by_id
from swarmcompute.testing.daemons import DaemonProcess, wait_until
from swarmcompute.testing.markers import marker_lines
from swarmcompute.testing.netns import Host, Lan

ROOT = Path(__file__).resolve().parents[2]
HEARTBEAT_S = 0.1
MARKER_RANK = r"""
f="$MARKS/$SWARM_RANK.$SWARM_ATTEMPT"
trap 'echo "term $(date +%s.%N)" >> "$f"; exit 143' TERM
echo "start $(date +%s.%N) $SWARM_LOCAL_RANK $SWARM_WORLD_SIZE $SWARM_MASTER_PORT" >> "$f"
[ "$SWARM_ATTEMPT" = 1 ] && n=300 || n=5
i=0
while [ "$i" -lt "$n" ]; do echo "hb $(date +%s.%N)" >> "$f"; sleep 0.1; i=$((i + 1)); done
echo "done $(date +%s.%N)" >> "$f"
"""


RENDEZVOUS = r"""
import os, socket, time
env = os.environ
rank, world = int(env["SWARM_RANK"]), int(env["SWARM_WORLD_SIZE"])
addr, port = env["SWARM_MASTER_ADDR"], int(env["SWARM_MASTER_PORT"])
torchrun = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
assert [env[n] for n in torchrun] == [env["SWARM_" + n] for n in torchrun]  # env:// as under torchrun
hosts = " ".join(open(env["SWARM_HOSTFILE"]).read().split())
if rank == 0:
    server, total, peers = socket.create_server(("", port)), 0, []
    for _ in range(world - 1):
        conn, _ = server.accept()
        total += int(conn.makefile().readline())
        peers.append(conn)
    for conn in peers:
        conn.sendall(f"{total}\n".encode())
else:
    deadline = time.monotonic() + 60  # rank 0's process may start seconds later on a loaded host
    while True:
        try:
            conn = socket.create_connection((addr, port), timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    conn.sendall(f"{rank}\n".encode())
    total = int(conn.makefile().readline())
print(f"rank {rank} local {env['SWARM_LOCAL_RANK']} of {world} at {addr}:{port} sum {total} hosts {hosts}")
"""


@pytest.fixture(autouse=True)
def _no_hostfile_left() -> Iterator[None]:
    """A daemon stopped cleanly removes its ranks' hostfiles; one killed with -9 cannot: the
    test removes what it left in the temporary directory."""
    before = set(Path(tempfile.gettempdir()).glob("swarm-*.hosts"))
    yield
    for path in set(Path(tempfile.gettempdir()).glob("swarm-*.hosts")) - before:
        path.unlink(missing_ok=True)


def _lan_cluster(lan: Lan, daemon_factory: Any, n: int) -> tuple[list[Host], list[DaemonProcess]]:
    hosts = [lan.add_host(f"h{i}") for i in range(n)]

    def node(i: int, token: str | None) -> DaemonProcess:
        return daemon_factory(
            f"h{i}",
            bind=hosts[i].ip,
            port=7340,
            token=token,
            peers=(f"{hosts[0].ip}:7340",) if token else (),
            extra_args=() if token else ("--new-cluster",),
            wrap=("ip", "netns", "exec", hosts[i].netns),
            log_level="info",
        ).start()

    first = node(0, None)
    nodes = [first] + [node(i, first.token_from_disk()) for i in range(1, n)]

    def formed() -> bool:
        statuses = [d.status() for d in nodes]
        leader = statuses[0]["leader"]
        return leader is not None and all(
            s["leader"] == leader and len(s["nodes"]) == n and all(v["state"] == "alive" for v in s["nodes"])
            for s in statuses
        )

    wait_until(formed, 60, f"{n} hosts to form a cluster")
    return hosts, nodes


def test_the_ranks_of_a_gang_meet_at_rank_0s_address_across_two_hosts(lan: Lan, daemon_factory: Any) -> None:
    hosts, nodes = _lan_cluster(lan, daemon_factory, 2)
    done = nodes[1].swarm(
        "run", "--ranks", "4", "--ranks-per-node", "2", "--id", "rv1", "--cpus", "0.5",
        "--", sys.executable, "-c", RENDEZVOUS, timeout_s=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    gang = nodes[0].client.job("rv1")["gang"]
    ip = {d.status()["node_id"]: h.ip for d, h in zip(nodes, hosts, strict=True)}
    first, second = ip[gang[0]["node"]], ip[gang[2]["node"]]
    port = nodes[0].client.job("rv1")["master_port"]
    lines = sorted(line for line in done.stdout.splitlines() if line.startswith("["))
    assert lines == [
        f"[{r}] rank {r} local {r % 2} of 4 at {first}:{port} sum 6 hosts {first} slots=2 {second} slots=2"
        for r in range(4)
    ], done.stdout
    assert first != second
    shown = nodes[0].swarm("show", "rv1").stdout  # rank 0, and a line per rank
    assert "gang       rv1: rank 0 of 4, 2 per node" in shown and shown.count(" succeeded ") == 4, shown
    logs = nodes[0].swarm("logs", "rv1", "--rank", "3")  # one rank's output, from any node
    assert logs.returncode == 0 and logs.stdout == lines[3][len("[3] ") :] + "\n"
    assert "ranks 0 to 3, not 4" in nodes[0].swarm("logs", "rv1", "--rank", "4").stderr


@pytest.mark.slow  # four torch imports and a gloo rendezvous: 30 s and more on two shared cores
def test_a_torch_allreduce_runs_across_two_hosts_as_one_gang(lan: Lan, daemon_factory: Any) -> None:
    pytest.importorskip("torch", reason="torch is in the test extra (pip install -e '.[test]')")
    _, nodes = _lan_cluster(lan, daemon_factory, 2)
    done = nodes[1].swarm(
        "run", "--ranks", "4", "--ranks-per-node", "2", "--id", "ar1", "--cpus", "0.5",
        "-e", "GLOO_SOCKET_IFNAME=eth0",  # the namespaces' host name resolves to no LAN address
        "--", sys.executable, "examples/allreduce.py", "--timeout", "60",
        cwd=ROOT, timeout_s=150,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = sorted(line for line in done.stdout.splitlines() if line.startswith("["))
    assert len(lines) == 4, done.stdout
    for rank, line in enumerate(lines):
        assert line.startswith(f"[{rank}] rank {rank} of 4 (local {rank % 2}) on ") and line.endswith(": sum 6"), line
    shown = json.loads(nodes[0].swarm("show", "--json", "ar1").stdout)
    assert shown["rank"] == 0 and shown["ranks"] == 4 and shown["ranks_per_node"] == 2
    gang = shown["gang"]
    assert [r["state"] for r in gang] == ["succeeded"] * 4
    assert gang[0]["node"] == gang[1]["node"] != gang[2]["node"] == gang[3]["node"]
    assert [r["local_rank"] for r in gang] == [0, 1, 0, 1]
    assert {r["node_name"] for r in gang} == {"h0", "h1"}
    logs = nodes[0].swarm("logs", "ar1.3")  # each rank's own output, from any node
    assert logs.returncode == 0 and logs.stdout.strip() == lines[3][len("[3] ") :]


def _marks(marks: Path) -> dict[tuple[int, int], list[tuple[str, float]]]:
    out: dict[tuple[int, int], list[tuple[str, float]]] = {}
    for path in marks.iterdir():
        rank, attempt = (int(x) for x in path.name.split("."))
        out[(rank, attempt)] = marker_lines(path)
    return out


def test_losing_a_ranks_node_reruns_the_whole_gang_as_a_new_attempt(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    with formed_cluster(tmp_path, 3) as nodes:
        client = nodes[0].client
        gang = client.submit(
            ["/bin/sh", "-c", MARKER_RANK], ranks=2, ranks_per_node=1, env={"MARKS": str(marks)}, cpus=0.5
        )
        wait_until(lambda: len(list(marks.iterdir())) == 2, 15, "both ranks to start")
        placed = [r["node"] for r in client.job(gang)["gang"]]
        assert len(set(placed)) == 2  # one rank per node
        leader = client.status()["leader"]
        mine = nodes[0].status()["node_id"]
        # kill -9 the daemon of a rank's node (not the one this client asks; the leader only if
        # it must): its guardian kills that rank when its lease ends.
        victim = min((n for n in placed if n != mine), key=lambda n: n == leader)
        node_by_id(nodes, victim).kill()
        ranks = client.wait(gang, timeout=30)
        record = client.job(gang)
    assert record["state"] == "succeeded" and record["attempt"] == 2, record
    assert [r["state"] for r in record["gang"]] == ["succeeded", "succeeded"]
    assert ranks["state"] == "succeeded"
    got = _marks(marks)
    assert sorted(got) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    first_end = max(lines[-1][1] + (HEARTBEAT_S if lines[-1][0] == "hb" else 0.0)
                    for (_, a), lines in got.items() if a == 1)  # fmt: skip
    second_start = min(lines[0][1] for (_, a), lines in got.items() if a == 2)
    assert first_end < second_start, "attempt 2 of a rank started while attempt 1 of another still ran"
    assert all(got[(r, 1)][-1][0] != "done" for r in (0, 1)) and all(got[(r, 2)][-1][0] == "done" for r in (0, 1))
    assert os.environ.get("SWARM_SLOW") or second_start - first_end < 10
