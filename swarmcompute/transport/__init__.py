"""The peer transport: CurveZMQ-encrypted, cluster-key-authenticated, bounded ZeroMQ messaging.

The daemon needs three names: ``ClusterKey`` / ``new_cluster_key`` (keys.py) and
``PeerTransport`` (peer.py).
"""

from __future__ import annotations

from swarmcompute.transport.keys import ClusterKey, new_cluster_key
from swarmcompute.transport.peer import OnMessage, PeerTransport, TransportStats

__all__ = ["ClusterKey", "OnMessage", "PeerTransport", "TransportStats", "new_cluster_key"]
