"""`swarm rerun JOB`: run an ended job again (``swarmcompute.rerun``), as `swarm run` runs one.

The node answers what to submit (``api.rerun``: the job's spec under the new id, or an array's
indices, or a gang's shape); this command submits it through `swarm run`'s own path
(``run_cmd._launched``), so a rerun streams, follows again after a daemon restart, is cancelled by
Ctrl-C and exits with the job's code as a `swarm run` does. Its options are read as the read
commands' are (``read_cmds.GRAMMAR``, no typer), and typer answers help and usage errors.
"""

from __future__ import annotations

import os
import sys


def rerun(state_dir: str | None, job: str, detach: bool = False, every: bool = False, job_id: str | None = None) -> int:
    """Run `swarm rerun` and return the process exit status."""
    new_id = job_id or os.urandom(6).hex()  # as `swarm run`'s: a rerun asked again with it is a no-op
    if state_dir is None and os.environ.get("SWARM_URL"):  # `swarm --url URL rerun JOB`: over HTTP
        from swarmcompute.web.remote import rerun_main

        return rerun_main(job, new_id, every=every, detach=detach)
    from swarmcompute.api import lean
    from swarmcompute.api.lean_client import LeanClient
    from swarmcompute.cli.run_cmd import _launched, _safe, ended_by_signals
    from swarmcompute.errors import SwarmError
    from swarmcompute.state_dir import CONTROL_SOCKET_NAME, state_dir_path

    root = state_dir_path(state_dir, client=True)
    try:
        answer = LeanClient(root)._call("api.rerun", [job, new_id, every])
        _tag, fields = answer["spec"]
        spec = dict(zip(lean.SPEC_FIELDS, fields, strict=False))
        sock = lean.connect(os.path.join(root, CONTROL_SOCKET_NAME))
    except (SwarmError, lean.LeanError, OSError) as exc:  # no daemon: its line says `swarm join`
        print(f"swarm: {_safe(str(exc))}", file=sys.stderr)
        return 2
    array, ranks = answer["array"], answer["ranks"]
    if not detach:  # an array and a gang say their new id themselves, as `swarm run` does
        what = f": elements {array}" if array is not None else f": {ranks} ranks" if ranks is not None else ""
        print(f"swarm: rerun of {_safe(job)}{what or f' as job {new_id}'}", file=sys.stderr)
        ended_by_signals()
    try:
        gang = None if ranks is None else (int(ranks), int(answer["ranks_per_node"]))
        return _launched(sock, lean, spec, array, gang, root, detach=detach)
    except lean.LeanError as exc:
        print(f"swarm: {_safe(str(exc))}", file=sys.stderr)
        return 2
    finally:
        sock.close()
