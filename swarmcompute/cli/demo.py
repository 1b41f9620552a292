"""`swarm demo`: a throwaway 3-node cluster on loopback shows a leader failover, start to finish.

What it does, each step timed: start three daemons (``local_cluster``: private state dirs under
one temporary directory, 127.0.0.1, free ports, no mDNS so that it never meets a real cluster, a
fresh cluster key) and wait until they are formed; fan out 12 jobs of 2 s; once they run,
SIGKILL the leader; show the new leader and the lost jobs running again elsewhere; check that
every job succeeded and ran to its end exactly once (each job appends its id to one file as its
last act, so a job that ran twice shows twice); then stop every daemon by PID and remove the
directory. ``--keep`` restarts the killed node instead and leaves the cluster running, with the
commands to talk to it and to stop it (``--stop DIR``).

Measured on a 2-core machine busy with other work (load 8-13): 16-18 s in all, of which forming
the cluster 7-11 s (three Python daemons starting); from the kill, a new leader in 0.5-0.95 s, the
killed leader's jobs running again on the others in 2.9-3.1 s (its lease running out: README *At
most one running attempt*) and all jobs done in 5.0 s; the teardown about 1 s.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

NAMES = ("n1", "n2", "n3")
JOBS = 12
JOB_S = 2.0
FORM_TIMEOUT_S = 40.0
"""Three daemons formed: 5-7 s measured; this much on a slow or busy machine."""
STEP_TIMEOUT_S = 30.0
"""Any other step (jobs placed, a new leader, the jobs done, teardown)."""
COMPLETED = "completed.txt"
"""In the demo's directory: each job appends its id as its last act, so a job that ran to its
end twice shows twice (all nodes share this machine's disk)."""
RECORD = "demo.json"
"""In the demo's directory: its daemons (pid, start time), for `swarm demo --stop`."""


class DemoFailed(Exception):
    """A step of the demo did not happen in time, or a claim did not hold."""


def demo(
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the cluster running and print how to use and stop it.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print only a machine-readable summary (keys in the README).")
    ] = False,
    stop: Annotated[
        Path | None,
        typer.Option(
            "--stop", help="Stop the cluster a `swarm demo --keep` left in DIR and remove DIR.", metavar="DIR"
        ),
    ] = None,
) -> None:
    """Bring up a throwaway 3-node cluster on loopback, fan out jobs, kill the leader, show the failover."""
    if stop is not None:
        _stop_kept(stop)
        return
    say: Callable[[str], None] = (lambda _line: None) if as_json else typer.echo
    try:
        root = Path(tempfile.mkdtemp(prefix="swarm-demo-"))
    except OSError as exc:
        typer.echo(
            f"swarm: demo failed: cannot make its directory in {tempfile.gettempdir()}: {exc.strerror}", err=True
        )
        raise typer.Exit(1) from None
    run = Demo(root, say)
    try:
        summary = run.run(keep=keep)
    except KeyboardInterrupt:
        run.teardown()
        shutil.rmtree(root, ignore_errors=True)
        typer.echo("swarm: demo interrupted; its daemons are stopped and its directory removed", err=True)
        raise typer.Exit(130) from None
    except Exception as exc:  # any failure: stop what was started, keep the logs, one line
        run.teardown()
        reason = str(exc).strip().split("\n")[0] or type(exc).__name__  # a log tail may follow
        if as_json:
            typer.echo(json.dumps({"ok": False, "error": reason, "state_dir": str(root)}, sort_keys=True))
        typer.echo(f"swarm: demo failed: {reason} (its daemons are stopped; their logs are in {root})", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(summary, indent=2, sort_keys=True))


class Demo:
    def __init__(self, root: Path, say: Callable[[str], None]) -> None:
        self.root = root
        self.say = say
        self.started: list[Any] = []  # LocalDaemon, imported late: `swarm --help` stays fast
        self.seen: dict[int, float] = {}
        """Every process of the cluster seen (pid: its start time): daemons, guardians, jobs."""
        self.t0 = time.monotonic()
        self.formed_s = 0.0
        self.names: dict[str, str] = {}
        """Node id: name (what a person reads)."""
        self.leader_id = ""
        """The first leader, the one the demo kills."""
        self.client: Any = None
        """A ``Client`` of a node that stays up."""

    def run(self, *, keep: bool) -> dict[str, Any]:
        """Every step, in order; the summary (``--json``). Raises on the first step that fails."""
        nodes, leader = self._form()
        ids, on_leader = self._fan_out(nodes, leader)
        summary = self._failover(nodes, leader, ids, on_leader)
        kept: list[str] = []
        if keep:
            kept = self._keep(leader, nodes, summary)
        else:
            self._see(nodes)
            left = self.teardown()
            shutil.rmtree(self.root, ignore_errors=True)
            self.say(
                f"teardown: {len(nodes)} daemons stopped by pid, {len(left)} of their {len(self.seen)} processes left"
            )
            self.say(f"removed {self.root}")
            summary["leftover_pids"] = left
            if left:
                raise DemoFailed(f"processes still running after the teardown: {left}")
        summary["pids"] = sorted(self.seen)
        summary["kept"] = keep
        summary["total_s"] = round(time.monotonic() - self.t0, 3)
        self.say(f"done in {_took(summary['total_s'])}")
        for line in kept:
            self.say(line)
        return summary

    def _form(self) -> tuple[list[Any], Any]:
        """Three daemons, formed (three voters, each alive everywhere and leased); and the leader."""
        from swarmcompute.local_cluster import LocalDaemon, formed, poll_until, start_cluster

        def make(name: str, **kwargs: Any) -> LocalDaemon:
            daemon = LocalDaemon(self.root / name, name=name, new_session=True, **kwargs)
            self.started.append(daemon)
            return daemon

        self.say(f"swarm demo: 3 nodes on 127.0.0.1, state in {self.root}")
        self.say("  (no mDNS and a fresh key: it cannot meet a real cluster)")
        nodes = start_cluster(make, len(NAMES), names=NAMES)
        poll_until(lambda: formed(nodes, len(NAMES)), FORM_TIMEOUT_S, "the 3 nodes to form a cluster")
        self.formed_s = time.monotonic() - self.t0
        self._record()
        status = nodes[0].status()
        self.names = {n["id"]: n["name"] for n in status["nodes"]}
        leader = next(n for n in nodes if n.status()["node_id"] == status["leader"])
        self.leader_id = status["leader"]
        pids = ", ".join(f"{n.name} {n.pid}" for n in nodes)
        self.say(f"formed in {_took(self.formed_s)} (pids {pids}); leader: {leader.name}")
        return nodes, leader

    def _fan_out(self, nodes: list[Any], leader: Any) -> tuple[list[str], list[str]]:
        """Submit the jobs through a node that stays up (it keeps a copy of their output) and wait
        until they are placed, some running on the leader; their ids, and those on the leader."""
        from swarmcompute.local_cluster import poll_until

        self.client = next(n for n in nodes if n is not leader).client
        cpus = min(1.0, (os.cpu_count() or 1) / 4)  # four jobs at once on each node
        done = shlex.quote(str(self.root / COMPLETED))
        specs = [
            {
                "argv": f'sleep {JOB_S:g}; echo $(({i} * {i})); echo "$SWARM_JOB_ID" >> {done}',
                "name": f"square-{i}",
                "cpus": cpus,
                "cwd": str(self.root),
            }
            for i in range(JOBS)
        ]
        ids: list[str] = self.client.submit_many(specs)
        t_submit = time.monotonic()

        def placed() -> list[dict[str, Any]] | None:
            jobs = [self.client.job(i) for i in ids]
            if any(j["state"] == "pending" for j in jobs):
                return None
            return jobs if any(j["node"] == self.leader_id and j["state"] == "running" for j in jobs) else None

        jobs = poll_until(placed, STEP_TIMEOUT_S, f"the {JOBS} jobs to be placed and running on the leader")
        placed_in = time.monotonic() - t_submit
        spread = Counter(self.names.get(j["node"], "?") for j in jobs if j["state"] in ("running", "assigned"))
        counts = ", ".join(f"{spread[n]} on {n}" for n in NAMES)
        self.say(f"{JOBS} jobs of {JOB_S:g} s placed in {_took(placed_in)}: {counts}")
        on_leader = [j["id"] for j in jobs if j["node"] == self.leader_id and j["state"] in ("running", "assigned")]
        return ids, on_leader

    def _failover(self, nodes: list[Any], leader: Any, ids: list[str], on_leader: list[str]) -> dict[str, Any]:
        """SIGKILL the leader; time the new leader, its jobs running again elsewhere and all done;
        check that every job succeeded, ran to its end exactly once, and gave its output."""
        from swarmcompute.local_cluster import poll_until

        names, client, say = self.names, self.client, self.say
        self._see(nodes)
        survivors = [n for n in nodes if n is not leader]
        t_kill = time.monotonic()
        leader.kill()
        say(f"kill -9 {leader.name} (the leader, pid {leader.pid}) while it runs {len(on_leader)} of them")

        def new_leader() -> str | None:
            now = {s.status()["leader"] for s in survivors}
            return now.pop() if len(now) == 1 and None not in now and self.leader_id not in now else None

        elected = poll_until(new_leader, STEP_TIMEOUT_S, "the survivors to elect a new leader", interval_s=0.005)
        new_leader_s = time.monotonic() - t_kill
        term = survivors[0].status()["term"]
        say(f"  +{_took(new_leader_s):<7} new leader: {names[elected]} (term {term})")

        def rerun() -> list[dict[str, Any]] | None:
            jobs = [client.job(i) for i in on_leader]
            elsewhere = all(j["attempt"] > 1 and j["node"] != self.leader_id for j in jobs)
            return jobs if elsewhere and all(j["state"] in ("running", "succeeded") for j in jobs) else None

        moved = poll_until(rerun, STEP_TIMEOUT_S, f"the jobs of {leader.name} to run again elsewhere")
        rerun_s = time.monotonic() - t_kill
        where = dict(sorted(Counter(names.get(j["node"], "?") for j in moved).items()))
        say(
            f"  +{_took(rerun_s):<7} its {len(moved)} jobs run again: "
            + ", ".join(f"{c} on {n}" for n, c in where.items())
        )

        finals = client.wait(ids, timeout=STEP_TIMEOUT_S)
        done_s = time.monotonic() - t_kill
        succeeded = sum(j["state"] == "succeeded" for j in finals)
        say(f"  +{_took(done_s):<7} {succeeded} of {JOBS} jobs succeeded")
        completed = self.root / COMPLETED
        ends = Counter(completed.read_text().split()) if completed.exists() else Counter()
        once, twice = sum(ends[i] == 1 for i in ids), sum(ends[i] > 1 for i in ids)
        say(f"ran to the end: {once} once, {twice} twice, {JOBS - once - twice} never")
        total, expected = sum(int(client.logs(i)) for i in ids), sum(i * i for i in range(JOBS))
        say(f"sum of squares 0..{JOBS - 1} from their output: {total}")
        if succeeded != JOBS or once != JOBS or total != expected:
            raise DemoFailed(
                f"{succeeded} of {JOBS} jobs succeeded, {once} ran to the end exactly once "
                f"({twice} twice), their output sums to {total} (not {expected})"
            )
        return {
            "ok": True,
            "state_dir": str(self.root),
            "nodes": [{"name": n.name, "pid": n.pid, "port": n.port} for n in nodes],
            "formed_s": round(self.formed_s, 3),
            "killed": {"name": leader.name, "pid": leader.pid},
            "new_leader": names[elected],
            "new_leader_s": round(new_leader_s, 3),
            "term": term,
            "jobs": {
                "submitted": JOBS,
                "succeeded": succeeded,
                "ran_once": once,
                "ran_twice": twice,
                "on_killed_leader": len(on_leader),
                "moved_to": where,
            },
            "rerun_s": round(rerun_s, 3),
            "done_s": round(done_s, 3),
            "sum_of_squares": total,
        }

    def _keep(self, killed: Any, nodes: list[Any], summary: dict[str, Any]) -> list[str]:
        """Bring the killed node back (same identity, a follower now); the lines that say how to
        use the cluster and stop it."""
        from swarmcompute.local_cluster import formed, poll_until

        killed.start()
        poll_until(lambda: formed(nodes, len(NAMES)), FORM_TIMEOUT_S, f"{killed.name} to rejoin")
        self._record()
        swarm = _swarm_command()
        state = shlex.quote(str(self.root / NAMES[0]))
        summary["nodes"] = [{"name": n.name, "pid": n.pid, "port": n.port} for n in nodes]
        summary["status_command"] = f"{swarm} status --state-dir {state}"
        summary["stop_command"] = f"{swarm} demo --stop {shlex.quote(str(self.root))}"
        self.say(f"{killed.name} restarted (pid {killed.pid}): back as a follower")
        return [
            "the cluster runs on; talk to it with:",
            f"  {summary['status_command']}",
            f"  {swarm} run --state-dir {state} -- hostname",
            f"  export SWARM_STATE_DIR={state}   # then `{swarm} jobs`, ...",
            "stop it and remove its files:",
            f"  {summary['stop_command']}",
        ]

    def _record(self) -> None:
        """Write the daemons' pids and start times, for ``--stop`` (which checks both)."""
        import psutil

        daemons = []
        for d in self.started:
            if d.alive():
                daemons.append({"name": d.name, "pid": d.pid, "started": psutil.Process(d.pid).create_time()})
        (self.root / RECORD).write_text(json.dumps({"daemons": daemons}))

    def _see(self, nodes: list[Any]) -> None:
        """Note every live daemon and each process under it (guardian, jobs)."""
        import psutil

        for n in nodes:
            if not n.alive():
                continue
            try:
                proc = psutil.Process(n.pid)
                for p in [proc, *proc.children(recursive=True)]:
                    self.seen[p.pid] = p.create_time()
            except psutil.Error:
                continue

    def teardown(self) -> list[int]:
        """Stop every daemon by pid, then wait for every process seen to be gone; return those left."""
        from swarmcompute.local_cluster import stop_all

        stop_all(self.started)
        deadline = time.monotonic() + STEP_TIMEOUT_S
        left = _still_running(self.seen)
        while left and time.monotonic() < deadline:
            time.sleep(0.02)
            left = _still_running(self.seen)
        return left


def _still_running(seen: dict[int, float]) -> list[int]:
    """The processes of ``seen`` that still run (the same process: pid and start time; a zombie
    waiting for its reaper counts as gone)."""
    import psutil

    left = []
    for pid, started in seen.items():
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == started and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(pid)
        except psutil.Error:
            continue
    return sorted(left)


def _stop_kept(root: Path) -> None:
    """`swarm demo --stop DIR`: SIGTERM the daemons DIR's record names (each still the same
    process), SIGKILL whoever is left after the stop timeout, remove DIR."""
    import psutil

    from swarmcompute.local_cluster import STOP_TIMEOUT_S

    try:
        record = json.loads((root / RECORD).read_text())
        daemons = [(int(d["pid"]), float(d["started"])) for d in record["daemons"]]
    except (OSError, ValueError, KeyError, TypeError):
        typer.echo(f"swarm: {root} is not a directory `swarm demo --keep` left (no readable {RECORD})", err=True)
        raise typer.Exit(2) from None
    procs = []
    for pid, started in daemons:
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == started:
                procs.append(proc)
        except psutil.Error:
            continue
    for proc in procs:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=STOP_TIMEOUT_S)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=10)
    shutil.rmtree(root, ignore_errors=True)
    typer.echo(f"stopped {len(procs)} daemons by pid ({len(alive)} needed SIGKILL); removed {root}")


def _swarm_command() -> str:
    """How this person calls `swarm`: plain ``swarm`` when that is the one on PATH, else as they
    typed it (``.venv/bin/swarm``, from the same directory)."""
    typed = sys.argv[0] if sys.argv and Path(sys.argv[0]).name == "swarm" else ""
    on_path = shutil.which("swarm")
    if not typed or (on_path is not None and Path(on_path).resolve() == Path(typed).resolve()):
        return "swarm"
    return shlex.quote(typed)


def _took(seconds: float) -> str:
    """``640 ms`` below a second, else ``3.1 s``."""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"
