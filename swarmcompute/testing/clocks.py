"""A daemon whose wall clock is off, for tests: Debian's libfaketime preloaded into it, its
``time.time`` moved by an offset and its monotonic clock (leases, timeouts) left alone."""

from __future__ import annotations

from pathlib import Path

LIBFAKETIME = next(
    Path("/usr/lib").glob("*/faketime/libfaketime.so.1"), Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
)
"""Where Debian puts it (its multiarch directory: ``x86_64-linux-gnu``, ``aarch64-linux-gnu``, ...)."""
MISSING = f"libfaketime is not installed ({LIBFAKETIME}): apt-get install libfaketime"


def clock_off(by: str) -> dict[str, str]:
    """The environment that sets a daemon's wall clock ``by`` off, libfaketime's way: ``+1h``,
    ``-8d``. Test only where ``LIBFAKETIME`` exists (else skip, saying ``MISSING``)."""
    return {"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME": by, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
