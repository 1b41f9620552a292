"""One status line on stderr that updates: an image pull's progress while `swarm run` waits.

On a terminal the line is repainted in place (``\\r``, erase to the end of the line) and ended
once done, or before anything else is printed; on a pipe or a file each update is a line of its
own (the pulling node sends at most one a second, so a log gains one line a second at most).
"""

from __future__ import annotations

import sys
from typing import TextIO

from swarmcompute.limits import printable

REPAINT = "\r\x1b[K"
"""Back to the start of the line, and erase it."""


class ProgressLine:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        try:
            self._tty = self._stream.isatty()
        except (AttributeError, ValueError):
            self._tty = False
        self._open = False

    def show(self, text: str, *, done: bool = False) -> None:
        """Show ``text`` (a daemon's words: escape sequences are defused) as ``swarm: TEXT``."""
        line = f"swarm: {printable(text)}"
        if self._tty:
            self._stream.write(REPAINT + line + ("\n" if done else ""))
            self._open = not done
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def end(self) -> None:
        """End a line left open, before anything else is written."""
        if self._open:
            self._stream.write("\n")
            self._stream.flush()
            self._open = False
