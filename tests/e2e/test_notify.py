"""`swarm run --notify URL` on real daemons (Slurm's ``--mail-type=END``, for ntfy or a chat
webhook): the leader POSTs a JSON summary to a real HTTP server on loopback when the job ends; a
refused notice is said by `swarm show`; a notice owed when the leader is killed -9 is sent by the
next one; a bad URL is refused in one line."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from swarmcompute.testing.clusters import leader_of, start_cluster, voters
from swarmcompute.testing.daemons import DaemonProcess, free_port, wait_until


class Receiver:
    """An HTTP server on loopback that keeps what is POSTed to it (a 404 for paths under /missing)."""

    def __init__(self, port: int = 0) -> None:
        self.posts: list[dict[str, Any]] = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append({"path": self.path, "title": self.headers["Title"], "body": json.loads(body)})
                self.send_response(404 if self.path.startswith("/missing") else 200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_the_end_of_a_job_is_posted_to_its_url_once_and_swarm_show_says_it_went(
    daemon: DaemonProcess, receiver: Receiver
) -> None:
    run = daemon.swarm("run", "--name", "train", "--notify", f"{receiver.url}/topic", "--", "sh", "-c", "exit 3")
    assert run.returncode == 3, run.stderr
    wait_until(lambda: receiver.posts, 30, "the notice")
    wait_until(lambda: daemon.client.jobs(1)[0].get("notify_state") == "sent", 30, "the notice recorded")
    (post,) = receiver.posts
    body = post["body"]
    assert post["path"] == "/topic" and post["title"] == body["text"] == body["content"]
    assert (body["name"], body["state"], body["exit_code"], body["attempt"]) == ("train", "failed", 3, 1)
    assert body["text"].startswith(f"swarm: job train ({body['id']}) failed with exit 3 on node after ")
    assert "argv" not in body and "env" not in body and "command" not in body  # they may hold secrets
    shown = daemon.swarm("show", body["id"]).stdout
    assert f"notify     {receiver.url}/topic (told)" in shown


def test_a_notice_of_a_job_named_beyond_ascii_has_its_title_encoded_whole(
    daemon: DaemonProcess, receiver: Receiver
) -> None:
    run = daemon.swarm("run", "--name", "train-ü🚀", "--notify", f"{receiver.url}/t", "--", "true")
    assert run.returncode == 0, run.stderr
    wait_until(lambda: receiver.posts, 30, "the notice")
    (post,) = receiver.posts
    assert str(make_header(decode_header(post["title"]))) == post["body"]["text"]  # it read 'train-??'
    assert post["body"]["text"].startswith("swarm: job train-ü🚀 (")


def test_a_refused_notice_is_given_up_at_once_and_said(daemon: DaemonProcess, receiver: Receiver) -> None:
    job_id = daemon.client.submit(["true"], cpus=0, notify=f"{receiver.url}/missing")
    daemon.client.wait(job_id, timeout=30)
    wait_until(lambda: daemon.client.job(job_id)["notify_state"] == "failed", 30, "the notice given up")
    view = daemon.client.job(job_id)
    assert view["notify_error"] == "HTTP 404 Not Found" and len(receiver.posts) == 1  # a 404 is not tried again
    assert "(not told: HTTP 404 Not Found)" in daemon.swarm("show", job_id).stdout


def test_a_bad_url_and_a_notified_array_are_refused_in_one_line(daemon: DaemonProcess) -> None:
    for args, said in [
        (["--notify", "ftp://host/x"], "--notify must be an http:// or https:// URL with a host"),
        (["--notify", "https://"], "--notify must be an http:// or https:// URL with a host"),
        (["--notify", "http://a b/"], "--notify must be one URL of at most 2048 characters, no spaces"),
        (["--array", "0-2", "--notify", "http://x/"], "--notify tells of one job's end: for an array or a gang"),
    ]:
        refused = daemon.swarm("run", *args, "--", "true")
        assert refused.returncode == 2 and said in refused.stderr, (args, refused.stderr)
        assert refused.stderr.count("\n") == 1 and refused.stdout == ""


def test_a_notice_owed_when_the_leader_is_killed_is_sent_by_the_next_leader(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    nodes = start_cluster(daemon_factory, 3)
    wait_until(lambda: leader_of(nodes) and all(len(voters(n)) == 3 for n in nodes), 30, "3 voters and a leader")
    old = leader_of(nodes)
    victim = next(n for n in nodes if n.status()["node_id"] == old)
    survivors = [n for n in nodes if n is not victim]
    port = free_port()  # nothing listens yet: the leader's first try is refused, its next is 2 s later
    job_id = survivors[0].client.submit(["true"], cpus=0, notify=f"http://127.0.0.1:{port}/end", node=survivors[1].name)
    survivors[0].client.wait(job_id, timeout=30)
    victim.kill()
    receiver = Receiver(port)
    try:
        wait_until(lambda: receiver.posts, 30, "the notice, from the next leader")
        wait_until(lambda: survivors[0].client.job(job_id)["notify_state"] == "sent", 30, "the notice recorded")
        assert {p["body"]["id"] for p in receiver.posts} == {job_id}  # at least once; the same job's
        assert leader_of(survivors) not in (None, old)
    finally:
        receiver.close()


def test_a_job_without_notify_has_the_notice_keys_null_as_every_job_does(daemon: DaemonProcess) -> None:
    job_id = daemon.client.submit(["true"], cpus=0)
    view = daemon.client.wait(job_id, timeout=30)
    assert (view["notify"], view["notify_state"], view["notify_error"]) == (None, None, None)  # the keys were missing
    assert {"notify_state", "notify_error"} <= set(json.loads(daemon.swarm("show", job_id, "--json").stdout))
