"""Notice at once when this machine's own address changes (a DHCP renewal, Wi-Fi to Ethernet, a
laptop waking on another network), so a running node moves to its new address within a second.

On Linux a ``NETLINK_ROUTE`` socket subscribed to address and link changes wakes the event loop on
each change: nothing is polled, so an idle node pays nothing for it. The messages themselves are
not parsed (a change of any address or link is a reason to look again); the look, ``ifaddr`` through
``advertised_addresses``, costs about 0.5 ms. Where netlink cannot be opened (another OS, a
sandbox) ``AddressWatch.start`` returns False and the caller looks once a second instead.

Which address a node with a wildcard bind answers at is ``new_own_address``'s choice: it keeps its
address while the machine still has it (an added second address changes nothing), moves to the
first one it advertises when it lost it, and never moves to loopback (a machine without any network
keeps its last address, which nobody can reach anyway, until a real one comes back).

What follows a move (``ClusterLink.change_address``): the node closes its outgoing connections (made
from the old address, they hang until heartbeats time out) and gossip announces the new address in
a new incarnation to every member directly (``Membership.set_address``); each peer switches on
reading it from the node itself, never from an mDNS ad alone, and closes its connection to the old
address. The announcement goes at once, not as a rumour held for company (``Send.urgent``): held,
it made the first connections from the new address 0.25 s late, members learnt it 0.46-0.54 s
after the move, and a probe of the old address that timed out meanwhile (0.5 s) made one a suspect
now and then. Measured on the 5-host namespace LAN (``tests/cluster/test_address_change.py``):
members learn a moved follower's address 60-165 ms after it noticed the move, a leader's 30-35 ms;
every node lists it at its new address 0.29 s (follower) and 0.15 s (leader) after ``ip addr`` on
a quiet machine, 0.16-0.34 s beside three busy loops on 2 cores (was 0.57-0.87 s); no node was
suspected, no running job stopped, a job pinned to it ran at once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)

SETTLE_S = 0.1
"""Look this long after the first change message: a renumbering is a delete and an add, two
messages, and the look should see both."""
_RTMGRP_LINK = 0x1
_RTMGRP_IPV4_IFADDR = 0x10
_RTMGRP_IPV6_IFADDR = 0x100


def new_own_address(current: str, advertised: list[str]) -> str | None:
    """The address a wildcard-bound node should answer at now, or None to keep ``current``.

    ``advertised`` is what ``advertised_addresses(None)`` lists (non-loopback first; only
    127.0.0.1 when the machine has no network)."""
    if current in advertised:
        return None
    usable = [a for a in advertised if not _is_loopback(a)]
    return usable[0] if usable else None


class AddressWatch:
    """Calls ``on_change`` (on the event loop, ``SETTLE_S`` after the first of a burst) whenever an
    address or link of this machine changes; ``close()`` stops it."""

    def __init__(self, on_change: Callable[[], None], *, settle_s: float = SETTLE_S) -> None:
        self._on_change = on_change
        self._settle_s = settle_s
        self._sock: socket.socket | None = None
        self._pending: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> bool:
        """Subscribe; False (and nothing started) where netlink is not available."""
        netlink = getattr(socket, "AF_NETLINK", None)
        if netlink is None:
            return False
        try:
            sock = socket.socket(netlink, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.NETLINK_ROUTE)
        except OSError as exc:
            log.info("address_watch_unavailable", error=str(exc), fallback="checked once a second")
            return False
        try:
            sock.bind((0, _RTMGRP_LINK | _RTMGRP_IPV4_IFADDR | _RTMGRP_IPV6_IFADDR))
        except OSError as exc:
            sock.close()
            log.info("address_watch_unavailable", error=str(exc), fallback="checked once a second")
            return False
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._readable)
        return True

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if self._sock is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        while True:  # drain: one look answers every message of the burst
            try:
                if not sock.recv(65536):
                    break
            except BlockingIOError:
                break
            except OSError:  # ENOBUFS: messages were lost, which is one more reason to look
                break
        if self._pending is None and self._loop is not None:
            self._pending = self._loop.call_later(self._settle_s, self._fire)

    def _fire(self) -> None:
        self._pending = None
        try:
            self._on_change()
        except Exception:  # a callback's bug must not stop the watch
            log.exception("address_watch_callback_failed")


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
