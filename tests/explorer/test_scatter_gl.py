"""The WebGL scatter's Python side: the shipped script, the blob store and data server, the page's message."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import replace

import numpy as np
import pytest
import xarray as xr

from apptest import gl_message, open_app
from conftest import KEY, NAME_2D
from explorer import point_sets, scatter_gl
from explorer.blobs import BlobStore, FactsRegistry, blob_name
from explorer.thumbs import SCRIPT_ROUTE, allowed_origins, start_thumbnail_server


def test_the_shipped_script_is_the_pinned_build():
    """explorer/static/scatter_gl.js is `make scatter-js`'s output; a hand edit (or a stale pin) fails here."""
    assert scatter_gl.script_digest() == scatter_gl.SCRIPT_SHA256
    text = scatter_gl.SCRIPT.read_text()
    assert "export" in text and "mount" in text and "regl" in text  # the bundle, with regl-scatterplot inside


def test_blobs_are_named_by_content_and_the_oldest_go_first():
    store = BlobStore(max_bytes=3000)
    a = store.put(np.arange(250, dtype=np.float32))  # 1000 bytes
    assert a == blob_name(np.arange(250, dtype="<f4").tobytes()) and store.put(np.arange(250, dtype=np.float32)) == a
    b = store.put(b"x" * 1000)
    store.touch(a)  # a is now the most recently used
    c = store.put(b"y" * 1500)  # over 3000 bytes: the least recently used (b) goes
    assert store.get(b) is None and store.get(a) is not None and store.get(c) == b"y" * 1500
    assert np.array_equal(np.frombuffer(store.get(a) or b"", "<f4"), np.arange(250))
    big_endian = np.arange(4, dtype=">i4")
    assert np.frombuffer(store.get(store.put(big_endian)) or b"", "<i4").tolist() == [0, 1, 2, 3]


def test_facts_answer_registered_tokens_in_range_only():
    registry = FactsRegistry(max_tables=2)
    registry.register("aa", 3, lambda i: {"i": i})
    assert registry.facts("aa", 2) == {"i": 2}
    assert registry.facts("aa", 3) is None and registry.facts("bb", 0) is None
    registry.register("bb", 1, lambda i: {})
    registry.register("cc", 1, lambda i: {})
    assert registry.facts("aa", 0) is None  # the oldest table went


def _get(url: str, origin: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Origin": origin} if origin else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), b""


def test_the_data_server_serves_blobs_facts_and_the_script_to_the_explorer_origin_only(small_lake):
    server = start_thumbnail_server(small_lake.path, app_port=8501)
    try:
        name = server.blobs.put(np.array([1.5, 2.5], dtype=np.float32))
        status, headers, body = _get(server.blob_url(name), origin="http://localhost:8501")
        assert status == 200 and np.frombuffer(body, "<f4").tolist() == [1.5, 2.5]
        assert headers["Access-Control-Allow-Origin"] == "http://localhost:8501" and "immutable" in headers["Cache-Control"]
        status, headers, _ = _get(server.blob_url(name), origin="http://evil.example:8501")
        assert status == 200 and "Access-Control-Allow-Origin" not in headers  # the browser keeps the body from that page
        assert _get(server.blob_url("0" * 32))[0] == 404
        assert _get(f"{server.origin}/blob/../../zarr.json")[0] == 404
        server.facts.register("ab12", 2, lambda i: {"sample id": f"s{i}", "n": np.int64(i)})
        status, _, body = _get(f"{server.origin}/facts/ab12/1.json")
        assert status == 200 and json.loads(body) == {"sample id": "s1", "n": 1}
        assert _get(f"{server.origin}/facts/ab12/2.json")[0] == 404
        status, headers, body = _get(f"{server.origin}{SCRIPT_ROUTE}?v=1", origin="http://127.0.0.1:8501")
        assert status == 200 and body == scatter_gl.SCRIPT.read_bytes() and headers["Content-Type"].startswith("text/javascript")
    finally:
        server.stop()
    assert "http://localhost:8501" in allowed_origins("127.0.0.1", 8501) and "http://localhost:8502" not in allowed_origins("127.0.0.1", 8501)


def test_lasso_polygons_are_checked_and_select_the_points_inside():
    state = {scatter_gl.KEY: {"lasso": {"token": "t", "polygon": [[0, 0], [2, 0], [2, 2], [0, 2]], "n": 1}}}
    polygon = scatter_gl.pending_lasso(state, "t")
    assert polygon is not None and scatter_gl.pending_lasso(state, "other token") is None
    for bad in ([[0, 0], [1, 1]], [[0, 0], [1, "x"], [2, 2]], [[0, 0], [1, float("nan")], [2, 2]], "no"):
        assert scatter_gl.pending_lasso({scatter_gl.KEY: {"lasso": {"token": "t", "polygon": bad}}}, "t") is None
    xy = np.random.default_rng(0).uniform(-1, 3, size=(2000, 2))
    candidates = np.random.default_rng(1).random(2000) < 0.7
    rows = point_sets.points_in_polygon(xy, polygon, candidates)
    inside = (xy[:, 0] > 0) & (xy[:, 0] < 2) & (xy[:, 1] > 0) & (xy[:, 1] < 2) & candidates
    assert np.array_equal(rows, np.flatnonzero(inside))


def test_clicks_are_taken_for_the_drawn_points_only():
    state = {scatter_gl.KEY: {"click": {"token": "t", "index": 4, "n": 2}}}
    assert scatter_gl.pending_click(state, "t", 10) == 4
    assert scatter_gl.pending_click(state, "t", 4) is None  # out of range
    assert scatter_gl.pending_click(state, "old", 10) is None  # a click on points drawn for another embedding
    assert scatter_gl.pending_click({}, "t", 10) is None


def _array(url: str, dtype: str) -> np.ndarray:
    status, _, body = _get(url)
    assert status == 200, url
    return np.frombuffer(body, dtype)


def test_the_page_sends_urls_of_every_point_and_a_click_sized_message(small_lake, monkeypatch):
    at = open_app(small_lake.path, monkeypatch, scatter="webgl")
    message = gl_message(at)
    points = message["points"]
    embedding = xr.open_zarr(small_lake.path, group=f"analysis/embeddings/{KEY}/{NAME_2D}")
    ids = embedding["sample_id"].values.astype(object).astype(str)
    coords = embedding["embedding"].values
    assert points["n"] == len(ids)
    assert np.array_equal(_array(points["x"], "<f4"), coords[:, 0]) and np.array_equal(_array(points["y"], "<f4"), coords[:, 1])
    samples = xr.open_zarr(small_lake.path, group="samples")["sample_id"].values.astype(object).astype(str)
    assert np.array_equal(samples[_array(points["rows"], "<i4")], ids)  # each point's thumbnail row is its own sample
    assert message["filter"] is None and message["marks"] == {"selected": -1, "knn": [], "manual": []}
    colour = message["colour"]
    codes = _array(colour["url"], "<u2")
    legend = [label for label, _ in colour["legend"]]
    classes = embedding["class_id"].values
    assert all(legend[c].startswith(f"{classes[i]}:") for i, c in enumerate(codes))  # every point in its class's colour
    facts = json.loads(_get(f"{message['meta']}7.json")[2])
    assert facts["sample id"] == ids[7] and facts["class"].startswith(f"{classes[7]}:")

    # A selection changes the marks only: the arrays keep their URLs, and the message stays small.
    selected = ids[3]
    at.session_state["view"] = replace(at.session_state["view"], selected=str(selected), manual=(str(ids[200]),))
    at.run()
    after = gl_message(at)
    assert after["points"] == points and after["colour"] == colour
    assert after["marks"]["selected"] == 3 and after["marks"]["manual"] == [200] and len(after["marks"]["knn"]) == 10
    assert len(json.dumps(after)) < 4000


def test_a_filter_is_a_bitmask_of_the_kept_points(small_lake, monkeypatch):
    at = open_app(small_lake.path, monkeypatch, {"source": "real"}, scatter="webgl")
    message = gl_message(at)
    embedding = xr.open_zarr(small_lake.path, group=f"analysis/embeddings/{KEY}/{NAME_2D}")
    kept = np.unpackbits(_array(message["filter"], "u1"), bitorder="little")[: message["points"]["n"]].astype(bool)
    assert np.array_equal(kept, embedding["source"].values.astype(object).astype(str) == "real")


@pytest.mark.parametrize("palette", ["viridis", "turbo"])
def test_numeric_colourings_send_ramp_positions_with_grey_for_missing(palette):
    from explorer.charts import ColorSpec
    from explorer.thumbs import ThumbnailServer

    store = BlobStore()
    server = ThumbnailServer(None, None, "127.0.0.1", store, FactsRegistry())  # type: ignore[arg-type]  # only the store is used
    server.blob_url = lambda name: name  # type: ignore[method-assign]
    values = np.array([0.0, 5.0, np.nan, 10.0], dtype=np.float32)
    message = scatter_gl.gl_colours(server, ColorSpec("value", "v", False, palette), lambda rows: values[rows], 4)
    position = np.frombuffer(store.get(message["url"]) or b"", "<f4")
    assert position[2] == 0 and position[0] == pytest.approx(1 / scatter_gl.RAMP_STEPS) and position[3] == pytest.approx(1)
    assert message["colours"][0] == scatter_gl.MISSING_COLOUR and len(message["colours"]) == scatter_gl.RAMP_STEPS + 1
    assert message["range"] == ["0", "10"]


def test_a_missing_webgl_is_remembered_for_the_session():
    state: dict = {scatter_gl.KEY: {"webgl": False}}
    assert scatter_gl.webgl_missing(state) == "this browser has no WebGL"
    del state[scatter_gl.KEY]  # the component is not mounted in the Vega run: its state goes
    assert scatter_gl.webgl_missing(state) == "this browser has no WebGL"
    assert scatter_gl.webgl_missing({scatter_gl.KEY: {"webgl": True, "failed": ""}}) is None
    assert scatter_gl.webgl_missing({scatter_gl.KEY: {"failed": "TypeError: x"}}) == "TypeError: x"
