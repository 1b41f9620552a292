"""The version check of the join handshake, and what each side says when it fails.

A joining node's ``JoinRequest`` carries its protocol and package versions
(``swarmcompute.versions``). A member whose protocol is not compatible with it answers
``VersionRefused`` instead of adding it; so does a member for any message of another major
version (the node may have been a member before its upgrade, and sends Raft or gossip rather
than a join request), at most once per ``TELL_INTERVAL_S`` per node. Both messages are read
from any major version (``codec``), so the answer reaches a node whatever it speaks.

The refused node, while it is in no configuration (joining), stops with ``VersionRefusedError``:
one line naming both versions and the address that refused it, on its own terminal, exit 2 (as a
refused token does). A member is never stopped by it (two sides of a mixed cluster refuse each
other; neither may take the other down): it logs the line. Both sides list the node in
``swarm status`` (``incompatible``) for ``SHOWN_S`` after they last heard of it, at most
``MAX_SHOWN`` of them. A node that is not a member never tells others they are refused.

Members also compare the protocol each node gossips (``NodeMeta.protocol``): a member restarted
two minor versions ahead is listed and logged too, though its messages still decode.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Any

import structlog

from swarmcompute.errors import ConfigError, VersionRefusedError
from swarmcompute.limits import printable
from swarmcompute.node.cluster_messages import JoinRequest, VersionRefused
from swarmcompute.transport.ratelimit import LogLimiter
from swarmcompute.versions import ProtocolVersion, Versions, refusal

log = structlog.get_logger(__name__)

TELL_INTERVAL_S = 2.0
"""A node sending messages of another major version is told why at most this often."""
SHOWN_S = 600.0
MAX_SHOWN = 16


class VersionGate:
    def __init__(
        self,
        versions: Versions,
        *,
        name: Callable[[], str],
        address: Callable[[], str],
        is_member: Callable[[], bool],
        send: Callable[[str, object], bool],
        address_of: Callable[[str], str | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.versions = versions
        self._name = name
        self._address = address
        self._is_member = is_member
        self._send = send
        self._address_of = address_of
        self._clock = clock
        self._told: dict[str, float] = {}
        self._shown: collections.OrderedDict[str, tuple[dict[str, Any], float]] = collections.OrderedDict()
        self._limiter = LogLimiter(burst=1, window_s=60.0)
        self.on_refused: Callable[[VersionRefusedError], None] | None = None
        """This node was refused while in no configuration: the daemon stops with this error."""

    # -- the member's side ------------------------------------------------------------

    def admits(self, req: JoinRequest) -> bool:
        """Whether the node asking to join speaks a compatible protocol; if not, tell it why
        (``VersionRefused`` to the address it gave) and list it."""
        try:
            theirs = ProtocolVersion.parse(req.protocol)
        except ConfigError:
            theirs = ProtocolVersion(-1, 0)  # garbage is another version, never a compatible one
        reason = refusal(self.versions.protocol, theirs)
        if not reason:
            return True
        if not self._is_member():
            return False  # only a member speaks for the cluster; this node is joining too
        self._tell(req.node_id, req.address, reason)
        self._note(req.node_id, req.name, req.address, req.protocol or "1.0", req.version, reason, "asked to join")
        return False

    def foreign(self, sender: str, major: int | None) -> None:
        """A message of another major version came from ``sender`` (the transport dropped it)."""
        if not self._is_member():
            return  # a joining node never tells the cluster it is the odd one out
        address = self._address_of(sender)
        protocol = f"{major}.x" if major is not None else "unknown"
        reason = refusal(self.versions.protocol, ProtocolVersion(major if major is not None else -1, 0))
        if address is not None:
            self._tell(sender, address, reason)
        self._note(sender, "", address or "unknown", protocol, "", reason, "sent messages")

    def gossiped(self, node_id: str, name: str, address: str, protocol: str, version: str) -> None:
        """A member gossiped its versions (``NodeMeta``): list it if they do not fit ours."""
        if not protocol:
            return
        try:
            theirs = ProtocolVersion.parse(protocol)
        except ConfigError:
            return
        reason = refusal(self.versions.protocol, theirs)
        if reason:
            self._note(node_id, name, address, protocol, version, reason, "gossips")

    def _tell(self, node_id: str, address: str, reason: str) -> None:
        now = self._clock()
        if now - self._told.get(node_id, -TELL_INTERVAL_S) < TELL_INTERVAL_S:
            return
        if len(self._told) >= 4 * MAX_SHOWN:
            self._told = {n: t for n, t in self._told.items() if now - t < TELL_INTERVAL_S}
        self._told[node_id] = now
        answer = VersionRefused(
            self._name(), self._address(), str(self.versions.protocol), self.versions.package, reason
        )
        self._send(address, answer)

    # -- the refused node's side --------------------------------------------------------

    def refused(self, sender: str, msg: VersionRefused) -> None:
        """A member says this node's version is not compatible with its own."""
        mine = self.versions
        line = (
            f"refused by {printable(msg.address[:300])} (node {printable(msg.name[:200])}): this node speaks {mine}, "
            f"that one protocol {printable(msg.protocol[:20])} (swarmcompute {printable(msg.version[:64])}); "
            f"{printable(msg.reason[:300])}"
        )
        self._note(sender, msg.name, msg.address, msg.protocol, msg.version, msg.reason, "refused this node")
        if not self._is_member() and self.on_refused is not None:
            self.on_refused(VersionRefusedError(line + "; run a compatible release on this node"))
            return
        self._limiter.warning(log, "version_refused", sender[:64], line=line)

    # -- what `swarm status` shows -------------------------------------------------------

    def _note(self, node_id: str, name: str, address: str, protocol: str, version: str, reason: str, how: str) -> None:
        first = node_id not in self._shown
        row = {
            "id": node_id[:64],
            "name": name[:200],
            "address": address[:300],
            "protocol": protocol[:20],
            "version": version[:64],
            "reason": reason[:300],
            "how": how,
        }
        self._shown.pop(node_id, None)
        self._shown[node_id] = (row, self._clock())
        while len(self._shown) > MAX_SHOWN:
            self._shown.popitem(last=False)
        if first:
            self._limiter.warning(
                log,
                "incompatible_node",
                node_id[:64],
                node=name[:200] or node_id[:64],
                address=address[:300],
                protocol=protocol[:20],
                version=version[:64],
                ours=str(self.versions),
                reason=reason,
            )

    def view(self) -> dict[str, Any]:
        """``protocol``, ``version`` and the ``incompatible`` nodes heard of in the last ``SHOWN_S``."""
        horizon = self._clock() - SHOWN_S
        for node_id in [n for n, (_, at) in self._shown.items() if at < horizon]:
            del self._shown[node_id]
        return {
            "protocol": str(self.versions.protocol),
            "version": self.versions.package,
            "incompatible": [row for row, _ in self._shown.values()],
        }
