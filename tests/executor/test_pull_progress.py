"""An image pull's progress, from the engine's own stream (recorded from dockerd 20+ pulling
three layers from a local registry, the third held half-way), to the line `swarm run` shows."""

from __future__ import annotations

import io

from swarmcompute.cli.progress_line import REPAINT, ProgressLine
from swarmcompute.executor.pull_progress import MAX_LAYERS, PullProgress, PullTracker

IMAGE = "127.0.0.1:5000/pull-test:1"


def ev(status: str, layer: str | None = None, current: int | None = None, total: int | None = None) -> dict:
    event: dict = {"status": status, "progressDetail": {}}
    if layer is not None:
        event["id"] = layer
    if current is not None:
        event["progressDetail"] = {"current": current, "total": total}
    return event


HELD = [
    ev("Pulling from pull-test", "1"),
    ev("Pulling fs layer", "81d7"),
    ev("Pulling fs layer", "1c4c"),
    ev("Pulling fs layer", "beb9"),
    ev("Downloading", "81d7", 32768, 1093684),
    ev("Downloading", "1c4c", 32768, 262464),
    ev("Downloading", "81d7", 1093684, 1093684),
    ev("Verifying Checksum", "81d7"),
    ev("Download complete", "81d7"),
    ev("Downloading", "beb9", 36564, 1049154),
    ev("Downloading", "1c4c", 262464, 262464),
    ev("Extracting", "81d7", 32768, 1093684),  # extraction's bytes are not download bytes
    ev("Download complete", "1c4c"),
    ev("Pull complete", "81d7"),
    ev("Extracting", "1c4c", 262464, 262464),
    ev("Pull complete", "1c4c"),
]  # ... here the registry holds the third layer
REST = [
    ev("Downloading", "beb9", 557056, 1049154),
    ev("Download complete", "beb9"),
    ev("Pull complete", "beb9"),
    ev("Digest: sha256:2395"),
    ev(f"Status: Downloaded newer image for {IMAGE}"),
]


def fed(tracker: PullTracker, events: list[dict]) -> list[bool]:
    return [tracker.feed(e) for e in events]


def test_layers_and_bytes_are_counted_from_the_engines_stream() -> None:
    tracker = PullTracker(IMAGE)
    changed = fed(tracker, HELD)
    assert changed[0] is False  # "Pulling from" names the tag, not a layer
    held = tracker.progress(1.5)
    assert (held.layers_done, held.layers_total) == (2, 3)
    assert (held.bytes_done, held.bytes_total) == (1093684 + 262464 + 36564, 1093684 + 262464 + 1049154)
    assert held.text("n2") == f"pulling {IMAGE} on n2: 2 of 3 layers, 1.3 MiB of 2.3 MiB"
    assert fed(tracker, REST) == [True, True, True, False, False]  # Digest and Status name no layer
    done = tracker.progress(3.25, done=True)
    assert (done.layers_done, done.bytes_done, done.bytes_total) == (3, done.bytes_total, 2405302)
    assert done.text("n2") == f"pulled {IMAGE} on n2: 3 layers, 2.3 MiB in 3.2s"
    assert done.view() == {
        "image": IMAGE, "layers_done": 3, "layers_total": 3, "bytes_done": 2405302,
        "bytes_total": 2405302, "done": True, "elapsed_s": 3.25,
    }  # fmt: skip


def test_layers_the_engine_already_has_count_as_done_without_bytes() -> None:
    tracker = PullTracker("app:2")
    fed(tracker, [ev("Already exists", "base"), ev("Pulling fs layer", "top"), ev("Waiting", "top")])
    assert tracker.progress().text() == "pulling app:2: 1 of 2 layers"  # no size known yet
    tracker.feed(ev("Downloading", "top", 512, 2048))
    assert tracker.progress().text() == "pulling app:2: 1 of 2 layers, 512 B of 2.0 KiB"
    assert PullTracker("x:1").progress().text() == "pulling x:1"  # nothing heard yet


def test_a_repeated_or_foreign_event_changes_nothing_and_a_hostile_stream_stays_bounded() -> None:
    tracker = PullTracker("x:1")
    assert tracker.feed(ev("Downloading", "a", 10, 100)) is True
    assert tracker.feed(ev("Downloading", "a", 10, 100)) is False
    assert tracker.feed({"status": 7, "id": "a"}) is False
    assert tracker.feed(ev("Downloading", "a", True, -5)) is False  # not byte counts
    assert tracker.feed(ev("Retrying in 5 seconds", "a")) is False  # known layer, nothing new
    for i in range(MAX_LAYERS + 50):
        tracker.feed(ev("Pulling fs layer", f"l{i}"))
    assert tracker.progress().layers_total == MAX_LAYERS


def test_on_a_terminal_the_line_is_repainted_and_ended_before_other_output() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    line = ProgressLine(tty)
    line.show("pulling x:1: 0 of 2 layers")
    line.show("pulling x:1: 1 of 2 layers\x1b[2J")  # a node's words cannot drive the terminal
    line.end()
    line.end()  # nothing left open: nothing written
    line.show("pulled x:1: 2 layers in 1.0s", done=True)
    assert tty.getvalue() == (
        f"{REPAINT}swarm: pulling x:1: 0 of 2 layers{REPAINT}swarm: pulling x:1: 1 of 2 layers\\x1b[2J\n"
        f"{REPAINT}swarm: pulled x:1: 2 layers in 1.0s\n"
    )


def test_on_a_pipe_each_update_is_a_line_of_its_own() -> None:
    pipe = io.StringIO()
    line = ProgressLine(pipe)
    line.show("pulling x:1: 0 of 2 layers")
    line.end()
    line.show("pulled x:1: 2 layers in 1.0s", done=True)
    assert pipe.getvalue() == "swarm: pulling x:1: 0 of 2 layers\nswarm: pulled x:1: 2 layers in 1.0s\n"


def test_progress_travels_in_a_log_answer_and_a_stream_frame() -> None:
    from swarmcompute import codec
    from swarmcompute.api import messages as m
    from swarmcompute.node.cluster_messages import LogData

    progress = PullProgress(IMAGE, 1, 3, 100, 300, elapsed_s=0.5)
    assert codec.decode(codec.encode(LogData("r", (), 0, pull=progress))).pull == progress
    frame = m.Progress("j", 1, progress.text(), False, progress.view())
    assert codec.decode(codec.encode(frame)) == frame


def test_progress_crosses_the_http_api_as_a_progress_event_and_comes_back_the_same() -> None:
    import asyncio
    import json

    from swarmcompute.api import messages as m
    from swarmcompute.web.app import _sse_output
    from swarmcompute.web.remote import _event

    progress = PullProgress(IMAGE, 2, 3, 1 << 20, 2 << 20, elapsed_s=1.0)
    sent = m.Progress("j", 1, progress.text("n2"), False, progress.view())

    async def frames() -> list[str]:
        async def items():  # type: ignore[no-untyped-def]
            yield sent

        return [f async for f in _sse_output(items())]

    [_, event] = asyncio.run(frames())
    name, data = event.split("\n")[:2]
    assert name == "event: progress"
    back = _event("progress", json.loads(data.removeprefix("data: ")))
    assert (back.attempt, back.text, back.done, back.pull) == (1, sent.text, False, progress.view())
