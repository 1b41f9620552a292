"""The peer port: a node without the cluster key is never listed and nothing it sends is acted on;
garbage, truncated msgpack and oversized frames leave every daemon running (invariant 6)."""

from __future__ import annotations

import socket
import struct

import msgpack
import zmq

from swarmcompute.testing.daemons import DaemonProcess, free_port, wait_until
from swarmcompute.transport.keys import new_cluster_key


def two_node_cluster(daemon_factory) -> tuple[DaemonProcess, DaemonProcess, int]:  # type: ignore[no-untyped-def]
    port = free_port()
    a = daemon_factory("a", port=port, extra_args=("--gossip", "local")).start()
    b = daemon_factory(
        "b", port=free_port(), token=a.token_from_disk(), peers=(f"127.0.0.1:{port}",), extra_args=("--gossip", "local")
    ).start()
    wait_until(
        lambda: len(a.status()["quorum"]["voters"]) == 2 and a.status()["quorum"]["healthy"], 30, "a 2-voter cluster"
    )
    return a, b, port


def test_a_node_with_the_wrong_token_is_never_listed_and_stops_saying_its_token_was_refused(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    a, b, port = two_node_cluster(daemon_factory)
    stranger = daemon_factory(
        "stranger",
        port=free_port(),
        token=new_cluster_key().token,
        peers=(f"127.0.0.1:{port}",),
        extra_args=("--gossip", "local"),
    ).start()
    # The stranger's handshakes are refused; it says so and stops (exit 2) rather than knock for
    # ever, while a good job proves the cluster itself keeps working.
    job = b.client.submit(["sleep", "2"])
    assert a.client.wait(job, timeout=30)["state"] == "succeeded"
    wait_until(lambda: not stranger.alive(), 30, "the stranger to stop")
    assert stranger.proc is not None and stranger.proc.returncode == 2
    assert f"token refused by 127.0.0.1:{port}" in stranger.log_path.read_text()
    for node in (a, b):
        names = {v["name"] for v in node.status()["nodes"]}
        assert names == {"a", "b"}
    assert "peer_auth_refused" in a.log_path.read_text()


def test_garbage_on_the_peer_port_leaves_the_daemons_running(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    a, b, port = two_node_cluster(daemon_factory)
    payloads = [
        b"\x00" * 64,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\xff\x00\x00\x00\x00\x00\x00\x00\x7f\x03" + b"\x00" * 54,  # a ZMTP greeting, then nothing sane
        struct.pack(">BQ", 0x02, 100 * 1024 * 1024) + b"x" * 4096,  # announces a 100 MB frame
    ]
    for payload in payloads:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            try:
                sock.sendall(payload)
                sock.settimeout(1)
                sock.recv(1024)
            except OSError:
                pass
    ctx = zmq.Context()
    try:
        plain = ctx.socket(zmq.DEALER)  # a plaintext ZMTP peer: no CURVE, no key
        plain.setsockopt(zmq.LINGER, 0)
        plain.connect(f"tcp://127.0.0.1:{port}")
        for frames in ([b"x", msgpack.packb([1, "cluster.join", ["x", "y"]])[:5]], [b"\xc1" * 10], [b"n", b"\x93\x01"]):
            plain.send_multipart(frames)
        plain.close()
    finally:
        ctx.term()
    assert a.alive() and b.alive()
    job = b.client.submit(["echo", "still fine"])
    assert a.client.wait(job, timeout=30)["state"] == "succeeded"
    assert len(a.status()["nodes"]) == 2
