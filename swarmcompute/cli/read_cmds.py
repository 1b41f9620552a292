"""`swarm status`, `jobs` (and `ps`), `show`, `logs`, `wait`, `cancel` and `rerun`: one body each, run by
the lean path here and by the typer commands of ``cli.app`` alike.

The `swarm` entry point hands these commands to ``main`` before it imports typer (as it hands
`swarm run` to ``run_cmd``): typer, click and pydantic cost about 100 ms of a 150-240 ms
`swarm status`. ``main`` parses the commands' options as ``cli.app`` declares them (the click
grammar: options anywhere, ``--opt=value``, ``-n5``, ``--`` ends options, the last of a repeated
option wins, ``--state-dir`` from ``$SWARM_STATE_DIR``) and returns None for anything else: help,
an unknown option, a missing argument, a value it does not read the way typer would. The typer
app then runs, so help and usage errors read exactly as before. A local daemon is asked through
``api.lean_client`` (msgpack frames, no codec); ``--url`` (or ``$SWARM_URL``) goes through
``Client`` over HTTP as before. Output, errors and exit codes are the same on both paths
(``tests/e2e/test_lean_read_commands.py`` runs both against a daemon and compares bytes).

Measured on this 2-core machine (benchmarks/read_commands.py, interleaved rounds): `swarm status`
p50 fell from about 150 ms to about that of `swarm run -- true`.
"""

from __future__ import annotations

import os
import sys

from swarmcompute.cli.rerun_cmd import rerun

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time on this path; annotations stay strings
    from collections.abc import Callable, Iterator, Sequence
    from typing import Any

    from swarmcompute.api.lean_client import LeanClient
    from swarmcompute.client import Client

OUTPUT_INCOMPLETE = 3
"""`swarm logs` (and `swarm run` of a job that succeeded) when some output could not be delivered."""

# option -> (destination, kind, repeatable); kind: "flag", "text" or "int". As cli.app declares them.
_STATE_DIR = {"--state-dir": ("state_dir", "text", False)}
_JSON = {"--json": ("as_json", "flag", False)}
_LIST = {
    "--limit": ("limit", "int", False),
    "-n": ("limit", "int", False),
    "--state": ("state", "text", True),
    "--elements": ("elements", "flag", False),
}
_SELECT = {
    "--name": ("name", "text", False),
    "--node": ("node", "text", False),
    "--user": ("user", "text", False),
}
_CANCEL = {**_SELECT, "--state": ("state", "text", True), "--all": ("every", "flag", False)}
_LOGS = {
    "--follow": ("follow", "flag", False),
    "-f": ("follow", "flag", False),
    "--attempt": ("attempt", "int", False),
    "--raw-path": ("raw_path", "flag", False),
    "--rank": ("rank", "int", False),
}
GRAMMAR: dict[str, tuple[dict[str, tuple[str, str, bool]], str | None, str]] = {
    # command: (options, the argument's name or None, how many values it takes: "0", "1", "1+", "0+")
    "status": ({**_STATE_DIR, **_JSON}, None, "0"),
    "jobs": ({**_STATE_DIR, **_JSON, **_LIST, **_SELECT}, None, "0"),
    "ps": ({**_STATE_DIR, **_JSON, **_LIST, **_SELECT}, None, "0"),
    "show": ({**_STATE_DIR, **_JSON}, "job", "1"),
    "logs": ({**_STATE_DIR, **_LOGS}, "job", "1"),
    "wait": ({**_STATE_DIR, "--timeout": ("timeout", "text", False), **_JSON}, "jobs", "1+"),
    "cancel": ({**_STATE_DIR, **_CANCEL}, "jobs", "0+"),  # none: `swarm cancel --all`
    "rerun": (
        {
            **_STATE_DIR,
            "--detach": ("detach", "flag", False),
            "-d": ("detach", "flag", False),
            "--all": ("every", "flag", False),
            "--id": ("job_id", "text", False),
        },
        "job",
        "1",
    ),
}
_GLOBAL = {"--url": "SWARM_URL", "--api-token": "SWARM_API_TOKEN", "--state-dir": "SWARM_STATE_DIR"}
"""The app's own options before the command (``cli.app._remote``): each sets its variable."""


def main(args: Sequence[str]) -> int | None:
    """Run a read command from the command line; None when it is not one, or when typer should
    answer (help, a usage error)."""
    args = list(args)
    if os.environ.get("_SWARM_COMPLETE"):  # a shell asks typer to complete a word
        return None
    env: dict[str, str] = {}
    i = 0
    while i < len(args) and args[i].startswith("-"):
        name, eq, value = args[i].partition("=")
        if name not in _GLOBAL:
            return None
        if not eq:
            if i + 1 >= len(args):
                return None
            i += 1
            value = args[i]
        env[_GLOBAL[name]] = value
        i += 1
    if i >= len(args) or args[i] not in GRAMMAR:
        return None
    command = args[i]
    parsed = parse(command, args[i + 1 :])
    if parsed is None:
        return None
    for variable, value in env.items():
        if value:  # as the app's callback: an empty --url leaves $SWARM_URL as it is
            os.environ[variable] = value
    try:
        return COMMANDS[command](**parsed)
    except KeyboardInterrupt:  # as typer: exit 130, nothing said
        return 130
    except BrokenPipeError:  # the reader went away (`swarm jobs | head`): exit 1, as typer
        return 1


def parse(command: str, args: Sequence[str]) -> dict[str, Any] | None:
    """``command``'s keyword arguments from ``args``; None for anything typer should answer."""
    options, argument, arity = GRAMMAR[command]
    values: dict[str, Any] = {}
    positional: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            positional += args[i:]
            break
        if arg[:1] != "-" or len(arg) == 1:
            positional.append(arg)
            continue
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            attached = bool(eq)
        else:  # -n5: the value attached; -fx and the like are typer's to read
            name, value = arg[:2], arg[2:]
            attached = bool(value)
        if name not in options:
            return None
        dest, kind, repeatable = options[name]
        if kind == "flag":
            if attached:
                return None
            found: Any = True
        else:
            if not attached:
                if i >= len(args):
                    return None
                value = args[i]
                i += 1
            found = value if kind == "text" else _whole(value)
            if found is None:
                return None
        if repeatable:
            values.setdefault(dest, []).append(found)
        else:
            values[dest] = found
    if argument is None:
        if positional:
            return None
    elif (not positional and arity != "0+") or (len(positional) > 1 and arity == "1"):
        return None
    elif positional:
        values[argument] = positional if arity != "1" else positional[0]
    if "state_dir" not in values:
        values["state_dir"] = os.environ.get("SWARM_STATE_DIR") or None  # as click: empty is unset
    return values


def _whole(text: str) -> int | None:
    """An int option's value, when typer reads it the same way (plain digits, a sign); else None."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits.isascii() or not digits.isdigit() or len(digits) > 1000:
        return None
    return int(text)


# -- the commands ------------------------------------------------------------------------------


def status(state_dir: str | None, as_json: bool = False) -> int:
    """The cluster: nodes, leader, resources and job counts."""

    def body() -> int:
        result = _client(state_dir).status()
        if as_json:
            _print_json(result)
        else:
            from swarmcompute.cli.format import status_text

            _echo(status_text(result))
        return 0

    return _guarded(body)


def jobs(
    state_dir: str | None,
    as_json: bool = False,
    limit: int = 50,
    state: Sequence[str] | None = None,
    elements: bool = False,
    name: str = "",
    node: str = "",
    user: str = "",
) -> int:
    """Recent jobs, newest first (an array as one line with its counts)."""

    def body() -> int:
        states, bad = _states(state)
        if bad:
            return _fail(bad)
        from swarmcompute.api.lean_client import MAX_LIST

        if not 0 <= limit <= MAX_LIST:  # said as the option, not as the API's `limit`
            return _fail(f"-n must be from 0 to {MAX_LIST:,}, got {limit:,}: narrow with --state, --name or --user")
        grouped = not (elements or as_json)
        client = _client(state_dir)
        result = client.jobs(limit, states, grouped=grouped, name=name, node=node, user=user)
        say_stale(client.status())  # a list: its shape stays, the line goes to stderr (`--json` too)
        if as_json:
            _print_json(result)
        else:
            from swarmcompute.cli.format import jobs_table

            _echo(jobs_table(result, elements=elements))
        return 0

    return _guarded(body)


def show(state_dir: str | None, job: str, as_json: bool = False) -> int:
    """One job, with the reason it is in its state."""

    def body() -> int:
        record = _client(state_dir).job(job)
        say_stale(record)  # also its `stale` key in --json
        if as_json:
            _print_json(record)
        else:
            from swarmcompute.cli.format import job_text

            _echo(job_text(record))
        return 0

    return _guarded(body)


def logs(
    state_dir: str | None,
    job: str,
    follow: bool = False,
    attempt: int | None = None,
    raw_path: bool = False,
    rank: int | None = None,
) -> int:
    """A job's output, stdout to stdout and stderr to stderr; exit 3 if some of it is missing.
    ``rank``: of the gang ``job`` is (or is a rank of), that rank's (``swarm run --ranks``)."""
    from swarmcompute.limits import printable

    def body() -> int:
        nonlocal job
        client = _client(state_dir)
        if rank is not None:
            record = client.job(job)
            if not record.get("gang_id"):
                return _fail(f"job {record['id']} is not a gang: --rank is for jobs of `swarm run --ranks`")
            if not 0 <= rank < record["ranks"]:
                return _fail(f"gang {record['gang_id']} has ranks 0 to {record['ranks'] - 1}, not {rank}")
            job = f"{record['gang_id']}.{rank}"
        if raw_path:
            for path in _raw_paths(client, state_dir, job, attempt):
                _echo(path)
            return 0
        from swarmcompute.cli.output import write_out

        out, err = sys.stdout.buffer, sys.stderr.buffer
        said = ""  # the last notice
        events = _followed(client, job) if follow and attempt is None else _log_events(client, job, follow, attempt)
        for tag, fields in events:
            if tag == "api.output":
                if fields[2] == 1:  # api.messages.STDOUT
                    write_out(out, fields[3])
                else:
                    err.write(fields[3])
                    err.flush()
            elif tag == "api.notice":
                _echo(f"swarm: {printable(fields[0])}", err=True)
                said = str(fields[0])
            elif tag == "api.attempt":
                _echo(printable(fields[3]), err=True)
            elif tag == "api.end":
                if follow and _never_started(fields[0]) and "never started" not in said:
                    _echo(f"swarm: {printable(_never_started(fields[0]))}", err=True)  # as without -f
                return OUTPUT_INCOMPLETE if fields[0].get("output_truncated") else 0
        return 0

    try:
        return _guarded(body)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 141


def say_stale(answer: dict[str, Any]) -> None:
    """One line on stderr when the daemon says what it shows may be out of date (its ``stale``:
    cut off from its cluster, or unable to write its Raft log): a cut-off node's `swarm jobs`
    showed jobs it had already killed as running, with runtime counting, and nothing said so."""
    from swarmcompute.limits import printable

    if answer.get("stale"):
        _echo(f"swarm: {printable(str(answer['stale']))}", err=True)


def _never_started(view: dict[str, Any]) -> str:
    """`swarm logs -f`'s last word on a job that ended before any attempt began (cancelled while
    pending, a failed ``--after`` parent), as `swarm logs` without -f has it from the daemon
    (``api.streaming``): before, -f ended silently after the pending notice. "" for any other."""
    if view.get("attempt") or view.get("state") not in ("succeeded", "failed", "cancelled"):
        return ""
    return f"job {view['id']} never started: {view.get('message') or view['state']}"


def wait(state_dir: str | None, jobs: Sequence[str], timeout: str | None = None, as_json: bool = False) -> int:
    """Wait for jobs to end; exit 0 only if all succeeded, else 1; 2 if some still run after
    ``timeout``, those that ended listed first (``as_json``: every job as it is now)."""

    def body() -> int:
        from swarmcompute.errors import WaitTimeoutError
        from swarmcompute.limits import printable

        client = _client(state_dir)
        try:
            records = client.wait(list(jobs), timeout=timeout)
        except WaitTimeoutError as exc:  # still running: what they are now, then the line, exit 2
            # this node's table may be why: asked now, not before the wait, whose first request a
            # restart of the daemon must find (asked before, a restart then failed the wait)
            say_stale(client.status())
            now = _as_they_are(client, jobs, whole=as_json)
            if as_json:
                _print_json(now)
            else:
                for r in now:
                    if r["state"] in _ENDED:  # as an ended wait lists them; the rest still run
                        _echo(printable(f"{r['id']} {r['state']} ({r['message']})"))
            return _fail(str(exc))
        if as_json:
            _print_json(records)
        else:
            for r in _with_ranks(client, records, jobs):
                _echo(printable(f"{r['id']} {r['state']} ({r['message']})"))
        return 0 if all(r["state"] == "succeeded" for r in records) else 1

    return _guarded(body)


def _with_ranks(
    client: LeanClient | Client, records: list[dict[str, Any]], refs: Sequence[str]
) -> list[dict[str, Any]]:
    """``records`` with a gang's, asked by its id or name (its rank 0's record, as a wait answers
    it), followed by every other rank's: `swarm wait GANG` printed rank 0's line alone. A rank
    asked by its own id stands alone."""
    out: list[dict[str, Any]] = []
    for record in records:
        out.append(record)
        if record.get("gang") and record["id"] not in refs:
            out += [client.job(str(r["id"])) for r in record["gang"] if r["id"] != record["id"]]
    return out


_ENDED = ("succeeded", "failed", "cancelled")
_SHOWN_ONLY = ("output_tail", "pull", "usage_now", "stale")
"""What `swarm show`'s record has and a wait's has not (its output's tail, its pull, its usage now,
whether this node may be behind: said once on stderr)."""


def _waited_shape(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in _SHOWN_ONLY}


def _as_they_are(client: LeanClient | Client, refs: Sequence[str], *, whole: bool) -> list[dict[str, Any]]:
    """`swarm wait`'s jobs as they are now, once its ``--timeout`` passed (an array id: each of its
    elements, as a wait answers): each job's record when ``whole`` (``--json``, the shape an ended
    wait prints), else an array's elements as its record summarizes them (id, state, message:
    what the text lines need, in one request). A job removed meanwhile is left out."""
    from swarmcompute.errors import JobNotFoundError

    out: list[dict[str, Any]] = []
    for ref in refs:
        try:
            record = client.job(ref)
            if record.get("kind") != "array":
                out.append(_waited_shape(record))
            elif whole:
                out += [_waited_shape(client.job(str(e["id"]))) for e in record["elements"]]
            else:
                out += record["elements"]
        except JobNotFoundError:
            continue
    return out


def cancel(
    state_dir: str | None,
    jobs: Sequence[str] = (),
    state: Sequence[str] | None = None,
    name: str = "",
    node: str = "",
    user: str = "",
    every: bool = False,
) -> int:
    """Cancel jobs (an array id: each of its elements); all or nothing: one that does not resolve
    (or is not yours) is said and none is cancelled, as `swarm update` and `hold` do. Without
    ids: the open jobs of yours (every user's for root) that --state, --name, --node and --user
    select, or --all of them."""

    def body() -> int:
        selecting = bool(state or name or node or user or every)
        if jobs and selecting:
            return _fail("give job ids, or select jobs with --state, --name, --node, --user or --all: not both")
        if not jobs and not selecting:
            return _fail("name the jobs to cancel, or select them with --state, --name, --node, --user or --all")
        states, bad = _states(state)
        if bad:
            return _fail(bad)
        client = _client(state_dir)
        if not jobs:
            records = client.cancel_selected(states, name=name, node=node, user=user, every=every)
            if not records:
                _echo("swarm: no open job of yours matches: nothing cancelled", err=True)
            _said_cancelled(records)
            return 0
        from swarmcompute.api.lean_client import LeanClient

        if isinstance(client, LeanClient):  # one request: the daemon resolves them all before it cancels any
            _said_cancelled(client.cancel(list(jobs)))
            return 0
        for ref in jobs:  # over --url, one request a job: each resolved first, so a typo cancels none
            client.job(ref)
        for ref in jobs:
            answer = client.cancel(ref)
            _said_cancelled(answer if isinstance(answer, list) else [answer])
        return 0

    return _guarded(body)


def _said_cancelled(records: Sequence[dict[str, Any]]) -> None:
    """A line for each job cancelled, or that had ended; a gang's rank cancelled (by the gang's id
    or any rank's) stands for every rank of the gang, which the cancel ended too (its record's
    ``gang`` list): `swarm cancel GANG.2` printed only `GANG.2 cancelled`."""
    said: set[str] = set()
    for record in records:
        if record["state"] == "cancelled" and not record.get("ended_before"):
            ranks = [r for r in record.get("gang") or () if r["state"] == "cancelled"] or [record]
            for one in ranks:
                if one["id"] not in said:
                    said.add(one["id"])
                    _echo(f"{one['id']} cancelled")
        elif record["id"] not in said:
            said.add(record["id"])
            _echo(f"{record['id']} had already ended: {record['state']}")  # ids are ASCII by rule


def _states(state: Sequence[str] | None) -> tuple[list[str], str | None]:
    """``--state`` values, lower-cased, and what is wrong with one that names no job state."""
    from swarmcompute.api.lean_client import SELECTED_STATES

    states = [s.strip().lower() for s in state or ()]
    for s in states:
        if s not in SELECTED_STATES:
            return states, f"--state {s[:40]!r} is not a job state: use one of {', '.join(SELECTED_STATES)}"
    return states, None


COMMANDS: dict[str, Callable[..., int]] = {
    "status": status,
    "jobs": jobs,
    "ps": jobs,
    "show": show,
    "logs": logs,
    "wait": wait,
    "cancel": cancel,
    "rerun": rerun,
}


# -- plumbing ----------------------------------------------------------------------------------


def _client(state_dir: str | None) -> LeanClient | Client:
    """The local daemon's lean client; ``Client`` (over HTTP) when ``$SWARM_URL`` says so and no
    state dir was named, as ``Client(state_dir)`` decides."""
    if state_dir is None and os.environ.get("SWARM_URL"):
        from swarmcompute.client import Client

        return Client()
    from swarmcompute.api.lean_client import LeanClient

    return LeanClient(state_dir)


def _log_events(
    client: LeanClient | Client, job: str, follow: bool, attempt: int | None, from_first: bool = False
) -> Iterator[tuple[str, Sequence[Any]]]:
    """``(tag, fields)`` of the log stream, from either client."""
    from swarmcompute.api.lean_client import LeanClient

    if isinstance(client, LeanClient):
        yield from client.stream_logs(job, follow=follow, attempt=attempt, from_first=from_first)
        return
    from swarmcompute import codec

    for event in client.stream_logs(job, follow=follow, attempt=attempt, from_first=from_first):
        tag, fields = codec.to_msgpack_obj(event)
        yield tag, fields


def _followed(client: LeanClient | Client, job: str) -> Iterator[tuple[str, Sequence[Any]]]:
    """`swarm logs -f`'s frames. A restart of the node it asks (an upgrade, `systemctl restart`)
    is waited out as `swarm run` waits (``api.replay``; before, it ended with `the daemon closed
    the connection`): the stream is asked again from the job's first attempt, and what was
    printed, or came before the attempt the first stream began with, is left out."""
    import functools

    from swarmcompute.api.replay import Replay, back_line, lost, lost_line, reopen

    replay = Replay()
    first: int | None = None  # the attempt the first stream began with
    where = client.where
    events: Iterator[tuple[str, Sequence[Any]]] = _log_events(client, job, True, None)
    while True:
        try:
            for tag, fields in events:
                if tag in ("api.output", "api.progress", "api.attempt"):
                    n = int(fields[1])
                    if first is None:  # an attempt's start comes between it and the one before
                        first = n - 1 if tag == "api.attempt" else n
                        replay.attempt(first)  # where the stream began: not news again
                    if n < first:
                        continue
                new = replay.frame(tag, fields)
                if new is None:
                    continue
                yield tag, new
                if tag == "api.end":
                    return
            return
        except Exception as exc:
            if not lost(exc):
                raise
        _echo(f"swarm: {lost_line(where, job)}", err=True)
        # From the first attempt; a stream that began with nothing yet: the latest, as asked.
        events = reopen(functools.partial(_log_events, client, job, True, None, first is not None), job, where)
        replay.again()
        _echo(f"swarm: {back_line(where, job)}", err=True)


def _raw_paths(client: LeanClient | Client, state_dir: str | None, ref: str, attempt: int | None) -> list[str]:
    """`swarm logs --raw-path`: the attempt's output files on this node, always three lines in this
    order, stdout, stderr, index (a stream the job never wrote to has no file: the writer creates
    each on its first byte, and a script reading the second line as stderr got the index), its own
    if it ran here, else the copy it keeps; exit 2 when this node has neither, or when its files
    are not the caller's to read (another user's job under a root daemon: a traceback before)."""
    from swarmcompute.errors import PermissionDeniedError, SwarmError
    from swarmcompute.executor.logfile import attempt_log_path, log_files
    from swarmcompute.paths import StatePaths

    if getattr(client, "url", None):  # `swarm --url URL logs --raw-path`: paths of this machine are no answer
        raise SwarmError(
            "--raw-path prints where a node keeps a job's output files: run it on that node, not with --url"
            " (`swarm logs JOB` prints the output itself)"
        )
    record = client.job(ref)
    job_id, had = record["id"], record["attempt"]
    n = had if attempt is None else attempt
    if not 1 <= n <= had:
        raise SwarmError(
            f"job {job_id} has no attempt {n}: it has had {had}" if had else f"job {job_id} has not started yet"
        )
    paths = StatePaths.resolve(state_dir)
    for root in (paths.job_output_dir, paths.job_copies_dir):
        index = attempt_log_path(root, job_id, n)
        try:
            if index.exists():
                return [str(p) for p in log_files(index)]
        except PermissionError:  # the daemon's files (0700 directories)
            raise PermissionDeniedError(_not_yours(record)) from None
    node_id = record["attempts"][n - 1]["node"] if n <= len(record["attempts"]) else None
    node = _node_name(client, record, node_id) if node_id else None
    raise SwarmError(
        f"this node has no output files of attempt {n} of job {job_id}: it ran on node {node} (ask there),"
        " or it wrote nothing"
    )


def _not_yours(record: dict[str, Any]) -> str:
    """Why this user cannot see where a job's output files are: another user's job is said as
    `swarm logs` says it (``users.check_owner``); their own, where the daemon runs as another user,
    with what works instead."""
    import getpass

    owner = str(record.get("user") or "")
    if owner and owner != getpass.getuser():
        return f"cannot read the output of job {record['id']}: it belongs to user {owner} (only they and root may)"
    return (
        f"cannot read the output files of job {record['id']}: they are the daemon's user's;"
        " run --raw-path as that user, or `swarm logs JOB` prints the output itself"
    )


def _node_name(client: LeanClient | Client, record: dict[str, Any], node_id: str) -> str:
    """The name of the node ``node_id`` (the job's current one: its record says it; else as
    `swarm status` lists it), for people: the id only when no node of the cluster has it."""
    from swarmcompute.errors import SwarmError

    if node_id == record.get("node") and record.get("node_name"):
        return str(record["node_name"])
    try:
        nodes = client.status().get("nodes") or ()
    except SwarmError:
        return node_id
    return next((str(n["name"]) for n in nodes if n.get("id") == node_id and n.get("name")), node_id)


def _guarded(body: Callable[[], int]) -> int:
    """Run a command's body; a ``SwarmError``, or stdout that cannot be written (a full disk;
    not a closed pipe), is one line on stderr and exit 2."""
    from swarmcompute.cli.output import StdoutFailed
    from swarmcompute.errors import SwarmError

    try:
        return body()
    except SwarmError as exc:  # DaemonNotRunningError included: its message says what to do
        return _fail(str(exc))
    except StdoutFailed as exc:
        from swarmcompute.cli.output import stdout_failed

        return _fail(stdout_failed(exc))


def _fail(message: str) -> int:
    from swarmcompute.limits import printable

    _echo(f"swarm: {printable(message)}", err=True)
    return 2


def _echo(text: str, *, err: bool = False) -> None:
    """A line, flushed at once (as ``typer.echo``: stdout and stderr keep their order in one pipe)."""
    if err:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
        return
    from swarmcompute.cli.output import write_out

    write_out(sys.stdout, text + "\n")


def _print_json(value: Any) -> None:
    import json

    _echo(json.dumps(value, indent=2, sort_keys=True))
