"""The HTTP stack is loaded at the first connection, not at start (``web.server``): the port is
bound at start all the same, and the first request is answered."""

from __future__ import annotations

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
