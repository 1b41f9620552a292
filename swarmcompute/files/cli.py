"""`swarm run`'s file options: shipping before the submit, ``--download`` after the job ended.

Kept apart from ``cli.run_cmd`` so that a `swarm run` that ships nothing imports none of this
(the fast path's start-up budget); a run that ships files pays for the Client's imports.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO

from swarmcompute.errors import SwarmError

if TYPE_CHECKING:
    from swarmcompute.cli.run_cmd import RunArgs
    from swarmcompute.client import Client


def ship(parsed: RunArgs, spec: dict[str, Any], connect: Callable[[], Client], *, stdin: bool = True) -> None:
    """Hash and upload what the job ships (``--upload``, ``--workdir``, the script its command
    names unless ``--no-upload``; ``--stdin`` too, unless ``stdin`` is false) and put the manifest
    in ``spec``; the job then runs in its own staged directory unless ``--cwd`` was given.
    ``connect`` makes the client the bytes go through (a node's, or ``RemoteClient`` for
    ``--url``), once there is something to send. Raises ``run_cmd._ShipError`` with one line."""
    from swarmcompute.cli.run_cmd import _ShipError
    from swarmcompute.files import manifest

    options = parsed.ship
    if options.get("download") and parsed.detach:
        raise _ShipError("--download waits for the job to end: drop -d/--detach, or use `swarm cp JOB:PATH .` later")
    if options.get("stdin") and stdin:
        spec["stdin"] = _shipped_stdin(options, connect)
    cwd = os.getcwd()
    uploads = list(options.get("upload", []))
    if not options.get("no_upload"):
        uploads += [p for p in manifest.auto_upload(parsed.argv, cwd) if p not in uploads]
        problem = manifest.script_problem(parsed.argv, cwd)
        if problem is not None:  # it would fail on every node: said before anything is shipped
            raise _ShipError(problem)
        not_here = manifest.missing_script(parsed.argv, cwd) if parsed.options.get("cwd_default") else None
        if not_here is not None:  # likely a typo, but a node may have it: said, not refused
            from swarmcompute.limits import printable

            print(f"swarm: {printable(not_here)}", file=sys.stderr)
    workdir = options.get("workdir")
    if not uploads and workdir is None:
        return  # `python3 -c ...`, a script given by absolute path: nothing to ship
    from swarmcompute.files import transfer
    from swarmcompute.units import parse_size

    try:
        cap = parse_size(options["max_upload"]) if "max_upload" in options else manifest.DEFAULT_MAX_UPLOAD
        shipment = manifest.build(uploads, workdir, cwd=cwd, max_bytes=cap)
        if shipment.skipped:  # said before the job runs, which may miss one
            print(f"swarm: {manifest.not_shipped(shipment.skipped)}", file=sys.stderr)
        transfer.upload(connect(), shipment)
    except SwarmError as exc:
        raise _ShipError(str(exc)) from None
    spec["files"] = [list(e) for e in shipment.entries]
    if parsed.options.get("cwd_default"):
        spec.pop("cwd", None)  # it runs in its staged directory
        missing = manifest.unshipped_arguments(parsed.argv, cwd, shipment.entries)
        if missing:  # it would not find them there: said before it fails on another node
            from swarmcompute.limits import printable

            shown = ", ".join(printable(m) for m in missing[:3]) + (
                f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            )
            print(
                f"swarm: not shipped with the job, which runs in a directory of its own: {shown}"
                " (--upload PATH ships one; --workdir . ships this directory)",
                file=sys.stderr,
            )


STDIN_SLOW_S = 2.0
"""``--stdin`` still reading after this long: said once (a pipe that never ends, a terminal's typing)."""


def _shipped_stdin(options: dict[str, Any], connect: Callable[[], Client]) -> list[object]:
    """``--stdin``: what is piped or redirected into `swarm run`, read to its end and uploaded;
    the job's ``stdin`` (sha256, size). Raises ``run_cmd._ShipError`` with one line."""
    from swarmcompute.files import manifest, transfer
    from swarmcompute.units import parse_size

    try:
        cap = parse_size(options["max_upload"]) if "max_upload" in options else manifest.DEFAULT_MAX_UPLOAD
        spooled, sha, size = piped_stdin(cap, "ship it as a file (--upload PATH) or raise --max-upload")
        with spooled:
            transfer.upload_spooled(connect(), spooled, sha)
    except SwarmError as exc:
        raise _ship_error(str(exc)) from None
    return [sha, size]


def piped_stdin(max_bytes: int, instead: str) -> tuple[BinaryIO, str, int]:
    """``--stdin``: ``sys.stdin`` read to its end (``transfer.spool``: the file, sha256, size),
    once checked: not a terminal; a read still going after ``STDIN_SLOW_S``
    is said once (a pipe that never ends). ``run_cmd._ShipError`` or ``FilesTooLargeError`` (past
    ``max_bytes``, saying ``instead``) with one line."""
    import threading

    from swarmcompute.files import transfer

    if sys.stdin is None or os.isatty(0):  # a terminal, or closed (`<&-`)
        raise _ship_error("--stdin ships what is piped or redirected into swarm run: `swarm run --stdin -- CMD < FILE`")
    slow = threading.Timer(
        STDIN_SLOW_S,
        lambda: print("swarm: --stdin: reading stdin to its end before the job is submitted", file=sys.stderr),
    )
    slow.daemon = True
    slow.start()
    try:
        return transfer.spool(sys.stdin.buffer, max_bytes, instead)
    finally:
        slow.cancel()


def _ship_error(text: str) -> Exception:
    from swarmcompute.cli.run_cmd import _ShipError

    return _ShipError(text)


def download(parsed: RunArgs, job_id: str, connect: Callable[[], Client], status: int) -> int:
    """After the job ended: copy the kept files matching ``--download`` into the current
    directory (through the client ``connect`` makes); returns ``status``, or 2 with one line when
    they cannot be copied. A matching file the node did not keep (over the cap, a link) is lost
    with the job's directory, so each is said as `swarm cp JOB:` says it, and a job that
    succeeded exits 3, as for output that could not be delivered: never a silent success."""
    from swarmcompute.files import transfer
    from swarmcompute.limits import printable

    try:
        client = connect()
        if client.job(job_id)["state"] not in ("succeeded", "failed", "cancelled"):
            return status  # the job runs on (`swarm run` was cut off): nothing to copy yet
        written, lost = transfer.download_all(client, job_id, parsed.ship["download"], ".")
    except SwarmError as exc:
        print(f"swarm: --download: {printable(str(exc))}", file=sys.stderr)
        return 2
    for d in lost:
        print(f"swarm: not kept: {printable(d['path'])}: {printable(d['why'])}", file=sys.stderr)
    if not written and not lost:
        print(f"swarm: --download: job {job_id} left no file matching {parsed.ship['download']}", file=sys.stderr)
    return 3 if lost and status == 0 else status
