"""An attached gang says a rank's stream notes as `swarm:` lines (`[1] output of attempt 1 is
incomplete` lacked it), and exits as `swarm run` of one job does: 3 when every rank succeeded but
the output of a rank's last attempt was not delivered whole, 0 when only an earlier, lost attempt's
was (the rank ran again and its output is whole)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from swarmcompute.api import messages as m
from swarmcompute.cli import gang_run


class _Rank:
    where = "the daemon in /nowhere"

    def __init__(self, truncated: bool) -> None:
        self.truncated = truncated

    def stream_logs(self, job_id: str, **how: Any) -> Iterator[Any]:
        yield m.OutputChunk(job_id, 1, m.STDOUT, b"partial")
        yield m.Notice("output of attempt 1 is incomplete: node n0, which ran it, cannot be reached")
        yield m.AttemptStart(job_id, 2, "n1", "--- attempt 2 on n1 (after lost) ---")
        yield m.OutputChunk(job_id, 2, m.STDOUT, b"whole\n")
        yield m.StreamEnd({"id": job_id, "state": "succeeded", "output_truncated": self.truncated})


def _succeeded() -> dict[str, Any]:
    return {"gang_id": "g1", "state": "succeeded", "gang": [{"state": "succeeded"}, {"state": "succeeded"}]}


@pytest.mark.parametrize(("truncated", "status"), [(False, 0), (True, 3)])
def test_a_gang_rank_note_is_a_swarm_line_and_the_exit_status_follows_each_ranks_last_attempt(
    truncated: bool, status: int, capfd: pytest.CaptureFixture[str]
) -> None:
    incomplete = gang_run._stream_all(lambda: _Rank(truncated), ["g1.1"])
    assert gang_run.gang_status(_succeeded(), incomplete=bool(incomplete)) == status
    err = capfd.readouterr().err.splitlines()
    assert err[0] == "swarm: [1] output of attempt 1 is incomplete: node n0, which ran it, cannot be reached"
    assert err[1] == "[1] --- attempt 2 on n1 (after lost) ---"
