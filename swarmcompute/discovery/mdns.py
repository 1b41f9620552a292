"""mDNS discovery: advertise this node as ``_swarmcompute._tcp.local.`` and browse for peers.

The ad carries TXT properties ``node_id``, ``cluster_id`` (public, random) and ``proto``
(the discovery protocol version) plus the port — never the cluster key: finding a peer
proves nothing, the CurveZMQ handshake does. A node's identity is its id, not its address,
so when an address changes the ad is simply re-sent with the new one.

Timing, chosen for ``swarm join`` to see its peers within about a second on a LAN:

- The instance name is the node id, unique by construction (a state dir holds one node
  id and one daemon), so the three 250 ms RFC 6762 probes are skipped
  (``cooperating_responders``): the first announcement goes out at once. A state dir
  copied to a second machine is the exception: gossip finds it and stops the copy before
  it takes part (``membership.core.Membership._check_twin``); mDNS would not have, since
  the probes are skipped.
- SRV/TXT/A records carry a short TTL (``ttl_s``, 30 s), and every
  ``refresh_interval_s`` (5 s) the node sends one known-answer query (see ``browse``):
  a peer that vanished without a goodbye is reported gone after at most TTL + one
  refresh, one that comes back is found within one refresh. A clean stop sends a
  goodbye, seen at once. This is a hint for the membership layer, which decides liveness.
- Every refresh also re-reads the interface addresses (``ifaddr``, about half a
  millisecond) and re-advertises when they changed; ``update_address`` does it at once.

Interfaces: a specific ``bind`` restricts mDNS to that address's interface; no bind (or
0.0.0.0) uses every IPv4 interface and advertises every non-loopback address.

Loopback (``--bind 127.0.0.1``, several nodes on one machine): this works on Linux with
no set-up. zeroconf binds its sender to 127.0.0.1 and joins 224.0.0.251 on that
address; the kernel then routes multicast out of ``lo`` by the source address, so it
needs neither the MULTICAST flag on ``lo`` (which ``lo`` usually lacks) nor a
224.0.0.0/4 route. Verified in a fresh network namespace whose ``lo`` has neither.
Where it does not work (other kernels, a firewall on ``lo``), a node never hears its
own ad; ``Discovery`` then logs one ``mdns_self_not_heard`` warning that says so and
suggests ``--peer 127.0.0.1:PORT``. ``ip link set lo multicast on`` is the fix to try
there. Two nodes on one machine need different ports, never a different setup.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable

import structlog
from zeroconf import NonUniqueNameException
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from swarmcompute.discovery.addresses import (
    advertised_addresses,
    interfaces_for,
    is_wildcard,
    local_addresses,
    loopback_has_multicast_flag,
)
from swarmcompute.discovery.browse import PROTO_VERSION, SERVICE_TYPE, PeerAd, PeerBrowser
from swarmcompute.discovery.peer_addr import parse_peer
from swarmcompute.errors import ConfigError, DiscoveryError

__all__ = ["PROTO_VERSION", "SERVICE_TYPE", "Discovery", "PeerAd", "find_clusters", "parse_peer"]

log = structlog.get_logger(__name__)

DEFAULT_TTL_S = 30
DEFAULT_REFRESH_INTERVAL_S = 5.0
SELF_CHECK_TIMEOUT_S = 3.0
FIND_TIMEOUT_S = 1.5
FIND_SETTLE_S = 0.25
_MAX_INSTANCE_NAME = 63


class Discovery:
    """Advertise one node and report the peers mDNS finds, until ``close()``.

    ``on_peer`` runs on the event loop when a peer appears or its ad changes (e.g. a new
    address); ``on_peer_removed`` with its node id when it says goodbye or its ad
    expires. Callbacks must be quick and must not raise (errors are logged). Nodes of
    every cluster on the LAN are reported, each with its ``cluster_id``: the caller
    keeps its own and may tell the user about the others.
    """

    def __init__(
        self,
        node_id: str,
        cluster_id: str,
        port: int,
        *,
        bind: str | None,
        on_peer: Callable[[PeerAd], None],
        on_peer_removed: Callable[[str], None] | None = None,
        ttl_s: int = DEFAULT_TTL_S,
        refresh_interval_s: float = DEFAULT_REFRESH_INTERVAL_S,
    ) -> None:
        if not node_id or len(node_id.encode()) > _MAX_INSTANCE_NAME or "." in node_id:
            raise ConfigError(f"node id {node_id!r} cannot be an mDNS name (1-63 bytes, no dots)")
        if not 1 <= port <= 65535:
            raise ConfigError(f"port {port} is outside 1-65535")
        if ttl_s < 2 or refresh_interval_s <= 0:
            raise ConfigError("mDNS ttl_s must be >= 2 and refresh_interval_s > 0")
        _check_bind(bind)
        self.node_id = node_id
        self.cluster_id = cluster_id
        self.port = port
        self._bind = bind
        self._on_peer = on_peer
        self._on_peer_removed = on_peer_removed
        self._ttl_s = ttl_s
        self._refresh_interval_s = refresh_interval_s
        self._azc: AsyncZeroconf | None = None
        self._browser: PeerBrowser | None = None
        self._info: AsyncServiceInfo | None = None
        self._addresses: list[str] = []
        self._pinned: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._update_lock = asyncio.Lock()
        self._log = log.bind(node_id=node_id, cluster=cluster_id)

    @property
    def peers(self) -> dict[str, PeerAd]:
        """The peers seen now, by node id."""
        if self._browser is None:
            return {}
        return {ad.node_id: ad for ad in self._browser.peers.values()}

    @property
    def addresses(self) -> list[str]:
        """The addresses advertised now."""
        return list(self._addresses)

    async def start(self) -> None:
        """Open mDNS on the bind interface(s), start browsing, announce ourselves.

        Raises ``DiscoveryError`` when mDNS cannot open its sockets (no such address
        here, port 5353 refused).
        """
        if self._azc is not None:
            return
        self._azc = _open_zeroconf(self._bind)
        try:
            self._browser = PeerBrowser(
                self._azc.zeroconf,
                on_peer=self._on_peer,
                on_removed=self._on_peer_removed,
                self_node_id=self.node_id,
            )
            self._browser.start()
            self._addresses = advertised_addresses(self._bind)
            self._info = self._make_info(self._addresses)
            await self._azc.async_register_service(self._info, cooperating_responders=True)
        except NonUniqueNameException:
            await self.close()
            raise DiscoveryError(f"another process already advertises node {self.node_id} on this LAN") from None
        except BaseException:
            await self.close()
            raise
        self._log.info("mdns_started", bind=self._bind or "0.0.0.0", port=self.port, addresses=self._addresses)
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._refresh_loop(), name="mdns-refresh"))
        self._tasks.append(loop.create_task(self._self_check(), name="mdns-self-check"))

    async def close(self) -> None:
        """Say goodbye (peers drop us at once) and stop every task and socket."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._browser is not None:
            await self._browser.close()
            self._browser = None
        if self._azc is not None:
            azc, self._azc = self._azc, None
            await azc.async_close()
            self._log.info("mdns_stopped")

    async def update_cluster_id(self, cluster_id: str) -> None:
        """Advertise under a new cluster id at once (the cluster key was rotated)."""
        self.cluster_id = cluster_id
        self._log = log.bind(node_id=self.node_id, cluster=cluster_id)
        await self._readvertise(force=True)

    async def update_address(self, host: str) -> None:
        """Re-advertise after this node's address changed to ``host``.

        With a specific bind, mDNS moves to the new address's interface; with a
        wildcard bind the interfaces are re-scanned and ``host`` is advertised first.
        """
        _check_bind(host)
        if not is_wildcard(self._bind):
            self._bind = host
        else:
            self._pinned = host
        await self._readvertise(force=True)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_interval_s)
            try:
                await self._readvertise(force=False)
                if self._browser is not None:
                    self._browser.refresh()
            except Exception:  # a task boundary: log and keep discovering
                self._log.exception("mdns_refresh_failed")

    async def _readvertise(self, *, force: bool) -> None:
        async with self._update_lock:
            if self._azc is None or self._info is None:
                return
            addresses = advertised_addresses(self._bind)
            if self._pinned is not None:
                addresses = [self._pinned, *[a for a in addresses if a != self._pinned]]
            if addresses == self._addresses and not force:
                return
            old, self._addresses = self._addresses, addresses
            interfaces, _ = interfaces_for(self._bind)
            await self._azc.async_update_interfaces(interfaces)
            self._info = self._make_info(addresses)
            await self._azc.async_update_service(self._info)
            self._log.info("mdns_readvertised", old=old, new=addresses)

    async def _self_check(self) -> None:
        """Warn once when our own multicast never comes back (see the module doc)."""
        if self._browser is None:
            return
        try:
            await asyncio.wait_for(self._browser.heard_self.wait(), SELF_CHECK_TIMEOUT_S)
        except TimeoutError:
            lo_flag = loopback_has_multicast_flag()
            hint = ""
            if self._bind is not None and _is_loopback(self._bind) and lo_flag is False:
                hint = " (lo has no MULTICAST flag: try `ip link set lo multicast on`)"
            self._log.warning(
                "mdns_self_not_heard",
                message=(
                    f"mDNS on {self._bind or 'all interfaces'} does not hear its own announcement, "
                    f"so peers will not be found by mDNS here{hint}; "
                    "name them with --peer HOST:PORT instead"
                ),
            )

    def _make_info(self, addresses: list[str]) -> AsyncServiceInfo:
        return AsyncServiceInfo(
            SERVICE_TYPE,
            f"{self.node_id}.{SERVICE_TYPE}",
            port=self.port,
            properties={"node_id": self.node_id, "cluster_id": self.cluster_id, "proto": PROTO_VERSION},
            server=f"swarm-{self.node_id}.local.",
            host_ttl=self._ttl_s,
            other_ttl=self._ttl_s,
            parsed_addresses=addresses,
        )


async def find_clusters(
    timeout_s: float = FIND_TIMEOUT_S, *, bind: str | None = None, settle_s: float = FIND_SETTLE_S
) -> dict[str, list[PeerAd]]:
    """The clusters answering on this LAN now: cluster id -> its nodes (sorted by node id).

    For ``swarm join`` to choose between creating a cluster, joining one, and refusing
    to make a second. Returns as soon as answers stop coming for ``settle_s`` after the
    first one, and after ``timeout_s`` at most (an empty LAN costs the full timeout).
    """
    _check_bind(bind)
    azc = _open_zeroconf(bind)
    arrived = asyncio.Event()
    browser = PeerBrowser(azc.zeroconf, on_peer=lambda _ad: arrived.set())
    try:
        browser.start()
        deadline = time.monotonic() + timeout_s
        first_seen = False
        while (left := deadline - time.monotonic()) > 0:
            arrived.clear()
            try:
                await asyncio.wait_for(arrived.wait(), min(left, settle_s) if first_seen else left)
            except TimeoutError:
                if first_seen:
                    break
                continue
            first_seen = True
        clusters: dict[str, list[PeerAd]] = {}
        for ad in sorted(browser.peers.values(), key=lambda a: a.node_id):
            clusters.setdefault(ad.cluster_id, []).append(ad)
        log.info("mdns_clusters_found", clusters={c: len(ads) for c, ads in clusters.items()})
        return clusters
    finally:
        await browser.close()
        await azc.async_close()


def _open_zeroconf(bind: str | None) -> AsyncZeroconf:
    if not is_wildcard(bind) and bind not in local_addresses():
        # zeroconf would only log a warning and then listen nowhere
        raise DiscoveryError(f"mDNS cannot start on {bind}: no interface here has that address; check --bind")
    interfaces, ip_version = interfaces_for(bind)
    try:
        return AsyncZeroconf(interfaces=interfaces, ip_version=ip_version)
    except OSError as exc:
        where = bind or "all interfaces"
        raise DiscoveryError(f"mDNS cannot start on {where}: {exc}; check --bind, or use --peer HOST:PORT") from exc


def _check_bind(bind: str | None) -> None:
    if bind is None or bind in ("", "0.0.0.0", "::"):
        return
    try:
        ipaddress.ip_address(bind)
    except ValueError:
        raise ConfigError(f"bind address {bind!r} is not an IP address") from None


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
