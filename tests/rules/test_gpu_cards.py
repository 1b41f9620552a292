"""GPU cards on one node: each attempt that asks for GPUs gets cards of its own (``LocalQueue``),
named in its ``Start``; a card is free again only once the attempt holding it has ended."""

from __future__ import annotations

from swarmcompute.rules.node_state import NodeState
from swarmcompute.scheduler.placement import NodeCapacity
from swarmcompute.state.commands import AssignJobs, Assignment, FinishAttempt, SubmitJobs
from swarmcompute.state.job import AttemptEnd, JobSpec
from swarmcompute.state.table import JobTable

ME = "me"
GIB = 1 << 30
TWO_CARDS = NodeCapacity(ME, "me", 8.0, 8 * GIB, gpus=2, gpu_cards=((0, 16 * GIB), (1, 80 * GIB)))


def node_with(*specs: JobSpec) -> NodeState:
    table = JobTable()
    table.apply(SubmitJobs(specs, at=1.0))
    table.apply(AssignJobs(tuple(Assignment(s.id, 1, ME) for s in specs), at=2.0))
    state = NodeState(ME, table)
    state.applied([s.id for s in specs], {}, from_earlier_life=False, now_mono=0.0, now_wall=0.0, may_start=True)
    return state


def ended(job_id: str) -> FinishAttempt:
    return FinishAttempt(job_id, 1, ME, 0, AttemptEnd.EXITED, None, b"", 2.0, 3.0)


def test_two_one_gpu_jobs_get_cards_0_and_1_and_a_third_waits_for_one_to_end() -> None:
    state = node_with(*(JobSpec(id=f"g{i}", argv=("true",), gpus=1) for i in range(3)))
    starts = state.to_start(TWO_CARDS, 1.0, may_start=True)
    assert [(s.job.id, s.gpus) for s in starts] == [("g0", (0,)), ("g1", (1,))]
    assert state.to_start(TWO_CARDS, 1.1, may_start=True) == []  # both cards held
    state.attempt_exited(ended("g1"), holds=True)
    [third] = state.to_start(TWO_CARDS, 1.2, may_start=True)
    assert (third.job.id, third.gpus) == ("g2", (1,))  # the card g1 freed, never g0's


def test_gpu_mem_takes_the_big_card_and_a_job_without_gpus_gets_none() -> None:
    state = node_with(
        JobSpec(id="big", argv=("true",), gpus=1, gpu_mem=40 * GIB),
        JobSpec(id="any", argv=("true",), gpus=1),
        JobSpec(id="cpu", argv=("true",)),
    )
    starts = {s.job.id: s.gpus for s in state.to_start(TWO_CARDS, 1.0, may_start=True)}
    assert starts == {"big": (1,), "any": (0,), "cpu": ()}


def test_a_job_wanting_a_big_card_waits_while_only_a_small_one_is_free() -> None:
    state = node_with(
        JobSpec(id="first", argv=("true",), gpus=1, gpu_mem=40 * GIB),
        JobSpec(id="second", argv=("true",), gpus=1, gpu_mem=40 * GIB),
    )
    assert [s.gpus for s in state.to_start(TWO_CARDS, 1.0, may_start=True)] == [(1,)]
    assert state.to_start(TWO_CARDS, 1.1, may_start=True) == []  # card 0 is free but too small
