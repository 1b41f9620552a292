"""The long fuzz run, outside the suite: millions of hostile inputs at full speed.

    .venv/bin/python tests/fuzz/long_run.py --per-target 200000 [--seed 1]

The same properties as the hypothesis tests beside it (``test_*_fuzz.py``), with inputs drawn
from a seeded ``random.Random`` instead of hypothesis, which is ~100 times slower per input.
Prints the count and time per target; any property failure raises with the seed and the input.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz.test_codec_fuzz import CORPUS, decoded_or_refused  # noqa: E402
from fuzz.test_peer_fuzz import PEER_COUNTED, TRANSPORT, received  # noqa: E402
from swarmcompute import codec  # noqa: E402
from swarmcompute.api import lean  # noqa: E402
from swarmcompute.api.server import read_message  # noqa: E402
from swarmcompute.cli import run_cmd  # noqa: E402
from swarmcompute.client import job_spec  # noqa: E402
from swarmcompute.errors import CorruptRecordError, ProtocolError, SwarmError  # noqa: E402
from swarmcompute.state.table import validate_spec  # noqa: E402
from swarmcompute.storage.records import encode_record, scan  # noqa: E402

TAGS = sorted(codec._BY_TAG)
EDGE_INTS = [0, 1, -1, 7, codec.MAX_COUNT, codec.MAX_COUNT + 1, codec.MAX_INT, codec.MAX_INT + 1, 2**63, 2**64 - 1]
EDGE_FLOATS = [0.0, 1.5, -2.5, float("nan"), float("inf"), -float("inf"), 1e308]
TEXTS = ["", "x", "a1", "é1", "ＡＢＣ", "a\nb", "\x1b[2J", "..", "stop", "keep", "running", "n1", "30s", "2G"]


def rand_value(rng: random.Random, depth: int = 0) -> Any:
    r = rng.random()
    if r < 0.12:
        value = rng.choice(EDGE_INTS)
        return -value if value <= 2**63 and rng.random() < 0.3 else value
    if r < 0.2:
        return rng.randrange(-(2**63), 2**64)
    if r < 0.28:
        return rng.choice(EDGE_FLOATS)
    if r < 0.45:
        return rng.choice(TEXTS)
    if r < 0.5:
        return rng.randbytes(rng.randrange(8))
    if r < 0.58:
        return rng.choice([None, True, False])
    if depth > 3:
        return None
    if r < 0.75:
        return [rand_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    if r < 0.82:
        return {rng.choice(TEXTS): rand_value(rng, depth + 1) for _ in range(rng.randrange(3))}
    if r < 0.97:
        return msgpack.ExtType(1, msgpack.packb([rng.choice(TAGS), rand_fields(rng, depth + 1)]))
    return msgpack.ExtType(rng.randrange(128), rng.randbytes(rng.randrange(6)))


def rand_fields(rng: random.Random, depth: int = 0, tag: str | None = None) -> list[Any]:
    width = len(codec._fields_of(codec._BY_TAG[tag])) if tag else rng.randrange(8)
    width = max(0, width + rng.choice([0, 0, 0, 0, -1, 1]))
    return [rand_value(rng, depth) for _ in range(width)]


def rand_frame(rng: random.Random) -> bytes:
    tag = rng.choice(TAGS)
    return msgpack.packb([1 if rng.random() < 0.9 else rand_value(rng), tag, rand_fields(rng, 0, tag)])


def mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randrange(1, 5)):
        if not out:
            break
        i = rng.randrange(len(out))
        kind = rng.randrange(4)
        if kind == 0:
            out[i] ^= 1 << rng.randrange(8)
        elif kind == 1:
            del out[i : i + rng.randrange(1, 9)]
        elif kind == 2:
            out[i:i] = rng.randbytes(rng.randrange(1, 9))
        else:
            out[i] = rng.choice([0x00, 0x7F, 0xC1, 0xCF, 0xD3, 0xDC, 0xDD, 0xDF, 0xC7, 0xFF])
    return bytes(out)


def codec_input(rng: random.Random) -> None:
    r = rng.random()
    data = (
        rng.randbytes(rng.randrange(256))
        if r < 0.2
        else rand_frame(rng)
        if r < 0.7
        else mutate(rng, rng.choice(CORPUS))
    )
    decoded_or_refused(data)


LOOP = asyncio.new_event_loop()


def control_input(rng: random.Random) -> None:
    chunks = []
    for _ in range(rng.randrange(1, 4)):
        body = rand_frame(rng) if rng.random() < 0.6 else mutate(rng, rng.choice(CORPUS))
        chunks.append(len(body).to_bytes(4, "big") + body if rng.random() < 0.9 else body)

    async def go() -> None:
        reader = asyncio.StreamReader(limit=2**20)
        reader.feed_data(b"".join(chunks))
        reader.feed_eof()
        try:
            while await read_message(reader) is not None:
                pass
        except ProtocolError:
            pass

    LOOP.run_until_complete(go())


def peer_input(rng: random.Random) -> None:
    received.clear()
    sender = b"n2" if rng.random() < 0.8 else rng.randbytes(rng.randrange(300))
    data = rand_frame(rng) if rng.random() < 0.8 else mutate(rng, rng.choice(CORPUS))
    frames = [b"rid", sender, data] if rng.random() < 0.95 else [rng.randbytes(4) for _ in range(rng.randrange(5))]
    TRANSPORT._handle(frames)
    for _sender, msg in received:
        if not isinstance(msg, PEER_COUNTED):
            continue  # lease terms are only compared, never incremented: the plain int bound holds
        for name in ("term", "prev_index", "commit", "last_log_index", "incarnation"):
            value = getattr(msg, name, None)
            if isinstance(value, int):
                assert 0 <= value <= codec.MAX_COUNT, (name, value)


RECORDS = [b"".join(encode_record(p) for p in c) for c in ([b"a"], [b"hello", b""], [CORPUS[0], CORPUS[3]])]


def record_input(rng: random.Random) -> None:
    data = mutate(rng, rng.choice(RECORDS)) if rng.random() < 0.9 else rng.randbytes(rng.randrange(64))
    try:
        records, clean = scan(data)
    except CorruptRecordError as exc:
        assert "record at byte" in str(exc)
        return
    assert 0 <= clean <= len(data)


OPTIONS = [o for o in run_cmd._OPTIONS if o != "--state-dir"] + ["--bogus"]
VALUES = ["nan", "inf", "1e999", "-1", "0", "1.5", str(2**64), "9" * 5000, "", "30s", "2G", "K=V", *TEXTS]


def cli_input(rng: random.Random) -> None:
    args: list[str] = []
    for _ in range(rng.randrange(5)):
        option = rng.choice(OPTIONS)
        if run_cmd._OPTIONS.get(option, ("", True, False))[1]:
            value = rng.choice(VALUES) if rng.random() < 0.8 else rng.randbytes(6).decode("latin-1")
            args += [f"{option}={value}"] if rng.random() < 0.3 else [option, value]
        else:
            args.append(option)
    args += ["--", "true"] if rng.random() < 0.9 else []
    try:
        parsed = run_cmd.parse(args)
        if parsed is None:
            return
        spec = run_cmd._spec(parsed)
    except (run_cmd.UsageError, ValueError) as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 300
        return
    fields = dict(zip(lean.SPEC_FIELDS, lean.spec_fields(spec), strict=True))
    validate_spec(codec.build("job.spec", [fields[name] for name in lean.SPEC_FIELDS]))


CLIENT_OPTIONS = ["name", "env", "cwd", "timeout", "retries", "priority", "cpus", "mem", "gpus", "after", "after_any"]
CLIENT_OPTIONS += ["node", "image", "on_disconnect", "keep_on_exit", "job_id", "bogus"]


def client_input(rng: random.Random) -> None:
    argv = rng.choice([["true"], "echo hi", [], [""], rand_value(rng), ["a\0b"], [1, 2.5]])
    options = {rng.choice(CLIENT_OPTIONS): rand_value(rng) for _ in range(rng.randrange(4))}
    try:
        spec = job_spec(argv, **options)
    except SwarmError as exc:
        assert "\n" not in str(exc)
        return
    validate_spec(spec)
    assert codec.decode(codec.encode(spec)) == spec


TARGETS: dict[str, Callable[[random.Random], None]] = {
    "codec": codec_input,
    "control frames": control_input,
    "peer messages": peer_input,
    "record files": record_input,
    "swarm run parser": cli_input,
    "client options": client_input,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-target", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    import structlog

    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())  # the peer path's log lines
    total, started = 0, time.monotonic()
    for name, target in TARGETS.items():
        rng = random.Random(f"{args.seed}:{name}")
        t0 = time.monotonic()
        for i in range(args.per_target):
            state = rng.getstate()
            try:
                target(rng)
            except BaseException:
                rng.setstate(state)
                print(f"FAILED {name} input {i} (seed {args.seed}); replay with random.setstate", file=sys.stderr)
                raise
        total += args.per_target
        print(f"{name:18} {args.per_target:>9,} inputs  {time.monotonic() - t0:7.1f} s", flush=True)
    print(
        f"{'total':18} {total:>9,} inputs  {time.monotonic() - started:7.1f} s  (seed {args.seed}, pid {os.getpid()})"
    )


if __name__ == "__main__":
    main()
