"""`python -m ingest demo-data`: a small ImageNet64-format set built from real photographs.

The photographs ship inside installed packages (scikit-image's `skimage.data` and
scikit-learn's sample images), so the demo needs no download. Each photo is given the
ImageNet class it shows; crops at several scales and positions (with flips) become
64x64 images. The output has both input formats the ingest jobs read:
`imagenet64/train_data_batch_1.npz`, `imagenet64/val_data.npz` (channel-planar rows,
1-indexed ImageNet64 labels) and `jpeg/<wnid>/*.JPEG` (full-size, non-square crops).

For the text-to-image demo it also writes `t2i/base/` (a tiny SDXL-topology base folder in
diffusers format with seeded random weights and the real CLIP tokenizer) and
`t2i/dmd2_unet.safetensors` (a tiny "DMD2 UNet" for it), which `ingest generate-t2i`
loads exactly as it loads the real SDXL base and DMD2 checkpoint, and `teacher_stand_in.pt`,
the micro ImageNet generator with other seeded weights as a checkpoint: the demo's second
model (registered as `teacher-stand-in`), probing the same images as the first.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# (loader, wnid): the class each photo shows.
PHOTOS: tuple[tuple[str, str], ...] = (
    ("skimage:chelsea", "n02123045"),  # tabby cat
    ("skimage:coffee", "n07920052"),  # espresso
    ("skimage:rocket", "n03773504"),  # missile
    ("skimage:stereo_motorcycle", "n03791053"),  # motor scooter
    ("skimage:camera", "n04485082"),  # tripod (the cameraman's)
    ("skimage:clock", "n02708093"),  # analog clock
    ("sklearn:china.jpg", "n03877845"),  # palace
    ("sklearn:flower.jpg", "n11939491"),  # daisy
)


# The tiny text-to-image components make 128x128 images: larger than the 64x64 thumbnails,
# so the demo shows native images and thumbnails apart, and still a fraction of a second each.
T2I_DEMO_SIZE = 128


@dataclass(frozen=True)
class DemoSizes:
    train_per_photo: int = 40
    val_per_photo: int = 8
    jpeg_per_photo: int = 4


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from lake.cli import command

    parser = command(
        subparsers,
        "demo-data",
        run,
        help="write a small ImageNet64-format demo set (NPZ + JPEG folder) built from real photographs",
        description="Build the demo inputs from photographs shipped with scikit-image and scikit-learn: "
        "OUT/imagenet64/{train_data_batch_1,val_data}.npz and OUT/jpeg/<wnid>/*.JPEG. Deterministic.",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--train-per-photo", type=int, default=DemoSizes.train_per_photo, help="training crops per photo")
    parser.add_argument("--val-per-photo", type=int, default=DemoSizes.val_per_photo, help="validation crops per photo")
    parser.add_argument("--jpeg-per-photo", type=int, default=DemoSizes.jpeg_per_photo, help="JPEG files per photo")
    parser.add_argument("--t2i-size", type=int, default=T2I_DEMO_SIZE,
                        help="image size the tiny text-to-image base advertises (a multiple of 32)")


def load_photo(spec: str) -> np.ndarray:
    """An RGB uint8 photograph from an installed package."""
    package, name = spec.split(":", 1)
    if package == "skimage":
        import skimage.data

        image = skimage.data.stereo_motorcycle()[0] if name == "stereo_motorcycle" else getattr(skimage.data, name)()
    else:
        from sklearn.datasets import load_sample_image

        image = load_sample_image(name)
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3]).astype(np.uint8)


def random_crop(photo: np.ndarray, rng: np.random.Generator, aspect: float = 1.0) -> np.ndarray:
    """A crop covering 40-100% of the shorter side, at a random position, maybe mirrored."""
    height, width = photo.shape[:2]
    side = int(min(height, width) * rng.uniform(0.4, 1.0))
    crop_h, crop_w = side, min(width, int(side * aspect))
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    crop = photo[top : top + crop_h, left : left + crop_w]
    return crop[:, ::-1] if rng.random() < 0.5 else crop


def box_resize(image: np.ndarray, size: int = 64) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((size, size), Image.Resampling.BOX))


def build_rows(count: int, salt: int, transform: Callable[[np.ndarray, np.random.Generator], np.ndarray]) -> tuple[list[np.ndarray], list[str]]:
    images, wnids = [], []
    for photo_index, (spec, wnid) in enumerate(PHOTOS):
        photo = load_photo(spec)
        for k in range(count):
            rng = np.random.default_rng([salt, photo_index, k])  # keyed, not a running stream
            images.append(transform(photo, rng))
            wnids.append(wnid)
    return images, wnids


def write_npz(path: Path, images: list[np.ndarray], wnids: list[str]) -> None:
    """ImageNet64 format: channel-planar rows and 1-indexed ImageNet64 labels."""
    from lake.classes import imagenet_classes

    table = imagenet_classes()
    data = np.stack([img.transpose(2, 0, 1).reshape(-1) for img in images]).astype(np.uint8)
    labels = np.array([table.imagenet64_labels[table.class_id_by_wnid[w]] for w in wnids], dtype=np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, data=data, labels=labels, mean=data.mean(axis=0))


def build_demo_data(out: Path, sizes: DemoSizes = DemoSizes()) -> None:
    """Write the demo inputs under `out` (overwriting earlier ones)."""
    from PIL import Image

    def square(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return box_resize(random_crop(photo, rng))

    write_npz(out / "imagenet64" / "train_data_batch_1.npz", *build_rows(sizes.train_per_photo, 1, square))
    write_npz(out / "imagenet64" / "val_data.npz", *build_rows(sizes.val_per_photo, 2, square))
    crops, wnids = build_rows(sizes.jpeg_per_photo, 3, lambda photo, rng: random_crop(photo, rng, aspect=1.4))
    for k, (crop, wnid) in enumerate(zip(crops, wnids)):
        folder = out / "jpeg" / wnid
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(crop)).save(folder / f"{wnid}_{k:04d}.JPEG", quality=90)


def build_demo_t2i(out: Path, size: int = T2I_DEMO_SIZE) -> None:
    """Write the tiny text-to-image base folder and DMD2 UNet under ``out/t2i`` (seeded, deterministic)."""
    from models.t2i import build_tiny_base, save_tiny_dmd2_unet

    base = build_tiny_base(out / "t2i" / "base", family="sdxl", seed=0, size=size)
    save_tiny_dmd2_unet(base, out / "t2i" / "dmd2_unet.safetensors", seed=1, format="safetensors")


# The demo's second ImageNet model: the micro preset (the demo's) with other seeded weights, saved as a
# checkpoint in the public DMD2 state-dict layout, so the demo lake holds two models'
# probes of the same images (`ingest activations --model teacher-stand-in --checkpoint ...`).
TEACHER_STAND_IN = "teacher_stand_in.pt"
TEACHER_STAND_IN_SEED = 7


def build_demo_teacher(out: Path) -> Path:
    """Write ``out/teacher_stand_in.pt``: the micro generator with seeded weights (seed 7), a stand-in for EDM's teacher."""
    import torch

    from models import build_generator

    path = out / TEACHER_STAND_IN
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(build_generator("micro", seed=TEACHER_STAND_IN_SEED).state_dict(), path)
    return path


def run(args: argparse.Namespace) -> None:
    from .errors import InputError
    from .options import positive

    for flag in ("train_per_photo", "val_per_photo", "jpeg_per_photo"):
        positive(getattr(args, flag), "--" + flag.replace("_", "-"))
    if args.t2i_size <= 0 or args.t2i_size % 32:
        raise InputError(f"--t2i-size: {args.t2i_size} is not a positive multiple of 32")
    build_demo_data(Path(args.out), DemoSizes(args.train_per_photo, args.val_per_photo, args.jpeg_per_photo))
    build_demo_t2i(Path(args.out), args.t2i_size)
    build_demo_teacher(Path(args.out))
    print(f"demo inputs written to {args.out}")
