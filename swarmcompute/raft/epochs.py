"""Configuration epochs in terms: ``term = epoch * EPOCH_STRIDE + n`` (see ``raft.messages``).

A module of its own, importing nothing, so `swarm status` can show a term's epoch without
importing the Raft messages and the codec (about 50 ms of a fresh process)."""

from __future__ import annotations

EPOCH_STRIDE = 1_000_000_000
"""Terms per configuration epoch: a billion elections (decades at one a second) before a term
could reach the next epoch, which only ``force_config`` may enter."""


def epoch_of(term: int) -> int:
    """The configuration epoch a term belongs to."""
    return term // EPOCH_STRIDE


def first_term_of(epoch: int) -> int:
    return epoch * EPOCH_STRIDE


def term_in_epoch(term: int) -> int:
    """The term counted within its epoch (what `swarm status` shows next to the epoch)."""
    return term % EPOCH_STRIDE
