"""A drained node (``SetDrained``) starts nothing more and hands back what it had queued at once."""

from __future__ import annotations

from swarmcompute.rules.node_state import ClusterView, NodeState, Propose
from swarmcompute.scheduler.placement import NodeCapacity
from swarmcompute.state.commands import AssignJobs, Assignment, ReleaseQueued, SubmitJobs
from swarmcompute.state.drain import LabelNode, SetDrained, labels_after
from swarmcompute.state.job import JobSpec
from swarmcompute.state.snapshot import restore_table, snapshot_table
from swarmcompute.state.table import JobTable

ME = "me"
GIB = 1 << 30
MINE = NodeCapacity(ME, "me", 4.0, GIB)
OTHER = NodeCapacity("other", "other", 4.0, GIB)
VIEW = ClusterView(is_leader=False, voters=frozenset({ME}))


def queued_here(*ids: str) -> NodeState:
    table = JobTable()
    table.apply(SubmitJobs(tuple(JobSpec(id=i, argv=("true",)) for i in ids), at=1.0))
    table.apply(AssignJobs(tuple(Assignment(i, 1, ME) for i in ids), at=2.0))
    state = NodeState(ME, table)
    state.applied(list(ids), {}, from_earlier_life=False, now_mono=0.0, now_wall=0.0, may_start=True)
    return state


def test_a_drained_node_starts_nothing_and_hands_its_queue_back_at_once() -> None:
    state = queued_here("a", "b")
    state.table.apply(SetDrained(ME, True, 3.0))
    assert state.to_start(MINE, 3.0, may_start=True) == []
    out = state.maintenance(VIEW, None, lambda: [MINE, OTHER], 0.1, 0.1, 3.1)  # queued 0.1 s only
    [released] = [i for i in out if isinstance(i, Propose)]
    assert {(c.job_id, c.why) for c in released.commands if isinstance(c, ReleaseQueued)} == {
        ("a", "its node is drained"),
        ("b", "its node is drained"),
    }


def test_a_drained_node_hands_back_at_once_what_no_other_node_may_run_and_keeps_what_waits_for_room() -> None:
    table = JobTable()
    specs = (
        JobSpec(id="pinned", argv=("true",), node=ME),
        JobSpec(id="labelled", argv=("true",), constraints=("disk=ssd",)),
        JobSpec(id="waits", argv=("true",), cpus=2.0),
    )
    filler = JobSpec(id="filler", argv=("true",), cpus=4.0)  # the other node is full
    table.apply(SubmitJobs((*specs, filler), at=1.0))
    table.apply(AssignJobs((*(Assignment(s.id, 1, ME) for s in specs), Assignment("filler", 1, "other")), at=2.0))
    state = NodeState(ME, table)
    state.applied([s.id for s in specs], {}, from_earlier_life=False, now_mono=0.0, now_wall=0.0, may_start=True)
    table.apply(SetDrained(ME, True, 3.0))
    out = state.maintenance(VIEW, None, lambda: [MINE, OTHER], 0.1, 0.1, 3.1)
    [released] = [i for i in out if isinstance(i, Propose)]
    assert {c.job_id for c in released.commands if isinstance(c, ReleaseQueued)} == {"pinned", "labelled"}


def test_an_undrained_node_starts_its_queue_again() -> None:
    state = queued_here("a")
    state.table.apply(SetDrained(ME, True, 3.0))
    assert state.to_start(MINE, 3.0, may_start=True) == []
    state.table.apply(SetDrained(ME, False, 4.0))
    assert [s.job.id for s in state.to_start(MINE, 4.0, may_start=True)] == ["a"]


def test_label_changes_are_kept_per_node_and_survive_a_snapshot() -> None:
    table = JobTable()
    table.apply(LabelNode("n1", (("gpu", "a100"), ("rack", "2")), 1.0))
    table.apply(LabelNode("n1", (("rack", ""),), 2.0))
    table.apply(LabelNode("n1", (("bad key", "x"),), 3.0))  # malformed: ignored on every replica
    changes = restore_table(snapshot_table(table)).label_changes["n1"]
    assert [c.at for c in changes] == [1.0, 2.0]
    labels: tuple[tuple[str, str], ...] = ()
    for change in changes:
        labels = labels_after(labels, change.changes)
    assert labels == (("gpu", "a100"),)
