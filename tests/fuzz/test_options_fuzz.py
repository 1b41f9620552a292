"""The `swarm run` parser and the Client's options against any input: a bad one is exit 2 with
one line (the CLI) or a ``SwarmError`` (the Client); a good one is a spec the daemon's own
check accepts, so the three agree."""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import shutil
import tempfile
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from swarmcompute import codec
from swarmcompute.api import lean
from swarmcompute.cli import run_cmd
from swarmcompute.client import Client, job_spec
from swarmcompute.errors import SwarmError
from swarmcompute.state.job import JobSpec
from swarmcompute.state.table import validate_batch, validate_spec

_EMPTY = tempfile.mkdtemp(prefix="swarm-fuzz-")
atexit.register(shutil.rmtree, _EMPTY, True)  # at the worker's exit: tests of this module may run until then
NO_DAEMON = os.path.join(_EMPTY, "none")
OPTIONS = [o for o in run_cmd._OPTIONS if o != "--state-dir"]
NUMBERS = st.sampled_from(
    ["nan", "inf", "-inf", "1e999", "-1", "0", "1.5", "18446744073709551616", "9" * 5000, "1_0", " 3", "0x10", ""]
)
VALUES = st.one_of(
    NUMBERS, st.text(max_size=12), st.sampled_from(["é1", "ＡＢＣ", "a\nb", "\x1b[31m", "K=V", "=", "..", "30s"])
)


@st.composite
def run_args(draw: st.DrawFn) -> list[str]:
    args: list[str] = []
    for _ in range(draw(st.integers(0, 5))):
        option = draw(st.sampled_from([*OPTIONS, "--bogus", "-x"]))
        if run_cmd._OPTIONS.get(option, ("", True, False))[1]:
            value = draw(VALUES)
            args += [f"{option}={value}"] if draw(st.booleans()) else [option, value]
        else:
            args.append(option)
    if draw(st.booleans()):
        args.append("--")
    args += draw(st.lists(st.text(max_size=8), max_size=3))
    return args


@given(run_args())
def test_swarm_run_exits_2_with_one_line_or_builds_a_spec_the_daemon_accepts(args: list[str]) -> None:
    err, out = io.StringIO(), io.StringIO()
    old = os.environ.get("SWARM_STATE_DIR")
    os.environ["SWARM_STATE_DIR"] = NO_DAEMON
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = run_cmd.main(args)
    finally:
        if old is None:
            del os.environ["SWARM_STATE_DIR"]
        else:
            os.environ["SWARM_STATE_DIR"] = old
    if code == 0:
        assert out.getvalue().startswith("Usage: swarm run")
        return
    assert code == 2
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("swarm"), lines
    assert lines[0].isprintable()
    if "no swarm daemon" in lines[0]:  # it parsed: the spec it would send passes the daemon's check
        parsed = run_cmd.parse(args)
        assert parsed is not None
        fields = dict(zip(lean.SPEC_FIELDS, lean.spec_fields(run_cmd._spec(parsed)), strict=True))
        spec = codec.build("job.spec", [fields[name] for name in lean.SPEC_FIELDS])
        validate_spec(spec)


PYTHON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
    st.binary(max_size=4),
    st.lists(st.one_of(st.text(max_size=4), st.integers()), max_size=3),
    st.dictionaries(st.text(max_size=4), st.one_of(st.text(max_size=4), st.integers()), max_size=2),
    st.sampled_from(["é1", "ＡＢＣ", "30s", "2G", "keep", "stop", "a\0b", "x" * 70, object()]),
)
OPTION_NAMES = st.sampled_from(sorted(run_cmd._OPTIONS.keys() - {"-d", "-e", "--state-dir"}) + ["bogus"])
CLIENT_OPTIONS = [
    "name", "env", "cwd", "timeout", "retries", "priority", "cpus", "mem", "gpus",
    "after", "after_any", "node", "image", "on_disconnect", "keep_on_exit", "job_id",
]  # fmt: skip


@given(
    st.one_of(st.text(max_size=8), st.lists(st.one_of(st.text(max_size=6), st.integers()), max_size=3), PYTHON_VALUES),
    st.dictionaries(st.sampled_from([*CLIENT_OPTIONS, "bogus"]), PYTHON_VALUES, max_size=5),
)
def test_client_options_give_a_valid_spec_or_a_swarm_error(argv: Any, options: dict[str, Any]) -> None:
    try:
        spec = job_spec(argv, **options)
    except SwarmError as exc:
        assert str(exc).isprintable() and len(str(exc)) < 300
        return
    assert isinstance(spec, JobSpec)
    validate_spec(spec)
    validate_batch([spec])
    assert codec.decode(codec.encode(spec)) == spec


@given(st.lists(st.dictionaries(st.sampled_from(["argv", *CLIENT_OPTIONS]), PYTHON_VALUES, max_size=4), max_size=3))
def test_client_submit_many_raises_only_swarm_errors(specs: list[dict[str, Any]]) -> None:
    try:
        Client(NO_DAEMON).submit_many(specs)
    except SwarmError:
        pass


@given(PYTHON_VALUES, PYTHON_VALUES)
def test_client_reads_raise_only_swarm_errors(a: Any, b: Any) -> None:
    client = Client(NO_DAEMON)
    for call in (
        lambda: client.jobs(a, b),
        lambda: client.job(a),
        lambda: client.wait(a, timeout=b),
        lambda: client.logs(a, attempt=b),
        lambda: client.cancel(a),
        lambda: Client(a, timeout_s=b),
    ):
        try:
            call()
        except SwarmError:
            pass
