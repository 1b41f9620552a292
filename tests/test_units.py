"""How durations, sizes and counts read, everywhere the CLI, the daemon and the dashboard say them."""

from __future__ import annotations

from swarmcompute.units import counted, format_duration, format_size, likely_meant


def test_a_duration_reads_in_the_unit_that_keeps_it_short() -> None:
    assert [format_duration(s) for s in (None, 0.0123, 5, 119.9, 3600, 7199, 7200, 86400, 8 * 86400)] == [
        "-", "12ms", "5.0s", "119.9s", "60.0m", "120.0m", "2.0h", "24.0h", "8.0d",
    ]  # fmt: skip


def test_sizes_and_counts_read_as_english() -> None:
    assert [format_size(n) for n in (None, 0, 1023, 1024, 3 * 2**30)] == ["-", "0 B", "1023 B", "1.0 KiB", "3.0 GiB"]
    assert (counted(1, "job"), counted(3, "job")) == ("1 job", "3 jobs")


def test_the_name_likely_meant_is_one_that_differs_in_case_else_the_closest() -> None:
    names = ["DESKTOP-4F2", "pi", "pi-zero"]
    assert likely_meant("desktop-4f2", names) == "DESKTOP-4F2"  # a hostname's case, however far difflib puts it
    assert likely_meant("pi-zer0", names) == "pi-zero"
    assert likely_meant("laptop", names) is None
    assert likely_meant("cpu", ["cpus", "mem"], cutoff=0.75) == "cpus"
