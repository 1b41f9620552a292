"""Following an attached job again after the connection to its node was lost, printing nothing twice.

The node a `swarm run` (or ``Client.run``) talks to may restart while the job runs: an upgrade,
`systemctl restart`, a crash systemd restarts 5 s later. The job runs on (a stopping node hands
its own attempts on; a node that died cannot have cancelled anything), so the follower waits up
to ``REATTACH_S`` for the node to be back and asks for the job's stream again. That stream starts
at the job's first attempt, so ``Replay`` counts what was delivered (output bytes per attempt and
stream, the attempts announced, the notices said) and lets through only what is new.

Three followers use it: the lean path of `swarm run` on a node (``cli.run_cmd._follow``, raw
frames), `swarm logs -f` (``cli.read_cmds._followed``, raw frames, from either client), and
``reattached`` here, for ``Client.run`` on a node and over HTTP (typed events,
``web.remote.RemoteClient``), which `swarm --url ... run` prints. A wait (`swarm wait`,
``Client.wait``) is simply asked again (``again_when_back``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

REATTACH_S = 30.0
"""How long a follower whose node closed the connection waits for it to be back (as long as
`swarm run` waits for a daemon to take a job)."""
REATTACH_POLL_S = 0.2


class Replay:
    """What was delivered of one job's stream, and which parts of a stream from the start again are new."""

    def __init__(self) -> None:
        self._delivered: dict[tuple[int, int], int] = {}
        self._seen: dict[tuple[int, int], int] = {}
        self._attempts = 0
        self._notices: set[str] = set()

    def again(self) -> None:
        """The stream starts over (a new connection)."""
        self._seen = {}

    def output(self, attempt: int, stream: int, data: bytes) -> bytes:
        """The part of this chunk not delivered yet (b"": all of it was)."""
        key = (attempt, stream)
        start = self._seen.get(key, 0)
        end = self._seen[key] = start + len(data)
        done = self._delivered.get(key, 0)
        if end <= done:
            return b""
        self._delivered[key] = end
        return data[done - start :] if done > start else data

    def attempt(self, n: int) -> bool:
        """Whether attempt ``n``'s start is news."""
        if n <= self._attempts:
            return False
        self._attempts = n
        return True

    def notice(self, text: str) -> bool:
        """Whether this notice was not said yet."""
        if text in self._notices:
            return False
        self._notices.add(text)
        return True

    def frame(self, tag: str, fields: Sequence[Any]) -> Sequence[Any] | None:
        """A raw frame of the stream (``(tag, fields)``, as the lean client reads them): its
        fields, an output frame's data cut to what is new; None when it holds nothing new."""
        if tag == "api.output":
            data = self.output(int(fields[1]), int(fields[2]), fields[3])
            return None if not data else fields if len(data) == len(fields[3]) else [*fields[:3], data]
        if tag == "api.attempt":
            return fields if self.attempt(int(fields[1])) else None
        if tag == "api.notice":
            return fields if self.notice(str(fields[0])) else None
        return fields


def lost_line(where: str, job_id: str) -> str:
    return f"lost {where} (restarting?): following job {job_id} again once it is back"


def back_line(where: str, job_id: str) -> str:
    return f"{where} is back; following job {job_id} again"


def not_back_line(where: str, job_id: str) -> str:
    return (
        f"{where} is not back after {REATTACH_S:g}s: `swarm logs -f {job_id}` follows job {job_id} (on any node),"
        f" `swarm cancel {job_id}` stops it"
    )


def reattached(open_stream: Callable[[], Iterator[Any]], job_id: str, where: str) -> Iterator[Any]:
    """The events of ``open_stream()`` (an attached job's stream from its start, ending with
    ``StreamEnd``); when the connection is lost (``ProtocolError``, or no node answering), a
    ``Notice`` says so, the stream is opened again once the node is back, within ``REATTACH_S``,
    and only what is new is yielded, after a ``Notice`` that it is back (a second ``Submitted``
    is not). Not back in time: ``ProtocolError`` with the one line (``not_back_line``)."""
    from swarmcompute.api import messages as m

    replay = Replay()
    events = open_stream()
    again = False
    while True:
        try:
            for event in events:
                if isinstance(event, m.OutputChunk):
                    data = replay.output(event.attempt, event.stream, event.data)
                    if not data:
                        continue
                    if len(data) < len(event.data):
                        event = m.OutputChunk(event.job_id, event.attempt, event.stream, data)
                elif isinstance(event, m.AttemptStart):
                    if not replay.attempt(event.attempt):
                        continue
                elif isinstance(event, m.Notice):
                    if not replay.notice(event.text):
                        continue
                elif isinstance(event, m.Submitted) and again:
                    continue
                yield event
                if isinstance(event, m.StreamEnd):
                    return
        except Exception as exc:
            if not lost(exc):
                raise
        else:
            return  # a stream that ended without its end: the caller's own check says so
        yield m.Notice(lost_line(where, job_id))
        events = reopen(open_stream, job_id, where)
        replay.again()
        again = True
        yield m.Notice(back_line(where, job_id))


def lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection to the node was lost (not a refusal, not a bug)."""
    from swarmcompute import errors

    if isinstance(exc, (errors.FrameTooLargeError, errors.ProtocolVersionError)):
        return False
    return isinstance(
        exc, (errors.ProtocolError, errors.DaemonNotRunningError, errors.NodeStoppingError, ConnectionError)
    )


def not_there_yet(exc: BaseException) -> bool:
    """Whether ``exc`` says the node is not back yet: no socket, refused, not answering (the
    clients' plain ``SwarmError``), or gone again. Anything else is an answer: a refusal, which is
    the caller's to say."""
    from swarmcompute import errors

    return lost(exc) or type(exc) is errors.SwarmError or isinstance(exc, OSError)


def when_back(call: Callable[[], T], since: float, job_id: str, where: str) -> T:
    """``call()`` again and again, ``REATTACH_POLL_S`` apart, until it does not fail for want of
    the node (``not_there_yet``); ``ProtocolError`` with the one line (``not_back_line``) once
    ``REATTACH_S`` have passed ``since`` (``time.monotonic``) the connection was lost."""
    from swarmcompute import errors

    while True:
        try:
            return call()
        except Exception as exc:
            if not not_there_yet(exc):
                raise
            if time.monotonic() >= since + REATTACH_S:
                raise errors.ProtocolError(not_back_line(where, job_id)) from None
            time.sleep(REATTACH_POLL_S)


def reopen(open_stream: Callable[[], Iterator[Any]], job_id: str, where: str) -> Iterator[Any]:
    """The stream opened again and its first event read (so the node is back), within ``REATTACH_S``."""

    def opened() -> Iterator[Any]:
        events = open_stream()
        return _chain(next(events), events)

    return when_back(opened, time.monotonic(), job_id, where)


def followed(client: Any, job_id: str) -> Iterator[Any]:
    """Every attempt of ``job_id``, followed to its end (``client.stream_logs``, ``from_first``),
    a restart of ``client``'s node meanwhile waited out (``reattached``): an attached array's
    element, a gang's rank."""
    return reattached(lambda: client.stream_logs(job_id, follow=True, from_first=True), job_id, client.where)


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def again_when_back(call: Callable[[float | None], T], timeout_s: float | None, where: str) -> T:
    """``call(timeout)``, a request that waits (`swarm wait`); when its connection is lost (the
    daemon restarts: an upgrade, `systemctl restart`), the same request again once the daemon is
    back, within ``REATTACH_S`` of the loss, with what is left of ``timeout_s``. Before, a script's
    `swarm wait` on a night's jobs failed with exit 2 when an upgrade restarted the daemon. A
    daemon not there at the first call is the caller's to say, as before."""
    from swarmcompute import errors

    started = time.monotonic()
    lost_at: float | None = None
    while True:
        left = timeout_s  # whole, as asked, until a loss; then what is left of it
        if timeout_s is not None and lost_at is not None:
            left = max(0.0, timeout_s - (time.monotonic() - started))
        try:
            return call(left)
        except Exception as exc:
            answered_then_gone = isinstance(exc, (errors.ProtocolError, errors.NodeStoppingError)) and lost(exc)
            if answered_then_gone:  # a connection, or a stopping node's answer
                lost_at = time.monotonic()
            elif lost_at is None or not not_there_yet(exc):
                raise
            if time.monotonic() - lost_at >= REATTACH_S:
                raise errors.ProtocolError(f"{where} went away and is not back after {REATTACH_S:g}s") from None
            time.sleep(REATTACH_POLL_S)
