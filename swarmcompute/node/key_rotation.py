"""`swarm token --rotate`: a new cluster key for a running cluster, no member restarted.

How it goes (the why of each step is in ``state.cluster_key`` and ``transport.peer``):

1. The node asked makes a new key and commits ``RotateClusterKey`` (its token, the next
   generation) through the Raft log; it answers with the new token only once that is
   committed, and only if its rotation won (two at once: one wins, the other is told).
2. Every member, on applying it (checked every tick, 0.1 s), saves the new key to
   ``cluster.key`` (0600, atomically; the old key's cluster id goes to ``cluster.earlier``,
   so that the old token, which a service unit or a config file holds, still starts this
   node: ``node.joining``), rebinds its peer port with the new keypair (the old
   token is refused from then on: a stranger holding it cannot even finish a handshake),
   re-advertises on mDNS under the new cluster id, and keeps reaching the members that have
   not switched yet with the old key for ``KEY_GRACE_S``.
3. The leader switches first (it applies first); its followers switch within a heartbeat
   and a tick. Messages from a follower not yet switched to one that has are lost for that
   moment, as on a short network blip: far below the election timeout and the lease.

4. A member that was down during the rotation comes back on the old key. Members still reach
   it with the old key for ``KEY_GRACE_S``, but it cannot answer them (their ports let in only
   the new key), so it would never fetch the log entry with the new key: each member that
   reached a peer only with the old key sends it a ``ClusterKeyNotice`` (the key now) once a
   second, and the peer switches to it ahead of its log, then catches up as any restarted
   member does. The notice goes out with the old key, as the log entry itself does to a peer
   that has not switched: only a holder of the old key can read it.

A member that was down for the whole grace period holds only the old key: it cannot reach
the cluster any more and must join again with the new token (a fresh state dir).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

import structlog

from swarmcompute.errors import ClusterError, InvalidTokenError
from swarmcompute.node.cluster_messages import ClusterKeyNotice
from swarmcompute.node.joining import remember_earlier_key
from swarmcompute.paths import StatePaths
from swarmcompute.state.cluster_key import RotateClusterKey
from swarmcompute.state.table import JobTable
from swarmcompute.transport.keys import ClusterKey, new_cluster_key

log = structlog.get_logger(__name__)

KEY_GRACE_S = float(os.environ.get("SWARM_TEST_KEY_GRACE_S", "600"))
"""How long a member keeps reaching members that have not switched, with the old key (10 minutes;
``SWARM_TEST_KEY_GRACE_S``, read once, is a test hook)."""
KEY_REFUSED_AFTER_S = 15.0
"""A member that has heard from no peer this long after its start, and whose key every peer it
knows refuses, was down longer than ``KEY_GRACE_S`` across a rotation: it stops and says so
(``KeyOutdatedError``). Within the grace members reach it in a few seconds (their connections'
reconnect backoff is at most 5 s), and a refusal is never an unreachable peer's silence."""
SWITCH_RETRY_S = 5.0


class KeyRotation:
    """The daemon's half of key rotation: propose one, and follow the table's key."""

    def __init__(
        self,
        paths: StatePaths,
        table: JobTable,
        link: Any,
        *,
        discovery: Callable[[], Any],
        on_save_failed: Callable[[OSError], None],
    ) -> None:
        self._paths = paths
        self._table = table
        self._link = link
        self._discovery = discovery
        self._on_save_failed = on_save_failed
        self._generation = table.cluster_key.generation
        self._unsaved: ClusterKey | None = None
        self._switching: asyncio.Task[None] | None = None
        self._retry_at = 0.0
        self._noticed_generation = 0
        """The generation a member's ``ClusterKeyNotice`` switched this node to, ahead of its log."""
        self._told: set[str] = set()
        link.on_key_notice = self._noticed
        if self._generation:  # a restart after a rotation: the key file may lag the log
            self._generation = -1

    async def rotate(self, propose: Callable[[list[Any]], Any]) -> str:
        """Commit a new key; return its join token (for the terminal that asked, only)."""
        key = new_cluster_key()
        generation = self._table.cluster_key.generation + 1
        await propose([RotateClusterKey(generation, key.token, time.time())])
        if self._table.cluster_key.token != key.token:
            raise ClusterError(
                "another key rotation was committed at the same time and won: `swarm token` prints the key now"
            )
        self.check()
        return key.token

    def check(self) -> None:
        """Every tick: switch to the table's key once it changed (cheap when it did not)."""
        state = self._table.cluster_key
        if self._unsaved is not None:
            self._save(self._unsaved)
        if state.generation < self._noticed_generation:
            return  # the log catches up with the key a member told: an older key would undo it
        if state.generation == self._generation or (self._switching is not None and not self._switching.done()):
            return
        if time.monotonic() < self._retry_at:
            return
        self._generation = state.generation
        if not state.token:
            return
        try:
            key = ClusterKey.from_token(state.token)
        except InvalidTokenError:
            log.error("cluster_key_unusable", generation=state.generation)
            return
        self._save(key)
        if key.curve_public_key == self._link.key.curve_public_key:
            return
        self._switching = asyncio.get_running_loop().create_task(self._switch(key, state.generation))

    async def _switch(self, key: ClusterKey, generation: int) -> None:
        old_id = self._link.key.cluster_id
        try:
            await self._link.transport.rotate(key, KEY_GRACE_S)
        except Exception:  # a task boundary: the node keeps its old key, and says so
            log.exception("cluster_key_switch_failed", generation=generation, action="retried in 5 s")
            self._generation = -1
            self._retry_at = time.monotonic() + SWITCH_RETRY_S
            return
        self._link.key = key
        discovery = self._discovery()
        if discovery is not None:
            try:
                await discovery.update_cluster_id(key.cluster_id)
            except Exception:
                log.exception("mdns_readvertise_failed")
        log.warning(
            "cluster_key_rotated",
            generation=generation,
            old_cluster_id=old_id,
            cluster_id=key.cluster_id,
            old_key_kept_s=KEY_GRACE_S,
        )

    def expire(self) -> None:
        """Once a second: tell the peers reached only with the old key the key now (step 4 of
        the module doc); close the old key's connections once the grace period is over."""
        transport = self._link.transport
        peers = transport.old_key_peers()
        state = self._table.cluster_key
        if peers and state.token and state.token == self._link.key.token:
            notice = ClusterKeyNotice(state.generation, state.token)
            for address in sorted(peers):
                if address not in self._told:
                    self._told.add(address)
                    log.info("cluster_key_told", address=address, generation=state.generation)
                self._link.send_to_address(address, notice)
        transport.expire_old_key()

    def _noticed(self, sender: str, notice: ClusterKeyNotice) -> None:
        """A member reached this node only with the key it has, which the cluster replaced: switch
        to the key it says, ahead of the log (fetched only once this node can answer). Only a
        holder of this node's key can send it (the ROUTER lets in no one else), and only a newer
        generation than the log's and the last notice's is taken."""
        if not isinstance(notice.generation, int) or not isinstance(notice.token, str):
            return
        if notice.generation <= self._table.cluster_key.generation or notice.generation < self._noticed_generation:
            return
        if self._switching is not None and not self._switching.done():
            return
        try:
            key = ClusterKey.from_token(notice.token)
        except InvalidTokenError:
            return
        if key.curve_public_key == self._link.key.curve_public_key:
            return
        log.info("cluster_key_noticed", sender=sender[:64], generation=notice.generation)
        self._noticed_generation = self._generation = notice.generation
        self._save(key)
        self._switching = asyncio.get_running_loop().create_task(self._switch(key, notice.generation))

    def _save(self, key: ClusterKey) -> None:
        try:
            current = ClusterKey.load(self._paths.cluster_key)
        except Exception:
            current = None
        if current is not None and current.secret == key.secret:
            self._unsaved = None
            return
        try:
            if current is not None:  # its token, in a service unit or a config file, still starts this node
                remember_earlier_key(self._paths, current.cluster_id)
            key.save(self._paths.cluster_key)
        except OSError as exc:  # a full disk: kept in memory, saved at a later tick
            if self._unsaved is None:
                log.error("cluster_key_not_saved", error=exc.strerror or str(exc), action="retried every tick")
                self._on_save_failed(exc)
            self._unsaved = key
            return
        self._unsaved = None
