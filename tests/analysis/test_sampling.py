"""Seeded-hash subsets: stable, order-independent, balanced."""
from __future__ import annotations

import numpy as np

from analysis.sampling import balanced_quotas, balanced_subsample, hash_subsample, id_hashes


def test_hash_subsample_depends_on_ids_and_seed_not_on_order() -> None:
    ids = np.array([f"in64/train/{i}" for i in range(1000)], dtype=object)
    rows = hash_subsample(ids, 100, seed=3)
    assert len(rows) == 100 and len(np.unique(rows)) == 100
    shuffled = np.random.default_rng(0).permutation(1000)
    rows_shuffled = hash_subsample(ids[shuffled], 100, seed=3)
    assert set(ids[rows]) == set(ids[shuffled][rows_shuffled])
    assert set(hash_subsample(ids, 100, seed=4)) != set(rows)
    # Growing the table keeps earlier picks unless a new id hashes lower.
    grown = np.concatenate([ids, np.array([f"gen/m/s0/{i}" for i in range(10)], dtype=object)])
    assert len(set(ids[rows]) & set(grown[hash_subsample(grown, 100, seed=3)])) >= 90
    assert id_hashes(ids[:3], 3).tolist() == id_hashes(ids[:3], 3).tolist()


def test_balanced_quotas_water_fill() -> None:
    assert balanced_quotas(np.array([100, 100, 100]), 30).tolist() == [10, 10, 10]
    assert balanced_quotas(np.array([2, 100, 100]), 30).tolist() == [2, 14, 14]
    assert balanced_quotas(np.array([5, 7, 9]), 100).tolist() == [5, 7, 9]
    quotas = balanced_quotas(np.array([50, 40, 30, 3]), 31)
    assert quotas.sum() == 31 and quotas[3] == 3 and quotas.max() - quotas[:3].min() <= 1


def test_balanced_subsample_takes_equal_shares() -> None:
    groups = np.array(["real/0"] * 500 + ["generated/0"] * 50 + ["real/1"] * 300)
    ids = np.array([f"id{i}" for i in range(len(groups))], dtype=object)
    rows = balanced_subsample(ids, groups, 90, seed=1)
    labels, counts = np.unique(groups[rows], return_counts=True)
    assert dict(zip(labels, counts.tolist())) == {"generated/0": 30, "real/0": 30, "real/1": 30}
    assert (np.diff(rows) > 0).all()
