"""daemon.log is bounded: rotated to daemon.log.1, with both stdout and stderr following."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import os, sys
from pathlib import Path
from swarmcompute.node.logging_setup import RotatingStdio
log = Path(sys.argv[1])
w = RotatingStdio(log, max_bytes=1000)
for i in range(100):
    w.write(f"line {i:03d} " + "x" * 40 + "\\n")
os.write(2, b"stderr after rotation\\n")
"""


def test_rotation_keeps_two_bounded_files(tmp_path: Path) -> None:
    log = tmp_path / "daemon.log"
    with open(log, "ab") as out:
        subprocess.run([sys.executable, "-c", SCRIPT, str(log)], stdout=out, stderr=out, check=True, timeout=60)
    rotated = log.with_name("daemon.log.1")
    assert rotated.exists()
    assert log.stat().st_size <= 1100 and rotated.stat().st_size <= 1000
    current = log.read_text()
    assert "line 099" in current and "stderr after rotation" in current
