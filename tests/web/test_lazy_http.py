"""The HTTP stack is loaded at the first connection, not at start (``web.server``): the port is
bound at start all the same, and the first request is answered."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from swarmcompute.testing.daemons import wait_until


def test_the_http_stack_waits_for_the_first_connection_and_then_answers_it(daemon_factory: Any) -> None:
    node = daemon_factory("lazy", http_port=0, extra_args=("--new-cluster",)).start()
    url = node.http_url  # bound at start: the address is known before anyone connected
    assert "http_serving" in node.log_path.read_text()
    assert "http_stack_loaded" not in node.log_path.read_text()
    response = requests.get(f"{url}/health", timeout=30)
    assert response.status_code == 200
    wait_until(lambda: "http_stack_loaded" in node.log_path.read_text(), 10, "the load to be logged")
    assert requests.get(f"{url}/health", timeout=10).status_code == 200


def test_serving_http_adds_no_timer_to_an_idle_daemon_and_every_answer_carries_a_current_date(
    daemon_factory: Any,
) -> None:
    node = daemon_factory("quiet", http_port=0, extra_args=("--new-cluster",)).start()
    url = node.http_url
    before = _wake_ups_a_second(node.pid)  # the stack not loaded yet
    first = requests.get(f"{url}/health", timeout=30)
    assert first.status_code == 200
    wait_until(lambda: "http_stack_loaded" in node.log_path.read_text(), 10, "the load to be logged")
    serving = _wake_ups_a_second(node.pid)
    # uvicorn's own loop polled every 100 ms: 10 more wake-ups a second for ever (13.4 against 3.4).
    print(f"\nthe daemon's thread woke {before:.1f}/s before the first request, {serving:.1f}/s serving")
    assert serving <= before + 3

    dated = parsedate_to_datetime(first.headers["date"])
    assert abs(dated.timestamp() - time.time()) < 5
    later: list[str] = []

    def a_later_second() -> bool:
        later.append(requests.get(f"{url}/health", timeout=10).headers["date"])
        return later[-1] != first.headers["date"]

    wait_until(a_later_second, 10, "a later second's Date header")
    assert parsedate_to_datetime(later[-1]) > dated


def _wake_ups_a_second(pid: int, seconds: float = 3.0) -> float:
    """How often the daemon's main thread (its event loop) was switched in, over ``seconds``."""

    def switches() -> int:
        with open(f"/proc/{pid}/task/{pid}/status") as f:
            return sum(int(line.split()[1]) for line in f if "ctxt_switches:" in line)

    start = switches()
    time.sleep(seconds)  # a window to count in, not a wait for anything
    return (switches() - start) / seconds


def test_a_connection_the_http_port_accepts_sends_without_nagles_delay() -> None:
    """asyncio sets TCP_NODELAY only on a socket whose proto is TCP, as an accepted socket inherits
    from its listener: the listener was made without it, and every answer on a kept-alive
    connection (a browser's, a Prometheus scrape's, a REST session's) waited 40 ms for the
    client's delayed ACK (uvicorn writes a response's head and body apart)."""
    import asyncio
    import socket
    from typing import cast

    from swarmcompute.web.server import WebServer

    server = WebServer(cast(Any, None), cast(Any, None), bind="127.0.0.1", port=0)
    port = int(server.bind().rsplit(":", 1)[1])
    listener = server._sock
    assert listener is not None

    async def accepted() -> int:
        loop = asyncio.get_running_loop()
        with socket.create_connection(("127.0.0.1", port)):
            while True:
                try:
                    sock, _ = listener.accept()
                    break
                except BlockingIOError:
                    await asyncio.sleep(0.01)
            transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, sock)
            try:
                return int(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            finally:
                transport.close()

    try:
        assert asyncio.run(accepted()) == 1
    finally:
        listener.close()
