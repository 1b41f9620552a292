"""Readable output files and the per-job output bound (issue 14, item 6): a person on the node reads
a job's output with `cat`; `swarm run --max-output` bounds it, and what it cut is said."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

from swarmcompute.testing.daemons import DaemonProcess, swarm_executable


def _shell(daemon: DaemonProcess, script: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SWARM_STATE_DIR": str(daemon.state_dir), "SWARM": swarm_executable()}
    return subprocess.run(
        script, shell=True, executable="/bin/bash", capture_output=True, text=True, env=env, timeout=timeout_s
    )


def test_the_output_files_of_a_job_are_plain_text_for_cat_private_and_raw_path_prints_them(
    daemon: DaemonProcess,
) -> None:
    job = "seq 1 20000; echo oops >&2; seq 20001 30000"
    run = daemon.swarm("run", "--id", "plain", "--", "sh", "-c", job)
    assert (run.returncode, run.stderr) == (0, "oops\n")
    raw = daemon.swarm("logs", "plain", "--raw-path")
    assert raw.returncode == 0, raw.stderr
    out, err, index = raw.stdout.splitlines()
    assert out.endswith("/output/plain/attempt-1.stdout") and err.endswith("attempt-1.stderr")
    assert index.endswith("attempt-1.index")
    cat = _shell(daemon, f"cat {out}; echo ---; cat {err}")
    assert cat.stdout == run.stdout + "---\noops\n"  # the job's bytes, no framing
    assert run.stdout == "".join(f"{i}\n" for i in range(1, 30001))
    for path in (out, err, index):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    # an attempt that does not exist, or that left no files here, is an error in one line
    assert daemon.swarm("run", "--id", "quiet", "--", "true").returncode == 0
    none = daemon.swarm("logs", "quiet", "--raw-path")
    assert none.returncode == 2 and none.stdout == "" and none.stderr.count("\n") == 1
    assert "no output files of attempt 1 of job quiet" in none.stderr
    assert f"it ran on node {daemon.name} (ask there)" in none.stderr  # by name, as tables show nodes
    beyond = daemon.swarm("logs", "quiet", "--raw-path", "--attempt", "2")
    assert beyond.returncode == 2 and "has no attempt 2: it has had 1" in beyond.stderr


def test_max_output_bounds_one_job_and_the_stream_logs_and_json_say_what_was_cut(daemon: DaemonProcess) -> None:
    notice = "swarm: attempt 1: output truncated after 102400 bytes; the last 4 KiB are kept in the job record\n"
    job = ["sh", "-c", "head -c 300000 /dev/zero"]
    run = daemon.swarm("run", "--id", "capped", "--max-output", "100K", "--", *job)
    assert (run.returncode, len(run.stdout), run.stderr) == (3, 102400, notice)
    logs = daemon.swarm("logs", "capped")
    assert (logs.returncode, len(logs.stdout), logs.stderr) == (3, 102400, notice)
    shown = json.loads(daemon.swarm("show", "capped", "--json").stdout)
    assert shown["output_truncated"] is True
    out = daemon.swarm("logs", "capped", "--raw-path").stdout.splitlines()[0]
    assert os.path.getsize(out) == 102400

    uncapped = daemon.swarm("run", "--", *job)  # the default bound (64 MiB) is unchanged
    assert (uncapped.returncode, len(uncapped.stdout), uncapped.stderr) == (0, 300000, "")
    via_api = daemon.client.submit(job, max_output="1K")
    record = daemon.client.wait(via_api, timeout=30)
    assert record["output_truncated"] is True and len(daemon.client.logs(via_api)) < 2000


def test_max_output_that_is_not_a_size_is_refused_in_one_line_before_asking_a_daemon(tmp_path: Path) -> None:
    env = {**os.environ, "SWARM_STATE_DIR": str(tmp_path / "none")}
    bad = subprocess.run(
        [swarm_executable(), "run", "--max-output", "lots", "--", "true"], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "cannot read 'lots' as a size" in bad.stderr
