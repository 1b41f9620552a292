"""API tokens for the HTTP API, as replicated state: every node accepts them, a revocation holds
cluster-wide.

Only a digest of each token is kept (SHA-256 of its secret: the secret is 32 random bytes, so a
slow hash would add nothing). The daemon makes the secret and proposes ``CreateApiToken``; the
secret itself never enters the log. A token acts as the local user who created it (``uid``,
``user``, read from the control socket's peer credentials); ``read_only`` tokens may only read.
Expiry is a wall-clock time checked by the node that is asked (this core reads no clock).

Pure: no clock, no randomness, no I/O. A create for a name already taken, or a revoke of an
unknown name, is a no-op (commands are validated on apply, never trusted).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from swarmcompute import codec

MAX_TOKENS = 1000
"""Tokens the cluster keeps at once: a create beyond it is a no-op (the daemon refuses it first)."""


@codec.message("state.api_token")
@dataclass(frozen=True, slots=True)
class ApiToken:
    name: str
    digest: str
    """SHA-256 of the token's secret, in hex."""
    read_only: bool
    uid: int
    user: str
    created_at: float
    expires_at: float | None = None
    """Wall-clock end (Unix seconds), or None: never."""

    def view(self, now: float) -> dict[str, object]:
        """What `swarm api-token list --json` shows (never the digest); ``expired`` by ``now``, the
        leader's clock as this node reads it (``Daemon.leader_time``), which checks it too: not
        the clock of the machine the list is printed on."""
        return {
            "name": self.name,
            "read_only": self.read_only,
            "uid": self.uid,
            "user": self.user,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "expired": self.expires_at is not None and self.expires_at <= now,
        }


@codec.message("cmd.api_token_create")
@dataclass(frozen=True, slots=True)
class CreateApiToken:
    token: ApiToken


@codec.message("cmd.api_token_revoke")
@dataclass(frozen=True, slots=True)
class RevokeApiToken:
    name: str
    at: float


class ApiTokens:
    """The cluster's API tokens by name, and by digest for checking a request's Bearer token."""

    def __init__(self) -> None:
        self._by_name: dict[str, ApiToken] = {}
        self._by_digest: dict[str, ApiToken] = {}

    def __len__(self) -> int:
        return len(self._by_name)

    def __iter__(self) -> Iterator[ApiToken]:
        return iter(sorted(self._by_name.values(), key=lambda t: (t.created_at, t.name)))

    def get(self, name: str) -> ApiToken | None:
        return self._by_name.get(name)

    def by_digest(self, digest: str) -> ApiToken | None:
        return self._by_digest.get(digest)

    def create(self, cmd: CreateApiToken) -> bool:
        token = cmd.token
        if token.name in self._by_name or token.digest in self._by_digest or len(self._by_name) >= MAX_TOKENS:
            return False
        self.load(token)
        return True

    def revoke(self, cmd: RevokeApiToken) -> bool:
        token = self._by_name.pop(cmd.name, None)
        if token is None:
            return False
        self._by_digest.pop(token.digest, None)
        return True

    def load(self, token: ApiToken) -> None:
        """Insert a token exactly as it is (restoring a snapshot); not a command."""
        self._by_name[token.name] = token
        self._by_digest[token.digest] = token

    def clear(self) -> None:
        self._by_name.clear()
        self._by_digest.clear()
