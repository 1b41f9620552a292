"""Sending a job's output to one client of the control socket: every byte, at the client's pace.

An attempt's output is read from its log (``executor.logfile``) on the node that ran it: here,
straight from disk; elsewhere, by offset with the ``LogFetch``/``LogData`` peer messages; once
that node is gone, from a copy of the log another node kept (``node.log_copies``).
Nothing is buffered beyond one read: the next read waits until the client's socket took the last
one (``drain``), so a slow reader slows the stream down and never loses any of it.

What cannot be delivered whole is said, once, as a ``Notice`` naming what is missing, and the
final job record then carries ``output_truncated: true`` when it is the last attempt the stream
sent (the one a reader's exit status follows: a lost attempt whose job ran again and succeeded
is said, but `swarm run` of it exited 3 though the result it printed was whole):

- the bound on an attempt's log cut its output (the log's ``TRUNCATED`` marker frame);
- the node that ran an attempt cannot be reached and no live node holds a whole copy of its log
  (``node.log_copies``): the longest copy is sent, and said to be incomplete; with no copy at all,
  the job record's 4 KiB tail is sent instead when nothing else was (and said to be incomplete
  unless the record counts the attempt's output and the tail holds all of it: ``tail_is_whole``).

While a followed attempt waits for its node to pull its image, a ``Progress`` says how far the
pull has got whenever that changed (``executor.pull_progress``).

Which attempts: one (``attempt=N``); the latest (``swarm logs``); the latest and every later one
(``swarm logs -f``); or all of them from the first (``swarm run``). Between two attempts'
output an ``AttemptStart`` carries the line ``--- attempt 2 on n3 (after exit 1) ---``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from swarmcompute.api import messages as m
from swarmcompute.api.protocol import frame
from swarmcompute.errors import AttemptNotFoundError, ExecutorError
from swarmcompute.executor.logfile import END, TRUNCATED, read_chunks
from swarmcompute.executor.pull_progress import PROGRESS_INTERVAL_S, PullProgress
from swarmcompute.state.compact import is_stub
from swarmcompute.state.job import ACTIVE_STATES, Job, JobState, Reason, tail_is_whole

if TYPE_CHECKING:
    from swarmcompute.api.node_api import NodeAPI

READ_BYTES = 1024 * 1024
"""One local read; the next one waits until the client took this one."""
REMOTE_POLL_S = 0.2
"""How often a follower of an attempt running on another node asks it for new output."""
PENDING_NOTICE_S = 1.0
"""A first attempt not started after this long: `swarm run` is told why the job waits."""
_PLAIN_EXITS = (Reason.EXITED, Reason.EXIT_CODE)
"""Ends after which an attempt's log holds only what the job wrote (no line of swarm's own)."""
UNREACHABLE_TRIES = 3
"""Fetches (of up to 2 s each) before the log of an ended attempt on a live node counts as missing."""


class OutputStream:
    """One client's stream of one job's output, ended by a ``StreamEnd`` with the job record."""

    def __init__(self, daemon: NodeAPI, writer: asyncio.StreamWriter, job_id: str) -> None:
        self._daemon = daemon
        self._writer = writer
        self._job_id = job_id
        self._said_cut: set[int] = set()
        """The attempts said not to be whole (cut, or only partly reachable)."""
        self._sent: dict[int, int] = {}
        """Attempt -> the output bytes sent of it."""
        self._pull_said: PullProgress | None = None
        self._pull_said_at = -PROGRESS_INTERVAL_S
        self._pull_last_asked = False
        """The pull's last word was asked for after the attempt left ``assigned`` (once only)."""

    async def run(self, *, follow: bool, attempt: int | None = None, from_first: bool = False) -> None:
        daemon = self._daemon
        job = daemon.table.resolve(self._job_id)
        if attempt is not None and not 1 <= attempt <= job.attempt:
            had = f"it has had {job.attempt}" if job.attempt else "it has not started yet"
            raise AttemptNotFoundError(f"job {job.id} has no attempt {attempt}: {had} (see `swarm show {job.id}`)")
        event = daemon.job_event(self._job_id)
        try:
            first = attempt if attempt is not None else 1 if from_first else max(job.attempt, 1)
            n = first
            last = 0  # the last attempt streamed
            while True:
                begun = await self._begun(n, event, follow)
                if begun is None:
                    break
                if n > first:
                    await self._send(self._attempt_start(begun, n))
                await self._send_attempt(n, event, follow)
                last = n
                job = daemon.table.resolve(self._job_id)
                if n in job.truncated_attempts and n not in self._said_cut:
                    await self._unmarked_cut(job, n)
                if attempt is not None and not self._sent.get(n):
                    await self._never_began(job, n)
                if attempt is not None or (n >= job.attempt and (not follow or job.state.is_terminal)):
                    break
                n += 1
            job = daemon.table.resolve(self._job_id)
            view = daemon.job_view(job, with_output=False)
            if last:  # the attempt the reader ends on: an earlier one's loss was said as a note
                view["output_truncated"] = last in self._said_cut
            await self._send(m.StreamEnd(view))
        finally:
            daemon.release_job_event(self._job_id, event)

    async def _begun(self, n: int, event: asyncio.Event, follow: bool) -> Job | None:
        """The job once attempt ``n`` exists; None if it never will (the job ended) or we do not wait.

        A first attempt that does not start within ``PENDING_NOTICE_S`` is explained: a ``Notice``
        with why the job waits (``pending: needs 64 cpus; the largest node has 2``), again
        whenever that reason changes."""
        loop = asyncio.get_running_loop()
        waiting_since, said = loop.time(), ""
        while True:
            event.clear()
            job = self._daemon.table.resolve(self._job_id)
            if job.attempt >= n:
                return job
            if job.state.is_terminal or not follow:
                if job.attempt == 0 and not follow:  # `swarm logs`: no output at all; say why, not nothing
                    await self._send(m.Notice(self._not_started(job)))
                return None
            if n == 1 and loop.time() - waiting_since >= PENDING_NOTICE_S:
                message = str(self._daemon.job_view(job).get("message") or "")
                if message and message != said:
                    said = message
                    await self._send(m.Notice(f"pending: {message}"))
            try:
                await asyncio.wait_for(event.wait(), PENDING_NOTICE_S)
            except TimeoutError:
                pass

    def _not_started(self, job: Job) -> str:
        """Why ``swarm logs`` of a job that never started prints no output."""
        message = str(self._daemon.job_view(job).get("message") or job.state.value)
        if job.state.is_terminal:
            return f"job {job.id} never started: {message}"
        return f"job {job.id} has not started ({job.state.value}: {message}): `swarm logs -f {job.id}` waits for it"

    async def _send_attempt(self, n: int, event: asyncio.Event, follow: bool) -> None:
        """Send attempt ``n``'s output; following, until the attempt ended and all of it was sent.

        From the node that ran it (here, from disk) while it is alive; once it is gone, from the
        best copy of its log (``node.log_copies``), here or on a live node. An attempt handed back
        before it began has none to send (its node, if gone, is not missed)."""
        daemon = self._daemon
        if self._handed_back(daemon.table.resolve(self._job_id), n):
            return
        me = daemon.node_id
        offset = 0
        delivered = 0
        misses = 0
        copy: str | None = None  # once the node that ran it is gone: the node whose copy we read
        ended = False  # the log's end record was read: all of it was sent
        while True:
            event.clear()
            job = daemon.table.resolve(self._job_id)
            # Read after deciding whether the attempt still runs: an ended attempt whose read
            # found nothing new has been sent whole.
            running = n == job.attempt and job.state in ACTIVE_STATES
            node = job.node_of(n)
            local = node is None or node == me
            if running and follow and not delivered and job.state is JobState.ASSIGNED and job.spec.image:
                await self._pull_news(job, n, local)
            elif (
                self._pull_said is not None
                and not self._pull_said.done
                and not self._pull_last_asked
                and n == job.attempt
            ):
                self._pull_last_asked = True
                await self._pull_news(job, n, local, started=True)  # its last word, once
            if local:
                chunks, new_offset = self._read_local(daemon.log_path(self._job_id, n), offset)
                reached = True
            elif offset == 0 and self._said_nothing(job, n):
                return
            elif node is not None and not self._gone(node) and copy is None:
                chunks, new_offset, reached = await self._fetch(node, n, offset)
                if not reached:  # gone (before gossip says so, or since), or slow: a whole copy will do
                    found = await daemon.find_copy(job, n)
                    gone = self._gone(node) or misses + 1 >= UNREACHABLE_TRIES
                    if found is not None and (found[1] or gone):
                        copy = found[0]
                        continue
                    if self._gone(node):
                        continue  # no copy: the next round says what is missing
            else:
                if copy is None or self._gone(copy):
                    found = await daemon.find_copy(job, n)
                    copy = None if found is None else found[0]
                if copy is None:
                    chunks, new_offset, reached = [], offset, False
                elif copy == me:
                    chunks, new_offset = self._read_local(daemon.copy_path(self._job_id, n), offset)
                    reached = True
                else:
                    chunks, new_offset, reached = await self._fetch(copy, n, offset)
            if chunks:
                ended = ended or any(stream == END for stream, _ in chunks)
                delivered += await self._send_chunks(n, chunks)
                offset, misses = new_offset, 0
                continue
            if copy is not None and reached and not ended and not (running and follow):
                await self._partial_copy(n, node or "", copy, delivered)
                return
            if not reached:
                misses += 1
                if not (running and follow) and (misses >= UNREACHABLE_TRIES or self._gone(node)):
                    await self._missing(job, n, node or "", offset, delivered)
                    return
            elif not (running and follow):
                return
            try:
                await asyncio.wait_for(event.wait(), None if local else REMOTE_POLL_S)
            except TimeoutError:
                pass

    def _said_nothing(self, job: Job, n: int) -> bool:
        """Whether attempt ``n`` ended, its last, and wrote nothing at all: the job record counts
        no output (``Job.output_bytes`` 0; an empty tail alone says nothing: ``tail_is_whole``), so
        there is nothing to ask its node for. A `swarm run --array` of 1,000 `true` jobs on 3 nodes
        asks for 1,000 logs in turn, and asking the node that ran one cost 1.0 ms a job against 0.4
        for one that ran here."""
        if n != job.attempt or not job.state.is_terminal or job.exit_code is None or n in job.truncated_attempts:
            return False
        if job.reason not in _PLAIN_EXITS or job.signals or job.spec.warn_signal:
            return False  # swarm's own lines in its log (a timeout's SIGTERM, a signal sent) are no tail
        whole = self._daemon.whole_job(job)
        return not is_stub(whole) and whole.output_bytes == 0  # a stub's details (its count) are not here

    async def _pull_news(self, job: Job, n: int, local: bool, *, started: bool = False) -> None:
        """Say how far the pull of the attempt's image has got, when that changed (``Progress``):
        here, the executor wakes us at most once per ``PROGRESS_INTERVAL_S``; from another node,
        asked at every poll, at most one change per interval is said (and the last, ``done``).
        ``started``: the attempt left ``assigned`` before its ``done`` was said (a container that
        ended within one poll): asked once more, whatever the answer."""
        progress = await self._daemon.pull_progress(job, started=started)
        if progress is None or progress == self._pull_said:
            return
        now = asyncio.get_running_loop().time()
        if not local and not progress.done and now - self._pull_said_at < PROGRESS_INTERVAL_S:
            return  # a later poll says it
        self._pull_said, self._pull_said_at = progress, now
        where = self._node_name(job.node) if job.node else ""
        await self._send(m.Progress(job.id, n, progress.text(where), progress.done, progress.view()))

    async def _fetch(self, node: str, n: int, offset: int) -> tuple[list[tuple[int, bytes]], int, bool]:
        """The next chunks from ``node``'s log (or copy) of attempt ``n``, the offset after them,
        and whether the node answered."""
        data = await self._daemon.fetch_log(node, self._job_id, n, offset)
        if data is None:
            return [], offset, False
        if not data.found:
            return [], offset, True
        return list(data.chunks), data.next_offset, True

    def _read_local(self, path: Path, offset: int) -> tuple[list[tuple[int, bytes]], int]:
        try:
            return read_chunks(path, offset, limit_bytes=READ_BYTES)
        except FileNotFoundError:
            return [], offset  # no output (yet)
        except ExecutorError:
            return [], offset  # not a log: nothing we can send

    async def _partial_copy(self, n: int, node: str, copy: str, delivered: int) -> None:
        """Only an incomplete copy of attempt ``n``'s log is left: say so, once."""
        self._said_cut.add(n)
        held = "this node" if copy == self._daemon.node_id else f"node {self._node_name(copy)}"
        await self._send(
            m.Notice(
                f"output of attempt {n} is incomplete: node {self._node_name(node)}, which ran it, cannot be "
                f"reached, and the copy on {held} ends after {delivered} bytes; the rest is missing"
            )
        )

    async def _send_chunks(self, n: int, chunks: list[tuple[int, bytes]]) -> int:
        """Write the chunks, then wait until the client's socket took them; return the bytes sent."""
        sent = 0
        for stream, data in chunks:
            if stream == END:
                continue
            if stream == TRUNCATED:
                self._said_cut.add(n)
                text = data.decode("utf-8", "replace").strip().strip("[]").removeprefix("swarm: ")
                self._writer.write(frame(m.Notice(f"attempt {n}: {text}")))
                continue
            self._writer.write(frame(m.OutputChunk(self._job_id, n, stream, data)))
            sent += len(data)
        await self._writer.drain()
        self._sent[n] = self._sent.get(n, 0) + sent
        return sent

    async def _unmarked_cut(self, job: Job, n: int) -> None:
        """Attempt ``n``'s output was cut (its node committed so: the job record's
        ``output_truncated``) and the log holds no line saying why: its node could not write that
        line either, a full (or read-only) state directory, and writes it once space is back
        (``executor.logfile.append_marker``). Said here meanwhile: `swarm logs` exited 3 with
        nothing on stderr while the disk stayed full."""
        self._said_cut.add(n)
        node = job.node_of(n)
        where = f"node {self._node_name(node)}" if node else "its node"
        await self._send(
            m.Notice(
                f"attempt {n}: output truncated after {self._sent.get(n, 0)} bytes: {where} could not write the"
                " rest to its log (its state directory is full or read-only: `swarm status` there says);"
                " the last 4 KiB are kept in the job record"
            )
        )

    async def _missing(self, job: Job, n: int, node: str, offset: int, delivered: int) -> None:
        """The log of attempt ``n`` is out of reach: send what the job record kept, and say what is missing."""
        name = self._node_name(node)
        job = self._daemon.whole_job(job)  # a compacted job's tail is on disk (``state.compact``)
        tail = job.output_tail
        ended_here = job.state.is_terminal and n == job.attempt and job.exit_code is not None
        if offset == 0 and ended_here:
            if tail:
                await self._send_chunks(n, [(m.STDOUT, tail)])
            if tail_is_whole(job):
                return  # the record holds all of its output (none: there was none)
            if job.output_bytes is None:
                what = f"the {len(tail)} bytes kept in the job record are shown, which may not be all of it"
            else:
                what = f"only its last {len(tail)} of {job.output_bytes} bytes, kept in the job record, are shown"
        else:
            what = f"{delivered} bytes were sent; the rest is missing"
        self._said_cut.add(n)
        await self._send(
            m.Notice(f"output of attempt {n} is incomplete: node {name}, which holds it, cannot be reached; {what}")
        )

    async def _never_began(self, job: Job, n: int) -> None:
        """`swarm logs --attempt N` of an attempt its node handed back before it began (it had no
        room yet, a higher job came first): one line says why there is no output, where it printed
        nothing and exited 0 as if the attempt had run and been silent."""
        if self._handed_back(job, n):
            node = job.node_of(n)
            by = f"node {self._node_name(node)}" if node else "its node"
            await self._send(
                m.Notice(f"attempt {n} never started: {by} handed it back before it began (see `swarm show {job.id}`)")
            )

    def _handed_back(self, job: Job, n: int) -> bool:
        """Whether attempt ``n`` ended handed back by its node before it began (``attempt_ends``)."""
        if n >= job.attempt and job.state is not JobState.CANCELLED:
            return False  # the current attempt: under way, or it ran (a succeeded or failed job's last)
        ends = self._daemon.whole_job(job).attempt_ends
        return n <= len(ends) and ends[n - 1] == "handed back"

    def _attempt_start(self, job: Job, n: int) -> m.AttemptStart:
        node = job.node_of(n) or ""
        name = self._node_name(node) if node else "?"
        ends = self._daemon.whole_job(job).attempt_ends
        how = ends[n - 2] if 2 <= n <= len(ends) + 1 else ""
        after = f" (after {how})" if how else ""
        return m.AttemptStart(self._job_id, n, name, f"--- attempt {n} on {name}{after} ---")

    def _gone(self, node_id: str | None) -> bool:
        """Whether ``node_id`` is gone (``NodeAPI.node_gone``); a suspected node is asked, and may answer."""
        return node_id is not None and self._daemon.node_gone(node_id)

    def _node_name(self, node_id: str) -> str:
        return self._daemon.node_name(node_id)

    async def _send(self, msg: object) -> None:
        self._writer.write(frame(msg))
        await self._writer.drain()
