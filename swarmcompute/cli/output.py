"""Writing the CLI's output where stdout may fail for another reason than a closed pipe: a full
disk (`swarm jobs > /dev/full`, ENOSPC), a write error on a network filesystem. A closed pipe
stays ``BrokenPipeError`` (`| head` is no error: its own exit status, nothing said); any other
failure is ``StdoutFailed``, which a command says in one line on stderr and ends with exit 2.
Before, it was a traceback and exit 1.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time on the lean path; annotations stay strings
    from typing import IO, Any


class StdoutFailed(Exception):
    """stdout could not be written (not a closed pipe): ``str()`` is the OS's reason."""


def write_out(stream: IO[Any], data: Any) -> None:
    """Write ``data`` to ``stream`` (stdout, text or bytes) and flush it; ``StdoutFailed`` when
    that fails other than by a closed pipe."""
    try:
        stream.write(data)
        stream.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise StdoutFailed(str(exc)) from None


def quiet_stdout() -> None:
    """What is still buffered for stdout goes nowhere, instead of failing again (``Exception
    ignored ...``) when Python flushes it at exit: whoever read it went away, or it cannot be
    written."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no stdout descriptor (redirected in-process): nothing to quiet
        pass


def stdout_failed(exc: StdoutFailed) -> str:
    """The line's text (after ``swarm: ``) for what could not be written."""
    quiet_stdout()
    return f"could not write to stdout: {exc}"
