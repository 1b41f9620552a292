"""`swarm rerun JOB`: run an ended job again (``swarmcompute.rerun``), as `swarm run` runs one.

The node answers what to submit (``api.rerun``: the job's spec under the new id, or an array's
indices, or a gang's shape); this command submits it through `swarm run`'s own path
(``run_cmd._launched``), so a rerun streams, follows again after a daemon restart, is cancelled by
Ctrl-C and exits with the job's code as a `swarm run` does. Lean, as `swarm run` is: no typer.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

USAGE = """\
Usage: swarm rerun [OPTIONS] JOB

  Run an ended job again, as a new job with its command and options (its
  shipped files and stdin too), and stream its output as swarm run does. An
  array id: a new array of its elements that did not succeed; a gang id: a new
  gang of the same shape.

Options:
  -d, --detach      Print the new job id and return at once.
  --all             An array: rerun every element, not only those that did not
                    succeed.
  --id ID           Choose the new job id (asking again with it is a no-op).
  --state-dir DIR   The node to talk to (default: as swarm run).
  -h, --help        Show this message.
"""


def main(args: Sequence[str]) -> int:
    """Run `swarm rerun` and return the process exit status."""
    from swarmcompute.cli.run_cmd import _safe

    detach = every = False
    job_id = state_dir = None
    refs: list[str] = []
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        name, eq, value = arg.partition("=")
        if arg in ("-h", "--help"):
            sys.stdout.write(USAGE)
            return 0
        if arg in ("-d", "--detach"):
            detach = True
        elif arg == "--all":
            every = True
        elif name in ("--id", "--state-dir"):
            if not eq:
                if not rest:
                    print(f"swarm rerun: {name} needs a value (see `swarm rerun -h`)", file=sys.stderr)
                    return 2
                value = rest.pop(0)
            job_id, state_dir = (value, state_dir) if name == "--id" else (job_id, value)
        elif arg == "--":
            refs += rest
            rest = []
        elif arg.startswith("-") and arg != "-":
            print(f"swarm rerun: no such option {_safe(arg)[:40]} (see `swarm rerun -h`)", file=sys.stderr)
            return 2
        else:
            refs.append(arg)
    if len(refs) != 1:
        print("swarm rerun: name one job: swarm rerun JOB (see `swarm rerun -h`)", file=sys.stderr)
        return 2
    new_id = job_id or os.urandom(6).hex()  # as `swarm run`'s: a rerun asked again with it is a no-op
    if state_dir is None and os.environ.get("SWARM_URL"):  # `swarm --url URL rerun JOB`: over HTTP
        from swarmcompute.web.remote import rerun_main

        return rerun_main(refs[0], new_id, every=every, detach=detach)
    return _rerun(refs[0], new_id, state_dir, every=every, detach=detach)


def _rerun(ref: str, new_id: str, state_dir: str | None, *, every: bool, detach: bool) -> int:
    from swarmcompute.api import lean
    from swarmcompute.api.lean_client import LeanClient
    from swarmcompute.cli.run_cmd import _launched, _safe, ended_by_signals
    from swarmcompute.errors import DaemonNotRunningError, SwarmError
    from swarmcompute.state_dir import CONTROL_SOCKET_NAME, state_dir_path

    root = state_dir_path(state_dir, client=True)
    try:
        answer = LeanClient(root)._call("api.rerun", [ref, new_id, every])
        _tag, fields = answer["spec"]
        spec = dict(zip(lean.SPEC_FIELDS, fields, strict=False))
        sock = lean.connect(os.path.join(root, CONTROL_SOCKET_NAME))
    except DaemonNotRunningError:
        print(f"swarm: no swarm daemon in {root}: run `swarm join` first", file=sys.stderr)
        return 2
    except (SwarmError, lean.LeanError, OSError) as exc:
        print(f"swarm: {_safe(str(exc))}", file=sys.stderr)
        return 2
    array, ranks = answer["array"], answer["ranks"]
    if not detach:  # an array and a gang say their new id themselves, as `swarm run` does
        what = f": elements {array}" if array is not None else f": {ranks} ranks" if ranks is not None else ""
        print(f"swarm: rerun of {_safe(ref)}{what or f' as job {new_id}'}", file=sys.stderr)
        ended_by_signals()
    try:
        gang = None if ranks is None else (int(ranks), int(answer["ranks_per_node"]))
        return _launched(sock, lean, spec, array, gang, root, detach=detach)
    except lean.LeanError as exc:
        print(f"swarm: {_safe(str(exc))}", file=sys.stderr)
        return 2
    finally:
        sock.close()
