"""What a job may ask for: one set of bounds, checked at the CLI, in the Client and again in
the daemon (which never trusts a client).

No imports: `swarm run` checks its options with this module before it connects, and its
start-up budget has no room for ``re``, ``unicodedata`` or the typed codec.

``check_job`` raises ``ValueError`` with one line saying what is wrong; each caller turns that
into its own error (exit 2 at the CLI, ``InvalidJobSpecError`` in the Client and the daemon).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

MAX_JOB_ID = 64
"""Job ids are 1-64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit
(they name a directory in the state dir and must be typeable)."""
MAX_INT = 2**53 - 1
"""The codec's bound on every int (``codec.MAX_INT``)."""
MAX_RETRIES = 1_000_000
MAX_PRIORITY = 1_000_000_000
"""Priorities are within -MAX_PRIORITY..MAX_PRIORITY."""
MAX_CPUS = 1_000_000.0
MAX_GPUS = 1_000_000
MAX_MEM_BYTES = MAX_INT
MAX_OUTPUT_BYTES = MAX_INT
"""``--max-output``: bytes of output kept per attempt (0 means the node's default, 64 MiB)."""
MAX_TIMEOUT_S = 100 * 365 * 86400.0
"""A century: longer is a typo, and asyncio timers are floats of seconds."""
MAX_PROCS = 4_194_304
"""``--max-procs``: the kernel's own ceiling on process ids (``pid_max``)."""
MAX_FILE_SIZE = MAX_INT
"""``--max-file-size`` in bytes."""
MAX_NAME = 256
"""Names, node pins and image names."""
MAX_DEPENDENCIES = 10_000
MAX_BATCH = 100_000
"""Jobs in one ``submit_many``."""

_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_ID_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


def job_id_problem(job_id: object) -> str | None:
    """Why ``job_id`` is not a valid job id, or None."""
    if not isinstance(job_id, str) or not 1 <= len(job_id) <= MAX_JOB_ID:
        return f"job id {_show(job_id)} must be 1-{MAX_JOB_ID} characters"
    if job_id[0] not in _ID_FIRST or not _ID_CHARS.issuperset(job_id):
        return f"job id {_show(job_id)} must be ASCII letters, digits, '.', '_' or '-', starting with a letter or digit"
    return None


def _int(name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, got {_show(value)}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, got {_show(value)}")


def _number(name: str, value: object, lo: float, hi: float, *, above_lo: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {_show(value)}")
    if isinstance(value, int) and not -MAX_INT <= value <= MAX_INT:
        raise ValueError(f"{name} must be between {lo:g} and {hi:g}, got {_show(value)}")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if value > hi or value < lo or (above_lo and value == lo):
        low = f"above {lo:g}" if above_lo else f"at least {lo:g}"
        raise ValueError(f"{name} must be {low} and at most {hi:g}, got {_show(value)}")


def _text(name: str, value: object, *, limit: int = MAX_NAME, printable_only: bool = True) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text, got {type(value).__name__}")
    if len(value) > limit:
        raise ValueError(f"{name} is {len(value)} characters, over the limit of {limit}")
    if printable_only and not value.isprintable():
        raise ValueError(f"{name} {_show(value)} has control or other unprintable characters")


def _no_nul(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text, got {type(value).__name__}")
    if "\0" in value:
        raise ValueError(f"{name} must not contain a NUL character")


def check_job(fields: Mapping[str, Any]) -> None:
    """Check the ``JobSpec`` fields present in ``fields``; raise ``ValueError`` naming the first
    problem. Types are checked too, so this is safe on anything a caller passed in."""
    if "id" in fields:
        problem = job_id_problem(fields["id"])
        if problem:
            raise ValueError(problem)
    if "argv" in fields:
        argv = fields["argv"]
        if not isinstance(argv, (list, tuple)) or not argv:
            raise ValueError("a job needs a command: `swarm run -- CMD ARGS...`")
        for arg in argv:
            _no_nul("a command argument", arg)
        if not argv[0]:
            raise ValueError("the command name is empty")
    if fields.get("name"):
        _text("the job name", fields["name"])
    env = fields.get("env")
    if env:
        if not hasattr(env, "items"):
            raise ValueError("env must be a mapping of names to values")
        for key, val in env.items():
            _no_nul("an environment variable name", key)
            _no_nul(f"environment variable {_show(key)}", val)
            if not key or "=" in key:
                raise ValueError(f"environment variable name {_show(key)} must be non-empty, without '='")
    if fields.get("cwd") is not None:
        _no_nul("cwd", fields["cwd"])
    if fields.get("timeout_s") is not None:
        _number("timeout", fields["timeout_s"], 0.0, MAX_TIMEOUT_S, above_lo=True)
    if "retries" in fields:
        _int("retries", fields["retries"], 0, MAX_RETRIES)
    if "priority" in fields:
        _int("priority", fields["priority"], -MAX_PRIORITY, MAX_PRIORITY)
    if "cpus" in fields:
        _number("cpus", fields["cpus"], 0.0, MAX_CPUS)
    if "mem_bytes" in fields:
        _int("mem", fields["mem_bytes"], 0, MAX_MEM_BYTES)
    if "gpus" in fields:
        _int("gpus", fields["gpus"], 0, MAX_GPUS)
    if "max_output_bytes" in fields:
        _int("max output", fields["max_output_bytes"], 0, MAX_OUTPUT_BYTES)
    for key in ("after", "after_any"):
        refs = fields.get(key) or ()
        if not isinstance(refs, (list, tuple)) or len(refs) > MAX_DEPENDENCIES:
            raise ValueError(f"{key} must be a list of at most {MAX_DEPENDENCIES} job references")
        for ref in refs:
            _text(f"a job reference in {key}", ref)
            if not ref:
                raise ValueError(f"a job reference in {key} is empty")
    job_id = fields.get("id")
    if job_id and (job_id in (fields.get("after") or ()) or job_id in (fields.get("after_any") or ())):
        raise ValueError(f"job {_show(job_id)} cannot run after itself")
    if "max_procs" in fields:
        _int("max-procs", fields["max_procs"], 0, MAX_PROCS)
    if "max_file_size" in fields:
        _int("max-file-size", fields["max_file_size"], 0, MAX_FILE_SIZE)
    if fields.get("user"):
        _text("the user name", fields["user"])
    for key, what in (("node", "the node pin"), ("image", "the image name")):
        if fields.get(key) is not None:
            _text(what, fields[key])


def printable(text: str) -> str:
    """``text`` safe for a terminal: control characters, escape sequences, line breaks and
    other unprintable characters (bidi overrides too) shown as Python escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _show(value: object) -> str:
    if isinstance(value, int) and value.bit_length() > 64:
        return f"a {value.bit_length()}-bit number"  # repr of a huge int can itself raise
    text = repr(value) if isinstance(value, (int, float, str)) else type(value).__name__  # repr escapes
    return text if len(text) <= 40 else text[:37] + "..."
