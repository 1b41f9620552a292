"""The cluster key: one 32-byte secret that every member holds, and the join token that carries it.

The first node of a cluster creates the key (``new_cluster_key()``) and prints its
token; every other node is started with that token. Everything else is derived
from the secret, deterministically, so nothing but the token has to be copied:

- ``cluster_id``: a short public name for the cluster (16 hex digits), a keyed
  hash of the secret. It is what mDNS advertises: it tells nodes of different
  clusters on one LAN apart and reveals nothing about the secret.
- the CurveZMQ keypair: curve25519 takes any 32 bytes as a secret key, so the
  secret key is a hash of the cluster secret and the public key follows from it
  (``zmq.curve_public``). Every member uses the same keypair as server *and* as
  client, so "the client's public key is the cluster public key" proves, through
  the CURVE handshake, that the client holds the secret (see ``zap.py``).

Token format (copy-pasteable, one word, case-insensitive)::

    swarm1-<cluster_id: 16 hex>-<secret: 52 base32 letters, no padding>

The cluster id doubles as the checksum: it is recomputed from the secret on
parse, so a mistyped token (64 bits of check) is an ``InvalidTokenError``
instead of a node that silently forms a cluster of its own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

import zmq
from zmq.utils import z85

from swarmcompute.errors import ConfigError, InvalidTokenError

TOKEN_PREFIX = "swarm1"
SECRET_BYTES = 32
_CLUSTER_ID_BYTES = 8
_SECRET_B32_CHARS = 52  # ceil(32 * 8 / 5)


def _derive(secret: bytes, purpose: bytes, size: int) -> bytes:
    """A KDF: BLAKE2b keyed with the secret, personalised per purpose (independent outputs)."""
    return hashlib.blake2b(b"", key=secret, digest_size=size, person=purpose).digest()


def _cluster_id_of(secret: bytes) -> str:
    return _derive(secret, b"swarm.cluster-id", _CLUSTER_ID_BYTES).hex()


@dataclass(frozen=True, slots=True)
class ClusterKey:
    """The cluster secret and what is derived from it. ``repr`` never shows the secret."""

    secret: bytes = field(repr=False)
    cluster_id: str = field(init=False)
    curve_secret_key: bytes = field(init=False, repr=False)
    """z85-encoded curve25519 secret key (40 bytes), as zmq's CURVE_SECRETKEY wants it."""
    curve_public_key: bytes = field(init=False, repr=False)
    """z85-encoded curve25519 public key (40 bytes): CURVE_PUBLICKEY and CURVE_SERVERKEY."""

    def __post_init__(self) -> None:
        if not isinstance(self.secret, bytes) or len(self.secret) != SECRET_BYTES:
            raise ValueError(f"a cluster secret is exactly {SECRET_BYTES} bytes")
        curve_secret = z85.encode(_derive(self.secret, b"swarm.curve-key", 32))
        object.__setattr__(self, "cluster_id", _cluster_id_of(self.secret))
        object.__setattr__(self, "curve_secret_key", curve_secret)
        object.__setattr__(self, "curve_public_key", zmq.curve_public(curve_secret))

    @property
    def token(self) -> str:
        """The join token to print for the user and pass to `swarm join` on other machines."""
        encoded = base64.b32encode(self.secret).decode("ascii").rstrip("=").lower()
        return f"{TOKEN_PREFIX}-{self.cluster_id}-{encoded}"

    @classmethod
    def from_token(cls, token: str) -> ClusterKey:
        """Parse a join token; anything malformed or mistyped is an ``InvalidTokenError``."""
        if not isinstance(token, str):
            raise InvalidTokenError("not a string")
        parts = token.strip().lower().split("-")
        if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
            raise InvalidTokenError(f"expected {TOKEN_PREFIX}-<cluster id>-<secret>")
        _, cluster_id, encoded = parts
        if len(encoded) != _SECRET_B32_CHARS:
            raise InvalidTokenError("the secret has the wrong length")
        try:
            secret = base64.b32decode(encoded.upper() + "=" * (-len(encoded) % 8))
        except (binascii.Error, ValueError):
            raise InvalidTokenError("the secret is not base32") from None
        key = cls(secret)
        if not secrets.compare_digest(key.cluster_id, cluster_id):
            raise InvalidTokenError("the checksum (cluster id) does not match the secret")
        return key

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the token to ``path`` with mode 0600, atomically (temp file, fsync, rename)."""
        target = Path(path)
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(self.token + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)  # in case the umask or the filesystem did something odd
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ClusterKey:
        """Read a key file written by ``save``.

        Refuses a file that others can read, as ssh does: anyone who can read it can
        join the cluster and run commands on every node.
        """
        target = Path(path)
        try:
            mode = stat.S_IMODE(target.stat().st_mode)
            text = target.read_text(encoding="ascii")
        except FileNotFoundError:
            raise ConfigError(f"no cluster key at {target}: start the first node with `swarm join`") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the cluster key {target}: {exc}") from None
        if mode & 0o077:
            raise ConfigError(
                f"the cluster key {target} is readable by other users (mode {mode:04o}): run `chmod 600 {target}`"
            )
        return cls.from_token(text)


def new_cluster_key() -> ClusterKey:
    """A fresh cluster key from the OS's CSPRNG: what the first node of a cluster calls."""
    return ClusterKey(secrets.token_bytes(SECRET_BYTES))
