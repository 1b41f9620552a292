"""The Python API, and the only way the CLI talks to a daemon.

    from swarmcompute import Client

    client = Client()                       # the daemon of the default state dir
    job_id = client.submit(["python", "train.py"], cpus=2, timeout="1h")
    print(client.wait(job_id)["state"])     # "succeeded"

Imports stay light (no asyncio, structlog or psutil) because ``swarm run``
starts a fresh Python process every time and must be quick.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from swarmcompute import errors
from swarmcompute.api import lean
from swarmcompute.api import messages as m
from swarmcompute.api.lean_client import check_attempt, error_from, hold_request, list_request, selectors
from swarmcompute.api.lean_client import job_ref as _job_ref
from swarmcompute.api.lean_client import job_refs as _job_refs
from swarmcompute.api.lean_client import shown as _shown
from swarmcompute.api.messages import UPDATE_OPTIONS
from swarmcompute.api.pages import in_pages, new_cursor
from swarmcompute.api.protocol import BlockingChannel
from swarmcompute.limits import GPU_MEM_WITHOUT_GPUS, MAX_BATCH, MAX_CPUS, check_job, printable, signal_number
from swarmcompute.paths import StatePaths
from swarmcompute.state.job import JobChanges, JobSpec
from swarmcompute.state.table import halves, partly_submitted, submit_chunks, too_big_to_cut, validate_batch
from swarmcompute.units import counted, likely_meant, parse_begin, parse_duration, parse_size, parse_warning, plural

if TYPE_CHECKING:
    from swarmcompute.files.transfer import FilesLink

_SPEC_OPTIONS = frozenset(
    {
        "name",
        "env",
        "cwd",
        "timeout",
        "retries",
        "priority",
        "cpus",
        "mem",
        "gpus",
        "after",
        "after_any",
        "node",
        "image",
        "on_disconnect",
        "keep_on_exit",
        "max_procs",
        "max_file_size",
        "max_output",
        "job_id",
        "files",
        "keep",
        "gpu_mem",
        "constraints",
        "mounts",
        "stdin",
        "hold",
        "begin",
        "every",
        "notify",
        "signal",
        "preemptible",
    }
)
_SHIP_OPTIONS = ("upload", "workdir", "max_upload")
"""``Client.submit`` options that read local files (``files.manifest``): not part of ``job_spec``."""


def new_job_id() -> str:
    """12 hex digits of randomness: short to type, unique enough for any home lab."""
    return os.urandom(6).hex()


def attached(events: Iterator[Any], spec: JobSpec, cancel: Callable[[str], Any]) -> Iterator[Any]:
    """The ``events`` of ``spec``'s attached run (``Client.run`` on a node or over HTTP); when the
    caller stops reading before its ``StreamEnd`` (or the stream fails), ``cancel`` the job at once,
    unless ``keep_on_exit``, rather than leave it to the node, which cancels an attached job whose
    client went away only ``api.lifeline.GRACE_S`` later."""
    ended = False
    try:
        for event in events:
            ended = isinstance(event, m.StreamEnd)
            yield event
    finally:
        if not ended and not spec.keep_on_exit:
            try:
                cancel(spec.id)
            except errors.SwarmError:  # not submitted after all, or the node is gone: nothing to add
                pass


def job_spec(argv: Sequence[str] | str, **options: Any) -> JobSpec:
    """Build a ``JobSpec`` from the friendly options of ``Client.submit``.

    ``argv`` is a list of arguments, or one string run by ``/bin/sh -c``.
    Options: name, env (mapping), cwd, timeout ("30s", "10m" or seconds),
    retries, priority, cpus, mem ("512M", "2G" or bytes), gpus, after, after_any
    (job ids), node (name or id to pin to), image, on_disconnect ("stop", the
    default, or "keep"), max_output (bytes of output kept per attempt, "1G" or bytes;
    default 64 MiB), keep_on_exit (``run`` only: keep the job running if
    the caller stops reading its stream; by default that cancels it), job_id
    (client-chosen id, for idempotent resubmission), gpu_mem (each GPU has at least this
    much memory, "10G" or bytes; implies gpus=1 when gpus is not given), constraints
    ("K=V" or "K!=V", or a list of them: node labels to match), mounts ("SRC:DST" or "SRC:DST:ro",
    or a list of them: absolute host paths of the node that runs an ``image`` job, bind-mounted
    into its container where its user may read them, and write them unless ":ro"), stdin (text,
    bytes, or a binary file read to its end: what every attempt reads as its stdin, shipped with
    the job; an ``image`` job's container reads it too), hold (submit it held: it waits until
    ``release``), begin (not before then: "30m", "now+2h", "03:00", "2026-12-24T18:00", a
    ``datetime`` or Unix seconds), every (run it again every "1d", "6h" or seconds, from its start
    time: ``ID.1``, ``ID.2``, ... each once the one before ended; a cancel ends the series),
    notify (an http(s) URL the leader POSTs a JSON summary to when the job ends: ntfy, a chat
    webhook; see ``node.notices``), signal ("USR1@5m": sent to each attempt's main process that
    long before its time limit, 60 s without ``@``, to checkpoint; it needs a timeout), preemptible
    (a job of a higher priority that finds no room elsewhere may stop it, to run first; it runs
    again from the start, no retry spent: ``scheduler.preemption``).
    """
    unknown = set(options) - _SPEC_OPTIONS
    if unknown:
        raise errors.InvalidJobSpecError(_unknown_options(sorted(map(str, unknown))))
    try:
        return _job_spec(argv, options)
    except (ValueError, errors.ConfigError) as exc:  # ConfigError: a duration or size that does not parse
        raise errors.InvalidJobSpecError(str(exc)) from None


def _job_spec(argv: Sequence[str] | str, options: Mapping[str, Any]) -> JobSpec:
    """``job_spec`` proper: every bad value is a ``ValueError`` (or a ``SwarmError`` from the units)."""
    if isinstance(argv, str):
        if not argv.strip():  # `sh -c ''` would "succeed" having run nothing
            raise ValueError("a job needs a command: argv is an empty shell string")
        args: tuple[str, ...] = ("/bin/sh", "-c", argv)
    elif isinstance(argv, (list, tuple)):
        args = tuple(_arg(a) for a in argv)
    else:
        raise ValueError(f"argv must be a list of arguments or one shell string, not {type(argv).__name__}")
    env = options.get("env") or {}
    if not isinstance(env, Mapping):
        raise ValueError("env must be a mapping of names to values")
    fields: dict[str, Any] = {
        "id": _text("job_id", options.get("job_id")) or new_job_id(),
        "argv": args,
        "name": _text("name", options.get("name")) or "",
        "env": {_arg(k): _arg(v) for k, v in env.items()},
        "cwd": _text("cwd", options.get("cwd")),
        "timeout_s": parse_duration(options.get("timeout")),
        "retries": _whole("retries", options.get("retries")),
        "priority": _whole("priority", options.get("priority")),
        "cpus": _number("cpus", options.get("cpus"), 1.0),
        "mem_bytes": _size(options.get("mem")),
        "gpus": _whole("gpus", options.get("gpus")),
        "after": _refs("after", options.get("after")),
        "after_any": _refs("after_any", options.get("after_any")),
        "node": _text("node", options.get("node")),
        "image": _text("image", options.get("image")),
        "on_disconnect": _text("on_disconnect", options.get("on_disconnect")) or "stop",
        "keep_on_exit": _flag("keep_on_exit", options.get("keep_on_exit")),
        "max_procs": _whole("max_procs", options.get("max_procs")),
        "max_file_size": _size(options.get("max_file_size"), "max_file_size"),
        "max_output_bytes": _size(options.get("max_output"), "max_output"),
        "files": _manifest(options.get("files")),
        "keep": _strings(options.get("keep"), "keep must be a pattern or a list of patterns (gitignore syntax)"),
        "gpu_mem": _size(options.get("gpu_mem"), "gpu_mem"),
        "constraints": _strings(
            options.get("constraints"), "constraints must be KEY=VALUE (or KEY!=VALUE) or a list of them"
        ),
        "mounts": _strings(options.get("mounts"), "mounts must be SRC:DST (or SRC:DST:ro) or a list of them"),
        "stdin": _stdin_ref(options.get("stdin")),
        "hold": _flag("hold", options.get("hold")),
        "preemptible": _flag("preemptible", options.get("preemptible")),
        "begin_at": parse_begin(options.get("begin"), time.time()),
        "every_s": parse_duration(options.get("every")) or 0.0,
        "notify": _text("notify", options.get("notify")) or "",
    }
    fields["warn_signal"], fields["warn_before_s"] = parse_warning(options.get("signal"))
    if fields["gpu_mem"] and not fields["gpus"]:
        if options.get("gpus") is not None:  # gpus=0 said so: not taken for "any count"
            raise ValueError(GPU_MEM_WITHOUT_GPUS)
        fields["gpus"] = 1
    check_job(fields, submitted=True)
    if fields["on_disconnect"] not in ("stop", "keep"):
        raise ValueError(f"on_disconnect must be stop or keep, got {printable(fields['on_disconnect'])[:40]!r}")
    return JobSpec(**fields)


def job_changes(**options: Any) -> JobChanges:
    """A ``JobChanges`` from ``Client.update``'s friendly options (``UPDATE_OPTIONS``; None or left
    out: as it is), checked as a submission's: node "" unpins the job, timeout 0 (or "none") lifts
    its limit, begin "" or 0 lets it start at once; constraints replace the job's (``[]``: none)."""
    unknown = set(options) - set(UPDATE_OPTIONS)
    if unknown:
        raise errors.InvalidJobSpecError(_unknown_options(sorted(map(str, unknown))))
    given = {k: v for k, v in options.items() if v is not None}
    if not given:
        raise errors.ConfigError(f"say what to change: {', '.join(UPDATE_OPTIONS)}")
    try:
        timeout = given.get("timeout")
        if isinstance(timeout, str) and timeout.strip().lower() == "none":
            timeout = 0
        fields: dict[str, Any] = {
            "priority": _whole("priority", given["priority"]) if "priority" in given else None,
            "cpus": _number("cpus", given["cpus"], 1.0) if "cpus" in given else None,
            "mem_bytes": _size(given["mem"]) if "mem" in given else None,
            "gpus": _whole("gpus", given["gpus"]) if "gpus" in given else None,
            "gpu_mem": _size(given["gpu_mem"], "gpu_mem") if "gpu_mem" in given else None,
            "constraints": (
                _strings(given["constraints"], "constraints must be KEY=VALUE (or KEY!=VALUE) or a list of them")
                if "constraints" in given
                else None
            ),
            "node": _text("node", given["node"]) if "node" in given else None,
            "timeout_s": parse_duration(timeout, zero=True) if timeout is not None else None,
            "retries": _whole("retries", given["retries"]) if "retries" in given else None,
            "begin_at": parse_begin(given["begin"], time.time()) if "begin" in given else None,
            "preemptible": _flag("preemptible", given["preemptible"]) if "preemptible" in given else None,
        }
        check_job({k: v for k, v in fields.items() if v is not None and not (k == "timeout_s" and v == 0)})
    except (ValueError, errors.ConfigError) as exc:
        raise errors.InvalidJobSpecError(str(exc)) from None
    return JobChanges(**fields)


def signal_of(signal: object) -> int:
    """The number of the signal ``signal`` names (``limits.signal_number``); ``ConfigError``."""
    try:
        return signal_number(signal)
    except ValueError as exc:
        raise errors.ConfigError(str(exc)) from None


def changes_body(changes: JobChanges) -> dict[str, Any]:
    """The HTTP API's fields for ``changes`` (``Client.update``'s options; ``job_changes`` reads
    them back): numbers, so that a start time is the asking machine's, as with ``submit``."""
    named = {
        "priority": changes.priority, "cpus": changes.cpus, "mem": changes.mem_bytes, "gpus": changes.gpus,
        "gpu_mem": changes.gpu_mem, "constraints": changes.constraints, "node": changes.node,
        "timeout": changes.timeout_s, "retries": changes.retries, "begin": changes.begin_at,
        "preemptible": changes.preemptible,
    }  # fmt: skip
    return {k: list(v) if isinstance(v, tuple) else v for k, v in named.items() if v is not None}


def _stdin_data(value: object) -> bool:
    """Whether ``stdin=`` holds the input itself (text, bytes or a binary file), to upload."""
    return isinstance(value, (str, bytes, bytearray, memoryview)) or hasattr(value, "read")


def _readable(value: Any) -> Any:
    import io

    if isinstance(value, str):
        return io.BytesIO(value.encode())
    return io.BytesIO(bytes(value)) if isinstance(value, (bytes, bytearray, memoryview)) else value


def _arg(value: object) -> str:
    """A command argument or env entry: text, or something that is text by ``str`` (a number, a path)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)) or value is None:
        raise ValueError(f"command arguments and env entries must be text, not {type(value).__name__}")
    if isinstance(value, os.PathLike):
        return str(os.fspath(value))
    if isinstance(value, (int, float)):
        return str(value)
    raise ValueError(f"command arguments and env entries must be text, not {type(value).__name__}")


def _text(name: str, value: object) -> Any:
    if value is None or isinstance(value, str):
        return value
    if name == "cwd" and isinstance(value, os.PathLike):
        return os.fspath(value)
    raise ValueError(f"{name} must be text, not {type(value).__name__}")


def _flag(name: str, value: object) -> bool:
    """A yes or no (JSON's true or false): never a string's truth ("false" is not true)."""
    if value is None or isinstance(value, bool):
        return bool(value)
    raise ValueError(f"{name} must be true or false, got {_shown(value)}")


def _whole(name: str, value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{name} must be a whole number, got {_shown(value)}")


def _number(name: str, value: object, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, int) and value.bit_length() > 64:
            raise ValueError(f"{name} must be at most {MAX_CPUS:g}, got {_shown(value)}")
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{name} must be a number, got {_shown(value)}")


def _size(value: object, name: str = "mem") -> int:
    if isinstance(value, bool) or not (value is None or isinstance(value, (int, str, float))):
        raise ValueError(f"{name} must be a size such as 512M or 2G, got {_shown(value)}")
    return parse_size(value)  # type: ignore[arg-type]


def _refs(name: str, value: object) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"{name} must be a job id or a list of job ids")


def _manifest(value: object) -> tuple[tuple[str, str, int, int], ...]:
    """``files=``: (path, sha256, size, mode) entries, as ``Client.upload`` returns them."""
    if not value:
        return ()
    if not isinstance(value, (list, tuple)) or not all(isinstance(f, (list, tuple)) and len(f) == 4 for f in value):
        raise ValueError("files must be a list of (path, sha256, size, mode), as Client.upload returns")
    return tuple((f[0], f[1], f[2], f[3]) for f in value)


def _stdin_ref(value: object) -> tuple[str, int] | None:
    """``stdin=``: None, or (sha256, size) of bytes uploaded already (``Client.submit(stdin=b"...")``
    uploads them and passes this)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and len(value) == 2 and isinstance(value[0], str):
        return (value[0], value[1])
    raise ValueError("stdin must be text, bytes or a binary file: what the job reads as its stdin")


def _strings(value: object, refusal: str) -> tuple[str, ...]:
    """An option that takes one string or a list of them (``keep``, ``constraints``)."""
    if not value:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(refusal)


def prune_bounds(older_than: object, keep: object) -> tuple[float | None, int | None]:
    """``Client.prune``'s overrides, checked: a positive duration, and 0 or more jobs."""
    seconds = parse_duration(older_than)  # type: ignore[arg-type]
    if keep is None:
        return seconds, None
    try:
        count = _whole("keep", keep)
    except ValueError as exc:
        raise errors.ConfigError(str(exc)) from None
    if not 0 <= count <= 10**9:
        raise errors.ConfigError(f"keep must be 0 to 1000000000 finished jobs, got {_shown(keep)}")
    return seconds, count


_CLI_NAMES = {"id": "job_id", "command": "argv", "cmd": "argv"}
"""Options under the name `swarm run` or `swarm show` gives them, too far from the spec's for a
close match: ``{"id": ...}`` in a REST submission said only that ``id`` is unknown."""


def _unknown_options(names: list[str]) -> str:
    """``unknown job option 'cpu' (did you mean 'cpus'?)``: at most five named."""
    shown = []
    for name in names[:5]:
        close = _CLI_NAMES.get(name) or likely_meant(name, sorted(_SPEC_OPTIONS), cutoff=0.75)
        hint = f" (did you mean {close!r}?)" if close else ""
        shown.append(f"{printable(name)[:40]!r}{hint}")
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return f"unknown {plural(len(names), 'job option')} {', '.join(shown)}{more}"


def job_specs(specs: Iterable[Mapping[str, Any]]) -> list[JobSpec]:
    """The ``JobSpec``s of ``submit_many``'s argument (each ``{"argv": ..., **options}``), checked
    as one batch: what ``Client.submit_many`` and the HTTP API's ``POST /api/v1/jobs`` take."""
    if isinstance(specs, (str, bytes, Mapping)) or not isinstance(specs, Iterable):
        raise errors.InvalidJobSpecError("submit_many takes a list of specs, each {'argv': ..., **options}")
    built = []
    for spec in specs:
        if not isinstance(spec, Mapping):
            raise errors.InvalidJobSpecError(
                f"each spec is a mapping {{'argv': ..., **options}}, not {type(spec).__name__}"
            )
        options = {str(k): v for k, v in spec.items()}
        if "argv" not in options:
            raise errors.InvalidJobSpecError("each spec needs an 'argv' (list or shell string)")
        built.append(job_spec(options.pop("argv"), **options))
        if len(built) > MAX_BATCH:
            raise errors.InvalidJobSpecError(f"more than {MAX_BATCH} jobs in one submission: split them up")
    if built:
        validate_batch(built)  # the daemon checks again; this says it before the round trip
    return built


def grouped_specs(spec: JobSpec, array: str | None, ranks: int | None, ranks_per_node: int | None) -> list[JobSpec]:
    """The jobs one submitted ``spec`` stands for: the elements of an ``array`` ("0-99%10",
    ``swarmcompute.arrays``), the ranks of a gang of ``ranks`` (``swarmcompute.state.gangs``), or
    itself; ``InvalidJobSpecError`` for a bad or contradictory shape. ``Client.submit`` and the HTTP
    API's ``POST /api/v1/jobs`` both expand a submission with it."""
    from swarmcompute.arrays import elements
    from swarmcompute.state.gangs import ranks_of

    try:
        if array is not None and (ranks is not None or ranks_per_node is not None):
            raise ValueError("a job is an array (--array) or a gang (--ranks), not both")
        if array is not None:
            return elements(spec, array)
        if ranks is None and ranks_per_node is None:
            return [spec]
        if ranks is None:
            raise ValueError("ranks_per_node needs ranks: how many ranks the gang has")
        return ranks_of(spec, ranks, ranks_per_node or 0)
    except ValueError as exc:
        raise errors.InvalidJobSpecError(str(exc)) from None


GROUPING = ("array", "ranks", "ranks_per_node")
"""Keys of a submitted item that make it stand for many jobs (``grouped_specs``)."""


def expanded_specs(items: Iterable[Mapping[str, Any]]) -> tuple[list[JobSpec], list[str]]:
    """The job specs of a submission's items (``submit_many``'s, the HTTP API's ``POST
    /api/v1/jobs``) and one id per item: an item with ``"array": "0-99%10"`` stands for its
    elements (``swarmcompute.arrays``), one with ``"ranks": N`` (and ``"ranks_per_node": K``) for
    its gang's ranks (``swarmcompute.state.gangs``), and its id is the array's or the gang's. A
    job of the same submission may run ``after`` such an array or gang (a pipeline in one go)."""
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
        raise errors.InvalidJobSpecError("submit_many takes a list of specs, each {'argv': ..., **options}")
    items = list(items)
    built = job_specs(
        [{k: v for k, v in item.items() if k not in GROUPING} if isinstance(item, Mapping) else item for item in items]
    )
    specs: list[JobSpec] = []
    for item, spec in zip(items, built, strict=True):
        specs.extend(grouped_specs(spec, item.get("array"), item.get("ranks"), item.get("ranks_per_node")))
        if len(specs) > MAX_BATCH:
            raise errors.InvalidJobSpecError(f"more than {MAX_BATCH} jobs in one submission: split them up")
    return specs, [spec.id for spec in built]


SUBMIT_REQUEST_JOBS = 10_000
"""Jobs per submit request of an array (``Client.submit``, `swarm run --array`)."""


def submit_framed(
    call: Callable[[tuple[JobSpec, ...]], list[str]], specs: Sequence[JobSpec], size: int = SUBMIT_REQUEST_JOBS
) -> list[str]:
    """Submit ``specs`` in requests of at most ``size`` jobs (``state.table.submit_chunks``: jobs
    that wait on each other, or a gang's ranks, go in one); a request over a control frame's 16 MiB
    (``FrameTooLargeError``, raised before anything is sent: long command lines or environments)
    goes as two halves where its jobs may be split. Returns what each ``call`` returned, in order.
    A request that fails after others went in fails as ``PartlySubmittedError``, which says how
    many went in and that the same submission again adds the rest (``state.table.partly_submitted``):
    `swarm run --array 0-20000` that said only "array id ... is taken" had created 10,000 jobs."""
    ids: list[str] = []
    todo = submit_chunks(specs, size)
    while todo:
        part = todo.pop(0)
        try:
            ids += call(part)
        except errors.FrameTooLargeError:
            pieces = halves(part)
            if len(pieces) == 1:
                raise errors.FrameTooLargeError(
                    too_big_to_cut(part, "over the 16 MiB one submission may carry")
                ) from None
            todo[:0] = pieces
        except errors.SwarmError as exc:
            if not ids:
                raise
            why = str(exc)
            if isinstance(exc, errors.PartlySubmittedError):  # it says what to do: once is enough
                why = why.split("; submit ", 1)[0]
            raise errors.PartlySubmittedError(partly_submitted(len(ids), specs, why)) from None
    return ids


class Client:
    """A connection to the daemon of one state directory; with ``url`` (or ``$SWARM_URL`` when no
    ``state_dir`` is given), to a cluster through a node's HTTP API (``web.remote.RemoteClient``,
    with ``token`` or ``$SWARM_API_TOKEN``)."""

    def __new__(cls, state_dir: object = None, *, url: str | None = None, **_options: Any) -> Client:
        if cls is Client and (url is not None or (state_dir is None and os.environ.get("SWARM_URL"))):
            from swarmcompute.web.remote import RemoteClient

            return super().__new__(RemoteClient)
        return super().__new__(cls)

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        timeout_s: float = 30.0,
        url: str | None = None,
        token: str | None = None,
    ) -> None:
        if state_dir is not None and not isinstance(state_dir, (str, os.PathLike)):
            raise errors.ConfigError(f"state_dir must be a path, not {type(state_dir).__name__}")
        try:
            self.paths = StatePaths.resolve(state_dir, client=True)
        except (TypeError, ValueError) as exc:  # a NUL byte, bytes for str, ...
            raise errors.ConfigError(f"unusable state_dir: {exc}") from None
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not 0 < timeout_s < 1e9:
            raise errors.ConfigError(f"timeout_s must be a positive number of seconds, got {_shown(timeout_s)}")
        self.timeout_s = float(timeout_s)

    # -- jobs ------------------------------------------------------------------

    def submit(
        self,
        argv: Sequence[str] | str,
        *,
        array: str | None = None,
        ranks: int | None = None,
        ranks_per_node: int | None = None,
        **options: Any,
    ) -> str:
        """Submit one job; return its id once the daemon has durably recorded it.

        ``array="0-99%10"``: one job per index instead (``swarmcompute.arrays``), named
        ``NAME[i]`` with ``SWARM_ARRAY_ID``/``SWARM_ARRAY_INDEX`` set; returns the array id, which
        ``wait``, ``cancel`` and ``jobs`` take. ``ranks=N`` (``ranks_per_node=K``): a gang of N
        ranks that run all at once or not at all (``swarmcompute.state.gangs``; README, *Gangs*);
        returns the gang id, which ``wait``, ``cancel``, ``job`` and ``logs`` take (``job``/``logs``:
        rank 0; each rank's id is ``GANG.R``)."""
        if array is None and ranks is None and ranks_per_node is None:
            return self.submit_many([{"argv": argv, **options}])[0]
        [spec] = job_specs(self._ship(s) for s in [{"argv": argv, **options}])
        submit_framed(self._submit, grouped_specs(spec, array, ranks, ranks_per_node))
        return spec.id

    def submit_many(self, specs: Iterable[Mapping[str, Any]]) -> list[str]:
        """Submit many jobs in one round trip (more when they are over a control frame's 16 MiB:
        ``submit_framed``); each spec is ``{"argv": ..., **options}``.

        ``upload`` (paths, each a file or directory, shipped under the same relative name),
        ``workdir`` (a directory shipped as the job's working directory, less what its
        ``.gitignore``/``.swarmignore`` exclude) and ``max_upload`` (the cap, default 256 MiB) ship
        files with a job: the job then runs in a directory of its own on its node (README, *Files*).
        ``array`` ("0-99%10") or ``ranks`` (and ``ranks_per_node``) make a spec an array or a gang
        (``expanded_specs``); one id is returned for each spec, the array's or the gang's for those,
        and a later spec may run ``after`` one of them: a pipeline in one submission."""
        built, ids = expanded_specs([self._ship(spec) for spec in specs])
        if not built:
            return []
        submit_framed(self._submit, built, len(built))  # one round trip, unless over a frame
        return ids

    def _submit(self, specs: tuple[JobSpec, ...]) -> list[str]:
        return list(self._call(m.Submit(specs)))

    def wait(self, job_ids: str | Sequence[str], timeout: float | str | None = None) -> Any:
        """Block until the jobs end; return the job (or list of jobs, for a list of ids).

        Raises ``errors.WaitTimeoutError`` when ``timeout`` passes first.
        """
        from swarmcompute.api.replay import again_when_back

        single = isinstance(job_ids, str)
        ids = (job_ids,) if isinstance(job_ids, str) else _job_refs(job_ids)
        timeout_s = parse_duration(timeout, zero=True)  # 0: answer now, or say what still runs

        def wait(left_s: float | None) -> list[Any]:
            io_timeout = None if left_s is None else left_s + self.timeout_s
            cursor = new_cursor()
            return in_pages(
                lambda offset, limit: self._call(
                    m.Wait(() if offset else ids, left_s, offset, limit, cursor),
                    io_timeout_s=io_timeout,
                    wait_forever=left_s is None,
                )
            )

        views = again_when_back(wait, timeout_s, self.where)  # a daemon restarted meanwhile: asked again
        return views[0] if single and len(views) == 1 else views  # an array id: all its elements

    def rerun(self, job_id: str, *, every: bool = False, new_id: str | None = None) -> str:
        """Run an ended job again as a new job, with its command and options (its shipped files and
        stdin too), as the user who asks; return the new id (`swarm rerun`, ``swarmcompute.rerun``).
        An array id: a new array of its elements that did not succeed (``every``: all of them); a
        gang id: a new gang of the same shape. ``new_id``: the id to give it (asking again with it is
        a no-op, as a submission's)."""
        answer = self._call(m.Rerun(_job_ref(job_id), new_id or new_job_id(), bool(every)))
        spec, ranks = answer["spec"], answer["ranks"]
        submit_framed(
            self._submit, grouped_specs(spec, answer["array"], ranks, answer["ranks_per_node"] if ranks else None)
        )
        return str(spec.id)

    def job(self, job_id: str) -> dict[str, Any]:
        """One job's record (id, a unique prefix, or a name), with ``pull`` (how far its node has got
        pulling its image, or None); for an array id, the array (``arrays.array_view``)."""
        record: dict[str, Any] = self._call(m.GetJob(_job_ref(job_id)))
        return record

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
        """The most recent jobs, newest first, optionally only in ``states``, whose name the shell
        pattern ``name`` matches (``sweep-*``), whose current attempt is on ``node`` and that
        ``user`` submitted. ``grouped``: `swarm jobs`'s lines, ``limit`` of them: an array or a gang
        as its first member's record with ``group`` (``kind``, ``id``, ``size``, ``counts`` by
        state, ``submitted_at``, ``attempt``, ``nodes``), over all its members in ``states``."""
        limit, states = list_request(limit, states)
        name, node, user = selectors(name, node, user)
        cursor = new_cursor()
        return in_pages(
            lambda offset, page: self._call(
                m.ListJobs(limit, tuple(states), bool(grouped), offset, page, cursor, name, node, user)
            )
        )

    def logs(self, job_id: str, attempt: int | None = None) -> str:
        """The job's output so far (stdout and stderr interleaved) as text."""
        parts = [
            ev.data for ev in self.stream_logs(job_id, follow=False, attempt=attempt) if isinstance(ev, m.OutputChunk)
        ]
        return b"".join(parts).decode("utf-8", "replace")

    def stream_logs(
        self, job_id: str, *, follow: bool = False, attempt: int | None = None, from_first: bool = False
    ) -> Iterator[Any]:
        """Yield ``OutputChunk``, ``Notice`` and ``AttemptStart`` events (following: ``Progress`` too,
        while the node pulls the job's image), ending with a ``StreamEnd``; from the latest attempt,
        or ``attempt``, or (``from_first``) every attempt from the first."""
        check_attempt(attempt)
        yield from self._stream(m.Logs(_job_ref(job_id), bool(follow), attempt, bool(from_first)))

    @property
    def where(self) -> str:
        """The daemon this client talks to, for a line that says it went away."""
        return f"the daemon in {self.paths.root}"

    def run(self, argv: Sequence[str] | str, **options: Any) -> Iterator[Any]:
        """Submit one job and stream it: ``Submitted``, then output, then ``StreamEnd``. Stop
        reading before its end and the job is cancelled at once, unless ``keep_on_exit``. A
        daemon that restarts meanwhile is waited for (``api.replay.reattached``: a ``Notice``
        says so) and the stream goes on where it was."""
        from swarmcompute.api.replay import reattached

        shipped = dict(self._ship({"argv": argv, **options}))
        spec = job_spec(shipped.pop("argv"), **shipped)
        submit = m.Submit((spec,), attach=True)  # again after a restart: a no-op that attaches
        events = reattached(lambda: self._stream(submit), spec.id, self.where)
        yield from attached(events, spec, self.cancel)

    # -- files -----------------------------------------------------------------

    def _ship(self, spec: Mapping[str, Any]) -> Mapping[str, Any]:
        """``spec`` with its ``upload``/``workdir`` turned into a ``files`` manifest, whose blobs
        the daemon then holds; as `swarm run`, the script its command names shipped unasked, or
        else the caller's directory its ``cwd`` (``_as_here``)."""
        if not isinstance(spec, Mapping):
            return spec
        spec = _as_here(spec)
        if _stdin_data(spec.get("stdin")):
            from swarmcompute.files import manifest, transfer

            cap = spec.get("max_upload")
            try:
                max_bytes = manifest.DEFAULT_MAX_UPLOAD if cap is None else _size(cap, "max_upload")
            except (ValueError, errors.ConfigError) as exc:
                raise errors.InvalidJobSpecError(str(exc)) from None
            spec = {**spec, "stdin": self._stdin_shipped(_readable(spec["stdin"]), max_bytes)}
        if not any(k in spec for k in _SHIP_OPTIONS):
            return spec
        from swarmcompute.files import manifest, transfer

        options = dict(spec)
        uploads = options.pop("upload", None) or ()
        workdir = options.pop("workdir", None)
        cap = options.pop("max_upload", None)
        if isinstance(uploads, (str, os.PathLike)):
            uploads = [uploads]
        if not isinstance(uploads, (list, tuple)) or not all(isinstance(u, (str, os.PathLike)) for u in uploads):
            raise errors.InvalidJobSpecError("upload must be a path or a list of paths")
        if workdir is not None and not isinstance(workdir, (str, os.PathLike)):
            raise errors.InvalidJobSpecError("workdir must be a path")
        try:
            max_bytes = manifest.DEFAULT_MAX_UPLOAD if cap is None else _size(cap, "max_upload")
        except (ValueError, errors.ConfigError) as exc:
            raise errors.InvalidJobSpecError(str(exc)) from None
        shipment = manifest.build(
            [os.fspath(u) for u in uploads], None if workdir is None else os.fspath(workdir), max_bytes=max_bytes
        )
        _say_skipped(shipment)
        transfer.upload(self, shipment)
        options["files"] = [*shipment.entries, *(options.get("files") or ())]
        return options

    def _stdin_shipped(self, readable: Any, max_bytes: int) -> Any:
        """``stdin=``'s bytes uploaded (unless the daemon holds them): the (sha256, size) a job names."""
        from swarmcompute.files import transfer

        return transfer.upload_stdin(self, readable, max_bytes)

    def upload(self, paths: Sequence[str], *, workdir: str | None = None) -> list[tuple[str, str, int, int]]:
        """Send these files to the daemon (only the contents it lacks) and return their manifest,
        to pass as ``files=`` to ``submit``; ``submit(upload=..., workdir=...)`` does both."""
        from swarmcompute.files import manifest, transfer

        shipment = manifest.build(list(paths), workdir)
        _say_skipped(shipment)
        transfer.upload(self, shipment)
        return shipment.entries

    def files(self, job_id: str, attempt: int | None = None) -> dict[str, Any]:
        """What the job's latest attempt that ran (or ``attempt``) left in its staged directory:
        ``job_id``, ``attempt``, ``node``, ``files`` (each ``path``, ``size``, ``mode``, ``sha256``)
        and ``dropped`` (each ``path``, ``size``, ``why``). ``FilesError`` when nothing is kept."""
        from swarmcompute.files import transfer

        return transfer.files(self, _job_ref(job_id), attempt)

    def fetch(self, job_id: str, path: str, dest: str | os.PathLike[str], attempt: int | None = None) -> list[str]:
        """Copy a file (or directory; "." for all) the job left to ``dest``, as `swarm cp`
        does; returns the local paths written."""
        from swarmcompute.files import transfer

        if not isinstance(path, str):
            raise errors.ConfigError(f"path must be text, not {type(path).__name__}")
        return transfer.fetch(self, _job_ref(job_id), path, dest, attempt)

    def fetch_to(self, job_id: str, path: str, out: Any, attempt: int | None = None) -> None:
        """Write a file the job left to the binary stream ``out`` (a directory, or "." for all: as a
        tar archive), as `swarm cp JOB:PATH -` does."""
        from swarmcompute.files import transfer

        if not isinstance(path, str):
            raise errors.ConfigError(f"path must be text, not {type(path).__name__}")
        transfer.fetch_to(self, _job_ref(job_id), path, out, attempt)

    def download(self, job_id: str, patterns: Sequence[str], dest: str = ".") -> list[str]:
        """Copy the files the job left that match ``patterns`` (gitignore syntax) into ``dest``
        under their own paths (`swarm run --download`); returns the paths written. Matching files
        its node did not keep (over the cap, links) are in ``files(job_id)["dropped"]``."""
        from swarmcompute.files import transfer

        return transfer.download(self, _job_ref(job_id), list(patterns), dest)

    def cancel(self, job_id: str) -> Any:
        """Cancel a job (its processes are stopped); return its record (for an array id, the
        list of its elements' records)."""
        ref, cursor = _job_ref(job_id), new_cursor()
        records = in_pages(lambda offset, limit: self._call(m.Cancel(() if offset else (ref,), offset, limit, cursor)))
        return records[0] if len(records) == 1 else records

    def cancel_selected(
        self, states: Sequence[str] = (), *, name: str = "", node: str = "", user: str = "", every: bool = False
    ) -> list[dict[str, Any]]:
        """Cancel the open jobs of yours (every user's, for root) in ``states`` whose name the shell
        pattern ``name`` matches, whose current attempt is on ``node`` and that ``user`` submitted,
        or (``every``) all of them; their records (`swarm cancel --state/--name/--node/--user/--all`)."""
        _, states = list_request(0, states)
        name, node, user = selectors(name, node, user)
        cursor = new_cursor()
        asked = (tuple(states), name, node, user, bool(every))
        return in_pages(lambda offset, limit: self._call(m.Cancel((), offset, limit, cursor, *asked)))

    def hold(self, *jobs: str, name: str = "", user: str = "", every: bool = False) -> list[dict[str, Any]]:
        """Hold pending jobs: they wait, never placed, until ``release`` (an array id: each of its
        elements; a gang's id: its ranks). Without ``jobs``: the pending jobs of yours (every user's,
        for root) whose name the shell pattern ``name`` matches and that ``user`` submitted, or
        (``every``) all of them. One ``{"id", "state", "held", "outcome"}`` a job; ``outcome`` is
        "held", "already" (held before) or "not_pending" (it was placed already: left as it is)."""
        return list(self._call(m.Hold(*hold_request(True, jobs, name, user, every))))

    def release(self, *jobs: str, name: str = "", user: str = "", every: bool = False) -> list[dict[str, Any]]:
        """Release held jobs (as ``hold`` selects them): they are placed as any pending job;
        ``outcome`` "released", "already" (not held) or "not_pending"."""
        return list(self._call(m.Hold(*hold_request(False, jobs, name, user, every))))

    def update(
        self, *jobs: str, name: str = "", user: str = "", every: bool = False, **changes: Any
    ) -> list[dict[str, Any]]:
        """Change pending jobs (`swarm update`, ``scontrol update``): ``changes`` are ``submit``'s
        options of ``UPDATE_OPTIONS`` (priority, cpus, mem, gpus, gpu_mem, constraints, node, timeout,
        retries, begin, preemptible), checked as a submission's; node "" unpins, timeout 0 lifts the
        limit, begin 0 starts at once. A job keeps its place in line within its priority; a held job
        stays held; a job placed already takes ``timeout``, ``retries`` and ``preemptible`` alone. Jobs are chosen as ``hold`` chooses them (an array id: its elements; a gang's id: its
        ranks, changed together). One ``{"id", "state", "outcome"}`` a job; ``outcome`` is "updated",
        "unchanged" (it already was so) or "not_pending" (placed already: left as it is)."""
        asked = job_changes(**changes)
        refs, _, name, user, every = hold_request(True, jobs, name, user, every)
        return list(self._call(m.Update(refs, asked, name, user, every)))

    def requeue(
        self, *jobs: str, hold: bool = False, name: str = "", user: str = "", every: bool = False
    ) -> list[dict[str, Any]]:
        """Send placed jobs back to be placed again (`swarm requeue`, ``scontrol requeue``): each
        assigned or running attempt is stopped, as lost, not failed (its retries are not spent),
        and once its node said so the job is placed again, so it never runs twice (``hold``: it
        waits, held, until ``release``: ``scontrol requeuehold``). Jobs are chosen as ``hold``
        chooses them, among the assigned and running ones. One ``{"id", "state",
        "attempt", "outcome"}`` a job; ``outcome`` is "requeued", "already" (told to stop already),
        "held" (a pending element of an array requeued with ``hold``: held with it) or "not_placed"
        (pending or ended: left as it is)."""
        refs, _, name, user, every = hold_request(True, jobs, name, user, every)
        return list(self._call(m.Requeue(refs, name, user, every, bool(hold))))

    def signal(
        self,
        *jobs: str,
        signal: str | int = "TERM",
        group: bool = False,
        name: str = "",
        user: str = "",
        every: bool = False,
    ) -> list[dict[str, Any]]:
        """Send ``signal`` (``USR1``, ``SIGHUP``, ``10``; default TERM) to running jobs (`swarm
        signal`: ``docker kill -s``, ``scancel --signal``): their node sends it to the running
        attempt's main process, or (``group``) its whole process group (a Docker job's: its
        container's main process). Jobs are chosen as ``hold`` chooses them, among the running
        jobs. One ``{"id", "state", "attempt", "outcome"}`` a job; ``outcome``
        is "signalled", "not_running" (left as it is) or "too_many" (``MAX_SIGNALS`` this attempt)."""
        refs, _, name, user, every = hold_request(True, jobs, name, user, every)
        return list(self._call(m.Signal(refs, signal_of(signal), bool(group), name, user, every)))

    # -- API tokens (the HTTP API's; they act as the user calling these) ---------

    def create_api_token(
        self, name: str, *, read_only: bool = False, expires: float | str | None = None
    ) -> dict[str, Any]:
        """Make an HTTP API token named ``name``; the answer's ``token`` is its secret, shown only now."""
        if not isinstance(name, str):
            raise errors.ConfigError(f"a token name is text, not {type(name).__name__}")
        token: dict[str, Any] = self._call(m.ApiTokenCreate(name, bool(read_only), parse_duration(expires)))
        return token

    def api_tokens(self) -> list[dict[str, Any]]:
        """The cluster's API tokens (never their secrets)."""
        tokens: list[dict[str, Any]] = self._call(m.ApiTokenList())
        return tokens

    def revoke_api_token(self, name: str) -> None:
        """Revoke a token on every node."""
        self._call(m.ApiTokenRevoke(name if isinstance(name, str) else str(name)))

    # -- the node --------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Cluster id, leader, term, the nodes and job counts by state."""
        status: dict[str, Any] = self._call(m.Status())
        return status

    def nodes(self, *, all: bool = False) -> list[dict[str, Any]]:
        """The nodes as `swarm nodes` lists them (the ``nodes`` of ``status``): names, labels,
        GPUs, whether drained, running jobs, version. ``all``: also those that left or have been
        dead longer than ``--forget-after`` (``hidden_nodes``), as `swarm nodes --all`."""
        status = self.status()
        return list(status["nodes"]) + (list(status.get("hidden_nodes") or ()) if all else [])

    def drain(self, node: str, *, wait: bool | float | str = False) -> dict[str, Any]:
        """Give ``node`` (a name or id) no new work; what runs there finishes. ``wait``: return only
        once it runs nothing (True: however long; seconds or "10m": ``WaitTimeoutError`` past it).
        Returns its row."""
        row = self._call(m.DrainNode(str(node), True))
        if wait is False:
            return dict(row)
        return self._wait_empty(row["id"], None if wait is True else parse_duration(wait))

    def undrain(self, node: str) -> dict[str, Any]:
        """Put a drained node back in service; returns its row."""
        return dict(self._call(m.DrainNode(str(node), False)))

    def label(self, node: str, *labels: str) -> dict[str, Any]:
        """Set labels on ``node`` ("K=V"; "K=" removes K), on every later leader too; returns its row."""
        return dict(self._call(m.LabelNode(str(node), tuple(str(x) for x in labels))))

    def _wait_empty(self, node_id: str, timeout_s: float | None) -> dict[str, Any]:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            row = next((n for n in self.nodes() if n["id"] == node_id), None)
            if row is None or not row.get("running_jobs"):
                return row or {"id": node_id}
            if deadline is not None and time.monotonic() > deadline:
                raise errors.WaitTimeoutError(
                    f"node {row['name']} still runs {counted(row['running_jobs'], 'job')}: it stays drained;"
                    f" `swarm drain {row['name']} --wait` waits again, `swarm jobs --node {row['name']}` lists them"
                )
            time.sleep(0.2)

    def prune(self, *, older_than: float | str | None = None, keep: int | None = None) -> dict[str, Any]:
        """Remove finished jobs and their output now (`swarm prune`), under the cluster's
        ``--keep-jobs``/``--keep-history`` or: ``older_than`` ("2d", seconds) finished longer ago
        than this go, ``keep`` at most this many finished jobs stay. Never a job an unfinished
        one waits on. Returns ``removed``, ``bytes`` (output deleted on this node),
        ``finished_kept`` and ``held``."""
        return dict(self._call(m.Prune(*prune_bounds(older_than, keep)), wait_forever=True))

    def forget(self, node: str) -> dict[str, Any]:
        """Drop a node gone for good (a name or id) from every node's view, peers.json and, if
        quorum allows, the Raft configuration (`swarm forget`); a live node is refused. Returns
        ``message`` (what happened), ``was_voter`` and ``voters``."""
        return dict(self._call(m.Forget(str(node))))

    def recover(self) -> list[str]:
        """Force the live voters to be the whole configuration (`swarm recover`; unsafe by design)."""
        voters: list[str] = self._call(m.Recover())
        return voters

    def rotate_key(self) -> str:
        """`swarm token --rotate`: give the cluster a new key; returns the new join token. Every
        member switches without a restart; the old token is refused from then on."""
        return str(self._call(m.RotateKey()))

    def policy(self) -> str:
        """The cluster's command policy, as the TOML text `swarm policy show` prints."""
        return str(self._call(m.PolicyGet()))

    def set_policy(self, text: str) -> str:
        """Replace the cluster's command policy with the one in ``text`` (TOML, as
        `swarm policy show` prints); returns the policy now in force. ``ConfigError`` for a bad
        one, ``PermissionDeniedError`` unless root (on a node shared by every local user)."""
        from swarmcompute.policy import parse_policy

        return str(self._call(m.PolicySet(parse_policy(text))))

    def shutdown(self) -> None:
        """Ask the daemon to stop gracefully (what `swarm leave` does)."""
        self._call(m.Shutdown())

    def ping(self, timeout_s: float = 1.0) -> bool:
        """True when a daemon answers on the control socket."""
        try:
            with self._connect(timeout_s) as channel:
                channel.send(m.Status())
                return isinstance(channel.receive(), m.Reply)
        except (errors.SwarmError, OSError):
            return False

    # -- plumbing --------------------------------------------------------------

    def _files_link(self) -> FilesLink:
        """How this client moves files (``files.transfer``): its daemon's control socket."""
        from swarmcompute.files.transfer import SocketLink

        return SocketLink(self)

    def _connect(self, timeout_s: float | None) -> BlockingChannel:
        try:
            return BlockingChannel.connect(self.paths.control_socket, timeout_s)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            raise errors.DaemonNotRunningError(str(self.paths.root)) from None
        except TimeoutError:
            raise errors.SwarmError(f"the daemon in {self.paths.root} did not accept a connection in time") from None
        except OSError as exc:  # a socket we may not open, a path too long, ...
            raise errors.ConfigError(f"cannot reach the daemon in {self.paths.root}: {exc.strerror or exc}") from None

    def _send(self, channel: BlockingChannel, request: object) -> None:
        try:
            channel.send(request)
        except (TypeError, ValueError, OverflowError) as exc:  # a value the codec cannot encode
            raise errors.ConfigError(f"cannot send this request: {str(exc)[:200]}") from None

    def _call(self, request: object, *, io_timeout_s: float | None = None, wait_forever: bool = False) -> Any:
        timeout = None if wait_forever else (io_timeout_s or self.timeout_s)
        with self._connect(self.timeout_s) as channel:
            try:
                channel.settimeout(timeout)
                self._send(channel, request)
                reply = channel.receive()
            except TimeoutError:
                raise errors.SwarmError(
                    f"the daemon in {self.paths.root} did not answer within {timeout:g}s: is it stopped or stuck?"
                    f" {lean.see_its_log(self.paths.root)}"
                ) from None
            except OSError as exc:
                raise errors.ProtocolError(f"lost the connection to the daemon in {self.paths.root}: {exc}") from None
        return _unwrap(reply)

    def tie(self, ref: str) -> BlockingChannel | None:
        """Tie the gang or array ``ref`` to a connection this process holds open (``m.Tie``): if
        the process goes before they all ended, however (``kill -9``), the daemon cancels what is
        left of them 3 s later. Close it once they ended. (None: no tie, over `--url`:
        ``RemoteClient``.)"""
        channel = self._connect(self.timeout_s)
        try:
            channel.settimeout(self.timeout_s)
            self._send(channel, m.Tie(ref))
            _unwrap(channel.receive())
            channel.settimeout(None)
        except BaseException:
            channel.close()
            raise
        return channel

    def _stream(self, request: object) -> Iterator[Any]:
        with self._connect(self.timeout_s) as channel:
            try:
                channel.settimeout(None)
                self._send(channel, request)
                while True:
                    event = channel.receive()
                    if isinstance(event, m.ErrorReply):
                        _unwrap(event)
                    yield event
                    if isinstance(event, m.StreamEnd):
                        return
            except OSError as exc:
                raise errors.ProtocolError(f"lost the connection to the daemon in {self.paths.root}: {exc}") from None


def _as_here(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    """A process job submitted without ``cwd``, ``upload``, ``workdir`` or ``files`` runs as
    `swarm run` runs it: the script its command names shipped with it (``manifest.auto_upload``:
    ``["./train.py"]``, ``["python", "train.py"]``), to run in a directory of its own, or else in
    the caller's directory. Before, such a job ran in its daemon's directory (``/`` under systemd)
    and shipped nothing: README's ``client.submit(["python", "train.py"])`` failed all 3 attempts
    (``can't open file '/…/train.py'``) and ``["./train.py"]`` was "command not found".
    ``upload=[]`` ships nothing (``--no-upload``); ``upload=["data"]`` ships the script too, as
    `swarm run --upload data ./train.py` does (it shipped only ``data``: "command not found")."""
    if any(k in spec for k in ("cwd", "workdir", "files")) or spec.get("image") is not None:
        return spec
    asked = spec.get("upload")
    if asked is not None and not asked:
        return {**spec, "cwd": os.getcwd()}
    argv = spec.get("argv")
    if not isinstance(argv, (list, tuple)) or not all(isinstance(a, str) for a in argv):
        return spec if asked else {**spec, "cwd": os.getcwd()}  # a shell string (`sh -c`), or bad: checked later
    from swarmcompute.files import manifest

    here = os.getcwd()
    problem = manifest.script_problem(argv, here)
    if problem is not None:  # it would fail on every node
        raise errors.InvalidJobSpecError(problem)
    shipped = manifest.auto_upload(argv, here)
    if asked:
        listed = list(asked) if isinstance(asked, (list, tuple)) else asked  # a bad one: checked later
        if isinstance(listed, list):
            listed += [p for p in shipped if p not in listed]
        return {**spec, "upload": listed}
    return {**spec, "upload": shipped} if shipped else {**spec, "cwd": here}


def _say_skipped(shipment: Any) -> None:
    """The links a shipment left out (``manifest.not_shipped``), as a ``UserWarning``: on stderr
    once, as `swarm run` says them, and a caller may turn it into an error or silence it."""
    if shipment.skipped:
        import warnings

        from swarmcompute.files import manifest

        warnings.warn(manifest.not_shipped(shipment.skipped), UserWarning, stacklevel=3)


def _unwrap(reply: Any) -> Any:
    if isinstance(reply, m.Reply):
        return reply.value
    if isinstance(reply, m.ErrorReply):
        raise error_from_reply(reply)
    raise errors.ProtocolError(f"unexpected reply {type(reply).__name__}")


def error_from_reply(reply: m.ErrorReply) -> errors.SwarmError:
    """Rebuild the daemon's exception as the same class, with its message."""
    return error_from(reply.kind, reply.message)
