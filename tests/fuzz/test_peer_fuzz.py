"""Peer frames from a key holder against the receive path: whatever arrives, the transport
drops it (counted, logged within a budget) or hands on a bounded message; a Raft term can
always be incremented and still encoded (a term of 2**64-1 used to crash every restart)."""

from __future__ import annotations

from typing import Any

import msgpack
from hypothesis import given
from hypothesis import strategies as st

from swarmcompute import codec
from swarmcompute.membership.messages import Ack, Gossip, Ping, PingReq, PushPull
from swarmcompute.raft.messages import EPOCH_STRIDE, MESSAGE_TYPES, VoteRequest
from swarmcompute.transport import PeerTransport
from swarmcompute.transport.keys import new_cluster_key

from .strategies import INTS, TAGS, message_frames

PEER_COUNTED = (*MESSAGE_TYPES, Ack, Gossip, Ping, PingReq, PushPull)
"""Raft and gossip messages: their counters are ``Count`` (storage records such as LogBase are not)."""
RAFT_TAGS = tuple(sorted(codec._TAG_OF[t] for t in MESSAGE_TYPES))
GOSSIP_TAGS = tuple(t for t in TAGS if t.startswith("gossip."))
received: list[tuple[str, Any]] = []
TRANSPORT = PeerTransport(new_cluster_key(), "me", lambda s, msg: received.append((s, msg)), bind="127.0.0.1", port=0)


def _frames() -> st.SearchStrategy[list[bytes]]:
    payloads = st.one_of(
        message_frames(),
        message_frames(RAFT_TAGS),
        message_frames(GOSSIP_TAGS),
        st.binary(max_size=128),
    )
    sender = st.one_of(st.just(b"n2"), st.binary(max_size=300))
    three = st.tuples(st.just(b"rid"), sender, payloads).map(list)
    return st.one_of(three, three, three, st.lists(st.binary(max_size=16), max_size=5))


@given(_frames())
def test_the_receive_path_never_raises_and_hands_on_only_bounded_messages(frames: list[bytes]) -> None:
    received.clear()
    TRANSPORT._handle(frames)
    for _sender, msg in received:
        assert type(msg) in codec._TAG_OF
        if not isinstance(msg, PEER_COUNTED):
            continue  # e.g. lease terms: only compared, never incremented, so the plain int bound holds
        for name in ("term", "prev_index", "commit", "last_log_index", "incarnation"):
            value = getattr(msg, name, None)
            if isinstance(value, int):
                assert 0 <= value <= codec.MAX_COUNT
                msgpack.packb(value + EPOCH_STRIDE)  # what a node adds to a term stays encodable


@given(INTS)
def test_a_huge_term_is_refused_at_decode(term: int) -> None:
    data = msgpack.packb([1, "raft.vote", [term, "n2", "me", 0, 0, False, False]])
    received.clear()
    TRANSPORT._handle([b"rid", b"n2", data])
    if 0 <= term <= codec.MAX_COUNT:
        assert received == [("n2", VoteRequest(term, "n2", "me", 0, 0))]
    else:
        assert received == []
