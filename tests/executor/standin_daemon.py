"""Stands in for the daemon in tests: starts one job through ProcessExecutor, prints
``READY {"leader": pid, "first_line": ..., "guardian": pid}`` once the job printed a line, then
``GUARDIAN <pid>`` each time the executor's guardian changes (``GUARDIAN 0``: none runs), until it
is killed.

usage: python standin_daemon.py LOGS_DIR REGISTRY_PATH SHELL_SCRIPT
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

import structlog

from swarmcompute.executor import AttemptSpec, ProcessExecutor, read_streams

_WATCH_INTERVAL_S = 0.005


async def main(logs_dir: str, registry_path: str, script: str) -> None:
    output = asyncio.Event()
    executor = ProcessExecutor(
        Path(logs_dir),
        Path(registry_path),
        on_exit=lambda result: None,
        on_output=lambda job_id, attempt: output.set(),
    )
    await executor.start(AttemptSpec("standin", 1, ("/bin/sh", "-c", script)))
    path = executor.log_path("standin", 1)
    async with asyncio.timeout(20):
        while b"\n" not in (out := read_streams(path)[0]):
            output.clear()
            await output.wait()
    executor.flush_registry()  # the debounced write must be on disk before we may be killed
    guardian = executor.guardian_pid
    ready = {
        "leader": executor.pid("standin", 1),
        "first_line": out.split(b"\n")[0].decode(),
        "guardian": guardian,
    }
    print("READY " + json.dumps(ready), flush=True)
    while True:
        await asyncio.sleep(_WATCH_INTERVAL_S)
        if executor.guardian_pid != guardian:
            guardian = executor.guardian_pid
            print(f"GUARDIAN {guardian or 0}", flush=True)


if __name__ == "__main__":
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    asyncio.run(main(*sys.argv[1:4]))
