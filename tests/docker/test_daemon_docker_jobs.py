"""`swarm run --image` on a real daemon with a real (private) Docker engine."""

from __future__ import annotations

from docker_helpers import BUSYBOX_TAG, Engine

from swarmcompute.testing.daemons import DaemonProcess, wait_until


def docker_daemon(daemon_factory, engine: Engine) -> DaemonProcess:  # type: ignore[no-untyped-def]
    return daemon_factory("dnode", extra_env={"DOCKER_HOST": engine.dockerd.host}).start()


def test_run_in_a_container_streams_output_and_keeps_the_exit_code(daemon_factory, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    node = docker_daemon(daemon_factory, engine)
    result = node.swarm(
        "run", "--image", BUSYBOX_TAG, "--", "sh", "-c", 'echo "in a container $SWARM_ATTEMPT"; echo oops >&2; exit 5'
    )
    assert result.returncode == 5, result.stderr
    assert result.stdout == "in a container 1\n"
    assert result.stderr == "oops\n"
    job = node.client.jobs(limit=1)[0]
    assert job["image"] == BUSYBOX_TAG and job["state"] == "failed" and job["exit_code"] == 5


def test_a_container_reads_the_stdin_shipped_with_its_job_from_the_start_on_each_attempt(
    daemon_factory, engine: Engine
) -> None:  # type: ignore[no-untyped-def]
    node = docker_daemon(daemon_factory, engine)
    lines = "".join(f"line {i}\n" for i in range(1, 20001))  # 208 KiB: more than a pipe holds
    script = 'read first; echo "attempt $SWARM_ATTEMPT: $first"; [ "$SWARM_ATTEMPT" = 2 ] && wc -l || exit 1'
    result = node.swarm(
        "run", "--stdin", "--retries", "1", "--image", BUSYBOX_TAG, "--", "sh", "-c", script, input=lines
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "attempt 1: line 1\nattempt 2: line 1\n19999\n"
    unread = node.swarm("run", "--stdin", "--image", BUSYBOX_TAG, "--", "true", input=lines)  # reads none of it
    assert (unread.returncode, unread.stderr) == (0, "")


def test_the_node_advertises_its_images(daemon_factory, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    node = docker_daemon(daemon_factory, engine)
    wait_until(lambda: BUSYBOX_TAG in node.status()["nodes"][0]["images"], 30, "the image in swarm status")


def test_a_missing_image_fails_with_a_clear_line(daemon_factory, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    node = docker_daemon(daemon_factory, engine)
    result = node.swarm("run", "--image", "no-such/image:1", "--", "true")
    assert result.returncode != 0
    assert "image no-such/image:1 is not on node dnode" in result.stderr
    assert "docker pull or docker load it there" in result.stderr


def test_cancel_stops_the_container(daemon_factory, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    node = docker_daemon(daemon_factory, engine)
    job_id = node.client.submit(["sleep", "300"], image=BUSYBOX_TAG)
    wait_until(lambda: node.client.job(job_id)["state"] == "running", 60, "the container to run")
    node.client.cancel(job_id)
    assert node.client.wait(job_id, timeout=60)["state"] == "cancelled"
    wait_until(
        lambda: not engine.client.containers.list(all=True, filters={"label": f"swarm.job_id={job_id}"}),
        30,
        "the container to be removed",
    )


def test_swarm_show_says_what_a_running_container_uses_now(daemon_factory, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    """As for a process job (`sstat`): the processes in the container's cgroup, read from /proc.
    Before, a Docker job's `swarm show` had no `cpu used` or `memory` line while it ran."""
    node = docker_daemon(daemon_factory, engine)
    job_id = node.client.submit(["sh", "-c", "while :; do :; done"], image=BUSYBOX_TAG, cpus=0)

    def busy() -> dict | None:  # type: ignore[type-arg]
        usage = node.client.job(job_id).get("usage_now")
        return usage if usage and usage["cpu_s"] > 0.2 else None

    usage = wait_until(busy, 60, "the container's CPU time to show")
    assert usage["processes"] >= 2 and usage["rss_bytes"] > 0  # Docker's init and the shell
    shown = node.swarm("show", job_id).stdout
    assert "cpu used   " in shown and " so far (" in shown and "now in " in shown, shown
    node.client.cancel(job_id)
