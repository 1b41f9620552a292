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
    from typing import Any, TypeGuard

MAX_REQUEST_BYTES = 16 * 1024 * 1024
"""The most one HTTP API request's body may hold (the control socket's frame holds as much: the
daemon reads no more); a client splits a bigger submission where its jobs may be split."""

MAX_PEER_MESSAGE_BYTES = 16 * 1024 * 1024
"""The most one message between nodes may hold (``transport.peer``): an entry of the Raft log, a
forward of commands to the leader."""
MAX_COMMAND_BYTES = MAX_PEER_MESSAGE_BYTES - 64 * 1024
"""The most one command may take in the log, leaving room for the envelopes it travels in to the
other nodes: a submission over it that cannot be cut (one job; jobs that wait on each other; a
gang's ranks) is refused. Before, one that fitted a request but not a peer message (a 16 MiB
environment) could be sent to no follower: the leader lost them, and a node forwarding it to the
next leader stopped with "cluster.forward is 16777217 bytes, above the 16777216-byte limit"."""
MAX_STRING_BYTES = 4 * 1024 * 1024
"""The most one string of a message may hold (``codec.MAX_STR_BYTES``): a command argument, an
environment variable's value. (Linux itself starts no command with more than 128 KiB in one.)"""

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
MAX_FILES = 10_000
"""Files shipped with one job (``--upload``, ``--workdir``): each is a line of its replicated manifest."""
MAX_FILES_BYTES = 16 * 1024**3
"""The most bytes shipped with one job, whatever the client's own cap (``--max-upload``, 256 MiB by default)."""
MAX_FILE_PATH = 1024
"""Characters of a shipped file's relative path (each part at most 255 bytes of UTF-8)."""
MAX_MANIFEST_PATH_CHARS = 1024 * 1024
"""All paths of one manifest together: bounds what one job adds to the Raft log."""
MAX_KEEP_PATTERNS = 64
"""``--keep`` patterns of one job."""
_HEX = frozenset("0123456789abcdef")
MAX_DEPENDENCIES = 10_000
MAX_BATCH = 100_000
"""Jobs in one ``submit_many``."""
MAX_BEGIN_AT = 7_258_118_400.0
"""The latest ``--begin`` (2200-01-01 UTC): a typo's year 20260, refused."""
MIN_EVERY_S = 1.0
MAX_EVERY_S = 10 * 365 * 86400.0
MAX_SERIES_ID = 52
"""A series' id and its runs' (``ID.N``, up to 11 more characters) stay within a job id's 64."""

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
    """Text a command is started with: no NUL, valid UTF-8 (an argument of undecodable bytes
    reaches Python as lone surrogates, which no message can carry), within one string's bound."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text, got {type(value).__name__}")
    if "\0" in value:
        raise ValueError(f"{name} must not contain a NUL character")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # bytes the locale could not decode (a Latin-1 file name, say)
            raise ValueError(
                f"{name} {_as_bytes(value)} is not valid UTF-8: a job's command, environment and directory"
                " must be UTF-8 text"
            ) from None
    if len(value) > MAX_STRING_BYTES // 4 and len(value.encode("utf-8", "surrogatepass")) > MAX_STRING_BYTES:
        raise ValueError(
            f"{name} is {len(value.encode('utf-8', 'surrogatepass')) / 2**20:.1f} MiB, over the 4 MiB one"
            " argument or variable may hold (Linux starts no command with more than 128 KiB in one):"
            " pass big inputs as files (--upload)"
        )


SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "BUS": 7, "FPE": 8, "KILL": 9,
    "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15, "STKFLT": 16,
    "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23, "XCPU": 24,
    "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29, "PWR": 30, "SYS": 31,
}  # fmt: skip
"""`swarm signal`'s names and their numbers: Linux's, the same on x86 and ARM, so that a number in the
job table means one signal on every node; ``RTMIN+N`` names 34 + N, ``RTMAX-N`` 64 - N."""
SIGRTMIN, SIGRTMAX = 34, 64
MAX_SIGNALS = 64
"""The most signals one attempt of a job is sent (`swarm signal`); more are refused."""


def signal_number(value: object) -> int:
    """The signal ``value`` names: a name as ``kill -l`` lists them, with or without ``SIG``, any
    case (``USR1``, ``sigterm``, ``RTMIN+2``), or its number; ``ValueError`` in one line."""
    text = str(value).strip().upper() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    name = text[3:] if text.startswith("SIG") else text
    if name.isdigit() and 1 <= int(name) <= SIGRTMAX and int(name) not in (32, 33):
        return int(name)
    if name in SIGNALS:
        return SIGNALS[name]
    for base, sign, at in (("RTMIN", "+", SIGRTMIN), ("RTMAX", "-", SIGRTMAX)):
        rest = name[len(base) :] if name.startswith(base) else None
        if rest == "" or (rest and rest[0] == sign and rest[1:].isdigit() and int(rest[1:]) <= SIGRTMAX - SIGRTMIN):
            return at + (int(rest[1:]) if rest else 0) * (1 if sign == "+" else -1)
    raise ValueError(
        f"unknown signal {_show(value)}: give a name as `kill -l` lists them (TERM, USR1, HUP, INT, KILL) or a number 1-64"
    )


def signal_name(number: int) -> str:
    """``signal_number``'s inverse, without ``SIG``, as ``kill -l`` names it: ``USR1``, ``RTMIN+2``,
    ``RTMAX-1``."""
    for name, n in SIGNALS.items():
        if n == number:
            return name
    if not SIGRTMIN <= number <= SIGRTMAX:
        return str(number)
    if number - SIGRTMIN <= (SIGRTMAX - SIGRTMIN) // 2:
        return f"RTMIN+{number - SIGRTMIN}" if number > SIGRTMIN else "RTMIN"
    return f"RTMAX-{SIGRTMAX - number}" if number < SIGRTMAX else "RTMAX"


MAX_NOTIFY_URL = 2048


def notify_problem(url: object) -> str | None:
    """Why ``url`` is no ``--notify`` URL (an http or https URL with a host, at most
    ``MAX_NOTIFY_URL`` characters, no spaces or control characters), or None."""
    if not isinstance(url, str):
        return f"--notify must be a URL, got {_show(url)}"
    if len(url) > MAX_NOTIFY_URL or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return f"--notify must be one URL of at most {MAX_NOTIFY_URL} characters, no spaces, got {_show(url)}"
    scheme, sep, rest = url.partition("://")
    host = rest.split("/", 1)[0].rpartition("@")[2]
    if not sep or scheme.lower() not in ("http", "https") or not host or host.startswith(":"):
        return f"--notify must be an http:// or https:// URL with a host (e.g. https://ntfy.sh/topic), got {_show(url)}"
    return None


GPU_MEM_WITHOUT_GPUS = "--gpu-mem asks for GPUs and --gpus 0 for none: leave out --gpus 0 (--gpu-mem alone means 1)"
"""A submission with ``gpu_mem`` and ``gpus`` 0 given: it ran on a card (``gpus`` made 1) before."""


def check_job(fields: Mapping[str, Any], *, submitted: bool = False) -> None:
    """Check the ``JobSpec`` fields present in ``fields``; raise ``ValueError`` naming the first
    problem. Types are checked too, so this is safe on anything a caller passed in. ``submitted``:
    a whole new job, as a client submits it (a ``--signal`` needs a ``--timeout`` to precede; one
    lifted later by `swarm update` leaves the signal unsent)."""
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
    if "gpu_mem" in fields:
        _int("gpu-mem", fields["gpu_mem"], 0, MAX_MEM_BYTES)
    if fields.get("array_id"):
        _text("the array id", fields["array_id"])
    if "array_index" in fields:
        _int("array index", fields["array_index"], 0, MAX_INT)
    if "array_limit" in fields:
        _int("array limit", fields["array_limit"], 0, MAX_BATCH)
    constraints = fields.get("constraints")
    if constraints:
        from swarmcompute.scheduler.constraints import MAX_CONSTRAINTS, constraint_problem

        if not isinstance(constraints, (list, tuple)) or len(constraints) > MAX_CONSTRAINTS:
            raise ValueError(f"constraints must be a list of at most {MAX_CONSTRAINTS} KEY=VALUE or KEY!=VALUE")
        for text in constraints:
            problem = constraint_problem(text)
            if problem:
                raise ValueError(problem)
    mounts = fields.get("mounts")
    if mounts:
        from swarmcompute.mounts import check_mounts

        check_mounts(mounts)
        if not fields.get("image"):
            raise ValueError(
                "--mount is for Docker jobs (--image IMAGE): a plain job sees the node's files as they are"
            )
    if "max_output_bytes" in fields:
        _int("max output", fields["max_output_bytes"], 0, MAX_OUTPUT_BYTES)
    begin_at = fields.get("begin_at")
    if begin_at is not None and not (_finite(begin_at) and 0 <= begin_at <= MAX_BEGIN_AT):
        raise ValueError(f"--begin must be a time from 1970 to 2200, got {_show(begin_at)}")
    if fields.get("notify"):
        problem = notify_problem(fields["notify"])
        if problem:
            raise ValueError(problem)
        if fields.get("array_id") or fields.get("ranks"):
            raise ValueError(
                "--notify tells of one job's end: for an array or a gang, notify from a job after it"
                " (swarm run --after-any ID --notify URL -- true)"
            )
    if fields.get("warn_signal") or fields.get("warn_before_s"):
        _int("--signal", fields.get("warn_signal"), 1, SIGRTMAX)
        _number("--signal's time before the limit", fields.get("warn_before_s", 0.0), 0.0, MAX_TIMEOUT_S)
        if submitted and fields.get("timeout_s") is None:
            raise ValueError("--signal SIG@TIME is sent TIME before the job's time limit: give it --timeout too")
    if fields.get("every_s") or fields.get("occurrence"):
        every_s = fields.get("every_s", 0.0)
        if not (_finite(every_s) and MIN_EVERY_S <= every_s <= MAX_EVERY_S):
            raise ValueError(f"--every must be from {MIN_EVERY_S:g}s to 10 years, got {_show(every_s)}")
        if fields.get("array_id") or fields.get("ranks"):
            raise ValueError("--every runs one job again and again: not an array or a gang")
        if len(str(fields.get("id", ""))) > MAX_SERIES_ID:
            raise ValueError(f"--every needs an id of at most {MAX_SERIES_ID} characters (its runs add .N)")
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
    if fields.get("image") is not None:
        _image_reference(fields["image"])
    if fields.get("files"):
        check_files(fields["files"])
    stdin = fields.get("stdin")
    if stdin is not None:
        if not isinstance(stdin, (list, tuple)) or len(stdin) != 2:
            raise ValueError("stdin is (sha256, size), as the client's upload of it returns")
        sha, size = stdin
        if not isinstance(sha, str) or len(sha) != 64 or not _HEX.issuperset(sha):
            raise ValueError("stdin: the sha256 must be 64 lowercase hex digits")
        _int("the size of stdin", size, 0, MAX_FILES_BYTES)
    keep = fields.get("keep")
    if keep:
        if not isinstance(keep, (list, tuple)) or len(keep) > MAX_KEEP_PATTERNS:
            raise ValueError(f"keep must be a list of at most {MAX_KEEP_PATTERNS} patterns")
        for pattern in keep:
            _text("a --keep pattern", pattern)
            if not pattern.strip():
                raise ValueError("a --keep pattern is empty")


def _image_reference(image: str) -> None:
    """Refuse what no Docker engine would pull or run (``NAME[:TAG][@DIGEST]``, as the distribution
    spec's grammar has it: a lowercase path after an optional registry host), at submission rather
    than as a failed attempt on a node with Docker."""
    import re  # only image jobs pay for it: `swarm run`'s lean path imports nothing

    component = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    host = (
        r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])"
    )
    grammar = (
        rf"(?:{host}(?::[0-9]+)?/)?{component}(?:/{component})*"
        r"(?::[\w][\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
    )
    if re.fullmatch(grammar, image) is None:
        hint = (
            ": repository names are lowercase"
            if image.lower() != image and re.fullmatch(grammar, image.lower())
            else ""
        )
        raise ValueError(f"{_show(image)} is not an image reference (NAME[:TAG][@DIGEST], e.g. debian:12){hint}")


def file_path_problem(path: object) -> str | None:
    """Why ``path`` is not a safe relative path for a shipped or kept file, or None: relative,
    '/'-separated, no '', '.' or '..' part, printable, within ``MAX_FILE_PATH`` characters."""
    if not isinstance(path, str) or not 1 <= len(path) <= MAX_FILE_PATH:
        return f"a file path must be 1-{MAX_FILE_PATH} characters, got {_show(path)}"
    if not path.isprintable() or "\\" in path:
        return f"file path {_show(path)} has control, unprintable or backslash characters"
    if path.startswith("/"):
        return f"file path {_show(path)} is absolute: shipped files are named relative to the job's directory"
    for part in path.split("/"):
        if part in ("", ".", ".."):
            return f"file path {_show(path)} has an empty, '.' or '..' part"
        if len(part.encode("utf-8", "replace")) > 255:
            return f"file path {_show(path)} has a part longer than 255 bytes"
    return None


def check_files(files: object) -> None:
    """Check a job's file manifest: (path, sha256, size, mode) entries, each path safe and unique,
    none inside another's path, within ``MAX_FILES``, ``MAX_FILES_BYTES`` and
    ``MAX_MANIFEST_PATH_CHARS``. Raises ``ValueError`` (the daemon trusts no client or peer)."""
    if not isinstance(files, (list, tuple)) or len(files) > MAX_FILES:
        raise ValueError(f"a job ships at most {MAX_FILES} files: ship a directory as an archive instead")
    paths: set[str] = set()
    total = chars = 0
    for entry in files:
        if not isinstance(entry, (list, tuple)) or len(entry) != 4:
            raise ValueError("each shipped file is (path, sha256, size, mode)")
        path, sha, size, mode = entry
        problem = file_path_problem(path)
        if problem:
            raise ValueError(problem)
        if not isinstance(sha, str) or len(sha) != 64 or not _HEX.issuperset(sha):
            raise ValueError(f"shipped file {_show(path)}: the sha256 must be 64 lowercase hex digits")
        _int(f"the size of {_show(path)}", size, 0, MAX_FILES_BYTES)
        _int(f"the mode of {_show(path)}", mode, 0, 0o777)
        if path in paths:
            raise ValueError(f"file {_show(path)} is shipped twice")
        paths.add(path)
        total += size
        chars += len(path)
    if total > MAX_FILES_BYTES:
        raise ValueError(f"the shipped files hold {total} bytes, over the limit of {MAX_FILES_BYTES}")
    if chars > MAX_MANIFEST_PATH_CHARS:
        raise ValueError(f"the shipped files' paths hold {chars} characters, over {MAX_MANIFEST_PATH_CHARS}")
    for path in paths:
        head = path
        while "/" in head:
            head = head.rpartition("/")[0]
            if head in paths:
                raise ValueError(f"file {_show(head)} is shipped and is also the directory of {_show(path)}")


def printable(text: str) -> str:
    """``text`` safe for a terminal: control characters, escape sequences, line breaks and
    other unprintable characters (bidi overrides too) shown as Python escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _as_bytes(text: str) -> str:
    """Text that came from undecodable bytes, shown as those bytes (``b'caf\\xe9'``), at most 40 characters."""
    try:
        shown = repr(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:  # a lone surrogate that no byte made
        shown = repr(text)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def _finite(value: object) -> TypeGuard[float]:
    """A number (not a bool), neither NaN nor infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < float("inf")


def _show(value: object) -> str:
    if isinstance(value, int) and value.bit_length() > 64:
        return f"a {value.bit_length()}-bit number"  # repr of a huge int can itself raise
    text = repr(value) if isinstance(value, (int, float, str)) else type(value).__name__  # repr escapes
    return text if len(text) <= 40 else text[:37] + "..."
