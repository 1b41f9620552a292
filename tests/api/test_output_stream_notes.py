"""What `OutputStream` says about output it cannot deliver whole, against a fake node: the reader
exits 3 on the stream's end record (``output_truncated``), so one line must always say why."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from swarmcompute import codec
from swarmcompute.api import messages as m
from swarmcompute.api.streaming import OutputStream
from swarmcompute.executor.logfile import LogWriter, attempt_log_path
from swarmcompute.state.job import Job, JobSpec, JobState, Reason

ME = "me0000000000"


class _Node:
    """The few things a stream asks of its node: one job, its logs under ``root``."""

    def __init__(self, job: Job, root: Path, gone: frozenset[str] = frozenset()) -> None:
        self.job, self.root, self.gone = job, root, gone
        self.node_id = ME
        self.table = self

    def resolve(self, ref: str) -> Job:
        return self.job

    def job_event(self, job_id: str) -> asyncio.Event:
        return asyncio.Event()

    def release_job_event(self, job_id: str, event: asyncio.Event) -> None:
        pass

    def log_path(self, job_id: str, attempt: int) -> Path:
        return attempt_log_path(self.root / "output", job_id, attempt)

    def copy_path(self, job_id: str, attempt: int) -> Path:
        return attempt_log_path(self.root / "output-copies", job_id, attempt)

    async def find_copy(self, job: Job, attempt: int) -> tuple[str, bool] | None:
        return (ME, False) if self.copy_path(job.id, attempt).exists() else None

    async def fetch_log(self, *args: Any, **kwargs: Any) -> None:
        return None  # every other node is gone

    def job_view(self, job: Job, *, with_output: bool = True) -> dict[str, Any]:
        return {"id": job.id, "state": job.state.value, "output_truncated": job.attempt in job.truncated_attempts}

    def whole_job(self, job: Job) -> Job:
        return job

    def node_name(self, node_id: str) -> str:
        return node_id[:2]

    def node_gone(self, node_id: str) -> bool:
        return node_id in self.gone


class _Frames:
    def __init__(self) -> None:
        self.items: list[Any] = []

    def write(self, data: bytes) -> None:
        self.items.append(codec.decode(data[4:]))

    async def drain(self) -> None:
        pass


def _streamed(node: _Node, **how: Any) -> tuple[list[str], dict[str, Any]]:
    """The notices and the end record of one stream."""
    frames = _Frames()
    asyncio.run(OutputStream(node, frames, node.job.id).run(**how))  # type: ignore[arg-type]
    notices = [f.text for f in frames.items if isinstance(f, m.Notice)]
    return notices, frames.items[-1].job


def _log(path: Path, data: bytes, *, whole: bool) -> None:
    writer = LogWriter(path)
    writer.write(m.STDOUT, data)
    if whole:
        writer.close()  # its END record
    else:
        writer._files.close()  # a writer whose disk filled: no END, no truncation line yet


def _job(**fields: Any) -> Job:
    return Job(JobSpec(id="job1", argv=("sh",)), submitted_at=0.0, **fields)


def test_a_log_cut_by_a_full_disk_whose_truncation_line_is_not_written_yet_is_still_said(tmp_path: Path) -> None:
    job = _job(state=JobState.SUCCEEDED, reason=Reason.EXITED, attempt=1, node=ME, exit_code=0, truncated_attempts=(1,))
    node = _Node(job, tmp_path)
    _log(node.log_path("job1", 1), b"x" * 1000, whole=False)
    notices, end = _streamed(node, follow=False)
    assert end["output_truncated"] is True
    assert notices == [
        "attempt 1: output truncated after 1000 bytes: node me could not write the rest to its log (its state"
        " directory is full or read-only: `swarm status` there says); the last 4 KiB are kept in the job record"
    ]


def test_a_log_whose_truncation_line_was_written_is_said_once(tmp_path: Path) -> None:
    job = _job(state=JobState.SUCCEEDED, reason=Reason.EXITED, attempt=1, node=ME, exit_code=0, truncated_attempts=(1,))
    node = _Node(job, tmp_path)
    writer = LogWriter(node.log_path("job1", 1), max_log_bytes=10)
    writer.write(m.STDOUT, b"y" * 100)
    writer.close()
    notices, end = _streamed(node, follow=False)
    assert end["output_truncated"] is True
    assert notices == ["attempt 1: output truncated after 10 bytes; the last 4 KiB are kept in the job record"]


def _lost_then_whole(tmp_path: Path) -> _Node:
    """Attempt 1 ran on n0, killed mid-job: only a partial copy here; attempt 2 succeeded here."""
    job = _job(
        state=JobState.SUCCEEDED,
        reason=Reason.EXITED,
        attempt=2,
        node=ME,
        exit_code=0,
        attempt_nodes=("n0gone000000", ME),
        attempt_ends=("lost", "exit 0"),
    )
    node = _Node(job, tmp_path, gone=frozenset({"n0gone000000"}))
    _log(node.copy_path("job1", 1), b"a" * 33, whole=False)
    _log(node.log_path("job1", 2), b"b" * 50, whole=True)
    return node


def test_a_lost_attempts_incomplete_output_is_said_but_the_end_follows_the_attempt_that_succeeded_whole(
    tmp_path: Path,
) -> None:
    notices, end = _streamed(_lost_then_whole(tmp_path), follow=True, from_first=True)  # as `swarm run`
    assert notices == [
        "output of attempt 1 is incomplete: node n0, which ran it, cannot be reached, and the copy on this node"
        " ends after 33 bytes; the rest is missing"
    ]
    assert end["output_truncated"] is False  # `swarm run` exits 0: the result it printed is whole


def test_the_incomplete_attempt_asked_for_itself_still_ends_output_truncated(tmp_path: Path) -> None:
    notices, end = _streamed(_lost_then_whole(tmp_path), follow=False, attempt=1)  # `swarm logs --attempt 1`
    assert len(notices) == 1 and end["output_truncated"] is True


def test_an_attempt_handed_back_before_it_began_says_so_where_it_printed_nothing(tmp_path: Path) -> None:
    job = _job(
        state=JobState.SUCCEEDED,
        reason=Reason.EXITED,
        attempt=2,
        node=ME,
        exit_code=0,
        attempt_nodes=("n1busy000000", ME),
        attempt_ends=("handed back", "exit 0"),
    )
    node = _Node(job, tmp_path)
    _log(node.log_path("job1", 2), b"ran\n", whole=True)
    notices, end = _streamed(node, follow=False, attempt=1)  # `swarm logs --attempt 1`
    assert notices == ["attempt 1 never started: node n1 handed it back before it began (see `swarm show job1`)"]
    assert end["output_truncated"] is False
    assert _streamed(node, follow=False, attempt=2)[0] == []  # the one that ran: its output, nothing said
