"""Cluster key, join token and key file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import zmq

from swarmcompute.errors import ConfigError, InvalidTokenError
from swarmcompute.transport.keys import ClusterKey, new_cluster_key

MALFORMED = "the join token is malformed: copy it again from `swarm token`"


def test_token_round_trip() -> None:
    key = new_cluster_key()
    token = key.token
    assert token.startswith(f"swarm1-{key.cluster_id}-")
    assert ClusterKey.from_token(token) == key
    # pasted with surrounding whitespace or shouted: still the same cluster
    assert ClusterKey.from_token(f"  {token.upper()}\n") == key


def test_everything_is_derived_from_the_secret() -> None:
    secret = bytes(range(32))
    a, b = ClusterKey(secret), ClusterKey(secret)
    assert (a.cluster_id, a.curve_public_key, a.curve_secret_key) == (
        b.cluster_id,
        b.curve_public_key,
        b.curve_secret_key,
    )
    assert len(a.cluster_id) == 16 and int(a.cluster_id, 16) >= 0
    assert zmq.curve_public(a.curve_secret_key) == a.curve_public_key
    other = new_cluster_key()
    assert other.cluster_id != a.cluster_id and other.curve_public_key != a.curve_public_key


def test_repr_hides_the_secret() -> None:
    key = new_cluster_key()
    shown = repr(key) + str(key)
    assert key.cluster_id in shown
    assert key.token.split("-")[2] not in shown.lower()
    assert key.curve_secret_key.decode() not in shown


def _mistyped(token: str) -> str:
    """Change one letter of the secret part."""
    i = len(token) - 5
    return token[:i] + ("a" if token[i] != "a" else "b") + token[i + 1 :]


@pytest.mark.parametrize(
    "make_bad",
    [
        lambda t: "",
        lambda t: "hello",
        lambda t: t[:-1],  # truncated
        lambda t: t + "a",
        lambda t: t.replace("swarm1-", "swarm2-"),
        lambda t: t.replace("-", "_"),
        _mistyped,
        lambda t: "swarm1-0000000000000000-" + t.split("-")[2],  # cluster id (checksum) wrong
        lambda t: t[:-1] + "1",  # '1' is not a base32 letter
    ],
)
def test_malformed_tokens_are_refused_clearly(make_bad) -> None:  # type: ignore[no-untyped-def]
    token = new_cluster_key().token
    with pytest.raises(InvalidTokenError) as info:
        ClusterKey.from_token(make_bad(token))
    assert str(info.value) == MALFORMED
    assert isinstance(info.value, ConfigError)


def test_key_file_is_private_and_round_trips(tmp_path: Path) -> None:
    key = new_cluster_key()
    path = tmp_path / "cluster.key"
    old_umask = os.umask(0o022)
    try:
        key.save(path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ClusterKey.load(path) == key
    assert [p.name for p in tmp_path.iterdir()] == ["cluster.key"]  # no temp file left behind
    key2 = new_cluster_key()
    key2.save(path)  # overwrite keeps 0600
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ClusterKey.load(path) == key2


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cluster.key"
    new_cluster_key().save(path)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        ClusterKey.load(path)


def test_missing_or_garbled_key_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no cluster key"):
        ClusterKey.load(tmp_path / "absent.key")
    path = tmp_path / "bad.key"
    path.write_text("not a token\n")
    path.chmod(0o600)
    with pytest.raises(InvalidTokenError):
        ClusterKey.load(path)
