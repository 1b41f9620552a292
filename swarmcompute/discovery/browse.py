"""The browsing half of discovery: turn zeroconf's cache into a table of ``PeerAd``.

zeroconf's browser reports a service when its PTR record first arrives and when a
goodbye (TTL 0) removes it, but it forces PTR records to live at least 1125 s and never
re-asks for the SRV/TXT/A records of a service it knows. A host that was cut off would
stay "found" for 19 minutes, and one that comes back would not be found again. So
besides the browser's events (the fast path, for announcements and goodbyes),
``PeerBrowser.refresh()`` runs every few seconds:

- it multicasts one PTR query whose known-answer list (RFC 6762 section 7.1) holds only
  the services whose SRV record is more than half fresh; every other node, and so
  every node that is new, back, or due for a refresh, answers with its PTR, SRV, TXT
  and A records; fresh ones stay silent;
- a known peer whose SRV/TXT/A records have all expired (TTL ``ttl_s`` of ``Discovery``)
  is reported removed; a service in the cache that resolves again is reported found.

That bounds "gone" by TTL + one refresh and "back" by one refresh (+0.3 s), at the cost
of one small query per node per refresh and one answer per peer per half TTL.

Anyone on the LAN can advertise (an ad proves nothing; the handshake does), so the table
holds at most ``MAX_PEERS`` ads (later ones are dropped until some leave), and the lines
about ads found, changed or gone are rate-limited (``LogLimiter``: 10 per 10 s each, with
the advertised address and a count of those left out).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TypeVar

import structlog
from zeroconf import IPVersion, ServiceStateChange, Zeroconf, current_time_millis
from zeroconf._dns import DNSPointer, DNSQuestion
from zeroconf._protocol.outgoing import DNSOutgoing
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo
from zeroconf.const import _CLASS_IN, _FLAGS_QR_QUERY, _TYPE_PTR, _TYPE_SRV

from swarmcompute.discovery.addresses import local_addresses, local_ipv4_networks, pick_host
from swarmcompute.transport.ratelimit import LogLimiter

log = structlog.get_logger(__name__)

_T = TypeVar("_T")

SERVICE_TYPE = "_swarmcompute._tcp.local."
PROTO_VERSION = "1"
RESOLVE_TIMEOUT_MS = 1000
MAX_RESOLVES_IN_FLIGHT = 64
RECONCILE_DELAY_S = 0.3
# After a goodbye, records of that service created within this window are the dying
# node's stragglers (an answer it had queued before leaving), not a comeback.
GOODBYE_QUIET_MS = 1000
GOODBYE_MEMORY_MS = 300_000
MAX_PEERS = 4096
"""Ads kept at once; a flood beyond it is dropped (and said, rate-limited)."""


@dataclass(frozen=True, slots=True)
class PeerAd:
    """What one node advertises: who it is, which cluster, where to dial it. Never a key."""

    node_id: str
    cluster_id: str
    host: str
    port: int


def ad_from_info(
    info: AsyncServiceInfo, networks: list[ipaddress.IPv4Network], own: Collection[str] = ()
) -> PeerAd | None:
    """A ``PeerAd`` from a resolved service, or None for an ad we cannot use.

    Ads of another protocol version, without ids, or without an address are skipped
    (logged) rather than half-trusted: a peer must be dialable and identifiable.
    """
    props = info.decoded_properties
    node_id, cluster_id, proto = props.get("node_id"), props.get("cluster_id"), props.get("proto")
    if proto != PROTO_VERSION or not node_id or not cluster_id or not info.port:
        log.debug("mdns_ad_skipped", name=info.name, proto=proto, node=node_id, cluster=cluster_id)
        return None
    host = pick_host(info.parsed_addresses(IPVersion.V4Only) + info.parsed_addresses(IPVersion.V6Only), networks, own)
    if host is None:
        return None
    return PeerAd(node_id=node_id, cluster_id=cluster_id, host=host, port=int(info.port))


class PeerBrowser:
    """Keeps ``peers`` (service name -> ``PeerAd``) in step with the network.

    ``on_peer`` runs when a peer appears or its ad changes (new address, port, cluster),
    ``on_removed`` with the node id when it says goodbye or its records expire. Our own
    ad (``self_node_id``) is not a peer; hearing it sets ``heard_self``, proof that
    multicast sent on this interface comes back (see ``Discovery``'s loopback check).
    """

    def __init__(
        self,
        zc: Zeroconf,
        *,
        on_peer: Callable[[PeerAd], None],
        on_removed: Callable[[str], None] | None = None,
        self_node_id: str | None = None,
    ) -> None:
        self._zc = zc
        self._on_peer = on_peer
        self._on_removed = on_removed
        self._self_node_id = self_node_id
        self.peers: dict[str, PeerAd] = {}
        self.heard_self = asyncio.Event()
        self._networks = local_ipv4_networks()
        self._own = local_addresses()
        """This machine's addresses: a peer's that equals one of them is dialled last (``pick_host``)."""
        self._resolving: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()
        self._browser: AsyncServiceBrowser | None = None
        self._later: asyncio.TimerHandle | None = None
        self._goodbyes: dict[str, float] = {}
        self._limiter = LogLimiter()
        self.dropped = 0
        """Ads left out because the table was full."""

    def start(self) -> None:
        """Start zeroconf's browser; events arrive on the running loop."""
        self._browser = AsyncServiceBrowser(self._zc, SERVICE_TYPE, handlers=[self._on_state_change])

    async def close(self) -> None:
        """Stop browsing and cancel resolutions in flight (awaited, so none outlives us)."""
        if self._later is not None:
            self._later.cancel()
            self._later = None
        if self._browser is not None:
            await self._browser.async_cancel()
            self._browser = None
        tasks = list(self._resolving.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._resolving.clear()

    def refresh(self) -> None:
        """Ask the LAN once more and reconcile the table with the cache (see module doc).

        Reconciles now and once more ``RECONCILE_DELAY_S`` later, when the answers to
        this query are in: answers that only refresh an expired record raise no event.
        """
        now = current_time_millis()
        self._networks = local_ipv4_networks()
        self._own = local_addresses()
        pointers = self._pointers(now)
        query = DNSOutgoing(_FLAGS_QR_QUERY, True)
        query.add_question(DNSQuestion(SERVICE_TYPE, _TYPE_PTR, _CLASS_IN))
        for pointer in pointers:
            srv = self._zc.cache.get_by_details(pointer.alias, _TYPE_SRV, _CLASS_IN)
            if srv is not None and srv.get_remaining_ttl(now) * 2 > srv.ttl and pointer.alias not in self._goodbyes:
                query.add_answer_at_time(pointer, now)  # a node back after a goodbye must answer again
        self._zc.async_send(query)
        self._reconcile(pointers, now)
        if self._later is not None:
            self._later.cancel()
        self._later = asyncio.get_running_loop().call_later(RECONCILE_DELAY_S, self._reconcile_now)

    def _pointers(self, now: float) -> list[DNSPointer]:
        return [
            record
            for record in self._zc.cache.async_all_by_details(SERVICE_TYPE, _TYPE_PTR, _CLASS_IN)
            if isinstance(record, DNSPointer) and not record.is_expired(now)
        ]

    def _reconcile_now(self) -> None:
        self._later = None
        now = current_time_millis()
        self._reconcile(self._pointers(now), now)

    def _reconcile(self, pointers: list[DNSPointer], now: float) -> None:
        for pointer in pointers:
            name = pointer.alias
            info = AsyncServiceInfo(SERVICE_TYPE, name)
            ad = ad_from_info(info, self._networks, self._own) if info.load_from_cache(self._zc, now) else None
            if ad is not None:
                self._upsert(name, ad)
            elif name in self.peers:
                self._drop(name, reason="expired")
        live = {p.alias for p in pointers}
        for name in [n for n in self.peers if n not in live]:
            self._drop(name, reason="expired")
        for name in [n for n, at in self._goodbyes.items() if now - at > GOODBYE_MEMORY_MS]:
            del self._goodbyes[name]

    def _back_after_goodbye(self, name: str) -> bool:
        """False while the only records of a service that said goodbye are its stragglers."""
        said_goodbye_at = self._goodbyes.get(name)
        if said_goodbye_at is None:
            return True
        srv = self._zc.cache.get_by_details(name, _TYPE_SRV, _CLASS_IN)
        if srv is None or srv.created <= said_goodbye_at + GOODBYE_QUIET_MS:
            return False
        del self._goodbyes[name]
        return True

    def _on_state_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Removed:
            self._goodbyes[name] = current_time_millis()
            self._drop(name, reason="goodbye")
        else:
            self._schedule_resolve(name)

    def _schedule_resolve(self, name: str) -> None:
        self._dirty.add(name)
        if name in self._resolving or len(self._resolving) >= MAX_RESOLVES_IN_FLIGHT:
            return  # the running task re-reads `name` when it finishes; refresh() retries the rest
        self._resolving[name] = asyncio.get_running_loop().create_task(self._resolve(name))

    async def _resolve(self, name: str) -> None:
        try:
            while name in self._dirty:
                self._dirty.discard(name)
                info = AsyncServiceInfo(SERVICE_TYPE, name)
                if not info.load_from_cache(self._zc) and not await info.async_request(self._zc, RESOLVE_TIMEOUT_MS):
                    log.debug("mdns_resolve_timeout", name=name)
                    return
                ad = ad_from_info(info, self._networks, self._own)
                if ad is not None:
                    self._upsert(name, ad)
        except asyncio.CancelledError:
            raise
        except Exception:  # a task boundary: one odd ad must not stop discovery
            log.exception("mdns_resolve_failed", name=name)
        finally:
            self._resolving.pop(name, None)  # synchronously, so no later event is missed

    def _upsert(self, name: str, ad: PeerAd) -> None:
        if ad.node_id == self._self_node_id:
            self.heard_self.set()
            return
        if not self._back_after_goodbye(name):
            return
        old = self.peers.get(name)
        if old == ad:
            return
        if old is None and len(self.peers) >= MAX_PEERS:
            self.dropped += 1
            self._log("mdns_peers_full", "full", peer=ad.node_id[:64], host=ad.host, port=ad.port, kept=MAX_PEERS)
            return
        self.peers[name] = ad
        event = "mdns_peer_updated" if old else "mdns_peer_found"
        self._log(event, event, peer=ad.node_id[:64], cluster=ad.cluster_id[:64], host=ad.host, port=ad.port)
        _call_safely(self._on_peer, ad)

    def _log(self, event: str, key: str, **fields: object) -> None:
        """An info line, at most 10 per 10 s per kind (ads are anyone's to send)."""
        suppressed = self._limiter.allow(key)
        if suppressed is None:
            return
        if suppressed:
            fields["suppressed"] = suppressed
        log.info(event, **fields)

    def _drop(self, name: str, *, reason: str) -> None:
        self._dirty.discard(name)
        ad = self.peers.pop(name, None)
        if ad is None:
            return
        self._log("mdns_peer_removed", "removed", peer=ad.node_id[:64], host=ad.host, reason=reason)
        if self._on_removed is not None:
            _call_safely(self._on_removed, ad.node_id)


def _call_safely(callback: Callable[[_T], None], arg: _T) -> None:
    try:
        callback(arg)
    except Exception:  # the owner's bug must not kill zeroconf's event dispatch
        log.exception("mdns_callback_failed", callback=getattr(callback, "__qualname__", repr(callback)))
