"""``--peer HOST:PORT``: the static address of a peer where multicast does not reach.

mDNS stops at the LAN's edge (another subnet, a VPN, Wi-Fi with multicast filtering), so
``swarm join --peer`` names a peer by address instead. Parsing is strict so a typo says what
is wrong at once instead of becoming a peer that never answers.
"""

from __future__ import annotations

import ipaddress
import re

from swarmcompute.errors import ConfigError

_HOSTNAME_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_FORM = "expected HOST:PORT, e.g. 192.168.1.20:7340, nas.local:7340 or [fe80::1]:7340"


def parse_peer(text: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (IPv4, hostname, or ``[IPv6]:PORT``) into ``(host, port)``.

    The host is returned without brackets. Raises ``ConfigError`` naming the bad part.
    """
    raw = text.strip()
    if not raw:
        raise ConfigError(f"--peer is empty: {_FORM}")
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0:
            raise ConfigError(f"--peer {text!r}: missing ']' after the IPv6 address; {_FORM}")
        host, rest = raw[1:end], raw[end + 1 :]
        if not rest.startswith(":"):
            raise ConfigError(f"--peer {text!r}: missing ':PORT' after ']'; {_FORM}")
        port_text = rest[1:]
        try:
            if ipaddress.ip_address(host.split("%", 1)[0]).version != 6:
                raise ValueError(host)
        except ValueError:
            raise ConfigError(f"--peer {text!r}: {host!r} in brackets is not an IPv6 address; {_FORM}") from None
    else:
        if raw.count(":") > 1:
            raise ConfigError(f"--peer {text!r}: put an IPv6 address in brackets, as [ADDR]:PORT; {_FORM}")
        host, sep, port_text = raw.rpartition(":")
        if not sep:
            raise ConfigError(f"--peer {text!r}: the port is missing; {_FORM}")
        if not host:
            raise ConfigError(f"--peer {text!r}: the host is missing; {_FORM}")
        _check_host(text, host)
    return host, _parse_port(text, port_text)


def format_peer(host: str, port: int) -> str:
    """The inverse of ``parse_peer``: brackets around an IPv6 host."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_host(text: str, host: str) -> None:
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ConfigError(f"--peer {text!r}: {host!r} is not a valid IPv4 address; {_FORM}") from None
        return
    name = host[:-1] if host.endswith(".") else host
    if len(name) > 253 or not all(_HOSTNAME_LABEL.match(label) for label in name.split(".")):
        raise ConfigError(f"--peer {text!r}: {host!r} is not a valid host name; {_FORM}")


def _parse_port(text: str, port_text: str) -> int:
    if not (port_text.isascii() and port_text.isdigit()):
        raise ConfigError(f"--peer {text!r}: port {port_text!r} is not a number; {_FORM}")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ConfigError(f"--peer {text!r}: port {port} is outside 1-65535; {_FORM}")
    return port
