"""Which nodes can work together: the peer protocol's version, and the rule that compares two.

The protocol version is ``MAJOR.MINOR``; the major is what every peer message carries in its
envelope (``codec.PROTOCOL_VERSION``), the minor travels in the join handshake
(``JoinRequest``) and in each node's gossip (``NodeMeta.protocol``). Two nodes are compatible
when their majors are equal and their minors differ by at most one:

* a minor release only adds: fields at the end of a message (an older node reads past them,
  ``codec``), new message types and commands (an older node drops what it does not know), and
  it still reads and writes everything of the minor before it. So a cluster is upgraded one
  node at a time across one minor version (a rolling upgrade), and keeps running jobs on both.
* two minors apart may have dropped what the older one needs, and another major changes the
  wire format: such a node is refused when it asks to join, with one line naming both versions
  on its own terminal (and it exits 2), and the refusing side lists it in `swarm status`.

The package version (``swarmcompute.__version__``) goes along for people: the line says both.

Test hook: ``SWARM_TEST_VERSION=PROTOCOL[/PACKAGE]`` (e.g. ``1.1`` or ``2.0/2.0.0``), read once
when a daemon starts, makes it claim those versions, envelope major included; a claimed newer
minor also appends an unknown field per minor ahead to every peer message it sends, as that
release might, so older nodes are seen to read past them. It exists so the tests can run a
"next minor" and an "incompatible major" daemon beside the current one; nothing else sets it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from swarmcompute import __version__, codec
from swarmcompute.errors import ConfigError

PROTOCOL_MINOR = 0
"""The minor protocol version of this release (the major is ``codec.PROTOCOL_VERSION``)."""
OVERRIDE_ENV = "SWARM_TEST_VERSION"
MAX_MINOR_GAP = 1
_VERSION = re.compile(r"^(\d{1,6})\.(\d{1,6})$")


@dataclass(frozen=True, slots=True, order=True)
class ProtocolVersion:
    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    @classmethod
    def parse(cls, text: str) -> ProtocolVersion:
        """``"1.0"``; "" (a node from before the handshake carried a version) is 1.0. Raises ``ConfigError``."""
        if not text:
            return cls(1, 0)
        found = _VERSION.match(text.strip())
        if found is None:
            raise ConfigError(f"a protocol version is MAJOR.MINOR, e.g. 1.0, not {text[:40]!r}")
        return cls(int(found.group(1)), int(found.group(2)))


PROTOCOL = ProtocolVersion(codec.PROTOCOL_VERSION, PROTOCOL_MINOR)


@dataclass(frozen=True, slots=True)
class Versions:
    """What a node speaks (``protocol``) and which release it runs (``package``)."""

    protocol: ProtocolVersion
    package: str

    def __str__(self) -> str:
        return f"protocol {self.protocol} (swarmcompute {self.package or 'unknown'})"

    def padding(self) -> tuple[str, ...]:
        """What a node claiming a newer minor appends to every peer message it sends: one unknown
        field per minor ahead, as that release might add (only under the test hook)."""
        ahead = self.protocol.minor - PROTOCOL_MINOR if self.protocol.major == PROTOCOL.major else 0
        return ("newer-minor",) * max(0, min(ahead, 8))


CURRENT = Versions(PROTOCOL, __version__)


def compatible(a: ProtocolVersion, b: ProtocolVersion) -> bool:
    """Same major, minors at most ``MAX_MINOR_GAP`` apart (see the module doc)."""
    return a.major == b.major and abs(a.minor - b.minor) <= MAX_MINOR_GAP


def refusal(a: ProtocolVersion, b: ProtocolVersion) -> str:
    """Why nodes of ``a`` and ``b`` cannot work together, for the end of a line ("" when they can)."""
    if compatible(a, b):
        return ""
    if a.major != b.major:
        return "nodes of different major versions never work together"
    return f"nodes more than {MAX_MINOR_GAP} minor version apart never work together (upgrade one minor at a time)"


def local_versions(env: Mapping[str, str] | None = None) -> Versions:
    """This daemon's versions: ``CURRENT``, or what ``SWARM_TEST_VERSION`` claims (the test hook).
    Raises ``ConfigError`` for an override that does not parse."""
    text = (os.environ if env is None else env).get(OVERRIDE_ENV, "").strip()
    if not text:
        return CURRENT
    protocol, _, package = text.partition("/")
    try:
        parsed = ProtocolVersion.parse(protocol)
    except ConfigError as exc:
        raise ConfigError(f"${OVERRIDE_ENV}: {exc}") from None
    return Versions(parsed, package.strip()[:64] or __version__)
