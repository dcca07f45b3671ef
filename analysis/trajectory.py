"""The joint embedding across sigma: pure functions (no lake I/O; `steps.trajectory` does that).

One activation table ``activations/<layer>`` holds every sample at several noise
levels: cells (sample, sigma). Embedding each sigma on its own (the anchor's approach)
gives coordinates that mean different things at every sigma, so a sample's path across
sigma jumps around the map. Here one standardise + PCA and one UMAP are fitted on a
balanced sample of cells of *all* sigmas, and every other cell is placed with the fitted
model's `transform`, so the same coordinates mean the same thing at every noise level
(method ``joint``). Method ``aligned`` (the default, chosen by measurement: docs/analysis.md
"The joint embedding across sigma") fits `umap.AlignedUMAP` across the sigma slices of the same fit sample, which
keeps each sample's positions at consecutive sigmas close, and places every other cell
within its own sigma slice from its nearest fitted cells of that slice in the joint PCA
space (`analysis.placement`: UMAP membership weights, weighted mean of their stored
coordinates; no model object, no pickle). Multi-step trajectory steps, whose input sigmas
are usually not probe sigmas, are placed the same way among the fitted cells of the probe
sigma nearest in log sigma (`nearest_slices`).

Definitions used by the stored scores (also written into the arrays' attributes):

* fit sample (`fit_cells`): per sigma, up to ``fit_size // n_sigmas`` probed cells,
  balanced over (source, class) and chosen by the seeded hash of the sample id
  (`sampling.balanced_subsample`, salt ``trajectory-fit``). The hash does not depend on
  sigma, so where the same samples are probed at every sigma the same samples are chosen
  at every sigma (which also gives AlignedUMAP its relations). Which cells are chosen is a
  function of (seed, sample_id, sigma, probed cells) only: not of row order or chunking.
* score sample (`score_rows`): the `size` samples with the smallest seeded hash (salt
  ``trajectory-score``) among samples probed at two sigmas or more.
* trustworthiness at sigma s: sklearn's trustworthiness (k=10) of the score sample's
  cells at s, from the joint PCA space to the embedding.
* jump at sigma s (`jump_scores`): for the pair (s, s'), s' the next larger selected
  sigma, the median over the score samples probed at both of |e(sample, s') - e(sample, s)|,
  divided by the median nearest-neighbour distance, where each score-sample cell at s and
  at s' gets its distance to the nearest other score-sample cell *at the same sigma* and
  the median is taken over the cells of both sigmas. NaN at the largest sigma. The same
  fixed-size sample for every method makes the ratio comparable between embeddings of
  different scales (it is unit-free).
* local jump at sigma s (`jump_scores(..., local=True)`): the same ratio, but each sample's
  displacement is taken relative to the mean displacement of its 10 nearest score samples
  at s (in the embedding, among those probed at both sigmas). It is small when neighbours
  travel together (readable paths, even if the whole cloud moves between noise levels)
  and large when a sample's neighbours scatter (the same samples land in unrelated places).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from .embedding import MIN_ROWS, trustworthiness
from .errors import AnalysisError
from .jit import cache_compiled_kernels
from .keys import format_sigma
from .params import DEFAULT_TRAJECTORY_METHOD, TRAJECTORY_METHODS, UMAP_DEFAULTS, UMAPParams
from .pca import PCAModel, compute_moments, fit_from_moments
from .sampling import balanced_subsample, hash_subsample

METHODS = TRAJECTORY_METHODS
DEFAULT_METHOD = DEFAULT_TRAJECTORY_METHOD
SCORE_SAMPLES = 2000
FIT_SALT = "trajectory-fit"
SCORE_SALT = "trajectory-score"

JUMP_DEFINITION = (
    "jump[s] = median over score samples probed at s and s' of |e(s') - e(s)|, s' = the next larger sigma "
    "of the table, divided by the median over the score-sample cells at s and s' of each cell's distance to "
    "its nearest other score-sample cell at the same sigma; NaN at the largest sigma"
)
LOCAL_JUMP_DEFINITION = (
    "jump_local[s]: as jump, with each sample's displacement taken relative to the mean displacement of its 10 nearest "
    "score samples at s (embedding distance, among samples probed at s and s'); NaN at the largest sigma"
)
LOCAL_NEIGHBOURS = 10
TRUST_DEFINITION = "sklearn trustworthiness (k=10) of the score-sample cells at this sigma, joint PCA space -> embedding"


@dataclass(frozen=True)
class TrajectoryParams:
    """Everything that determines a joint embedding (what reuse compares)."""

    method: str = DEFAULT_METHOD
    sigmas: tuple[float, ...] | None = None  # None: every sigma of the table
    # The UMAP settings: defaults of `UMAPParams` (declared once, in analysis.params).
    pca_dim: int = UMAP_DEFAULTS.pca_dim
    n_neighbors: int = UMAP_DEFAULTS.n_neighbors
    min_dist: float = UMAP_DEFAULTS.min_dist
    metric: str = UMAP_DEFAULTS.metric
    seed: int = UMAP_DEFAULTS.seed
    fit_size: int = UMAP_DEFAULTS.fit_size
    full_fit: bool = UMAP_DEFAULTS.full_fit
    score_samples: int = SCORE_SAMPLES

    def umap(self) -> UMAPParams:
        """The UMAP settings of the joint (and of each independent) embedding: always 2-D."""
        return UMAPParams(**{f.name: getattr(self, f.name) for f in fields(UMAPParams) if f.name != "n_components"}, n_components=2)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["sigmas"] = None if self.sigmas is None else [float(np.float32(s)) for s in self.sigmas]
        return out


@dataclass
class FitSample:
    """The fit cells, one row array per sigma (sorted), and where each sigma's rows start in the stacked fit table."""

    rows: list[np.ndarray]
    offsets: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.offsets = np.concatenate([[0], np.cumsum([len(r) for r in self.rows])]).astype(np.int64)

    @property
    def size(self) -> int:
        return int(self.offsets[-1])

    def mask(self, n_rows: int) -> np.ndarray:
        """(sample, sigma) bool: True at the fit cells."""
        out = np.zeros((n_rows, len(self.rows)), dtype=bool)
        for j, rows in enumerate(self.rows):
            out[rows, j] = True
        return out

    def slice(self, j: int) -> slice:
        """The stacked fit table's rows of sigma `j`."""
        return slice(int(self.offsets[j]), int(self.offsets[j + 1]))


def select_sigmas(stored: list[float], requested: tuple[float, ...] | None, where: str) -> list[int]:
    """Positions in `stored` of the requested sigmas (all when None); one-line errors for unknown ones or fewer than 2."""
    from .keys import sigma_index

    if requested is None:
        positions = list(range(len(stored)))
    else:
        positions = []
        for sigma in requested:
            index = sigma_index(stored, sigma)
            if index is None:
                raise AnalysisError(f"--sigmas {format_sigma(sigma)}: {where} has no such sigma; it has: {', '.join(format_sigma(s) for s in stored)}")
            if index not in positions:
                positions.append(index)
    if len(positions) < 2:
        have = ", ".join(format_sigma(stored[i]) for i in positions) or "none"
        raise AnalysisError(f"{where}: a joint embedding across sigma needs at least 2 sigmas; selected: {have}")
    return positions


def check_counts(valid: np.ndarray, sigmas: list[float], where: str) -> None:
    """Every selected sigma needs at least MIN_ROWS probed rows (one-line error otherwise)."""
    counts = valid.sum(axis=0)
    for sigma, count in zip(sigmas, counts):
        if count < MIN_ROWS:
            raise AnalysisError(f"{where}: only {int(count)} probed rows at sigma {format_sigma(sigma)}; the joint embedding needs at least {MIN_ROWS} per sigma")


def fit_cells(sample_ids: np.ndarray, groups: np.ndarray, valid: np.ndarray, size: int, seed: int) -> FitSample:
    """The balanced fit sample: per sigma, up to ``size // n_sigmas`` probed cells (see the module docstring)."""
    per_sigma = max(1, size // valid.shape[1])
    rows = []
    for j in range(valid.shape[1]):
        candidates = np.flatnonzero(valid[:, j])
        chosen = balanced_subsample(sample_ids[candidates], groups[candidates], per_sigma, seed, salt=FIT_SALT)
        rows.append(candidates[chosen])
    return FitSample(rows)


def all_cells(valid: np.ndarray) -> FitSample:
    """Every probed cell as the fit sample (full fit)."""
    return FitSample([np.flatnonzero(valid[:, j]) for j in range(valid.shape[1])])


def score_rows(sample_ids: np.ndarray, valid: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Rows of the score sample: seeded hash of the id among samples probed at >= 2 sigmas (sorted)."""
    candidates = np.flatnonzero(valid.sum(axis=1) >= 2)
    return candidates[hash_subsample(sample_ids[candidates], size, seed, salt=SCORE_SALT)]


def fit_pca(values: np.ndarray, pca_dim: int) -> PCAModel:
    """Standardise + PCA fitted on the stacked fit cells (rows, channel), with the analysis' own exact PCA."""
    import dask.array as da

    moments = compute_moments(da.from_array(np.asarray(values, dtype=np.float32), chunks=(65536, -1)))
    if moments.count < MIN_ROWS:
        raise AnalysisError(f"the fit sample has {moments.count} rows without NaN; the joint embedding needs at least {MIN_ROWS}")
    return fit_from_moments(moments, pca_dim)


@dataclass(frozen=True)
class ModelPlacer:
    """Places cells with a fitted UMAP's `transform` (method joint); every column of a block alike."""

    model: Any
    pca: PCAModel

    @property
    def n_components(self) -> int:
        return int(self.model.n_components)

    def __call__(self, block: np.ndarray, keep: np.ndarray) -> np.ndarray:
        return embed_block(self.model, self.pca, block, keep)


@dataclass(frozen=True)
class SlicePlacer:
    """Places cells among stored fitted cells, without a model (method aligned).

    Column j of a block is placed among the fitted cells of slice ``targets[j]``: their
    joint-PCA scores `fitted[t]` and embedding coordinates `coords[t]`, with
    `analysis.placement.place` (k = `n_neighbors` nearest fitted cells of that slice,
    UMAP membership weights, weighted mean of their coordinates). A cell identical to a
    fitted cell of its slice lands on it. Each cell's position depends only on its own
    activations and the fitted cells, not on the block it arrives in.
    """

    pca: PCAModel
    fitted: tuple[np.ndarray, ...]
    coords: tuple[np.ndarray, ...]
    targets: tuple[int, ...]
    n_neighbors: int
    metric: str = "euclidean"

    @property
    def n_components(self) -> int:
        return int(self.coords[0].shape[1])

    def __call__(self, block: np.ndarray, keep: np.ndarray) -> np.ndarray:
        from .placement import place

        block = np.asarray(block)
        out = np.full((*keep.shape, self.n_components), np.nan, dtype=np.float32)
        for j, target in enumerate(self.targets):
            here = keep[:, j]
            if here.any():
                out[here, j] = place(self.fitted[target], self.coords[target], self.pca.transform(block[here, j]),
                                     self.n_neighbors, self.metric)
        return out


def nearest_slices(step_sigmas: list[float], sigmas: list[float]) -> tuple[int, ...]:
    """For each step sigma, the position in `sigmas` of the nearest one in log sigma (the smaller on a tie)."""
    log_sigmas = np.log(np.asarray(sigmas, dtype=np.float64))
    out = []
    for sigma in step_sigmas:
        distance = np.abs(log_sigmas - np.log(float(sigma)))
        ties = np.flatnonzero(distance <= distance.min() + 1e-12)
        out.append(int(ties[np.argmin(np.asarray(sigmas)[ties])]))
    return tuple(out)


def embed_block(model: Any, pca: PCAModel, block: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Place the cells `keep` (rows, sigma) of one block of activations (rows, sigma, channel) with a fitted UMAP.

    Returns (rows, sigma, n_components) float32, NaN where not kept. One `transform` call
    per block, so a block's result depends only on the model and the block.
    """
    from .embedding import transform_rows

    block = np.asarray(block)
    out = np.full((*keep.shape, model.n_components), np.nan, dtype=np.float32)
    if keep.any():
        scores = pca.transform(block[keep])
        out[keep] = transform_rows(model, scores, np.ones(len(scores), dtype=bool))
    return out


def nearest_distances(points: np.ndarray) -> np.ndarray:
    """Each point's distance to its nearest other point (exact)."""
    from sklearn.neighbors import NearestNeighbors

    if len(points) < 2:
        return np.full(len(points), np.nan)
    distances, _ = NearestNeighbors(n_neighbors=2).fit(points).kneighbors(points)
    return distances[:, 1]


def next_larger(sigmas: list[float]) -> list[int | None]:
    """For each sigma, the position of the next larger one in `sigmas` (None for the largest)."""
    order = np.argsort(np.asarray(sigmas, dtype=np.float64), kind="stable")
    out: list[int | None] = [None] * len(sigmas)
    for a, b in zip(order[:-1], order[1:]):
        out[int(a)] = int(b)
    return out


def jump_scores(embedding: np.ndarray, sigmas: list[float], local: bool = False) -> np.ndarray:
    """The jump score (or, with `local`, the local jump score) at each sigma (see the module docstring).

    `embedding` is the score sample's (sample, sigma, axis), NaN where a cell is absent.
    """
    present = ~np.isnan(embedding).any(axis=2)
    nn = [np.full(len(embedding), np.nan) for _ in sigmas]
    for j in range(len(sigmas)):
        nn[j][present[:, j]] = nearest_distances(embedding[present[:, j], j])
    out = np.full(len(sigmas), np.nan)
    for j, k in enumerate(next_larger(sigmas)):
        if k is None:
            continue
        both = present[:, j] & present[:, k]
        if both.sum() < (LOCAL_NEIGHBOURS + 1 if local else 1):
            continue
        moves = embedding[both, k] - embedding[both, j]
        if local:
            moves = moves - neighbour_mean(embedding[both, j], moves, LOCAL_NEIGHBOURS)
        scale = np.median(np.concatenate([nn[j][present[:, j]], nn[k][present[:, k]]]))
        out[j] = float(np.median(np.linalg.norm(moves, axis=1)) / scale) if scale > 0 else np.nan
    return out


def neighbour_mean(points: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """For each point, the mean of `values` over its `k` nearest other points."""
    from sklearn.neighbors import NearestNeighbors

    _, index = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points)
    return values[index[:, 1:]].mean(axis=1)


def trust_scores(scores: np.ndarray, embedding: np.ndarray) -> np.ndarray:
    """Trustworthiness at each sigma: PCA scores (sample, sigma, d) -> embedding (sample, sigma, axis)."""
    out = np.full(scores.shape[1], np.nan)
    for j in range(scores.shape[1]):
        here = ~np.isnan(embedding[:, j]).any(axis=1) & ~np.isnan(scores[:, j]).any(axis=1)
        out[j] = trustworthiness(scores[here, j], embedding[here, j])
    return out


def aligned_embedding(fit_scores: np.ndarray, fit: FitSample, sample_ids: np.ndarray, sigmas: list[float], params: TrajectoryParams) -> list[np.ndarray]:
    """AlignedUMAP across sigma slices of the fit cells (slices in increasing sigma, relations = same sample id).

    Returns each sigma's fit-cell coordinates, in `fit.rows[j]` order. AlignedUMAP has no
    `transform`: it embeds exactly the cells it is fitted on.
    """
    import warnings

    import umap

    cache_compiled_kernels()
    order = [int(j) for j in np.argsort(np.asarray(sigmas, dtype=np.float64), kind="stable")]
    slices = [np.ascontiguousarray(fit_scores[fit.slice(j)], dtype=np.float32) for j in order]
    relations = []
    for a, b in zip(order[:-1], order[1:]):
        position_b = {sample_ids[r]: i for i, r in enumerate(fit.rows[b])}
        relations.append({i: position_b[sample_ids[r]] for i, r in enumerate(fit.rows[a]) if sample_ids[r] in position_b})
    smallest = min(len(s) for s in slices)
    model = umap.AlignedUMAP(n_neighbors=min(params.n_neighbors, smallest - 1), min_dist=params.min_dist, metric=params.metric,
                             n_components=2, random_state=params.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(slices, relations=relations)
    out: list[np.ndarray] = [np.empty((0, 2), dtype=np.float32)] * len(sigmas)
    for position, j in enumerate(order):
        out[j] = np.asarray(model.embeddings_[position], dtype=np.float32)
    return out
