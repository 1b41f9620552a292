"""``--peer HOST:PORT`` parsing: every accepted form, and a clear error for each bad one."""

from __future__ import annotations

import pytest

from swarmcompute.discovery import parse_peer
from swarmcompute.discovery.peer_addr import format_peer
from swarmcompute.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.168.1.20:7946", ("192.168.1.20", 7946)),
        ("127.0.0.1:1", ("127.0.0.1", 1)),
        ("nas.local:65535", ("nas.local", 65535)),
        ("pi-4:7000", ("pi-4", 7000)),
        ("nas.local.:7000", ("nas.local.", 7000)),
        ("[fe80::1]:7946", ("fe80::1", 7946)),
        ("[::1]:80", ("::1", 80)),
        ("[fe80::1%eth0]:7946", ("fe80::1%eth0", 7946)),
        ("  10.0.0.1:22  ", ("10.0.0.1", 22)),
    ],
)
def test_accepts(text: str, expected: tuple[str, int]) -> None:
    assert parse_peer(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("10.0.0.1", "port is missing"),
        (":7946", "host is missing"),
        ("10.0.0.1:", "not a number"),
        ("10.0.0.1:http", "not a number"),
        ("10.0.0.1:0", "outside 1-65535"),
        ("10.0.0.1:65536", "outside 1-65535"),
        ("10.0.0.1:-1", "not a number"),
        ("10.0.0.1:７９", "not a number"),
        ("300.1.1.1:80", "not a valid IPv4"),
        ("1.2.3:80", "not a valid IPv4"),
        ("fe80::1:7946", "brackets"),
        ("[fe80::1:7946", "missing ']'"),
        ("[fe80::1]7946", "missing ':PORT'"),
        ("[10.0.0.1]:80", "not an IPv6"),
        ("bad_name:80", "not a valid host name"),
        ("-bad.local:80", "not a valid host name"),
        ("a..b:80", "not a valid host name"),
    ],
)
def test_rejects_with_a_reason(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match="HOST:PORT") as info:
        parse_peer(text)
    assert says in str(info.value)


@pytest.mark.parametrize("text", ["10.0.0.1:7946", "[fe80::1]:7946", "nas.local:1"])
def test_format_round_trips(text: str) -> None:
    assert format_peer(*parse_peer(text)) == text
