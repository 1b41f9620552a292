"""API tokens as replicated state: created and revoked only by committed commands, kept by snapshots."""

from __future__ import annotations

from swarmcompute import codec
from swarmcompute.state.api_tokens import ApiToken, CreateApiToken, RevokeApiToken
from swarmcompute.state.commands import CommandBatch
from swarmcompute.state.snapshot import restore_table, snapshot_table
from swarmcompute.state.table import JobTable


def _token(name: str, digest: str = "", read_only: bool = False) -> ApiToken:
    return ApiToken(name, digest or f"d-{name}", read_only, 1000, "alice", 10.0, None)


def test_a_created_token_is_found_by_name_and_digest_and_a_second_create_of_its_name_is_a_no_op() -> None:
    table = JobTable()
    table.apply(CreateApiToken(_token("ci")))
    table.apply(CreateApiToken(_token("ci", digest="other")))
    assert table.api_tokens.get("ci") == _token("ci")
    assert table.api_tokens.by_digest("d-ci") == _token("ci")
    assert table.api_tokens.by_digest("other") is None
    assert len(table.api_tokens) == 1


def test_revoking_a_token_forgets_its_digest_and_revoking_an_unknown_name_changes_nothing() -> None:
    table = JobTable()
    table.apply(CreateApiToken(_token("ci")))
    table.apply(RevokeApiToken("nope", 11.0))
    assert len(table.api_tokens) == 1
    table.apply(RevokeApiToken("ci", 12.0))
    assert table.api_tokens.get("ci") is None and table.api_tokens.by_digest("d-ci") is None


def test_a_snapshot_keeps_the_tokens_and_a_restore_drops_tokens_it_does_not_hold() -> None:
    table = JobTable()
    table.apply(CreateApiToken(_token("ci", read_only=True)))
    data = snapshot_table(table)
    other = JobTable()
    other.apply(CreateApiToken(_token("stale")))
    restore_table(data, into=other)
    assert [t.name for t in other.api_tokens] == ["ci"]
    assert other.api_tokens.get("ci") == _token("ci", read_only=True)


def test_token_commands_travel_in_a_raft_entry_unchanged() -> None:
    batch = CommandBatch((CreateApiToken(_token("ci")), RevokeApiToken("ci", 3.0)))
    assert codec.decode(codec.encode(batch)) == batch
