"""`swarm run --notify URL`: the leader tells a URL when a job ended (Slurm's ``--mail-type=END``).

The table keeps what is owed (``JobTable.owed_notices``: a job with a ``notify`` URL that ended,
added as it ends, on every replica) until a ``NoticesSent`` entry says it went out or was given
up. Only the leader sends: once a second (and as entries apply) it starts a POST for each owed
notice not already on its way, at most ``MAX_AT_ONCE`` at a time, each in a thread of its own
(``urllib``: no event-loop time while a slow server answers, and no wait for it when the daemon
stops). A notice that fails is tried again after ``RETRY_DELAYS_S`` and then given up (at once
when the server refused it: an HTTP 4xx other than 429, which no retry mends); either way the
leader proposes ``NoticesSent``, and a given up one keeps its reason (``JobTable.notice_errors``:
`swarm show` says it). Should that proposal fail, the leader proposes it again, not the POST.

At least once: a leader that sent a notice and lost its leadership before ``NoticesSent``
committed leaves it owed, and the next leader sends it again. Nothing is lost with a node, and a
receiver may see a notice twice around a failover (``id`` tells them apart).

What is sent: a JSON object with the job's ``id``, ``name``, ``state``, ``exit_code``,
``reason``, ``message``, ``node`` (its name), ``user``, ``attempt``, ``submitted_at``,
``started_at``, ``finished_at``, ``runtime_s`` and ``text``, a one-line summary, which chat
webhooks show (``content`` carries it too, for Discord), and a ``Title`` header with it for ntfy.
Never the command, its environment or its output: they may hold secrets.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import TYPE_CHECKING, Any

import structlog

from swarmcompute.errors import NotLeaderError, SwarmError
from swarmcompute.state.commands import NoticesSent
from swarmcompute.state.job import Job
from swarmcompute.units import format_duration

if TYPE_CHECKING:
    from swarmcompute.node.daemon import Daemon

log = structlog.get_logger(__name__)

MAX_AT_ONCE = 8
"""Notices on their way at once (each holds a thread while its server answers)."""
TIMEOUT_S = 10.0
"""How long one POST may take, connecting included."""
RETRY_DELAYS_S = (2.0, 10.0)
"""A failed notice is tried again after these pauses, then given up (three tries in all)."""
MAX_ERROR_CHARS = 200


class Notices:
    """The leader's side of ``--notify`` (see the module doc)."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._sending: dict[str, asyncio.Task[None]] = {}
        self._outcomes: dict[str, str] = {}
        """What this node's POST of a notice came to ("" sent, else why not), until the table no
        longer owes it: a ``NoticesSent`` that failed to commit is proposed again, not the POST."""

    def maintenance(self) -> None:
        """On the leader: start sending what is owed and not on its way (cheap when nothing is)."""
        table = self._daemon.table
        if self._outcomes:
            self._outcomes = {j: e for j, e in self._outcomes.items() if j in table.owed_notices}
        if not table.owed_notices or not self._daemon.committer.raft.is_leader:
            return
        for job_id, url in list(table.owed_notices.items()):
            if len(self._sending) >= MAX_AT_ONCE:
                break
            if job_id not in self._sending:
                self._sending[job_id] = asyncio.get_running_loop().create_task(self._send(job_id, url))

    async def stop(self) -> None:
        tasks = list(self._sending.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _send(self, job_id: str, url: str) -> None:
        daemon = self._daemon
        try:
            job = daemon.table.get(job_id)
            error: str | None = self._outcomes.get(job_id, "the job is gone from the table") or None
            if job is not None and job_id not in self._outcomes:
                payload = self.payload(job)
                for delay in (0.0, *RETRY_DELAYS_S):
                    await asyncio.sleep(delay)
                    error = await _posted(url, payload)
                    if error is None or (error.startswith("HTTP 4") and not error.startswith("HTTP 429")):
                        break
                    log.info("notice_not_sent", job_id=job_id, host=_host(url), error=error)
                if error is None:
                    log.info("notice_sent", job_id=job_id, host=_host(url))
                else:
                    log.warning("notice_given_up", job_id=job_id, host=_host(url), error=error)
            self._outcomes[job_id] = error or ""
            await daemon.committer.propose([NoticesSent((job_id,), error or "", time.time())])
        except NotLeaderError:
            pass  # the next leader sends it (again): at least once
        except SwarmError as exc:
            log.warning("notice_not_recorded", job_id=job_id, error=str(exc))
        finally:
            self._sending.pop(job_id, None)

    def payload(self, job: Job) -> dict[str, Any]:
        """What is POSTed for ``job`` (see the module doc)."""
        view = self._daemon.job_view(job)
        node = self._daemon.node_name(job.node) if job.node else None
        runtime = None
        if view["started_at"] is not None and view["finished_at"] is not None:
            runtime = round(max(view["finished_at"] - view["started_at"], 0.0), 3)
        text = summary(view, node, runtime)
        keys = ("id", "name", "state", "exit_code", "reason", "message", "user", "attempt")
        return {
            **{k: view[k] for k in keys},
            "node": node,
            "submitted_at": view["submitted_at"],
            "started_at": view["started_at"],
            "finished_at": view["finished_at"],
            "runtime_s": runtime,
            "text": text,
            "content": text,
        }


def _posted(url: str, payload: dict[str, Any]) -> asyncio.Future[str | None]:
    """``post_json`` in a daemon thread of its own: a stopping daemon does not wait for a server
    that takes its time (``asyncio.to_thread``'s pool is joined as the loop closes)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[str | None] = loop.create_future()

    def answered(error: str | None) -> None:
        if not done.done():
            done.set_result(error)

    def run() -> None:
        error = post_json(url, payload, TIMEOUT_S)
        try:
            loop.call_soon_threadsafe(answered, error)
        except RuntimeError:
            pass  # the loop closed meanwhile: the daemon stopped

    threading.Thread(target=run, name="swarm-notice", daemon=True).start()
    return done


def _host(url: str) -> str:
    """The host of a notice's URL, for the log (the rest of a webhook's URL is its secret)."""
    return url.partition("://")[2].split("/", 1)[0].rpartition("@")[2]


def summary(view: dict[str, Any], node: str | None, runtime_s: float | None) -> str:
    """``swarm: job train (3f2a01b2c4d5) failed with exit 1 on desk after 2.1h``."""
    who = f"{view['name']} ({view['id']})" if view["name"] else view["id"]
    how = view["state"]
    if view["state"] == "failed" and view["exit_code"] is not None:
        how += f" with exit {view['exit_code']}"
    where = f" on {node}" if node else ""
    took = f" after {format_duration(runtime_s)}" if runtime_s is not None else ""
    return f"swarm: job {who} {how}{where}{took}"


def post_json(url: str, payload: dict[str, Any], timeout_s: float) -> str | None:
    """POST ``payload`` as JSON to ``url``; None when answered 2xx, else why not, in a few words."""
    import urllib.error
    import urllib.request

    from swarmcompute import __version__

    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": f"swarmcompute/{__version__}",
            "Title": _header_text(payload["text"]),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:  # noqa: S310 (http(s) only: limits)
            status = answer.status
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}"[:MAX_ERROR_CHARS]
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return str(reason)[:MAX_ERROR_CHARS] or type(exc).__name__
    return None if 200 <= status < 300 else f"HTTP {status}"


def _header_text(text: str) -> str:
    """``text`` as an HTTP header value: itself when ASCII, else one RFC 2047 encoded word
    (``=?UTF-8?B?...?=``, which ntfy decodes): a job named ``train-ü`` read ``train-?``."""
    if text.isascii():
        return text
    import base64

    return "=?UTF-8?B?" + base64.b64encode(text.encode("utf-8", "surrogateescape")).decode() + "?="
