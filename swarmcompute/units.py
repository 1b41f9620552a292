"""Parsing of the human units the CLI and API accept: durations, sizes and start times."""

from __future__ import annotations

from swarmcompute.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:  # the read commands' lean path imports this module: typing costs it start-up time
    from collections.abc import Iterable, Sequence

# No regular expressions: `swarm run` imports this module and `re` costs start-up time.
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "": 1.0}
_SIZE_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_SIZE_SUFFIXES = {"", "b", "k", "kb", "kib", "m", "mb", "mib", "g", "gb", "gib", "t", "tb", "tib"}


def _split_number(text: str) -> tuple[float, str] | None:
    """``"1.5h"`` -> ``(1.5, "h")``; None when there is no leading number."""
    text = text.strip()
    end = 0
    while end < len(text) and (text[end].isdigit() or text[end] == "."):
        end += 1
    try:
        number = float(text[:end])
    except ValueError:
        return None
    return number, text[end:].strip().lower()


def parse_duration(value: str | float | int | None, *, zero: bool = False) -> float | None:
    """``"30s"``, ``"10m"``, ``"1.5h"``, ``"250ms"`` or a number of seconds -> seconds; ``zero``: 0
    is one too (a wait's "only look")."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:
            seconds = float("inf")
    else:
        parts = _split_number(str(value))
        if parts is None or parts[1] not in _DURATION_UNITS:
            raise ConfigError(f"cannot read {_shown(value)} as a duration: use e.g. 30s, 10m, 2h")
        seconds = parts[0] * _DURATION_UNITS[parts[1]]
    if seconds != seconds or seconds == float("inf"):
        raise ConfigError(f"a duration must be a finite number of seconds, got {_shown(value)}")
    if seconds < 0 or (seconds == 0 and not zero):
        raise ConfigError(f"a duration must be positive, got {_shown(value)}")
    return seconds


WARN_BEFORE_S = 60.0
"""How long before its time limit ``swarm run --signal SIG`` sends SIG when it names no time (Slurm's)."""


def parse_warning(value: object) -> tuple[int, float]:
    """``swarm run --signal SIG[@BEFORE]`` (Slurm's ``--signal``): the signal's number and how many
    seconds before the job's time limit it is sent (``USR1@5m``, ``SIGTERM@90``; without ``@``:
    ``WARN_BEFORE_S``); "" or None: none, ``(0, 0.0)``."""
    from swarmcompute.limits import signal_number

    if value is None or value == "":
        return 0, 0.0
    name, at, before = str(value).partition("@")
    try:
        signum = signal_number(name)
    except ValueError as exc:
        raise ConfigError(f"--signal {_shown(value)}: {exc}") from None
    if not at:
        return signum, WARN_BEFORE_S
    try:
        seconds = parse_duration(before.strip())
    except ConfigError as exc:
        raise ConfigError(f"--signal {_shown(value)}: {exc}") from None
    return signum, float(seconds or 0.0)


BEGIN_FORMS = "30m, now+2h, 03:00, 2026-12-24 or 2026-12-24T18:00"


def parse_begin(value: object, now: float) -> float:
    """When a job may start (``swarm run --begin``), as Unix seconds: a duration from ``now``
    (``30m``, ``now+2h``), the next ``HH:MM[:SS]`` in local time (today, else tomorrow), a local
    date (its midnight) or date and time (``2026-12-24T18:00``, ``2026-12-24 18:00``, an offset
    such as ``+01:00`` allowed), or Unix seconds as a number; "" or 0: at once (0)."""
    if value is None or value == "" or (isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0):
        return 0.0
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    import datetime  # only where a --begin is given: not on swarm run's every path

    if isinstance(value, datetime.datetime):
        return value.timestamp()
    text = str(value).strip()
    shown = _shown(value)
    lowered = text.lower()
    if lowered.startswith("now"):
        rest = lowered[3:].strip()
        if not rest:
            return now
        if not rest.startswith("+"):
            raise ConfigError(f"cannot read {shown} as a start time: use e.g. {BEGIN_FORMS}")
        lowered = rest[1:]
    parts = _split_number(lowered)
    if parts is not None and parts[1] in _DURATION_UNITS and ":" not in lowered and "-" not in lowered:
        seconds = parse_duration(lowered, zero=True)
        return now + (seconds or 0.0)
    try:
        if ":" in text and "-" not in text:  # a time of day: the next one
            clock = datetime.time.fromisoformat(text)
            today = datetime.datetime.fromtimestamp(now).replace(
                hour=clock.hour, minute=clock.minute, second=clock.second, microsecond=clock.microsecond
            )
            at = today if today.timestamp() > now else today + datetime.timedelta(days=1)
            return at.timestamp()
        return datetime.datetime.fromisoformat(text).timestamp()
    except (ValueError, OverflowError, OSError):
        raise ConfigError(f"cannot read {shown} as a start time: use e.g. {BEGIN_FORMS}") from None


def parse_size(value: str | int | None) -> int:
    """``"512M"``, ``"2G"``, ``"1.5GiB"`` or a number of bytes -> bytes (binary units)."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    parts = _split_number(str(value))
    if parts is None or parts[1] not in _SIZE_SUFFIXES:
        raise ConfigError(f"cannot read {_shown(value)} as a size: use e.g. 512M, 2G")
    size = parts[0] * _SIZE_UNITS[parts[1][:1]]
    if size != size or size == float("inf"):
        raise ConfigError(f"the size {_shown(value)} is too large")
    return int(size)


def _shown(value: object) -> str:
    """A short repr for error lines (a hostile value can be megabytes)."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"a {value.bit_length()}-bit number"  # repr of a huge int can itself raise
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def format_period(seconds: float) -> str:
    """A period as typed (``--every``): ``1d``, ``6h``, ``90m``, ``45s`` (else ``format_duration``)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and float(seconds / size).is_integer():
            return f"{seconds / size:.0f}{unit}"
    return format_duration(seconds)


def plural(n: float, noun: str) -> str:
    """``noun``, plural unless ``n`` is 1: ``rank 3``, ``ranks 1, 2`` (never ``rank(s)``)."""
    return noun if n == 1 else f"{noun}s"


def listed(items: Sequence[str], most: int = 10) -> str:
    """``items`` joined by commas, the first ``most`` of them and how many more: a job `--after` a
    2,000-element array read all 2,000 ids in its one-line message (37,000 characters)."""
    shown = ", ".join(items[:most])
    return shown if len(items) <= most else f"{shown} and {len(items) - most:,} more"


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1: ``1 job``, ``3 jobs``."""
    return f"{n} {plural(n, noun)}"


def format_size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def likely_meant(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The one of ``choices`` that ``word`` most likely meant (for a ``did you mean`` hint): one
    that differs only in case (a hostname typed in lowercase), else difflib's closest at
    ``cutoff``; None when none is close."""
    options = list(choices)
    same = [c for c in options if c.casefold() == word.casefold()]
    if same:
        return same[0]
    from difflib import get_close_matches  # only for a message

    close = get_close_matches(word, options, n=1, cutoff=cutoff)
    return close[0] if close else None
