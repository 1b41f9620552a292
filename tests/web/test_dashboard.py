"""The dashboard in a real headless browser (Playwright driving Debian's chromium) against a real
two-node cluster: it loads, lists the nodes, shows a job finishing without a reload, follows its
log, holds, releases, requeues and cancels a job. On a phone-sized screen."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from swarmcompute.testing.clocks import LIBFAKETIME, MISSING, clock_off
from swarmcompute.testing.clusters import formed, formed_cluster
from swarmcompute.testing.daemons import DaemonProcess, free_port, wait_until
from swarmcompute.testing.tmpfs import TmpfsUnavailable, fill, mounted

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)

UI_TIMEOUT_MS = 20_000


@contextmanager
def logged_in(url: str, token: str, console_errors: list[str] | None = None, **page_options: Any) -> Iterator[Any]:
    """A headless Chromium page (``page_options``: ``viewport``, ``accept_downloads``, ...) on the
    dashboard at ``url``, the token given at its login; closed at the end. ``console_errors``
    gathers what the page logs as errors (a failed request among them), from its first load."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        try:
            page = browser.new_page(**page_options)
            if console_errors is not None:
                page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
            page.set_default_timeout(UI_TIMEOUT_MS)
            page.goto(url + "/")
            page.fill("#token", token)
            page.click("#login-form button")
            yield page
        finally:
            browser.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[DaemonProcess]]:
    with formed_cluster(tmp_path, 2, http_port=0) as nodes:
        yield nodes


def test_the_dashboard_lists_nodes_shows_a_job_finish_live_reruns_it_holds_releases_requeues_and_cancels_a_job(
    cluster: list[DaemonProcess],
) -> None:
    a, b = cluster
    token = a.swarm("api-token", "create", "browser").stdout.strip().splitlines()[-1]
    with logged_in(b.http_url, token, viewport={"width": 390, "height": 844}) as page:  # a phone
        page.wait_for_selector("#nodes tbody tr >> nth=1")
        names = page.locator("#nodes tbody tr td:first-child").all_inner_texts()
        assert sorted(names) == ["n0", "n1"]
        assert "healthy" in page.inner_text("#health")
        assert page.locator("#chart polyline").count() == 2  # one CPU line per node

        # A job submitted elsewhere (the CLI on the other node) appears, then finishes, without a reload.
        job_id = a.client.submit("sleep 1; echo done", name="live")
        row = page.locator(f'#jobs tr[data-job="{job_id}"]')
        row.wait_for()
        page.wait_for_selector(f'#jobs tr[data-job="{job_id}"][data-state="succeeded"]')
        row.click()
        page.wait_for_function("document.getElementById('log').textContent.includes('done')")

        # Run it again from the page: a new job, its log open, which finishes as the first did.
        row.locator("button.rerun").click()
        page.wait_for_function("document.getElementById('submit-result').textContent.startsWith('rerun')")
        rerun_id = page.inner_text("#submit-result").split()[-1]
        assert page.inner_text("#submit-result") == f"rerun {job_id} as {rerun_id}"
        page.wait_for_function(f"document.getElementById('log-job').textContent === '{rerun_id}'")
        page.wait_for_function("document.getElementById('log').textContent.includes('--- succeeded')")
        assert a.client.job(rerun_id)["command"] == "sleep 1; echo done"

        # A held job shows as held; released from the page, it runs; held again, it waits.
        held_id = a.client.submit("echo released", name="later", hold=True)
        page.locator(f'#jobs tr[data-job="{held_id}"][data-state="held"] button.release').click()
        page.wait_for_selector(f'#jobs tr[data-job="{held_id}"][data-state="succeeded"]')
        assert a.client.job(held_id)["held"] is False
        waiting = a.client.submit("true", name="too-big", cpus=10**4)  # pending: no node is that big
        page.locator(f'#jobs tr[data-job="{waiting}"][data-state="pending"] button.hold').click()
        page.wait_for_selector(f'#jobs tr[data-job="{waiting}"][data-state="held"]')
        assert a.client.job(waiting)["held"] is True
        a.client.cancel(waiting)

        # Submit from the page, requeue it from the page (it runs again), then cancel it from the page.
        page.fill("#submit-cmd", "sleep 300")
        page.fill("#submit-name", "to-cancel")
        page.click("#submit-form button")
        page.wait_for_function("document.getElementById('submit-result').textContent.startsWith('submitted')")
        long_id = page.inner_text("#submit-result").split()[-1]
        page.locator(f'#jobs tr[data-job="{long_id}"][data-state="running"] button.requeue').click()
        wait_until(lambda: a.client.job(long_id)["attempt"] == 2, 30, "it runs again")
        assert a.client.job(long_id)["attempts"][0]["ended"].startswith("requeued")
        page.locator(f'#jobs tr[data-job="{long_id}"] button.cancel').click()
        page.wait_for_selector(f'#jobs tr[data-job="{long_id}"][data-state="cancelled"]')
        assert a.client.job(long_id)["state"] == "cancelled"
        assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1  # no sideways page scroll


def test_the_dashboard_lists_the_files_a_job_left_and_downloads_one(
    cluster: list[DaemonProcess], tmp_path: Path
) -> None:
    a, b = cluster
    token = a.swarm("api-token", "create", "browser").stdout.strip().splitlines()[-1]
    work = tmp_path / "work"
    work.mkdir()
    (work / "make.sh").write_text("mkdir -p out; printf 'result 42' > out/res.txt\n")
    job_id = a.client.submit(["sh", "make.sh"], workdir=str(work), node="n1")
    assert a.client.wait(job_id, timeout=30)["state"] == "succeeded"
    with logged_in(b.http_url, token, accept_downloads=True) as page:
        page.locator(f'#jobs tr[data-job="{job_id}"]').click()
        item = page.locator('#files-list li[data-path="out/res.txt"]')
        item.wait_for()
        assert item.inner_text().startswith("out/res.txt (9 B)")
        assert page.locator('#files-list li[data-path="make.sh"]').count() == 1  # shipped, kept unchanged
        with page.expect_download() as downloading:
            item.locator("button.download").click()
        download = downloading.value
        assert download.suggested_filename == "res.txt"
        assert Path(download.path()).read_text() == "result 42"
        page.locator(f'#jobs tr[data-job="{a.client.submit("true")}"]').click()  # a job that shipped nothing
        page.wait_for_function("document.getElementById('log').textContent.includes('--- succeeded')")
        assert page.locator("#files").is_hidden()


def test_the_dashboard_marks_a_preemptible_job_and_sends_a_running_job_the_signal_asked(
    cluster: list[DaemonProcess],
) -> None:
    a, b = cluster
    token = a.swarm("api-token", "create", "browser").stdout.strip().splitlines()[-1]
    script = "trap 'echo got usr1' USR1; while :; do sleep 0.1; done"
    job_id = a.client.submit(["sh", "-c", script], preemptible=True, cpus=0)
    plain = a.client.submit(["sleep", "300"], cpus=0)
    with logged_in(b.http_url, token) as page:
        row = page.locator(f'#jobs tr[data-job="{job_id}"][data-state="running"]')
        row.wait_for()
        assert row.locator(".tag").inner_text() == "preemptible"
        assert page.locator(f'#jobs tr[data-job="{plain}"] .tag').count() == 0
        page.once("dialog", lambda dialog: dialog.accept("usr1"))
        row.locator("button.signal").click()
        page.wait_for_function(f"document.getElementById('submit-result').textContent === 'sent SIGUSR1 to {job_id}'")
        wait_until(lambda: "got usr1" in a.client.logs(job_id), 20, "the job to get SIGUSR1")
        assert a.client.job(job_id)["state"] == "running"  # it handled it
    a.client.cancel(job_id)
    a.client.cancel(plain)


def test_the_dashboard_marks_a_node_whose_state_directory_is_full(tmp_path: Path) -> None:
    try:
        with mounted(tmp_path / "n2", "8m") as state, formed_cluster(tmp_path, 3, http_port=0) as nodes:
            token = nodes[0].swarm("api-token", "create", "browser").stdout.strip().splitlines()[-1]
            fill(state)
            wait_until(
                lambda: any(row["disk_full"] for row in nodes[0].client.nodes()), 20, "n0 to hear n2's disk is full"
            )
            assert _node_states(nodes[0].http_url, token, 3) == {"n0": "alive", "n1": "alive", "n2": "alive, disk full"}
    except TmpfsUnavailable as exc:
        pytest.skip(str(exc))


@pytest.mark.skipif(not LIBFAKETIME.exists(), reason=MISSING)
def test_the_dashboard_marks_a_node_whose_clock_is_an_hour_ahead(tmp_path: Path) -> None:
    with formed_cluster(tmp_path, 3, extra_env_of={"n2": clock_off("+1h")}, http_port=0) as nodes:
        token = nodes[0].swarm("api-token", "create", "browser").stdout.strip().splitlines()[-1]
        wait_until(
            lambda: any(row["clock_off_s"] for row in nodes[0].client.nodes()), 30, "n0 to hear n2's clock is off"
        )
        states = _node_states(nodes[0].http_url, token, 3)
        assert states == {"n0": "alive", "n1": "alive", "n2": "alive, clock 60.0m ahead"}


def _node_states(url: str, token: str, count: int) -> dict[str, str]:
    """The dashboard's nodes as a fresh browser shows them, once it lists ``count``: name -> state."""
    with logged_in(url, token) as page:
        page.wait_for_selector(f"#nodes tbody tr >> nth={count - 1}")
        return {
            r.locator("td").nth(0).inner_text(): r.locator("td").nth(2).inner_text()
            for r in page.locator("#nodes tbody tr").all()
        }


@pytest.mark.parametrize("restart", ["kill -9", "graceful"])
def test_the_dashboard_log_of_a_job_follows_it_again_once_its_node_restarts_nothing_twice(
    cluster: list[DaemonProcess], tmp_path: Path, restart: str
) -> None:
    a, b = cluster
    a.stop()  # the node the browser talks to, serving HTTP on a port that stays its own across restarts
    a.http_port = free_port()
    a.start()
    wait_until(lambda: formed(cluster, 2), 30, "the cluster to form again")
    token = a.swarm("api-token", "create", "browser").stdout.strip().splitlines()[-1]
    gated = 'echo "tick 1"; echo "err 1" >&2; until [ -e {go} ]; do sleep 0.05; done; echo tick 2; exit 3'
    job_id = a.client.submit(["sh", "-c", gated.format(go=tmp_path / "go")], node="n1", cpus=0, name="gated")
    log = "document.getElementById('log').textContent"
    with logged_in(a.http_url, token) as page:
        try:
            page.locator(f'#jobs tr[data-job="{job_id}"]').click()
            page.wait_for_function(f"{log}.includes('tick 1') && {log}.includes('err 1')")
            if restart == "kill -9":
                a.kill()  # as systemd brings a crashed daemon back
            else:
                a.stop()  # `systemctl restart`, an upgrade
            a.start()
            page.wait_for_function(f"{log}.includes('is back')")
            (tmp_path / "go").touch()
            page.wait_for_function(f"{log}.includes('---')")
            text = page.evaluate(log)
            # a line a node, by id, named once gossip brings the name: not its id's and then its name's
            legend = "[...document.querySelectorAll('#chart-legend span')].map((s) => s.textContent).sort().join()"
            page.wait_for_function(f"{legend} === '■ n0,■ n1'")
        finally:
            (tmp_path / "go").touch()
    lines = text.splitlines()
    # how it ended and what it used (`swarm show`'s cpu used and memory)
    assert re.fullmatch(
        r"--- failed \(exit 3; cpu \d+\.\d\ds, peak memory (at most )?[\d.]+ (KiB|MiB)\) ---", lines[-1]
    )
    assert [line for line in lines if line.startswith(("tick", "err"))] in (
        ["tick 1", "err 1", "tick 2"],
        ["err 1", "tick 1", "tick 2"],
    )  # nothing twice, nothing missing
    assert [line for line in lines if line.startswith("swarm:")] == [
        f"swarm: lost the node (restarting?): following job {job_id} again once it is back",
        f"swarm: the node is back; following job {job_id} again",
    ]


def test_the_dashboard_shows_open_jobs_behind_many_newer_ended_ones_and_filters_every_job_of_the_cluster(
    cluster: list[DaemonProcess],
) -> None:
    a, b = cluster
    token = a.swarm("api-token", "create", "browser").stdout.strip().splitlines()[-1]
    noeol = a.client.submit(["printf", "from-dash\\nnoeol"], name="noeol", cpus=0)  # no newline at its end
    assert a.client.wait(noeol, timeout=30)["state"] == "succeeded"
    running = a.client.submit(["sleep", "300"], name="old-runner", cpus=0)
    waiting = a.client.submit("true", name="too-big", cpus=10**4)  # pending: no node is that big
    wait_until(lambda: a.client.job(running)["state"] == "running", 30, "the old job to run")
    sweep = a.client.submit(["true"], array="0-219", cpus=0)  # 220 jobs, newer than all of those
    wait_until(lambda: len(a.client.jobs(300, ["succeeded"])) == 221, 120, "the array to end")
    assert a.client.job(running)["state"] == "running"
    ran_on = {n["id"]: n["name"] for n in a.status()["nodes"]}[a.client.job(running)["node"]]
    console_errors: list[str] = []
    with logged_in(b.http_url, token, console_errors) as page:
        # Unfiltered: the open jobs first, then the newest ended; the view says it shows only some.
        page.wait_for_selector(f'#jobs tr[data-job="{running}"][data-state="running"]')
        page.wait_for_selector(f'#jobs tr[data-job="{waiting}"][data-state="pending"]')
        page.wait_for_function("document.querySelectorAll('#jobs tbody tr').length === 200")
        assert page.locator(f'#jobs tr[data-job^="{sweep}."]').count() == 198  # the newest ended: the array's
        assert page.inner_text("#jobs-note").startswith("200 of 223 jobs")

        # Filtered: every job of the cluster that matches, not only those the stream carries.
        page.select_option("#filter-state", "running")
        page.wait_for_function("document.querySelectorAll('#jobs tbody tr').length === 1")
        assert page.locator(f'#jobs tr[data-job="{running}"][data-state="running"]').count() == 1
        # ... by node: a choice among the nodes the cluster knows (each prefix typed was a 404)
        assert page.locator("#filter-node option").all_inner_texts() == ["every node", "n0", "n1"]
        page.select_option("#filter-node", "n1" if ran_on == "n0" else "n0")
        page.wait_for_function("document.querySelectorAll('#jobs tbody tr').length === 0")
        page.select_option("#filter-node", ran_on)
        page.wait_for_selector(f'#jobs tr[data-job="{running}"][data-state="running"]')
        page.select_option("#filter-node", "")
        page.select_option("#filter-state", "")
        page.fill("#filter-name", "noeol")  # older than the 200 jobs the stream carries
        row = page.locator(f'#jobs tr[data-job="{noeol}"][data-state="succeeded"]')
        row.wait_for()
        assert page.locator("#jobs tbody tr").count() == 1

        # Its log: the end line on a line of its own, after output with no newline at its end.
        row.click()
        page.wait_for_function("document.getElementById('log').textContent.includes('--- succeeded')")
        assert page.evaluate("document.getElementById('log').textContent").startswith(
            "from-dash\nnoeol\n--- succeeded (exit 0"
        )
    assert console_errors == []  # no favicon 404, no filter asking for a node that is not there
