"""Reading a command policy file (``swarm policy set FILE``): TOML, or JSON with the same keys.

The policy itself, its rules and their checks are the pure core ``swarmcompute.state.policy``;
this is the file format around it::

    mode = "deny"                  # or "allow": only commands an allow rule matches whole
    [deny]                         # rule name = regular expression, searched in the command
    rm-root = '\\brm(?=...)...'
    [allow]
    python = 'python3? \\S+\\.py( .*)?'

``swarm policy show`` prints the cluster's policy in this format, so the way to change it is to
save that, edit it, and ``swarm policy set`` it.
"""

from __future__ import annotations

import json
import tomllib

from swarmcompute.errors import ConfigError
from swarmcompute.state.policy import CommandPolicy, policy_from_mapping

MAX_POLICY_BYTES = 1024 * 1024


def parse_policy(text: str) -> CommandPolicy:
    """The policy ``text`` holds (TOML, or JSON when it starts with ``{``); ``ConfigError``
    saying what is wrong (the TOML or JSON error, a bad mode, rule name or pattern)."""
    if len(text) > MAX_POLICY_BYTES:
        raise ConfigError(f"a policy file is at most {MAX_POLICY_BYTES} bytes")
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else tomllib.loads(text)
    except (ValueError, RecursionError) as exc:  # tomllib.TOMLDecodeError and JSONDecodeError are ValueErrors
        raise ConfigError(f"cannot read the policy: {str(exc)[:200]}") from None
    return policy_from_mapping(data)


def read_policy_file(path: str) -> str:
    """The text of a policy file; ``ConfigError`` when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read(MAX_POLICY_BYTES + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the policy file {path}: {getattr(exc, 'strerror', None) or exc}") from None
