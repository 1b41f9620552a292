"""Whether the peers a joining node dials accept its cluster key: a wrong token is said, not waited on.

Every node of a cluster holds the same CurveZMQ keypair, derived from the cluster key the token
carries. A node started with a wrong (or rotated, or another cluster's) token encrypts its
handshake to a server key its peer does not hold: the peer cannot read it and closes the
connection, and libzmq retries forever, quietly. Only the client side's socket monitor sees it:
``EVENT_HANDSHAKE_FAILED_*`` after each connect, where a peer of the same cluster gives
``EVENT_HANDSHAKE_SUCCEEDED``.

``probe_handshake`` asks that question with a connection of its own (a DEALER with the node's keys
and a monitor, on a private context, closed at once): the transport's connections are left alone.
A refusal is ``REFUSALS_FOR_GOOD`` failed handshakes in a row (libzmq reconnects every 0.2 s, so a
refused probe takes under a second); an address that does not answer at all is neither.
"""

from __future__ import annotations

import asyncio

import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from swarmcompute.transport.keys import ClusterKey

REFUSALS_FOR_GOOD = 3
PROBE_TIMEOUT_S = 3.0
_FAILED = zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH


async def probe_handshake(key: ClusterKey, address: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool | None:
    """True when the node at ``address`` ("host:port") accepts a handshake with ``key``, False when
    it refuses it ``REFUSALS_FOR_GOOD`` times, None when it does not answer within ``timeout_s``."""
    context = zmq.asyncio.Context()
    sock = context.socket(zmq.DEALER)
    monitor: zmq.asyncio.Socket | None = None
    try:
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IPV6, 1)
        sock.setsockopt(zmq.RECONNECT_IVL, 200)
        sock.setsockopt(zmq.CURVE_SERVERKEY, key.curve_public_key)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, key.curve_public_key)
        sock.setsockopt(zmq.CURVE_SECRETKEY, key.curve_secret_key)
        monitor = sock.get_monitor_socket(_FAILED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        sock.connect(address if "://" in address else f"tcp://{address}")
        failures = 0
        deadline = asyncio.get_running_loop().time() + timeout_s
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                frames = await asyncio.wait_for(monitor.recv_multipart(), left)
            except TimeoutError:
                break
            event = parse_monitor_message(frames)["event"]
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                return True
            if event & _FAILED:
                failures += 1
                if failures >= REFUSALS_FOR_GOOD:
                    return False
        return None
    except zmq.ZMQError:
        return None  # no descriptor, a bad address: no answer either way
    finally:
        if monitor is not None:
            sock.disable_monitor()
            monitor.close(linger=0)
        sock.close(linger=0)
        context.term()
