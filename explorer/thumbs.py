"""The explorer's local data server: sample thumbnails (`GET /thumb/<row>.png`) and, for the
WebGL scatter, per-point arrays (`/blob/<name>.bin`), hover facts (`/facts/<token>/<i>.json`)
and the scatter's script (`/static/scatter_gl.js`).

Vega-Lite tooltips show an image when the tooltip field is named `image` and holds a
URL, so hover thumbnails need images served by URL (never data URIs per point: 50,000
points would mean megabytes of base64 per rerun). The app starts one server per
process (a Streamlit cached resource), bound to 127.0.0.1 on a free port by default.

Safety: the only thing a request can name is an integer row; it is validated against
the committed sample count, and images are read through the lake API
(`open_lake(path).images([row])`), so no part of a request ever reaches the file system.
Blobs and facts are only what the app put in `explorer.blobs` stores; a request names them
by a hex digest or token and an integer, never a path. Cross-origin reads (the scatter's
`fetch` and module import run on the explorer's page, another port) are allowed for the
explorer's own origin only (`allowed_origins`).
Requests must name this server in their Host header (127.0.0.1, localhost or [::1], the
bind address or the configured public host, with the port): a page on another site that
points its own domain at 127.0.0.1 (DNS rebinding) gets 403, not images.
"""
from __future__ import annotations

import io
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from .blobs import BlobStore, FactsRegistry
from .lake_status import lake_version

_THUMB_PATH = re.compile(r"^/thumb/(\d{1,12})\.png$")
_BLOB_PATH = re.compile(r"^/blob/([0-9a-f]{32})\.bin$")
_FACTS_PATH = re.compile(r"^/facts/([0-9a-f]{1,64})/(\d{1,12})\.json$")
SCATTER_SCRIPT = Path(__file__).with_name("static") / "scatter_gl.js"
SCRIPT_ROUTE = "/static/scatter_gl.js"
_SIZES = (64, 96, 128, 192, 256)  # allowed ?size= values; 64 is the native resolution
_CACHE_ENTRIES = 4096  # ~10 KiB per 64 px PNG: ~40 MiB at most


def parse_thumb_request(path: str, num_samples: int) -> tuple[int, int] | None:
    """(row, size) for a valid `/thumb/<row>.png[?size=N]` request, else None."""
    route, _, query = path.partition("?")
    match = _THUMB_PATH.match(route)
    if not match:
        return None
    row = int(match.group(1))
    if not 0 <= row < num_samples:
        return None
    size = 64
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name == "size":
            if not value.isdigit() or int(value) not in _SIZES:
                return None
            size = int(value)
    return row, size


def allowed_hosts(bind_host: str, port: int, public_host: str | None = None) -> frozenset[str]:
    """Host header values this server answers to (lower case, with the port; without it on port 80)."""
    names = {"127.0.0.1", "localhost", "[::1]"}
    for name in (bind_host, public_host):
        if name and name not in ("0.0.0.0", "::"):
            names.add(f"[{name}]" if ":" in name and not name.startswith("[") else name)
    allowed = {f"{name.lower()}:{port}" for name in names}
    if port == 80:
        allowed |= {name.lower() for name in names}
    return frozenset(allowed)


def allowed_origins(app_host: str, app_port: int, public_host: str | None = None) -> frozenset[str]:
    """The explorer page's own origins (http and https, every name `allowed_hosts` knows): CORS answers only these."""
    return frozenset(f"{scheme}://{host}" for host in allowed_hosts(app_host, app_port, public_host) for scheme in ("http", "https"))


def host_allowed(host_header: str | None, allowed: frozenset[str]) -> bool:
    """Whether a request's Host header names this server (a DNS-rebinding guard)."""
    return host_header is not None and host_header.strip().lower() in allowed


def encode_png(image: np.ndarray, size: int = 64) -> bytes:
    """PNG bytes of one HWC uint8 image, upscaled with nearest-neighbour (pixels stay honest)."""
    from PIL import Image

    picture = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), mode="RGB")
    if size != picture.width:
        picture = picture.resize((size, size), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


@dataclass
class ThumbnailSource:
    """Reads and PNG-encodes thumbnails of one lake, following its commits."""

    lake_path: Path
    _lake: Any = None
    _version: str = ""
    _cache: OrderedDict[tuple[str, int, int], bytes] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _current(self) -> tuple[Any, str]:
        from lake import open_lake

        version = lake_version(self.lake_path)
        with self._lock:
            if self._lake is None or version != self._version:
                self._lake, self._version = open_lake(self.lake_path), version
                self._cache.clear()
            return self._lake, self._version

    def num_samples(self) -> int:
        return int(self._current()[0].num_samples)

    def png(self, row: int, size: int) -> bytes:
        lake, version = self._current()
        key = (version, row, size)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        data = encode_png(lake.images([row])[0], size)
        with self._lock:
            self._cache[key] = data
            while len(self._cache) > _CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return data


@dataclass(frozen=True)
class Routes:
    """What the server answers besides thumbnails, and to whom."""

    blobs: BlobStore
    facts: FactsRegistry
    hosts: Callable[[], frozenset[str]]  # Host header values naming this server (known once bound)
    origins: frozenset[str] = frozenset()  # the explorer page's origins, for CORS


def _json_default(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else str(value)


def _answer(path: str, source: ThumbnailSource, routes: Routes) -> tuple[int, str, bytes, str]:
    """(status, content type, body, cache policy) for one GET path."""
    route = path.partition("?")[0]
    if route == SCRIPT_ROUTE:
        # The URL carries the script's digest (?v=...): a new build is a new URL.
        return 200, "text/javascript; charset=utf-8", SCATTER_SCRIPT.read_bytes(), "immutable"
    blob = _BLOB_PATH.match(route)
    if blob:
        body = routes.blobs.get(blob.group(1))
        return (404, "text/plain", b"unknown blob", "") if body is None else (200, "application/octet-stream", body, "immutable")
    facts = _FACTS_PATH.match(route)
    if facts:
        record = routes.facts.facts(facts.group(1), int(facts.group(2)))
        if record is None:
            return 404, "text/plain", b"unknown point", ""
        return 200, "application/json", json.dumps(record, default=_json_default).encode(), "private"
    request = parse_thumb_request(path, source.num_samples())
    if request is None:
        return 404, "text/plain", b"not a thumbnail", ""
    # Rows are append-only: an image at a committed row never changes.
    return 200, "image/png", source.png(*request), "immutable"


def _handler(source: ThumbnailSource, routes: Routes) -> type[BaseHTTPRequestHandler]:
    class DataHandler(BaseHTTPRequestHandler):
        server_version = "dmd2viz-data"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if not host_allowed(self.headers.get("Host"), routes.hosts()):
                self.send_error(403, "unknown Host header")
                return
            try:
                status, content_type, body, cache = _answer(self.path, source, routes)
            except Exception:
                self.send_error(500, "could not read the lake")
                return
            if status != 200:
                self.send_error(status, body.decode())
                return
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "public, max-age=86400, immutable" if cache == "immutable" else "private, max-age=60")
            origin = self.headers.get("Origin")
            if origin and origin.lower() in routes.origins:
                self.send_header("Access-Control-Allow-Origin", origin)
                self.send_header("Vary", "Origin")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # silence per-request logging
            return

    return DataHandler


@dataclass
class ThumbnailServer:
    """A running server; `url(row)` gives a thumbnail's address, `blobs` and `facts` what the scatter reads."""

    httpd: ThreadingHTTPServer
    thread: threading.Thread
    public_host: str
    blobs: BlobStore = field(default_factory=BlobStore)
    facts: FactsRegistry = field(default_factory=FactsRegistry)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def origin(self) -> str:
        return f"http://{self.public_host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/thumb/"

    def url(self, row: int, size: int = 64) -> str:
        suffix = "" if size == 64 else f"?size={size}"
        return f"{self.base_url}{int(row)}.png{suffix}"

    def blob_url(self, name: str) -> str:
        return f"{self.origin}/blob/{name}.bin"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def start_thumbnail_server(
    lake_path: str | Path, host: str = "127.0.0.1", port: int = 0, public_host: str | None = None, app_port: int | None = None
) -> ThumbnailServer:
    """Serve the lake at `lake_path` from a daemon thread (port 0: a free port).

    `app_port`: the explorer's own port; pages served from it (on any name this server
    answers to) may read blobs and facts across origins.
    """
    source = ThumbnailSource(Path(lake_path))
    hosts: list[frozenset[str]] = []  # filled once bound: port 0 means the port is known only then
    shown = public_host or ("127.0.0.1" if host in ("0.0.0.0", "") else host)
    origins = allowed_origins(host, app_port, shown) if app_port else frozenset()
    blobs, facts = BlobStore(), FactsRegistry()
    httpd = ThreadingHTTPServer((host, port), _handler(source, Routes(blobs, facts, lambda: hosts[0], origins)))
    httpd.daemon_threads = True
    hosts.append(allowed_hosts(host, int(httpd.server_address[1]), shown))
    thread = threading.Thread(target=httpd.serve_forever, name="dmd2viz-data", daemon=True)
    thread.start()
    return ThumbnailServer(httpd, thread, shown, blobs, facts)
