"""``executor.usage``: what a running attempt uses, read from a ``/proc`` laid out as the kernel
lays it out (the real one is read by ``test_process.py``'s running attempts)."""

from __future__ import annotations

import os
from pathlib import Path

from swarmcompute.executor.usage import PEAK_BUCKETS, UsageTally, usage_now

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def fake_process(
    proc: Path, pid: int, *, name: str, pgrp: int, ticks: tuple[int, int, int, int], pages: int, hwm_kib: int
) -> None:
    utime, stime, cutime, cstime = ticks
    rest = [0] * 30
    fields = [
        "S",
        1,
        pgrp,
        pgrp,
        0,
        -1,
        0,
        0,
        0,
        0,
        0,
        utime,
        stime,
        cutime,
        cstime,
        20,
        0,
        1,
        0,
        100,
        4096,
        pages,
        *rest,
    ]
    (proc / str(pid)).mkdir(parents=True)
    (proc / str(pid) / "stat").write_text(f"{pid} ({name}) " + " ".join(map(str, fields)) + "\n")
    (proc / str(pid) / "status").write_text(f"Name:\t{name}\nVmPeak:\t 9999 kB\nVmHWM:\t {hwm_kib} kB\nVmRSS:\t 1 kB\n")


def test_the_group_is_read_the_leaders_reaped_children_count_and_a_name_with_spaces_and_parens_is_skipped(
    tmp_path: Path,
) -> None:
    proc = tmp_path / "proc"
    fake_process(proc, 100, name="sh", pgrp=100, ticks=(1, 1, 3 * TICK, TICK), pages=100, hwm_kib=2048)
    fake_process(proc, 101, name="a) b (c", pgrp=100, ticks=(2 * TICK, TICK, 50, 50), pages=1000, hwm_kib=80_000)
    fake_process(proc, 200, name="other", pgrp=200, ticks=(9 * TICK, 0, 0, 0), pages=5000, hwm_kib=900_000)
    (proc / "self").mkdir()  # not a pid
    used = usage_now(100, proc=proc)
    assert used is not None and used.processes == 2
    # the leader's own and its reaped children's time; a member's own only (its children are in the leader's or its)
    assert used.cpu_s == (2 + 4 * TICK + 3 * TICK) / TICK
    assert (used.rss_bytes, used.max_rss_bytes) == (1100 * PAGE, 80_000 * 1024)
    assert usage_now(300, proc=proc) is None  # none left


def test_with_a_cgroup_its_processes_and_its_cpu_stat_are_read(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    fake_process(proc, 100, name="sh", pgrp=100, ticks=(TICK, 0, 0, 0), pages=10, hwm_kib=100)
    fake_process(proc, 150, name="setsid-escapee", pgrp=150, ticks=(TICK, 0, 0, 0), pages=20, hwm_kib=300)
    cgroup = tmp_path / "job.1"
    cgroup.mkdir()
    (cgroup / "cgroup.procs").write_text("100\n150\n")
    (cgroup / "cpu.stat").write_text("usage_usec 7500000\n")
    used = usage_now(100, str(cgroup), proc=proc)
    assert used is not None and (used.processes, used.cpu_s, used.rss_bytes) == (2, 7.5, 30 * PAGE)


def test_the_tally_counts_cpu_and_files_each_peak_under_the_first_bound_it_is_at_or_under() -> None:
    tally = UsageTally()
    tally.add(None, None)  # not measured (a Docker job, a cancelled one): nothing
    tally.add(1.5, 16 << 20)  # exactly a bound: "le" it
    tally.add(0.25, (16 << 20) + 1)
    tally.add(None, 1 << 40)  # past the last bound
    assert tally.cpu_s == 1.75 and tally.peak_sum == (32 << 20) + 1 + (1 << 40)
    assert tally.peaks == [1, 1, 0, 0, 0, 0, 0, 1] and len(tally.peaks) == len(PEAK_BUCKETS) + 1
