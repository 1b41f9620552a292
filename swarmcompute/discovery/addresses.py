"""The machine's own addresses, as mDNS sees them: what to listen on and what to advertise.

Kept apart from the zeroconf code so the choices (which interfaces, which address a peer
should dial) are plain functions with plain tests. ``ifaddr`` comes with zeroconf. zeroconf
itself is imported only by ``interfaces_for``: a daemon without mDNS asks for its addresses
here, and zeroconf cost it 3.2 MiB of RSS.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

import ifaddr

if TYPE_CHECKING:
    from zeroconf import InterfaceChoice, IPVersion

_IFF_MULTICAST = 0x1000
MDNS_GROUP = "224.0.0.251"
MDNS_PORT = 5353
_WILDCARDS = {"", "0.0.0.0", "::"}


def is_wildcard(bind: str | None) -> bool:
    """True when ``bind`` means "every interface" (no address given, 0.0.0.0 or ::)."""
    return bind is None or bind in _WILDCARDS


def interfaces_for(bind: str | None) -> tuple[InterfaceChoice | list[str], IPVersion]:
    """The zeroconf interface choice for a bind address.

    A specific address restricts mDNS to that address's interface, so a node bound to
    127.0.0.1 or to one namespace's address never multicasts anywhere else.
    """
    from zeroconf import InterfaceChoice, IPVersion

    if bind is None or bind in _WILDCARDS:
        return InterfaceChoice.All, IPVersion.V4Only
    version = ipaddress.ip_address(bind).version
    return [bind], IPVersion.V4Only if version == 4 else IPVersion.V6Only


def local_ipv4_addresses() -> list[str]:
    """Every IPv4 address on this machine's interfaces, in interface order, loopback last."""
    addresses: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if ip.is_IPv4 and isinstance(ip.ip, str) and ip.ip not in addresses:
                addresses.append(ip.ip)
    return sorted(addresses, key=lambda a: ipaddress.IPv4Address(a).is_loopback)


def local_addresses() -> set[str]:
    """Every IPv4 and IPv6 address on this machine's interfaces (IPv6 without scope)."""
    found: set[str] = set()
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            found.add(ip.ip if isinstance(ip.ip, str) else ip.ip[0])
    return found


def local_ipv4_networks() -> list[ipaddress.IPv4Network]:
    """The IPv4 subnets this machine is directly on, to pick the address a peer can reach."""
    networks: list[ipaddress.IPv4Network] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if ip.is_IPv4 and isinstance(ip.ip, str):
                networks.append(ipaddress.IPv4Network(f"{ip.ip}/{ip.network_prefix}", strict=False))
    return networks


def advertised_addresses(bind: str | None) -> list[str]:
    """The addresses to put in our mDNS answer; the first is the one the node answers at.

    A specific bind address is advertised alone. With a wildcard bind every non-loopback
    IPv4 address is advertised (a peer picks the one on its own subnet), the one this machine
    sends to the mDNS group from first (``multicast_source_address``), then in interface order;
    a machine with no network at all advertises 127.0.0.1 so nodes on it still find each other.
    """
    if bind is not None and bind not in _WILDCARDS:
        return [bind]
    found = [a for a in local_ipv4_addresses() if not ipaddress.IPv4Address(a).is_loopback]
    routed = multicast_source_address()
    if routed in found:
        found.remove(routed)
        found.insert(0, routed)
    return found or ["127.0.0.1"]


def multicast_source_address() -> str | None:
    """The IPv4 address this machine sends to the mDNS group from: the kernel's choice of route,
    the LAN's interface, where interface order may put a bridge first (Docker's ``docker0`` made
    before a USB Ethernet adapter or a late Wi-Fi link: the node answered at 172.17.0.1, an
    address every Docker host has). None when no route leads there. Connecting a UDP socket
    sends nothing."""
    import socket

    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect((MDNS_GROUP, MDNS_PORT))
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return address if isinstance(address, str) and address != "0.0.0.0" else None


def pick_host(addresses: list[str], networks: list[ipaddress.IPv4Network], own: Collection[str] = ()) -> str | None:
    """The address of a peer to dial: the first one on a subnet we share, else the first; in
    both, first one that is not an address of this machine (``own``).

    zeroconf lists the newest addresses first, so after a peer's address changes the new
    one wins while the old record is still being flushed. An address this machine has too is
    the last choice: Docker gives every host 172.17.0.1 on its ``docker0`` bridge, a subnet every
    Docker host shares, and a node that dialled a peer there reached itself: on a LAN of Docker
    hosts no node joined another by mDNS (a node on this machine has only such addresses, and
    any of them reaches it).
    """
    if not addresses:
        return None
    shared = []
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            continue
        if any(ip in net for net in networks if net.version == ip.version):
            shared.append(address)
    for choice in (*shared, *addresses):
        if choice not in own:
            return choice
    return shared[0] if shared else addresses[0]


def loopback_has_multicast_flag() -> bool | None:
    """Whether ``lo`` carries the MULTICAST flag (None when it cannot be read).

    Linux delivers multicast on ``lo`` even without the flag when the sender picks the
    interface by address (zeroconf does), so this only explains a failure, it predicts none.
    """
    try:
        flags = int(Path("/sys/class/net/lo/flags").read_text().strip(), 16)
    except (OSError, ValueError):
        return None
    return bool(flags & _IFF_MULTICAST)
