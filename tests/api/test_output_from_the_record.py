"""When a node reading an ended attempt that ran elsewhere may print the job record's output tail
instead of asking the node that holds the log (``api.streaming``): only when the record counts the
attempt's output and the tail holds all of it (``state.job.tail_is_whole``).

A 6,000-element `swarm run --array` once printed 5,611 lines: records whose tail had been lost
read as "wrote nothing", and their output, on disk on a live node, was never asked for."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from swarmcompute import codec
from swarmcompute.api import messages as m
from swarmcompute.api.protocol import LENGTH_PREFIX
from swarmcompute.api.streaming import OutputStream
from swarmcompute.executor.logfile import END, STDOUT
from swarmcompute.node.cluster_messages import LogData
from swarmcompute.state.commands import AssignJobs, Assignment, FinishAttempt, SubmitJobs
from swarmcompute.state.job import AttemptEnd, Job, JobSpec
from swarmcompute.state.table import JobTable

RAN_ON = "n0"
HERE = "n1"


class _Node:
    """The parts of a daemon an ``OutputStream`` uses, for a job that ran on ``RAN_ON``."""

    def __init__(self, tmp_path: Path, *, runner_gone: bool) -> None:
        self.node_id = HERE
        self.table = JobTable()
        self.runner_gone = runner_gone
        self.asked: list[tuple[str, int]] = []
        self._tmp = tmp_path

    def node_gone(self, node_id: str) -> bool:
        return self.runner_gone and node_id == RAN_ON

    def node_name(self, node_id: str) -> str:
        return node_id

    def whole_job(self, job: Job) -> Job:
        return job

    def job_view(self, job: Job, *, with_output: bool = False) -> dict[str, Any]:
        return job.view(with_output=with_output)

    def job_event(self, job_id: str) -> asyncio.Event:
        return asyncio.Event()

    def release_job_event(self, job_id: str, event: asyncio.Event) -> None:
        pass

    def log_path(self, job_id: str, attempt: int) -> Path:
        return self._tmp / "output" / job_id / f"attempt-{attempt}.index"

    def copy_path(self, job_id: str, attempt: int) -> Path:
        return self._tmp / "output-copies" / job_id / f"attempt-{attempt}.index"

    async def fetch_log(self, node_id: str, job_id: str, attempt: int, offset: int) -> LogData | None:
        self.asked.append((node_id, offset))
        if self.runner_gone:
            return None
        if offset:
            return LogData("r", (), offset)
        return LogData("r", ((STDOUT, b"x18\n"), (END, b"")), 26, complete=True)

    async def find_copy(self, job: Job, attempt: int) -> tuple[str, bool] | None:
        return None


class _Client:
    """The client's end of the control socket: what the stream wrote, decoded."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        pass

    def messages(self) -> list[Any]:
        out, view = [], memoryview(bytes(self.data))
        while view:
            (n,) = LENGTH_PREFIX.unpack(view[: LENGTH_PREFIX.size])
            out.append(codec.decode(bytes(view[LENGTH_PREFIX.size : LENGTH_PREFIX.size + n])))
            view = view[LENGTH_PREFIX.size + n :]
        return out


def _logs(node: _Node, tail: bytes, output_bytes: int | None) -> list[Any]:
    """`swarm logs rep.18` on ``HERE`` once rep.18 succeeded on ``RAN_ON`` with this record."""
    node.table.apply(SubmitJobs((JobSpec("rep.18", ("sh", "-c", "echo x18")),), 1.0))
    node.table.apply(AssignJobs((Assignment("rep.18", 1, RAN_ON),), 1.1))
    end = FinishAttempt("rep.18", 1, RAN_ON, 0, AttemptEnd.EXITED, None, tail, 1.2, 1.5, output_bytes=output_bytes)
    node.table.apply(end)
    client = _Client()
    asyncio.run(OutputStream(node, client, "rep.18").run(follow=False))  # type: ignore[arg-type]
    return client.messages()


def _printed(messages: list[Any]) -> bytes:
    return b"".join(msg.data for msg in messages if isinstance(msg, m.OutputChunk))


def _said(messages: list[Any]) -> list[str]:
    return [msg.text for msg in messages if isinstance(msg, m.Notice)]


def test_an_empty_tail_in_a_record_that_counts_output_is_not_taken_for_no_output(tmp_path: Path) -> None:
    node = _Node(tmp_path, runner_gone=False)
    messages = _logs(node, b"", output_bytes=4)  # the tail was lost; the node that ran it has the log
    assert node.asked and node.asked[0] == (RAN_ON, 0)
    assert _printed(messages) == b"x18\n" and _said(messages) == []
    assert messages[-1].job.get("output_truncated") is not True


def test_an_empty_tail_in_a_record_that_does_not_count_output_is_asked_for(tmp_path: Path) -> None:
    node = _Node(tmp_path, runner_gone=False)
    messages = _logs(node, b"", output_bytes=None)  # an older node's end: it did not count
    assert node.asked and _printed(messages) == b"x18\n"


def test_a_record_that_counts_no_output_spares_asking_the_node_that_ran_it(tmp_path: Path) -> None:
    node = _Node(tmp_path, runner_gone=False)
    messages = _logs(node, b"", output_bytes=0)
    assert node.asked == [] and _printed(messages) == b"" and _said(messages) == []


def test_with_the_log_out_of_reach_a_tail_short_of_the_count_is_said_incomplete(tmp_path: Path) -> None:
    node = _Node(tmp_path, runner_gone=True)
    messages = _logs(node, b"", output_bytes=4)
    assert _printed(messages) == b""
    (notice,) = _said(messages)
    assert "output of attempt 1 is incomplete" in notice and "0 of 4 bytes" in notice
    assert messages[-1].job["output_truncated"] is True  # `swarm logs` exits 3


def test_with_the_log_out_of_reach_a_tail_that_holds_the_count_is_the_whole_output(tmp_path: Path) -> None:
    node = _Node(tmp_path, runner_gone=True)
    messages = _logs(node, b"x18\n", output_bytes=4)
    assert _printed(messages) == b"x18\n" and _said(messages) == []
    assert messages[-1].job.get("output_truncated") is not True


def test_with_the_log_out_of_reach_a_short_tail_of_an_uncounted_record_is_not_called_whole(tmp_path: Path) -> None:
    node = _Node(tmp_path, runner_gone=True)
    messages = _logs(node, b"x18\n", output_bytes=None)
    assert _printed(messages) == b"x18\n"
    (notice,) = _said(messages)
    assert "may not be all of it" in notice and messages[-1].job["output_truncated"] is True
