"""Labels, constraints and drain on two real daemons on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from swarmcompute import Client
from swarmcompute.node.labels import write_labels
from swarmcompute.testing.clusters import FAST_GOSSIP, formed
from swarmcompute.testing.daemons import DaemonProcess, free_port, swarm_executable, wait_until


def ran_on(client: Client, job: dict[str, object]) -> str:
    """The name of the node a job ran on."""
    return next(n["name"] for n in client.nodes() if n["id"] == job["node"])


def message_of(client: Client, job_id: str, part: str) -> str | None:
    message = client.job(job_id)["message"]
    return message if part in message else None


def test_constraints_labels_and_drain_place_work_only_where_they_allow(daemon_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    n0: DaemonProcess = daemon_factory("n0", port=port, extra_args=FAST_GOSSIP).start()
    (tmp_path / "n1").mkdir(mode=0o700)
    write_labels(tmp_path / "n1" / "labels.json", (("gpu", "a100"),), time.time())  # as `swarm join --label gpu=a100`
    n1: DaemonProcess = daemon_factory(
        "n1", port=free_port(), token=n0.token_from_disk(), peers=(f"127.0.0.1:{port}",), extra_args=FAST_GOSSIP
    ).start()
    wait_until(lambda: formed([n0, n1]), 30, "a formed cluster")
    client = Client(n0.state_dir)

    nodes = json.loads(n0.swarm("nodes", "--json").stdout)
    assert {n["name"]: n["labels"] for n in nodes} == {"n0": {}, "n1": {"gpu": "a100"}}
    table = n0.swarm("nodes").stdout
    assert "gpu=a100" in table and "LABELS" in table

    on_a100 = client.submit(["true"], constraints="gpu=a100", cpus=0)
    elsewhere = client.submit(["true"], constraints=["gpu!=a100"], cpus=0)
    done = client.wait([on_a100, elsewhere], timeout=30)
    assert [ran_on(client, j) for j in done] == ["n1", "n0"]

    # No node has gpu=h100: the job waits and says so; labelling n0 through n1 lets it run there.
    h100 = client.submit(["true"], constraints=["gpu=h100"], cpus=0)
    why = wait_until(lambda: message_of(client, h100, "constraints"), 20, "the reason it waits")
    assert why.startswith("no live node matches its constraints (gpu=h100 unmet")
    labelled = n1.swarm("label", "n0", "gpu=h100", "rack=2")
    assert labelled.returncode == 0, labelled.stderr
    assert ran_on(client, client.wait(h100, timeout=30)) == "n0"
    assert json.loads((n0.state_dir / "labels.json").read_text())["labels"] == {"gpu": "h100", "rack": "2"}
    assert n0.swarm("label", "n0", "rack=").returncode == 0  # K= removes K
    wait_until(lambda: "rack" not in json.loads((n0.state_dir / "labels.json").read_text())["labels"], 10, "removal")
    seen_by_n1 = lambda: next(n["labels"] for n in Client(n1.state_dir).nodes() if n["name"] == "n0")  # noqa: E731
    wait_until(lambda: seen_by_n1() == {"gpu": "h100"}, 10, "n1 to hear of the removal")
    relabelled = n1.swarm("label", "n0", "zone=b", "--json")  # it read the labels before the change
    assert json.loads(relabelled.stdout)["labels"] == {"gpu": "h100", "zone": "b"}, relabelled.stdout
    unknown = n0.swarm("label", "nope", "a=b")
    assert unknown.returncode == 2 and "no node 'nope' in this cluster" in unknown.stderr

    # Drain n1 while a job runs there: it finishes, a new a100 job waits, `--wait` returns once n1 is empty.
    # A job pinned to n1 and queued there behind it goes back to wait, pending: `--wait` waited
    # for it (counted as running) until an undrain let it start.
    n1_cpus = next(n["cpus"] for n in client.nodes() if n["name"] == "n1")
    running = client.submit(["sleep", "2"], constraints=["gpu=a100"], cpus=n1_cpus)
    wait_until(lambda: client.job(running)["state"] == "running", 20, "the job on n1 to run")
    pinned = client.submit(["true"], node="n1", cpus=1)
    wait_until(lambda: client.job(pinned)["state"] == "assigned", 20, "the pinned job queued on n1")
    waiter = subprocess.Popen(
        [swarm_executable(), "drain", "n1", "--wait"],
        env={**os.environ, "SWARM_STATE_DIR": str(n0.state_dir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: any(n["drained"] for n in client.nodes() if n["name"] == "n1"), 20, "n1 drained")
        later = client.submit(["true"], constraints=["gpu=a100"], cpus=0)
        why = wait_until(lambda: message_of(client, later, "drained"), 20, "the reason it waits")
        assert why == "every node that could run it is drained (n1): `swarm undrain NODE`"
        back = wait_until(lambda: message_of(client, pinned, "drained"), 20, "the pinned job handed back")
        assert back == "every node that could run it is drained (n1): `swarm undrain NODE`"
        out, err = waiter.communicate(timeout=60)
    finally:
        if waiter.poll() is None:
            waiter.kill()
    assert waiter.returncode == 0, err
    assert out.strip() == "n1: drained, nothing runs there"
    assert client.job(running)["state"] == "succeeded" and client.job(later)["state"] == "pending"
    assert client.job(pinned)["state"] == "pending"
    assert n0.swarm("undrain", "n1").stdout.strip() == "n1: back in service"
    assert ran_on(client, client.wait(later, timeout=30)) == "n1"
    assert ran_on(client, client.wait(pinned, timeout=30)) == "n1"
