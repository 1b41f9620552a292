"""`swarm run --ranks N [--ranks-per-node K]`: submit a gang (``swarmcompute.state.gangs``), then
stream every rank's output, each line tagged with its rank (``[2] ...``, as ``mpirun
--tag-output`` does), and exit 0 when every rank exited 0 (3 when some rank's output was not
delivered whole, as `swarm run` of one job), else with the failing rank's status.

With ``-d`` it prints the gang id and returns. Ctrl-C, SIGTERM or SIGHUP cancels the gang (its
ranks stop; ``--keep-on-exit`` keeps it on a signal) and exits 130 or 128+N (``cli.left_early``);
killed with -9, its daemon cancels the gang 3 s later, as a plain job's (``Client.tie``; through
`--url`, `swarm cancel GANG`).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

from swarmcompute.cli.left_early import ends_early, left_early
from swarmcompute.cli.run_cmd import OUTPUT_INCOMPLETE

MAX_STREAMED_RANKS = 64
"""Ranks whose output `swarm run --ranks` streams (one connection each); the others' stays in
`swarm logs GANG.R`."""


def run_gang(spec: dict[str, Any], gang: tuple[int, int], state_dir: str, *, detach: bool) -> int:
    """Submit the gang of ``spec`` (the JobSpec fields `swarm run` parsed; ``gang``: --ranks and
    --ranks-per-node, 0 when not given) and follow it."""
    ranks, ranks_per_node = gang
    from swarmcompute import Client
    from swarmcompute.api import messages as m
    from swarmcompute.errors import SwarmError
    from swarmcompute.state.gangs import ranks_of
    from swarmcompute.state.job import JobSpec

    fields = {k: v for k, v in spec.items() if k in JobSpec.__dataclass_fields__}
    for key, value in fields.items():
        if isinstance(value, list):
            fields[key] = tuple(tuple(v) if isinstance(v, list) else v for v in value)
    keep = bool(spec.get("keep_on_exit"))
    try:
        specs = ranks_of(JobSpec(**fields), ranks, ranks_per_node)
        client = Client(state_dir)
        client._call(m.Submit(tuple(specs)))
    except ValueError as exc:
        print(f"swarm run: {_safe(exc)}", file=sys.stderr)
        return 2
    except SwarmError as exc:
        print(f"swarm: {_safe(exc)}", file=sys.stderr)
        return 2
    except BaseException as exc:  # Ctrl-C or a signal while it was being submitted
        if detach or not ends_early(exc):
            raise
        return left_early(Client(state_dir).cancel, spec["id"], "gang", exc, keep=keep)
    return follow_gang(client, lambda: Client(state_dir), spec["id"], ranks, detach=detach, keep=keep)


def follow_gang(
    client: Any, client_of: Callable[[], Any], gang_id: str, ranks: int, *, detach: bool, keep: bool = False
) -> int:
    """After the gang ``gang_id`` of ``ranks`` ranks was submitted through ``client`` (on a node, or
    ``web.remote.RemoteClient`` over `--url`): print its id (``detach``), or stream its ranks'
    output, each rank through its own ``client_of()``, and return its exit status. Ended early
    (Ctrl-C, SIGTERM, SIGHUP), it cancels the gang, unless ``keep`` (``--keep-on-exit``) for a
    signal: ``cli.left_early``."""
    from swarmcompute.errors import SwarmError
    from swarmcompute.state.gangs import rank_id

    if detach:
        print(gang_id, flush=True)
        return 0
    from swarmcompute.units import counted

    said = f"swarm: gang {gang_id}: {counted(ranks, 'rank')} (swarm logs {gang_id}.R for rank R)"
    tie = None
    try:
        tie = tied(client, gang_id, keep=keep)  # first: once that line is out, a kill -9 cancels the gang
        print(said, file=sys.stderr, flush=True)
        incomplete = _stream_all(client_of, [rank_id(gang_id, r) for r in range(min(ranks, MAX_STREAMED_RANKS))])
        record = client.job(gang_id)
        failed = [r for r in record.get("gang") or [] if r["state"] == "failed"]
        rank = client.job(failed[0]["id"]) if failed else None  # how it failed: its record's message
    except SwarmError as exc:
        print(f"swarm: {_safe(exc)}", file=sys.stderr)
        return 2
    except BaseException as exc:  # Ctrl-C, SIGTERM / SIGHUP (``run_cmd._EndedBySignal``)
        if not ends_early(exc):
            raise
        return left_early(client.cancel, gang_id, "gang", exc, keep=keep)
    finally:
        if tie is not None:
            tie.close()
    return gang_status(record, rank, incomplete=bool(incomplete))


def tied(client: Any, ref: str, *, keep: bool) -> Any:
    """The connection that ties the gang or array ``ref`` to this process (``Client.tie``), so that
    its daemon cancels them if the process is killed outright; None through `--url` (no daemon
    here to hold it) or with ``keep`` (`--keep-on-exit`: nothing to cancel)."""
    return None if keep else client.tie(ref)


def gang_status(record: dict[str, Any], failed: dict[str, Any] | None = None, *, incomplete: bool = False) -> int:
    """The exit status of a gang that ended, from its rank 0's record (its ``gang`` list): 0 when
    every rank succeeded (3 when the output of a rank's last attempt was not delivered whole,
    ``incomplete``, as `swarm run` of one job: it exited 0 then), else the status of the rank that failed, ``failed`` its record, said on
    stderr with how it failed (its message: a timeout, an image that could not be pulled), not
    only its exit code, which such a failure has none of (it read `rank 0 exited None`)."""
    ranks = record.get("gang") or []
    if ranks and all(r["state"] == "succeeded" for r in ranks):
        return OUTPUT_INCOMPLETE if incomplete else 0
    if failed is not None:
        code = failed.get("exit_code")
        message = failed.get("message") or "failed"
        how = f"exited {code}" if message == f"exited with code {code}" else message
        where = f" on {failed['node_name']}" if failed.get("node_name") else ""
        print(f"swarm: gang {record.get('gang_id')} failed: rank {failed['rank']}{where}: {_safe(how)}",
              file=sys.stderr)  # fmt: skip
        return code if isinstance(code, int) and code > 0 else 1
    print(f"swarm: gang {record.get('gang_id')} was {record['state']}: {_safe(record['message'])}", file=sys.stderr)
    return 130 if record["state"] == "cancelled" else 1


def _stream_all(client_of: Callable[[], Any], rank_ids: list[str]) -> list[str]:
    """Each rank's output, tagged, until every rank's stream ended (a stream follows its rank
    across the gang's attempts); the ranks whose last attempt's output was not delivered whole."""
    out = _Output()
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_stream_one, args=(client_of, job_id, out, errors), daemon=True) for job_id in rank_ids
    ]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)  # short waits: Ctrl-C and signals reach the main thread
    except BaseException:
        out.closed = True  # ended early: what the cancel makes the ranks say must not follow its line
        raise
    if errors:
        raise errors[0]
    return out.incomplete


def _stream_one(client_of: Callable[[], Any], job_id: str, out: _Output, errors: list[BaseException]) -> None:
    from swarmcompute.api import messages as m

    rank = job_id.rpartition(".")[2]
    tag = f"[{rank}] ".encode()
    partial = {m.STDOUT: b"", m.STDERR: b""}
    try:
        from swarmcompute.api.replay import followed

        for event in followed(client_of(), job_id):
            if isinstance(event, m.OutputChunk):
                data = partial.get(event.stream, b"") + event.data
                lines = data.split(b"\n")
                partial[event.stream] = lines.pop()
                if lines:
                    out.write(event.stream, b"".join(tag + line + b"\n" for line in lines))
            elif isinstance(event, m.Notice):  # swarm's word, as any `swarm run` says it (it lacked `swarm:`)
                out.write(m.STDERR, b"swarm: " + tag + _safe(event.text).encode() + b"\n")
            elif isinstance(event, m.AttemptStart):
                out.write(m.STDERR, tag + _safe(event.text).encode() + b"\n")
            elif isinstance(event, m.StreamEnd):
                if event.job.get("output_truncated"):
                    out.incomplete.append(job_id)
                break
        for stream, rest in partial.items():
            if rest:
                out.write(stream, tag + rest + b"\n")
    except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which says it
        errors.append(exc)


class _Output:
    """The ranks' tagged lines, one writer at a time; once ``closed`` (`swarm run` ended early and
    says so last), no more. Closing takes no lock: a rank's write may be blocked on a slow reader."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.closed = False
        self.incomplete: list[str] = []
        """The ranks whose last attempt's output was not delivered whole (each said why)."""

    def write(self, stream: int, data: bytes) -> None:
        from swarmcompute.api import messages as m

        target = sys.stdout.buffer if stream == m.STDOUT else sys.stderr.buffer
        with self.lock:
            if self.closed:
                return
            target.write(data)
            target.flush()


def _safe(text: object) -> str:
    from swarmcompute.limits import printable

    return printable(str(text))
