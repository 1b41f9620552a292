"""The attached `swarm run` is its job's lifeline, as srun is: when it goes away, the job is cancelled.

The client cancels the job itself when it ends for any reason it sees (a closed pipe, SIGTERM,
SIGHUP, its own crash). This is the daemon's half, for the ends a client cannot see (``kill -9``,
a lost terminal): the attached stream holds a connection on the control socket, and when that
connection closes before the stream ended, the job is cancelled ``GRACE_S`` later, unless another
attached client took it over meanwhile (``swarm run --id`` of the same job) or it ended, or it
was submitted with ``keep_on_exit``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog

from swarmcompute.api import messages as m
from swarmcompute.api.protocol import frame
from swarmcompute.api.streaming import OutputStream
from swarmcompute.errors import SwarmError

if TYPE_CHECKING:
    from swarmcompute.api.node_api import NodeAPI
    from swarmcompute.state.job import JobSpec

log = structlog.get_logger(__name__)

GRACE_S = 3.0
"""How long a job outlives its attached client before it is cancelled."""
WHY = "its swarm run went away (submit with --keep-on-exit to keep it running)"


class Lifelines:
    """The attached clients of each job on this node, and the cancels their ends call for."""

    def __init__(self, daemon: NodeAPI) -> None:
        self._daemon = daemon
        self._attached: dict[str, int] = {}
        self._pending: set[asyncio.Task[None]] = set()

    async def attach(self, spec: JobSpec, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Stream the job to an attached client; cancel the job if the client goes first."""
        job_id = spec.id
        self.hold(job_id)
        finished = False
        shutting_down = False
        try:
            writer.write(frame(m.Submitted((job_id,))))
            await writer.drain()
            stream = asyncio.ensure_future(OutputStream(self._daemon, writer, job_id).run(follow=True, from_first=True))
            gone = asyncio.ensure_future(reader.read(1))  # a client sends nothing more: any return is its end
            try:
                await asyncio.wait((stream, gone), return_when=asyncio.FIRST_COMPLETED)
            finally:
                gone.cancel()
                if not stream.done():
                    stream.cancel()
                # A cancelled read leaves the reader only when its task runs again: wait for that,
                # or the next request's read finds it still there ("readexactly() called while
                # another coroutine is already waiting", seen after `swarm run` in a recover test).
                await asyncio.gather(gone, return_exceptions=True)
            if stream.done() and not stream.cancelled():
                stream.result()  # a write to a closed connection raises here
                finished = True
        except asyncio.CancelledError:
            shutting_down = True  # the daemon stops: its jobs are handed on, not cancelled
            raise
        finally:
            self.release(job_id, cancel=not (finished or shutting_down or spec.keep_on_exit))

    async def tie(self, ref: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A gang's or an array's attached client (``m.Tie``): hold them until it closes this
        connection; if it goes before the last of them ended (``kill -9`` of `swarm run --ranks`),
        they are cancelled ``GRACE_S`` later. (Before, a gang's or an array's `swarm run` killed
        with -9 left all of it running: `swarm cancel` was the only way.)"""
        self.hold(ref)
        shutting_down = False
        try:
            writer.write(frame(m.Reply(None)))
            await writer.drain()
            await reader.read(1)  # a client sends nothing more: any return is its end
        except asyncio.CancelledError:
            shutting_down = True  # the daemon stops: its jobs are handed on, not cancelled
            raise
        except ConnectionError:
            pass
        finally:
            self.release(ref, cancel=not shutting_down)

    def hold(self, job_id: str) -> None:
        """A client is attached to ``job_id`` (a `swarm run` on the control socket, or over HTTP)."""
        self._attached[job_id] = self._attached.get(job_id, 0) + 1

    def release(self, job_id: str, *, cancel: bool) -> None:
        """That client is gone; ``cancel``: it went before the job ended (and was not told to keep
        it): the job is cancelled ``GRACE_S`` later unless another client holds it by then."""
        left = self._attached.get(job_id, 1) - 1
        if left:
            self._attached[job_id] = left
        else:
            self._attached.pop(job_id, None)
        if cancel:
            task = asyncio.ensure_future(self._cancel_later(job_id))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _cancel_later(self, job_id: str) -> None:
        await asyncio.sleep(GRACE_S)
        table = self._daemon.table
        job = table.get(job_id)
        group = [job] if job is not None else table.gang(job_id) or table.array(job_id)  # (``tie``)
        still = [j.id for j in group if not j.state.is_terminal]
        if not still or self._attached.get(job_id):
            return
        log.info("job_client_gone", job_id=job_id, grace_s=GRACE_S)
        try:
            await self._daemon.cancel(still, WHY)
        except SwarmError as exc:  # no quorum, shutting down: the client's own cancel may still come
            log.warning("job_client_gone_cancel_failed", job_id=job_id, error=str(exc))
