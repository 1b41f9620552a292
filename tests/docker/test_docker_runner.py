"""DockerExecutor against a real private dockerd: streams, exit codes, env, timeout, cancel,
spawn failures, stale containers, the log bound, and the image inventory."""

from __future__ import annotations

import asyncio
import gc
import statistics
import time

import docker.errors
import pytest
from docker_helpers import BUSYBOX_TAG, Engine, Harness, bounded, wait_for

from swarmcompute.executor import TAIL_BYTES, AttemptResult, AttemptSpec, EndReason, read_chunks, read_streams
from swarmcompute.executor.docker_engine import (
    ENGINE_ERRORS,
    LABEL_ATTEMPT,
    LABEL_JOB_ID,
    LABEL_NODE,
    ContainerSpec,
    docker_available,
    list_images,
    local_images,
)
from swarmcompute.executor.logfile import END, STDERR, STDOUT, truncation_marker
from swarmcompute.testing.dockerd import PrivateDockerd, build_busybox_image

UNREACHABLE = "unix:///nonexistent/swarm-test/docker.sock"


def _gone(engine: Engine, container_id: str) -> bool:
    try:
        engine.client.containers.get(container_id)
    except docker.errors.NotFound:
        return True
    return False


def _sh(h: Harness, job_id: str, script: str, **kwargs: object) -> ContainerSpec:
    return h.spec(job_id, ("/bin/sh", "-c", script), **kwargs)  # type: ignore[arg-type]


def test_streams_stay_apart_and_in_order(harness: Harness) -> None:
    script = "echo out1; sleep 0.2; echo err1 >&2; sleep 0.2; echo out2; sleep 0.2; echo err2 >&2"

    async def body(h: Harness) -> None:
        ex = h.executor()
        result = await h.run(ex, _sh(h, "streams", script))
        assert (result.exit_code, result.reason, result.error) == (0, EndReason.EXITED, None)
        assert result.succeeded
        chunks, _ = read_chunks(result.log_path)
        assert chunks == [
            (STDOUT, b"out1\n"),
            (STDERR, b"err1\n"),
            (STDOUT, b"out2\n"),
            (STDERR, b"err2\n"),
            (END, b""),
        ]
        assert result.output_tail == b"out1\nerr1\nout2\nerr2\n"
        assert ("streams", 1) in h.outputs
        assert ex.running() == []

    harness.run_async(body)


def test_exit_code_is_the_containers(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        ex = h.executor()
        result = await h.run(ex, _sh(h, "seven", "exit 7"))
        assert (result.exit_code, result.reason, result.succeeded) == (7, EndReason.EXITED, False)
        assert result.started_at <= result.finished_at

    harness.run_async(body)


def test_env_cwd_and_labels(harness: Harness, engine: Engine) -> None:
    async def body(h: Harness) -> None:
        ex = h.executor()
        spec = _sh(h, "envjob", 'echo "$SWARM_JOB_ID $SWARM_ATTEMPT $GREETING $(pwd)"; sleep 30',
                   attempt=3, env={"GREETING": "hello", "SWARM_JOB_ID": "forged"}, cwd="/tmp/work")  # fmt: skip
        await bounded(ex.start(spec), 60, "the start")
        assert ex.is_running("envjob", 3)
        container_id = ex.container_id("envjob", 3)
        assert container_id is not None
        labels = engine.client.containers.get(container_id).labels
        assert (labels[LABEL_JOB_ID], labels[LABEL_ATTEMPT], labels[LABEL_NODE]) == ("envjob", "3", h.node_id)
        await wait_for(lambda: ("envjob", 3) in h.outputs, 60, "the job's line")
        assert ex.cancel("envjob", 3)
        result = await h.result("envjob", 3)
        assert read_streams(result.log_path)[0] == b"envjob 3 hello /tmp/work\n"

    harness.run_async(body)


def test_cpu_and_memory_limits_reach_the_engine(harness: Harness, engine: Engine) -> None:
    async def body(h: Harness) -> None:
        ex = h.executor()
        await bounded(ex.start(h.spec("limits", ("sleep", "30"), cpus=0.5, mem_bytes=64 * 1024 * 1024)), 60, "start")
        container_id = ex.container_id("limits", 1)
        assert container_id is not None
        host_config = engine.client.api.inspect_container(container_id)["HostConfig"]
        assert (host_config["NanoCpus"], host_config["Memory"]) == (500_000_000, 64 * 1024 * 1024)
        assert host_config["MemorySwap"] == 64 * 1024 * 1024
        ex.cancel("limits", 1)
        await h.result("limits")

    harness.run_async(body)


def test_memory_limit_is_hard_and_an_oom_kill_says_so(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        ex = h.executor()
        hog = "head -c 200000000 /dev/zero | tr '\\0' a | sort >/dev/null"
        result = await h.run(ex, _sh(h, "hog", hog, mem_bytes=32 * 1024 * 1024))
        assert (result.reason, result.exit_code) == (EndReason.EXITED, 128 + 9)
        assert result.error == "out of memory: the kernel killed a process of the job at its --mem of 32.0 MiB"
        assert b"out of memory" in read_streams(result.log_path)[1]

    harness.run_async(body)


def test_timeout_stops_the_container(harness: Harness, engine: Engine) -> None:
    async def body(h: Harness) -> None:
        ex = h.executor(kill_grace_s=1.0)
        await bounded(ex.start(h.spec("slow", ("sleep", "60"), timeout_s=0.5)), 60, "start")
        container_id = ex.container_id("slow", 1)
        result = await h.result("slow")
        assert result.reason is EndReason.TIMEOUT
        assert result.exit_code in (128 + 15, 128 + 9)
        assert container_id is not None and _gone(engine, container_id)
        assert b"[swarm: timeout: stopping the container" in read_streams(result.log_path)[1]

    harness.run_async(body)


def test_a_time_limit_moved_while_the_container_runs_or_starts_is_the_one_kept(harness: Harness) -> None:
    """`swarm update --timeout`: a container started with 0.5 s to live, given an hour while it
    starts, outlives the first limit; cut to 1 s, it is stopped as timed out at once."""

    async def body(h: Harness) -> None:
        ex = h.executor(kill_grace_s=1.0)
        starting = asyncio.ensure_future(ex.start(h.spec("moved", ("sleep", "60"), timeout_s=0.5)))
        await wait_for(lambda: ex.retime("moved", 1, 3600.0), 30, "the attempt known")  # as its container is made
        await bounded(starting, 60, "start")
        await asyncio.sleep(1.5)  # past the first limit: it must still run
        assert ex.is_running("moved", 1)
        assert ex.retime("moved", 1, 1.0)
        result = await h.result("moved")
        assert result.reason is EndReason.TIMEOUT
        assert not ex.retime("moved", 1, 5.0)  # ended: nothing to move

    harness.run_async(body)


def test_a_signal_reaches_the_containers_main_process_also_one_sent_while_it_was_created(harness: Harness) -> None:
    """`swarm signal` of a Docker job, as ``docker kill -s``: one sent while the container is made
    goes once it runs; the trap the job set ends it as it chose."""

    async def body(h: Harness) -> None:
        ex = h.executor()
        script = "trap 'echo got USR1; exit 3' USR1; echo ready; while true; do sleep 0.1; done"
        starting = asyncio.ensure_future(ex.start(_sh(h, "sig", script)))
        await wait_for(lambda: ex.signal("sig", 1, ((18, False),)), 30, "the attempt known")  # CONT: harmless
        await bounded(starting, 60, "start")
        await wait_for(lambda: ("sig", 1) in h.outputs, 60, "the trap to be set")
        assert ex.signal("sig", 1, ((10, True),))  # to the group: a container's main process all the same
        result = await h.result("sig")
        assert (result.reason, result.exit_code) == (EndReason.EXITED, 3)
        chunks, _ = read_chunks(result.log_path)
        said = b"".join(data for _, data in chunks)
        assert said.count(b"[swarm: sending SIGCONT to the container (swarm signal)]\n") == 1
        assert b"[swarm: sending SIGUSR1 to the container (swarm signal)]\n" in said and b"got USR1\n" in said
        assert not ex.signal("sig", 1, ((10, False),))  # ended: nothing to signal

    harness.run_async(body)


def test_a_warning_signal_reaches_the_container_before_its_time_limit(harness: Harness) -> None:
    """``swarm run --image ... --timeout 5s --signal USR1@4s``: the container's main process gets
    USR1 before the SIGTERM of its limit, and ends as its trap chose."""

    async def body(h: Harness) -> None:
        ex = h.executor()
        script = "trap 'echo checkpoint; exit 0' USR1; while true; do sleep 0.1; done"
        result = await h.run(ex, _sh(h, "warned", script, timeout_s=5.0, warn_signal=10, warn_before_s=4.0))
        assert (result.reason, result.exit_code) == (EndReason.EXITED, 0)
        chunks, _ = read_chunks(result.log_path)
        said = b"".join(data for _, data in chunks)
        assert b"[swarm: sending SIGUSR1 to the container (--signal, 4s before its time limit)]\n" in said
        assert b"checkpoint\n" in said

    harness.run_async(body)


def test_sigterm_ignored_means_sigkill_after_grace(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        ex = h.executor(kill_grace_s=1.0)
        spec = _sh(h, "stubborn", "trap '' TERM; echo ready; while true; do sleep 0.1; done")
        await bounded(ex.start(spec), 60, "start")
        await wait_for(lambda: ("stubborn", 1) in h.outputs, 60, "the trap to be set")
        t0 = time.monotonic()
        ex.cancel("stubborn", 1)
        result = await h.result("stubborn")
        assert (result.reason, result.exit_code) == (EndReason.CANCELLED, 128 + 9)
        assert time.monotonic() - t0 >= 1.0

    harness.run_async(body)


def test_cancel_removes_the_container(harness: Harness, engine: Engine) -> None:
    async def body(h: Harness) -> None:
        ex = h.executor()
        await bounded(ex.start(h.spec("cancelme", ("sleep", "60"))), 60, "start")
        container_id = ex.container_id("cancelme", 1)
        assert container_id is not None and not _gone(engine, container_id)
        assert ex.cancel("cancelme", 1)
        assert not ex.cancel("nosuchjob", 1)
        result = await h.result("cancelme")
        assert result.reason is EndReason.CANCELLED
        # Docker's init passes SIGTERM on to sleep (143); SIGKILL after the grace only if the
        # signal came before init was ready for it, on a very loaded machine.
        assert result.exit_code in (128 + 15, 128 + 9)
        assert _gone(engine, container_id)
        assert not ex.is_running("cancelme", 1)

    harness.run_async(body)


def test_missing_image_is_a_clear_spawn_failure(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        ex = h.executor(node_name="pi-4", pull_timeout_s=10.0)
        result = await h.run(ex, h.spec("noimage", ("true",), image="busybox:1"))
        assert result.reason is EndReason.SPAWN_FAILED
        assert result.exit_code is None
        assert result.error is not None
        print(result.error)
        assert result.error.startswith(
            "image busybox:1 is not on node pi-4 and no registry is reachable: "
            "docker pull or docker load it there (pull failed: "
        )
        assert "\n" not in result.error
        assert b"image busybox:1 is not on node pi-4" in read_streams(result.log_path)[1]

    harness.run_async(body)


def test_an_unreachable_engine_loses_the_attempt_with_a_clear_line_and_says_so(harness: Harness) -> None:
    """No fault of the job's: it is lost (STOPPED, to run again where an engine answers), not
    failed, and the node is told to look at its engine again."""

    async def body(h: Harness) -> None:
        told: list[str] = []
        ex = h.executor(docker_host=UNREACHABLE, on_engine_lost=lambda: told.append("lost"))
        result = await h.run(ex, h.spec("noengine", ("true",)))
        assert result.reason is EndReason.STOPPED and told == ["lost"]
        assert result.error == (
            f"no Docker engine reachable at {UNREACHABLE}: start dockerd or run the job without --image"
        )
        assert ex.reap_stale() == 0
        assert await ex.list_images() == []

    harness.run_async(body)
    assert not docker_available(UNREACHABLE)


def test_command_missing_in_the_image_is_127(harness: Harness, engine: Engine) -> None:
    async def body(h: Harness) -> None:
        ex = h.executor()
        result = await h.run(ex, h.spec("nocmd", ("no-such-command",)))
        # Docker's init (the default) execs the command itself and exits 127 like a shell.
        assert (result.reason, result.exit_code) == (EndReason.EXITED, 127)
        assert b"no-such-command" in read_streams(result.log_path)[1]
        # Without it the engine refuses to start the container: a spawn failure, also 127.
        bare = h.executor(use_init=False)
        result = await h.run(bare, h.spec("nocmd", ("no-such-command",), attempt=2))
        assert (result.reason, result.exit_code) == (EndReason.SPAWN_FAILED, 127)
        assert result.error is not None and result.error.startswith("command not found in the image: ")
        assert engine.client.containers.list(all=True, filters={"label": f"{LABEL_NODE}={h.node_id}"}) == []

    harness.run_async(body)


def test_a_job_without_an_image_is_refused(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        ex = h.executor()
        result = await h.run(ex, AttemptSpec("plain", 1, ("true",)))  # type: ignore[arg-type]
        assert result.reason is EndReason.SPAWN_FAILED

    harness.run_async(body)


def test_reap_stale_removes_only_this_nodes_leftovers(harness: Harness, engine: Engine) -> None:
    other = harness.node_id + "-other"

    async def body(h: Harness) -> None:
        earlier = h.executor()
        neighbour = h.executor(node_id=other)
        await bounded(earlier.start(h.spec("left-running", ("sleep", "60"))), 60, "start")
        await bounded(neighbour.start(h.spec("theirs", ("sleep", "60"))), 60, "start")
        left_id = earlier.container_id("left-running", 1)
        theirs_id = neighbour.container_id("theirs", 1)
        # An exited leftover too: created by hand with this node's label, never started.
        exited = engine.client.containers.create(BUSYBOX_TAG, ["true"], labels={LABEL_NODE: h.node_id})
        # The earlier life dies without cleaning up: only its pool and clients go.
        earlier.close()
        later = h.executor()
        assert later.reap_stale() == 2
        assert left_id is not None and _gone(engine, left_id)
        assert _gone(engine, exited.id)
        assert theirs_id is not None and not _gone(engine, theirs_id)
        # The dead life's attempt ends (its container is gone); the neighbour's is untouched.
        neighbour.cancel("theirs", 1)
        await h.result("theirs")

    harness.run_async(body)


def test_reap_stale_keeps_its_own_live_attempts(harness: Harness, engine: Engine) -> None:
    async def body(h: Harness) -> None:
        ex = h.executor()
        await bounded(ex.start(h.spec("mine", ("sleep", "60"))), 60, "start")
        assert ex.reap_stale() == 0
        assert ex.is_running("mine", 1)
        ex.cancel("mine", 1)
        assert (await h.result("mine")).reason is EndReason.CANCELLED

    harness.run_async(body)


def test_the_log_bound_applies(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        ex = h.executor(max_log_bytes=10_000)
        result = await h.run(ex, _sh(h, "flood", "yes 0123456789 | head -c 200000; echo; echo END"))
        assert result.exit_code == 0
        out, err = read_streams(result.log_path)
        assert len(out) == 10_000
        assert err.endswith(truncation_marker(10_000))
        assert len(result.output_tail) == TAIL_BYTES
        assert result.output_tail.endswith(b"\nEND\n")

    harness.run_async(body)


def test_shutdown_stops_everything(harness: Harness, engine: Engine) -> None:
    async def body(h: Harness) -> None:
        ex = h.executor()
        await bounded(ex.start(h.spec("a", ("sleep", "60"))), 60, "start")
        await bounded(ex.start(h.spec("b", ("sleep", "60"))), 60, "start")
        ids = [ex.container_id("a", 1), ex.container_id("b", 1)]
        await bounded(ex.shutdown(), 60, "shutdown")
        assert [h.results[(j, 1)].reason for j in ("a", "b")] == [EndReason.STOPPED] * 2
        assert all(i is not None and _gone(engine, i) for i in ids)
        await ex.start(h.spec("late", ("true",)))
        assert h.results[("late", 1)].reason is EndReason.STOPPED

    harness.run_async(body)


def test_starting_twice_is_a_caller_bug(harness: Harness) -> None:
    from swarmcompute.errors import ExecutorError

    async def body(h: Harness) -> None:
        ex = h.executor()
        await bounded(ex.start(h.spec("twice", ("sleep", "60"))), 60, "start")
        with pytest.raises(ExecutorError):
            await ex.start(h.spec("twice", ("sleep", "60")))
        ex.cancel("twice", 1)
        await h.result("twice")

    harness.run_async(body)


def test_image_inventory_and_probe(harness: Harness, engine: Engine) -> None:
    assert BUSYBOX_TAG in list_images(engine.client)
    assert docker_available(engine.dockerd.host)
    assert BUSYBOX_TAG in local_images(engine.dockerd.host, limit=64)
    with pytest.raises(ENGINE_ERRORS):
        local_images(UNREACHABLE)

    async def body(h: Harness) -> None:
        assert BUSYBOX_TAG in await h.executor().list_images()

    harness.run_async(body)


def test_container_spec_of_a_plain_spec() -> None:
    plain = AttemptSpec("j", 2, ("echo", "hi"), {"A": "1"}, "/w", 5.0)
    spec = ContainerSpec.of(plain, image="img:1", cpus=2.0)
    assert (spec.job_id, spec.attempt, spec.argv, spec.env, spec.cwd, spec.timeout_s) == (
        "j", 2, ("echo", "hi"), {"A": "1"}, "/w", 5.0,
    )  # fmt: skip
    assert (spec.image, spec.cpus, spec.mem_bytes) == ("img:1", 2.0, None)


def test_echo_latency(harness: Harness) -> None:
    """Start to on_exit of ``echo``: printed for the record, bounded loosely for a loaded host."""

    async def body(h: Harness) -> list[float]:
        ex = h.executor()
        times = []
        for i in range(5):
            t0 = time.monotonic()
            result = await h.run(ex, h.spec(f"lat{i}", ("echo", "hi")))
            times.append(time.monotonic() - t0)
            assert result.succeeded and result.output_tail == b"hi\n"
        return times

    times = harness.run_async(body)
    print(f"docker echo start-to-exit: p50 {statistics.median(times) * 1000:.0f} ms, "
          f"max {max(times) * 1000:.0f} ms")  # fmt: skip
    assert statistics.median(times) < 20.0


def test_wait_for_helper_is_bounded() -> None:
    with pytest.raises(AssertionError):
        asyncio.run(wait_for(lambda: False, 0.05, "nothing"))


def test_docker_host_from_the_environment(harness: Harness, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", engine.dockerd.host)
    assert docker_available()

    async def body(h: Harness) -> None:
        ex = h.executor(docker_host=None)
        result = await h.run(ex, h.spec("fromenv", ("echo", "env")))
        assert result.output_tail == b"env\n"

    harness.run_async(body)
    monkeypatch.setenv("DOCKER_HOST", UNREACHABLE)
    assert not docker_available()


def test_cancel_while_the_container_is_being_created(harness: Harness, engine: Engine) -> None:
    async def body(h: Harness) -> None:
        ex = h.executor()
        starting = asyncio.ensure_future(ex.start(h.spec("early", ("sleep", "60"))))
        await asyncio.sleep(0)
        assert ex.is_running("early", 1)
        assert ex.cancel("early", 1)
        await bounded(starting, 60, "the start")
        result = await h.result("early")
        assert result.reason is EndReason.CANCELLED
        assert engine.client.containers.list(all=True, filters={"label": f"{LABEL_NODE}={h.node_id}"}) == []

    harness.run_async(body)


# The SDK's unix transport leaks the socket of a connect that fails (an engine vanishing between
# our own check and its call): collected here, so it cannot fail a later test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_losing_the_engine_ends_the_attempt(harness: Harness) -> None:
    """A dockerd that goes away mid-job: the attempt is reported (not hung), with the reason; lost
    (STOPPED: it runs again) when the engine went before its exit code reached us."""
    second = PrivateDockerd()
    try:
        second.start()
        client = second.client()
        try:
            build_busybox_image(client, BUSYBOX_TAG)
        finally:
            client.close()

        async def body(h: Harness) -> None:
            ex = h.executor(docker_host=second.host)
            await bounded(ex.start(h.spec("orphaned", ("sleep", "60"))), 60, "start")
            await asyncio.to_thread(second.stop, remove_containers=False)
            result = await h.result("orphaned")
            assert not result.succeeded
            # dockerd stops its containers on the way out; whether the exit code still reaches
            # us depends on the race with its socket going away, the end (lost) does not.
            assert result.reason is EndReason.STOPPED and result.exit_code in (None, 143, 137)
            assert result.error is not None
            assert result.error.startswith(f"lost the Docker engine at {second.host}: ")

        harness.run_async(body)
    finally:
        second.stop()
        gc.collect()


def test_a_cancelled_start_call_leaves_no_container(harness: Harness, engine: Engine) -> None:
    """The daemon's start task cancelled mid-create: the container is still stopped and reported."""

    async def body(h: Harness) -> None:
        ex = h.executor()
        starting = asyncio.ensure_future(ex.start(h.spec("abandoned", ("sleep", "60"))))
        await asyncio.sleep(0.01)
        starting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await starting
        result = await h.result("abandoned")
        assert result.reason is EndReason.STOPPED
        assert engine.client.containers.list(all=True, filters={"label": f"{LABEL_NODE}={h.node_id}"}) == []

    harness.run_async(body)


def test_a_leftover_with_the_same_name_is_replaced(harness: Harness, engine: Engine) -> None:
    """Same node, same attempt, no reap_stale in between: the old container gives way."""

    async def body(h: Harness) -> None:
        earlier_results: list[AttemptResult] = []
        earlier = h.executor(on_exit=earlier_results.append)
        await bounded(earlier.start(h.spec("again", ("sleep", "60"))), 60, "start")
        old_id = earlier.container_id("again", 1)
        earlier.close()
        later = h.executor()
        result = await h.run(later, h.spec("again", ("echo", "second life")))
        assert result.output_tail == b"second life\n"
        assert old_id is not None and _gone(engine, old_id)
        await wait_for(lambda: earlier_results, 60, "the earlier life's report")
        # Killed by the removal: its wait sees either the SIGKILL or the container gone.
        earlier_end = earlier_results[0]
        assert earlier_end.exit_code == 128 + 9 or (
            earlier_end.error == "the container was removed by someone else before it ended"
        )

    harness.run_async(body)
