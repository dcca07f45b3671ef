import io
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from explorer.thumbs import encode_png, parse_thumb_request, start_thumbnail_server
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
