"""What the local data server hands to the browser besides thumbnails: per-point arrays and hover facts.

The Explore page's WebGL scatter (`explorer.scatter_gl`) never sends per-point data through
Streamlit's websocket, where every rerun re-sends an element whole. Instead each array
(coordinates, colour codes, a filter bitmask, sample rows) is put here once and named by
its content (`BlobStore.put` -> a BLAKE2 hex digest); the page sends only that name, and
the browser fetches `/blob/<name>.bin` from the data server (`explorer.thumbs`), which
caches it for good because a name never changes meaning. A click therefore costs a few
hundred bytes, and a filter or colour change one small HTTP fetch.

Hover facts (`FactsRegistry`) are the tooltip lines of one point: the app registers a
function per drawn embedding under a token, and the browser asks `/facts/<token>/<i>.json`
for the point under the cursor.

Both are bounded (least recently used first) and thread-safe: the server answers from its
own threads while Streamlit sessions run in theirs.
"""
from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BLOB_NAME = re.compile(r"^[0-9a-f]{32}$")
DEFAULT_BLOB_BYTES = 768 * 2**20  # ~40 views of 1.28M points (x, y, rows, colours, filter)
DEFAULT_FACT_TABLES = 64


def blob_name(data: bytes) -> str:
    """The content name of `data`: 32 hex digits of BLAKE2b (128 bits)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def array_bytes(array: np.ndarray) -> bytes:
    """An array's bytes as the browser reads them: little-endian, C order."""
    array = np.ascontiguousarray(array)
    if array.dtype.byteorder == ">" or (array.dtype.byteorder == "=" and np.little_endian is False):
        array = array.astype(array.dtype.newbyteorder("<"))
    return array.tobytes()


@dataclass
class BlobStore:
    """Content-addressed bytes, least recently used dropped first beyond `max_bytes`."""

    max_bytes: int = DEFAULT_BLOB_BYTES
    _blobs: OrderedDict[str, bytes] = field(default_factory=OrderedDict)
    _size: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, data: bytes | np.ndarray) -> str:
        """Store `data` (bytes, or an array as `array_bytes`) and return its name."""
        body = array_bytes(data) if isinstance(data, np.ndarray) else bytes(data)
        name = blob_name(body)
        with self._lock:
            if name in self._blobs:
                self._blobs.move_to_end(name)
                return name
            self._blobs[name] = body
            self._size += len(body)
            while self._size > self.max_bytes and len(self._blobs) > 1:
                _, dropped = self._blobs.popitem(last=False)
                self._size -= len(dropped)
        return name

    def get(self, name: str) -> bytes | None:
        with self._lock:
            body = self._blobs.get(name)
            if body is not None:
                self._blobs.move_to_end(name)
            return body

    def touch(self, name: str) -> bool:
        """Mark `name` as used now; False when it was dropped (put it again)."""
        return self.get(name) is not None


Facts = Callable[[int], dict[str, Any]]


@dataclass
class FactsRegistry:
    """Tooltip facts by (token, point index): one function per drawn embedding."""

    max_tables: int = DEFAULT_FACT_TABLES
    _tables: OrderedDict[str, tuple[int, Facts]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def register(self, token: str, size: int, facts: Facts) -> None:
        """Facts of points 0..size-1 under `token` (a name the page can put in a URL)."""
        with self._lock:
            self._tables[token] = (int(size), facts)
            self._tables.move_to_end(token)
            while len(self._tables) > self.max_tables:
                self._tables.popitem(last=False)

    def facts(self, token: str, index: int) -> dict[str, Any] | None:
        """The facts of one point, or None for an unknown token or an index out of range."""
        with self._lock:
            entry = self._tables.get(token)
            if entry is not None:
                self._tables.move_to_end(token)
        if entry is None or not 0 <= index < entry[0]:
            return None
        return entry[1](index)
