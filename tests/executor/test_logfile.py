"""The log format, its bound and the follower-friendly reader (no processes involved)."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmcompute.errors import ExecutorError
from swarmcompute.executor import TAIL_BYTES
from swarmcompute.executor.logfile import (
    END,
    RECORD_BYTES,
    STDERR,
    STDOUT,
    TRUNCATED,
    LogFiles,
    LogWriter,
    log_state,
    read_chunks,
    read_streams,
    stream_paths,
    truncation_marker,
)


def test_chunks_round_trip_in_order_and_the_streams_are_plain_files(tmp_path: Path) -> None:
    path = tmp_path / "attempt-1.index"
    writer = LogWriter(path)
    writer.write(STDOUT, b"one")
    writer.write(STDERR, b"two")
    writer.write(STDOUT, b"")
    writer.write(STDOUT, b"three")
    assert log_state(path) == (3 * RECORD_BYTES, False)  # still being written: no end record
    writer.close()
    chunks, offset = read_chunks(path)
    assert chunks == [(STDOUT, b"one"), (STDERR, b"two"), (STDOUT, b"three"), (END, b"")]
    assert offset == path.stat().st_size == 4 * RECORD_BYTES
    assert log_state(path) == (offset, True)
    assert read_chunks(path, offset) == ([], offset)
    assert read_streams(path) == (b"onethree", b"two")
    out, err = stream_paths(path)
    assert (out.name, err.name) == ("attempt-1.stdout", "attempt-1.stderr")
    assert out.read_bytes() == b"onethree"  # what `cat` shows: the job's bytes, nothing else
    assert err.read_bytes() == b"two"
    assert writer.tail == b"onetwothree"


def test_a_partial_trailing_record_is_left_for_the_next_poll(tmp_path: Path) -> None:
    path = tmp_path / "a.index"
    writer = LogWriter(path)
    writer.write(STDOUT, b"complete")
    writer.write(STDERR, b"half-done!")
    whole = path.read_bytes()
    path.write_bytes(whole[: RECORD_BYTES + 5])  # the second record is being written
    chunks, offset = read_chunks(path)
    assert chunks == [(STDOUT, b"complete")]
    assert offset == RECORD_BYTES
    path.write_bytes(whole)
    chunks, offset2 = read_chunks(path, offset)
    assert chunks == [(STDERR, b"half-done!")]
    assert offset2 == 2 * RECORD_BYTES
    writer.close()


def test_read_limit_still_returns_a_large_first_chunk(tmp_path: Path) -> None:
    path = tmp_path / "a.index"
    writer = LogWriter(path)
    writer.write(STDOUT, b"x" * 1000)
    writer.write(STDOUT, b"y" * 10)
    writer.close()
    chunks, offset = read_chunks(path, limit_bytes=100)
    assert chunks == [(STDOUT, b"x" * 1000)]
    chunks, _ = read_chunks(path, offset, limit_bytes=100)
    assert chunks == [(STDOUT, b"y" * 10), (END, b"")]


def test_misaligned_offset_or_a_record_past_its_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "a.index"
    writer = LogWriter(path)
    writer.write(STDOUT, b"abcdefgh")
    writer.close()
    with pytest.raises(ExecutorError):
        read_chunks(path, 1)
    stream_paths(path)[0].write_bytes(b"abc")  # cut behind the index's back
    with pytest.raises(ExecutorError):
        read_chunks(path)


def test_bound_writes_up_to_the_limit_then_one_marker_frame_of_its_own_stream(tmp_path: Path) -> None:
    path = tmp_path / "a.index"
    writer = LogWriter(path, max_log_bytes=10)
    writer.write(STDOUT, b"123456")
    writer.write(STDERR, b"789abc")  # crosses the bound: 4 bytes kept
    writer.write(STDOUT, b"dropped")
    writer.note(b"[swarm: also dropped]\n")
    writer.close()
    writer.write(STDOUT, b"after close")
    chunks, _ = read_chunks(path)
    assert chunks == [
        (STDOUT, b"123456"),
        (STDERR, b"789a"),
        (TRUNCATED, truncation_marker(10)),
        (END, b""),
    ]
    assert stream_paths(path)[1].read_bytes() == b"789a" + truncation_marker(10)  # `cat` says it too
    assert read_streams(path) == (b"123456", b"789a" + truncation_marker(10))  # the marker reads as stderr
    assert truncation_marker(10) == (
        b"[swarm: output truncated after 10 bytes; the last 4 KiB are kept in the job record]\n"
    )
    assert writer.truncated
    assert writer.output_bytes == 6 + 6 + 7 + 11
    assert writer.tail == b"123456789abcdroppedafter close"


def test_tail_keeps_the_last_bytes(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path / "a.index")
    data = bytes(range(256)) * 100
    for i in range(0, len(data), 1000):
        writer.write(STDOUT, data[i : i + 1000])
    writer.close()
    assert writer.tail == data[-TAIL_BYTES:]


def test_the_file_and_its_directory_appear_with_the_first_write(tmp_path: Path) -> None:
    path = tmp_path / "job" / "attempt-1.index"
    silent = LogWriter(path)
    silent.close()
    assert not path.parent.exists()  # no output: no mkdir, no file
    assert read_streams(path) == (b"", b"")
    with pytest.raises(FileNotFoundError):  # "not here" stays distinguishable for callers
        read_chunks(path)

    writer = LogWriter(path)
    assert not path.parent.exists()
    writer.note(b"[swarm: a note opens it too]\n")
    writer.write(STDOUT, b"out")
    writer.close()
    assert read_streams(path) == (b"out", b"[swarm: a note opens it too]\n")


def test_a_log_that_cannot_be_created_keeps_the_tail(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_bytes(b"")
    writer = LogWriter(not_a_dir / "job" / "attempt-1.index")
    writer.write(STDOUT, b"first")  # the open fails here: logged, never raised
    writer.write(STDOUT, b" second")
    writer.note(b"[swarm: dropped]\n")
    writer.close()
    assert writer.tail == b"first second"
    assert writer.truncated and writer.closed
    assert writer.written_bytes == 0


def test_a_copy_picked_up_after_a_crash_drops_a_cut_record_and_appends_after_what_it_has(tmp_path: Path) -> None:
    path = tmp_path / "copy" / "attempt-1.index"
    files = LogFiles(path)
    files.append(STDOUT, b"first ")
    files.append(STDERR, b"warn\n")
    files.close()
    with open(path, "ab") as f:
        f.write(b"\x01\x05")  # a record cut by a crash
    with open(stream_paths(path)[0], "ab") as f:
        f.write(b"junk")  # bytes written before their record was
    resumed = LogFiles(path, resume=True)
    assert log_state(path) == (2 * RECORD_BYTES, False)
    resumed.append(STDOUT, b"second")
    resumed.append(END, b"")
    resumed.close()
    assert read_streams(path) == (b"first second", b"warn\n")
    assert log_state(path) == (4 * RECORD_BYTES, True)
