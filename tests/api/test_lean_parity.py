"""The `swarm run` fast path must speak exactly the codec's frames."""

from __future__ import annotations

import dataclasses

from swarmcompute.api import lean
from swarmcompute.api import messages as m
from swarmcompute.api.lean_client import NO_SELECTION
from swarmcompute.api.protocol import frame
from swarmcompute.client import job_spec
from swarmcompute.state.job import JobSpec


def test_spec_fields_match_jobspec_declaration() -> None:
    assert lean.SPEC_FIELDS == tuple(f.name for f in dataclasses.fields(JobSpec))
    defaults = {
        f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
        for f in dataclasses.fields(JobSpec)
        if f.name not in ("id", "argv")
    }  # type: ignore[misc]
    assert {k: (list(v) if isinstance(v, tuple) else v) for k, v in defaults.items()} == lean.SPEC_DEFAULTS


def test_submit_frame_is_byte_identical() -> None:
    spec = job_spec(
        ["python", "train.py"], name="t", env={"A": "1"}, cwd="/tmp", timeout="30s", retries=2, job_id="abc"
    )
    values = {f.name: getattr(spec, f.name) for f in dataclasses.fields(JobSpec)}
    lean_values = {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()}
    for attach in (True, False):
        assert lean.submit_frame(lean_values, attach) == frame(m.Submit((spec,), attach=attach))


def test_cancel_frame_is_byte_identical() -> None:
    assert lean.request_frame("api.cancel", [["abc"], 0, 5000, "c1", *NO_SELECTION]) == frame(
        m.Cancel(("abc",), 0, 5000, "c1")
    )


def test_protocol_versions_agree() -> None:
    from swarmcompute import codec

    assert lean.PROTOCOL_VERSION == codec.PROTOCOL_VERSION
