"""Shell completion through the `swarm` executable, asked the way bash asks it (typer's protocol:
``_SWARM_COMPLETE=complete_bash COMP_WORDS=... COMP_CWORD=... swarm``), against a real daemon."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from swarmcompute.state_dir import CONTROL_SOCKET_NAME
from swarmcompute.testing.daemons import DaemonProcess, swarm_executable


def complete(line: str, state_dir: Path) -> tuple[list[str], float]:
    """What <TAB> at the end of ``line`` offers, and how long the answer took."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    words = line.split(" ")
    env |= {
        "SWARM_STATE_DIR": str(state_dir),
        "_SWARM_COMPLETE": "complete_bash",
        "COMP_WORDS": line,
        "COMP_CWORD": str(len(words) - 1),
    }
    started = time.monotonic()
    result = subprocess.run([swarm_executable()], capture_output=True, text=True, env=env, timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 0 and result.stderr == "", result
    return result.stdout.split(), elapsed


def test_completion_offers_the_jobs_ids_and_names_and_the_nodes_names_from_the_daemon(daemon: DaemonProcess) -> None:
    running = daemon.client.submit(["sleep", "60"], name="render-frames")
    ended = daemon.client.submit(["true"], name="warmup")
    assert daemon.client.wait([ended], timeout=30)[0]["state"] == "succeeded"
    try:
        offered, _ = complete("swarm show ", daemon.state_dir)
        assert {running, "render-frames", ended, "warmup"} <= set(offered)
        assert complete("swarm logs ren", daemon.state_dir)[0] == ["render-frames"]
        offered, _ = complete("swarm cancel ", daemon.state_dir)
        assert {running, "render-frames"} <= set(offered) and not {ended, "warmup"} & set(offered)  # open jobs only
        offered, _ = complete("swarm rerun ", daemon.state_dir)
        assert {ended, "warmup"} <= set(offered) and not {running, "render-frames"} & set(offered)  # ended only
        assert complete("swarm rerun --id ", daemon.state_dir)[0] == []
        assert complete("swarm drain ", daemon.state_dir)[0] == ["node"]
        assert complete("swarm run --cpus 1 --node n", daemon.state_dir)[0] == ["node"]
        assert complete("swarm run -- sh --node ", daemon.state_dir)[0] == []  # the job's own arguments
    finally:
        daemon.client.cancel(running)


def test_bash_itself_completes_through_the_script_swarm_show_completion_prints(daemon: DaemonProcess) -> None:
    daemon.client.submit(["true"], name="nightly-backup")
    script = (
        'eval "$(swarm --show-completion)"\n'
        'COMP_WORDS=(swarm wait nig); COMP_CWORD=2; _swarm_completion swarm\nprintf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    env |= {"SWARM_STATE_DIR": str(daemon.state_dir), "PATH": f"{Path(swarm_executable()).parent}:{env['PATH']}"}
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert result.stdout == "nightly-backup\n", result


def test_without_an_answering_daemon_completion_offers_nothing_and_does_not_wait_for_it(tmp_path: Path) -> None:
    offered, _ = complete("swarm show ", tmp_path / "nothing-here")
    assert offered == []
    mute = tmp_path / "mute"
    mute.mkdir()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:  # accepts connections, never answers
        listener.bind(str(mute / CONTROL_SOCKET_NAME))
        listener.listen(8)
        offered, elapsed = complete("swarm drain ", mute)
    assert offered == []
    assert elapsed < 10  # the client's own 30 s timeout was not what ended it (it took 0.5 s of waiting and startup)
