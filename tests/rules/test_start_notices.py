""" "Started" notices: held one whole period past a firing, dropped when the result comes first."""

from __future__ import annotations

from swarmcompute.rules.start_notices import StartNotices
from swarmcompute.state.commands import StartAttempt


def notice(job: str, attempt: int = 1) -> StartAttempt:
    return StartAttempt(job, attempt, "n1", 100.0)


def test_a_notice_goes_at_the_second_firing_after_it_was_held_never_at_the_first() -> None:
    notices = StartNotices(0.02)
    assert notices.hold(notice("a")) == 0.02  # the caller arms its timer once
    assert notices.hold(notice("b")) is None
    # The timer fires in the turn after a long run of starts: "a" and "b" may have ended without
    # the loop having seen it yet, so they wait one period more.
    assert notices.fire() == ([], 0.02)
    notices.hold(notice("c"))
    sent, again = notices.fire()
    assert [n.job_id for n in sent] == ["a", "b"] and again == 0.02  # "c" waits for the next
    sent, again = notices.fire()
    assert [n.job_id for n in sent] == ["c"] and again is None and not notices.armed
    assert notices.hold(notice("d")) == 0.02  # nothing armed any more: arm again


def test_an_attempt_whose_result_came_first_is_never_noticed() -> None:
    notices = StartNotices(0.02)
    notices.hold(notice("a"))
    notices.hold(notice("b"))
    notices.drop(("a", 1))
    notices.fire()
    notices.drop(("b", 1))  # ended after one firing: still in time
    assert notices.fire() == ([], None) and len(notices) == 0


def test_a_burst_of_starts_shares_one_firing() -> None:
    notices = StartNotices(0.02)
    arms = [notices.hold(notice(f"j{i}")) for i in range(100)]
    assert arms.count(0.02) == 1
    notices.fire()
    sent, _ = notices.fire()
    assert len(sent) == 100


def test_a_crash_forgets_every_notice_and_the_armed_timer() -> None:
    notices = StartNotices(0.02)
    notices.hold(notice("a"))
    notices.fire()
    notices.clear()
    assert len(notices) == 0 and not notices.armed and notices.fire() == ([], None)
