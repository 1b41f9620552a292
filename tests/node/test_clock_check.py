"""A node tells how far its wall clock is off the leader's once it is over a minute, without a
round of gossip for every millisecond of jitter; `swarm status` says it in one line."""

from __future__ import annotations

from swarmcompute.cli.format import clock_lines, nodes_table
from swarmcompute.node.clock_check import RETELL_S, clock_off_to_tell
from swarmcompute.state.table import NODE_CLOCK_TRUSTED_S


def test_within_a_minute_of_the_leader_a_node_tells_nothing() -> None:
    assert clock_off_to_tell(None, 0) == 0  # no grant yet: nothing known
    assert clock_off_to_tell(0.004, 0) == 0
    assert clock_off_to_tell(-NODE_CLOCK_TRUSTED_S, 0) == 0
    assert clock_off_to_tell(3600.0, 3600) == 3600 and clock_off_to_tell(None, 3600) == 3600


def test_over_a_minute_off_it_tells_the_offset_again_only_once_it_moved_half_a_minute() -> None:
    told = clock_off_to_tell(3600.4, 0)
    assert told == 3600
    assert clock_off_to_tell(3600.6, told) == told  # the delay's jitter: nothing new to gossip
    assert clock_off_to_tell(3600.0 + RETELL_S - 1, told) == told
    assert clock_off_to_tell(3600.0 + RETELL_S, told) == 3600 + RETELL_S  # someone set its clock
    assert clock_off_to_tell(-8 * 86400.2, told) == -691202
    assert clock_off_to_tell(12.0, told) == 0  # back within the minute: said once


def test_status_says_which_clocks_are_off_and_what_to_do() -> None:
    nodes = [
        {"name": "n0", "id": "a", "clock_off_s": 0},
        {"name": "pi", "id": "b", "clock_off_s": 3600},
        {"name": "", "id": "c", "clock_off_s": -691200},
        {"name": "old", "id": "d"},  # from a version that does not say
    ]
    assert clock_lines(nodes) == [
        "clock    pi's clock is 60.0m ahead of the leader's: set its time (NTP); jobs' times are kept on the leader's",
        "clock    c's clock is 8.0d behind the leader's: set its time (NTP); jobs' times are kept on the leader's",
    ]


def test_swarm_nodes_marks_the_node_in_its_state_column() -> None:
    row = {
        "name": "pi", "id": "b", "role": "follower", "state": "alive", "cpus": 4, "mem_available": 0,
        "mem_total": 0, "running_jobs": 0, "clock_off_s": -691200,
    }  # fmt: skip
    assert "alive (clock 8.0d behind)" in nodes_table([row])
