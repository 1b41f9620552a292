"""The marker files the exactly-once tests read (``swarmcompute.testing.markers``)."""

from __future__ import annotations

from pathlib import Path

from swarmcompute.testing.markers import marker_lines


def test_a_marker_line_whose_time_was_killed_is_skipped_and_the_trap_line_kept(tmp_path: Path) -> None:
    path = tmp_path / "1.1"
    # what a rank stopped with SIGTERM wrote: its group's signal killed `date` mid-line
    path.write_text("start 10.5 0 2 29439\nhb 10.6\nhb \nterm 10.7\n")
    assert marker_lines(path) == [("start", 10.5), ("hb", 10.6), ("term", 10.7)]


def test_a_torn_time_and_unknown_words_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "j.1"
    path.write_text("start 1.0\nhb 1.2x\nnoise 3.0\n\ndone 2.0\n")
    assert marker_lines(path) == [("start", 1.0), ("done", 2.0)]
