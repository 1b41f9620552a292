"""ProcessExecutor against real processes: exit codes, streams, env, timeouts, groups, bounds."""

from __future__ import annotations

import asyncio
import os
import resource
import stat
import statistics
import sys
import time
from pathlib import Path

import pytest

from swarmcompute.errors import ExecutorError
from swarmcompute.executor import TAIL_BYTES, AttemptSpec, EndReason, read_chunks, read_streams
from swarmcompute.executor.logfile import END, STDERR, STDOUT, TRUNCATED, truncation_marker
from swarmcompute.executor.registry import read_registry

from .helpers import WAIT_S, Harness, ProcessTracker, is_gone, sh, wait_until


def test_exit_code_and_success(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        ok = await h.run(AttemptSpec("ok", 1, ("true",)))
        bad = await h.run(sh("bad", "exit 7"))
        assert (ok.exit_code, ok.reason, ok.error) == (0, EndReason.EXITED, None)
        assert ok.succeeded
        assert (bad.exit_code, bad.reason, bad.succeeded) == (7, EndReason.EXITED, False)
        assert ok.started_at <= ok.finished_at
        assert h.executor.running() == []

    harness.run_async(body)


def test_exit_is_seen_without_pidfds(harness: Harness, tracker: ProcessTracker) -> None:
    harness.executor.use_pidfd = False  # the waiter-thread path for kernels without pidfd_open

    async def body(h: Harness) -> None:
        result = await h.run(sh("thread", "sleep 1000 & echo $!; exit 3"))
        assert (result.exit_code, result.reason) == (3, EndReason.EXITED)
        child = int(read_streams(result.log_path)[0])
        tracker.add(child)
        assert wait_until(lambda: is_gone(child))
        timed = await h.run(AttemptSpec("thread-timeout", 1, ("sleep", "1000"), timeout_s=0.05))
        assert (timed.exit_code, timed.reason) == (128 + 15, EndReason.TIMEOUT)

    harness.run_async(body)


def burn(mib: int) -> str:
    """A Python program that keeps ``mib`` MiB resident and uses 0.3 s of CPU (by its own clock:
    on a busy machine too)."""
    return (
        f"b = bytearray({mib} << 20); import time; t = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    )


def over_this_process_mib() -> int:
    """A peak this process (the executor's, as the daemon's) never reached: 64 MiB over its own."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024 + 64


def test_an_attempt_says_the_cpu_and_peak_memory_it_used_its_shells_commands_included(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        mib = over_this_process_mib()
        env = {"PY": sys.executable, "BURN": burn(mib)}
        used = await h.run(sh("used", '"$PY" -c "$BURN"; true', env=env))  # a child of the shell, waited for
        assert used.succeeded and used.cpu_s is not None and used.cpu_s >= 0.3
        assert used.max_rss_bytes is not None and used.max_rss_bytes >= mib << 20 and not used.max_rss_at_most

    harness.run_async(body)


def test_a_job_that_stays_under_the_daemons_own_peak_memory_reads_at_most_that(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        small = await h.run(sh("small", "true"))
        own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        assert small.succeeded and small.cpu_s is not None and small.cpu_s < 0.3
        assert small.max_rss_at_most and small.max_rss_bytes is not None and 0 < small.max_rss_bytes <= own_peak

    harness.run_async(body)


def test_usage_is_measured_without_pidfds_too(harness: Harness) -> None:
    harness.executor.use_pidfd = False

    async def body(h: Harness) -> None:
        mib = over_this_process_mib()
        used = await h.run(AttemptSpec("used", 1, (sys.executable, "-c", burn(mib))))
        assert used.cpu_s is not None and used.cpu_s >= 0.3
        assert used.max_rss_bytes is not None and used.max_rss_bytes >= mib << 20 and not used.max_rss_at_most

    harness.run_async(body)


def test_a_running_attempt_says_what_its_processes_use_now_and_nothing_once_it_ended(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        hold = "import time; b = bytearray(48 << 20); print('held', flush=True); time.sleep(30)"
        spec = sh("holds", '"$PY" -c "$HOLD" & "$PY" -c "$HOLD"; wait', env={"PY": sys.executable, "HOLD": hold})
        fut = await h.start(spec)
        await h.wait_output(spec, lambda out, err: out.count(b"held") == 2)
        now = h.executor.usage_now("holds", 1)
        assert now is not None and now.processes == 3  # the shell and its two commands: its group
        assert now.rss_bytes >= 2 * (48 << 20) and now.max_rss_bytes >= 48 << 20 and now.cpu_s >= 0
        assert now.max_rss_bytes < now.rss_bytes  # each process's own peak, exact: not the daemon's
        assert h.executor.usage_now("holds", 2) is None and h.executor.usage_now("other", 1) is None
        assert h.executor.cancel("holds", 1)
        ended = await fut
        assert h.executor.usage_now("holds", 1) is None
        assert (ended.cpu_s, ended.max_rss_bytes) == (None, None)  # killed with its group: not measured

    harness.run_async(body)


def test_a_warning_signal_goes_its_time_before_the_limit_once_also_when_the_limit_moves(harness: Harness) -> None:
    """``swarm run --timeout 2s --signal USR1@1.5s``: USR1 at 0.5 s, the job checkpoints and ends
    as it chose; a limit moved later (`swarm update --timeout`) moves the warning, which goes once."""
    script = "trap 'echo checkpoint; exit 0' USR1; while :; do sleep 0.02; done"

    async def body(h: Harness) -> None:
        started = time.monotonic()
        warned = await h.run(sh("warned", script, timeout_s=2.0, warn_signal=10, warn_before_s=1.5))
        took = time.monotonic() - started
        assert (warned.reason, warned.exit_code) == (EndReason.EXITED, 0) and took >= 0.45, took  # not at once
        out, err = read_streams(warned.log_path)
        assert out == b"checkpoint\n"
        assert err == b"[swarm: sending SIGUSR1 to the job's main process (--signal, 1.5s before its time limit)]\n"
        spec = sh(
            "moved",
            "trap 'echo warned' USR1; while :; do sleep 0.02; done",
            timeout_s=1.0,
            warn_signal=10,
            warn_before_s=0.5,
        )
        started = time.monotonic()
        fut = await h.start(spec)
        assert h.executor.retime("moved", 1, 3.0)  # the warning now at 2.5 s, not 0.5 s
        await h.wait_output(spec, lambda out, _: out == b"warned\n")
        assert time.monotonic() - started >= 2.4
        assert h.executor.retime("moved", 1, 60.0)  # it went: moved again, it goes no more
        h.executor.cancel("moved", 1)
        async with asyncio.timeout(WAIT_S):
            result = await fut
        assert result.reason is EndReason.CANCELLED and read_streams(result.log_path)[0] == b"warned\n"

    harness.run_async(body)


def test_a_timed_out_attempt_is_not_measured(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        timed = await h.run(AttemptSpec("slow", 1, ("sleep", "1000"), timeout_s=0.05))
        assert timed.reason is EndReason.TIMEOUT and (timed.cpu_s, timed.max_rss_bytes) == (None, None)

    harness.run_async(body)


def test_empty_command_is_a_spawn_failure(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        result = await h.run(AttemptSpec("empty", 1, ()))
        assert (result.reason, result.exit_code) == (EndReason.SPAWN_FAILED, None)
        assert result.error == "empty or malformed command"
        bad_env = await h.run(AttemptSpec("badenv", 1, ("true",), env={"A=B": "x"}))
        assert bad_env.reason is EndReason.SPAWN_FAILED
        assert bad_env.error is not None and bad_env.error.startswith("cannot start true")

    harness.run_async(body)


def test_signal_exit_code_is_128_plus_n_and_the_signal_is_named(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        result = await h.run(sh("sig", "kill -USR1 $$"))
        assert (result.exit_code, result.reason) == (128 + 10, EndReason.EXITED)
        assert result.error == "killed by SIGUSR1"
        realtime = await h.run(sh("rt", "kill -s 40 $$"))
        assert (realtime.exit_code, realtime.error) == (128 + 40, "killed by signal 40")
        exited = await h.run(sh("exit137", "exit 137"))  # the same status, but an exit
        assert (exited.exit_code, exited.error) == (137, None)
        timed = await h.run(AttemptSpec("timed", 1, ("sleep", "1000"), timeout_s=0.05))
        assert (timed.reason, timed.error) == (EndReason.TIMEOUT, None)  # the timeout says it

    harness.run_async(body)


def test_stdout_and_stderr_kept_apart_and_in_order(harness: Harness, tmp_path: Path) -> None:
    # The job waits for a line on a FIFO before each next write and the test writes that line
    # after each chunk reached the log, so the interleaving is fixed, not timing-dependent.
    fifo = tmp_path / "step"
    os.mkfifo(fifo)
    step_fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    harness.on_output_hook = lambda job_id, attempt: os.write(step_fd, b"\n")
    script = f"printf o1; read x < {fifo}; printf e1 >&2; read x < {fifo}; printf o2; read x < {fifo}; printf e2 >&2"

    async def body(h: Harness) -> None:
        result = await h.run(sh("order", script))
        assert result.exit_code == 0
        chunks, _ = read_chunks(result.log_path)
        assert chunks == [(STDOUT, b"o1"), (STDERR, b"e1"), (STDOUT, b"o2"), (STDERR, b"e2"), (END, b"")]
        assert result.output_tail == b"o1e1o2e2"

    try:
        harness.run_async(body)
    finally:
        os.close(step_fd)


def test_env_has_job_identity_and_extra_vars(harness: Harness) -> None:
    spec = sh(
        "envjob",
        'echo "$SWARM_JOB_ID $SWARM_ATTEMPT $FOO $HOME_SEEN"',
        env={"FOO": "bar baz", "SWARM_JOB_ID": "spoofed", "HOME_SEEN": os.environ.get("HOME", "")},
    )

    async def body(h: Harness) -> None:
        result = await h.run(spec)
        out, err = read_streams(result.log_path)
        assert out == f"envjob 1 bar baz {os.environ.get('HOME', '')}\n".encode()
        assert err == b""

    harness.run_async(body)


def test_cwd(harness: Harness, tmp_path: Path) -> None:
    work = tmp_path / "work dir"
    work.mkdir()

    async def body(h: Harness) -> None:
        result = await h.run(AttemptSpec("cwd", 1, ("pwd",), cwd=str(work)))
        assert read_streams(result.log_path)[0] == f"{work}\n".encode()

    harness.run_async(body)


def test_command_not_found_is_127_spawn_failed(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        result = await h.run(AttemptSpec("nf", 1, ("no-such-command-swarm",)))
        assert result.reason is EndReason.SPAWN_FAILED
        assert result.exit_code == 127
        assert result.error == "command not found: no-such-command-swarm"
        assert not h.executor.is_running("nf", 1)
        relative = await h.run(AttemptSpec("nf2", 1, ("./nope/nothing",)))
        assert (relative.exit_code, relative.reason) == (127, EndReason.SPAWN_FAILED)
        assert read_streams(relative.log_path)[1] == b"[swarm: command not found: ./nope/nothing]\n"

    harness.run_async(body)


def test_a_script_whose_interpreter_is_missing_says_so_not_command_not_found(harness: Harness, tmp_path: Path) -> None:
    windows = tmp_path / "saved-on-windows.sh"
    windows.write_bytes(b"#!/bin/sh\r\necho hi\r\n")
    elsewhere = tmp_path / "needs-python9"
    elsewhere.write_text("#!/usr/bin/python9 -u\nprint('hi')\n")
    for script in (windows, elsewhere):
        script.chmod(0o755)

    async def body(h: Harness) -> None:
        crlf = await h.run(AttemptSpec("crlf", 1, ("./saved-on-windows.sh",), cwd=str(tmp_path)))
        assert (crlf.exit_code, crlf.reason) == (127, EndReason.SPAWN_FAILED)
        assert crlf.error == (
            "bad interpreter: ./saved-on-windows.sh has Windows line ends (its #! line ends in \\r):"
            " convert it, e.g. dos2unix ./saved-on-windows.sh"
        )
        missing = await h.run(AttemptSpec("py9", 1, (str(elsewhere),)))
        assert (missing.exit_code, missing.error) == (
            127,
            f"bad interpreter: {elsewhere} is run by /usr/bin/python9 (its #! line), which this node does not have",
        )
        on_path = await h.run(AttemptSpec("path", 1, ("needs-python9",), env={"PATH": str(tmp_path)}))
        assert on_path.error is not None and on_path.error.startswith("bad interpreter: needs-python9 is run by")

    harness.run_async(body)


def test_a_command_line_too_long_for_linux_says_so_and_what_to_do(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        result = await h.run(AttemptSpec("big", 1, ("true",), env={"BIG": "x" * 200_000}))  # over 128 KiB
        assert result.reason is EndReason.SPAWN_FAILED
        assert result.error == (
            "cannot start true: its command line and environment are too long for Linux (at most 128 KiB in one"
            " argument or variable, about a quarter of `ulimit -s` in all): pass big inputs as files (--upload)"
        )

    harness.run_async(body)


def test_not_executable_is_126(harness: Harness, tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(stat.S_IRUSR | stat.S_IWUSR)

    async def body(h: Harness) -> None:
        result = await h.run(AttemptSpec("nx", 1, (str(script),)))
        assert result.reason is EndReason.SPAWN_FAILED
        assert result.exit_code == 126
        assert result.error == f"not executable: {script} (permission denied)"
        directory = await h.run(AttemptSpec("dir", 1, (str(tmp_path),)))
        assert (directory.exit_code, directory.reason) == (126, EndReason.SPAWN_FAILED)
        assert directory.error == f"not executable: {tmp_path} (is a directory)"

    harness.run_async(body)


def test_a_script_without_a_shebang_runs_with_sh(harness: Harness, tmp_path: Path) -> None:
    # As execvp and shells do; `setpriv` (execvp) did too, so this keeps working without it.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "no-shebang"
    script.write_text('echo "sh ran $0 with $1"\n')
    script.chmod(0o755)

    async def body(h: Harness) -> None:
        by_path = await h.run(AttemptSpec("ns1", 1, ("./no-shebang", "x"), cwd=str(bin_dir)))
        assert (by_path.exit_code, by_path.error) == (0, None)
        assert read_streams(by_path.log_path)[0] == b"sh ran ./no-shebang with x\n"
        path = f"{bin_dir}:{os.environ.get('PATH', '')}"
        by_name = await h.run(AttemptSpec("ns2", 1, ("no-shebang", "y"), env={"PATH": path}))
        assert read_streams(by_name.log_path)[0] == f"sh ran {script} with y\n".encode()

    harness.run_async(body)


def test_missing_cwd_is_a_spawn_failure(harness: Harness, tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        result = await h.run(AttemptSpec("nocwd", 1, ("true",), cwd=str(tmp_path / "missing")))
        assert result.reason is EndReason.SPAWN_FAILED
        assert result.exit_code is None
        missing = tmp_path / "missing"
        assert result.error == (
            f"cannot use working directory {missing}: no such directory on the node that ran it"
            " (--workdir DIR ships one; --cwd DIR names one it has)"
        )
        assert b"no such directory" in read_streams(result.log_path)[1]
        a_file = tmp_path / "file"
        a_file.write_bytes(b"")
        on_file = await h.run(AttemptSpec("filecwd", 1, ("true",), cwd=str(a_file)))
        assert on_file.error == f"cannot use working directory {a_file}: not a directory"

    harness.run_async(body)


def test_timeout_sigterm(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        result = await h.run(AttemptSpec("slow", 1, ("sleep", "1000"), timeout_s=0.1))
        assert result.reason is EndReason.TIMEOUT
        assert result.exit_code == 128 + 15

    harness.run_async(body)


def test_timeout_escalates_to_sigkill_when_sigterm_is_trapped(harness: Harness) -> None:
    # The trap is set within a millisecond of start; the 1 s timeout leaves it ample margin.
    spec = sh("stubborn", 'trap "" TERM; echo trapped; sleep 1000', timeout_s=1.0)

    async def body(h: Harness) -> None:
        result = await h.run(spec)
        assert result.reason is EndReason.TIMEOUT
        assert result.exit_code == 128 + 9
        out, err = read_streams(result.log_path)
        assert out == b"trapped\n"
        assert b"[swarm: timeout: sending SIGTERM to the job]\n" in err
        assert b"[swarm: grace period over: sending SIGKILL to the job]\n" in err
        assert result.output_tail == b"trapped\n"  # swarm's own notes are not job output

    harness.run_async(body)


def test_cancel_kills_the_whole_group_including_a_grandchild(harness: Harness, tracker: ProcessTracker) -> None:
    spec = sh("tree", 'trap "" TERM; sleep 1000 & echo $!; wait')

    async def body(h: Harness) -> None:
        fut = await h.start(spec)
        assert h.executor.is_running("tree", 1)
        assert h.executor.running() == [("tree", 1)]
        out, _ = await h.wait_output(spec, lambda out, err: out.endswith(b"\n"))
        grandchild = int(out)
        tracker.add(grandchild)
        assert h.executor.cancel("tree", 1)
        result = await fut
        assert result.reason is EndReason.CANCELLED
        assert result.exit_code == 128 + 9  # the shell ignores SIGTERM: killed after the grace
        assert wait_until(lambda: is_gone(grandchild)), f"grandchild {grandchild} survived"
        assert not h.executor.is_running("tree", 1)
        assert not h.executor.cancel("tree", 1)

    harness.run_async(body)


def test_leftover_background_child_is_killed_when_the_leader_exits(harness: Harness, tracker: ProcessTracker) -> None:
    async def body(h: Harness) -> None:
        # The background sleep keeps stdout open, so the result also waits for the group kill.
        result = await h.run(sh("bg", "sleep 1000 & echo $!"))
        assert (result.exit_code, result.reason) == (0, EndReason.EXITED)
        child = int(read_streams(result.log_path)[0])
        tracker.add(child)
        assert wait_until(lambda: is_gone(child)), f"background child {child} survived"

    harness.run_async(body)


def test_log_bound_and_a_truncation_marker_frame_that_reads_as_stderr(tmp_path: Path, tracker: ProcessTracker) -> None:
    async def body(h: Harness) -> None:
        result = await h.run(sh("big", "head -c 20000 /dev/zero | tr '\\0' a; echo END"))
        out, err = read_streams(result.log_path)
        assert out == b"a" * 1000
        assert err == truncation_marker(1000)
        assert result.output_tail == (b"a" * 20000 + b"END\n")[-TAIL_BYTES:]
        assert result.output_bytes == 20004  # all it wrote: the tail is not all of it
        chunks, _ = read_chunks(result.log_path)
        assert chunks[-2:] == [(TRUNCATED, truncation_marker(1000)), (END, b"")]  # a record of its own: a cut

    Harness(tmp_path, tracker, max_log_bytes=1000).run_async(body)


def test_every_result_holds_and_counts_all_that_its_log_holds(harness: Harness) -> None:
    # An array element's record on another node is read instead of its log when it says it holds
    # all of the output: the result must not be made before the output was read to its end, and
    # must say how much there was. Many at once, so that exits and reads interleave.
    async def body(h: Harness) -> None:
        results = await asyncio.gather(*(h.run(sh(f"rep.{i}", f"echo x{i}; echo e{i} >&2")) for i in range(40)))
        for i, result in enumerate(results):
            out, err = read_streams(result.log_path)
            assert (out, err) == (f"x{i}\n".encode(), f"e{i}\n".encode())
            assert sorted(result.output_tail.splitlines()) == sorted((out + err).splitlines())
            assert result.output_bytes == len(out) + len(err) == len(result.output_tail)

    harness.run_async(body)


def test_output_tail_is_the_last_4_kib(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        result = await h.run(sh("seq", "seq 1 5000; echo last >&2"))
        expected = "".join(f"{i}\n" for i in range(1, 5001)).encode() + b"last\n"
        assert len(result.output_tail) == TAIL_BYTES
        assert result.output_tail == expected[-TAIL_BYTES:]
        assert result.log_path == str(h.executor.log_path("seq", 1))

    harness.run_async(body)


def test_shutdown_stops_running_jobs(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        fut = await h.start(AttemptSpec("long", 1, ("sleep", "1000")))
        await h.executor.shutdown()
        result = fut.result()
        assert (result.reason, result.exit_code) == (EndReason.STOPPED, 128 + 15)
        late = await h.run(AttemptSpec("late", 1, ("true",)))
        assert late.reason is EndReason.STOPPED and late.error is not None
        assert h.executor.running() == []

    harness.run_async(body)


def test_spawn_latency_of_true(harness: Harness) -> None:
    """Start-to-result of `true`; the daemon's whole `swarm run -- true` budget is 50 ms p50."""

    async def body(h: Harness) -> list[float]:
        samples = []
        for i in range(50):
            t0 = time.perf_counter()
            result = await h.run(AttemptSpec(f"lat{i}", 1, ("true",)))
            samples.append((time.perf_counter() - t0) * 1000)
            assert result.exit_code == 0
        return samples

    samples = harness.run_async(body)
    p50 = statistics.median(samples)
    print(f"\nspawn-to-exit of `true`: p50 {p50:.2f} ms, max {max(samples):.2f} ms")
    # About 1.7 ms on an idle 2-core machine; the bound only catches gross regressions (a stray
    # sleep or poll interval), so it holds with the CPUs saturated too.
    assert p50 < 100.0


def test_registry_lists_running_attempts(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        fut = await h.start(AttemptSpec("reg", 2, ("sleep", "1000")))
        h.executor.flush_registry()  # writes are debounced; flush to read them back now
        (entry,) = read_registry(h.registry_path)
        assert (entry.job_id, entry.attempt, entry.pid, entry.pgid) == (
            "reg", 2, h.executor.pid("reg", 2), h.executor.pid("reg", 2),
        )  # fmt: skip
        with pytest.raises(ExecutorError):
            await h.executor.start(AttemptSpec("reg", 2, ("true",)))
        assert h.executor.cancel("reg", 2)
        assert (await fut).reason is EndReason.CANCELLED
        h.executor.flush_registry()
        assert read_registry(h.registry_path) == []

    harness.run_async(body)


def test_unusable_job_id_and_failing_callback(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        result = await h.run(AttemptSpec("../escape", 1, ("true",)))
        assert result.reason is EndReason.SPAWN_FAILED
        assert result.error is not None and "cannot name a log file" in result.error
        assert not (h.tmp_path / "escape").exists()

        def boom(job_id: str, attempt: int) -> None:
            raise RuntimeError("callback bug")

        h.on_output_hook = boom  # logged, and the attempt still completes
        echoed = await h.run(sh("cb", "echo hi"))
        assert echoed.output_tail == b"hi\n"

    harness.run_async(body)


def test_a_job_without_output_leaves_no_log_file(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        result = await h.run(AttemptSpec("quiet", 1, ("true",)))
        assert result.exit_code == 0
        assert result.log_path == str(h.executor.log_path("quiet", 1))  # where it would be
        assert not Path(result.log_path).parent.exists()
        assert read_streams(result.log_path) == (b"", b"")
        loud = await h.run(sh("loud", "echo hi"))
        assert read_streams(loud.log_path) == (b"hi\n", b"")

    harness.run_async(body)


def test_an_unwritable_log_does_not_fail_the_job(tmp_path: Path, tracker: ProcessTracker) -> None:
    logs = tmp_path / "logs"
    logs.write_bytes(b"")  # a file where the logs directory should be: every open fails

    async def body(h: Harness) -> None:
        result = await h.run(sh("nolog", "echo still runs; exit 3"))
        assert (result.exit_code, result.reason, result.error) == (3, EndReason.EXITED, None)
        assert result.output_tail == b"still runs\n"
        timed = await h.run(AttemptSpec("nolog-timeout", 1, ("sleep", "1000"), timeout_s=0.05))
        assert timed.reason is EndReason.TIMEOUT  # the note's failed open is not raised either

    Harness(tmp_path, tracker).run_async(body)
