"""The SWIM/memberlist gossip core: a pure state machine driven by ticks and messages.

Inputs: ``tick()``, ``step(from_node_id, msg)``, ``join(seeds)``, ``set_meta(meta)``,
``leave()``. Output of each: a list of effects (``Send`` and member events).
No clock, no sockets, no global RNG: the shell ticks it every ``config.tick_ms``
and injects a ``random.Random``.

Failure detection, per probe interval: ping the next member (round-robin over a
shuffled order); no ack within ``probe_timeout_ticks`` -> ask ``indirect_checks``
random peers to ping it for us; still no ack when the interval ends -> suspect
it. Any answer from a member is as good as an ack (``heard``: the shell reports the answers
to its Raft and lease messages too): a member that answered within half a probe interval
before its turn counts as probed (one that dies in that half interval is found a round later,
as one that dies right after acking its ping is), so a leader, answered every heartbeat, and
its followers, granted a lease every 200 ms, never ping each other (3 idle loopback daemons,
``benchmarks/idle.py``, 2 paired rounds: 14.2 peer messages received a second per daemon instead
of 15.2-15.4; CPU 0.93-1.00x, within the VM's noise). Only answers count: a
request proves the way here, not back: a leader cut off one way (nothing reaches it) must be
suspected while its heartbeats still arrive. (With every message counted, 2 of 6 runs of the
5-host one-way-cut test elected only after about 2 s, past the followers' leases, and every job
ran again; 0.8-1.1 s and only the cut leader's jobs in the others, as with answers only.) A
suspect that does not refute (bump its incarnation) within the suspicion
timeout is declared dead. One missed ack never kills a node: that is the point
of indirect probes and suspicion (a Wi-Fi blip must not move work around).

Dissemination: every accepted change is queued and piggy-backed on pings, acks
and periodic gossip to a few random peers, ``retransmit_limit(N)`` times.
Anti-entropy: a chunked full-state push-pull with one random peer at a low rate,
on join, and (Serf's reconnect) with a random dead member, so partitions heal
and a node that was declared dead can refute and come back at a new address.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from swarmcompute.membership.broadcasts import BroadcastQueue
from swarmcompute.membership.config import GossipConfig
from swarmcompute.membership.effects import Effect, Send, TwinFound
from swarmcompute.membership.members import ALIVE, DEAD, LEFT, SUSPECT, Member, MemberTable
from swarmcompute.membership.messages import (
    Ack,
    Gossip,
    GossipMessage,
    MemberUpdate,
    Ping,
    PingReq,
    PushPull,
    TwinCheck,
)
from swarmcompute.membership.meta import NodeMeta

TWIN_CHECK_TRIES = 3
"""Checks sent to a place a peer says this node runs (``Membership._check_twin``) before it is
taken for a past run's (``_send_twin_check``)."""
TWIN_RETRY_TICKS = 2
TWIN_AGE_MARGIN_MS = 1000
"""Two processes of one node id whose ages differ by less than this cannot tell which started
first (the ages cross the network): the one at the higher address steps aside."""


@dataclass(slots=True)
class _Probe:
    target_id: str
    target_addr: str
    incarnation: int
    seq: int
    sent_tick: int
    acked: bool = False


class Membership:
    """One node's view of the cluster. Not thread-safe; the shell owns it."""

    def __init__(
        self,
        node_id: str,
        address: str,
        config: GossipConfig,
        rng: random.Random,
        *,
        meta: NodeMeta | None = None,
        incarnation: int = 0,
    ) -> None:
        self.node_id = node_id
        self.config = config
        self._rng = rng
        self._table = MemberTable(Member(node_id, address, incarnation, ALIVE, meta.capped() if meta else None, 0))
        self._queue = BroadcastQueue()
        self._tick = 0
        self._seq = 0
        self._probe: _Probe | None = None
        self._probe_order: list[str] = []
        self._heard: dict[str, int] = {}
        """Member node_id -> the last tick it answered this node (``heard``)."""
        self._forwards: dict[int, tuple[str, int, int]] = {}
        """Relayed ping seq -> (requester address, requester's seq, expiry tick)."""
        self._suspicions: dict[str, int] = {}
        self._dead: dict[str, int] = {}
        """Dead (not left) node_id -> tick it died: targets of gossip-to-the-dead and reconnects."""
        """Suspect node_id -> tick at which it is declared dead."""
        self._seeds: dict[str, None] = {}
        """Seeds that have not answered a join push-pull yet, in the order given (see ``join``)."""
        self._joined = False
        self._leaving = False
        c = config
        self._next_probe = rng.randrange(c.probe_interval_ticks) + 1
        self._next_gossip = rng.randrange(c.gossip_interval_ticks) + 1
        self._next_push_pull = rng.randrange(c.push_pull_interval_ticks) + 1
        self._push_pull_gap = c.push_pull_interval_ticks
        """Grows from ``join_retry_ticks`` to the full interval after a join (see ``join``)."""
        self._next_reconnect = rng.randrange(c.reconnect_interval_ticks) + 1
        self._next_join = c.join_retry_ticks
        self._join_gap = c.join_retry_ticks
        """Grows from 2 ticks to ``join_retry_ticks`` after a join (see ``join``)."""
        self._announce_until = -1
        """Re-announce our address to every live member until this tick (see ``set_address``)."""
        self._twin_checks: dict[str, tuple[int, int]] = {}
        """Address a peer said we are at -> (tick the ``TwinCheck`` sent there expires, tries left)."""
        self._full_state_seen = False
        self._settled = False
        self._stepping_aside = False
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "probes",
                "probes_spared",
                "indirect_probes",
                "suspected",
                "refuted",
                "declared_dead",
                "dropped_spoofed",
                "dropped_wrong_target",
                "push_pulls",
                "twin_checks",
                "twins_found",
            ),
            0,
        )
        self._enqueue_self()

    # ---------------------------------------------------------------- queries

    @property
    def address(self) -> str:
        return self.local.address

    @property
    def local(self) -> Member:
        return self._table.by_id[self.node_id]

    @property
    def incarnation(self) -> int:
        return self.local.incarnation

    @property
    def now_tick(self) -> int:
        return self._tick

    @property
    def num_alive(self) -> int:
        """Alive members in this view, the local node included."""
        return self._table.alive_count

    @property
    def num_live(self) -> int:
        """Alive plus suspect members, the local node included (the N of the log(N) scalings)."""
        return len(self._table.live) + 1

    @property
    def leaving(self) -> bool:
        return self._leaving

    @property
    def settled(self) -> bool:
        """Whether this node may take part in the cluster (the shell holds Raft, lease and forwarded
        messages until then): it has had a peer's full state, or ``settle_max_ticks`` passed (no
        peer answered: nothing to learn), and every place a peer said it runs was checked
        (``_check_twin``). A process that found itself a copy never settles. A node's first
        moments only: once settled it stays so."""
        return self._settled

    def member(self, node_id: str) -> Member | None:
        return self._table.get(node_id)

    def members(self) -> list[Member]:
        """Every known member (tombstones of dead and left ones included), sorted by id."""
        return sorted(self._table.by_id.values(), key=lambda m: m.node_id)

    def alive_members(self) -> list[Member]:
        return [m for m in self.members() if m.state is ALIVE]

    def pending_broadcasts(self) -> int:
        return len(self._queue)

    # ---------------------------------------------------------------- inputs

    def join(self, seeds: list[str]) -> list[Effect]:
        """Push-pull our state to each seed address (added to those given before); each is
        retried until it answers with its own state, while no seed has answered and, after
        that, until the gap between retries has grown to ``join_retry_ticks``.

        Also brings the periodic push-pull forward for a while: see below.

        Hearing from others is not enough: nodes that joined through us could
        form an island with us if our own join was lost. Nor is one seed's answer: two voters
        that `swarm recover` removed restarted together, each the other's seed, answered each
        other first, never reached the survivor, and elected a leader of the old configuration
        (the survivor's NotMember waited on its connection's 5 s reconnect backoff).

        The first retry comes after 2 ticks, doubling up to ``join_retry_ticks``: the shell's
        transport drops what is sent on a connection not made yet (ZMQ_IMMEDIATE), so the first
        push-pull to a seed is often lost, and a view that waited 5 s for the retry was still
        partial when a 3-node cluster's leader left 1.4 s after the third node joined: the two
        survivors knew no address of each other and never elected a leader."""
        new = [s for s in dict.fromkeys(seeds) if s != self.address and s not in self._seeds]
        if not new:
            return []
        self._seeds.update(dict.fromkeys(new))
        self._join_gap = min(2, self.config.join_retry_ticks)
        self._next_join = self._tick + self._join_gap
        # A young view is partial, and rumours it missed while it was forming have died out:
        # sync with random peers after 2, 4, 8, 16 s, then settle at the normal push-pull rate.
        self._push_pull_gap = min(self.config.early_push_pull_ticks, self.config.push_pull_interval_ticks)
        self._next_push_pull = self._tick + self._push_pull_gap
        out: list[Effect] = []
        for addr in new:
            self._send_state(addr, None, out, want_reply=True, join=True)
        return out

    def set_meta(self, meta: NodeMeta) -> list[Effect]:
        """Advertise new resources/images; a new incarnation makes the newer meta win."""
        meta = meta.capped()
        if meta == self.local.meta:
            return []
        self._table.set_local(replace(self.local, meta=meta, incarnation=self.incarnation + 1))
        self._enqueue_self()
        return []

    def set_address(self, address: str) -> list[Effect]:
        """This node now answers at ``address`` (its IP changed while it ran).

        A new incarnation carries the address, and every live member is told directly (a
        ``Gossip`` from us names our address as its sender's: each receiver switches to it on
        reading it, see ``_note_sender``), again every ``gossip_interval_ticks`` for
        ``announce_ticks``, as the shell's first sends on fresh connections may be dropped.
        A probe we had under way says nothing about its target: our acks went to an address
        that no longer exists here, so it is abandoned rather than turned into a suspicion."""
        if address == self.address or self._leaving:
            return []
        self._table.set_local(replace(self.local, address=address, incarnation=self.incarnation + 1))
        self._enqueue_self()
        self._probe = None
        self._announce_until = self._tick + self.config.announce_ticks
        out: list[Effect] = []
        self._announce(out)
        return out

    def _announce(self, out: list[Effect]) -> None:
        update = self.local.as_update()
        for node_id in list(self._table.live.items):
            m = self._table.by_id[node_id]
            out.append(Send(m.address, Gossip(self.node_id, self.address, (update,)), node_id, urgent=True))

    def leave(self) -> list[Effect]:
        """Graceful leave: others mark us ``left`` (no suspicion, no grace period to wait out).

        The shell should keep ticking for a few gossip intervals so the news spreads."""
        out: list[Effect] = []
        if self._leaving:
            return out
        self._leaving = True
        local = replace(self.local, incarnation=self.incarnation + 1, state=LEFT)
        self._table.set_local(local)
        update = local.as_update(with_meta=False)
        self._queue.enqueue(update)
        for node_id in self._table.live.sample(self._rng, self.config.gossip_nodes):
            m = self._table.by_id[node_id]
            out.append(Send(m.address, Gossip(self.node_id, self.address, (update,)), node_id, urgent=True))
        return out

    def forget(self, node_id: str) -> bool:
        """Drop a dead or left member's record now (`swarm forget`), rather than at the reap; True
        if it was dropped. An alive or suspect member is kept: only a node that is gone can be
        forgotten. Nothing is sent: every node forgets it when it applies the same command, and a
        peer's full state naming it is not an alive claim, so it cannot bring it back. The node
        itself can, by coming back alive (an alive claim of an unknown node is taken in)."""
        m = self._table.get(node_id)
        if m is None or node_id == self.node_id or m.state is ALIVE or m.state is SUSPECT:
            return False
        self._drop(node_id)
        return True

    def _drop(self, node_id: str) -> None:
        """Remove a member's record and everything this node keeps about it (`swarm forget`, the reap)."""
        self._table.remove(node_id)
        self._dead.pop(node_id, None)
        self._suspicions.pop(node_id, None)
        self._heard.pop(node_id, None)

    def heard(self, node_id: str) -> None:
        """``node_id`` answered a message of this node, through any layer (the shell calls this
        for answers to its Raft and lease messages; ``step`` notes acks itself): it is alive and
        reachable both ways now, as an ack says. Its probe, due or awaiting its ack, is spared
        (``_advance_probe``)."""
        if node_id in self._table.by_id and node_id != self.node_id:
            self._heard[node_id] = self._tick

    def tick(self, behind: int = 0) -> list[Effect]:
        """Advance one tick: probes, suspicion timeouts, gossip, push-pull, reconnects.

        ``behind``: this tick runs late, in a row with that many more (the daemon's clock runs
        the ticks it let slip in one wake-up). A probe sent now leaves when the last of them has
        run, so its ack timeout counts from that tick: counted from this one, it would pass
        within the same wake-up, before any ack could be read, and send needless indirect
        probes to three peers."""
        self._tick += 1
        t = self._tick
        c = self.config
        out: list[Effect] = []
        if self._stepping_aside:
            return out  # a copy that steps aside sends nothing more in the node's name (the shell stops it)
        if self._twin_checks:
            for address, (expiry, tries) in list(self._twin_checks.items()):
                if expiry > t:
                    continue
                if tries:
                    self._send_twin_check(address, tries - 1, out)
                else:
                    del self._twin_checks[address]  # nobody there: a past run of ours, long gone
        if not self._settled:  # a check under way is waited for (3 tries: under a second) in any case
            self._settled = not self._twin_checks and (self._full_state_seen or t >= c.settle_max_ticks)
        if not self._leaving:
            for node_id, deadline in list(self._suspicions.items()):
                if deadline <= t:
                    self._declare_dead(node_id, out)
            self._advance_probe(out, behind)
            if t >= self._next_push_pull:
                self._push_pull_gap = min(c.push_pull_gap_ticks(self.num_live), self._push_pull_gap * 2)
                self._next_push_pull = t + self._push_pull_gap
                peer = self._table.live.sample(self._rng, 1)
                if peer:
                    m = self._table.by_id[peer[0]]
                    self._send_state(m.address, m.node_id, out, want_reply=True)
            if t >= self._next_reconnect:
                self._next_reconnect = t + c.reconnect_interval_ticks
                self._reconnect(out)
            if self._seeds and t >= self._next_join:
                if self._joined and self._join_gap >= c.join_retry_ticks:
                    self._seeds.clear()  # joined: one that never answered is a dead address
                else:
                    self._join_gap = min(2 * self._join_gap, c.join_retry_ticks)
                    self._next_join = t + self._join_gap
                    for addr in self._seeds:
                        self._send_state(addr, None, out, want_reply=True, join=True)
            if t % 100 == 0:
                self._reap()
        if t >= self._next_gossip:
            self._next_gossip = t + c.gossip_interval_ticks
            self._gossip(out)
            if t <= self._announce_until and not self._leaving:
                self._announce(out)
        return out

    def step(self, from_node_id: str | None, msg: GossipMessage) -> list[Effect]:
        """Handle one message. ``from_node_id`` is who the transport says sent it (or None)."""
        out: list[Effect] = []
        sender = msg.sender
        if self._stepping_aside:
            return out
        if isinstance(msg, TwinCheck):
            if (from_node_id is None or from_node_id == sender) and sender == self.node_id:
                self._twin_found(msg, out)
            return out  # one for another id: that node no longer runs at this address
        if sender == self.node_id or (from_node_id is not None and from_node_id != sender):
            self.counters["dropped_spoofed"] += 1
            return out
        self._note_sender(sender, msg.sender_addr, out, moved=not (isinstance(msg, PushPull) and msg.join))
        if isinstance(msg, Ack):
            self.heard(sender)  # an answer: the way there and back works (a ping proves only one)
        if isinstance(msg, PushPull):
            self.counters["push_pulls"] += 1
            if not msg.want_reply and msg.sender_addr in self._seeds:
                self._joined = True  # only a seed's full state proves we reached the cluster
                del self._seeds[msg.sender_addr]
            by_id, me = self._table.by_id, self.node_id
            for u in msg.states:
                # what ``MemberTable.apply`` refuses first, without the calls: most of a full
                # state is alive records we hold already (a 1,000-node join merges millions)
                m = by_id.get(u.node_id)
                if m is not None and u.state is ALIVE and u.incarnation <= m.incarnation and u.node_id != me:
                    continue
                self._merge(u, out, from_full_state=True)
            self._full_state_seen = True
            if msg.want_reply:
                self._send_state(msg.sender_addr, sender, out, want_reply=False)
            return out
        by_id, me = self._table.by_id, self.node_id
        for u in msg.updates:
            m = by_id.get(u.node_id)  # the stale-alive shortcut, as for full states above
            if m is not None and u.state is ALIVE and u.incarnation <= m.incarnation and u.node_id != me:
                continue
            self._merge(u, out)
        if self._leaving:
            return out
        if isinstance(msg, Ping):
            if msg.target_id != self.node_id:
                self.counters["dropped_wrong_target"] += 1
            else:
                out.append(Send(msg.sender_addr, Ack(self.node_id, self.address, msg.seq, self._piggyback()), sender))
        elif isinstance(msg, Ack):
            probe = self._probe
            if probe is not None and probe.seq == msg.seq:
                probe.acked = True
            fwd = self._forwards.pop(msg.seq, None)
            if fwd is not None:
                out.append(Send(fwd[0], Ack(self.node_id, self.address, fwd[1], self._piggyback())))
        elif isinstance(msg, PingReq):
            self._seq += 1
            self._forwards[self._seq] = (msg.sender_addr, msg.seq, self._tick + self.config.probe_interval_ticks)
            ping = Ping(self.node_id, self.address, self._seq, msg.target_id, self._piggyback())
            out.append(Send(msg.target_addr, ping, msg.target_id))
        return out

    # ---------------------------------------------------------------- probing

    def _advance_probe(self, out: list[Effect], behind: int) -> None:
        c = self.config
        t = self._tick
        probe = self._probe
        if probe is not None and not probe.acked and self._heard.get(probe.target_id, -1) >= probe.sent_tick:
            probe.acked = True  # its target answered since the ping left: no ping-req, no suspicion
        if probe is not None and not probe.acked:
            waited = t - probe.sent_tick  # negative while the ticks before its sending run
            if waited == c.probe_timeout_ticks:
                self.counters["indirect_probes"] += 1
                for node_id in self._table.live.sample(self._rng, c.indirect_checks, exclude=probe.target_id):
                    m = self._table.by_id[node_id]
                    req = PingReq(
                        self.node_id, self.address, probe.seq, probe.target_id, probe.target_addr, self._piggyback()
                    )
                    out.append(Send(m.address, req, node_id))
            elif waited >= c.probe_interval_ticks:
                self._probe = None
                target = self._table.get(probe.target_id)
                if target is not None and target.state is ALIVE and target.incarnation == probe.incarnation:
                    self._suspect(target, out)
        if t >= self._next_probe:
            sent = t + behind  # the tick it leaves at, and the next one's interval counts from
            self._next_probe = sent + c.probe_interval_ticks
            if self._probe is not None and not self._probe.acked:
                return  # the previous probe ends at this very tick above; never overlap
            target = self._next_probe_target()
            if target is None:
                self._probe = None
                return
            spare = c.probe_interval_ticks // 2
            if t - self._heard.get(target.node_id, -spare) < spare:
                # answered within half an interval: as fresh a sign of life as an ack; its turn is taken
                self._probe = None
                self.counters["probes_spared"] += 1
                return
            self._seq += 1
            self.counters["probes"] += 1
            self._probe = _Probe(target.node_id, target.address, target.incarnation, self._seq, sent)
            out.append(
                Send(
                    target.address,
                    Ping(self.node_id, self.address, self._seq, target.node_id, self._piggyback()),
                    target.node_id,
                )
            )

    def _next_probe_target(self) -> Member | None:
        for _ in range(2):
            while self._probe_order:
                m = self._table.get(self._probe_order.pop())
                if m is not None and (m.state is ALIVE or m.state is SUSPECT):
                    return m
            self._probe_order = list(self._table.live.items)
            self._rng.shuffle(self._probe_order)
        return None

    def _suspect(self, m: Member, out: list[Effect]) -> None:
        self.counters["suspected"] += 1
        update = MemberUpdate(m.node_id, m.address, m.incarnation, SUSPECT)
        self._merge(update, out)
        # Tell the suspect straight away: it refutes faster than the rumour reaches it.
        out.append(Send(m.address, Gossip(self.node_id, self.address, (update,)), m.node_id, urgent=True))

    def _declare_dead(self, node_id: str, out: list[Effect]) -> None:
        self._suspicions.pop(node_id, None)
        m = self._table.get(node_id)
        if m is None or m.state is not SUSPECT:
            return
        self.counters["declared_dead"] += 1
        self._merge(MemberUpdate(node_id, m.address, m.incarnation, DEAD), out)

    # ---------------------------------------------------------------- dissemination

    def _merge(self, u: MemberUpdate, out: list[Effect], *, from_full_state: bool = False) -> None:
        if u.node_id == self.node_id:
            self._maybe_refute(u, out)
            return
        if from_full_state and u.state is DEAD:
            u = replace(u, state=SUSPECT)  # a peer's stale "dead" must not kill without our own timeout
        result = self._table.apply(u, self._tick)
        if result is False:
            return
        m = self._table.by_id[u.node_id]
        if m.state is SUSPECT:
            if u.node_id not in self._suspicions:
                self._suspicions[u.node_id] = self._tick + self.config.suspicion_timeout_ticks(self.num_live)
        else:
            self._suspicions.pop(u.node_id, None)
        if m.state is DEAD:
            self._dead[u.node_id] = self._tick
        else:
            self._dead.pop(u.node_id, None)
        if m.state is ALIVE:
            self._queue.enqueue(*self._table.record(m))
        else:
            self._queue.enqueue(m.as_update(with_meta=False))
        if result is not None:
            out.append(result)
        if m.state is ALIVE:
            self._retarget_probe(m.node_id, m.address, out)

    def _maybe_refute(self, u: MemberUpdate, out: list[Effect]) -> None:
        local = self.local
        if self._leaving or self._stepping_aside or u.incarnation < local.incarnation:
            return
        if u.address != local.address:
            self._check_twin(u.address, out)
        if (
            u.state is ALIVE
            and u.incarnation == local.incarnation
            and u.address == local.address
            and (u.meta is None or u.meta == local.meta)
        ):
            return
        self.counters["refuted"] += 1
        self._table.set_local(replace(local, incarnation=u.incarnation + 1))
        self._enqueue_self()

    def _check_twin(self, address: str, out: list[Effect]) -> None:
        """A peer says this node runs at ``address``, where it does not (at an incarnation ours
        has not passed): a past run of this node that was there (restarted on a new address), or
        another machine running now with a copy of this state directory, whose claims and ours
        would otherwise refute each other for ever while both count as one Raft voter. Ask there
        (``TWIN_CHECK_TRIES`` times while no answer comes): a copy answers
        (``_twin_found``, at both ends); a past run is gone, and whoever holds the address now
        ignores a check for another id."""
        if address in self._twin_checks or self._leaving:
            return
        self.counters["twin_checks"] += 1
        self._send_twin_check(address, TWIN_CHECK_TRIES - 1, out)

    def _send_twin_check(self, address: str, tries_left: int, out: list[Effect]) -> None:
        """Asked again 2 ticks later (the shell drops what it sends on a connection not made yet,
        as the first message to a new address often is; the join's retries wait as long), and
        after the last a probe timeout for the answer: 0.9 s on a LAN, 0.6 s with local timings,
        which a node restarted on a new address waits before it takes part."""
        wait = TWIN_RETRY_TICKS if tries_left else self.config.probe_timeout_ticks
        self._twin_checks[address] = (self._tick + wait, tries_left)
        age = self._tick * self.config.tick_ms
        out.append(Send(address, TwinCheck(self.node_id, self.address, age, self.incarnation), urgent=True))

    def _twin_found(self, msg: TwinCheck, out: list[Effect]) -> None:
        """A process at ``msg.sender_addr`` signed a check with our id: it runs this node too."""
        if msg.sender_addr == self.address:
            return  # our own check, come back by another way
        self._twin_checks.pop(msg.sender_addr, None)
        ours = self._tick * self.config.tick_ms
        if abs(ours - msg.age_ms) < TWIN_AGE_MARGIN_MS:
            step_aside = self.address > msg.sender_addr
        else:
            step_aside = ours < msg.age_ms
        self.counters["twins_found"] += 1
        if msg.reply:
            reply = TwinCheck(self.node_id, self.address, ours, self.incarnation, reply=False)
            out.append(Send(msg.sender_addr, reply, urgent=True))
        if step_aside:
            self._stepping_aside = True  # and refutes no more (``_maybe_refute``)
            self._settled = False
        else:  # the members that last heard the copy have us there: tell them all where we are
            local = self.local
            self._table.set_local(replace(local, incarnation=max(local.incarnation, msg.incarnation) + 1))
            self._enqueue_self()
            self._announce_until = self._tick + self.config.announce_ticks
            self._announce(out)
        out.append(TwinFound(msg.sender_addr, ours, msg.age_ms, step_aside))

    def _enqueue_self(self) -> None:
        self._queue.enqueue(*self._table.record(self.local))

    def _note_sender(self, sender: str, address: str, out: list[Effect], *, moved: bool = True) -> None:
        """Learn a live member's new address; tell a node we hold as not alive what we think.

        A join is no such evidence (``moved`` False): a node joins as it starts, and one that
        starts at another address than we have it at is a past run of it come back there, which
        learns where we had it from our answer and refutes it with its new address, or a copy of
        a running node, which must learn where the other runs: it checks there (``_check_twin``)
        before it takes part. Taken as a move, our answer named its own address back to it."""
        updated = self._table.set_address(sender, address) if moved else None
        if updated is not None:
            out.append(updated)
            self._retarget_probe(sender, address, out)
        m = self._table.get(sender)
        if m is not None and m.state is not ALIVE and not self._leaving:
            # With our own record: it may hold us as not alive too, and answer each claim with
            # its own. Without ours, each learnt only the other's claim, never its refutation
            # (gossip goes to live members), and the two claims bounced for ever, each new
            # message of one to the other starting another chain (whole-cluster simulator,
            # seed 1635 with holds: 12,000 messages in flight between two nodes, and growing).
            claim = m.as_update(with_meta=False)
            own = self._table.record(self.local)[0]
            out.append(Send(address, Gossip(self.node_id, self.address, (claim, own)), sender, urgent=True))

    def _retarget_probe(self, node_id: str, address: str, out: list[Effect]) -> None:
        """The node we are probing moved: its ack to the ping at the old address may never come,
        so ping it again at the new one (the probe's deadlines stay as they were)."""
        probe = self._probe
        if probe is None or probe.acked or probe.target_id != node_id or probe.target_addr == address:
            return
        probe.target_addr = address
        out.append(Send(address, Ping(self.node_id, self.address, probe.seq, node_id, self._piggyback()), node_id))

    def _piggyback(self) -> tuple[MemberUpdate, ...]:
        c = self.config
        return self._queue.take(c.retransmit_limit(self.num_live), c.max_piggyback, c.max_message_bytes)

    def _gossip(self, out: list[Effect]) -> None:
        if not len(self._queue):
            return
        c = self.config
        targets = self._table.live.sample(self._rng, c.gossip_nodes)
        if self._dead and (len(targets) < c.gossip_nodes or self._rng.random() < 0.1):
            recent = [i for i, since in self._dead.items() if self._tick - since < c.gossip_to_the_dead_ticks]
            if recent:
                targets.append(self._rng.choice(sorted(recent)))
        for node_id in targets:
            updates = self._piggyback()
            if not updates:
                break
            m = self._table.by_id[node_id]
            out.append(Send(m.address, Gossip(self.node_id, self.address, updates), node_id))

    def _send_state(
        self, address: str, node_id: str | None, out: list[Effect], *, want_reply: bool, join: bool = False
    ) -> None:
        """A full state in chunks of at most ``max_push_pull_bytes`` (estimated)."""
        limit = self.config.max_push_pull_bytes
        chunk: list[MemberUpdate] = []
        used = 0
        first = True
        table, local = self._table, self.local
        records = [table.record(local)]
        records += [table.record(m) for m in table.by_id.values() if m is not local]
        for u, size in records:
            if chunk and used + size > limit:
                out.append(
                    Send(
                        address, PushPull(self.node_id, self.address, tuple(chunk), want_reply and first, join), node_id
                    )
                )
                first, chunk, used = False, [], 0
            chunk.append(u)
            used += size
        out.append(
            Send(address, PushPull(self.node_id, self.address, tuple(chunk), want_reply and first, join), node_id)
        )

    def _reconnect(self, out: list[Effect]) -> None:
        c = self.config
        dead = sorted(i for i, since in self._dead.items() if self._tick - since < c.reconnect_timeout_ticks)
        if dead:
            m = self._table.by_id[self._rng.choice(dead)]
            self._send_state(m.address, m.node_id, out, want_reply=True)

    def _reap(self) -> None:
        t = self._tick
        for seq, (_, _, expiry) in list(self._forwards.items()):
            if expiry <= t:
                del self._forwards[seq]
        reap = self.config.reap_ticks
        for m in list(self._table.by_id.values()):
            if (m.state is DEAD or m.state is LEFT) and t - m.state_changed_tick >= reap:
                self._drop(m.node_id)
