"""How durations, sizes and counts read, everywhere the CLI, the daemon and the dashboard say them."""

from __future__ import annotations

import datetime

import pytest

from swarmcompute.errors import ConfigError
from swarmcompute.units import counted, format_duration, format_size, likely_meant, parse_begin, parse_warning


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


def test_a_begin_time_reads_as_a_delay_a_time_of_day_a_date_or_unix_seconds() -> None:
    now = datetime.datetime(2026, 12, 5, 10, 30).timestamp()  # local time, as a user types it
    assert parse_begin("30m", now) == now + 1800
    assert parse_begin("now+2h", now) == parse_begin("NOW + 2h", now) == now + 7200
    assert parse_begin("now", now) == now
    assert parse_begin("03:00", now) == datetime.datetime(2026, 12, 6, 3, 0).timestamp()  # passed today: tomorrow's
    assert parse_begin("18:15:30", now) == datetime.datetime(2026, 12, 5, 18, 15, 30).timestamp()
    assert parse_begin("2026-12-24", now) == datetime.datetime(2026, 12, 24).timestamp()
    assert parse_begin("2026-12-24T18:00", now) == parse_begin("2026-12-24 18:00", now)
    utc = datetime.datetime(2026, 12, 24, 17, 0, tzinfo=datetime.UTC).timestamp()
    assert parse_begin("2026-12-24T18:00+01:00", now) == utc
    assert parse_begin(1_800_000_000, now) == 1_800_000_000.0
    assert parse_begin(datetime.datetime(2027, 1, 1), now) == datetime.datetime(2027, 1, 1).timestamp()
    assert parse_begin(None, now) == parse_begin("", now) == parse_begin(0, now) == 0.0


@pytest.mark.parametrize("bad", ["soon", "now-5m", "25:00", "2026-13-01", "12:00pm", "-5m"])
def test_a_begin_time_that_does_not_read_says_the_forms_it_takes(bad: str) -> None:
    with pytest.raises(
        ConfigError, match=r"as a start time: use e.g. 30m, now\+2h, 03:00, 2026-12-24 or 2026-12-24T18:00"
    ):
        parse_begin(bad, 0.0)


def test_a_warning_signal_reads_as_a_signal_and_how_long_before_the_time_limit() -> None:
    assert parse_warning("USR1@5m") == (10, 300.0)
    assert parse_warning("sigterm@90") == (15, 90.0)
    assert parse_warning("RTMIN+2") == (36, 60.0)  # Slurm's 60 s when no time is named
    assert parse_warning(None) == parse_warning("") == (0, 0.0)
    for bad, said in [
        ("FOO@5m", "--signal 'FOO@5m': unknown signal 'FOO'"),
        ("USR1@soon", "--signal 'USR1@soon': cannot read 'soon' as a duration"),
        ("USR1@", "--signal 'USR1@': cannot read '' as a duration"),
        ("USR1@-5", "--signal 'USR1@-5': cannot read '-5' as a duration"),
        ("USR1@0", "--signal 'USR1@0': a duration must be positive"),
    ]:
        with pytest.raises(ConfigError) as caught:
            parse_warning(bad)
        assert str(caught.value).startswith(said), str(caught.value)
