"""What the executor is asked to run (``AttemptSpec``) and what it reports back (``AttemptResult``).

These are plain frozen values so the daemon can hand them across its own layers and the
replicated job table can keep the result (exit code, reason, bounded output tail) without
holding anything that points at a live process.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

from swarmcompute.state.job import AttemptEnd
from swarmcompute.units import format_size

TAIL_BYTES = 4096
"""How much of the most recent output (stdout and stderr interleaved) a result carries.

Small on purpose: the tail goes into the replicated job table, so it outlives the node that ran
the job (``docker service logs`` failing when a node is down is what we do not repeat)."""


@dataclass(frozen=True, slots=True)
class AttemptSpec:
    """One attempt of one job on this node.

    ``argv`` is exec'd directly; a shell string arrives as ``("/bin/sh", "-c", cmd)``. ``env`` is
    added on top of the daemon's environment (a clean one with ``user``); ``SWARM_JOB_ID`` and
    ``SWARM_ATTEMPT`` are always set by the executor and cannot be overridden (stale-process
    cleanup relies on them).
    """

    job_id: str
    attempt: int
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    timeout_s: float | None = None
    leased: bool = False
    """It runs under the node's lease: the guardian kills it when the lease deadline passes."""
    user: str = ""
    """On a root daemon: run as this local user, with a clean environment (``swarmcompute.users``);
    "" (or any other daemon): as the daemon's user, with its environment less its secrets."""
    max_procs: int = 0
    """At most this many processes: the cgroup's ``pids.max``, else ``RLIMIT_NPROC`` (0: none)."""
    max_file_size: int = 0
    """``RLIMIT_FSIZE`` of the job in bytes (0: none)."""
    limit_cpus: float = 0.0
    """``cpu.max`` of the attempt's cgroup where cgroups are usable (0: none; ``executor.cgroups``)."""
    limit_mem_bytes: int = 0
    """``memory.max`` of the attempt's cgroup where cgroups are usable (0: none)."""
    max_output_bytes: int = 0
    """The bound on the attempt's log (``swarm run --max-output``); 0: the runner's default."""
    stdin_path: str | None = None
    """A file the job reads as its stdin (``swarm run --stdin``: its blob on this node); None: ``/dev/null``."""
    warn_signal: int = 0
    """Sent to its main process ``warn_before_s`` before its time limit (``swarm run --signal``); 0: none."""
    warn_before_s: float = 0.0


def warning_why(spec: AttemptSpec) -> str:
    """What the job's output says of its ``--signal`` warning: ``--signal, 5m before its time limit``."""
    from swarmcompute.units import format_period

    return f"--signal, {format_period(spec.warn_before_s)} before its time limit"


EndReason = AttemptEnd
"""Why an attempt ended: the job table's own vocabulary (``state.job.AttemptEnd``), one enum."""


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """The outcome of one attempt, reported once through ``on_exit``.

    ``exit_code`` follows the shell: the job's exit status, 128+N when signal N ended it, 127 for
    command not found and 126 for not executable; ``None`` only for a spawn failure without a
    shell equivalent (e.g. a missing working directory). ``started_at``/``finished_at`` are
    wall-clock ``time.time()`` values for display only.
    """

    job_id: str
    attempt: int
    exit_code: int | None
    reason: EndReason
    error: str | None
    started_at: float
    finished_at: float
    output_tail: bytes
    log_path: str
    cpu_s: float | None = None
    """CPU seconds the attempt used, user and system (None: not measured, as for a Docker job):
    its cgroup's ``cpu.stat`` where it had one (every process in it), else ``wait4``'s rusage of
    its leader and every descendant the leader waited for."""
    max_rss_bytes: int | None = None
    """The peak resident memory of its largest process (``wait4``'s ``ru_maxrss``, of the leader
    and every descendant the leader waited for): what ``/usr/bin/time -v`` and ``sacct``'s MaxRSS
    say; None: not measured."""
    max_rss_at_most: bool = False
    """``max_rss_bytes`` is only a bound: the job peaked at or under it, the daemon's own peak,
    which Linux folds into the job's (``process._reap``)."""
    output_bytes: int | None = None
    """How many bytes of output the attempt wrote in all, both streams (``LogWriter.output_bytes``;
    None: not counted): ``output_tail`` is its whole output only when it holds this many. A reader
    on another node trusts a short tail as all there is only then (``state.job.tail_is_whole``)."""

    @property
    def succeeded(self) -> bool:
        """True when the job ran to completion with exit code 0."""
        return self.reason is EndReason.EXITED and self.exit_code == 0


def killed_by(signum: int) -> str:
    """How an attempt ended that a signal killed, for its job's message (its exit code, 128+N,
    reads like an exit): ``killed by SIGKILL``, as a shell says ``Killed``."""
    try:
        return f"killed by {signal.Signals(signum).name}"
    except ValueError:  # a real-time signal has no name of its own
        return f"killed by signal {signum}"


def out_of_memory(limit_bytes: int) -> str:
    """How an attempt ended that the kernel's OOM killer hit at the job's ``--mem``."""
    return f"out of memory: the kernel killed a process of the job at its --mem of {format_size(limit_bytes)}"
