"""Deterministic subsets chosen from sample ids by a seeded hash (never a running RNG stream).

The same (seed, ids) always gives the same subset, whatever the row order, the number
of workers or what else was drawn before; adding samples to a table only ever adds
candidates, so subsets of a growing table are stable.
"""
from __future__ import annotations

import hashlib

import numpy as np


def id_hashes(sample_ids: np.ndarray, seed: int, salt: str = "") -> np.ndarray:
    """A uint64 per id from blake2b(seed, salt, id): uniform, stable across runs and machines."""
    key = f"{seed}:{salt}:".encode()
    out = np.empty(len(sample_ids), dtype=np.uint64)
    for i, sample_id in enumerate(sample_ids):
        digest = hashlib.blake2b(key + str(sample_id).encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "little")
    return out


def hash_subsample(sample_ids: np.ndarray, size: int, seed: int, salt: str = "") -> np.ndarray:
    """Rows of the `size` ids with the smallest seeded hash (all rows when there are fewer), sorted."""
    n = len(sample_ids)
    if size >= n:
        return np.arange(n, dtype=np.int64)
    hashes = id_hashes(sample_ids, seed, salt)
    chosen = np.argpartition(hashes, size - 1)[:size] if size > 0 else np.array([], dtype=np.int64)
    return np.sort(chosen).astype(np.int64)


def balanced_quotas(group_sizes: np.ndarray, size: int) -> np.ndarray:
    """How many to take from each group: as equal as possible, capped by each group's size.

    Water-filling: groups smaller than the fair share give all they have and the rest
    is shared among the larger ones; leftover units go to the larger groups first (ties
    by group order), so the total is exactly min(size, sum of sizes).
    """
    group_sizes = np.asarray(group_sizes, dtype=np.int64)
    quotas = np.zeros_like(group_sizes)
    remaining = min(int(size), int(group_sizes.sum()))
    open_groups = np.flatnonzero(group_sizes > 0)
    while remaining > 0 and open_groups.size:
        share = remaining // open_groups.size
        if share == 0:
            order = open_groups[np.lexsort((open_groups, -(group_sizes[open_groups] - quotas[open_groups])))]
            quotas[order[:remaining]] += 1
            break
        room = group_sizes[open_groups] - quotas[open_groups]
        take = np.minimum(room, share)
        quotas[open_groups] += take
        remaining -= int(take.sum())
        open_groups = open_groups[group_sizes[open_groups] > quotas[open_groups]]
    return quotas


def balanced_subsample(sample_ids: np.ndarray, groups: np.ndarray, size: int, seed: int, salt: str = "") -> np.ndarray:
    """Rows of a subset of `size` ids balanced over `groups` (e.g. (source, class) labels), sorted.

    Within a group the ids with the smallest seeded hash are taken.
    """
    n = len(sample_ids)
    if size >= n:
        return np.arange(n, dtype=np.int64)
    hashes = id_hashes(sample_ids, seed, salt)
    _, inverse, counts = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
    quotas = balanced_quotas(counts, size)
    order = np.lexsort((hashes, inverse))  # by group, then by hash within the group
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    chosen = np.concatenate([order[s : s + q] for s, q in zip(starts, quotas)]) if len(counts) else np.array([], dtype=np.int64)
    return np.sort(chosen).astype(np.int64)


def group_labels(source: np.ndarray, class_id: np.ndarray) -> np.ndarray:
    """One label per row combining source and class, for balancing."""
    return np.array([f"{s}/{int(c)}" for s, c in zip(np.asarray(source, dtype=object), np.asarray(class_id))], dtype=object)
