"""The guardian: job groups die with the daemon (kill -9 included), whole groups, and nothing else.

Real processes throughout: the guardian program driven through ``GuardianLink`` from the test,
and a stand-in daemon (``standin_daemon.py``) killed with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from swarmcompute.executor import AttemptSpec, EndReason
from swarmcompute.executor.guardian import (
    CLOCK_TICK_NS,
    GATHER_S,
    GuardianLink,
    Lease,
    apply_line,
    boottime_ns,
    start_ticks,
    start_ticks_between,
)

from .helpers import Harness, ProcessTracker, Standin, is_gone, sh, wait_until, wait_until_async

PROMPT_S = 5.0  # "promptly": the guardian acts within milliseconds; this only bounds a failure
NO_SUCH_GROUP = 1 << 30  # above any pid_max: a pgid no process can have


@pytest.fixture
def guardian(tracker: ProcessTracker) -> Iterator[GuardianLink]:
    """A guardian run by the test itself (the test plays the daemon); reaped at the end."""
    link = GuardianLink()
    link.spawn()
    assert link.pid is not None
    tracker.add(link.pid)
    try:
        yield link
    finally:
        link.discard()


@pytest.fixture
def group(tracker: ProcessTracker, tmp_path: Path) -> Iterator[Callable[[str], tuple[int, int]]]:
    """Factory: start ``sh -c SCRIPT`` as a session leader whose first output line is a member's
    pid; return (leader pid = pgid, member pid). Everything is killed by pid and reaped after."""
    started: list[subprocess.Popen[bytes]] = []

    def start(script: str) -> tuple[int, int]:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", script], start_new_session=True, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
        )  # fmt: skip
        started.append(proc)
        tracker.add(proc.pid)
        assert proc.stdout is not None
        member = int(proc.stdout.readline())  # bounded by pytest's timeout
        tracker.add(member)
        return proc.pid, member

    yield start
    tracker.kill_all()
    for proc in started:
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def _exited(link: GuardianLink) -> bool:
    return link.poll() is not None


def _ignored_signals(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1], 16) for line in f if line.startswith("SigIgn:"))


def test_protocol_lines() -> None:
    held: dict[int, int | None] = {}
    for line in (b"+100 5", b"+200", b"+0 1", b"+1 1", b"+-7 1", b"+x 1", b"bogus", b"", b"-300", b"-100"):
        apply_line(held, line)
    assert held == {200: None}  # never group 0 (the guardian's own) or 1; junk is ignored


def test_a_spawn_bracketed_within_one_clock_tick_gives_the_start_ticks_proc_shows() -> None:
    answered = 0
    for _ in range(300):
        before = boottime_ns()
        proc = subprocess.Popen(["true"], process_group=0)
        after = boottime_ns()
        try:
            told = start_ticks_between(proc.pid, before, after)
            assert told == start_ticks(proc.pid)  # not reaped yet: /proc still has its start
            answered += start_ticks_between(0, before, after) is not None  # pid 0: no /proc, the clock said
        finally:
            proc.wait()
    assert answered  # some (here about 95 %) were answered from the clock alone, not /proc


def test_the_start_ticks_come_from_the_clock_inside_one_tick_and_from_proc_across_an_edge() -> None:
    tick = boottime_ns() // CLOCK_TICK_NS
    inside = tick * CLOCK_TICK_NS + CLOCK_TICK_NS // 2
    assert start_ticks_between(0, inside, inside + 1_000) == tick  # no /proc/0/stat: the clock said
    edge = (tick + 1) * CLOCK_TICK_NS
    assert start_ticks_between(0, edge - 50_000, edge - 40_000) is None  # too near the edge: /proc
    assert start_ticks_between(0, edge - 1_000, edge + 1_000) is None
    proc = subprocess.Popen(["true"], process_group=0)
    try:
        assert start_ticks_between(proc.pid, edge - 1_000, edge + 1_000) == start_ticks(proc.pid)
    finally:
        proc.wait()


def test_end_of_file_kills_held_groups_whole_then_the_guardian_exits(
    guardian: GuardianLink, group: Callable[[str], tuple[int, int]]
) -> None:
    # The member is the leader's grandchild: sh -> sh -> sleep.
    leader, grandchild = group("sh -c 'sleep 1000 & echo $!; wait' & wait")
    assert guardian.hold(leader, start_ticks(leader))
    guardian.close()  # what the kernel does when the daemon dies
    assert wait_until(lambda: is_gone(leader) and is_gone(grandchild), PROMPT_S)
    assert wait_until(lambda: _exited(guardian), PROMPT_S)


def test_released_groups_and_reused_pids_are_left_alone(
    guardian: GuardianLink, group: Callable[[str], tuple[int, int]]
) -> None:
    ended, ended_child = group("sleep 1000 & echo $!; wait")
    reused, reused_child = group("sleep 1000 & echo $!; wait")
    assert guardian.hold(ended, start_ticks(ended))
    assert guardian.release(ended)  # "-": the daemon reaped it; the pgid may be anyone's now
    ticks = start_ticks(reused)
    assert ticks is not None
    assert guardian.hold(reused, ticks + 1)  # as if this pid were a new process with the old id
    guardian.close()
    assert wait_until(lambda: _exited(guardian), PROMPT_S)
    assert not any(is_gone(pid) for pid in (ended, ended_child, reused, reused_child))


def test_a_group_whose_leader_was_reaped_is_still_killed(
    guardian: GuardianLink, group: Callable[[str], tuple[int, int]], tracker: ProcessTracker
) -> None:
    # After the daemon dies, init reaps its zombie leaders; the members still pin the group id,
    # so a group that still has members under it is the job's (see the guardian's docstring).
    leader, member = group("sleep 1000 & echo $!; read x")
    assert guardian.hold(leader, start_ticks(leader))
    os.kill(leader, signal.SIGKILL)
    assert wait_until(lambda: start_ticks(leader) is None or is_gone(leader))
    os.waitpid(leader, 0)  # reaped, as init would: /proc/<leader> is gone, the group is not
    assert start_ticks(leader) is None and not is_gone(member)
    assert os.getpgid(member) == leader
    guardian.close()
    assert wait_until(lambda: is_gone(member), PROMPT_S)
    assert wait_until(lambda: _exited(guardian), PROMPT_S)


def test_lease_lines_track_leased_groups_and_the_deadline() -> None:
    lease = Lease()
    held: dict[int, int | None] = {}
    for line in (b"L5000", b"+100 5", b"~100", b"+200", b"~x", b"L-3"):
        if not lease.apply_line(line):
            apply_line(held, line)
    assert held == {100: 5, 200: None} and lease.groups == {100} and lease.deadline_ns == 0
    lease.apply_line(b"L5000")
    assert lease.timeout_s(4000) == pytest.approx(1e-6) and lease.timeout_s(6000) == 0
    assert not lease.apply_line(b"-100")  # a release is the held table's line, and the lease's too
    apply_line(held, b"-100")
    assert lease.groups == set() and lease.timeout_s(0) is None  # no leased group: no deadline


def test_past_the_lease_deadline_the_guardian_kills_leased_groups_only_while_the_daemon_is_silent(
    guardian: GuardianLink, group: Callable[[str], tuple[int, int]]
) -> None:
    # The daemon (the test) renews twice, then goes silent as a SIGSTOPped daemon would: the
    # guardian kills the leased group on its own timer, leaves the unleased one, and keeps serving.
    leased, leased_child = group("sleep 1000 & echo $!; wait")
    free, free_child = group("sleep 1000 & echo $!; wait")
    assert guardian.hold(free, start_ticks(free))
    assert guardian.set_deadline(boottime_ns() + 60 * 10**9)
    assert guardian.hold(leased, start_ticks(leased), leased=True)
    for _ in range(2):
        assert guardian.set_deadline(boottime_ns() + 300 * 10**6)
    silent_at = time.monotonic()
    assert wait_until(lambda: is_gone(leased) and is_gone(leased_child), PROMPT_S)
    waited = time.monotonic() - silent_at
    assert 0.25 < waited  # not before the deadline (0.3 s)
    assert not any(is_gone(pid) for pid in (free, free_child))
    assert guardian.poll() is None  # it is still there for the daemon
    guardian.close()
    assert wait_until(lambda: is_gone(free) and is_gone(free_child), PROMPT_S)


def test_a_renewed_lease_keeps_leased_groups_alive(
    guardian: GuardianLink, group: Callable[[str], tuple[int, int]]
) -> None:
    leased, leased_child = group("sleep 1000 & echo $!; wait")
    # Renewals every 50 ms, each 1.5 s ahead, for 2 s: the first deadline would have passed.
    assert guardian.set_deadline(boottime_ns() + 1500 * 10**6)
    assert guardian.hold(leased, start_ticks(leased), leased=True)
    until = time.monotonic() + 2.0
    while time.monotonic() < until:
        assert guardian.set_deadline(boottime_ns() + 1500 * 10**6)
        time.sleep(0.05)
    assert not is_gone(leased) and not is_gone(leased_child)
    assert guardian.set_deadline(0)  # "no deadline": the node keeps its attempts past its lease
    assert guardian.poll() is None and not is_gone(leased)


def test_the_guardian_is_alone_small_and_deaf_to_terminal_signals(
    guardian: GuardianLink, group: Callable[[str], tuple[int, int]]
) -> None:
    pid = guardian.pid
    assert pid is not None
    wanted = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1)) | (1 << (signal.SIGHUP - 1))
    assert wait_until(lambda: _ignored_signals(pid) & wanted == wanted)  # it is up and running
    assert wait_until(lambda: sorted(os.listdir(f"/proc/{pid}/fd")) == ["0", "1", "2"])
    assert os.getsid(pid) == pid  # its own session: no Ctrl-C from the daemon's terminal
    with open(f"/proc/{pid}/status") as f:
        rss_kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    print(f"\nguardian RSS: {rss_kib} KiB")
    assert rss_kib < 32 * 1024

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        os.kill(pid, sig)
    leader, member = group("sleep 1000 & echo $!; wait")
    assert guardian.hold(leader, start_ticks(leader))
    guardian.close()
    # Only a guardian that survived the signals can have killed the group.
    assert wait_until(lambda: is_gone(leader) and is_gone(member), PROMPT_S)
    assert wait_until(lambda: _exited(guardian), PROMPT_S)


def test_a_guardian_that_stops_reading_never_blocks_the_writer(guardian: GuardianLink) -> None:
    assert guardian.pid is not None
    os.kill(guardian.pid, signal.SIGSTOP)
    t0 = time.monotonic()
    refused_at = None
    for i in range(100_000):  # the 64 KiB pipe holds a few thousand lines
        if not guardian.hold(NO_SUCH_GROUP + i, None):
            refused_at = i
            break
    assert refused_at is not None and refused_at > 1000
    assert time.monotonic() - t0 < 2.0
    status = guardian.discard()  # SIGKILLed before it could act on anything it was told
    assert status is not None and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def test_a_new_guardian_gets_every_held_group(tracker: ProcessTracker, group: Callable[[str], tuple[int, int]]) -> None:
    link = GuardianLink()
    leader, member = group("sleep 1000 & echo $!; wait")
    assert link.hold(leader, start_ticks(leader))  # none runs yet: only remembered
    assert link.hold(NO_SUCH_GROUP, None)
    assert link.release(NO_SUCH_GROUP)
    try:
        link.spawn()
        assert link.pid is not None
        tracker.add(link.pid)
        link.close()
        assert wait_until(lambda: is_gone(leader) and is_gone(member), PROMPT_S)
        assert wait_until(lambda: _exited(link), PROMPT_S)
    finally:
        link.discard()


# -- with the executor ----------------------------------------------------------------------------


def test_the_job_group_dies_with_a_killed_daemon(tmp_path: Path, tracker: ProcessTracker) -> None:
    standin = Standin(tmp_path, tracker, "sh -c 'sleep 1000 & echo $!; wait' & wait")
    leader, grandchild = standin.ready["leader"], int(standin.ready["first_line"])
    guardian = standin.ready["guardian"]
    tracker.add(grandchild)
    assert guardian and os.getpgid(grandchild) == leader
    standin.kill()
    assert wait_until(lambda: is_gone(leader), PROMPT_S), f"job leader {leader} outlived its daemon"
    assert wait_until(lambda: is_gone(grandchild), PROMPT_S), f"grandchild {grandchild} outlived it"
    assert wait_until(lambda: is_gone(guardian), PROMPT_S), "the guardian did not exit"


def test_a_killed_guardian_is_replaced_and_the_new_one_covers_running_jobs(
    tmp_path: Path, tracker: ProcessTracker
) -> None:
    standin = Standin(tmp_path, tracker, "sleep 1000 & echo $!; wait")
    leader, child, first = standin.ready["leader"], int(standin.ready["first_line"]), standin.ready["guardian"]
    tracker.add(child)
    os.kill(first, signal.SIGKILL)
    line = standin.next_line()
    assert line is not None and line.startswith(b"GUARDIAN ")
    second = int(line.split()[1])
    tracker.add(second)
    assert second not in (0, first)
    assert not is_gone(leader) and not is_gone(child)
    standin.kill()
    assert wait_until(lambda: is_gone(leader) and is_gone(child), PROMPT_S)
    assert wait_until(lambda: is_gone(second), PROMPT_S)


@pytest.mark.parametrize("use_pidfd", [True, False], ids=["pidfd", "broken-pipe"])
def test_the_executor_replaces_a_dead_guardian(use_pidfd: bool, harness: Harness, tracker: ProcessTracker) -> None:
    harness.executor.use_pidfd = use_pidfd  # without pidfds, the next write finds out

    async def body(h: Harness) -> None:
        first_job = await h.start(AttemptSpec("g1", 1, ("sleep", "1000")))
        first = h.executor.guardian_pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        if use_pidfd:
            assert await wait_until_async(lambda: h.executor.guardian_pid not in (None, first))
        else:
            assert await wait_until_async(lambda: is_gone(first))
        second_job = await h.start(sh("g2", "exit 0"))
        second = h.executor.guardian_pid
        assert second not in (None, first)
        tracker.add(second)  # type: ignore[arg-type]
        assert (await second_job).exit_code == 0  # its "-" went to the new guardian
        assert h.executor.cancel("g1", 1)
        assert (await first_job).reason is EndReason.CANCELLED
        await h.executor.shutdown()
        assert h.executor.guardian_pid is None
        assert is_gone(second)  # type: ignore[arg-type]

    harness.run_async(body)


def test_shutdown_stops_the_guardian_and_a_quiet_executor_never_starts_one(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        assert h.executor.guardian_pid is None  # started by the first job, not before
        await h.run(AttemptSpec("one", 1, ("true",)))
        pid = h.executor.guardian_pid
        assert pid is not None
        await h.executor.shutdown()
        assert h.executor.guardian_pid is None
        assert is_gone(pid)

    harness.run_async(body)


def test_lines_sent_one_by_one_in_a_burst_wake_the_guardian_a_few_times_not_once_each(
    guardian: GuardianLink, group: Callable[[str], tuple[int, int]]
) -> None:
    pid = guardian.pid
    assert pid is not None
    assert wait_until(lambda: sorted(os.listdir(f"/proc/{pid}/fd")) == ["0", "1", "2"])  # up and waiting
    before = _wake_ups(pid)
    started = time.monotonic()
    for pgid in range(NO_SUCH_GROUP, NO_SUCH_GROUP + 200):  # as a daemon starting and reaping 200 jobs
        assert guardian.hold(pgid, None)
        time.sleep(0.0004)  # the lines come apart, as spawns space them (about 0.4 ms each)
        assert guardian.release(pgid)
        time.sleep(0.0004)
    elapsed = time.monotonic() - started
    woken = _wake_ups(pid) - before
    # Each read, then at most one wait for input and one GATHER_S pause: never one per line.
    bound = 2 * (2 + elapsed / GATHER_S)
    print(f"\n400 lines in {elapsed * 1000:.1f} ms: {woken} wake-ups (bound {bound:.0f})")
    assert woken <= bound
    leader, member = group("sleep 1000 & echo $!; wait")
    assert guardian.hold(leader, start_ticks(leader))  # and it still holds what it is told
    guardian.close()
    assert wait_until(lambda: is_gone(leader) and is_gone(member), PROMPT_S)


def _wake_ups(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("voluntary_ctxt_switches:"))


def test_a_container_is_held_released_and_leased_by_its_id_and_nothing_shorter() -> None:
    container = "0123456789abcdef" * 4
    held: dict[int | str, int | None] = {}
    for line in (b"#" + container.encode(), b"#abc", b"#" + container.upper().encode(), b"#" + b"z" * 64, b"#"):
        apply_line(held, line)
    assert held == {container: None}  # a short or non-hex id would be found in strangers' cgroups
    lease = Lease()
    assert lease.apply_line(b"~#" + container.encode()) and lease.groups == {container}
    assert not lease.apply_line(b"-#" + container.encode())  # the held table's line, and the lease's
    apply_line(held, b"-#" + container.encode())
    assert held == {} and lease.groups == set()
