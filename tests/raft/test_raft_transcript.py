"""A transcript test (etcd-io/raft style): every message of an election, a commit and a heartbeat.

If the protocol changes on purpose, update the transcript; if it changes by
accident, this diff shows exactly which message differs.
"""

from __future__ import annotations

from swarmcompute.sim.harness import LockstepCluster

EXPECTED = """
a->b VoteRequest term=1 last_log_index=1 last_log_term=0 pre_vote=True transfer=False
a->c VoteRequest term=1 last_log_index=1 last_log_term=0 pre_vote=True transfer=False
b->a VoteResponse term=1 granted=True pre_vote=True
c->a VoteResponse term=1 granted=True pre_vote=True
a->b VoteRequest term=1 last_log_index=1 last_log_term=0 pre_vote=False transfer=False
a->c VoteRequest term=1 last_log_index=1 last_log_term=0 pre_vote=False transfer=False
b->a VoteResponse term=1 granted=True pre_vote=False
c->a VoteResponse term=1 granted=True pre_vote=False
a->b AppendRequest term=1 prev_index=1 prev_term=0 entries=['2/1n'] commit=1
a->c AppendRequest term=1 prev_index=1 prev_term=0 entries=['2/1n'] commit=1
b->a AppendResponse term=1 success=True index=2 conflict_index=0 conflict_term=0
c->a AppendResponse term=1 success=True index=2 conflict_index=0 conflict_term=0
a->b AppendRequest term=1 prev_index=2 prev_term=1 entries=[] commit=2
b->a AppendResponse term=1 success=True index=2 conflict_index=0 conflict_term=0
a->b AppendRequest term=1 prev_index=2 prev_term=1 entries=['3/1'] commit=2
a->c AppendRequest term=1 prev_index=2 prev_term=1 entries=['3/1'] commit=2
b->a AppendResponse term=1 success=True index=3 conflict_index=0 conflict_term=0
c->a AppendResponse term=1 success=True index=3 conflict_index=0 conflict_term=0
a->b AppendRequest term=1 prev_index=3 prev_term=1 entries=[] commit=3
a->c AppendRequest term=1 prev_index=3 prev_term=1 entries=[] commit=3
b->a AppendResponse term=1 success=True index=3 conflict_index=0 conflict_term=0
c->a AppendResponse term=1 success=True index=3 conflict_index=0 conflict_term=0
a->b AppendRequest term=1 prev_index=3 prev_term=1 entries=[] commit=3
a->c AppendRequest term=1 prev_index=3 prev_term=1 entries=[] commit=3
b->a AppendResponse term=1 success=True index=3 conflict_index=0 conflict_term=0
c->a AppendResponse term=1 success=True index=3 conflict_index=0 conflict_term=0
"""


def test_election_commit_and_heartbeat_transcript() -> None:
    c = LockstepCluster("abc")
    c.elect("a")  # pre-vote, vote, then the leader's no-op (2/1n) commits and b hears so at once
    c.propose("a", b"job-1")  # entry 3 commits on the acknowledgements; commit=3 goes out at once
    c.deliver()
    c.tick("a", 2)  # and a heartbeat carries it again
    c.deliver()
    assert c.transcript() == EXPECTED.strip().splitlines()
    assert all(c.commands(n) == [b"job-1"] for n in "abc")
