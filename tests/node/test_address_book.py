"""peers.json keeps only addresses gossip confirmed, at most 256, aged out after a week; mDNS ads
are only candidates to ask to join, bounded and asked a few at a time."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from swarmcompute.node.cluster import (
    JOIN_FANOUT,
    MAX_CANDIDATES,
    AddressBook,
    ClusterLink,
)
from swarmcompute.node.cluster_messages import JoinRequest
from swarmcompute.transport.keys import new_cluster_key


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_only_confirmed_addresses_reach_the_file(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    book = AddressBook(path)
    book.set("claimed", "10.0.0.1:7340")
    book.set("member", "10.0.0.2:7340", verified=True)
    book.save()
    assert set(json.loads(path.read_text())) == {"member"}
    assert book.get("claimed") == "10.0.0.1:7340"  # still usable in memory
    assert AddressBook(path).items() == {"member": "10.0.0.2:7340"}


def test_the_book_is_bounded_and_keeps_the_most_recently_confirmed(tmp_path: Path) -> None:
    clock = Clock()
    book = AddressBook(tmp_path / "peers.json", max_entries=4, max_unconfirmed=3, clock=clock)
    for i in range(10):
        clock.now += 1
        book.set(f"n{i}", f"10.0.0.{i}:7340", verified=True)
        book.set(f"c{i}", f"10.1.0.{i}:7340")
    assert sorted(book.items(confirmed_only=True)) == ["n6", "n7", "n8", "n9"]
    assert sorted(n for n in book.items() if n.startswith("c")) == ["c7", "c8", "c9"]
    book.save()
    assert sorted(json.loads((tmp_path / "peers.json").read_text())) == ["n6", "n7", "n8", "n9"]


def test_an_address_not_confirmed_for_a_week_ages_out(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "peers.json"
    book = AddressBook(path, clock=clock)
    book.set("old", "10.0.0.1:7340", verified=True)
    clock.now += 6 * 86400
    book.set("new", "10.0.0.2:7340", verified=True)
    book.save()
    clock.now += 2 * 86400
    assert AddressBook(path, clock=clock).items() == {"new": "10.0.0.2:7340"}


def test_an_old_style_file_is_read_as_claims_and_not_written_back(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    path.write_text(json.dumps({f"fake{i}": f"127.0.0.1:{40000 + i}" for i in range(2000)} | {"a": "10.0.0.1:7340"}))
    book = AddressBook(path)
    assert len(book.items()) == 256  # bounded as claims (the newest), usable to find the cluster
    book.set("a", "10.0.0.1:7340", verified=True)
    book.save()
    assert json.loads(path.read_text()).keys() == {"a"}


def test_a_save_that_cannot_write_is_retried_later_not_raised(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("")
    book = AddressBook(blocked / "peers.json")
    book.set("a", "10.0.0.1:7340", verified=True)
    book.save()  # ENOTDIR: logged, kept dirty
    assert book.get("a") == "10.0.0.1:7340"


def test_mdns_candidates_are_bounded_and_asked_a_few_at_a_time(tmp_path: Path) -> None:
    asyncio.run(_candidates(tmp_path))


async def _candidates(tmp_path: Path) -> None:
    link = ClusterLink(
        "me",
        "me",
        new_cluster_key(),
        bind="127.0.0.1",
        port=0,
        advertise_host="127.0.0.1",
        book_path=tmp_path / "peers.json",
    )
    await link.start()
    try:
        _check_candidates(link)
    finally:
        await link.close()


def _check_candidates(link: ClusterLink) -> None:
    for i in range(MAX_CANDIDATES + 10):
        link.candidate(f"127.0.0.1:{20000 + i}")
    assert len(link.candidates) == MAX_CANDIDATES  # the rest wait for the browser's next report
    assert link.book.items() == {}  # an ad never reaches the address book
    first = link._next_candidates()
    assert len(first) == JOIN_FANOUT
    second = link._next_candidates()
    assert second[:JOIN_FANOUT] == first and len(second) == 2 * JOIN_FANOUT  # asked again, then new ones
    request = JoinRequest("me", "me", link.address)
    link.candidates.clear()
    link.candidate("127.0.0.1:1")  # nothing listens there
    link._ask_candidates(request)
    assert link.candidates == {"127.0.0.1:1": 1}
    link._ask_candidates(request)  # still no connection when asked again: dropped
    assert link.candidates == {}
