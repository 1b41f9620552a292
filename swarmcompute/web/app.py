"""The routes: REST under ``/api/v1`` (OpenAPI in ``openapi.py``), ``/health``, ``/ready``,
``/metrics``, the dashboard at ``/`` and the docs at ``/api/docs``.

Every ``/api`` request needs ``Authorization: Bearer TOKEN`` (``swarm api-token create``), from
loopback too; a read-only token may only read. Only the API's description (``/api/docs``,
``/api/v1/openapi.json``) and the dashboard's static files are open: they hold nothing of the
cluster. ``/health`` and ``/metrics`` are open unless the daemon was given ``--metrics-token``.

Requests are answered by ``ControlServer.answer`` (what the control socket answers) and streams
by ``OutputStream`` (what `swarm logs -f` reads), through ``FrameQueue``: one mechanism for both.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import hmac
import json
import os
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any, cast

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Send

from swarmcompute import codec, errors
from swarmcompute.api import messages as m
from swarmcompute.api import tokens
from swarmcompute.api.streaming import OutputStream
from swarmcompute.files.messages import CHUNK_BYTES, BlobPut, BlobsMissing, FileRead, JobFiles
from swarmcompute.files.store import valid_sha
from swarmcompute.limits import MAX_FILES, MAX_REQUEST_BYTES
from swarmcompute.state.api_tokens import ApiToken
from swarmcompute.state.compact import HELD
from swarmcompute.state.job import JobSpec, JobState
from swarmcompute.state.table import job_matcher, partly_submitted, submit_chunks
from swarmcompute.users import check_owner
from swarmcompute.web import problems
from swarmcompute.web.load import LoadHistory

if TYPE_CHECKING:
    from swarmcompute.api.node_api import NodeAPI
    from swarmcompute.api.server import ControlServer

log = structlog.get_logger(__name__)

MAX_PAGE = 1000
SUBMIT_CHUNK = 10_000
"""Jobs per committed batch, as ``Client.submit`` sends a large array."""
EVENTS_MIN_INTERVAL_S = 0.5
"""The dashboard's stream sends at most two updates a second, however busy the cluster."""
EVENTS_MAX_INTERVAL_S = 2.0
"""... and one at least every two seconds (load and memory change without a commit)."""
FIRST_EVENT_S = 0.2
"""How long a log request waits for its stream's first event before answering 200 and streaming:
errors at the start (no such attempt) come within it, as a problem response."""
KEEPALIVE_S = 15.0
"""A comment line on an event stream after this long without events (proxies and NAT keep it open)."""
TOKEN_RECHECK_S = 2.0
"""A followed log asks at least this often whether its token still stands: a revoked or expired
token's stream ends (an ``error`` event; a plain log cut short) within it."""
SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "docs.js": "text/javascript; charset=utf-8",
}

_STREAMS = {m.STDOUT: "stdout", m.STDERR: "stderr"}

Endpoint = Callable[[Request], Awaitable[Response]]


class FrameQueue:
    """What ``OutputStream`` writes to in place of a socket: each frame is decoded back into its
    message and queued; ``drain`` returns once the HTTP side has taken everything, so a slow HTTP
    reader slows the stream down exactly as a slow socket reader does."""

    def __init__(self) -> None:
        self.items: deque[Any] = deque()
        self.ready = asyncio.Event()
        self.taken = asyncio.Event()

    def write(self, data: bytes) -> None:
        self.items.append(codec.decode(data[4:]))
        self.ready.set()

    async def drain(self) -> None:
        while self.items:
            self.taken.clear()
            await self.taken.wait()


class Api:
    def __init__(
        self, daemon: NodeAPI, control: ControlServer, metrics_token: str | None, load: LoadHistory | None = None
    ) -> None:
        self.daemon = daemon
        self.control = control
        self.metrics_token = metrics_token
        self._metrics: Any = None
        self.load = load or LoadHistory(daemon)
        self.closing = asyncio.Event()
        """Set when the server stops: open streams end at once instead of being cut."""
        self._openapi: bytes | None = None
        self.assets = {name: _asset(name) for name in ASSETS}
        self.index = _asset("index.html")
        self.docs = _asset("docs.html")

    # -- authentication ---------------------------------------------------------------

    def auth(self, request: Request, *, write: bool = False) -> ApiToken:
        return tokens.authenticate(
            self.daemon.table.api_tokens, request.headers.get("authorization"), self.daemon.leader_time(), write=write
        )

    def open_check(self, request: Request) -> None:
        """``/health`` and ``/metrics``: open, unless ``--metrics-token`` was given."""
        if self.metrics_token is None:
            return
        header = request.headers.get("authorization", "")
        if not hmac.compare_digest(header.encode(), f"Bearer {self.metrics_token}".encode()):
            raise errors.ApiAuthError("this node's /metrics and /health need its --metrics-token as a Bearer token")

    async def ask(self, request: object, token: ApiToken) -> Any:
        return await self.control.answer(request, uid=token.uid)

    # -- open endpoints -----------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        self.open_check(request)
        status = self.daemon.status()
        me: dict[str, Any] = next((n for n in status["nodes"] if n["id"] == status["node_id"]), {})
        quorum = status["quorum"]
        body = {
            "status": "ok" if quorum["healthy"] else "no_quorum",
            "node_id": status["node_id"],
            "role": me.get("role"),
            "leader": status["leader"],
            "term": status["term"],
            "quorum": quorum,
        }
        return JSONResponse(body, status_code=200 if quorum["healthy"] else 503)

    async def ready(self, request: Request) -> Response:
        self.open_check(request)
        status = self.daemon.status()
        ok = status["leader"] is not None and status["quorum"]["healthy"]
        body = {"ready": ok, "leader": status["leader"], "reason": status["quorum"]["reason"]}
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics_text(self, request: Request) -> Response:
        self.open_check(request)
        if self._metrics is None:
            from swarmcompute.web.metrics import Metrics

            self._metrics = Metrics(self.daemon)
        body, media_type = self._metrics.render()
        return Response(body, media_type=media_type)

    async def dashboard(self, request: Request) -> Response:
        return Response(self.index, media_type="text/html; charset=utf-8", headers=_NO_STORE)

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.assets:
            raise HTTPException(404, f"no asset {name[:64]!r}")
        return Response(self.assets[name], media_type=ASSETS[name], headers=_NO_STORE)

    async def docs_page(self, request: Request) -> Response:
        return Response(self.docs, media_type="text/html; charset=utf-8", headers=_NO_STORE)

    async def openapi_json(self, request: Request) -> Response:
        if self._openapi is None:
            from swarmcompute.web.openapi import openapi_document

            self._openapi = json.dumps(openapi_document()).encode()
        return Response(self._openapi, media_type="application/json")

    # -- jobs ---------------------------------------------------------------------------

    async def submit(self, request: Request) -> Response:
        token = self.auth(request, write=True)
        body = await _read_json(request)
        many = isinstance(body, list) or (isinstance(body, dict) and "jobs" in body and "argv" not in body)
        items = body if isinstance(body, list) else body.get("jobs") if many and isinstance(body, dict) else [body]
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items) or not items:
            raise errors.InvalidJobSpecError(
                'the body is one job {"argv": [...], ...options} or {"jobs": [one or more of those]}'
            )
        items = [await self._with_stdin(item) for item in items]
        from swarmcompute.client import expanded_specs

        specs, ids = expanded_specs(items)
        await self._submit_chunks(specs, token)  # a gang's ranks in one; as the token's user
        body_out: dict[str, Any] = {"ids": ids}
        if not many:
            body_out["id"] = ids[0]
        return JSONResponse(body_out, status_code=201, headers={"Location": f"/api/v1/jobs/{ids[0]}"})

    async def _submit_chunks(self, specs: Sequence[JobSpec], token: ApiToken) -> None:
        """Submit ``specs`` in pieces of ``SUBMIT_CHUNK`` jobs (``submit_chunks``); a piece that
        fails after others went in says how many did and that the same submission adds the rest
        (``PartlySubmittedError``), not just the piece's error, which read as if nothing went in."""
        went = 0
        for chunk in submit_chunks(specs, SUBMIT_CHUNK):
            try:
                await self.ask(m.Submit(chunk), token)
            except errors.SwarmError as exc:
                if not went:
                    raise
                raise errors.PartlySubmittedError(partly_submitted(went, specs, str(exc))) from None
            went += len(chunk)

    async def _with_stdin(self, item: dict[str, Any]) -> dict[str, Any]:
        """An item whose ``stdin`` is text (what its job reads as its stdin, `swarm run --stdin`
        over ``--url``): the text stored here as a blob, as a node's client uploads it, and the
        item naming it (sha256, size)."""
        text = item.get("stdin")
        if not isinstance(text, str):
            return item
        try:
            data = text.encode("utf-8", "surrogateescape")  # bytes that are not UTF-8 come as \udcXX
        except UnicodeEncodeError:
            raise errors.ConfigError(
                "stdin is text, or bytes escaped as \\udc80-\\udcff (as RemoteClient sends them)"
            ) from None
        try:
            stored = await asyncio.to_thread(self.daemon.files.store.put_bytes, data)
        except OSError as exc:  # a full disk: said, as a client's upload would say it
            raise errors.FilesError(f"cannot keep the job's stdin on this node: {exc.strerror or exc}") from None
        return {**item, "stdin": list(stored)}

    # -- files (`swarm run --upload` and `swarm cp` over --url) --------------------------

    async def files_missing(self, request: Request) -> Response:
        """Which of these blobs (sha256s) this node lacks: a client uploads only those."""
        token = self.auth(request, write=True)
        body = await _read_json(request)
        shas = body.get("sha256") if isinstance(body, dict) else None
        if not isinstance(shas, list) or not all(isinstance(s, str) for s in shas) or len(shas) > MAX_FILES:
            raise errors.ConfigError(f'the body is {{"sha256": [...]}}: at most {MAX_FILES} sha256s')
        return JSONResponse({"missing": await self.ask(BlobsMissing(tuple(shas)), token)})

    async def files_put(self, request: Request) -> Response:
        """The body is blob ``sha``'s bytes: stored on this node once they hash to it (a job
        submitted through this node may then name it), in the control socket's chunks."""
        token = self.auth(request, write=True)
        sha = request.path_params["sha"]
        if not valid_sha(sha):
            raise errors.FilesError("a blob is named by the sha256 of its bytes (64 lowercase hex digits)")
        upload_id, offset, pending = os.urandom(8).hex(), 0, bytearray()
        try:
            async for data in request.stream():
                pending += data
                while len(pending) >= CHUNK_BYTES:
                    await self.ask(BlobPut(upload_id, sha, offset, bytes(pending[:CHUNK_BYTES])), token)
                    offset += CHUNK_BYTES
                    del pending[:CHUNK_BYTES]
            await self.ask(BlobPut(upload_id, sha, offset, bytes(pending), final=True), token)
        except BaseException as exc:  # the client went away, the bytes were wrong, a full disk: no part stays
            self.daemon.files.store.discard_part(sha, upload_id)
            if isinstance(exc, OSError):  # said, as a client's upload over the control socket says it
                raise errors.FilesError(f"cannot keep the file on this node: {exc.strerror or exc}") from None
            raise
        return JSONResponse({"sha256": sha, "size": offset + len(pending)}, status_code=201)

    async def job_files(self, request: Request) -> Response:
        """What a job's attempt left (`swarm cp JOB:`, ``Client.files``)."""
        token = self.auth(request)
        attempt = _int_param(request.query_params.get("attempt"), "attempt", 0, 1, 2**53) or None
        return JSONResponse(await self.ask(JobFiles(request.path_params["ref"], attempt), token))

    async def job_file(self, request: Request) -> Response:
        """One file a job's attempt left, its bytes (``?attempt=N``), read in the control socket's
        chunks from whichever node holds it; ``X-File-Mode`` says its mode (octal)."""
        token = self.auth(request)
        ref, path = request.path_params["ref"], request.path_params["path"]
        attempt = _int_param(request.query_params.get("attempt"), "attempt", 0, 1, 2**53) or None
        first = await self.ask(FileRead(ref, path, 0, attempt), token)  # errors before the status line
        size: int = first["size"]

        async def body() -> AsyncIterator[bytes]:
            chunk, offset = first, 0
            while True:
                yield chunk["data"]
                offset += len(chunk["data"])
                if offset >= size or not chunk["data"]:
                    return
                chunk = await self.ask(FileRead(ref, path, offset, attempt), token)

        name = path.rsplit("/", 1)[-1].replace('"', "")
        headers = {
            "Content-Length": str(size),
            "X-File-Mode": format(first["mode"] & 0o7777, "04o"),
            "Content-Disposition": f'attachment; filename="{name}"',
            **_NO_STORE,
        }
        return StreamingResponse(body(), media_type="application/octet-stream", headers=headers)

    async def list_jobs(self, request: Request) -> Response:
        token = self.auth(request)
        q = request.query_params
        states = [s.strip().lower() for v in q.getlist("state") for s in v.split(",") if s.strip()]  # as --state
        known = (*(s.value for s in JobState), HELD)
        bad = [s for s in states if s not in known]
        if bad:
            raise errors.ConfigError(f"unknown state {bad[0][:40]!r}: one of {', '.join(known)}")
        limit = _int_param(q.get("limit"), "limit", 50, 0, MAX_PAGE)
        offset = _int_param(q.get("offset"), "offset", 0, 0, 2**53)
        daemon = self.daemon
        match = job_matcher(q.get("name", ""), q.get("node", ""), q.get("user", ""), daemon.node_id_of)
        wanted = states
        if q.get("grouped", "") in ("1", "true", "yes"):  # `swarm jobs` over --url: an array is one line
            rows = daemon.table.newest_rows(len(daemon.table), wanted, match)
            views = await self.control.row_views(rows[offset : offset + limit], token.uid)
            return JSONResponse({"jobs": views, "total": len(rows), "offset": offset, "limit": limit})
        # the page alone is built (a finished job is held compact), not every job that matches: the
        # dashboard asks this again on each update while a filter is set
        page = daemon.table.recent(offset + limit, wanted or None, match)[offset:]
        total = daemon.table.count(wanted or None, match)
        views = await self.control.views(page, token.uid)  # as the token's user may see them
        return JSONResponse({"jobs": views, "total": total, "offset": offset, "limit": limit})

    async def get_job(self, request: Request) -> Response:
        token = self.auth(request)
        return JSONResponse(await self.ask(m.GetJob(request.path_params["ref"]), token))

    async def cancel(self, request: Request) -> Response:
        """One job's record; for an array id, the list of its elements' records."""
        token = self.auth(request, write=True)
        views = await self.ask(m.Cancel((request.path_params["ref"],)), token)
        return JSONResponse(views[0] if len(views) == 1 else views)

    async def cancel_selected(self, request: Request) -> Response:
        """`swarm cancel --state/--name/--node/--user/--all`: the open jobs of the token's user (every
        user's for root's) that the body selects, cancelled; their records under ``jobs``."""
        token = self.auth(request, write=True)
        body = await _read_json(request)
        texts = ("name", "node", "user")
        if (
            not isinstance(body, dict)
            or not all(isinstance(body.get(k, ""), str) for k in texts)
            or not isinstance(body.get("all", False), bool)
            or not isinstance(body.get("state", []), list)
            or not all(isinstance(x, str) for x in body.get("state", []))
        ):
            raise errors.ConfigError('the body is {"state": [...], "name": "", "node": "", "user": "", "all": false}')
        asked = m.Cancel(
            (), states=tuple(body.get("state", [])), every=body.get("all", False), **{k: body.get(k, "") for k in texts}
        )
        return JSONResponse({"jobs": await self.ask(asked, token)})

    async def hold(self, request: Request) -> Response:
        """`swarm hold`: ``POST /api/v1/jobs/{ref}/hold``, or ``/api/v1/jobs/hold`` with a body
        that names jobs or selects them; what became of each under ``jobs``."""
        return await self._picked(request, lambda refs, **picks: m.Hold(refs, True, **picks))

    async def release(self, request: Request) -> Response:
        """`swarm release`: as ``hold``."""
        return await self._picked(request, lambda refs, **picks: m.Hold(refs, False, **picks))

    async def requeue(self, request: Request) -> Response:
        """`swarm requeue`: as ``hold``, and ``{"hold": true}`` holds them once back."""
        return await self._picked(request, m.Requeue, {"hold": (bool, False)})

    async def signal(self, request: Request) -> Response:
        """`swarm signal`: as ``hold``, with ``{"signal": "USR1", "group": false}`` (no body: TERM
        to the main process)."""
        from swarmcompute.client import signal_of

        def asking(refs: tuple[str, ...], signal: str | int, **rest: Any) -> m.Signal:
            return m.Signal(refs, signal_of(signal), **rest)

        return await self._picked(request, asking, {"signal": ((str, int), "TERM"), "group": (bool, False)})

    async def _picked(
        self, request: Request, asking: Callable[..., Any], extras: dict[str, tuple[Any, Any]] | None = None
    ) -> Response:
        """A request about the jobs ``{ref}`` names, or the body names (``jobs``) or selects
        (``name``, ``user``, ``all``): ``asking(refs, name=, user=, every=, **extras)`` is its
        message; ``extras``: the other keys it takes in either form, each ``(type, default)``."""
        token = self.auth(request, write=True)
        ref = request.path_params.get("ref")
        body = await _read_json(request)
        body = {} if body is None and ref is not None else body
        picks = () if ref is not None else ("jobs", "name", "user", "all")
        texts = ("name", "user")
        extras = extras or {}
        if (
            not isinstance(body, dict)
            or not set(body) <= {*picks, *extras}
            or not all(isinstance(body.get(k, ""), str) for k in texts)
            or not isinstance(body.get("all", False), bool)
            or not all(isinstance(body.get(k, default), kind) for k, (kind, default) in extras.items())
            or not isinstance(body.get("jobs", []), list)
            or not all(isinstance(x, str) and x for x in body.get("jobs", []))
        ):
            which = "" if ref is None else " (or none)"
            shape = '{"jobs": ["ID", ...]} or {"name": "", "user": "", "all": false}' if ref is None else "{}"
            more = "".join(f', with "{k}": {json.dumps(default)}' for k, (_, default) in extras.items())
            raise errors.ConfigError(f"the body is {shape}{which}{more}")
        extra = {k: body.get(k, default) for k, (_, default) in extras.items()}
        if ref is not None:
            return JSONResponse({"jobs": await self.ask(asking((ref,), **extra), token)})
        named = {k: body.get(k, "") for k in texts}
        asked = asking(tuple(body.get("jobs", [])), every=body.get("all", False), **named, **extra)
        return JSONResponse({"jobs": await self.ask(asked, token)})

    async def update(self, request: Request) -> Response:
        """`swarm update`: ``POST /api/v1/jobs/{ref}/update`` with the changes (``Client.update``'s
        options), or ``/api/v1/jobs/update`` with them and jobs named or selected as ``hold``'s."""
        from swarmcompute.api.messages import UPDATE_OPTIONS
        from swarmcompute.client import job_changes

        token = self.auth(request, write=True)
        ref = request.path_params.get("ref")
        body = await _read_json(request)
        picks = () if ref is not None else ("jobs", "name", "user", "all")
        if (
            not isinstance(body, dict)
            or not set(body) <= {*UPDATE_OPTIONS, *picks}
            or not all(isinstance(body.get(k, ""), str) for k in ("name", "user"))
            or not isinstance(body.get("all", False), bool)
            or not isinstance(body.get("jobs", []), list)
            or not all(isinstance(x, str) and x for x in body.get("jobs", []))
        ):
            which = "" if ref is not None else ', with {"jobs": ["ID", ...]} or {"name": "", "user": "", "all": false}'
            raise errors.ConfigError(f"the body is the changes: {', '.join(UPDATE_OPTIONS)}{which}")
        changes = job_changes(**{k: v for k, v in body.items() if k in UPDATE_OPTIONS})
        jobs = (ref,) if ref is not None else tuple(body.get("jobs", []))
        asked = m.Update(jobs, changes, body.get("name", ""), body.get("user", ""), body.get("all", False))
        return JSONResponse({"jobs": await self.ask(asked, token)})

    async def rerun(self, request: Request) -> Response:
        """Run an ended job again (`swarm rerun`, ``swarmcompute.rerun``) as the token's user."""
        from swarmcompute.client import grouped_specs, new_job_id

        token = self.auth(request, write=True)
        body = await _read_json(request)
        body = {} if body is None else body
        if not isinstance(body, dict) or not isinstance(body.get("all", False), bool):
            raise errors.ConfigError('the body is empty or {"all": true|false, "job_id": "new id"}')
        new_id = body.get("job_id") or new_job_id()
        if not isinstance(new_id, str):
            raise errors.ConfigError("job_id must be text")
        made = await self.control.rerun(request.path_params["ref"], new_id, token.uid, every=body.get("all", False))
        specs = grouped_specs(made.spec, made.array, made.ranks, made.ranks_per_node if made.ranks else None)
        await self._submit_chunks(specs, token)  # as the token's user, as a submission's
        return JSONResponse(
            {"id": new_id, "ids": [new_id]}, status_code=201, headers={"Location": f"/api/v1/jobs/{new_id}"}
        )

    async def wait(self, request: Request) -> Response:
        token = self.auth(request)
        body = await _read_json(request)
        ids = body.get("ids") if isinstance(body, dict) else None
        timeout = body.get("timeout") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
            raise errors.ConfigError('the body is {"ids": [job ids], "timeout": seconds or null}')
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 <= timeout <= 1e9
        ):
            raise errors.ConfigError("timeout must be a number of seconds or null")
        asked = asyncio.ensure_future(self.ask(m.Wait(tuple(ids), None if timeout is None else float(timeout)), token))
        closing = asyncio.ensure_future(self.closing.wait())
        try:
            await asyncio.wait({asked, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # the node stops, or the client went away (this handler is cancelled): the wait goes
            closing.cancel()
            stopping = not asked.done()
            if stopping:
                asked.cancel()
        if stopping:  # the node stops: said now, not cut at the grace's end with a 500
            raise errors.NodeStoppingError("the node is stopping (a restart?): ask again once it is back")
        return JSONResponse({"jobs": asked.result()})

    async def logs(self, request: Request) -> Response:
        token = self.auth(request)
        q = request.query_params
        attempt = _int_param(q.get("attempt"), "attempt", 0, 1, 2**53) or None
        follow = q.get("follow", "") in ("1", "true", "yes")
        from_first = q.get("from") == "first"
        sse = "text/event-stream" in request.headers.get("accept", "") or q.get("format") == "sse"
        job = await self.control.resolve(request.path_params["ref"])
        check_owner(token.uid, job.spec.user, "read the output of", job.id)  # as `swarm logs` is checked
        events = self._output(job.id, follow=follow, attempt=attempt, from_first=from_first)
        first = asyncio.ensure_future(anext(events))
        await asyncio.wait({first}, timeout=FIRST_EVENT_S)
        if first.done() and first.exception() is not None:
            await events.aclose()
            first.result()  # an error at the start (no such attempt) is still a problem response
        items = self._paced(first, events, token)
        if q.get("attach") in ("1", "true"):  # a remote `swarm run`: its stream is the job's lifeline
            items = self._lifeline(items, job.id, job.spec.keep_on_exit)
        if sse:
            return StreamingResponse(_sse_output(items), media_type="text/event-stream", headers=SSE_HEADERS)
        # the job's bytes as it wrote them, which need not be UTF-8: no charset is claimed
        headers = {"Content-Type": "text/plain", "X-Content-Type-Options": "nosniff"}
        return CutShortResponse(_plain_output(items), headers=headers)

    async def _lifeline(self, items: AsyncIterator[Any], job_id: str, keep: bool) -> AsyncIterator[Any]:
        """``items``, holding the job as an attached client does (``api.lifeline``): a stream that
        ends before the job did (the client was killed, its host went away) cancels it."""
        lifelines = self.control.lifelines
        lifelines.hold(job_id)
        ended = False
        try:
            async for item in items:
                ended = ended or isinstance(item, m.StreamEnd)
                yield item
        finally:
            lifelines.release(job_id, cancel=not (ended or keep or self.closing.is_set()))

    async def _paced(
        self, pending: asyncio.Future[Any], events: AsyncGenerator[Any, None], token: ApiToken
    ) -> AsyncIterator[Any]:
        """The items of ``events`` (the first already asked for in ``pending``), with None after
        every ``KEEPALIVE_S`` of silence; it ends early when the server closes, and with
        ``ApiAuthError`` within ``TOKEN_RECHECK_S`` of ``token``'s revocation or expiry."""
        closing = asyncio.ensure_future(self.closing.wait())
        said = checked = time.monotonic()
        try:
            while True:
                next_check = max(0.0, checked + TOKEN_RECHECK_S - time.monotonic())
                await asyncio.wait({pending, closing}, timeout=next_check, return_when=asyncio.FIRST_COMPLETED)
                if closing.done():
                    return
                if time.monotonic() - checked >= TOKEN_RECHECK_S:  # not per chunk: a log is thousands
                    tokens.still_valid(self.daemon.table.api_tokens, token, self.daemon.leader_time())
                    checked = time.monotonic()
                if not pending.done():
                    if time.monotonic() - said >= KEEPALIVE_S:
                        said = time.monotonic()
                        yield None
                    continue
                said = time.monotonic()
                try:
                    item = pending.result()
                except StopAsyncIteration:
                    return
                yield item
                pending = asyncio.ensure_future(anext(events))
        finally:
            closing.cancel()
            pending.cancel()
            try:
                await events.aclose()
            except (RuntimeError, errors.SwarmError):  # closed while its anext was being cancelled
                pass

    async def _output(
        self, job_id: str, *, follow: bool, attempt: int | None, from_first: bool
    ) -> AsyncGenerator[Any, None]:
        queue = FrameQueue()
        stream = OutputStream(self.daemon, cast(asyncio.StreamWriter, queue), job_id)
        task = asyncio.ensure_future(stream.run(follow=follow, attempt=attempt, from_first=from_first))
        try:
            while True:
                if queue.items:
                    item = queue.items.popleft()
                    if not queue.items:
                        queue.taken.set()
                    yield item
                    continue
                if task.done():
                    task.result()
                    return
                queue.ready.clear()
                waiter = asyncio.ensure_future(queue.ready.wait())
                await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
        finally:
            task.cancel()

    # -- nodes and the cluster -------------------------------------------------------------

    async def nodes(self, request: Request) -> Response:
        self.auth(request)
        status = self.daemon.status()
        every = request.query_params.get("all", "") in ("1", "true", "yes")
        return JSONResponse({"nodes": status["nodes"] + (status.get("hidden_nodes", []) if every else [])})

    async def node(self, request: Request) -> Response:
        self.auth(request)
        ref = request.path_params["ref"]
        for node in self.daemon.status()["nodes"]:
            if ref in (node["id"], node["name"]):
                return JSONResponse(node)
        # the CLI's error (NodeNotFoundError), not the router's NotFound, which a remote client
        # reads as a route this node lacks (an older release)
        raise errors.NodeNotFoundError(f"no node {ref[:64]!r}: see GET /api/v1/nodes")

    async def drain(self, request: Request) -> Response:
        token = self.auth(request, write=True)
        return JSONResponse(await self.ask(m.DrainNode(request.path_params["ref"], True), token))

    async def undrain(self, request: Request) -> Response:
        token = self.auth(request, write=True)
        return JSONResponse(await self.ask(m.DrainNode(request.path_params["ref"], False), token))

    async def label(self, request: Request) -> Response:
        token = self.auth(request, write=True)
        body = await _read_json(request)
        labels = body.get("labels") if isinstance(body, dict) else None
        if not isinstance(labels, list) or not all(isinstance(x, str) and "=" in x for x in labels):
            raise errors.ConfigError('the body is {"labels": ["K=V", "K=", ...]} (K= removes K)')
        return JSONResponse(await self.ask(m.LabelNode(request.path_params["ref"], tuple(labels)), token))

    async def forget(self, request: Request) -> Response:
        token = self.auth(request, write=True)
        return JSONResponse(await self.ask(m.Forget(request.path_params["ref"]), token))

    async def prune(self, request: Request) -> Response:
        """``{"older_than": "2d" or seconds, "keep": N}``, both optional (the cluster's bounds)."""
        from swarmcompute.client import prune_bounds

        token = self.auth(request, write=True)
        body = await _read_json(request)
        if body is None:
            body = {}
        if not isinstance(body, dict) or set(body) - {"older_than", "keep"}:
            raise errors.ConfigError('the body is {"older_than": "2d", "keep": 1000}, both optional')
        older_than_s, keep = prune_bounds(body.get("older_than"), body.get("keep"))
        return JSONResponse(await self.ask(m.Prune(older_than_s, keep), token))

    async def cluster(self, request: Request) -> Response:
        self.auth(request)
        return JSONResponse(self.daemon.status())

    async def sd(self, request: Request) -> Response:
        """Prometheus ``http_sd_configs``: every node's host with the HTTP port it gossips it serves
        on; a node that says none (one of an older release) with this node's port, as before."""
        self.auth(request)
        status = self.daemon.status()
        mine = (status.get("http") or "").rpartition(":")[2]
        groups = []
        for node in status["nodes"]:
            host = node["address"].rpartition(":")[0]
            port = str(node.get("http_port") or mine)
            if host and port and node["state"] != "left":
                groups.append({"targets": [f"{host}:{port}"], "labels": {"swarm_node": node["name"] or node["id"]}})
        return JSONResponse(groups)

    async def events(self, request: Request) -> Response:
        """The dashboard's stream: ``status`` events (the cluster status and up to ``?jobs=`` jobs:
        the open ones first, newest first, then the newest ended ones; ``recent_jobs_total``: how
        many the cluster holds, so that a view can say it shows only some). The jobs' records are
        those the token's user may see (``ControlServer.views``): others' without their output and
        with their ``env`` values hidden, as ``GET /api/v1/jobs/{id}`` answers them."""
        token = self.auth(request)
        limit = _int_param(request.query_params.get("jobs"), "jobs", 100, 0, MAX_PAGE)
        events = self._status_events(limit, token)
        return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)

    async def _status_events(self, limit: int, token: ApiToken) -> AsyncIterator[str]:
        """Ends with an ``error`` event once ``token`` is revoked or expires (at most
        ``EVENTS_MAX_INTERVAL_S`` later): the dashboard, reconnecting, is answered 401 and asks
        for a token, where it had gone on showing the cluster to whoever held the revoked one."""
        daemon = self.daemon
        closing = asyncio.ensure_future(self.closing.wait())
        try:
            while not closing.done():
                try:
                    tokens.still_valid(daemon.table.api_tokens, token, daemon.leader_time())
                except errors.ApiAuthError as exc:
                    yield _sse_error(exc)
                    return
                status = daemon.status()
                status["recent_jobs"] = await self.control.views(daemon.table.open_first(limit), token.uid)
                status["recent_jobs_total"] = len(daemon.table)
                status["load_history"] = self.load.history()
                yield f"event: status\ndata: {json.dumps(status)}\n\n"
                sent = time.monotonic()
                changed = asyncio.ensure_future(daemon.wait_changed(EVENTS_MAX_INTERVAL_S))
                await asyncio.wait({changed, closing}, return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
                pause = EVENTS_MIN_INTERVAL_S - (time.monotonic() - sent)
                if pause > 0 and not closing.done():
                    await asyncio.wait({closing}, timeout=pause)
        finally:
            closing.cancel()


_NO_STORE = {"Cache-Control": "no-store"}


def _asset(name: str) -> bytes:
    return resources.files("swarmcompute.web").joinpath("assets", name).read_bytes()


async def _read_json(request: Request) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        raise errors.ConfigError(f"the body is over {MAX_REQUEST_BYTES} bytes: split the submission up")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            raise errors.ConfigError(f"the body is over {MAX_REQUEST_BYTES} bytes: split the submission up")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks) or b"null")
    except (ValueError, RecursionError):
        raise errors.ConfigError("the body is not JSON") from None


def _int_param(value: str | None, name: str, default: int, lo: int, hi: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise errors.ConfigError(f"{name} must be a whole number, got {value[:40]!r}") from None
    if not lo <= number <= hi:
        raise errors.ConfigError(f"{name} must be from {lo} to {hi}, got {number}")
    return number


class OutputCut(Exception):
    """A plain log's body did not get all of the output: ``CutShortResponse`` ends the transfer
    without its last chunk, so that the client sees it incomplete rather than a log's end."""


class CutShortResponse(StreamingResponse):
    """A ``StreamingResponse`` whose body may stop with ``OutputCut``: the connection closes
    without the chunked body's end (curl: "transfer closed with outstanding read data remaining";
    requests: ``ChunkedEncodingError``), where a body that simply ended would look whole."""

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        try:
            async for chunk in self.body_iterator:
                data = chunk if isinstance(chunk, bytes | memoryview) else chunk.encode(self.charset)
                await send({"type": "http.response.body", "body": data, "more_body": True})
        except OutputCut as exc:
            # no end of the body: uvicorn closes the connection (and logs "ASGI callable returned
            # without completing response"); this line says why
            log.warning("http_log_cut_short", why=str(exc))
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _plain_output(items: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    """Only the output's bytes, stdout and stderr interleaved, as the job wrote them. A plain body
    cannot say more, so one that did not get all of the output (an error on the way, the node
    stopping, a log its node lost part of) ends with ``OutputCut``: cut short, not whole (SSE
    readers get an `error` event, or no `end`, or ``output_truncated`` in it)."""
    try:
        async for item in items:
            if isinstance(item, m.OutputChunk):
                yield item.data
            elif isinstance(item, m.StreamEnd):
                if item.job.get("output_truncated"):
                    raise OutputCut("the log lacks part of the output")
                return
    except errors.SwarmError as exc:
        raise OutputCut(str(exc)) from None
    raise OutputCut("the stream ended before the job's output did (the node stops?)")


def _output_event(
    decoders: dict[tuple[int, int], codecs.IncrementalDecoder], attempt: int, stream: int, data: bytes, final: bool
) -> str:
    """The ``output`` event of ``data``, the next bytes of ``stream`` of ``attempt`` ("" when it
    holds only part of a character, kept for the next): its ``text``, decoded per stream (a
    character split between chunks comes whole in the second), and, only where that text is not
    the bytes it stands for (bytes that are not UTF-8, shown as U+FFFD), ``b64``: those bytes,
    base64, which a remote client writes as they are. ``final``: the stream's end."""
    decoder = decoders.setdefault((attempt, stream), codecs.getincrementaldecoder("utf-8")("replace"))
    held = decoder.getstate()[0]
    text = decoder.decode(data, final)
    if not text:
        return ""
    body: dict[str, Any] = {"attempt": attempt, "stream": _STREAMS.get(stream, str(stream)), "text": text}
    if "\ufffd" in text:
        whole = held + data
        raw = whole[: len(whole) - len(decoder.getstate()[0])]
        if text.encode() != raw:
            body["b64"] = base64.b64encode(raw).decode()
    return f"event: output\ndata: {json.dumps(body)}\n\n"


def _sse_error(exc: errors.SwarmError) -> str:
    """The ``error`` event a stream ends with: the problem's ``code`` and ``detail``."""
    return f"event: error\ndata: {json.dumps({'code': type(exc).__name__, 'detail': str(exc)})}\n\n"


async def _sse_output(items: AsyncIterator[Any]) -> AsyncIterator[str]:
    """``output`` (``attempt``, ``stream``, ``text``, and ``b64`` where the text is not the
    output's bytes: ``_output_event``), ``attempt``, ``notice`` and, last, ``end`` (the job, as
    ``GET /api/v1/jobs/{id}``); a comment line after each silence of ``KEEPALIVE_S``."""
    decoders: dict[tuple[int, int], codecs.IncrementalDecoder] = {}

    def rest() -> str:  # the bytes of a character cut short at an attempt's end; its decoders done
        left = "".join(_output_event(decoders, a, s, b"", True) for a, s in list(decoders))
        decoders.clear()
        return left

    yield ": stream\n\n"
    while True:
        try:
            item = await anext(items)
        except StopAsyncIteration:
            if left := rest():
                yield left
            return
        except errors.SwarmError as exc:
            yield _sse_error(exc)
            return
        match item:
            case None:
                yield ": keep-alive\n\n"
            case m.OutputChunk(attempt=attempt, stream=stream, data=data):
                if event := _output_event(decoders, attempt, stream, data, False):
                    yield event
            case m.AttemptStart():
                if left := rest():  # the attempts before it have ended
                    yield left
                body = {"attempt": item.attempt, "node": item.node, "text": item.text}
                yield f"event: attempt\ndata: {json.dumps(body)}\n\n"
            case m.Notice(text=text):
                yield f"event: notice\ndata: {json.dumps({'text': text})}\n\n"
            case m.Progress():
                body = {"attempt": item.attempt, "text": item.text, "done": item.done, "pull": item.pull}
                yield f"event: progress\ndata: {json.dumps(body)}\n\n"
            case m.StreamEnd(job=job):
                if left := rest():
                    yield left
                yield f"event: end\ndata: {json.dumps(job)}\n\n"


def _handle(endpoint: Endpoint) -> Endpoint:
    async def handler(request: Request) -> Response:
        try:
            return await endpoint(request)
        except errors.SwarmError as exc:
            return problems.from_error(exc)

    return handler


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
    return problems.problem(exc.status_code, code, str(exc.detail))


async def _server_error(request: Request, exc: Exception) -> Response:
    return problems.problem(500, "InternalError", "the node failed to answer: see its log")


def build_app(
    daemon: NodeAPI, control: ControlServer, *, metrics_token: str | None = None, load: LoadHistory | None = None
) -> Starlette:
    """``load``: the CPU chart sampled so far (``WebServer`` samples it before the app is built)."""
    api = Api(daemon, control, metrics_token, load)

    def route(path: str, endpoint: Endpoint, methods: list[str] | None = None) -> Route:
        return Route(path, _handle(endpoint), methods=methods or ["GET"])

    routes = [
        route("/", api.dashboard),
        route("/assets/{name}", api.asset),
        route("/health", api.health),
        route("/ready", api.ready),
        route("/metrics", api.metrics_text),
        route("/api/docs", api.docs_page),
        route("/api/v1/openapi.json", api.openapi_json),
        route("/api/v1/jobs", api.list_jobs),
        route("/api/v1/jobs", api.submit, ["POST"]),
        route("/api/v1/jobs/wait", api.wait, ["POST"]),
        route("/api/v1/jobs/prune", api.prune, ["POST"]),
        route("/api/v1/jobs/cancel", api.cancel_selected, ["POST"]),
        route("/api/v1/jobs/hold", api.hold, ["POST"]),
        route("/api/v1/jobs/release", api.release, ["POST"]),
        route("/api/v1/jobs/update", api.update, ["POST"]),
        route("/api/v1/jobs/signal", api.signal, ["POST"]),
        route("/api/v1/jobs/requeue", api.requeue, ["POST"]),
        route("/api/v1/jobs/{ref}", api.get_job),
        route("/api/v1/jobs/{ref}", api.cancel, ["DELETE"]),
        route("/api/v1/jobs/{ref}/cancel", api.cancel, ["POST"]),
        route("/api/v1/jobs/{ref}/rerun", api.rerun, ["POST"]),
        route("/api/v1/jobs/{ref}/hold", api.hold, ["POST"]),
        route("/api/v1/jobs/{ref}/release", api.release, ["POST"]),
        route("/api/v1/jobs/{ref}/update", api.update, ["POST"]),
        route("/api/v1/jobs/{ref}/signal", api.signal, ["POST"]),
        route("/api/v1/jobs/{ref}/requeue", api.requeue, ["POST"]),
        route("/api/v1/jobs/{ref}/logs", api.logs),
        route("/api/v1/jobs/{ref}/files", api.job_files),
        route("/api/v1/jobs/{ref}/files/{path:path}", api.job_file),
        route("/api/v1/files/missing", api.files_missing, ["POST"]),
        route("/api/v1/files/{sha}", api.files_put, ["PUT"]),
        route("/api/v1/nodes", api.nodes),
        route("/api/v1/nodes/{ref}", api.node),
        route("/api/v1/nodes/{ref}/drain", api.drain, ["POST"]),
        route("/api/v1/nodes/{ref}/undrain", api.undrain, ["POST"]),
        route("/api/v1/nodes/{ref}/labels", api.label, ["POST"]),
        route("/api/v1/nodes/{ref}/forget", api.forget, ["POST"]),
        route("/api/v1/cluster", api.cluster),
        route("/api/v1/sd", api.sd),
        route("/api/v1/events", api.events),
        # The seeds' shapes: the same handlers.
        route("/jobs", api.submit, ["POST"]),
        route("/jobs/{ref}", api.get_job),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    app.state.api = api
    return app
