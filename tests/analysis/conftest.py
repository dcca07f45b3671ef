"""Small real lakes for the analysis tests, written through the lake API.

Layout as README "activations/<layer>": `mean` (NaN where not probed), `probed`, labels.

`write_activations` builds an ``activations/<layer>`` table exactly as README schema v1
describes it (the ingest job writes the same layout); `write_samples` adds the matching
rows of the samples table; `synthetic_table` makes clustered activations with a known
real/generated structure.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from lake import SAMPLES, ColumnSpec, LakeWriter, Provenance, TableSpec
from lake.schema import STRING


def activation_spec(layer: str, sigmas: np.ndarray, n_channel: int, rows_per_chunk: int = 64) -> TableSpec:
    n_sigma = len(sigmas)
    return TableSpec(
        path=f"activations/{layer}",
        row_dim="sample",
        columns=(
            ColumnSpec("mean", "float32", (n_sigma, n_channel), ("sigma", "channel"), rows_per_chunk=rows_per_chunk, coord=False),
            ColumnSpec("probed", "bool", (n_sigma,), ("sigma",), rows_per_chunk=rows_per_chunk, coord=False),
            ColumnSpec("sample_id", STRING),
            ColumnSpec("source", STRING),
            ColumnSpec("class_id", "int16"),
        ),
        fixed_coords={"sigma": np.asarray(sigmas, dtype=np.float32), "channel": np.arange(n_channel, dtype=np.int32)},
        attrs={"layer": layer, "model_id": "test", "weights": "random", "noise_seed": 0, "probe": "test"},
    )


def write_activations(
    lake: Path,
    layer: str,
    values: np.ndarray,
    sample_ids: np.ndarray,
    source: np.ndarray,
    class_id: np.ndarray,
    sigmas: np.ndarray,
    rows_per_chunk: int = 64,
    batch: int = 100,
) -> None:
    """Append an activation table (values: sample x sigma x channel) in batches, committing each."""
    spec = activation_spec(layer, sigmas, values.shape[2], rows_per_chunk)
    with LakeWriter.open(lake, Provenance(job="test activations")) as writer:
        table = writer.table(spec)
        for start in range(0, len(values), batch):
            stop = start + batch
            table.append(
                {
                    "mean": values[start:stop].astype(np.float32),
                    "probed": ~np.isnan(values[start:stop]).any(axis=2),
                    "sample_id": np.asarray(sample_ids[start:stop], dtype=object),
                    "source": np.asarray(source[start:stop], dtype=object),
                    "class_id": np.asarray(class_id[start:stop], dtype=np.int16),
                }
            )
            writer.commit()


def write_samples(lake: Path, sample_ids: np.ndarray, source: np.ndarray, class_id: np.ndarray, split: np.ndarray) -> None:
    """Rows of the samples table (blank images) for the given ids."""
    n = len(sample_ids)
    with LakeWriter.open(lake, Provenance(job="test samples")) as writer:
        writer.table(SAMPLES).append(
            {
                "image": np.zeros((n, 64, 64, 3), dtype=np.uint8),
                "sample_id": np.asarray(sample_ids, dtype=object),
                "source": np.asarray(source, dtype=object),
                "split": np.asarray(split, dtype=object),
                "class_id": np.asarray(class_id, dtype=np.int16),
                "wnid": np.full(n, "n00000000", dtype=object),
                "class_name": np.full(n, "test", dtype=object),
                "origin": np.asarray(sample_ids, dtype=object),
                "seed": np.where(np.asarray(source) == "real", -1, np.arange(n)).astype(np.int64),
                "model_id": np.where(np.asarray(source) == "real", "", "test").astype(object),
            }
        )


@dataclass
class SyntheticTable:
    values: np.ndarray  # (n, n_sigma, n_channel) float32, NaN rows = not probed
    sample_ids: np.ndarray
    source: np.ndarray
    class_id: np.ndarray
    split: np.ndarray
    sigmas: np.ndarray


def synthetic_table(
    n_real: int = 240,
    n_generated: int = 160,
    n_classes: int = 4,
    n_channel: int = 24,
    sigmas: tuple[float, ...] = (0.5, 2.0),
    nan_rows: int = 5,
    generated_shift: float = 0.5,
    seed: int = 0,
) -> SyntheticTable:
    """Clustered activations: one Gaussian cluster per class, generated samples shifted a little."""
    rng = np.random.default_rng(seed)
    n = n_real + n_generated
    class_id = np.concatenate([np.arange(n_real) % n_classes, np.arange(n_generated) % n_classes]).astype(np.int16)
    source = np.array(["real"] * n_real + ["generated"] * n_generated, dtype=object)
    centers = rng.normal(0.0, 4.0, (n_classes, n_channel))
    mixing = rng.normal(0.0, 1.0, (n_channel, n_channel)) / np.sqrt(n_channel)
    base = centers[class_id] + rng.normal(0.0, 1.0, (n, n_channel)) @ mixing
    base[source == "generated"] += generated_shift
    values = np.stack([base * (1.0 + s) + s for s in sigmas], axis=1).astype(np.float32)
    values[1, 0] = np.nan  # partly probed rows (one sigma only) count as not probed there
    if nan_rows:
        values[rng.choice(n, nan_rows, replace=False)] = np.nan
    sample_ids = np.array(
        [f"in64/val_data/{i}" for i in range(n_real)] + [f"gen/test/s0/{i}" for i in range(n_generated)], dtype=object
    )
    split = np.array(["val"] * n_real + ["generated"] * n_generated, dtype=object)
    return SyntheticTable(values, sample_ids, source, class_id, split, np.asarray(sigmas, dtype=np.float32))


def build_lake(path: Path, table: SyntheticTable, layer: str = "enc.8x8_block2", samples: bool = True, rows_per_chunk: int = 64) -> Path:
    """A lake holding `table` as activations/<layer> (and its samples, minus the last 3, to test tolerance)."""
    write_activations(path, layer, table.values, table.sample_ids, table.source, table.class_id, table.sigmas, rows_per_chunk)
    if samples:
        keep = slice(0, len(table.sample_ids) - 3)
        write_samples(path, table.sample_ids[keep], table.source[keep], table.class_id[keep], table.split[keep])
    return path


@pytest.fixture
def table() -> SyntheticTable:
    return synthetic_table()


@pytest.fixture
def lake(tmp_path: Path, table: SyntheticTable) -> Path:
    return build_lake(tmp_path / "lake", table)
