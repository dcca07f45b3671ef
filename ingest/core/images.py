"""Image recipes shared by the jobs that turn pictures into the lake's 64x64 samples."""
from __future__ import annotations

from typing import Any

import numpy as np

SIZE = 64  # the lake's image side (ImageNet64)


def centre_square_thumbnail(image: Any, size: int = SIZE) -> np.ndarray:
    """The centred square of an RGB image (a PIL image or an (H, W, 3) uint8 array), box-resized to
    `size` x `size`, as uint8 HWC: ImageNet64's recipe, also the text-to-image samples' thumbnails."""
    from PIL import Image

    rgb = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8), "RGB")
    width, height = rgb.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    square = rgb.crop((left, top, left + side, top + side))
    return np.asarray(square.resize((size, size), Image.Resampling.BOX), dtype=np.uint8)
