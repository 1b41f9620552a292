"""The one exception tree of swarmcompute.

Expected conditions are specific classes so callers (the CLI above all) can say
exactly what happened and what to do. A broken invariant is an
``InvariantViolation``: the node stops loudly rather than limp on.

    SwarmError
    ├── ConfigError                  bad option or state-dir problem
    │   └── InvalidTokenError        a join token or cluster key file that does not parse
    ├── DaemonNotRunningError        no daemon answers in the state dir
    ├── DaemonAlreadyRunningError    `swarm join` twice on one state dir
    ├── WaitTimeoutError             `Client.wait` ran out of time
    ├── ProtocolError                a frame or message that cannot be decoded
    │   ├── FrameTooLargeError
    │   └── ProtocolVersionError     a peer message of another major protocol version
    ├── JobError
    │   ├── JobNotFoundError
    │   ├── AttemptNotFoundError     `swarm logs --attempt N` for an attempt that never was
    │   ├── AmbiguousJobIdError
    │   ├── JobAlreadyExistsError    idempotent submit with a different spec
    │   ├── PartlySubmittedError     a submission sent in pieces failed after some of it went in
    │   └── InvalidJobSpecError
    ├── ClusterError
    │   ├── ClusterFoundError        a cluster answers on the LAN and no token was given
    │   ├── NotLeaderError           carries the leader hint for forwarding
    │   ├── NoQuorumError
    │   ├── NodeStoppingError        the node stopped (a restart, an upgrade) before it answered: ask again
    │   ├── TokenRefusedError        the peers a joining node dials refuse its cluster key
    │   ├── VersionRefusedError      the cluster speaks a protocol version this node's is not compatible with
    │   ├── NodeNotFoundError        swarm drain/label named no known node (or an ambiguous one)
    │   ├── NodeAliveError           swarm forget named a node that is alive, suspect, or this one
    │   └── MembershipChangeError    one change at a time, the voter cap, unknown node
    ├── StorageError
    │   ├── CorruptRecordError
    │   └── DiskFullError            the state dir cannot be written (full, read-only): new jobs refused
    ├── ExecutorError
    ├── FilesError                   shipping files with a job, or fetching what it left
    │   └── FilesTooLargeError       over the --max-upload cap: names what to exclude
    ├── InvariantViolation
    ├── DiscoveryError               mDNS cannot start on the chosen interface
    ├── LocalClusterError            a loopback cluster (`swarm demo`) did not start or behave in time
    └── ApiAuthError                 the HTTP API: no valid token (401)
        └── ApiForbiddenError        a read-only token asked for a change (403)
"""

from __future__ import annotations


class SwarmError(Exception):
    """Base of every error swarmcompute raises on purpose."""


class ConfigError(SwarmError):
    """An option, environment variable or state directory is unusable."""


class DaemonNotRunningError(SwarmError):
    """No daemon answers on the control socket of a state directory."""

    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        super().__init__(f"no swarm daemon in {state_dir}: run `swarm join` first")


class DaemonAlreadyRunningError(SwarmError):
    """A daemon already owns this state directory."""

    def __init__(self, state_dir: str, pid: int | None) -> None:
        self.state_dir = state_dir
        self.pid = pid
        who = f" (pid {pid})" if pid else ""
        super().__init__(
            f"a swarm daemon is already running in {state_dir}{who}: "
            "use `swarm leave` to stop it or pass another --state-dir"
        )


class WaitTimeoutError(SwarmError, TimeoutError):
    """A wait for jobs ran out of time before every job ended."""


class ProtocolError(SwarmError):
    """Bytes on a socket that are not a valid message."""


class FrameTooLargeError(ProtocolError):
    """A frame announced a length above the configured limit."""


class ProtocolVersionError(ProtocolError):
    """A message of another major protocol version; ``version`` is its major (None if not an int)."""

    def __init__(self, message: str, version: int | None = None) -> None:
        super().__init__(message)
        self.version = version


class JobError(SwarmError):
    """Base for errors about one job."""


class JobNotFoundError(JobError):
    def __init__(self, job_ref: str, ended: str = "", *, removed_elements: int = 0) -> None:
        """``ended``: how the job ended, for one the history bound removed (``state.history``);
        ``removed_elements``: ``job_ref`` is an array whose elements it all removed."""
        self.job_ref = job_ref
        if removed_elements:
            super().__init__(
                f"array {job_ref}: its {removed_elements} jobs ended and were removed by the history bound: "
                "raise --keep-jobs or --keep-history to keep jobs longer"
            )
        elif ended:
            super().__init__(
                f"job {job_ref} {ended} and was removed by the history bound: "
                "raise --keep-jobs or --keep-history to keep jobs longer"
            )
        else:
            super().__init__(f"no job matches {job_ref!r}: see `swarm jobs`")


class AttemptNotFoundError(JobError):
    """A job has no attempt of that number (attempts count from 1 up to the job's ``attempt``)."""


class AmbiguousJobIdError(JobError):
    def __init__(self, job_ref: str, matches: list[str], array_size: int = 0) -> None:
        """``array_size``: ``job_ref`` is that array's id, where one job is asked for."""
        self.job_ref = job_ref
        self.matches = matches
        shown = ", ".join(matches[:5])
        if array_size:
            super().__init__(
                f"{job_ref} is an array of {array_size} jobs: name one ({job_ref}.INDEX, e.g. {matches[0]})"
            )
        else:
            super().__init__(f"job id prefix {job_ref!r} is ambiguous ({shown}): give more characters")


class JobAlreadyExistsError(JobError):
    """A client-chosen job id was reused for a different job spec."""


class PartlySubmittedError(JobError):
    """A submission committed (or sent) in pieces failed after some of its jobs went in: the
    message says how many, and that submitting it again with the same ids adds the rest (each
    job once), so that nobody reads a failure, submits anew and runs the first part twice."""


class InvalidJobSpecError(JobError):
    """A submitted job spec is malformed (wrong types, empty command, bad values)."""


class ClusterError(SwarmError):
    """Base for consensus and membership conditions."""


class NotLeaderError(ClusterError):
    """A proposal reached a node that is not the leader."""

    def __init__(self, leader_hint: str | None) -> None:
        self.leader_hint = leader_hint
        where = f"; the leader is {leader_hint}" if leader_hint else "; no leader is known yet"
        super().__init__(f"this node is not the leader{where}")


class NoQuorumError(ClusterError):
    """A majority of voters cannot be reached."""


class NodeStoppingError(ClusterError):
    """The node stopped (a restart, an upgrade) before it answered a request that waits: the
    same request, asked again once it is back, loses nothing (the clients do so)."""


class TokenRefusedError(ClusterError):
    """A joining node's peers refuse its handshake: its token is not their cluster's."""


class KeyOutdatedError(ClusterError):
    """Every member a node knows refuses its key: the cluster's key was rotated while it was down
    longer than the grace period (``node.key_rotation``), and it cannot get the new one."""


class VersionRefusedError(ClusterError):
    """A member refused this node: their protocol versions are not compatible (``swarmcompute.versions``)."""


EXIT_MUST_NOT_RUN = 78
"""The exit status of a node that must not run as it is until a person acts: a copy of another
node's state directory (``DuplicateNodeError``), a damaged or missing Raft log
(``RaftStateLostError``), a member whose key the cluster replaced while it was down
(``KeyOutdatedError``). sysexits' EX_CONFIG; the systemd unit does not restart on it
(``RestartPreventExitStatus``): a copy was started again every 5 s, to be found and stop again."""


class DuplicateNodeError(ClusterError):
    """Another machine runs this node's id: its state directory is a copy of this one's."""


class NodeAliveError(ClusterError):
    """`swarm forget` named a node that is not gone: alive, suspect, or the node asked."""


class NodeNotFoundError(ClusterError):
    """`swarm drain`, `undrain` or `label` named a node the cluster does not know (or two)."""


class StorageError(SwarmError):
    """The durable log or a snapshot cannot be read or written."""


class CorruptRecordError(StorageError):
    """A record failed its CRC or length check somewhere other than the tail."""


class RaftStateLostError(StorageError):
    """This node's Raft log is damaged or gone: it must not vote or acknowledge with what it lost."""


class ExecutorError(SwarmError):
    """A job process could not be started or controlled."""


class DiskFullError(StorageError):
    """The state directory cannot be written (no space, a quota, read-only): the node keeps running
    its jobs and retries, and refuses new submissions until it can write again."""


class InvariantViolation(SwarmError):
    """A broken internal invariant: the node must stop rather than continue."""


class MembershipChangeError(ClusterError):
    """A membership change the leader refuses: another one is in flight, the voter cap,
    an unknown node, or removing the last voter."""


class InvalidTokenError(ConfigError):
    """A join token (or the cluster key file holding one) is malformed or fails its checksum."""

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail
        super().__init__("the join token is malformed: copy it again from `swarm token`")


class ClusterFoundError(ClusterError):
    """`swarm join` without a token found another cluster on the LAN: never make a second one silently."""


class DiscoveryError(SwarmError):
    """mDNS cannot run where asked (no such address here, port 5353 refused): use --peer."""


class LocalClusterError(SwarmError):
    """A throwaway cluster on loopback (``local_cluster``: `swarm demo`, the tests) did not start,
    form or do what was asked in time; the message says what and where its logs are."""


class PermissionDeniedError(SwarmError):
    """A local user asked for what only root or the job's own user may do (cancel or read another
    user's job, stop the daemon, set the policy), or reached a daemon that serves only its own user."""


class PolicyViolationError(JobError):
    """The cluster's command policy refuses the command (``swarm policy show``); names the rule."""


class ApiAuthError(SwarmError):
    """An HTTP API request without a valid token (missing, unknown, revoked or expired): HTTP 401."""


class ApiForbiddenError(ApiAuthError):
    """A read-only API token asked for a change: HTTP 403."""


class FilesError(SwarmError):
    """Shipping files with a job, or fetching what it left (``swarmcompute.files``): too big, a file
    missing or unreadable, a blob no live node holds, no such kept file."""


class FilesTooLargeError(FilesError):
    """What ``--workdir``/``--upload`` would ship is over the cap; the message names what to exclude."""
