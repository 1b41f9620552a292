"""`swarm run`: submit a job, stream its output, exit with its exit code.

This module is the fast path: the `swarm` entry point hands `run` straight
here without importing typer (which alone costs more than our whole 50 ms
budget), so it parses its own options from the table below. The typer app
routes `swarm run` here too, so there is one parser and one behaviour.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # no stub: the C module under `signal`, without its enum
import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time on this path; annotations stay strings
    from collections.abc import Sequence
    from typing import Any

USAGE = """\
Usage: swarm run [OPTIONS] [--] CMD [ARGS]...

  Run CMD on the cluster; its stdout and stderr stream here live, and swarm
  exits with its exit code (128+N when signal N ended it). Ctrl-C cancels the
  job and exits 130.

Options:
  -d, --detach          Print the job id and return at once.
  --name TEXT           A name to find the job by.
  -e, --env K=V         Set an environment variable (repeatable); --env K alone
                        passes on this shell's value of K.
  --cwd DIR             Working directory (default: the current one; a Docker
                        job keeps its image's WORKDIR, a job that ships files
                        runs in its own staged directory).
  --upload PATH         Ship a file or directory with the job, under the same
                        relative name in its staged directory (repeatable).
  --workdir DIR         Ship DIR as the job's working directory (less what its
                        .gitignore and .swarmignore exclude).
  --max-upload SIZE     Refuse to ship more than SIZE (default 256M).
  --no-upload           Do not ship the script the command names (./run.sh,
                        python3 x.py): for a filesystem every node shares.
  --stdin               Ship what is piped or redirected into swarm run (read to
                        its end, up to --max-upload) as the job's stdin: every
                        attempt reads it from the start (default: /dev/null).
  --keep PATTERN        Keep only the files matching PATTERN (gitignore syntax)
                        that the job leaves in its staged directory (repeatable;
                        default: every new or changed file, up to 256 MiB).
  --download PATTERN    When the job ends, copy the kept files matching PATTERN
                        into the current directory (repeatable); a matching
                        file its node did not keep is said, and exits 3.
  --timeout DURATION    e.g. 30s, 10m, 2h: SIGTERM then SIGKILL; the job fails
                        with reason `timeout`.
  --signal SIG[@TIME]   Send SIG (USR1, ...) to the job TIME (default 60s) before
                        its --timeout: time to checkpoint.
  --retries N           Run again up to N times after a failure (with backoff).
  --priority N          Higher runs first (default 0).
  --preemptible         Let a job of a higher priority that finds no room elsewhere
                        stop this one (SIGTERM, then SIGKILL) to run first; it runs
                        again from the start, no retry spent.
  --cpus N              CPUs to reserve (default 1; 0 reserves none).
  --mem SIZE            Memory to reserve, e.g. 512M, 2G.
  --gpus N              GPUs to reserve: N cards of the node, its own for the
                        job (CUDA_VISIBLE_DEVICES names them).
  --gpu-mem SIZE        Each card has at least SIZE of memory, e.g. 40G
                        (implies --gpus 1).
  --constraint K=V      Run only on a node labelled K=V (K!=V: not so labelled;
                        repeatable; see swarm join --label, swarm label).
  --array SPEC          One job per index: 0-99, 1,3,5 or 0-99%10 (at most 10
                        at once); each sees SWARM_ARRAY_ID and SWARM_ARRAY_INDEX.
                        Prints each one's output in index order (-d: the
                        array id) and exits 0 if every one succeeded (3 if
                        some output could not be delivered), else 1.
  --ranks N             A gang: N ranks placed all at once or not at all, run
                        again together when one is lost; each sees SWARM_RANK,
                        SWARM_LOCAL_RANK, SWARM_WORLD_SIZE, SWARM_MASTER_ADDR,
                        SWARM_MASTER_PORT and SWARM_HOSTFILE. Streams every
                        rank's output tagged [R]; exits 0 if all exited 0.
  --ranks-per-node K    Exactly K ranks on each node (the last gets the rest).
  --max-procs N         At most N processes (a cgroup's pids.max; else the
                        user's RLIMIT_NPROC, which root ignores).
  --max-file-size SIZE  No file written larger than SIZE (RLIMIT_FSIZE).
  --after JOB           Run after JOB succeeded (repeatable; an array or a gang:
                        all of its jobs).
  --after-any JOB       Run after JOB ended, however (repeatable).
  --node NAME           Run only on this node (name or id).
  --image IMAGE         Run in a Docker container of IMAGE (nodes holding it are preferred).
  --mount SRC:DST[:ro]  Bind-mount SRC, a path of the node that runs the job, at
                        DST in its container (with --image; repeatable): only
                        a path you may read there (and write, unless :ro).
  --on-disconnect WHAT  stop (default): if its node is cut off from the cluster,
                        stop it there (~1 s) and run it elsewhere: never two at
                        once. keep: let it run on; it may then run twice.
  --keep-on-exit        Keep the job running when this command ends without it
                        (closed pipe, SIGTERM, SIGHUP, kill); by default that
                        cancels the job, as Ctrl-C does.
  --hold                Submit it held: it waits until `swarm release JOB` (an
                        array's or gang's id: all of it).
  --begin WHEN          Start it no sooner than WHEN: 30m, now+2h, 03:00 (the
                        next), 2026-12-24 or 2026-12-24T18:00 (local time).
  --every DURATION      Run it again every DURATION (e.g. 1d, 6h) from its start:
                        ID.1, ID.2, ... each once the one before ended (missed
                        times skipped); `swarm cancel ID` stops them.
  --notify URL          When it ends, POST a JSON summary to URL (http or https:
                        ntfy, a chat webhook); `swarm show` says if it went out.
  --max-output SIZE     Output kept per attempt, e.g. 1G (default 64M); past it
                        the rest is dropped and said (exit 3).
  --id ID               Choose the job id (resubmitting the same id is a no-op).
  --state-dir DIR       The node to talk to (default: $SWARM_STATE_DIR, else
                        ~/.local/share/swarmcompute, or root's
                        /var/lib/swarmcompute when only that one runs).
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
    "--upload": ("upload", True, True),
    "--workdir": ("workdir", True, False),
    "--max-upload": ("max_upload", True, False),
    "--no-upload": ("no_upload", False, False),
    "--stdin": ("stdin", False, False),
    "--keep": ("keep", True, True),
    "--download": ("download", True, True),
    "--timeout": ("timeout", True, False),
    "--retries": ("retries", True, False),
    "--priority": ("priority", True, False),
    "--cpus": ("cpus", True, False),
    "--mem": ("mem", True, False),
    "--gpus": ("gpus", True, False),
    "--gpu-mem": ("gpu_mem", True, False),
    "--constraint": ("constraints", True, True),
    "--array": ("array", True, False),
    "--ranks": ("ranks", True, False),
    "--ranks-per-node": ("ranks_per_node", True, False),
    "--max-procs": ("max_procs", True, False),
    "--max-file-size": ("max_file_size", True, False),
    "--after": ("after", True, True),
    "--after-any": ("after_any", True, True),
    "--node": ("node", True, False),
    "--image": ("image", True, False),
    "--mount": ("mounts", True, True),
    "--on-disconnect": ("on_disconnect", True, False),
    "--keep-on-exit": ("keep_on_exit", False, False),
    "--hold": ("hold", False, False),
    "--preemptible": ("preemptible", False, False),
    "--begin": ("begin", True, False),
    "--every": ("every", True, False),
    "--notify": ("notify", True, False),
    "--signal": ("signal", True, False),
    "--max-output": ("max_output", True, False),
    "--id": ("job_id", True, False),
    "--state-dir": ("state_dir", True, False),
}
_INTS = {"retries", "priority", "gpus", "max_procs", "ranks", "ranks_per_node"}
_SHIPPING = ("upload", "workdir", "max_upload", "no_upload", "download", "stdin")


class UsageError(Exception):
    pass


class RunArgs:
    """Parsed `swarm run` arguments (a plain class: no dataclasses import on this path)."""

    def __init__(self, argv: list[str], detach: bool, state_dir: str | None, options: dict[str, Any]) -> None:
        self.argv = argv
        self.detach = detach
        self.state_dir = state_dir
        self.ship = {k: options.pop(k) for k in _SHIPPING if k in options}
        """--upload, --workdir, --max-upload, --no-upload, --download, --stdin: read here, not JobSpec fields."""
        self.options = options


OUTPUT_INCOMPLETE = 3
"""The job succeeded but some of its output could not be delivered (the stream said what)."""
CANCEL_RETRY_S = 5.0
"""How long Ctrl-C keeps asking to cancel a job whose submission is not committed yet."""


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
            raise UsageError(f"no such option: {_safe(name)[:60]} (see `swarm run --help`)")
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
                except ValueError:  # also for 5000-digit numbers
                    raise UsageError(f"option {name} needs a whole number, got {_shown(value)}") from None
            elif dest == "cpus":
                try:
                    value = float(value)
                except ValueError:
                    raise UsageError(f"option {name} needs a number, got {_shown(value)}") from None
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
        if not key:
            raise UsageError(f"--env needs KEY=VALUE or KEY, got {_shown(item)}")
        if not eq:  # as docker run -e KEY: the value this shell has
            if key not in os.environ:
                raise UsageError(f"--env {_shown(key)}: no such variable is set here; give --env KEY=VALUE")
            val = os.environ[key]
        env[key] = val
    if env:
        options["env"] = env
    if "cwd" not in options and "image" not in options:  # a container keeps its image's WORKDIR
        options["cwd"] = os.getcwd()
        options["cwd_default"] = True
    elif "cwd" in options and "image" not in options:  # a relative --cwd is relative to here
        options["cwd"] = os.path.abspath(options["cwd"])
    if "mounts" in options:  # a relative SRC is relative to here, as with `docker run -v`
        options["mounts"] = [_absolute_source(text) for text in options["mounts"]]
    detach = bool(options.pop("detach", False))
    state_dir = options.pop("state_dir", None)
    return RunArgs(command, detach, state_dir, options)


def _absolute_source(mount: str) -> str:
    """``--mount data:/in`` as ``--mount $PWD/data:/in`` (``swarmcompute.mounts`` checks the rest)."""
    src, colon, rest = mount.partition(":")
    return f"{os.path.abspath(src)}:{rest}" if colon and src and not src.startswith("/") else mount


def main(args: Sequence[str]) -> int:
    """Run `swarm run` and return the process exit status."""
    try:
        parsed = parse(args)
        if parsed is None:
            sys.stdout.write(USAGE)
            return 0
        array = parsed.options.pop("array", None)
        gang = parsed.options.pop("ranks", None), parsed.options.pop("ranks_per_node", None)
        spec = _spec(parsed)
    except (UsageError, ValueError) as exc:
        print(f"swarm run: {_safe(str(exc))}", file=sys.stderr)
        return 2
    if array is not None and gang != (None, None):
        print("swarm run: a job is an array (--array) or a gang (--ranks), not both", file=sys.stderr)
        return 2
    if gang[0] is None and gang[1] is not None:
        print("swarm run: --ranks-per-node needs --ranks N", file=sys.stderr)
        return 2
    ranks = None if gang[0] is None else (gang[0], gang[1] or 0)  # a gang: (--ranks, --ranks-per-node)
    if parsed.ship.get("download") and (array is not None or ranks is not None):  # said before it runs
        kind, one = ("array", "ARRAY.INDEX") if array is not None else ("gang", "GANG.RANK")
        print(
            f"swarm run: --download copies one job's files, and each job of the {kind} leaves its own"
            f" (the same paths): copy them with `swarm cp {one}:PATH DEST` once it ended",
            file=sys.stderr,
        )
        return 2
    if not parsed.ship.get("stdin") and _input_waiting():
        print(
            "swarm: the job's stdin is /dev/null: what is piped into `swarm run` goes nowhere"
            " (--stdin ships it with the job; `< /dev/null` says nothing)",
            file=sys.stderr,
        )
    if parsed.state_dir is None and os.environ.get("SWARM_URL"):  # `swarm --url URL run ...`: over HTTP
        from swarmcompute.web.remote import run_main as run_remote

        return run_remote(parsed, array, ranks)
    from swarmcompute.api import lean
    from swarmcompute.state_dir import CONTROL_SOCKET_NAME, state_dir_path

    state_dir = state_dir_path(parsed.state_dir, client=True)
    try:
        sock = lean.connect(os.path.join(state_dir, CONTROL_SOCKET_NAME))
    except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
        print(f"swarm: no swarm daemon in {state_dir}: run `swarm join` first", file=sys.stderr)
        return 2
    try:
        if not parsed.detach:
            ended_by_signals()
        if parsed.ship or _may_ship(parsed.argv):
            from swarmcompute.files.cli import ship

            try:
                ship(parsed, spec, lambda: _client(state_dir))
            except (KeyboardInterrupt, _EndedBySignal) as exc:
                return unsubmitted(exc)
        status = _launched(sock, lean, spec, array, ranks, state_dir, detach=parsed.detach)
    except lean.LeanError as exc:
        print(f"swarm: {_safe(str(exc))}", file=sys.stderr)
        return 2
    except _ShipError as exc:
        print(f"swarm: {_safe(str(exc))}", file=sys.stderr)
        return 2
    finally:
        sock.close()
    if parsed.ship.get("download") and not parsed.detach:
        from swarmcompute.files.cli import download

        return download(parsed, spec["id"], lambda: _client(state_dir), status)
    return status


def unsubmitted(exc: BaseException) -> int:
    """Ctrl-C (or SIGTERM, SIGHUP) while `swarm run` read ``--stdin`` or shipped its files, before
    it submitted anything: one line, and 130 (128+N). Before, a traceback and death by SIGINT."""
    signum = getattr(exc, "signum", None)
    why = f"ended by signal {signum}" if isinstance(signum, int) else "interrupted"
    try:
        print(f"\nswarm: {why} before the job was submitted: nothing runs", file=sys.stderr)
    except OSError:
        pass  # stderr is gone too
    return 128 + signum if isinstance(signum, int) else 130


def waiting_notes(job_id: str, held: bool, begin_at: float, every_s: float = 0.0) -> list[str]:
    """What an attached `swarm run --hold`, `--begin` or `--every` says first."""
    notes = [f"swarm: job {job_id} is held: it starts once `swarm release {job_id}` lets it"] if held else []
    if begin_at > time.time():
        from swarmcompute.cli.format import begins

        notes.append(f"swarm: job {job_id} waits for its start time, {begins(begin_at)} (--begin)")
    if every_s:
        from swarmcompute.units import format_period

        notes.append(
            f"swarm: job {job_id} runs every {format_period(every_s)}: this follows its first run;"
            f" the next are {job_id}.1, {job_id}.2, ... (`swarm cancel {job_id}` stops them)"
        )
    return notes


def _launched(
    sock: Any,
    lean: Any,
    spec: dict[str, Any],
    array: str | None,
    ranks: tuple[int, int] | None,
    state_dir: str,
    *,
    detach: bool,
) -> int:
    """Submit ``spec`` (JobSpec fields) through ``sock``, alone, as the elements of ``array`` or
    as a gang of ``ranks``, and follow it unless ``detach``: the exit status. Raises ``LeanError``."""
    if array is not None:
        return _run_array(spec, array, state_dir, detach=detach)
    if ranks is not None:
        from swarmcompute.cli.gang_run import run_gang

        return run_gang(spec, ranks, state_dir, detach=detach)
    submission = lean.submit_frame(spec, attach=not detach)
    sock.sendall(submission)
    keep = bool(spec.get("keep_on_exit"))
    waits = bool(spec.get("hold")), float(spec.get("begin_at") or 0), float(spec.get("every_s") or 0)
    notes = () if detach else waiting_notes(spec["id"], *waits)
    again = None if detach else submission
    return _follow(sock, lean, state_dir, spec["id"], keep=keep, attached=not detach, again=again, notes=notes)


def _run_array(spec: dict[str, Any], array: str, state_dir: str, *, detach: bool) -> int:
    """`swarm run --array`: submit one job per index (``swarmcompute.arrays``). Detached, print the
    array id; else say it on stderr, print every element's output in index order
    (``cli.array_run``) and say how they ended. Ctrl-C, a closed output, SIGTERM or SIGHUP
    meanwhile cancel the array (``cli.left_early``)."""
    from swarmcompute import Client
    from swarmcompute.arrays import elements
    from swarmcompute.cli.array_run import announce, print_elements
    from swarmcompute.cli.gang_run import tied
    from swarmcompute.cli.output import StdoutFailed
    from swarmcompute.client import submit_framed
    from swarmcompute.errors import SwarmError
    from swarmcompute.state.job import JobSpec

    fields = {k: v for k, v in spec.items() if k in JobSpec.__dataclass_fields__}
    for key, value in fields.items():
        if isinstance(value, list):
            fields[key] = tuple(tuple(v) if isinstance(v, list) else v for v in value)
    tie = None
    try:
        specs = elements(JobSpec(**fields), array)
        client = Client(state_dir)
        submit_framed(client._submit, specs)
        if detach:
            print(spec["id"], flush=True)
            return 0
        tie = tied(client, spec["id"], keep=bool(spec.get("keep_on_exit")))  # kill -9 of this: cancelled
        announce(spec["id"], len(specs))
        incomplete = print_elements(client, spec["id"], [s.array_index for s in specs])
        jobs = client.wait(spec["id"])
    except (KeyboardInterrupt, BrokenPipeError, _EndedBySignal) as exc:
        if detach:
            raise
        from swarmcompute.cli.left_early import left_early

        return left_early(Client(state_dir).cancel, spec["id"], "array", exc, keep=bool(spec.get("keep_on_exit")))
    except StdoutFailed as exc:  # a full disk (`> /dev/full`): as a closed pipe, but exit 2
        keep = bool(spec.get("keep_on_exit"))
        return output_lost(Client(state_dir).cancel, spec["id"], "array", exc, keep=keep)
    except ValueError as exc:
        print(f"swarm run: {_safe(str(exc))}", file=sys.stderr)
        return 2
    except SwarmError as exc:
        print(f"swarm: {_safe(str(exc))}", file=sys.stderr)
        return 2
    finally:
        if tie is not None:
            tie.close()
    return array_ended(spec["id"], jobs, incomplete)


SHOWN_UNSUCCESSFUL = 5
"""Elements of an array that did not succeed named on `swarm run --array`'s last line."""


def array_ended(array_id: str, jobs: Any, incomplete: bool = False) -> int:
    """Say how an array's elements ended (``swarm: array ID: 3 failed, 97 succeeded``) and which did
    not succeed, and how (``ID.4 (exit 3)``, the first few by index); 0 if all succeeded, 3 if all
    did but some output could not be delivered (``incomplete``, or cut by the size bound), as
    `swarm run` of one job. Before, 0 after `output of attempt 1 is incomplete ...`."""
    jobs = jobs if isinstance(jobs, list) else [jobs]
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job["state"]] = counts.get(job["state"], 0) + 1
    print(f"swarm: array {array_id}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())), file=sys.stderr)
    bad = sorted((j for j in jobs if j["state"] != "succeeded"), key=lambda j: j.get("array_index") or 0)
    if not bad:
        return OUTPUT_INCOMPLETE if incomplete or any(j.get("output_truncated") for j in jobs) else 0
    shown = ", ".join(f"{j['id']} ({_how_it_ended(j)})" for j in bad[:SHOWN_UNSUCCESSFUL])
    more = f" and {len(bad) - SHOWN_UNSUCCESSFUL} more" if len(bad) > SHOWN_UNSUCCESSFUL else ""
    print(f"swarm: not succeeded: {shown}{more}; `swarm logs {bad[0]['id']}` shows one's output", file=sys.stderr)
    return 1


def _how_it_ended(job: dict[str, Any]) -> str:
    if job["state"] == "failed" and job.get("reason") == "exit_code" and job.get("exit_code") is not None:
        return f"exit {job['exit_code']}"
    return _safe(f"{job['state']}: {job['message']}" if job.get("message") else job["state"])


class _ShipError(Exception):
    """Files could not be shipped (``files.cli.ship``): one line, exit 2."""


def _client(state_dir: str) -> Any:
    """The Python client of the daemon in ``state_dir``, for what the lean path does not do (files)."""
    from swarmcompute.client import Client

    return Client(state_dir)


def _may_ship(argv: list[str]) -> bool:
    """Cheaply (no imports): may ``argv`` name a local script to ship (``files.manifest.auto_upload``
    decides)? ``./x.py``, or an interpreter followed by an argument that is a local file; or
    ``./x.py`` that is not here at all, which ``ship`` says (``manifest.missing_script``)."""
    first = argv[0]
    if "/" in first and not first.startswith("/") and (os.path.isfile(first) or not os.path.lexists(first)):
        return True
    if os.path.basename(first).startswith(("python", "bash", "sh", "dash", "zsh")):
        return any(not a.startswith("-") and not a.startswith("/") and os.path.isfile(a) for a in argv[1:])
    return False


def _safe(text: object) -> str:
    """A daemon's or a job's text, safe for the terminal (escape sequences and newlines shown)."""
    from swarmcompute.limits import printable

    return printable(str(text))


def _shown(value: str) -> str:
    """A user's text in an error line: one line, escapes shown, at most 40 characters."""
    from swarmcompute.limits import printable

    text = repr(printable(value))
    return text if len(text) <= 40 else text[:37] + "..."


def _spec(parsed: RunArgs) -> dict[str, Any]:
    """The JobSpec fields for the lean encoder (same rules as ``client.job_spec``), checked
    against the bounds of ``swarmcompute.limits`` before anything is sent."""
    from swarmcompute.errors import SwarmError
    from swarmcompute.limits import GPU_MEM_WITHOUT_GPUS, check_job
    from swarmcompute.units import parse_begin, parse_duration, parse_size, parse_warning

    opts = parsed.options
    try:
        warn_signal, warn_before_s = parse_warning(opts.get("signal"))
        begin_at = parse_begin(opts.get("begin"), time.time())
        every_s = parse_duration(opts.get("every"))
        timeout_s = parse_duration(opts.get("timeout"))
        mem_bytes = parse_size(opts.get("mem"))
        max_file_size = parse_size(opts.get("max_file_size"))
        max_output_bytes = parse_size(opts.get("max_output"))
        gpu_mem = parse_size(opts.get("gpu_mem"))
    except SwarmError as exc:
        raise UsageError(str(exc)) from None
    # Options map onto JobSpec fields of the same name; lean.spec_fields fills the defaults.
    spec: dict[str, Any] = {
        k: v
        for k, v in opts.items()
        if k not in ("job_id", "timeout", "mem", "max_output", "cwd_default", "begin", "every", "signal")
    }
    if warn_signal:
        spec.update(warn_signal=warn_signal, warn_before_s=warn_before_s)
    if begin_at:
        spec["begin_at"] = begin_at
    if every_s:
        spec["every_s"] = every_s
    spec.update(
        id=opts.get("job_id") or os.urandom(6).hex(), argv=list(parsed.argv), timeout_s=timeout_s, mem_bytes=mem_bytes
    )
    if max_output_bytes:
        spec["max_output_bytes"] = max_output_bytes
    if "max_file_size" in opts:
        spec["max_file_size"] = max_file_size
    if gpu_mem:
        if spec.get("gpus") == 0:
            raise UsageError(GPU_MEM_WITHOUT_GPUS)
        spec["gpu_mem"] = gpu_mem
        spec["gpus"] = spec.get("gpus") or 1
    else:
        spec.pop("gpu_mem", None)
    check_job(spec, submitted=True)
    if spec.get("on_disconnect", "stop") not in ("stop", "keep"):
        raise UsageError(f"--on-disconnect must be stop or keep, got {_shown(spec['on_disconnect'])}")
    return spec


def _input_waiting() -> bool:
    """Whether input waits on our stdin (`data | swarm run`, `swarm run < file`): a job's stdin is
    /dev/null (as srun's is not), so a user who sends some should hear that it goes nowhere. A
    terminal, /dev/null or an empty pipe (a script's, a CI runner's) say nothing, and so does a
    file someone has begun to read: `while read host; do swarm run ...; done < hosts.txt`, where
    the shell's `read` leaves the offset after each line it took, said so once per line before."""
    try:
        st = os.fstat(0)
    except OSError:  # no stdin at all
        return False
    import stat  # loaded with os already

    if stat.S_ISREG(st.st_mode):  # unread bytes left in a file nobody has read from yet
        try:
            return os.lseek(0, 0, os.SEEK_CUR) == 0 < st.st_size
        except OSError:
            return False
    if not stat.S_ISFIFO(st.st_mode):  # a terminal, /dev/null, a socket
        return False
    import array
    import fcntl
    import termios

    waiting = array.array("i", [0])
    try:
        fcntl.ioctl(0, termios.FIONREAD, waiting)
    except OSError:
        return False
    return waiting[0] > 0


class _EndedBySignal(BaseException):
    def __init__(self, signum: int) -> None:
        self.signum = signum


def _ended_by_signal(signum: int, frame: object) -> None:
    raise _EndedBySignal(signum)


def ended_by_signals() -> None:
    """From now on SIGTERM and SIGHUP raise ``_EndedBySignal`` (in the main thread), so that an
    attached `swarm run` can cancel what it follows and say so (``_follow``, ``cli.left_early``)."""
    _signal.signal(_signal.SIGTERM, _ended_by_signal)
    _signal.signal(_signal.SIGHUP, _ended_by_signal)


def _follow(
    sock: Any,
    lean: Any,
    state_dir: str,
    job_id: str,
    keep: bool = False,
    attached: bool = True,
    again: bytes | None = None,
    notes: Sequence[str] = (),
) -> int:
    """Print the job's output as it comes and return its exit status. ``job_id`` is ours (the
    client chooses it), so Ctrl-C can cancel the job even before the daemon confirmed it.

    A daemon that closes the connection (it restarts: an upgrade, `systemctl restart`, a crash
    systemd restarts) does not end `swarm run`: it says so, waits up to ``api.replay.REATTACH_S``
    for the daemon to be back, sends ``again`` (the same submission: a no-op for a job the cluster
    has, which attaches to it) and goes on where it was, skipping what it already printed
    (``_Reattach``, over ``api.replay.Replay``).
    Before, it said `the daemon closed the connection` and exit 2 while the job ran on, its output
    and exit status lost to the user. The job is never cancelled for this: the daemon stopping
    hands its jobs on, and one killed cannot have meant it.

    This process is the job's lifeline (as srun is): if it ends before the job, however (Ctrl-C,
    a closed pipe, SIGTERM, SIGHUP, a crash), it cancels the job, unless ``keep``
    (``--keep-on-exit``; Ctrl-C cancels even then). The daemon cancels it too, a few seconds after
    our connection closed, for the ends we cannot see (``kill -9``). A daemon that does not take
    the job within ``lean.TIMEOUT_S`` (stopped, stuck on its disk) is said in one line, exit 2.
    Detached (not ``attached``), the only frame is the submission's answer, the job's id.
    ``notes`` go to stderr once the daemon took the job (``waiting_notes``)."""
    from swarmcompute.cli.output import StdoutFailed, write_out

    reader = lean.FrameReader(sock)
    out, err = sys.stdout.buffer, sys.stderr.buffer
    pull = None  # the image pull's updating line, once one is reported
    sock.settimeout(lean.TIMEOUT_S)  # for the submission's answer; then the job takes what it takes
    answered = False
    replay = None if again is None else _Reattach(state_dir, job_id, again)  # what was printed, for a stream again
    try:
        while True:
            try:
                tag, fields = reader.next()
            except (lean.ClosedError, ConnectionResetError):
                if replay is None:
                    raise
                replay.lost()
                sock.close()
                sock = replay.connect(lean)
                if sock is None:
                    print(replay.not_back(), file=sys.stderr)
                    return 2
                reader, answered = lean.FrameReader(sock), False
                continue
            except TimeoutError:  # no answer at all: a stopped or stuck daemon; say so, not hang for ever
                later = "cancels it soon after" if attached and not keep else f"runs it (`swarm cancel {job_id}`)"
                print(
                    f"swarm: the daemon in {state_dir} did not take job {job_id} within {lean.TIMEOUT_S:g}s:"
                    f" is it stopped or stuck? {lean.see_its_log(state_dir)}; if it takes the job later,"
                    f" it {later}",
                    file=sys.stderr,
                )
                return 2
            if not answered:
                answered = True
                sock.settimeout(None)
                if replay is not None:
                    replay.back()
            if replay is not None:
                new = replay.replay.frame(tag, fields)
                if new is None:
                    continue  # printed before the daemon closed the connection
                fields = new
            if tag == "api.progress":  # the node pulls the job's image: [job_id, attempt, text, done, pull]
                if pull is None:
                    from swarmcompute.cli.progress_line import ProgressLine

                    pull = ProgressLine()
                pull.show(fields[2], done=bool(fields[3]))
                continue
            if pull is not None:
                pull.end()
            if tag == "api.output":
                if fields[2] == 1:
                    write_out(out, fields[3])
                else:
                    err.write(fields[3])
                    err.flush()
            elif tag == "api.submitted":  # it names our own job id: taken (a refusal says only itself)
                for note in notes:  # `--hold`, `--begin`, `--every`: why nothing runs yet
                    print(note, file=sys.stderr)
                notes = ()
            elif tag == "api.reply":  # detached submit: the ids
                write_out(sys.stdout, f"{fields[0][0]}\n")
                return 0
            elif tag == "api.notice":
                write_out(out, b"")
                print(f"swarm: {_safe(fields[0])}", file=sys.stderr)
            elif tag == "api.attempt":  # the next attempt's output follows
                write_out(out, b"")
                print(_safe(fields[3]), file=sys.stderr)
            elif tag == "api.end":
                return exit_status(fields[0])
            elif tag == "api.error":
                print(f"swarm: {_safe(fields[1])}", file=sys.stderr)
                return 2
    except (KeyboardInterrupt, BrokenPipeError, _EndedBySignal) as exc:  # `| head` too: no traceback, as `cat`
        from swarmcompute.cli.left_early import left_early

        return left_early(lambda ref: _cancel(lean, state_dir, ref), job_id, "job", exc, keep=keep)
    except StdoutFailed as exc:  # a full disk (`> /dev/full`): as a closed pipe, but exit 2
        return output_lost(lambda ref: _cancel(lean, state_dir, ref), job_id, "job", exc, keep=keep, attached=attached)
    except Exception:
        if not keep:
            from swarmcompute.cli.left_early import cut

            cut(lambda ref: _cancel(lean, state_dir, ref), job_id, "job", "swarm run failed", keep=keep)
        raise


def output_lost(cancel: Any, ref: str, kind: str, exc: BaseException, *, keep: bool, attached: bool = True) -> int:
    """stdout failed while `swarm run` printed the output of the ``kind`` ``ref`` (``StdoutFailed``:
    a full disk, not a closed pipe): as after a closed pipe, it is cancelled unless ``keep``, in one
    line; exit 2. Detached, only its id was to be printed: the line says it was submitted."""
    from swarmcompute.cli.output import quiet_stdout

    quiet_stdout()
    if not attached:
        print(f"swarm: could not write to stdout: {exc}; job {ref} was submitted (`swarm show {ref}`)", file=sys.stderr)
        return 2
    from swarmcompute.cli.left_early import cut

    cut(cancel, ref, kind, f"could not write the {kind}'s output to stdout: {exc}", keep=keep)
    return 2


class _Reattach:
    """`swarm run`'s lean path following its job again after its daemon closed the connection:
    what it says, the connection it makes (``again``: the same submission), and what was printed
    (``replay``, whose ``frame`` lets through only what is new)."""

    def __init__(self, state_dir: str, job_id: str, again: bytes) -> None:
        from swarmcompute.api.replay import Replay

        self.state_dir = state_dir
        self.job_id = job_id
        self.again = again
        self.replay = Replay()
        self.since: float | None = None
        """When the daemon closed the connection, until a new one answered."""

    def lost(self) -> None:
        from swarmcompute.api.replay import lost_line

        if self.since is None:
            self.since = time.monotonic()
            sys.stdout.flush()
            print(f"swarm: {lost_line(self._where(), self.job_id)}", file=sys.stderr, flush=True)

    def back(self) -> None:
        from swarmcompute.api.replay import back_line

        if self.since is not None:
            self.since = None
            print(f"swarm: {back_line(self._where(), self.job_id)}", file=sys.stderr, flush=True)
        self.replay.again()

    def not_back(self) -> str:
        from swarmcompute.api.lean import see_its_log
        from swarmcompute.api.replay import not_back_line

        return f"swarm: {not_back_line(self._where(), self.job_id)}. {see_its_log(self.state_dir)}"

    def _where(self) -> str:
        return f"the daemon in {self.state_dir}"

    def connect(self, lean: Any) -> Any:
        """A connection to the daemon once it is back, the submission sent again on it; None when
        it is not back within ``REATTACH_S`` of the loss (``api.replay.when_back``)."""
        from swarmcompute.api.replay import when_back
        from swarmcompute.errors import ProtocolError

        path = os.path.join(self.state_dir, "control.sock")

        def submitted() -> Any:
            sock = lean.connect(path, lean.TIMEOUT_S)
            try:
                sock.sendall(self.again)
            except BaseException:
                sock.close()
                raise
            return sock

        try:
            return when_back(submitted, self.since or time.monotonic(), self.job_id, self._where())
        except ProtocolError:
            return None


def _cancel(lean: Any, state_dir: str, job_id: str) -> None:
    """Cancel our job; raise ``LeanError`` (or ``OSError``) when it cannot. Ctrl-C may come before
    its submission is committed (the job can even start first): a job the daemon does not know
    yet is asked for again, for up to ``CANCEL_RETRY_S``."""
    deadline = time.monotonic() + CANCEL_RETRY_S
    while True:
        conn = lean.connect(os.path.join(state_dir, "control.sock"), lean.TIMEOUT_S)  # a stuck daemon: OSError
        try:
            conn.sendall(lean.request_frame("api.cancel", [[job_id]]))
            tag, fields = lean.FrameReader(conn).next()
        finally:
            conn.close()
        if tag != "api.error":
            return
        if fields[0] != "JobNotFoundError" or time.monotonic() > deadline:
            raise lean.LeanError(str(fields[1]))
        time.sleep(0.05)


def exit_status(job: dict[str, Any]) -> int:
    """The exit status `swarm run` ends with, and a note on stderr when it did not just exit."""
    state, reason = job["state"], job["reason"]
    code = job.get("exit_code")
    if state == "succeeded":
        # The stream already said what is missing; a script learns it from the status.
        return OUTPUT_INCOMPLETE if job.get("output_truncated") else 0
    if state == "cancelled":
        print(f"swarm: job {job['id']} was cancelled: {_safe(job['message'])}", file=sys.stderr)
        return 130
    # Not for a plain exit (the status says it all), but for a signal's or the OOM killer's, and
    # where: a command or directory one node lacks is the usual cause.
    if reason != "exit_code" or job["message"] != f"exited with code {code}":
        where = f" on {_safe(job['node_name'])}" if job.get("node_name") else ""
        print(f"swarm: job {job['id']} failed{where}: {_safe(job['message'])}", file=sys.stderr)
    if code is None:
        return 1
    return int(code)
