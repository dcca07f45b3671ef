import http.client
import io
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from explorer.thumbs import allowed_hosts, encode_png, host_allowed, parse_thumb_request, start_thumbnail_server
from lake import open_lake


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/thumb/0.png", (0, 64)),
        ("/thumb/239.png?size=128", (239, 128)),
        ("/thumb/240.png", None),  # past the committed sample count
        ("/thumb/-1.png", None),
        ("/thumb/1.png?size=65", None),
        ("/thumb/../../etc/passwd", None),
        ("/thumb/1.png/../../x", None),
        ("/thumb/%2e%2e.png", None),
        ("/other/1.png", None),
    ],
)
def test_only_valid_rows_are_accepted(path, expected):
    assert parse_thumb_request(path, 240) == expected


def test_png_is_the_image_upscaled_without_smoothing():
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    decoded = np.asarray(Image.open(io.BytesIO(encode_png(image, 128))))
    assert decoded.shape == (128, 128, 3)
    assert np.array_equal(decoded[::2, ::2], image)


def test_server_serves_lake_images_on_localhost_only(small_lake):
    server = start_thumbnail_server(small_lake.path)
    try:
        assert server.httpd.server_address[0] == "127.0.0.1"
        with urllib.request.urlopen(server.url(7), timeout=10) as response:
            assert response.headers["Content-Type"] == "image/png"
            assert "max-age" in response.headers["Cache-Control"]
            served = np.asarray(Image.open(io.BytesIO(response.read())))
        assert np.array_equal(served, open_lake(small_lake.path).images([7])[0])
        for bad in (f"{server.base_url}{len(small_lake.sample_ids)}.png", f"{server.base_url}../zarr.json"):
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(bad, timeout=10)
            assert info.value.code == 404
    finally:
        server.stop()


def _get(port: int, path: str, host: str | None) -> tuple[int, bytes]:
    """A real HTTP request to the server on 127.0.0.1 carrying the given Host header (None: no Host header)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_host=True)
        if host is not None:
            connection.putheader("Host", host)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_server_refuses_foreign_host_headers(small_lake):
    """A DNS-rebinding page reaches 127.0.0.1 under its own name: its Host header gets 403, never an image."""
    server = start_thumbnail_server(small_lake.path)
    try:
        port = server.port
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
            status, body = _get(port, "/thumb/3.png", host)
            assert status == 200 and body.startswith(b"\x89PNG"), host
        for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1:{port + 1}", f"localhost.evil.example:{port}", "", None):
            status, body = _get(port, "/thumb/3.png", host)
            assert status == 403 and b"\x89PNG" not in body, host
        status, _ = _get(port, "/thumb/999999.png", f"localhost:{port}")
        assert status == 404  # everything else is unchanged
    finally:
        server.stop()


def test_server_answers_its_configured_public_host(small_lake):
    server = start_thumbnail_server(small_lake.path, public_host="viz.lab.example")
    try:
        assert server.base_url == f"http://viz.lab.example:{server.port}/thumb/"
        assert _get(server.port, "/thumb/0.png", f"viz.lab.example:{server.port}")[0] == 200
        assert _get(server.port, "/thumb/0.png", f"other.lab.example:{server.port}")[0] == 403
    finally:
        server.stop()


def test_allowed_hosts():
    assert allowed_hosts("127.0.0.1", 8123) == {"127.0.0.1:8123", "localhost:8123", "[::1]:8123"}
    wide = allowed_hosts("0.0.0.0", 80, "viz.lab")  # a wildcard bind is not a name; port 80 may be left out
    assert {"viz.lab", "viz.lab:80", "localhost", "127.0.0.1:80"} <= wide and "0.0.0.0:80" not in wide
    assert "[fe80::1]:9000" in allowed_hosts("fe80::1", 9000)
    assert host_allowed("Localhost:8123", allowed_hosts("127.0.0.1", 8123))
    assert not host_allowed(None, allowed_hosts("127.0.0.1", 8123))
