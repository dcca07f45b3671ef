"""Benchmark: which codec and chunk size for the lake's `image` array.

Encodes photographic 64x64 crops (the demo photographs) with candidate codecs and
chunk sizes and prints JSON: compression ratio, single-thread encode and decode
throughput (MB/s of raw pixels), and the time to fetch one thumbnail (decode of the
chunk holding it), each relative to storing raw bytes (the baseline).

    python benchmarks/bench_image_codec.py [--images 8192]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np


def photographic_images(n: int) -> np.ndarray:
    from ingest.demo_data import PHOTOS, box_resize, load_photo, random_crop

    photos = [load_photo(spec) for spec, _ in PHOTOS]
    return np.stack([box_resize(random_crop(photos[i % len(photos)], np.random.default_rng([11, i]))) for i in range(n)])


def candidates() -> dict[str, object]:
    from numcodecs import LZ4, Blosc, Zstd

    return {
        "raw": None,
        "zstd-1": Zstd(level=1),
        "zstd-3": Zstd(level=3),
        "zstd-9": Zstd(level=9),
        "lz4": LZ4(acceleration=1),
        "blosc-lz4": Blosc(cname="lz4", clevel=5, shuffle=Blosc.NOSHUFFLE),
        "blosc-zstd-1-bitshuffle": Blosc(cname="zstd", clevel=1, shuffle=Blosc.BITSHUFFLE),
    }


def measure(codec: object, images: np.ndarray, chunk: int) -> dict[str, float]:
    chunks = [images[i : i + chunk].tobytes() for i in range(0, len(images), chunk)]
    raw = sum(len(c) for c in chunks)
    start = time.process_time()
    encoded = chunks if codec is None else [codec.encode(c) for c in chunks]
    encode_s = time.process_time() - start
    start = time.process_time()
    for e in encoded:
        if codec is not None:
            codec.decode(e)
    decode_s = time.process_time() - start
    return {
        "ratio": round(sum(len(e) for e in encoded) / raw, 4),
        "encode_mb_s": round(raw / 1e6 / max(encode_s, 1e-9), 1),
        "decode_mb_s": round(raw / 1e6 / max(decode_s, 1e-9), 1),
        "thumbnail_ms": round(1000 * decode_s / len(chunks), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8192)
    parser.add_argument("--chunks", default="64,256,1024", help="images per chunk to try")
    args = parser.parse_args()
    images = photographic_images(args.images)
    results = {}
    for chunk in (int(c) for c in args.chunks.split(",")):
        for name, codec in candidates().items():
            results[f"{name}@{chunk}"] = measure(codec, images, chunk)
    print(json.dumps({"benchmark": "image_codec", "images": args.images, "results": results}, indent=2))


if __name__ == "__main__":
    main()
