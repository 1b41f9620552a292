"""Record files (the Raft log, snapshots) from damaged disks: recovered records are exactly
records that were written, and corruption is a ``CorruptRecordError`` naming the file and the
byte offset, never another exception."""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from swarmcompute.errors import CorruptRecordError
from swarmcompute.storage.records import MAGIC, RecordFile, encode_record, scan

from .strategies import mutated

PAYLOADS = st.lists(st.binary(max_size=40), min_size=1, max_size=6)
DIR = Path(tempfile.mkdtemp(prefix="swarm-records-fuzz-"))
atexit.register(shutil.rmtree, DIR, True)  # at the worker's exit: tests of this module may run until then


def _file(payloads: list[bytes]) -> bytes:
    return b"".join(encode_record(p) for p in payloads)


@given(PAYLOADS.flatmap(lambda ps: st.tuples(st.just(ps), mutated(_file(ps)))))
def test_scan_of_damaged_records(case: tuple[list[bytes], bytes]) -> None:
    written, data = case
    try:
        records, clean = scan(data)
    except CorruptRecordError as exc:
        assert re.search(r"record at byte \d+", str(exc))
        return
    assert 0 <= clean <= len(data)
    for record in records:  # a flip that keeps the CRC right is 1 in 2**32: never in practice
        assert record in written or len(records) <= len(written)


@given(st.one_of(st.binary(max_size=200), PAYLOADS.flatmap(lambda ps: mutated(MAGIC + _file(ps)))))
def test_opening_a_damaged_file(data: bytes) -> None:
    path = DIR / "log"
    path.write_bytes(data)
    try:
        file, recovery = RecordFile.open(path)
    except CorruptRecordError as exc:
        assert str(path) in str(exc)
        return
    file.close()
    assert path.read_bytes().startswith(MAGIC) or path.stat().st_size == 0
    assert isinstance(recovery.records, list)
