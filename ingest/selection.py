"""Which inputs an ingest keeps: --classes, --per-class and --limit, as pure functions of the labels."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InputError


@dataclass(frozen=True)
class Selection:
    """A deterministic subset of the input, defined on labels in input order."""

    limit: int | None = None
    classes: frozenset[int] | None = None
    per_class: int | None = None
    # The --classes text as given (ids, wnids or names), recorded in provenance.
    classes_text: str | None = field(default=None, compare=False)

    def describe(self) -> dict[str, Any]:
        """The selection as provenance records it (the flags' values)."""
        classes = self.classes_text if self.classes_text is not None else (sorted(self.classes) if self.classes else None)
        return {"limit": self.limit, "classes": classes, "per_class": self.per_class}

    def mask(self, class_ids: np.ndarray) -> np.ndarray:
        """Boolean mask over inputs (in their global order) of those to ingest."""
        class_ids = np.asarray(class_ids, dtype=np.int64)
        keep = np.ones(class_ids.shape, dtype=bool)
        if self.classes is not None:
            keep &= np.isin(class_ids, np.fromiter(self.classes, dtype=np.int64))
        if self.per_class is not None:
            keep &= _rank_within_class(class_ids, keep) < self.per_class
        if self.limit is not None:
            keep &= np.cumsum(keep) <= self.limit
        return keep


def _rank_within_class(class_ids: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """For each kept input, how many kept inputs of its class come before it."""
    ranks = np.full(class_ids.shape, np.iinfo(np.int64).max, dtype=np.int64)
    positions = np.flatnonzero(keep)
    kept_classes = class_ids[positions]
    order = np.argsort(kept_classes, kind="stable")
    sorted_classes = kept_classes[order]
    group_start = np.r_[0, np.flatnonzero(np.diff(sorted_classes)) + 1]
    counts = np.diff(np.r_[group_start, len(sorted_classes)])
    ranks_sorted = np.arange(len(sorted_classes)) - np.repeat(group_start, counts)
    ranks[positions[order]] = ranks_sorted
    return ranks


def parse_selection(limit: int | None, classes: str | None, per_class: int | None) -> Selection:
    """Build a Selection from CLI flags, with one-line errors naming the flag."""
    from lake.classes import imagenet_classes

    if limit is not None and limit < 0:
        raise InputError(f"--limit must be >= 0, got {limit}")
    if per_class is not None and per_class <= 0:
        raise InputError(f"--per-class must be a positive integer, got {per_class}")
    chosen = None
    if classes:
        table = imagenet_classes()
        try:
            chosen = frozenset(table.resolve(token) for token in classes.split(",") if token.strip())
        except ValueError as exc:
            raise InputError(f"--classes: {exc}") from None
    return Selection(limit=limit, classes=chosen, per_class=per_class, classes_text=classes)
