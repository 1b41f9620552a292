"""The HTTP API against a real 3-node cluster on loopback, with real HTTP requests.

One cluster for the module (about 5 s to form); the test that takes quorum away runs last.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from swarmcompute.testing.clusters import formed_cluster
from swarmcompute.testing.daemons import DaemonProcess, wait_until
from swarmcompute.web.openapi import openapi_document

ROOT = Path(__file__).resolve().parents[2]
HTTP_TIMEOUT_S = 15


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[DaemonProcess]]:
    with formed_cluster(tmp_path_factory.mktemp("web"), 3, http_port=0) as nodes:
        yield nodes


@pytest.fixture(scope="module")
def tokens(cluster: list[DaemonProcess]) -> dict[str, str]:
    """A read-write and a read-only token, made with the CLI on the first node."""
    made = {}
    for name, extra in (("rw", ()), ("ro", ("--read-only",))):
        out = cluster[0].swarm("api-token", "create", name, *extra)
        assert out.returncode == 0, out.stderr
        made[name] = out.stdout.strip().splitlines()[-1]
    return made


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _get(node: DaemonProcess, path: str, token: str | None = None, **kw: Any) -> requests.Response:
    return requests.get(node.http_url + path, headers=_h(token) if token else {}, timeout=HTTP_TIMEOUT_S, **kw)


def _post(node: DaemonProcess, path: str, token: str | None, body: Any) -> requests.Response:
    return requests.post(node.http_url + path, headers=_h(token) if token else {}, json=body, timeout=HTTP_TIMEOUT_S)


def _sse(response: requests.Response) -> Iterator[tuple[str, Any]]:
    name, data = "message", ""
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data += line[6:]
        elif line == "" and data:
            yield name, json.loads(data)
            name, data = "message", ""


def test_the_openapi_document_is_valid_openapi_3_1() -> None:
    from openapi_spec_validator import validate

    document = openapi_document()
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_the_openapi_document_declares_every_route_the_server_has_except_its_pages() -> None:
    from typing import cast

    from swarmcompute.web.app import build_app

    app = build_app(cast(Any, None), cast(Any, None))
    served = {
        (re.sub(r":\w+}", "}", r.path), method.lower())
        for r in app.routes
        for method in r.methods or ()
        if method != "HEAD"
    }  # /files/{path:path} is /files/{path}
    pages = {("/", "get"), ("/assets/{name}", "get"), ("/api/docs", "get"), ("/api/v1/openapi.json", "get")}
    declared = {(path, method) for path, item in openapi_document()["paths"].items() for method in item}
    assert served - pages == declared


def test_a_job_submitted_through_one_node_is_read_followed_and_cancelled_through_others(
    cluster: list[DaemonProcess], tokens: dict[str, str]
) -> None:
    a, b, c = cluster
    rw = tokens["rw"]
    made = _post(a, "/api/v1/jobs", rw, {"argv": "echo one; sleep 0.3; echo two >&2; sleep 60", "name": "follow-me"})
    assert made.status_code == 201, made.text
    job_id = made.json()["id"]
    seen = _get(b, f"/api/v1/jobs/{job_id}", rw)
    assert seen.status_code == 200 and seen.json()["id"] == job_id and seen.json()["name"] == "follow-me"
    texts: list[tuple[str, str]] = []
    ended: dict[str, Any] = {}
    assert _get(c, f"/api/v1/jobs/{job_id}/logs?follow=1").status_code == 401
    with requests.get(
        c.http_url + f"/api/v1/jobs/{job_id}/logs?follow=1",
        headers={**_h(rw), "Accept": "text/event-stream"},
        stream=True,
        timeout=HTTP_TIMEOUT_S,
    ) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for name, data in _sse(stream):
            if name == "output":
                texts.append((data["stream"], data["text"]))
                if "".join(t for _, t in texts).count("\n") == 2:
                    cancelled = requests.delete(
                        b.http_url + f"/api/v1/jobs/{job_id}", headers=_h(rw), timeout=HTTP_TIMEOUT_S
                    )
                    assert cancelled.status_code == 200, cancelled.text
            elif name == "end":
                ended = data
                break
    assert ("stdout", "one\n") in texts and ("stderr", "two\n") in texts
    assert ended["state"] == "cancelled" and ended["id"] == job_id
    plain = _get(a, f"/api/v1/jobs/{job_id}/logs", rw)
    assert plain.status_code == 200 and plain.text.startswith("one\ntwo\n")


def test_following_a_job_that_prints_nothing_yet_answers_at_once_and_ends_with_the_job(
    cluster: list[DaemonProcess], tokens: dict[str, str]
) -> None:
    a, b, _ = cluster
    job_id = _post(a, "/api/v1/jobs", tokens["rw"], {"argv": ["sleep", "60"]}).json()["id"]
    started = time.monotonic()
    with requests.get(
        b.http_url + f"/api/v1/jobs/{job_id}/logs?follow=1&format=sse", headers=_h(tokens["rw"]), stream=True, timeout=5
    ) as stream:
        assert stream.status_code == 200 and time.monotonic() - started < 5
        assert requests.delete(a.http_url + f"/api/v1/jobs/{job_id}", headers=_h(tokens["rw"]), timeout=5).ok
        events = dict(_sse(stream))
    assert events["end"]["state"] == "cancelled"


def test_many_jobs_go_in_one_submission_and_the_list_filters_and_pages(
    cluster: list[DaemonProcess], tokens: dict[str, str]
) -> None:
    a, b, _ = cluster
    rw = tokens["rw"]
    made = _post(a, "/jobs", rw, {"jobs": [{"argv": ["true"], "name": f"batch-{i}"} for i in range(5)]})
    assert made.status_code == 201, made.text
    ids = made.json()["ids"]
    assert len(ids) == 5
    waited = _post(b, "/api/v1/jobs/wait", rw, {"ids": ids, "timeout": 30})
    assert waited.status_code == 200, waited.text
    assert {j["state"] for j in waited.json()["jobs"]} == {"succeeded"}
    page1 = _get(b, "/api/v1/jobs?state=succeeded&name=batch-*&limit=3", rw).json()
    page2 = _get(b, "/api/v1/jobs?state=SUCCEEDED&name=batch-*&limit=3&offset=3", rw).json()  # any case, as --state
    assert page1["total"] == 5 and len(page1["jobs"]) == 3 and len(page2["jobs"]) == 2
    assert {j["id"] for j in page1["jobs"] + page2["jobs"]} == set(ids)
    one = _get(b, "/api/v1/jobs?name=batch-3", rw).json()  # no wildcard: that name itself
    assert [j["name"] for j in one["jobs"]] == ["batch-3"]
    theirs = _get(b, f"/api/v1/jobs?name=batch-*&user={one['jobs'][0]['user']}", rw).json()
    assert theirs["total"] == 5 and _get(b, "/api/v1/jobs?name=batch-*&user=nobody-here", rw).json()["total"] == 0
    seed_shape = _get(a, f"/jobs/{ids[0]}", rw)
    assert seed_shape.status_code == 200 and seed_shape.json()["state"] == "succeeded"


def test_a_pipeline_in_one_submission_waits_on_an_array_and_a_gang_of_the_same_batch(
    cluster: list[DaemonProcess], tokens: dict[str, str]
) -> None:
    a, b, _ = cluster
    rw = tokens["rw"]
    steps = [
        {"argv": "echo reduced", "after": ["sweep-a"], "job_id": "reduce-a", "cpus": 0},  # before the array it names
        {"argv": "echo part $SWARM_ARRAY_INDEX", "array": "0-3", "job_id": "sweep-a", "cpus": 0},
        {"argv": "echo rank $SWARM_RANK", "ranks": 2, "job_id": "gang-a", "cpus": 0},
        {"argv": "echo after the gang", "after": ["gang-a"], "job_id": "after-gang-a", "cpus": 0},
    ]
    made = _post(a, "/api/v1/jobs", rw, {"jobs": steps})
    assert made.status_code == 201, made.text  # it was refused: "no job sweep-a"
    waited = _post(b, "/api/v1/jobs/wait", rw, {"ids": ["reduce-a", "after-gang-a"], "timeout": 60}).json()["jobs"]
    assert [(j["id"], j["state"]) for j in waited] == [("reduce-a", "succeeded"), ("after-gang-a", "succeeded")]
    assert [j["after"] for j in waited] == [[f"sweep-a.{i}" for i in range(4)], ["gang-a.0", "gang-a.1"]]
    parts = _post(b, "/api/v1/jobs/wait", rw, {"ids": ["sweep-a"], "timeout": 5}).json()["jobs"]
    assert max(p["finished_at"] for p in parts) <= waited[0]["started_at"]  # it ran after every element
    again = _post(a, "/api/v1/jobs", rw, {"jobs": steps})  # the same submission again: nothing new
    assert again.status_code == 201 and again.json()["ids"] == made.json()["ids"]
    twice = [{"argv": "echo A", "job_id": "dup-a"}, {"argv": "echo B", "job_id": "dup-a"}]
    refused = _post(a, "/api/v1/jobs", rw, {"jobs": twice})  # answered 201 with both ids, and B never was
    assert refused.status_code == 400, refused.text
    assert refused.json()["detail"] == "job id dup-a is given to two jobs of one submission: give each its own id"
    assert _get(b, "/api/v1/jobs/dup-a", rw).status_code == 404


def test_open_jobs_are_cancelled_by_name_state_and_node_and_nothing_without_a_selection(
    cluster: list[DaemonProcess], tokens: dict[str, str]
) -> None:
    a, b, _ = cluster
    rw = tokens["rw"]
    made = _post(
        a,
        "/api/v1/jobs",
        rw,
        {"jobs": [{"argv": ["sleep", "60"], "name": f"drop-{i}", "node": "n1"} for i in range(3)]},
    )
    kept = _post(a, "/api/v1/jobs", rw, {"argv": ["sleep", "60"], "name": "keep-me", "node": "n1"}).json()["id"]
    assert made.status_code == 201, made.text
    refused = _post(b, "/api/v1/jobs/cancel", rw, {})
    assert refused.status_code == 400 and "select them" in refused.json()["detail"]
    assert _post(b, "/api/v1/jobs/cancel", rw, {"state": ["succeeded"], "name": "drop-*"}).status_code == 400
    assert _post(b, "/api/v1/jobs/cancel", rw, {"name": "drop-*", "node": "nowhere"}).status_code == 404
    assert _post(b, "/api/v1/jobs/cancel", tokens["ro"], {"name": "drop-*"}).status_code == 403
    done = _post(b, "/api/v1/jobs/cancel", rw, {"name": "drop-*", "node": "n1"})
    assert done.status_code == 200, done.text
    assert sorted(j["id"] for j in done.json()["jobs"]) == sorted(made.json()["ids"])
    assert {j["state"] for j in done.json()["jobs"]} == {"cancelled"}
    assert _get(a, f"/api/v1/jobs/{kept}", rw).json()["state"] in ("pending", "assigned", "running")
    assert _post(b, "/api/v1/jobs/cancel", rw, {"name": "drop-*"}).json()["jobs"] == []  # none open is left
    assert [j["id"] for j in _post(b, "/api/v1/jobs/cancel", rw, {"name": "keep-me"}).json()["jobs"]] == [kept]


def test_pending_jobs_are_updated_by_id_or_selection_over_rest_and_with_url(
    cluster: list[DaemonProcess], tokens: dict[str, str], tmp_path: Path
) -> None:
    from swarmcompute.testing.daemons import swarm_executable

    a, b, _ = cluster
    rw = tokens["rw"]
    made = _post(
        a, "/api/v1/jobs", rw, {"jobs": [{"argv": ["true"], "name": f"big-{i}", "cpus": 10**4} for i in range(2)]}
    )
    assert made.status_code == 201, made.text
    first, second = made.json()["ids"]
    assert _post(b, f"/api/v1/jobs/{first}/update", tokens["ro"], {"cpus": 1}).status_code == 403
    for bad in (
        {},
        {"cpus": "many"},
        {"bogus": 1},
        {"jobs": [first], "all": True, "cpus": 1},
        {"jobs": "x", "cpus": 1},
    ):
        assert _post(b, "/api/v1/jobs/update", rw, bad).status_code == 400, bad
    assert _post(b, f"/api/v1/jobs/{first}/update", rw, {"jobs": [second], "cpus": 1}).status_code == 400
    one = _post(b, f"/api/v1/jobs/{first}/update", rw, {"priority": 4, "mem": "1M", "timeout": "1h"})
    assert one.status_code == 200 and one.json()["jobs"] == [{"id": first, "state": "pending", "outcome": "updated"}]
    view = _get(a, f"/api/v1/jobs/{first}", rw).json()
    assert (view["priority"], view["mem_bytes"], view["timeout_s"], view["state"]) == (4, 2**20, 3600.0, "pending")
    fitted = _post(b, "/api/v1/jobs/update", rw, {"name": "big-*", "cpus": 0})
    assert sorted((j["id"], j["outcome"]) for j in fitted.json()["jobs"]) == sorted(
        [(first, "updated"), (second, "updated")]
    )
    waited = _post(a, "/api/v1/jobs/wait", rw, {"ids": [first, second], "timeout": 30}).json()
    assert [j["state"] for j in waited["jobs"]] == ["succeeded", "succeeded"]
    ended = _post(b, f"/api/v1/jobs/{first}/update", rw, {"cpus": 2}).json()["jobs"]
    assert ended == [{"id": first, "state": "succeeded", "outcome": "not_pending"}]

    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": ":".join(sys.path)}
    url = ["--url", b.http_url, "--api-token", rw]
    run = functools.partial(subprocess.run, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    job_id = run([swarm_executable(), *url, "run", "-d", "--cpus", "9999", "--", "true"]).stdout.strip()
    said = run([swarm_executable(), *url, "update", job_id, "--cpus", "0", "--begin", "2s"])
    assert (said.returncode, said.stdout) == (0, f"{job_id} updated\n"), said.stderr
    view = _get(a, f"/api/v1/jobs/{job_id}", rw).json()
    assert view["cpus"] == 0.0 and view["begin_at"] > time.time()  # the start time read on this machine
    assert _post(a, "/api/v1/jobs/wait", rw, {"ids": [job_id], "timeout": 30}).json()["jobs"][0]["state"] == "succeeded"


def test_running_jobs_are_signalled_and_requeued_by_id_or_selection_over_rest_and_with_url(
    cluster: list[DaemonProcess], tokens: dict[str, str], tmp_path: Path
) -> None:
    from swarmcompute.testing.daemons import swarm_executable

    a, b, _ = cluster
    rw = tokens["rw"]
    made = _post(
        a, "/api/v1/jobs", rw, {"jobs": [{"argv": ["sleep", "60"], "name": f"s-{i}", "cpus": 0} for i in range(2)]}
    )
    assert made.status_code == 201, made.text
    first, second = made.json()["ids"]
    wait_until(
        lambda: all(_get(a, f"/api/v1/jobs/{j}", rw).json()["state"] == "running" for j in (first, second)),
        30,
        "both run",
    )
    assert _post(b, f"/api/v1/jobs/{first}/signal", tokens["ro"], {"signal": "USR1"}).status_code == 403
    for bad in (
        {},
        {"signal": "FOO", "all": True},
        {"bogus": 1, "all": True},
        {"jobs": [first], "all": True},
        {"group": 1, "all": True},
    ):
        assert _post(b, "/api/v1/jobs/signal", rw, bad).status_code == 400, bad
    one = _post(b, f"/api/v1/jobs/{first}/signal", rw, {"signal": "SIGCONT", "group": True})
    assert one.status_code == 200 and one.json()["jobs"] == [
        {"id": first, "state": "running", "attempt": 1, "outcome": "signalled"}
    ]
    assert _get(a, f"/api/v1/jobs/{first}", rw).json()["signals"] == [{"signal": "CONT", "group": True}]
    picked = _post(b, "/api/v1/jobs/signal", rw, {"name": "s-*", "signal": 18})
    assert sorted((j["id"], j["outcome"]) for j in picked.json()["jobs"]) == sorted(
        [(first, "signalled"), (second, "signalled")]
    )

    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": ":".join(sys.path)}
    url = ["--url", b.http_url, "--api-token", rw]
    run = functools.partial(subprocess.run, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    said = run([swarm_executable(), *url, "signal", second])  # no body: TERM
    assert (said.returncode, said.stdout) == (0, f"{second} sent SIGTERM (attempt 1)\n"), said.stderr
    ended = _post(a, "/api/v1/jobs/wait", rw, {"ids": [second], "timeout": 30}).json()["jobs"][0]
    assert (ended["state"], ended["exit_code"]) == ("failed", 143)
    requeued = _post(b, "/api/v1/jobs/requeue", rw, {"jobs": [first]}).json()["jobs"]
    assert requeued == [{"id": first, "state": "running", "attempt": 1, "outcome": "requeued"}]
    wait_until(lambda: _get(a, f"/api/v1/jobs/{first}", rw).json()["attempt"] == 2, 30, "it runs again")
    wait_until(lambda: _get(a, f"/api/v1/jobs/{first}", rw).json()["state"] == "running", 30, "it runs again")
    assert _post(b, f"/api/v1/jobs/{first}/requeue", tokens["ro"], None).status_code == 403
    for bad in ({"hold": "yes"}, {"jobs": [first]}):
        assert _post(b, f"/api/v1/jobs/{first}/requeue", rw, bad).status_code == 400, bad
    held = _post(b, f"/api/v1/jobs/{first}/requeue", rw, {"hold": True}).json()["jobs"]
    assert held == [{"id": first, "state": "running", "attempt": 2, "outcome": "requeued"}]
    wait_until(lambda: _get(a, f"/api/v1/jobs/{first}", rw).json()["held"], 30, "it stopped and is held")
    assert [j["outcome"] for j in _post(b, "/api/v1/jobs/release", rw, {"jobs": [first]}).json()["jobs"]] == [
        "released"
    ]
    wait_until(lambda: _get(a, f"/api/v1/jobs/{first}", rw).json()["state"] == "running", 30, "it runs again")
    bare = _post(b, f"/api/v1/jobs/{first}/signal", rw, None)  # no body: TERM
    assert bare.json()["jobs"][0]["outcome"] == "signalled", bare.text
    gone = _post(b, f"/api/v1/jobs/{second}/signal", rw, {"signal": "USR1"}).json()["jobs"]
    assert gone == [{"id": second, "state": "failed", "attempt": 1, "outcome": "not_running"}]


def test_pending_jobs_are_held_and_released_by_id_or_selection_over_rest_and_with_url(
    cluster: list[DaemonProcess], tokens: dict[str, str], tmp_path: Path
) -> None:
    from swarmcompute.testing.daemons import swarm_executable

    a, b, _ = cluster
    rw = tokens["rw"]
    made = _post(
        a, "/api/v1/jobs", rw, {"jobs": [{"argv": ["true"], "name": f"later-{i}", "hold": True} for i in range(2)]}
    )
    assert made.status_code == 201, made.text
    first, second = made.json()["ids"]
    assert _get(b, f"/api/v1/jobs/{first}", rw).json()["held"] is True
    listed = _get(b, "/api/v1/jobs?state=held&name=later-*", rw).json()
    assert sorted(j["id"] for j in listed["jobs"]) == sorted([first, second]) and listed["total"] == 2
    assert _get(b, "/api/v1/jobs?state=parked", rw).status_code == 400
    assert _post(b, f"/api/v1/jobs/{first}/release", tokens["ro"], {}).status_code == 403
    assert _post(b, "/api/v1/jobs/release", rw, {}).status_code == 400  # nothing named, nothing selected
    assert _post(b, "/api/v1/jobs/release", rw, {"jobs": [first], "all": True}).status_code == 400
    assert _post(b, "/api/v1/jobs/release", rw, {"jobs": "x"}).status_code == 400
    again = _post(b, f"/api/v1/jobs/{first}/hold", rw, {})
    assert again.status_code == 200 and again.json()["jobs"] == [
        {"id": first, "state": "pending", "held": True, "outcome": "already"}
    ]
    released = _post(b, "/api/v1/jobs/release", rw, {"name": "later-*"})
    assert sorted((j["id"], j["outcome"]) for j in released.json()["jobs"]) == sorted(
        [(first, "released"), (second, "released")]
    )
    waited = _post(a, "/api/v1/jobs/wait", rw, {"ids": [first, second], "timeout": 30}).json()
    assert [j["state"] for j in waited["jobs"]] == ["succeeded", "succeeded"]
    ended = _post(b, f"/api/v1/jobs/{first}/hold", rw, {}).json()["jobs"]
    assert ended == [{"id": first, "state": "succeeded", "held": False, "outcome": "not_pending"}]

    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": ":".join(sys.path)}
    url = ["--url", b.http_url, "--api-token", rw]
    run = functools.partial(subprocess.run, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    job_id = run([swarm_executable(), *url, "run", "-d", "--hold", "--", "true"]).stdout.strip()
    assert _get(a, f"/api/v1/jobs/{job_id}", rw).json()["held"] is True
    said = run([swarm_executable(), *url, "release", job_id])
    assert (said.returncode, said.stdout) == (0, f"{job_id} released\n"), said.stderr
    assert _post(a, "/api/v1/jobs/wait", rw, {"ids": [job_id], "timeout": 30}).json()["jobs"][0]["state"] == "succeeded"
    refused = run([swarm_executable(), *url, "run", "--hold", "--every", "500ms", "--", "true"])  # no note first
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "--every must be from 1s to 10 years" in refused.stderr
    tokenless = run([swarm_executable(), "--url", b.http_url, "run", "--hold", "--", "true"])
    assert tokenless.returncode == 2 and tokenless.stderr.count("\n") == 1, tokenless.stderr


def test_every_api_request_needs_a_token_and_a_read_only_token_may_only_read(
    cluster: list[DaemonProcess], tokens: dict[str, str]
) -> None:
    a, b, _ = cluster
    for path in ("/api/v1/jobs", "/api/v1/nodes", "/api/v1/cluster", "/api/v1/sd"):
        refused = _get(b, path)
        assert refused.status_code == 401, path
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "ApiAuthError"
        assert _get(b, path, "swarmapi1-not-a-real-token").status_code == 401
        assert _get(b, path, tokens["ro"]).status_code == 200, path
    forbidden = _post(a, "/api/v1/jobs", tokens["ro"], {"argv": ["true"]})
    assert forbidden.status_code == 403 and forbidden.json()["code"] == "ApiForbiddenError"
    missing = _get(a, "/api/v1/jobs/no-such-job", tokens["ro"])
    assert missing.status_code == 404 and missing.json()["code"] == "JobNotFoundError"
    bad = _post(a, "/api/v1/jobs", tokens["rw"], {"argv": ["true"], "cpus": "many"})
    assert bad.status_code == 400 and bad.json()["code"] == "InvalidJobSpecError"
    mib = 1024 * 1024  # a body under the request's 16 MiB, a job over what a node may send the others
    env = {**{f"BIG{i}": "x" * (4 * mib - 64) for i in range(3)}, "BIG3": "x" * (4 * mib - 32 * 1024)}
    big = _post(a, "/api/v1/jobs", tokens["rw"], {"argv": ["true"], "env": env})
    assert big.status_code == 413 and big.json()["code"] == "FrameTooLargeError", big.text[:300]
    assert "pass its big inputs as files" in big.json()["detail"]


def test_a_revoked_token_is_refused_by_every_node(cluster: list[DaemonProcess]) -> None:
    out = cluster[0].swarm("api-token", "create", "short-lived")
    secret = out.stdout.strip().splitlines()[-1]
    assert all(_get(n, "/api/v1/nodes", secret).status_code == 200 for n in cluster)
    listed = cluster[1].swarm("api-token", "list", "--json")
    assert "short-lived" in {t["name"] for t in json.loads(listed.stdout)}
    assert secret not in listed.stdout
    header, *rows = cluster[1].swarm("api-token", "list").stdout.splitlines()
    assert header.split() == ["NAME", "SCOPE", "ACTS", "AS", "CREATED", "EXPIRES"]
    [row] = [r for r in rows if r.startswith("short-lived ")]
    assert row.split()[:3] == ["short-lived", "read-write", "root"] and row.endswith("  never")
    assert cluster[2].swarm("api-token", "revoke", "short-lived").returncode == 0
    for node in cluster:
        wait_until(lambda node=node: _get(node, "/api/v1/nodes", secret).status_code == 401, 10, "the revocation")
    assert "short-lived" not in cluster[2].swarm("api-token", "list").stdout


def test_a_revoked_token_ends_the_streams_it_had_open_within_seconds(cluster: list[DaemonProcess]) -> None:
    a, b, c = cluster
    secret = a.swarm("api-token", "create", "streaming").stdout.strip().splitlines()[-1]
    job_id = _post(a, "/api/v1/jobs", secret, {"argv": ["sleep", "60"]}).json()["id"]
    sse = {**_h(secret), "Accept": "text/event-stream"}
    with (
        requests.get(b.http_url + "/api/v1/events?jobs=1", headers=sse, stream=True, timeout=HTTP_TIMEOUT_S) as events,
        requests.get(
            c.http_url + f"/api/v1/jobs/{job_id}/logs?follow=1", headers=sse, stream=True, timeout=HTTP_TIMEOUT_S
        ) as log,
    ):
        assert events.status_code == 200 and log.status_code == 200
        seen = _sse(events)
        assert next(seen)[0] == "status"
        assert a.swarm("api-token", "revoke", "streaming").returncode == 0
        revoked = time.monotonic()
        names = list(itertools.takewhile(lambda _: time.monotonic() - revoked < 20, (n for n, _ in seen)))
        log_events = list(itertools.takewhile(lambda _: time.monotonic() - revoked < 40, _sse(log)))
        took = time.monotonic() - revoked
    assert names[-1] == "error" and set(names[:-1]) <= {"status"}
    assert log_events[-1][0] == "error" and "revoked" in log_events[-1][1]["detail"]
    assert took < 10  # TOKEN_RECHECK_S and EVENTS_MAX_INTERVAL_S are 2 s; the stream's keep-alive is 15
    assert _get(b, "/api/v1/events", secret).status_code == 401
    ref = a.swarm("cancel", job_id)
    assert ref.returncode == 0, ref.stderr


def test_nodes_cluster_and_service_discovery_list_every_node(
    cluster: list[DaemonProcess], tokens: dict[str, str]
) -> None:
    ro = tokens["ro"]
    nodes = _get(cluster[1], "/api/v1/nodes", ro).json()["nodes"]
    assert {n["name"] for n in nodes} == {"n0", "n1", "n2"}
    one = _get(cluster[1], "/api/v1/nodes/n2", ro)
    assert one.status_code == 200 and one.json()["name"] == "n2"
    nope = _get(cluster[1], "/api/v1/nodes/nope", ro)  # the CLI's error, as ?node=nope answers
    assert nope.status_code == 404 and nope.json()["code"] == "NodeNotFoundError", nope.text
    status = _get(cluster[2], "/api/v1/cluster", ro).json()
    assert status["quorum"]["healthy"] and status["leader"]
    sd = _get(cluster[0], "/api/v1/sd", ro).json()
    assert len(sd) == 3 and all(len(group["targets"]) == 1 for group in sd)


def test_service_discovery_lists_each_node_with_the_http_port_it_serves_on(
    cluster: list[DaemonProcess], tokens: dict[str, str]
) -> None:
    own = {node.name: node.http_url.removeprefix("http://") for node in cluster}  # each its own port
    assert len({url.rpartition(":")[2] for url in own.values()}) == 3

    def targets(asked: DaemonProcess) -> dict[str, str]:
        groups = _get(asked, "/api/v1/sd", tokens["ro"]).json()
        return {g["labels"]["swarm_node"]: t for g in groups for t in g["targets"]}

    for asked in cluster:
        wait_until(lambda asked=asked: targets(asked) == own, 15, f"{asked.name} to know every node's HTTP port")
    nodes = _get(cluster[0], "/api/v1/nodes", tokens["ro"]).json()["nodes"]
    assert {n["name"]: n["http_port"] for n in nodes} == {k: int(v.rpartition(":")[2]) for k, v in own.items()}


def test_a_restarted_node_is_listed_with_its_own_new_http_port_from_its_first_gossip(
    cluster: list[DaemonProcess], tokens: dict[str, str]
) -> None:
    a, _, c = cluster
    old_port = c.http_url.rpartition(":")[2]
    c.kill()
    c.start()  # http_port=0: a new port; its first meta, gossiped on joining, must say it
    new_port = c.http_url.rpartition(":")[2]
    seen: list[str] = []

    def listed_alive_again() -> bool:
        groups = _get(a, "/api/v1/sd", tokens["ro"]).json()
        ports = [t.rpartition(":")[2] for g in groups if g["labels"]["swarm_node"] == c.name for t in g["targets"]]
        nodes = _get(a, "/api/v1/nodes", tokens["ro"]).json()["nodes"]
        if ports and ports[0] != old_port and any(n["name"] == c.name and n["state"] == "alive" for n in nodes):
            seen.append(ports[0])
        return len(seen) >= 3

    wait_until(listed_alive_again, 20, f"{a.name} to list {c.name} alive again", interval_s=0.05)
    # the fallback for a node that says no port (an older release) is the asked node's own port
    assert seen == [new_port] * len(seen), (seen, new_port, a.http_url)


def test_a_node_is_drained_undrained_and_labelled_over_rest_with_a_token_that_may_write(
    cluster: list[DaemonProcess], tokens: dict[str, str]
) -> None:
    rw, ro = tokens["rw"], tokens["ro"]
    assert _post(cluster[0], "/api/v1/nodes/n2/drain", ro, None).status_code == 403
    drained = _post(cluster[0], "/api/v1/nodes/n2/drain", rw, None)
    assert drained.status_code == 200 and drained.json()["drained"] is True
    wait_until(lambda: _get(cluster[1], "/api/v1/nodes/n2", ro).json()["drained"], 15, "n1 to see n2 drained")
    undrained = _post(cluster[1], "/api/v1/nodes/n2/undrain", rw, None)
    assert undrained.status_code == 200 and undrained.json()["drained"] is False
    assert _post(cluster[0], "/api/v1/nodes/n2/labels", rw, {"labels": "rack=1"}).status_code == 400
    assert _post(cluster[0], "/api/v1/nodes/n2/labels", rw, {"labels": ["rack=top"]}).status_code == 200
    wait_until(lambda: _get(cluster[0], "/api/v1/nodes/n2", ro).json()["labels"].get("rack") == "top", 15, "the label")
    assert _post(cluster[0], "/api/v1/nodes/nope/drain", rw, None).status_code == 404


def test_metrics_parse_as_prometheus_text_and_every_grafana_query_names_an_exported_metric(
    cluster: list[DaemonProcess],
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    cluster[1].client.wait(cluster[1].client.submit(["true"], node="n1"), timeout=30)
    response = _get(cluster[1], "/metrics")
    assert response.status_code == 200
    samples = {s.name: s for family in text_string_to_metric_families(response.text) for s in family.samples}
    for name in ("swarm_node_up", "swarm_jobs", "swarm_raft_term", "swarm_members", "swarm_job_run_seconds_bucket"):
        assert name in samples, name
    assert samples["swarm_jobs_submitted_total"].value >= 1
    assert samples["swarm_peer_bytes_sent_total"].value > samples["swarm_peer_messages_sent_total"].value > 0
    gossip = {k: samples[f"swarm_gossip_{k}_total"].value for k in ("probes", "indirect_probes", "suspicions")}
    assert gossip["probes"] >= gossip["indirect_probes"] and gossip["probes"] >= gossip["suspicions"]
    assert "swarm_gossip_declared_dead_total" in samples
    # what the jobs that ended on this node used: the `true` above (n1), and those of other tests
    assert samples["swarm_executed_cpu_seconds_total"].value > 0
    peaks = samples["swarm_executed_peak_memory_bytes_count"].value
    assert peaks >= 1 and samples["swarm_executed_peak_memory_bytes_sum"].value >= peaks * (1 << 20)
    up = [s for f in text_string_to_metric_families(response.text) for s in f.samples if s.name == "swarm_node_up"]
    assert {s.labels["node"] for s in up} == {"n0", "n1", "n2"}
    dashboard = json.loads((ROOT / "examples" / "grafana-dashboard.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert queries
    grid = [p["gridPos"] for p in dashboard["panels"]]
    cells = [(x, y) for g in grid for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])]
    assert len(cells) == len(set(cells)), "two panels of the Grafana dashboard overlap"
    for query in queries:
        names = set(re.findall(r"\b(?:swarm|process)_[a-z0-9_]+", query))
        assert names, query
        assert names <= set(samples), f"{query}: {names - set(samples)} not exported"
    prometheus = (ROOT / "examples" / "prometheus.yml").read_text()
    assert "/api/v1/sd" in prometheus


def test_every_route_the_openapi_document_declares_answers_without_a_server_error(
    cluster: list[DaemonProcess], tokens: dict[str, str]
) -> None:
    a = cluster[0]
    job_id = _post(a, "/api/v1/jobs", tokens["rw"], {"argv": ["true"], "name": "walker"}).json()["id"]
    _post(a, "/api/v1/jobs/wait", tokens["rw"], {"ids": [job_id], "timeout": 30})
    bodies = {"/api/v1/jobs/wait": {"ids": [job_id], "timeout": 5}}
    document = openapi_document()
    walked = 0
    for path, item in document["paths"].items():
        for method, _op in item.items():
            url = path.replace("{ref}", "n1" if "/nodes/" in path else job_id)
            for token in (tokens["rw"], None):
                response = requests.request(
                    method.upper(),
                    a.http_url + url,
                    headers=_h(token) if token else {},
                    json=bodies.get(path, {"argv": ["true"]}) if method == "post" else None,
                    timeout=HTTP_TIMEOUT_S,
                    stream=True,
                )
                with response:
                    assert response.status_code < 500, f"{method} {url}: {response.status_code}"
                walked += 1
    assert walked == 2 * sum(len(item) for item in document["paths"].values())
    for path, item in document["paths"].items():
        for method, op in item.items():
            for param in (p for p in op.get("parameters", ()) if p["in"] == "query"):
                for bad in ("", "-1", "abc", "9" * 30, "%00", "first,latest"):
                    url = path.replace("{ref}", "n1" if "/nodes/" in path else job_id) + f"?{param['name']}={bad}"
                    with requests.request(
                        method.upper(), a.http_url + url, headers=_h(tokens["rw"]), timeout=HTTP_TIMEOUT_S, stream=True
                    ) as response:
                        assert response.status_code < 500, f"{method} {url}: {response.status_code}"
    for garbage in (b"{", b"[1,2]", b'{"argv": []}', b'{"jobs": "x"}', b"\xff" * 10):
        response = requests.post(
            a.http_url + "/api/v1/jobs", data=garbage, headers=_h(tokens["rw"]), timeout=HTTP_TIMEOUT_S
        )
        assert response.status_code == 400, garbage
        assert response.headers["content-type"] == "application/problem+json"


def test_the_docs_page_and_dashboard_are_served_from_the_package(cluster: list[DaemonProcess]) -> None:
    docs = _get(cluster[0], "/api/docs")
    assert docs.status_code == 200 and "openapi.json" in docs.text and "http" not in docs.text.split("<body>")[0]
    page = _get(cluster[0], "/")
    assert page.status_code == 200 and "/assets/dashboard.js" in page.text
    assert _get(cluster[0], "/assets/dashboard.js").status_code == 200
    assert _get(cluster[0], "/assets/../../etc/passwd").status_code == 404


def test_a_taken_http_port_or_an_unusable_certificate_stops_the_daemon_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = [sys.executable, "-m", "swarmcompute.node", "--state-dir", str(tmp_path / "s"), "--bind", "127.0.0.1"]
        out = subprocess.run(
            [*args, "--port", "0", "--no-mdns", "--http-port", str(port)], capture_output=True, text=True, timeout=60
        )
    assert out.returncode == 2
    assert f"cannot serve HTTP on 127.0.0.1:{port}" in out.stderr and "--http-port" in out.stderr
    missing = tmp_path / "missing.pem"
    out = subprocess.run(
        [*args, "--port", "0", "--no-mdns", "--http-port", "0", "--tls-cert", str(missing), "--tls-key", str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "cannot use --tls-cert/--tls-key" in out.stderr, out.stderr[-2000:]


def test_swarm_with_url_runs_commands_from_a_host_without_a_daemon(
    cluster: list[DaemonProcess], tokens: dict[str, str], tmp_path: Path
) -> None:
    from swarmcompute.testing.daemons import swarm_executable

    url = cluster[1].http_url
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": ":".join(sys.path)}

    def swarm(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [swarm_executable(), *args], capture_output=True, text=True, timeout=60, env={**env, **extra}, cwd=tmp_path
        )

    hi = swarm("--url", url, "--api-token", tokens["rw"], "run", "--", "echo", "hi")
    assert (hi.returncode, hi.stdout) == (0, "hi\n"), hi.stderr
    failed = swarm(
        "run", "--", "sh", "-c", "echo out; echo err >&2; exit 4", SWARM_URL=url, SWARM_API_TOKEN=tokens["rw"]
    )
    assert (failed.returncode, failed.stdout, failed.stderr) == (4, "out\n", "err\n")
    listed = swarm("--url", url, "--api-token", tokens["ro"], "jobs", "--json", "-n", "3")
    assert listed.returncode == 0 and json.loads(listed.stdout)[0]["exit_code"] == 4
    refused = swarm("--url", url, "run", "--", "true")
    assert refused.returncode == 2 and refused.stderr.startswith("swarm: ") and len(refused.stderr.splitlines()) == 1
    read_only = swarm("--url", url, "--api-token", tokens["ro"], "run", "--", "true")
    assert read_only.returncode == 2 and "read-only" in read_only.stderr
    local_only = swarm("--url", url, "--api-token", tokens["rw"], "policy", "show")
    assert (
        local_only.returncode == 2
        and local_only.stderr
        == "swarm: the command policy is shown and set on a node (`swarm policy`), not over --url\n"
    )
    job_id = json.loads(listed.stdout)[0]["id"]
    raw = swarm("--url", url, "--api-token", tokens["ro"], "logs", "--raw-path", job_id)  # this machine's paths: none
    assert (raw.returncode, raw.stdout) == (2, "") and raw.stderr.startswith("swarm: --raw-path prints where a node")


def test_swarm_with_url_run_and_logs_write_output_that_is_not_utf8_byte_for_byte(
    cluster: list[DaemonProcess], tokens: dict[str, str], tmp_path: Path
) -> None:
    from swarmcompute.testing.daemons import swarm_executable

    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": ":".join(sys.path)}
    url = ["--url", cluster[1].http_url, "--api-token", tokens["rw"]]
    # \377\376 are no UTF-8; "é" (\303\251) is; the output ends inside a character (\342\202)
    script = r"printf '\377\376bin\n\303\251\n'; printf '\342\202' >&2"
    expected_out, expected_err = b"\xff\xfebin\n\xc3\xa9\n", b"\xe2\x82"
    ran = subprocess.run(
        [swarm_executable(), *url, "run", "--name", "not-utf8", "--", "sh", "-c", script],
        capture_output=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert (ran.returncode, ran.stdout) == (0, expected_out), ran.stderr
    assert ran.stderr.endswith(expected_err), ran.stderr
    logs = subprocess.run(
        [swarm_executable(), *url, "logs", "not-utf8"], capture_output=True, timeout=60, env=env, cwd=tmp_path
    )
    assert (logs.returncode, logs.stdout, logs.stderr) == (0, expected_out, expected_err)
    with requests.get(  # a browser's text is still there, U+FFFD for what is not UTF-8
        cluster[2].http_url + "/api/v1/jobs/not-utf8/logs?format=sse", headers=_h(tokens["ro"]), timeout=15
    ) as stream:
        outputs = [data for name, data in _sse(stream) if name == "output"]
    out = [d for d in outputs if d["stream"] == "stdout"]
    assert "".join(d["text"] for d in out) == "\ufffd\ufffdbin\né\n"
    assert all(("b64" in d) == ("\ufffd" in d["text"]) for d in outputs)  # only where the text is not the bytes


def test_output_events_carry_the_exact_bytes_only_where_their_text_is_not_them() -> None:
    import base64
    import codecs

    from swarmcompute.web.app import _output_event

    decoders: dict[tuple[int, int], codecs.IncrementalDecoder] = {}
    chunks = [b"ok \xc3", b"\xa9 \xef\xbf\xbd\n", b"\xff\xfe\xe2", b"\x82\xacbin\xe2\x82"]  # é, U+FFFD, €
    events = [_output_event(decoders, 1, 1, data, False) for data in chunks]
    events.append(_output_event(decoders, 1, 1, b"", True))  # the attempt's end: its cut character
    bodies = [json.loads(e.partition("data: ")[2]) for e in events]
    assert [b["text"] for b in bodies] == ["ok ", "é \ufffd\n", "\ufffd\ufffd", "€bin", "\ufffd"]
    assert ["b64" in b for b in bodies] == [False, False, True, False, True]  # a real U+FFFD is its bytes
    rebuilt = b"".join(base64.b64decode(b["b64"]) if "b64" in b else b["text"].encode() for b in bodies)
    assert rebuilt == b"".join(chunks)


def test_the_plain_log_is_the_job_s_bytes_exactly_and_claims_no_charset(
    cluster: list[DaemonProcess], tokens: dict[str, str]
) -> None:
    a, b, _ = cluster
    script = r"printf '\377\376bin\n\303\251'"
    job_id = _post(a, "/api/v1/jobs", tokens["rw"], {"argv": ["sh", "-c", script]}).json()["id"]
    assert _post(a, "/api/v1/jobs/wait", tokens["rw"], {"ids": [job_id], "timeout": 30}).ok
    plain = _get(b, f"/api/v1/jobs/{job_id}/logs", tokens["ro"])
    assert plain.status_code == 200 and plain.content == b"\xff\xfebin\n\xc3\xa9"
    assert plain.headers["content-type"] == "text/plain"  # not UTF-8: it says no charset


def test_a_plain_log_followed_through_a_node_that_stops_ends_as_an_incomplete_transfer(tmp_path: Path) -> None:
    """A plain body cannot say that the output went on: cut short, it must not look whole."""
    with formed_cluster(tmp_path, 2, http_port=0) as (a, b):
        token = a.swarm("api-token", "create", "cut").stdout.strip().splitlines()[-1]
        job_id = b.client.submit(["sh", "-c", "echo first; sleep 300"], node="n1", cpus=0)
        with requests.get(
            a.http_url + f"/api/v1/jobs/{job_id}/logs?follow=1", headers=_h(token), stream=True, timeout=30
        ) as stream:
            assert stream.status_code == 200
            chunks = stream.iter_content(None)
            assert next(chunks) == b"first\n"
            a.stop()  # the node answering: its streams end now
            with pytest.raises(requests.exceptions.ChunkedEncodingError):
                b"".join(chunks)


def test_swarm_with_url_ships_the_script_its_files_and_a_workdir_and_copies_back_what_the_job_left(
    cluster: list[DaemonProcess], tokens: dict[str, str], tmp_path: Path
) -> None:
    """A laptop with no daemon: the files go to the node behind --url through the HTTP API, the
    job runs on another node, and what it left comes back from any node."""
    import hashlib
    import io
    import tarfile

    from swarmcompute.testing.daemons import swarm_executable

    laptop = tmp_path / "laptop"
    (laptop / "data").mkdir(parents=True)
    (laptop / "data" / "in.txt").write_text("abc\n")
    (laptop / "shout.py").write_text(
        "import os, sys\n"
        "os.makedirs('out', exist_ok=True)\n"
        "open('out/res.txt', 'w').write(open(sys.argv[1]).read().upper())\n"
        "print(os.getcwd() != sys.argv[2], sys.argv[1])\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": ":".join(sys.path)}
    env |= {"SWARM_URL": cluster[1].http_url, "SWARM_API_TOKEN": tokens["rw"]}

    def swarm(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [swarm_executable(), *args], capture_output=True, text=True, timeout=60, env=env, cwd=laptop
        )

    ran = swarm(
        "run",
        "--node",
        cluster[2].name,
        "--upload",
        "data",
        "--download",
        "out/*",
        "python3",
        "shout.py",
        "data/in.txt",
        str(laptop),
    )
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "True data/in.txt\n", "")
    assert (laptop / "out" / "res.txt").read_text() == "ABC\n"
    job = swarm("jobs", "--json", "-n", "1")
    record = json.loads(job.stdout)[0]
    assert (record["node"], record["files"]) == (cluster[2].status()["node_id"], 2)

    detached = swarm(
        "run", "-d", "--node", cluster[0].name, "--workdir", ".", "python3", "shout.py", "data/in.txt", str(laptop)
    )
    job_id = detached.stdout.strip()
    assert detached.returncode == 0 and swarm("wait", job_id).returncode == 0
    listed = json.loads(swarm("cp", f"{job_id}:", "--json").stdout)
    assert {f["path"] for f in listed["files"]} == {"data/in.txt", "out/res.txt", "shout.py"}
    assert listed["node"] == cluster[0].status()["node_id"]
    one = swarm("cp", f"{job_id}:out/res.txt", "-")
    assert (one.returncode, one.stdout) == (0, "ABC\n")
    assert swarm("cp", f"{job_id}:out", str(tmp_path / "got")).returncode == 0
    assert (tmp_path / "got" / "res.txt").read_text() == "ABC\n"
    archive = subprocess.run(
        [swarm_executable(), "cp", f"{job_id}:", "-"], capture_output=True, timeout=60, env=env, cwd=laptop
    )
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        assert sorted(tar.getnames()) == ["data/in.txt", "out/res.txt", "shout.py"]
    missing = swarm("cp", f"{job_id}:nope", str(tmp_path))
    assert missing.returncode != 0 and "left no 'nope'" in missing.stderr and len(missing.stderr.splitlines()) == 1

    link = "swarm: not kept: out/l: a symbolic link: links are not followed or kept\n"  # lost: said, exit 3
    lost = swarm("run", "--upload", "data", "--download", "out/*", "--", "sh", "-c", "mkdir out; ln -s x out/l")
    assert (lost.returncode, lost.stderr) == (3, link)
    lost_id = json.loads(swarm("jobs", "--json", "-n", "1").stdout)[0]["id"]
    assert swarm("cp", f"{lost_id}:out/l", str(tmp_path)).stderr == link

    no_upload = swarm("run", "--no-upload", "--", "echo", "as it is")  # once refused over --url
    assert (no_upload.returncode, no_upload.stdout) == (0, "as it is\n"), no_upload.stderr

    data = b"bytes of a blob"
    sha = hashlib.sha256(data).hexdigest()
    url = f"{cluster[0].http_url}/api/v1/files/{sha}"
    assert _post(cluster[0], "/api/v1/files/missing", tokens["rw"], {"sha256": [sha]}).json() == {"missing": [sha]}
    wrong = requests.put(url, data=b"other bytes", headers=_h(tokens["rw"]), timeout=HTTP_TIMEOUT_S)
    assert wrong.status_code == 409 and "hash to" in wrong.json()["detail"]
    read_only = requests.put(url, data=data, headers=_h(tokens["ro"]), timeout=HTTP_TIMEOUT_S)
    assert read_only.status_code == 403
    put = requests.put(url, data=data, headers=_h(tokens["rw"]), timeout=HTTP_TIMEOUT_S)
    assert (put.status_code, put.json()) == (201, {"sha256": sha, "size": len(data)})
    assert _post(cluster[0], "/api/v1/files/missing", tokens["rw"], {"sha256": [sha]}).json() == {"missing": []}
    assert not list((cluster[0].state_dir / "files" / "incoming").iterdir())  # no part left of the wrong one
    body = {"argv": ["cat", "blob.txt"], "files": [["blob.txt", sha, len(data), 0o644]]}
    shipped = _post(cluster[0], "/api/v1/jobs", tokens["rw"], body).json()["id"]
    _post(cluster[0], "/api/v1/jobs/wait", tokens["rw"], {"ids": [shipped], "timeout": 30})
    assert _get(cluster[2], f"/api/v1/jobs/{shipped}/logs", tokens["ro"]).content == data
    got = _get(cluster[2], f"/api/v1/jobs/{shipped}/files/blob.txt", tokens["ro"])
    assert (got.content, got.headers["x-file-mode"]) == (data, "0644")


def test_a_remote_shipment_goes_over_one_kept_connection_and_a_new_one_once_the_node_closed_it(
    cluster: list[DaemonProcess], tokens: dict[str, str], tmp_path: Path
) -> None:
    import hashlib

    from swarmcompute.web.remote import HttpLink, RemoteClient

    client = RemoteClient(url=cluster[0].http_url, token=tokens["rw"])
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"blob{i}")
        paths[-1].write_bytes(os.urandom(1000) + bytes([i]))
    shas = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    with client._files_link() as link:
        assert isinstance(link, HttpLink) and link.missing(shas) == shas
        with open(paths[0], "rb") as f:
            assert link.put(shas[0], f) == 1001
        kept = link._conn
        with open(paths[1], "rb") as f:
            link.put(shas[1], f)
        assert kept is not None and link._conn is kept  # the same connection
        kept.sock.shutdown(socket.SHUT_RDWR)  # as a node that closed it while idle
        with open(paths[2], "rb") as f:
            assert link.put(shas[2], f) == 1001
        assert link._conn is not None and link._conn is not kept
        assert link.missing(shas) == []


def test_a_remote_client_asking_a_route_the_node_lacks_is_told_it_may_be_an_older_release(
    cluster: list[DaemonProcess], tokens: dict[str, str]
) -> None:
    from swarmcompute import errors
    from swarmcompute.web.remote import RemoteClient

    client = RemoteClient(url=cluster[0].http_url, token=tokens["rw"])
    with pytest.raises(errors.ConfigError) as raised:
        client._json("GET", "/api/v1/later-things?x=1")
    assert str(raised.value) == (
        "the node does not serve GET /api/v1/later-things (an older release?): upgrade it, or run this on a node"
    )
    with pytest.raises(errors.ConfigError, match="does not serve POST /api/v1/files/abc"):
        client._json("POST", "/api/v1/files/abc", {})  # a path it has, not for this method
    with pytest.raises(errors.JobNotFoundError):  # a route it has, for something it has not
        client.job("no-such-job")


def test_a_remote_swarm_run_killed_outright_has_its_job_cancelled_unless_keep_on_exit(
    cluster: list[DaemonProcess], tokens: dict[str, str], tmp_path: Path
) -> None:
    from swarmcompute.testing.daemons import swarm_executable

    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": ":".join(sys.path)}
    ids = {}
    for name, extra in (("remote-lifeline", ()), ("remote-kept", ("--keep-on-exit",))):
        run = subprocess.Popen(
            [swarm_executable(), "--url", cluster[0].http_url, "--api-token", tokens["rw"], "run"]
            + ["--name", name, *extra, "--", "sleep", "60"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=tmp_path,
        )
        try:

            def running(name: str = name) -> str | None:
                jobs = _get(cluster[1], f"/api/v1/jobs?name={name}", tokens["ro"]).json()["jobs"]
                return jobs[0]["id"] if jobs and jobs[0]["state"] == "running" else None

            ids[name] = wait_until(running, 30, f"{name} to run")
        finally:
            run.kill()  # SIGKILL: the client cannot cancel anything itself
            run.wait()

    def state(name: str) -> str:
        return str(_get(cluster[1], f"/api/v1/jobs/{ids[name]}", tokens["ro"]).json()["state"])

    wait_until(lambda: state("remote-lifeline") == "cancelled", 15, "the orphaned job to be cancelled")
    assert state("remote-kept") == "running"
    _post(cluster[0], f"/api/v1/jobs/{ids['remote-kept']}/cancel", tokens["rw"], None)


def test_swarm_run_on_a_node_imports_nothing_of_the_http_side(cluster: list[DaemonProcess]) -> None:
    from swarmcompute.testing.daemons import swarm_executable

    env = {**os.environ, "SWARM_STATE_DIR": str(cluster[0].state_dir)}
    env.pop("SWARM_URL", None)
    out = subprocess.run(
        [sys.executable, "-X", "importtime", swarm_executable(), "run", "--", "true"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert "swarmcompute.cli.run_cmd" in imported
    assert not {m for m in imported if m.split(".")[0] in ("starlette", "uvicorn", "prometheus_client", "http")}
    assert not {m for m in imported if m.startswith("swarmcompute.web")}


def test_client_with_url_submits_jobs_over_a_request_s_16_mib_in_as_many_requests_as_they_need(
    cluster: list[DaemonProcess], tokens: dict[str, str]
) -> None:
    """As the local client does (tests/e2e/test_large_submissions.py): before, the daemon refused
    the one 28 MB body ("split the submission up")."""
    from swarmcompute import Client, errors

    env = {f"BIG{i}": "x" * 120_000 for i in range(12)}  # 1.4 MB a job
    client = Client(url=cluster[2].http_url, token=tokens["rw"])
    ids = client.submit_many([{"argv": f"echo {i}", "cpus": 0, "env": env} for i in range(20)])
    assert [j["state"] for j in client.wait(ids, timeout=60)] == ["succeeded"] * 20
    assert client.logs(ids[19]) == "19\n"
    linked = [
        {"argv": "true", "job_id": f"url-linked{i}", "env": env, "after": [f"url-linked{i - 1}"]} for i in range(12)
    ]
    linked[0].pop("after")
    with pytest.raises(errors.FrameTooLargeError, match="these 12 jobs go in one submission"):
        client.submit_many(linked)


def test_client_with_url_submits_waits_reads_and_cancels_like_the_local_client(
    cluster: list[DaemonProcess], tokens: dict[str, str]
) -> None:
    from swarmcompute import Client, errors
    from swarmcompute.web.remote import RemoteClient

    client = Client(url=cluster[2].http_url, token=tokens["rw"])
    assert isinstance(client, RemoteClient)
    ids = client.submit_many([{"argv": f"echo {i}", "name": f"remote-{i}"} for i in range(3)])
    jobs = client.wait(ids, timeout=30)
    assert [j["state"] for j in jobs] == ["succeeded"] * 3
    assert client.logs(ids[1]) == "1\n"
    background = _post(cluster[0], "/api/v1/jobs", tokens["rw"], {"argv": ["true"], "preemptible": True})
    assert background.status_code == 201, background.text
    via_rest = client.wait(background.json()["id"], timeout=30)
    via_url = client.job(client.submit("true", preemptible=True))  # RemoteClient: as Client.submit
    assert (via_rest["state"], via_rest["preemptible"], via_url["preemptible"]) == ("succeeded", True, True)
    long = client.submit(["sleep", "60"])
    assert client.cancel(long)["id"] == long
    assert client.wait(long, timeout=30)["state"] == "cancelled"
    with pytest.raises(errors.JobNotFoundError):
        client.job("no-such-job-here")
    with pytest.raises(errors.ApiAuthError):
        Client(url=cluster[2].http_url, token="swarmapi1-wrong").status()
    with pytest.raises(errors.ConfigError):
        client.recover()


def test_a_node_given_a_certificate_serves_https_and_metrics_behind_its_metrics_token(
    daemon_factory: Any, tmp_path: Path
) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: it makes the test's certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    node = daemon_factory(
        "tls",
        http_port=0,
        extra_args=("--tls-cert", str(cert), "--tls-key", str(key), "--metrics-token", "scrape-me"),
    ).start()
    url = node.http_url
    assert url.startswith("https://")
    assert requests.get(url + "/metrics", verify=str(cert), timeout=HTTP_TIMEOUT_S).status_code == 401
    scraped = requests.get(url + "/metrics", verify=str(cert), headers=_h("scrape-me"), timeout=HTTP_TIMEOUT_S)
    assert scraped.status_code == 200 and "swarm_raft_term" in scraped.text
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url.replace("https://", "http://") + "/health", timeout=HTTP_TIMEOUT_S)


def test_health_answers_503_once_quorum_is_lost(cluster: list[DaemonProcess]) -> None:
    """Runs last: it takes two of the three nodes away."""
    survivor = cluster[0]
    healthy = _get(survivor, "/health")
    assert healthy.status_code == 200 and healthy.json()["quorum"]["healthy"]
    assert _get(survivor, "/ready").status_code == 200
    url = survivor.http_url
    killed = sorted(node.status()["node_id"] for node in cluster[1:])
    for node in cluster[1:]:
        node.kill()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lost = requests.get(url + "/health", timeout=HTTP_TIMEOUT_S)
        # 503 comes first, while an election is under way (a follower left alone names no one
        # missing until gossip doubts the others: a leader knows sooner, from Raft); then the names
        if lost.status_code == 503 and lost.json()["quorum"]["missing"] == killed:
            break
        time.sleep(0.1)
    assert lost.status_code == 503 and lost.json()["status"] == "no_quorum"
    assert lost.json()["quorum"]["missing"] == killed
