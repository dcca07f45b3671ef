"""The ImageNet-1k class table, and conversions between its three label systems.

`class_id` is the standard order (sorted WordNet ids) that the DMD2/EDM generator is
conditioned on. ImageNet64 NPZ files use a different, 1-indexed order
(`imagenet64_label`, label 1 = kit fox), so NPZ labels are always converted through
the WordNet id.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import resources

import numpy as np

NUM_CLASSES = 1000


@dataclass(frozen=True)
class ClassTable:
    """The 1000 ImageNet classes, indexed by standard class_id."""

    wnids: tuple[str, ...]
    names: tuple[str, ...]
    imagenet64_labels: np.ndarray  # (1000,) int, 1-indexed, by class_id

    def label(self, class_id: int) -> str:
        """Human label such as '1: goldfish' (never a bare number); ValueError outside 0..999.

        Text-to-image samples without a class carry -1, which must never index from the end.
        """
        if not 0 <= class_id < len(self.names):
            raise ValueError(f"class id {class_id} is not an ImageNet class (0..{len(self.names) - 1})")
        return f"{class_id}: {self.names[class_id].replace('_', ' ')}"

    @cached_property
    def class_id_by_wnid(self) -> dict[str, int]:
        return {wnid: i for i, wnid in enumerate(self.wnids)}

    @cached_property
    def _class_id_by_imagenet64_label(self) -> np.ndarray:
        lookup = np.full(NUM_CLASSES + 1, -1, dtype=np.int64)
        lookup[self.imagenet64_labels] = np.arange(NUM_CLASSES)
        return lookup

    def class_ids_from_imagenet64(self, labels: np.ndarray) -> np.ndarray:
        """Map 1-indexed ImageNet64 labels to standard class ids. Raises ValueError when out of range."""
        labels = np.asarray(labels)
        bad = (labels < 1) | (labels > NUM_CLASSES)
        if bad.any():
            raise ValueError(f"label {int(labels[bad][0])} is outside 1..{NUM_CLASSES}")
        return self._class_id_by_imagenet64_label[labels.astype(np.int64)]

    def resolve(self, token: str) -> int:
        """A class given as an id ('1'), a wnid ('n01443537') or a name ('goldfish')."""
        token = token.strip()
        if token.isdigit() and int(token) < NUM_CLASSES:
            return int(token)
        if token in self.class_id_by_wnid:
            return self.class_id_by_wnid[token]
        normalised = token.lower().replace(" ", "_")
        for class_id, name in enumerate(self.names):
            if name.lower() == normalised:
                return class_id
        raise ValueError(f"unknown class {token!r}: give a class id 0..999, a wnid like n01443537 or a name like goldfish")

    def search(self, text: str) -> list[int]:
        """Class ids whose id, wnid or name contains `text` (case-insensitive)."""
        needle = text.strip().lower().replace(" ", "_")
        if not needle:
            return list(range(NUM_CLASSES))
        return [
            i
            for i, (wnid, name) in enumerate(zip(self.wnids, self.names))
            if needle == str(i) or needle in wnid or needle in name.lower()
        ]


@lru_cache(maxsize=1)
def imagenet_classes() -> ClassTable:
    """The class table shipped with the package (a copy of shared/data/imagenet_classes.tsv)."""
    text = resources.files("lake").joinpath("data/imagenet_classes.tsv").read_text()
    rows = sorted(csv.DictReader(text.splitlines(), delimiter="\t"), key=lambda r: int(r["class_id"]))
    if [int(r["class_id"]) for r in rows] != list(range(NUM_CLASSES)):
        raise RuntimeError("imagenet_classes.tsv must list class ids 0..999 exactly once")
    return ClassTable(
        wnids=tuple(r["wnid"] for r in rows),
        names=tuple(r["name"] for r in rows),
        imagenet64_labels=np.array([int(r["imagenet64_label"]) for r in rows], dtype=np.int64),
    )
