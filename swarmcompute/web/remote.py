"""The Python API and `swarm` over the HTTP API, from a machine that runs no daemon.

    client = Client(url="http://node1.lan:7341", token="swarmapi1-...")   # or $SWARM_URL, $SWARM_API_TOKEN
    print(client.wait(client.submit("hostname"))["state"])

``RemoteClient`` is what ``Client(url=...)`` returns: the same methods, answered by any node's
``/api/v1`` (errors come back as the same ``SwarmError`` classes, from the problem's ``code``).
Plain ``http.client`` and ``json``: nothing of the server side is imported. What only a node's
owner may do (``recover``, ``shutdown``, API tokens) is refused: run it on a node.

Differences from the control socket: output arrives as text (decoded as UTF-8 on the node, so
bytes that are not UTF-8 become U+FFFD). A `swarm run` over HTTP is its job's lifeline as on a
node: its log stream asks ``attach=1``, so the node cancels the job ``api.lifeline.GRACE_S``
after the stream ends early (``kill -9`` of the client included), unless ``--keep-on-exit``.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import sys
import time
import urllib.parse
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO, cast

from swarmcompute import errors
from swarmcompute.api import messages as m
from swarmcompute.api.lean_client import hold_request, list_request, selectors
from swarmcompute.api.replay import again_when_back, reattached
from swarmcompute.client import (
    GROUPING,
    Client,
    _readable,
    _stdin_data,
    attached,
    error_from_reply,
    expanded_specs,
    grouped_specs,
    job_spec,
    job_specs,
    new_job_id,
    prune_bounds,
    submit_framed,
)
from swarmcompute.files.messages import CHUNK_BYTES
from swarmcompute.files.transfer import FilesLink
from swarmcompute.limits import MAX_FILES, MAX_REQUEST_BYTES
from swarmcompute.state.job import JobSpec
from swarmcompute.units import parse_begin, parse_duration

PAGE = 1000
"""The server's largest page of ``GET /api/v1/jobs``."""
_STREAMS = {"stdout": m.STDOUT, "stderr": m.STDERR}


class RemoteClient(Client):
    """A connection to a cluster through one node's HTTP API."""

    def __init__(
        self,
        state_dir: object = None,
        *,
        url: str | None = None,
        token: str | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        url = url or os.environ.get("SWARM_URL") or ""
        parsed = urllib.parse.urlsplit(url.strip())
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise errors.ConfigError(f"--url must be http://HOST:PORT or https://HOST:PORT, got {url[:80]!r}")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not 0 < timeout_s < 1e9:
            raise errors.ConfigError("timeout_s must be a positive number of seconds")
        self.url = f"{parsed.scheme}://{parsed.netloc}"
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname
        self._port = parsed.port
        self.token = token if token is not None else os.environ.get("SWARM_API_TOKEN")
        self.timeout_s = float(timeout_s)

    # -- jobs ---------------------------------------------------------------------------

    def submit(
        self,
        argv: Sequence[str] | str,
        *,
        array: str | None = None,
        ranks: int | None = None,
        ranks_per_node: int | None = None,
        **options: Any,
    ) -> str:
        if array is None and ranks is None and ranks_per_node is None:
            return self.submit_many([{"argv": argv, **options}])[0]
        from swarmcompute.arrays import parse_array

        checked, options = self._apart(options)
        spec = job_spec(argv, **checked)  # every check the local client makes, before the round trip
        shape: dict[str, Any]
        if array is not None and ranks is None and ranks_per_node is None:
            try:
                parse_array(array)  # not its elements: an array may have 100,000
            except ValueError as exc:
                raise errors.InvalidJobSpecError(str(exc)) from None
            shape = {"array": array}
        else:
            grouped_specs(spec, array, ranks, ranks_per_node)  # a gang's shape (and not an array too)
            shape = {"ranks": ranks, "ranks_per_node": ranks_per_node or 0}
        body = {"argv": argv if isinstance(argv, str) else list(argv), **options, "job_id": spec.id, **shape}
        return str(self._json("POST", "/api/v1/jobs", body)["id"])

    def submit_many(self, specs: Iterable[Mapping[str, Any]]) -> list[str]:
        specs = list(specs) if not isinstance(specs, (str, bytes, Mapping)) else specs
        apart = [self._apart(s) if isinstance(s, Mapping) else (s, s) for s in specs]
        if any(isinstance(s, Mapping) and any(k in s for k in GROUPING) for s in specs):  # arrays, gangs
            _, ids = expanded_specs(checked for checked, _sent in apart)  # every check the node makes, first
            items = [{**dict(sent), "job_id": i} for (_checked, sent), i in zip(apart, ids, strict=True)]
            return list(self._json("POST", "/api/v1/jobs", {"jobs": items})["ids"])  # one submission: a pipeline
        built = job_specs(checked for checked, _sent in apart)  # every check the local client makes, first
        if not built:
            return []
        bodies = {b.id: {**dict(sent), "job_id": b.id} for (_checked, sent), b in zip(apart, built, strict=True)}

        def post(part: tuple[JobSpec, ...]) -> list[str]:
            return list(self._json("POST", "/api/v1/jobs", {"jobs": [bodies[b.id] for b in part]})["ids"])

        return submit_framed(post, built, len(built))  # one request, unless over the body's bound

    def wait(self, job_ids: str | Sequence[str], timeout: float | str | None = None) -> Any:
        single = isinstance(job_ids, str)
        ids = [job_ids] if isinstance(job_ids, str) else list(job_ids)
        timeout_s = parse_duration(timeout, zero=True)

        def wait(left_s: float | None) -> Any:
            io = None if left_s is None else left_s + self.timeout_s
            body = {"ids": ids, "timeout": left_s}
            return self._json("POST", "/api/v1/jobs/wait", body, timeout_s=io, forever=io is None)

        jobs = again_when_back(wait, timeout_s, self.where)  # its node restarted meanwhile: asked again
        return jobs["jobs"][0] if single and len(jobs["jobs"]) == 1 else jobs["jobs"]  # an array id: all of it

    def rerun(self, job_id: str, *, every: bool = False, new_id: str | None = None) -> str:
        body = {"all": bool(every), "job_id": new_id or new_job_id()}
        return str(self._json("POST", f"/api/v1/jobs/{_quote(job_id)}/rerun", body)["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/api/v1/jobs/{_quote(job_id)}"))

    def jobs(
        self,
        limit: int = 50,
        states: Sequence[str] = (),
        *,
        grouped: bool = False,
        name: str = "",
        node: str = "",
        user: str = "",
    ) -> list[dict[str, Any]]:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit:
            raise errors.ConfigError(f"limit must be a whole number, got {limit!r}"[:120])
        found: list[dict[str, Any]] = []
        state = ",".join(states or ())
        asked = {k: v for k, v in zip(("name", "node", "user"), selectors(name, node, user), strict=True) if v}
        while len(found) < limit:
            size = min(PAGE, limit - len(found))
            query: dict[str, Any] = {
                "limit": size,
                "offset": len(found),
                **({"state": state} if state else {}),
                **asked,
            }
            if grouped:
                query["grouped"] = 1
            page = self._json("GET", "/api/v1/jobs?" + urllib.parse.urlencode(query))
            found.extend(page["jobs"])
            if len(page["jobs"]) < size:
                break
        return found

    def stream_logs(
        self, job_id: str, *, follow: bool = False, attempt: int | None = None, from_first: bool = False
    ) -> Iterator[Any]:
        query: dict[str, Any] = {"format": "sse", "follow": "1" if follow else "0"}
        if attempt is not None:
            query["attempt"] = attempt
        if from_first:
            query["from"] = "first"
        yield from self._events(f"/api/v1/jobs/{_quote(job_id)}/logs?" + urllib.parse.urlencode(query))

    def run(self, argv: Sequence[str] | str, **options: Any) -> Iterator[Any]:
        checked, options = self._apart(options)
        spec = job_spec(argv, **checked)
        body = {"argv": argv if isinstance(argv, str) else list(argv), **options, "job_id": spec.id}
        self._json("POST", "/api/v1/jobs", body)
        yield m.Submitted((spec.id,))
        path = f"/api/v1/jobs/{_quote(spec.id)}/logs?format=sse&follow=1&from=first&attach=1"
        stream = reattached(lambda: self._events(path), spec.id, self.where)
        yield from attached(stream, spec, self.cancel)

    @property
    def where(self) -> str:
        """The node this client talks to, for a line that says it went away."""
        return f"the node at {self.url}"

    def tie(self, ref: str) -> None:
        """No tie over HTTP: `kill -9` of an attached `swarm run --ranks` or `--array` through
        `--url` leaves what it ran running (README), where a node's own CLI ties it (``Client.tie``)."""
        return None

    def cancel(self, job_id: str) -> Any:
        answer = self._json("DELETE", f"/api/v1/jobs/{_quote(job_id)}")
        return answer if isinstance(answer, list) else dict(answer)  # an array id: its elements

    def cancel_selected(
        self, states: Sequence[str] = (), *, name: str = "", node: str = "", user: str = "", every: bool = False
    ) -> list[dict[str, Any]]:
        _, states = list_request(0, states)
        name, node, user = selectors(name, node, user)
        body = {"state": list(states), "name": name, "node": node, "user": user, "all": bool(every)}
        return list(self._json("POST", "/api/v1/jobs/cancel", body)["jobs"])

    def hold(self, *jobs: str, name: str = "", user: str = "", every: bool = False) -> list[dict[str, Any]]:
        return self._picked("hold", hold_request(True, jobs, name, user, every))

    def release(self, *jobs: str, name: str = "", user: str = "", every: bool = False) -> list[dict[str, Any]]:
        return self._picked("release", hold_request(False, jobs, name, user, every))

    def _picked(
        self, verb: str, asked: tuple[tuple[str, ...], bool, str, str, bool], more: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """``POST /api/v1/jobs/VERB`` of the jobs ``asked`` names or selects (``hold_request``),
        with ``more`` in the body: hold, release, requeue, signal."""
        refs, _, name, user, every = asked
        body = {"jobs": list(refs), "name": name, "user": user, "all": every, **(more or {})}
        return list(self._json("POST", f"/api/v1/jobs/{verb}", body)["jobs"])

    def update(
        self, *jobs: str, name: str = "", user: str = "", every: bool = False, **changes: Any
    ) -> list[dict[str, Any]]:
        from swarmcompute.client import changes_body, job_changes

        body = changes_body(job_changes(**changes))  # a start time read here, as for a submission
        refs, _, name, user, every = hold_request(True, jobs, name, user, every)
        body.update({"jobs": list(refs), "name": name, "user": user, "all": every})
        return list(self._json("POST", "/api/v1/jobs/update", body)["jobs"])

    def requeue(
        self, *jobs: str, hold: bool = False, name: str = "", user: str = "", every: bool = False
    ) -> list[dict[str, Any]]:
        return self._picked("requeue", hold_request(True, jobs, name, user, every), {"hold": bool(hold)})

    def signal(
        self,
        *jobs: str,
        signal: str | int = "TERM",
        group: bool = False,
        name: str = "",
        user: str = "",
        every: bool = False,
    ) -> list[dict[str, Any]]:
        from swarmcompute.client import signal_of

        asked = hold_request(True, jobs, name, user, every)
        return self._picked("signal", asked, {"signal": signal_of(signal), "group": bool(group)})

    # -- nodes --------------------------------------------------------------------------

    def drain(self, node: str, *, wait: bool | float | str = False) -> dict[str, Any]:
        row = dict(self._json("POST", f"/api/v1/nodes/{_node(node)}/drain"))
        if wait is False:
            return row
        return self._wait_empty(row["id"], None if wait is True else parse_duration(wait))

    def undrain(self, node: str) -> dict[str, Any]:
        return dict(self._json("POST", f"/api/v1/nodes/{_node(node)}/undrain"))

    def label(self, node: str, *labels: str) -> dict[str, Any]:
        body = {"labels": [str(x) for x in labels]}
        return dict(self._json("POST", f"/api/v1/nodes/{_node(node)}/labels", body))

    def forget(self, node: str) -> dict[str, Any]:
        return dict(self._json("POST", f"/api/v1/nodes/{_node(node)}/forget"))

    def prune(self, *, older_than: float | str | None = None, keep: int | None = None) -> dict[str, Any]:
        older_than_s, count = prune_bounds(older_than, keep)
        return dict(self._json("POST", "/api/v1/jobs/prune", {"older_than": older_than_s, "keep": count}, forever=True))

    # -- the cluster --------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return dict(self._json("GET", "/api/v1/cluster"))

    def ping(self, timeout_s: float = 1.0) -> bool:
        try:
            self._json("GET", "/api/v1/cluster", timeout_s=timeout_s)
            return True
        except errors.SwarmError:
            return False

    def recover(self) -> list[str]:
        raise errors.ConfigError("`swarm recover` runs on a node of the cluster, not over --url")

    def shutdown(self) -> None:
        raise errors.ConfigError("`swarm leave` runs on the node that leaves, not over --url")

    def create_api_token(
        self, name: str, *, read_only: bool = False, expires: float | str | None = None
    ) -> dict[str, Any]:
        raise errors.ConfigError("API tokens are made on a node (`swarm api-token create`), not over --url")

    def api_tokens(self) -> list[dict[str, Any]]:
        raise errors.ConfigError("API tokens are listed on a node (`swarm api-token list`), not over --url")

    def revoke_api_token(self, name: str) -> None:
        raise errors.ConfigError("API tokens are revoked on a node (`swarm api-token revoke`), not over --url")

    # -- plumbing -----------------------------------------------------------------------

    def _call(self, request: object, *, io_timeout_s: float | None = None, wait_forever: bool = False) -> Any:
        """What the HTTP API does not serve (files, the policy, ...): said, never a traceback."""
        raise errors.ConfigError(f"{_what(request)} needs a local daemon: run it on a node, not with --url")

    def policy(self) -> str:
        raise errors.ConfigError("the command policy is shown and set on a node (`swarm policy`), not over --url")

    def set_policy(self, text: str) -> str:
        return self.policy()

    def _stream(self, request: object) -> Iterator[Any]:
        raise errors.ConfigError(f"{_what(request)} needs a local daemon: run it on a node, not with --url")

    def _files_link(self) -> FilesLink:
        return HttpLink(self)

    def _stdin_shipped(self, readable: BinaryIO, max_bytes: int) -> Any:
        """``stdin=``'s bytes as the submission carries them (``stdin_sent``)."""
        from swarmcompute.files import transfer

        spooled, sha, size = transfer.spool(readable, max_bytes, "ship it as a file (upload=PATH) or raise max_upload")
        with spooled:
            return stdin_sent(self, spooled, sha, size)

    def _apart(self, options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """``options`` with their files and stdin shipped, apart as ``_stdin_apart`` gives them."""
        return _stdin_apart(self._ship(options))

    def _connection(self, timeout_s: float | None) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return cls(self._host or "", self._port, timeout=timeout_s)

    def _http(
        self,
        method: str,
        path: str,
        body: Any,
        timeout_s: float | None,
        accept: str,
        *,
        raw: Any = None,
        size: int = 0,
        conn: http.client.HTTPConnection | None = None,
    ) -> tuple[Any, Any]:
        """``raw``: a binary file sent as the body, ``size`` bytes from where it stands (a blob);
        ``conn``: a connection kept from an earlier request, whose answer was read to its end."""
        headers = {"Accept": accept}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = raw
        if raw is not None:
            headers["Content-Type"] = "application/octet-stream"
            headers["Content-Length"] = str(size)
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
            if len(data) > MAX_REQUEST_BYTES:  # refused here, before anything is sent
                raise errors.FrameTooLargeError(
                    f"the request is {len(data)} bytes, over the {MAX_REQUEST_BYTES} one request may carry"
                )
        if conn is not None:
            conn.timeout = timeout_s
            if conn.sock is not None:
                conn.sock.settimeout(timeout_s)
        else:
            conn = self._connection(timeout_s)
        try:
            if conn.sock is None:
                conn.connect()
        except TimeoutError:
            conn.close()
            raise errors.SwarmError(f"{self.url} did not answer within {timeout_s:g}s") from None
        except OSError as exc:
            conn.close()
            raise errors.SwarmError(f"cannot reach {self.url}: {exc}; check --url or $SWARM_URL") from None
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
        except TimeoutError:
            conn.close()
            raise errors.SwarmError(f"{self.url} did not answer within {timeout_s:g}s") from None
        except (OSError, http.client.HTTPException) as exc:  # reached, then gone: the node restarts?
            conn.close()
            raise errors.ProtocolError(f"lost the connection to {self.url} before its answer: {exc}") from None
        if response.status >= 400:
            raw = response.read()
            conn.close()
            raise _problem(response.status, raw, f"{method} {path.split('?')[0]}")
        return conn, response

    def _json(
        self, method: str, path: str, body: Any = None, *, timeout_s: float | None = None, forever: bool = False
    ) -> Any:
        conn, response = self._http(
            method, path, body, None if forever else timeout_s or self.timeout_s, "application/json"
        )
        try:
            return json.loads(response.read())
        except (ValueError, OSError) as exc:
            raise errors.ProtocolError(
                f"{self.url} answered {method} {path} with something that is not JSON: {exc}"
            ) from None
        finally:
            conn.close()

    def _events(self, path: str) -> Iterator[Any]:
        conn, response = self._http("GET", path, None, self.timeout_s, "text/event-stream")
        try:
            if conn.sock is not None:
                conn.sock.settimeout(None)  # a follow waits as long as the job runs
            name, data = "message", ""
            while True:
                line = response.readline()
                if not line:
                    raise errors.ProtocolError(f"{self.url} closed the stream before the job's end")
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                if text.startswith("event: "):
                    name = text[7:]
                elif text.startswith("data: "):
                    data += text[6:]
                elif not text and data:
                    event = _event(name, json.loads(data))
                    name, data = "message", ""
                    yield event
                    if isinstance(event, m.StreamEnd):
                        return
        except OSError as exc:
            raise errors.ProtocolError(f"lost the stream from {self.url}: {exc}") from None
        finally:
            conn.close()


class HttpLink(FilesLink):
    """``RemoteClient``'s files: ``POST /api/v1/files/missing``, ``PUT /api/v1/files/{sha256}``,
    ``GET /api/v1/jobs/{id}/files`` and ``.../files/{path}``. A blob goes in one request, streamed
    from its file; a kept file comes back the same way. The blobs and files of one shipment or
    copy go over one kept-alive connection, so that HTTPS makes one TLS handshake, not one a file
    (over plain HTTP on loopback, 2,000 small files took 2.9-3.9 s against 2.3-4.2 with a
    connection each, 3 alternating rounds: within noise); one the node closed meanwhile is opened
    again, once."""

    def __init__(self, client: RemoteClient) -> None:
        self._client = client
        self._conn: http.client.HTTPConnection | None = None

    def missing(self, shas: Sequence[str]) -> list[str]:
        missing: list[str] = []
        for start in range(0, len(shas), MAX_FILES):  # the request's bound
            body = {"sha256": list(shas[start : start + MAX_FILES])}
            missing += self._client._json("POST", "/api/v1/files/missing", body)["missing"]
        return missing

    def put(self, sha: str, f: BinaryIO) -> int:
        start = f.tell()
        size = os.fstat(f.fileno()).st_size - start

        def send(conn: http.client.HTTPConnection | None) -> tuple[Any, Any]:
            f.seek(start)
            timeout = max(self._client.timeout_s, 60.0)
            return self._client._http(
                "PUT", f"/api/v1/files/{sha}", None, timeout, "application/json", raw=f, size=size, conn=conn
            )

        conn, response = self._kept(send)
        response.read()
        self._keep(conn, response)
        return size

    def listing(self, ref: str, attempt: int | None) -> dict[str, Any]:
        query = f"?attempt={attempt}" if attempt else ""
        timeout = max(self._client.timeout_s, 60.0)  # the node may wait for the attempt's files to be kept
        return dict(self._client._json("GET", f"/api/v1/jobs/{_quote(ref)}/files{query}", timeout_s=timeout))

    def read(self, ref: str, attempt: int, entry: dict[str, Any], write: Callable[[bytes], Any]) -> int:
        client = self._client
        path = f"/api/v1/jobs/{_quote(ref)}/files/{urllib.parse.quote(entry['path'])}?attempt={attempt}"
        timeout = max(client.timeout_s, 60.0)
        conn, response = self._kept(
            lambda kept: client._http("GET", path, None, timeout, "application/octet-stream", conn=kept)
        )
        got = 0
        try:
            while data := response.read(CHUNK_BYTES):
                write(data)
                got += len(data)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise errors.ProtocolError(
                f"lost the connection to {client.url} while reading {entry['path']}: {exc}"
            ) from None
        except BaseException:  # the reader's own failure (a closed pipe): the answer was not read to its end
            conn.close()
            raise
        self._keep(conn, response)
        return got

    def _kept(self, ask: Callable[[http.client.HTTPConnection | None], tuple[Any, Any]]) -> tuple[Any, Any]:
        """``ask`` over the kept connection, and once more over a new one if the node had closed it."""
        kept, self._conn = self._conn, None
        if kept is None:
            return ask(None)
        try:
            return ask(kept)
        except errors.ProtocolError:  # lost before the answer: closed while idle, most likely
            return ask(None)

    def _keep(self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse) -> None:
        if response.will_close:
            conn.close()
        else:
            self._conn = conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


STDIN_OVER_URL = MAX_REQUEST_BYTES // 4
"""A job's stdin up to this much (4 MiB) goes in the submission's JSON (where each byte that is not
UTF-8 takes six), which a node of any release takes; more is uploaded first, as a file is."""


def stdin_sent(client: RemoteClient, spooled: BinaryIO, sha: str, size: int) -> Any:
    """What a submission over HTTP says of a job's stdin, read to its end into ``spooled``
    (``transfer.spool``): its bytes, or once over ``STDIN_OVER_URL`` the blob's (sha256, size),
    the blob uploaded to the node behind the URL first (``PUT /api/v1/files/{sha256}``)."""
    if size <= STDIN_OVER_URL:
        return spooled.read()
    from swarmcompute.files import transfer

    transfer.upload_spooled(client, spooled, sha)
    return [sha, size]


def _stdin_apart(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``options`` without ``stdin``, for the local checks, and with it as the text the node
    stores (``web.app``): bytes that are not UTF-8 go as surrogates JSON escapes, and come back
    the same bytes there."""
    if options.get("stdin") is None:
        return dict(options), dict(options)
    rest = {k: v for k, v in options.items() if k != "stdin"}
    if not _stdin_data(options["stdin"]):  # a blob's (sha256, size), uploaded already: the node checks it
        return rest, dict(options)
    data = _readable(options["stdin"]).read().decode("utf-8", "surrogateescape")
    return rest, {**options, "stdin": data}


def _event(name: str, data: dict[str, Any]) -> Any:
    if name == "output":
        # b64: the output's bytes where its text is not them (bytes that are not UTF-8), so that
        # they are written exactly as on a node; a node of an older release sends text alone
        raw = base64.b64decode(data["b64"]) if "b64" in data else data["text"].encode()
        return m.OutputChunk("", int(data["attempt"]), _STREAMS.get(data["stream"], m.STDOUT), raw)
    if name == "attempt":
        return m.AttemptStart("", int(data["attempt"]), str(data["node"]), str(data["text"]))
    if name == "notice":
        return m.Notice(str(data["text"]))
    if name == "progress":
        pull = data.get("pull")
        return m.Progress("", int(data["attempt"]), str(data["text"]), bool(data.get("done")), pull)
    if name == "end":
        return m.StreamEnd(data)
    if name == "error":
        raise error_from_reply(m.ErrorReply(str(data.get("code")), str(data.get("detail"))))
    return m.Notice(f"unexpected event {name[:40]!r}")


def _problem(status: int, raw: bytes, asked: str = "") -> errors.SwarmError:
    """The node's problem as its ``SwarmError``; a route it lacks (``asked``, ``METHOD /path``: a
    node of an older release) said so."""
    try:
        problem = json.loads(raw)
        if problem["code"] in ("NotFound", "MethodNotAllowed") and asked:
            return errors.ConfigError(
                f"the node does not serve {asked} (an older release?): upgrade it, or run this on a node"
            )
        return error_from_reply(m.ErrorReply(str(problem["code"]), str(problem["detail"])))
    except (ValueError, KeyError, TypeError):
        return errors.SwarmError(f"HTTP {status}: {raw[:200].decode('utf-8', 'replace')}")


def _what(request: object) -> str:
    name = type(request).__name__
    return "".join(f" {c.lower()}" if c.isupper() else c for c in name).strip()


def _quote(ref: object) -> str:
    if not isinstance(ref, str) or not ref:
        raise errors.ConfigError("a job reference is a job id, prefix or name")
    return urllib.parse.quote(ref, safe="")


def _node(ref: object) -> str:
    if not isinstance(ref, str) or not ref:
        raise errors.ConfigError("a node is named by its name, id or a unique id prefix")
    return urllib.parse.quote(ref, safe="")


def _follow_job(client: RemoteClient, run_cmd: Any, argv: Any, options: dict[str, Any], notes: list[str]) -> int:
    """Submit one job and print its output as it comes; its exit status. Stopped early by Ctrl-C,
    a signal or a closed pipe, it lets the exception through: the caller (``run_main``) cancels
    the job and says so (``cli.left_early``); the stream closes after that, when ``events`` goes."""
    return _printed(cast(Generator[Any, None, None], client.run(argv, **options)), run_cmd, notes)


def _followed_job(client: RemoteClient, run_cmd: Any, job_id: str) -> int:
    """Print a submitted job's output from its first attempt as it comes, its node's restarts
    waited out (``api.replay.followed``); its exit status, as ``_follow_job``."""
    from swarmcompute.api.replay import followed

    return _printed(followed(client, job_id), run_cmd)


def _printed(events: Iterator[Any], run_cmd: Any, notes: Sequence[str] = ()) -> int:
    """Print a job's stream (``Client.run``'s events) as `swarm run` does; its exit status.
    ``notes`` go to stderr once the node took the job (``run_cmd.waiting_notes``)."""
    from swarmcompute.cli.progress_line import ProgressLine

    status = 1
    pull = ProgressLine()
    for event in events:
        if isinstance(event, m.Progress):
            pull.show(event.text, done=event.done)
            continue
        pull.end()
        if isinstance(event, m.OutputChunk):
            out = sys.stdout if event.stream == m.STDOUT else sys.stderr
            out.buffer.write(event.data)
            out.flush()
        elif isinstance(event, (m.AttemptStart, m.Notice)):
            text = event.text if isinstance(event, m.AttemptStart) else f"swarm: {event.text}"
            print(run_cmd._safe(text), file=sys.stderr)
        elif isinstance(event, m.StreamEnd):
            status = run_cmd.exit_status(event.job)
        elif isinstance(event, m.Submitted):
            for note in notes:
                print(note, file=sys.stderr)
    return int(status)


def run_main(parsed: Any, array: str | None = None, gang: tuple[int, int] | None = None) -> int:
    """`swarm run` over the HTTP API (``parsed``: ``run_cmd.RunArgs``): stream the job's output,
    exit with its status; Ctrl-C, a closed pipe, SIGTERM and SIGHUP cancel it (``cli.left_early``).
    ``array`` (``--array``): submit the array, then (unless detached, which prints its id) print
    every element's output and say how they ended, as `swarm run --array` on a node does.
    ``gang`` (``--ranks``, ``--ranks-per-node`` or 0): submit the gang and follow it as on a node
    (``cli.gang_run``), each rank's output through its own connection."""
    import importlib

    run_cmd = importlib.import_module("swarmcompute.cli.run_cmd")  # typed loosely: the CLI is outside mypy's files
    _safe = run_cmd._safe
    options = {k: v for k, v in parsed.options.items() if k != "cwd_default"}
    ship = dict(getattr(parsed, "ship", None) or {})
    if ship.pop("stdin", None):  # in the submission, or uploaded first when large (``stdin_sent``)
        from swarmcompute.files.cli import piped_stdin
        from swarmcompute.files.manifest import DEFAULT_MAX_UPLOAD
        from swarmcompute.units import parse_size

        try:
            cap = parse_size(ship["max_upload"]) if "max_upload" in ship else DEFAULT_MAX_UPLOAD
            spooled, sha, size = piped_stdin(cap, "ship it as a file (--upload PATH) or raise --max-upload")
            with spooled:
                options["stdin"] = stdin_sent(RemoteClient(), spooled, sha, size)
        except errors.SwarmError as exc:
            print(f"swarm: {_safe(str(exc))}", file=sys.stderr)
            return 2
        except run_cmd._ShipError as exc:
            print(f"swarm: {_safe(str(exc))}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as exc:  # nothing submitted yet
            return int(run_cmd.unsubmitted(exc))
    if ship or run_cmd._may_ship(parsed.argv):  # through the node's HTTP API, as on a node
        from swarmcompute.files.cli import ship as ship_files

        try:
            ship_files(parsed, options, RemoteClient, stdin=False)
        except errors.SwarmError as exc:  # --url, the token, the node's answer
            print(f"swarm: {_safe(str(exc))}", file=sys.stderr)
            return 2
        except run_cmd._ShipError as exc:
            print(f"swarm: {_safe(str(exc))}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as exc:  # nothing submitted yet
            return int(run_cmd.unsubmitted(exc))
    status = _submitted(parsed, run_cmd, options, array, gang)
    if ship.get("download") and not parsed.detach:
        from swarmcompute.files.cli import download

        return download(parsed, options["job_id"], RemoteClient, status)
    return status


def _submitted(
    parsed: Any, run_cmd: Any, options: dict[str, Any], array: str | None, gang: tuple[int, int] | None
) -> int:
    """``run_main``'s submission and what follows it: the job's (array's, gang's) exit status."""
    _safe = run_cmd._safe
    keep = bool(options.get("keep_on_exit"))
    job_id = options.get("job_id") or new_job_id()  # ours (the array's or gang's id too): a signal can
    options["job_id"] = job_id  # cancel it even before the node answered the submission
    kind = "array" if array is not None else "gang" if gang is not None else "job"
    try:
        client = RemoteClient()
    except errors.SwarmError as exc:
        print(f"swarm: {_safe(str(exc))}", file=sys.stderr)
        return 2
    try:
        if not parsed.detach:
            run_cmd.ended_by_signals()
        if gang is not None:
            from swarmcompute.cli.gang_run import follow_gang

            ranks, per_node = gang
            gang_id = client.submit(parsed.argv, ranks=ranks, ranks_per_node=per_node, **options)
            return follow_gang(client, RemoteClient, gang_id, ranks, detach=parsed.detach, keep=keep)
        if array is not None:
            array_id = client.submit(parsed.argv, array=array, **options)
            if parsed.detach:
                print(array_id, flush=True)
                return 0
            from swarmcompute.arrays import parse_array
            from swarmcompute.cli.array_run import announce, print_elements

            indices = parse_array(array)[0]
            announce(array_id, len(indices))
            incomplete = print_elements(client, array_id, indices)
            return int(run_cmd.array_ended(array_id, client.wait(array_id), incomplete))
        if parsed.detach:
            print(client.submit(parsed.argv, **options))
            return 0
        begin_at = parse_begin(options.get("begin"), time.time())  # read again by the submission: valid then
        notes = run_cmd.waiting_notes(
            job_id, bool(options.get("hold")), begin_at, parse_duration(options.get("every")) or 0.0
        )
        return _follow_job(client, run_cmd, parsed.argv, options, notes)
    except (KeyboardInterrupt, BrokenPipeError, run_cmd._EndedBySignal) as exc:  # as on a node (``run_cmd._follow``)
        if parsed.detach:
            raise
        from swarmcompute.cli.left_early import left_early

        return left_early(client.cancel, job_id, kind, exc, keep=keep)
    except errors.SwarmError as exc:
        print(f"swarm: {_safe(str(exc))}", file=sys.stderr)
        return 2


def rerun_main(ref: str, new_id: str, *, every: bool, detach: bool) -> int:
    """`swarm --url URL rerun JOB` (``cli.rerun_cmd``): the node submits the rerun; this prints its
    id (``detach``), or follows it as `swarm run` over ``--url`` does: a job's output and exit
    code, an array's elements in index order, a gang's ranks. Ctrl-C, a closed pipe, SIGTERM and
    SIGHUP cancel it (``cli.left_early``)."""
    import importlib

    run_cmd = importlib.import_module("swarmcompute.cli.run_cmd")  # typed loosely, as ``run_main``
    _safe = run_cmd._safe
    kind = "job"
    try:
        client = RemoteClient()
        if not detach:
            run_cmd.ended_by_signals()
        job_id = client.rerun(ref, every=every, new_id=new_id)
        if detach:
            print(job_id, flush=True)
            return 0
        record = client.job(job_id)
        if record.get("kind") == "array":
            from swarmcompute.cli.array_run import announce, print_elements
            from swarmcompute.rerun import index_ranges

            kind, indices = "array", [e["index"] for e in record["elements"]]
            print(f"swarm: rerun of {_safe(ref)}: elements {index_ranges(indices)}", file=sys.stderr)  # as on a node
            announce(job_id, len(indices))
            incomplete = print_elements(client, job_id, indices)
            return int(run_cmd.array_ended(job_id, client.wait(job_id), incomplete))
        if record.get("gang"):
            from swarmcompute.cli.gang_run import follow_gang

            kind = "gang"
            print(f"swarm: rerun of {_safe(ref)}: {len(record['gang'])} ranks", file=sys.stderr)
            return follow_gang(client, RemoteClient, job_id, len(record["gang"]), detach=False)
        print(f"swarm: rerun of {_safe(ref)} as job {job_id}", file=sys.stderr)
        return _followed_job(client, run_cmd, job_id)
    except (KeyboardInterrupt, BrokenPipeError, run_cmd._EndedBySignal) as exc:
        from swarmcompute.cli.left_early import left_early

        return left_early(client.cancel, new_id, kind, exc, keep=False)
    except errors.SwarmError as exc:
        print(f"swarm: {_safe(str(exc))}", file=sys.stderr)
        return 2
