"""API tokens for the HTTP API: how they look, how they are checked, who they act as.

A token is ``swarmapi1-`` and 43 URL-safe base64 characters (32 random bytes); only its SHA-256
digest is stored, in the replicated state (``state.api_tokens``), so every node checks it and a
revocation holds everywhere. A token acts as the local user who created it over the control
socket (the kernel's ``SO_PEERCRED``), never as the daemon. A user sees (`swarm api-token list`)
and revokes only the tokens that act as them; root every one (``manages``).
"""

from __future__ import annotations

import base64
import hashlib
import os

from swarmcompute.errors import ApiAuthError, ApiForbiddenError, ConfigError, PermissionDeniedError
from swarmcompute.limits import job_id_problem
from swarmcompute.state.api_tokens import ApiToken, ApiTokens
from swarmcompute.users import owns

PREFIX = "swarmapi1-"
MAX_TOKEN_CHARS = 200
"""A Bearer value longer than this is refused before it is hashed."""


def new_secret() -> str:
    return PREFIX + base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode("ascii")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def check_name(name: object) -> str:
    """A token name: 1-64 ASCII letters, digits, ``.``, ``_`` or ``-`` (as job ids). Raises ``ConfigError``."""
    problem = job_id_problem(name)
    if problem is not None or not isinstance(name, str):
        shown = problem.replace("job id", "token name") if problem else "a token name must be text"
        raise ConfigError(shown)
    return name


def user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def manages(uid: int, token: ApiToken) -> bool:
    """Whether local user ``uid`` may see and revoke ``token``: one that acts as them (by user name,
    as a job's owner is known on every node), or any as root; on a daemon that is not root, anyone it
    serves (``users.owns``, the rule for jobs). Without it any local user listed every token with
    its owner and revoked root's."""
    return owns(uid, token.user)


def check_manages(uid: int, token: ApiToken) -> None:
    """``PermissionDeniedError`` unless ``manages(uid, token)``."""
    if not manages(uid, token):
        raise PermissionDeniedError(
            f"API token {token.name} belongs to another user: only its owner or root may revoke it"
        )


def authenticate(tokens: ApiTokens, header: str | None, now: float, *, write: bool) -> ApiToken:
    """The token an ``Authorization: Bearer ...`` header names, if it is valid now and may do what is asked.

    Raises ``ApiAuthError`` (401: missing, malformed, unknown, revoked or expired) or
    ``ApiForbiddenError`` (403: a read-only token asked for a change)."""
    if not header:
        raise ApiAuthError(
            "this needs an API token: `Authorization: Bearer TOKEN` (make one with `swarm api-token create NAME`)"
        )
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or len(value) > MAX_TOKEN_CHARS:
        raise ApiAuthError("the Authorization header must be `Bearer TOKEN` with a token from `swarm api-token create`")
    token = tokens.by_digest(digest(value))
    if token is None:
        raise ApiAuthError("unknown or revoked API token: see `swarm api-token list`")
    _check_expiry(token, now)
    if write and token.read_only:
        raise ApiForbiddenError(f"the API token {token.name!r} is read-only: use a token created without --read-only")
    return token


def still_valid(tokens: ApiTokens, token: ApiToken, now: float) -> None:
    """Raises ``ApiAuthError`` once ``token``, valid when a stream began, has been revoked or has
    expired: a long stream (the dashboard's events, a followed log) asks this as it goes, so that
    a revocation ends it within seconds rather than when the client next reconnects."""
    if tokens.by_digest(token.digest) is None:
        raise ApiAuthError(f"the API token {token.name!r} was revoked: see `swarm api-token list`")
    _check_expiry(token, now)


def _check_expiry(token: ApiToken, now: float) -> None:
    if token.expires_at is not None and now >= token.expires_at:
        raise ApiAuthError(f"the API token {token.name!r} has expired: create a new one with `swarm api-token create`")
