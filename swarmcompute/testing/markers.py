"""Marker files of the exactly-once tests: a job's shell script appends ``WORD TIME [...]`` lines
(``start``, ``hb``, ``done``, ``term``; TIME from ``date +%s.%N``) to a file named by job, rank or
attempt, and the test reads them back to count completions and find overlapping attempts."""

from __future__ import annotations

from pathlib import Path

WORDS = frozenset(("start", "hb", "done", "term"))


def marker_lines(path: Path) -> list[tuple[str, float]]:
    """``path``'s markers as (word, time), in the order written; anything after the time (a gang
    rank's ``start`` line carries its rank variables) is left out.

    A line without a time is skipped: a SIGTERM to the job's process group also kills the ``date``
    of the line being written, whose command substitution then comes back empty (``hb ``), and the
    script's trap writes ``term TIME`` right after it. Seen in a gang test once in four runs of the
    cluster tests: the rank stopped for the re-run left ``hb `` then ``term 1796402876.10``."""
    lines: list[tuple[str, float]] = []
    for line in path.read_text().splitlines():
        word, _, rest = line.partition(" ")
        when = rest.split(maxsplit=1)[0] if rest.strip() else ""
        if word not in WORDS or not when:
            continue
        try:
            lines.append((word, float(when)))
        except ValueError:
            continue  # a torn write: the script was killed mid-line
    return lines
