"""How far an image pull has got: Docker's pull stream folded into layers and bytes.

Why: a job whose image must be pulled first sits in ``assigned`` for as long as the pull takes
(minutes for a CUDA image on a home link), and `swarm run` used to print nothing meanwhile. The
node that pulls keeps one ``PullProgress`` per attempt (``DockerExecutor.pull_progress``); a
stream (`swarm run`, `swarm logs -f`) shows it as an updating line, `swarm show` and
``GET /api/v1/jobs/{id}`` as ``pull`` and in the job's ``message``; from another node it is asked
for with a ``LogFetch`` of no bytes (``LogData.pull``).

The engine's stream (``POST /images/create``) says, per layer id: ``Pulling fs layer`` or
``Waiting`` (known, not yet fetched), ``Downloading`` with ``progressDetail`` ``current``/
``total`` bytes, ``Verifying Checksum``, ``Download complete``, ``Extracting``, then ``Pull
complete``; a layer the engine holds already says ``Already exists`` and downloads nothing.
Other lines (``Pulling from``, ``Digest``, ``Status``) name no layer. ``PullTracker`` is pure
(no clock: the caller passes the elapsed time), so it is tested with recorded streams.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from swarmcompute import codec
from swarmcompute.units import counted, format_size

PROGRESS_INTERVAL_S = 1.0
"""The pulling node reports at most one update a second (and the last one, ``done``): one line a
second on a log, one repaint a second on a terminal, one small answer per asking node."""

MAX_LAYERS = 1000
"""Layers tracked per pull (an image has at most 127 on overlayfs): a hostile stream stays bounded."""

_FETCHING = frozenset({"Pulling fs layer", "Waiting", "Downloading", "Retrying"})
_DOWNLOADED = frozenset({"Verifying Checksum", "Download complete", "Extracting"})
_DONE = frozenset({"Pull complete", "Already exists"})


@codec.message("exec.pull_progress")
@dataclass(frozen=True, slots=True)
class PullProgress:
    """One look at a pull. ``bytes_total`` counts the layers whose size is known so far (the
    engine learns each size when that layer starts downloading); layers that already existed
    count in ``layers_done`` and add no bytes."""

    image: str
    layers_done: int = 0
    layers_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    done: bool = False
    """The pull ended well: the container is being created next."""
    elapsed_s: float = 0.0

    def text(self, node: str = "") -> str:
        """``pulling busybox:1 on n2: 1 of 3 layers, 1.5 MiB of 4.0 MiB`` (or, once done,
        ``pulled busybox:1 on n2: 3 layers, 4.0 MiB in 2.3s``)."""
        where = f" on {node}" if node else ""
        size = format_size(self.bytes_total) if self.bytes_total else ""
        if self.done:
            what = counted(self.layers_total, "layer")
            return f"pulled {self.image}{where}: {what}{', ' + size if size else ''} in {self.elapsed_s:.1f}s"
        if not self.layers_total:
            return f"pulling {self.image}{where}"
        text = f"pulling {self.image}{where}: {self.layers_done} of {self.layers_total} layers"
        return f"{text}, {format_size(self.bytes_done)} of {size}" if size else text

    def view(self) -> dict[str, Any]:
        """The JSON shape (``pull`` in a job's record)."""
        return {
            "image": self.image,
            "layers_done": self.layers_done,
            "layers_total": self.layers_total,
            "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total,
            "done": self.done,
            "elapsed_s": round(self.elapsed_s, 3),
        }


class PullTracker:
    """Folds the engine's pull events into a ``PullProgress`` (feed them in order)."""

    def __init__(self, image: str) -> None:
        self.image = image
        self._layers: dict[str, list[int]] = {}
        """layer id -> [bytes downloaded, total bytes (0: unknown), 1 once done, 1 if it existed]."""

    def feed(self, event: Mapping[str, Any]) -> bool:
        """Take one event of the stream; True when the progress changed."""
        status = event.get("status")
        layer = event.get("id")
        if not isinstance(status, str) or not isinstance(layer, str) or not layer:
            return False
        kind = status.split(" in ", 1)[0] if status.startswith("Retrying") else status
        if kind not in _FETCHING and kind not in _DOWNLOADED and kind not in _DONE:
            return False  # "Pulling from library/x" names the tag, not a layer
        state = self._layers.get(layer)
        if state is None:
            if len(self._layers) >= MAX_LAYERS:
                return False
            state = self._layers[layer] = [0, 0, 0, 0]
        before = list(state)
        if kind == "Downloading":
            detail = event.get("progressDetail")
            if isinstance(detail, Mapping):
                current, total = detail.get("current"), detail.get("total")
                if _count(total):
                    state[1] = total
                if _count(current):
                    state[0] = min(current, state[1]) if state[1] else current
        elif kind in _DOWNLOADED or kind == "Pull complete":
            state[0] = state[1]
        if kind == "Already exists":
            state[3] = 1
        if kind in _DONE:
            state[2] = 1
        return state != before

    def progress(self, elapsed_s: float = 0.0, *, done: bool = False) -> PullProgress:
        fetched = [s for s in self._layers.values() if not s[3]]
        return PullProgress(
            image=self.image,
            layers_done=sum(s[2] for s in self._layers.values()),
            layers_total=len(self._layers),
            bytes_done=sum(s[0] for s in fetched),
            bytes_total=sum(s[1] for s in fetched),
            done=done,
            elapsed_s=max(0.0, float(elapsed_s)),
        )


def _count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53
