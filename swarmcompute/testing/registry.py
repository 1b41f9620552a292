"""A Docker registry served from memory (the pull side of the v2 API), for tests with no registry.

    with FakeRegistry() as registry:
        ref = registry.add_image("pull-test:1", [busybox_layer(), filler_layer(256 << 10)])
        # dockerd pulls 127.0.0.1:PORT/pull-test:1 over plain HTTP: 127.0.0.0/8 is an insecure
        # registry by default, so no --insecure-registry is needed.

Why: image pulls (and their progress) must be tested against a real engine, and neither Docker
Hub nor the ``registry`` image is reachable here. The engine asks ``GET /v2/``, then the manifest
by tag (a schema 2 manifest is served, with its ``Docker-Content-Digest``), then the config and
each layer by digest. Layers are gzipped tars built here: ``busybox_layer`` holds a static
busybox and a few applets (``tar`` of ``/bin/busybox``, Debian's ``busybox-static``),
``filler_layer`` random bytes (they do not compress, so the pull has bytes to show).

``hold(ref, layer, after_bytes)`` makes one layer stop after that many bytes until ``release()``:
a test sees a pull in progress for as long as it likes, without sleeping and hoping. Blobs are
sent in 64 KiB pieces. Every request is in ``requests`` (method, path) for a test to read.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
import tarfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from swarmcompute.testing.dockerd import BUSYBOX_PATH

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"
PIECE_BYTES = 64 * 1024
HOLD_LIMIT_S = 120.0
"""A held layer is sent anyway after this long: a test that forgot to release ends, slowly."""
APPLETS = ("sh", "echo", "cat", "sleep", "ls", "true", "false", "env", "pwd")


@dataclass(frozen=True)
class Layer:
    tar: bytes
    """The uncompressed tar (its sha256 is the layer's diff id)."""
    blob: bytes
    """What is served: the gzipped tar (its sha256 is the layer's digest)."""

    @property
    def digest(self) -> str:
        return _digest(self.blob)

    @property
    def diff_id(self) -> str:
        return _digest(self.tar)


def layer_of(files: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Layer:
    """A layer holding ``files`` (path -> contents, mode 0755) and ``symlinks`` (path -> target)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({str(Path(p).parent) for p in [*files, *(symlinks or {})] if str(Path(p).parent) != "."})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
        for path, target in sorted((symlinks or {}).items()):
            info = tarfile.TarInfo(path)
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
            tar.addfile(info)
    raw = out.getvalue()
    return Layer(raw, gzip.compress(raw, compresslevel=1, mtime=0))


def busybox_layer(busybox: Path = BUSYBOX_PATH) -> Layer:
    """``/bin/busybox`` and its applets ``APPLETS`` as links to it."""
    return layer_of({"bin/busybox": busybox.read_bytes()}, {f"bin/{a}": "busybox" for a in APPLETS})


def filler_layer(size: int, name: str = "filler") -> Layer:
    """One file of ``size`` random bytes (``/data/NAME``)."""
    return layer_of({f"data/{name}": os.urandom(size)})


@dataclass
class _Image:
    manifest: bytes
    config: bytes
    layers: list[Layer]


class FakeRegistry:
    """The registry, on ``127.0.0.1`` at a free port; ``close`` (or the ``with`` block) stops it."""

    def __init__(self) -> None:
        self._images: dict[tuple[str, str], _Image] = {}
        self._blobs: dict[str, bytes] = {}
        self._holds: dict[str, int] = {}
        self._released = threading.Event()
        self._lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                registry._serve(self, body=True)

            def do_HEAD(self) -> None:
                registry._serve(self, body=False)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-registry", daemon=True)
        self._thread.start()

    def __enter__(self) -> FakeRegistry:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def add_image(self, name_tag: str, layers: list[Layer], cmd: tuple[str, ...] = ("/bin/sh",)) -> str:
        """Serve an image ``NAME:TAG`` made of ``layers``; returns the reference to pull."""
        name, _, tag = name_tag.rpartition(":")
        config = json.dumps(
            {
                "architecture": _architecture(),
                "os": "linux",
                "config": {"Cmd": list(cmd), "Env": ["PATH=/bin"]},
                "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
            }
        ).encode()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_TYPE,
                "config": {"mediaType": CONFIG_TYPE, "size": len(config), "digest": _digest(config)},
                "layers": [{"mediaType": LAYER_TYPE, "size": len(x.blob), "digest": x.digest} for x in layers],
            }
        ).encode()
        with self._lock:
            self._images[(name, tag)] = _Image(manifest, config, layers)
            self._blobs[_digest(config)] = config
            for layer in layers:
                self._blobs[layer.digest] = layer.blob
        return f"{self.address}/{name}:{tag}"

    def hold(self, layer: Layer, after_bytes: int) -> None:
        """Send only the first ``after_bytes`` of ``layer`` until ``release``."""
        self._released.clear()
        self._holds[layer.digest] = after_bytes

    def release(self) -> None:
        self._released.set()

    def _serve(self, handler: BaseHTTPRequestHandler, *, body: bool) -> None:
        path = handler.path.split("?", 1)[0]
        with self._lock:
            self.requests.append((handler.command, path))
        headers = {"Docker-Distribution-API-Version": "registry/2.0"}
        if path in ("/v2", "/v2/"):
            return _answer(handler, 200, b"{}", "application/json", headers, body)
        name, kind, ref = _parse(path)
        if kind == "manifests":
            image = self._images.get((name, ref)) or next(
                (i for (n, _), i in self._images.items() if n == name and _digest(i.manifest) == ref), None
            )
            if image is None:
                return _not_found(handler, "MANIFEST_UNKNOWN", body)
            headers["Docker-Content-Digest"] = _digest(image.manifest)
            return _answer(handler, 200, image.manifest, MANIFEST_TYPE, headers, body)
        if kind == "blobs" and ref in self._blobs:
            headers["Docker-Content-Digest"] = ref
            return self._send_blob(handler, self._blobs[ref], headers, body)
        return _not_found(handler, "BLOB_UNKNOWN" if kind == "blobs" else "NAME_UNKNOWN", body)

    def _send_blob(self, handler: BaseHTTPRequestHandler, data: bytes, headers: dict[str, str], body: bool) -> None:
        handler.send_response(200)
        for key, value in {**headers, "Content-Type": "application/octet-stream"}.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if not body:
            return
        held = self._holds.get(headers["Docker-Content-Digest"])
        try:
            for start in range(0, len(data), PIECE_BYTES):
                if held is not None and start >= held:
                    self._released.wait(HOLD_LIMIT_S)
                    held = None
                handler.wfile.write(data[start : start + PIECE_BYTES])
                handler.wfile.flush()
        except OSError:
            pass  # the engine gave up on it (a cancelled pull)


def _parse(path: str) -> tuple[str, str, str]:
    """``/v2/NAME/manifests/REF`` -> (NAME, "manifests", REF); NAME may hold slashes."""
    parts = path.split("/")
    for i in range(len(parts) - 2, 1, -1):
        if parts[i] in ("manifests", "blobs"):
            return "/".join(parts[2:i]), parts[i], "/".join(parts[i + 1 :])
    return "", "", ""


def _answer(
    handler: BaseHTTPRequestHandler, status: int, data: bytes, media: str, headers: dict[str, str], body: bool
) -> None:
    handler.send_response(status)
    for key, value in {**headers, "Content-Type": media, "Content-Length": str(len(data))}.items():
        handler.send_header(key, value)
    handler.end_headers()
    if body:
        handler.wfile.write(data)


def _not_found(handler: BaseHTTPRequestHandler, code: str, body: bool) -> None:
    data = json.dumps({"errors": [{"code": code, "message": code.lower().replace("_", " ")}]}).encode()
    _answer(handler, 404, data, "application/json", {"Docker-Distribution-API-Version": "registry/2.0"}, body)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _architecture() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)
