"""`swarm run`: submit a job, stream its output, exit with its exit code.

This module is the fast path: the `swarm` entry point hands `run` straight
here without importing typer (which alone costs more than our whole 50 ms
budget), so it parses its own options from the table below. The typer app
routes `swarm run` here too, so there is one parser and one behaviour.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

USAGE = """\
Usage: swarm run [OPTIONS] [--] CMD [ARGS]...

  Run CMD on the cluster; its stdout and stderr stream here live, and swarm
  exits with its exit code (128+N when signal N ended it). Ctrl-C cancels the
  job and exits 130.

Options:
  -d, --detach          Print the job id and return at once.
  --name TEXT           A name to find the job by.
  -e, --env K=V         Set an environment variable (repeatable).
  --cwd DIR             Working directory (default: the current one).
  --timeout DURATION    e.g. 30s, 10m, 2h: SIGTERM then SIGKILL; the job fails
                        with reason `timeout`.
  --retries N           Run again up to N times after a failure (with backoff).
  --priority N          Higher runs first (default 0).
  --cpus N              CPUs to reserve (default 1; 0 reserves none).
  --mem SIZE            Memory to reserve, e.g. 512M, 2G.
  --gpus N              GPUs to reserve.
  --after JOB           Run after JOB succeeded (repeatable).
  --after-any JOB       Run after JOB ended, however (repeatable).
  --node NAME           Run only on this node (name or id).
  --id ID               Choose the job id (resubmitting the same id is a no-op).
  --state-dir DIR       The node to talk to (default: $SWARM_STATE_DIR or
                        ~/.local/share/swarmcompute).
  -h, --help            Show this message.
"""

# option -> (destination, takes a value, repeatable)
_OPTIONS: dict[str, tuple[str, bool, bool]] = {
    "-d": ("detach", False, False),
    "--detach": ("detach", False, False),
    "--name": ("name", True, False),
    "-e": ("env", True, True),
    "--env": ("env", True, True),
    "--cwd": ("cwd", True, False),
    "--timeout": ("timeout", True, False),
    "--retries": ("retries", True, False),
    "--priority": ("priority", True, False),
    "--cpus": ("cpus", True, False),
    "--mem": ("mem", True, False),
    "--gpus": ("gpus", True, False),
    "--after": ("after", True, True),
    "--after-any": ("after_any", True, True),
    "--node": ("node", True, False),
    "--id": ("job_id", True, False),
    "--state-dir": ("state_dir", True, False),
}
_INTS = {"retries", "priority", "gpus"}


class UsageError(Exception):
    pass


@dataclass
class RunArgs:
    argv: list[str]
    detach: bool = False
    state_dir: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


def parse(args: Sequence[str]) -> RunArgs | None:
    """Parse `swarm run` arguments; None means help was asked for."""
    options: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if arg in ("-h", "--help"):
            return None
        if not arg.startswith("-") or arg == "-":
            break
        name, eq, inline = arg.partition("=")
        if name not in _OPTIONS:
            raise UsageError(f"no such option: {name} (see `swarm run --help`)")
        dest, takes_value, repeatable = _OPTIONS[name]
        if takes_value:
            if eq:
                value: Any = inline
            else:
                i += 1
                if i >= len(args):
                    raise UsageError(f"option {name} needs a value")
                value = args[i]
            if dest in _INTS:
                try:
                    value = int(value)
                except ValueError:
                    raise UsageError(f"option {name} needs a whole number, got {value!r}") from None
            elif dest == "cpus":
                try:
                    value = float(value)
                except ValueError:
                    raise UsageError(f"option {name} needs a number, got {value!r}") from None
        else:
            value = True
        if repeatable:
            options.setdefault(dest, []).append(value)
        else:
            options[dest] = value
        i += 1
    command = list(args[i:])
    if not command:
        raise UsageError("nothing to run: `swarm run [OPTIONS] -- CMD [ARGS]...`")
    env: dict[str, str] = {}
    for item in options.pop("env", []):
        key, eq, val = item.partition("=")
        if not eq or not key:
            raise UsageError(f"--env needs KEY=VALUE, got {item!r}")
        env[key] = val
    if env:
        options["env"] = env
    options.setdefault("cwd", os.getcwd())
    detach = bool(options.pop("detach", False))
    state_dir = options.pop("state_dir", None)
    return RunArgs(command, detach, state_dir, options)


def main(args: Sequence[str]) -> int:
    """Run `swarm run` and return the process exit status."""
    try:
        parsed = parse(args)
    except UsageError as exc:
        print(f"swarm run: {exc}", file=sys.stderr)
        return 2
    if parsed is None:
        sys.stdout.write(USAGE)
        return 0
    from swarmcompute.client import Client
    from swarmcompute.errors import SwarmError

    client = Client(parsed.state_dir)
    try:
        if parsed.detach:
            print(client.submit(parsed.argv, **parsed.options))
            return 0
        return _attached(client, parsed)
    except SwarmError as exc:
        print(f"swarm: {exc}", file=sys.stderr)
        return 2


def _attached(client: Any, parsed: RunArgs) -> int:
    from swarmcompute.api import messages as m

    job_id: str | None = None
    out, err = sys.stdout.buffer, sys.stderr.buffer
    try:
        for event in client.run(parsed.argv, **parsed.options):
            if isinstance(event, m.OutputChunk):
                stream = out if event.stream == m.STDOUT else err
                stream.write(event.data)
                stream.flush()
            elif isinstance(event, m.Submitted):
                job_id = event.job_ids[0]
            elif isinstance(event, m.Notice):
                print(f"swarm: {event.text}", file=sys.stderr)
            elif isinstance(event, m.StreamEnd):
                return exit_status(event.job)
    except KeyboardInterrupt:
        if job_id is None:
            return 130
        try:
            client.cancel(job_id)
            print(f"\nswarm: cancelled job {job_id}", file=sys.stderr)
        except KeyboardInterrupt:
            pass
        return 130
    print("swarm: the daemon ended the stream early; see `swarm show`", file=sys.stderr)
    return 2


def exit_status(job: dict[str, Any]) -> int:
    """The exit status `swarm run` ends with, and a note on stderr when it did not just exit."""
    state, reason = job["state"], job["reason"]
    code = job.get("exit_code")
    if state == "succeeded":
        return 0
    if state == "cancelled":
        print(f"swarm: job {job['id']} was cancelled: {job['message']}", file=sys.stderr)
        return 130
    if reason != "exit_code":
        print(f"swarm: job {job['id']} failed: {job['message']}", file=sys.stderr)
    if code is None:
        return 1
    return code
