"""Job runners: local subprocesses today (``ProcessExecutor``), Docker later.

The daemon hands an ``AttemptSpec`` to an executor and gets one ``AttemptResult`` back through
its ``on_exit`` callback. Output lives in per-attempt log files (``logfile``).
"""

from __future__ import annotations

from swarmcompute.executor.logfile import LogWriter, read_chunks, read_streams
from swarmcompute.executor.process import ProcessExecutor
from swarmcompute.executor.spec import TAIL_BYTES, AttemptResult, AttemptSpec, EndReason

__all__ = [
    "TAIL_BYTES",
    "AttemptResult",
    "AttemptSpec",
    "EndReason",
    "LogWriter",
    "ProcessExecutor",
    "read_chunks",
    "read_streams",
]
