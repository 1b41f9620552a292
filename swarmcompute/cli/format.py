"""Plain-text tables and records for the terminal (JSON output bypasses this).

Everything a user or a peer chose (job names, commands, messages, node names) goes through
``printable`` on its way to the terminal: a name holding a newline or an escape sequence
is shown as ``\n`` or ``\x1b``, never acted on by the terminal."""

from __future__ import annotations

import time

from swarmcompute.limits import printable
from swarmcompute.units import format_duration, format_period, format_size, plural

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs `swarm status` 5 ms at start-up; annotations stay strings
    from collections.abc import Sequence
    from typing import Any


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["-" if c is None else printable(str(c)) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() for row in cells]
    return "\n".join(lines)


def ago(ts: float | None) -> str:
    if ts is None:
        return "-"
    return format_duration(max(0.0, time.time() - ts)) + " ago"


def begins(at: float) -> str:
    """A ``--begin`` time in local time, and how far off it is (``2026-12-06 03:00:00, in 16.4h``)."""
    left = at - time.time()
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
    return f"{when}, in {format_duration(left)}" if left > 0 else f"{when} ({format_duration(-left)} ago)"


def notified(job: dict[str, Any]) -> str:
    """``--notify``: the URL and whether the job's end went out (``node.notices``)."""
    ended = job.get("finished_at") is not None or job["state"] in ("succeeded", "failed", "cancelled")
    said = {
        "pending": "being told" if ended else "told when it ends",
        "sent": "told",
        "failed": f"not told: {job.get('notify_error')}",
    }.get(str(job.get("notify_state")), "")
    return f"{job['notify']} ({said})" if said else str(job["notify"])


def every(job: dict[str, Any]) -> str:
    """``--every``: the period, which run of its series this is, and what follows it."""
    root = job["id"].rsplit(".", 1)[0] if job["occurrence"] else job["id"]
    if job.get("every_next"):  # run 0 ended, and the series goes on
        then = f"now at {job['every_next']}: `swarm cancel {root}` ends the series"
    elif job["state"] in ("succeeded", "failed"):
        then = f"{root}.{job['occurrence'] + 1} came after it"
    else:
        then = (
            "cancelled: the series ended with it" if job["state"] == "cancelled" else "the next is added when it ends"
        )
    return f"{format_period(job['every_s'])}: run {job['occurrence']} of {root} ({then})"


def runtime(job: dict[str, Any]) -> str:
    start, end = started(job), job.get("finished_at")
    if start is None:
        return "-"
    return format_duration((end or time.time()) - start)


def started(job: dict[str, Any]) -> float | None:
    """When the job's current attempt started; None while it waits for one (pending), whose
    record still holds an earlier attempt's start (lost with its node, stopped by `swarm
    requeue`): `swarm jobs` and `show` showed `started 30s ago` and a runtime that kept growing."""
    return None if job.get("state") == "pending" else job.get("started_at")


def exit_shown(job: dict[str, Any]) -> int | None:
    """The exit code of a job that ended; None while it has not (its record keeps the code an
    earlier attempt ended with, lost or requeued: a pending job read ``EXIT 143``)."""
    return job["exit_code"] if job["state"] not in _NOT_ENDED else None


_NOT_ENDED = frozenset({"pending", "assigned", "running"})


def jobs_table(jobs: Sequence[dict[str, Any]], *, elements: bool = False) -> str:
    """One line per job; the elements of an array (``--array``) and the ranks of a gang
    (``--ranks``) as one line each with their counts by state, unless ``elements``."""
    if not elements and any(j.get("array_id") or j.get("gang_id") for j in jobs):
        jobs = _groups_folded(jobs)
    rows = [
        (
            j["id"],
            _name(j["name"] or ""),
            "held" if j.get("held") else j["state"],  # pending, held (`swarm hold`): --json says both
            exit_shown(j),
            j["attempt"],
            j.get("node_name") or (j["node"] or "")[:12],
            ago(j["submitted_at"]),
            runtime(j),
            _short(j["command"], 40),
        )
        for j in jobs
    ]
    return table(["ID", "NAME", "STATE", "EXIT", "TRY", "NODE", "SUBMITTED", "RUNTIME", "COMMAND"], rows)


def _group_of(j: dict[str, Any]) -> tuple[str, str] | None:
    if j.get("array_id"):
        return ("array", j["array_id"])
    if j.get("gang_id"):
        return ("gang", j["gang_id"])
    return None


def _groups_folded(jobs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """An array's elements as ``NAME[N]``, a gang's ranks as ``NAME[N ranks]`` (with the attempt
    they share and how many nodes they run on): each line where its newest member was. A line the
    daemon sent with ``group`` counts all of them (``arrays.group_summary``); else the members here."""
    from swarmcompute.arrays import array_name, group_summary

    out: list[dict[str, Any] | tuple[str, str]] = []
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for j in jobs:
        group = _group_of(j)
        if group is None:
            out.append(j)
            continue
        if group not in groups:
            groups[group] = []
            out.append(group)
        groups[group].append(j)
    folded = []
    for item in out:
        if isinstance(item, dict):
            folded.append(item)
            continue
        kind, group_id = item
        members = groups[item]
        index = "array_index" if kind == "array" else "rank"
        first = min(members, key=lambda m: m[index])
        summary = first.get("group") or group_summary(
            kind,
            group_id,
            ((m["state"], m["submitted_at"], m["attempt"], m.get("node_name") or m.get("node")) for m in members),
        )
        name = array_name(str(first["name"]))
        size = summary["size"]
        line = {
            **first,
            "id": group_id,
            "name": f"{name}[{size}]" if kind == "array" else f"{name}[{size} ranks]",
            "state": " ".join(f"{n} {s}" for s, n in sorted(summary["counts"].items())),
            "exit_code": None,
            "attempt": None,
            "node": None,
            "node_name": None,
            "started_at": None,
            "finished_at": None,
            "submitted_at": summary["submitted_at"],
        }
        if kind == "gang":  # its ranks run together: one attempt, on these nodes
            nodes = summary["nodes"]
            line["attempt"] = summary["attempt"]
            line["node_name"] = nodes[0] if len(nodes) == 1 else (f"{len(nodes)} nodes" if nodes else None)
        folded.append(line)
    return folded


def _term(term: int) -> str:
    """A term within its configuration epoch (epoch 0 until a `swarm recover`)."""
    from swarmcompute.raft.epochs import epoch_of, term_in_epoch

    epoch = epoch_of(term)
    return f"{term_in_epoch(term)} (configuration epoch {epoch})" if epoch else str(term)


def _quorum_reason(quorum: dict[str, Any]) -> str:
    if quorum.get("reason"):
        return printable(str(quorum["reason"]))
    missing = quorum.get("missing") or []
    return printable(f"missing voters {', '.join(missing)}") if missing else "no leader yet"


def _leader_name(status: dict[str, Any]) -> str:
    leader = status.get("leader")
    if not leader:
        return "(none)"
    name = next((n.get("name") for n in status.get("nodes", ()) if n.get("id") == leader), None)
    return f"{name} ({leader})" if name else str(leader)


def status_text(status: dict[str, Any]) -> str:
    quorum = status.get("quorum", {})
    lines = [
        f"cluster  {printable(str(status['cluster_id']))}",
        f"leader   {printable(_leader_name(status))}   term {_term(status['term'])}",
        "quorum   " + ("healthy" if quorum.get("healthy") else f"LOST: {_quorum_reason(quorum)}"),
    ]
    if status.get("disk_problem"):  # this node's state dir takes no writes: new jobs are refused
        lines.append(f"disk     {printable(str(status['disk_problem']))}; new jobs refused here")
    copy = status.get("copy_seen")
    if copy:  # a cloned disk or SD card ran this node too; it stopped itself, this one kept the node
        lines.append(
            f"copy     a copy of this node's state directory ran at {printable(str(copy['address']))} {ago(copy['at'])}"
            " and stopped itself: give that machine a state directory of its own"
        )
    cgroups = status.get("cgroups") or {}
    if cgroups and not cgroups.get("enforced"):  # --cpus and --mem are reservations only here
        lines.append(f"limits   cgroups not usable: {printable(str(cgroups.get('problem')))}")
    if status.get("run_as"):
        lines.append(f"users    jobs here run as {printable(str(status['run_as']))}")
    if status.get("http"):  # where a browser, a script or Prometheus finds this node
        lines.append(f"http     {printable(str(status['http']))}: the dashboard, the REST API and /metrics")
    lines += _incompatible(status.get("versions") or {})
    lines += clock_lines(status["nodes"])
    lines.append("")
    rows = [
        (
            n["name"],
            n["id"],
            n["address"],
            n["role"],
            n["state"],
            n["cpus"],
            f"{n['cpu_percent']:.0f}%",
            f"{n.get('load_1m', 0.0):.2f}",
            f"{format_size(n['mem_available'])} / {format_size(n['mem_total'])}",
            format_size(n["disk_free"]),
            n["running_jobs"],
        )
        for n in status["nodes"]
    ]
    lines.append(
        table(
            ["NAME", "ID", "ADDRESS", "ROLE", "STATE", "CPUS", "CPU", "LOAD", "MEM FREE", "DISK FREE", "RUNNING"], rows
        )
    )
    if status.get("hidden_nodes"):
        lines.append(hidden_line(status))
    counts = status["jobs"]
    held = status.get("held_jobs") or 0
    lines.append("")
    lines.append(
        "jobs     "
        + "  ".join(f"{k} {v}" + (f" ({held} held)" if k == "pending" and held else "") for k, v in counts.items())
    )
    return "\n".join(lines)


def hidden_line(status: dict[str, Any]) -> str:
    """The one line that says how many nodes `swarm status` and `swarm nodes` leave out."""
    count = len(status.get("hidden_nodes") or ())
    seconds = float(status.get("forget_after_s") or 3600.0)
    fade = next((f"{seconds / u:g}{n}" for u, n in ((86400, "d"), (3600, "h"), (60, "m")) if seconds % u == 0), "")
    fade = fade or f"{seconds:g}s"
    return f"{count} long-gone {plural(count, 'node')} hidden (left, or dead over {fade}): swarm nodes --all"


def clock_lines(nodes: Sequence[dict[str, Any]]) -> list[str]:
    """One line per node whose wall clock is over a minute off the leader's (``node.clock_check``)."""
    return [
        f"clock    {printable(n['name'] or n['id'])}'s clock is {clock_off(n['clock_off_s'])}"
        f"{' of' if n['clock_off_s'] > 0 else ''} the leader's: set its time (NTP); jobs' times are kept on the leader's"
        for n in nodes
        if n.get("clock_off_s")
    ]


def clock_off(seconds: float) -> str:
    """``60.0m ahead``, ``8.0d behind``: a node's clock against the leader's (the dashboard's words)."""
    return f"{format_duration(abs(seconds))} {'ahead' if seconds > 0 else 'behind'}"


def _incompatible(versions: dict[str, Any]) -> list[str]:
    """One line per node whose protocol version this one cannot work with (``node.version_gate``)."""
    ours = f"protocol {versions.get('protocol')} (swarmcompute {versions.get('version')})"
    lines = []
    for row in versions.get("incompatible") or ():
        theirs = f"protocol {row['protocol']}" + (f" (swarmcompute {row['version']})" if row.get("version") else "")
        text = f"{row.get('name') or row['id']} at {row['address']} speaks {theirs}, this node {ours}: {row['reason']}"
        lines.append(f"refused  {printable(text)}")
    return lines


def nodes_table(nodes: Sequence[dict[str, Any]]) -> str:
    """`swarm nodes`: one line per node, by name."""
    rows = [
        (
            n["name"],
            n["role"],
            n["state"]
            + (" (drained)" if n.get("drained") else "")
            + (" (disk full)" if n.get("disk_full") else "")
            + (f" (clock {clock_off(n['clock_off_s'])})" if n.get("clock_off_s") else ""),
            n["cpus"],
            f"{format_size(n['mem_available'])} / {format_size(n['mem_total'])}",
            _gpus(n.get("gpus") or []),
            "yes" if n.get("docker") else "no",
            ",".join(f"{k}={v}" for k, v in sorted((n.get("labels") or {}).items())) or "-",
            n["running_jobs"],
            n.get("version") or "-",
        )
        for n in sorted(nodes, key=lambda n: (n["name"], n["id"]))
    ]
    headers = ["NAME", "ROLE", "STATE", "CPUS", "MEM FREE", "GPUS", "DOCKER", "LABELS", "RUNNING", "VERSION"]
    return table(headers, rows)


def _gpus(gpus: Sequence[dict[str, Any]]) -> str:
    if not gpus:
        return "-"
    models: dict[str, int] = {}
    for g in gpus:
        label = f"{g.get('name', '?')} {format_size(int(g.get('mem_total', 0)))}"
        models[label] = models.get(label, 0) + 1
    return ", ".join(f"{n}x {label}" for label, n in models.items())


def warned(job: dict[str, Any]) -> str:
    """``swarm run --signal``: ``USR1, 5m before its time limit``."""
    return f"SIG{job['warn_signal']}, {format_period(float(job['warn_before_s'] or 0))} before its time limit"


def signalled(job: dict[str, Any]) -> str:
    """What `swarm signal` sent this attempt: ``SIGUSR1, SIGTERM (to its process group)``."""
    return ", ".join(f"SIG{s['signal']}" + (" (to its process group)" if s["group"] else "") for s in job["signals"])


def job_text(job: dict[str, Any]) -> str:
    if job.get("kind") == "array":
        return array_text(job)
    fields = [
        ("id", job["id"]),
        ("name", job["name"] or "-"),
        ("state", job["state"]),
        ("reason", f"{job['reason']}: {job['message']}"),
        ("command", job["command"]),
        ("node", f"{job.get('node_name') or job['node']} ({job['node']})" if job["node"] else "-"),
        ("attempt", f"{job['attempt']} (failures {job['failures']} of {job['retries']} retries)"),
        ("exit code", "-" if exit_shown(job) is None else exit_shown(job)),
        ("submitted", ago(job["submitted_at"])),
        *([("begins", begins(job["begin_at"]))] if job.get("begin_at") else []),
        *([("every", every(job))] if job.get("every_s") else []),
        *([("notify", notified(job))] if job.get("notify") else []),
        ("started", ago(started(job))),
        ("finished", ago(job["finished_at"])),
        ("runtime", runtime(job)),
        ("reserved", reserved(job)),
        *usage_fields(job),
        *([("image", job["image"])] if job.get("image") else []),
        *([("requires", ", ".join(job["constraints"]))] if job.get("constraints") else []),
        *([("mounts", ", ".join(job["mounts"]))] if job.get("mounts") else []),
        ("timeout", format_duration(job["timeout_s"]) if job["timeout_s"] else "-"),
        *([("signal", warned(job))] if job.get("warn_signal") else []),
        *([("signals", signalled(job))] if job.get("signals") else []),
        ("priority", f"{job['priority']}" + (", preemptible" if job.get("preemptible") else "")),
        ("cwd", job["cwd"] or "-"),
    ]
    if job.get("stdin_bytes") is not None:  # `swarm run --stdin`
        fields.append(("stdin", f"{format_size(job['stdin_bytes'])} shipped (every attempt reads it from the start)"))
    if job.get("gang"):
        per_node = f", {job['ranks_per_node']} per node" if job["ranks_per_node"] else ""
        fields.append(("gang", f"{job['gang_id']}: rank {job['rank']} of {job['ranks']}{per_node}"))
    width = max(len(k) for k, _ in fields)
    text = "\n".join(f"{k.ljust(width)}  {printable(str(v))}" for k, v in fields)
    if job.get("gang"):
        text += "\n\n" + gang_text(job["gang"])
    if job.get("details_missing"):  # this node joined after the job ended (``state.compact``)
        text += "\n\n" + printable(str(job["details_missing"]))
    tail = job.get("output_tail")
    if tail:
        # the job's own output, as `swarm logs` prints it; only escape sequences are defused
        text += "\n\noutput (last lines):\n" + "\n".join(printable(line) for line in tail.splitlines()[-10:])
    return text


def reserved(job: dict[str, Any]) -> str:
    """What the job asked for, as `swarm run` takes it: ``--cpus 1 --mem 2.0 GiB --gpus 1 --gpu-mem
    40.0 GiB`` (`swarm show` said it only beside a measured use: never for a Docker job)."""
    asked = [f"--cpus {job['cpus']:g}"]
    if job.get("mem_bytes"):
        asked.append(f"--mem {format_size(job['mem_bytes'])}")
    if job.get("gpus"):
        asked.append(f"--gpus {job['gpus']}")
    if job.get("gpu_mem"):
        asked.append(f"--gpu-mem {format_size(job['gpu_mem'])}")
    return " ".join(asked)


def usage_fields(job: dict[str, Any]) -> list[tuple[str, str]]:
    """`swarm show`'s lines of what the job uses, beside what it reserved (to size --cpus and --mem
    by): its latest attempt's once it ended, what it uses now while it runs (``usage_now``, read by
    its node); none where its node did not measure (a Docker job)."""
    cpus = f"--cpus {job['cpus']:g}" if job.get("cpus") else "no --cpus reserved"
    mem = f"--mem {format_size(job['mem_bytes'])}" if job.get("mem_bytes") else "no --mem reserved"
    start, end = job.get("started_at"), job.get("finished_at")
    now = job.get("usage_now")
    if now is not None and job.get("cpu_s") is None:
        return [
            ("cpu used", f"{format_duration(now['cpu_s'])} so far ({_cores(now['cpu_s'], start, time.time())}{cpus})"),
            (
                "memory",
                f"{format_size(now['rss_bytes'])} now in {now['processes']} process{'es' if now['processes'] != 1 else ''}; "
                f"the largest's peak "
                f"{format_size(now['max_rss_bytes'])} ({mem})",
            ),
        ]
    fields = []
    cpu_s, rss = job.get("cpu_s"), job.get("max_rss_bytes")
    if cpu_s is not None:
        fields.append(("cpu used", f"{format_duration(cpu_s)} ({_cores(cpu_s, start, end)}{cpus})"))
    if rss is not None:  # (keys of at most 9 characters: `swarm show`'s column stays as wide)
        at_most = "at most " if job.get("max_rss_at_most") else ""  # under the daemon's own: see README
        fields.append(("memory", f"{at_most}{format_size(rss)} at peak, its largest process ({mem})"))
    return fields


def _cores(cpu_s: float, start: float | None, end: float | None) -> str:
    return f"{cpu_s / (end - start):.2f} cores on average, " if start and end and end > start else ""


def gang_text(ranks: list[dict[str, Any]]) -> str:
    """The ranks of a gang (``swarm show GANG``): rank, id, state, node, local rank, exit code."""
    rows = [("RANK", "ID", "STATE", "NODE", "LOCAL", "EXIT")]
    for r in ranks[:SHOWN_ELEMENTS]:
        exit_code = "-" if r["exit_code"] is None else str(r["exit_code"])
        local = "-" if r["local_rank"] is None else str(r["local_rank"])
        rows.append((str(r["rank"]), r["id"], r["state"], r["node_name"] or "-", local, exit_code))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    more = f"\n... {len(ranks) - SHOWN_ELEMENTS} more (--json)" if len(ranks) > SHOWN_ELEMENTS else ""
    return "\n".join(printable(line) for line in lines) + more


SHOWN_ELEMENTS = 50
"""`swarm show ARRAY` lists this many elements (all with --json, or `swarm jobs --elements`)."""


def array_text(array: dict[str, Any]) -> str:
    """`swarm show ARRAY`: the array (``arrays.array_view``), then one line per element."""
    limit = array["array_limit"]
    fields = [
        ("id", array["id"]),
        ("kind", f"array of {array['size']}" + (f", at most {limit} at once" if limit else "")),
        ("name", array["name"] or "-"),
        ("state", array["state"]),
        ("counts", array["message"]),
        ("command", array["command"]),
        ("submitted", ago(array["submitted_at"])),
        ("started", ago(array["started_at"])),
        ("finished", ago(array["finished_at"])),
    ]
    width = max(len(k) for k, _ in fields)
    text = "\n".join(f"{k.ljust(width)}  {printable(str(v))}" for k, v in fields)
    elements = array["elements"]
    rows = [
        (e["index"], e["id"], e["state"], exit_shown(e), e["attempt"], e.get("node_name") or (e["node"] or "")[:12])
        for e in elements[:SHOWN_ELEMENTS]
    ]
    text += "\n\n" + table(["INDEX", "ID", "STATE", "EXIT", "TRY", "NODE"], rows)
    if len(elements) > SHOWN_ELEMENTS:
        text += f"\n... and {len(elements) - SHOWN_ELEMENTS} more (`swarm show --json`, `swarm jobs --elements`)"
    return text


NAME_WIDTH = 32
"""A name's room in `swarm jobs` (names may have 256 characters; `swarm show` has them whole)."""


def _name(name: str) -> str:
    """A name cut to ``NAME_WIDTH``, keeping an array's or gang's ``[N]`` / ``[N ranks]`` count."""
    if len(name) <= NAME_WIDTH:
        return name
    _, bracket, tail = name.rpartition("[")
    count = bracket + tail if bracket and tail.endswith("]") and len(tail) < 16 else ""
    return _short(name[: len(name) - len(count)], NAME_WIDTH - len(count)) + count


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
