"""Trajectory step: one embedding of every sigma of a layer (and the multi-step samples' steps in it).

Reads ``activations/<layer>`` (`mean` (sample, sigma, channel), `probed`) at all its
sigmas (or `--sigmas`) and, for every schedule with ``trajectories/<schedule>/<layer>``,
the per-step generation means. Writes ``analysis/trajectory/<layer>``
(`lake.layout.joint_embedding_spec`): `embedding` (sample, sigma, axis), NaN where a cell
was not probed, the label columns, `fit_cell` (sample, sigma) and the per-sigma scores
`trustworthiness`, `jump`, `jump_local` and the same three with `_independent` along
``sigma`` (definitions in `analysis.trajectory` and in each array's attributes); and
``analysis/trajectory/<layer>/<schedule>``: the steps placed in the same embedding. All
of it is staged and swapped in at once.

Both methods fit standardise + PCA on a balanced sample of cells of all sigmas and place
every other cell in blocks of rows read from the lake as Dask tasks (bounded memory).
Method `aligned` (default): AlignedUMAP across the sigma slices of the fit sample; the
other cells are placed within their sigma slice from their nearest fitted cells
(`analysis.trajectory.SlicePlacer`), the trajectory steps among the fitted cells of the
probe sigma nearest in log sigma. Method `joint`: one UMAP fitted on the fit sample, the
rest placed by its `transform`. Both store the independent per-sigma UMAPs' scores
(fitted on the same fit cells) beside their own, so the readability gain is a stored
number, and record which cells were fitted (`fit_cell`) and how the rest were placed.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from lake import StagedGroup
from lake.layout import joint_embedding_group, joint_embedding_spec, trajectory_layer_group

from ..embedding import TRANSFORM_ROWS, check_metric, fit_umap, prepare_for_transform
from ..errors import AnalysisError
from ..inputs import SampleLookup
from ..keys import AnalysisKey, format_sigma
from ..pca import PCAModel
from ..results import LabelColumns, to_attr, write_rows
from .base import Computed, Context, Step, require
from ..sampling import group_labels
from ..scheduler import compute_with_progress
from ..trajectory import (
    JUMP_DEFINITION,
    LOCAL_JUMP_DEFINITION,
    METHODS,
    TRUST_DEFINITION,
    FitSample,
    ModelPlacer,
    SlicePlacer,
    TrajectoryParams,
    aligned_embedding,
    all_cells,
    check_counts,
    fit_cells,
    fit_pca,
    jump_scores,
    nearest_slices,
    score_rows,
    select_sigmas,
    trust_scores,
)


@dataclass
class TrajectoryInputs:
    """What the step reads before computing (and what reuse compares): labels, probed cells, schedules."""

    group: str
    positions: list[int]  # the selected sigmas' positions on the table's sigma axis
    sigmas: list[float]
    sample_id: np.ndarray
    source: np.ndarray
    class_id: np.ndarray
    valid: np.ndarray  # (sample, selected sigma) bool: probed
    schedules: dict[str, int]  # schedule -> rows of trajectories/<schedule>/<layer>

    @property
    def fingerprint(self) -> dict[str, Any]:
        """The input's identity for reuse: row count, probed cells per sigma, schedule rows."""
        return {"source_rows": int(len(self.sample_id)), "source_probed": [int(c) for c in self.valid.sum(axis=0)],
                "schedule_rows": dict(self.schedules)}


def read_inputs(lake: Any, layer: str, requested: tuple[float, ...] | None) -> TrajectoryInputs:
    """The labels and probed cells of ``activations/<layer>`` at the selected sigmas, and the schedules with this layer."""
    group = AnalysisKey(layer, 0.0).activations_group
    stored = list(lake.activation_sigmas(layer))
    positions = select_sigmas(stored, requested, f"{lake.path}: {group}")
    if lake.shape(group, "probed") is None:
        raise AnalysisError(f"{lake.path}: {group} has no 'probed' column; re-ingest it with `python -m ingest activations`")
    valid = np.asarray(lake.column(group, "probed"), dtype=bool)[:, positions]
    schedules = {s: int(lake.shape(trajectory_layer_group(s, layer), "sample_id")[0])
                 for s in lake.schedules() if layer in lake.trajectory_layers(s)}
    return TrajectoryInputs(
        group=group,
        positions=positions,
        sigmas=[stored[i] for i in positions],
        sample_id=np.asarray(lake.column(group, "sample_id"), dtype=object),
        source=np.asarray(lake.column(group, "source"), dtype=object),
        class_id=np.asarray(lake.column(group, "class_id"), dtype=np.int16),
        valid=valid,
        schedules=schedules,
    )


def read_cells(lake: Any, group: str, fit: FitSample, positions: list[int]) -> np.ndarray:
    """The activations of the fit cells, stacked sigma by sigma (fit.size, channel) float32."""
    parts = [np.asarray(lake.column(group, "mean", rows=rows, cols=positions[j]), dtype=np.float32).reshape(len(rows), -1)
             for j, rows in enumerate(fit.rows)]
    return np.concatenate(parts, axis=0)


def place_blocks(placer: Any, values: Any, keep: np.ndarray | None, desc: str, progress: bool) -> np.ndarray:
    """Embed the cells of a lazy (rows, sigma, channel) table in blocks of rows, as Dask tasks, a few at a time.

    `placer` (`ModelPlacer` or `SlicePlacer`) maps a block and its kept cells to
    coordinates. `keep` (rows, sigma) selects the cells (None: every cell without NaN). Blocks hold at
    most TRANSFORM_ROWS cells, so one block's activations and every transform call stay
    small; at most 2 x cores blocks are in flight, so memory does not grow with the table.
    """
    import dask

    rows, n_sigma = int(values.shape[0]), int(values.shape[1])
    block = max(1, TRANSFORM_ROWS // n_sigma)
    out = np.full((rows, n_sigma, placer.n_components), np.nan, dtype=np.float32)
    shared = dask.delayed(placer, pure=True, traverse=False)
    starts = [s for s in range(0, rows, block) if keep is None or keep[s : s + block].any()]
    batch = max(2, 2 * (os.cpu_count() or 1))
    from tqdm.auto import tqdm

    with tqdm(total=len(starts), desc=desc, unit="block", disable=not progress, leave=False) as bar:
        for first in range(0, len(starts), batch):
            part = starts[first : first + batch]
            tasks = [dask.delayed(_place, pure=True)(shared, values[s : s + block], None if keep is None else keep[s : s + block])
                     for s in part]
            for s, result in zip(part, compute_with_progress(tasks, desc, show=False)):
                out[s : s + len(result)] = result
            bar.update(len(part))
    return out


def _place(placer: Any, block: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
    block = np.asarray(block, dtype=np.float32)
    if keep is None:
        keep = ~np.isnan(block).any(axis=2)
    return placer(block, keep & ~np.isnan(block).any(axis=2))


class Laps:
    """Wall-clock seconds of each named phase of a run (the result's `timings`)."""

    def __init__(self) -> None:
        self.started = self._clock = time.perf_counter()
        self.timings: dict[str, float] = {}

    def lap(self, name: str) -> None:
        """Record the time since the previous lap (or the start) as phase `name`."""
        now = time.perf_counter()
        self.timings[name] = round(now - self._clock, 3)
        self._clock = now


@dataclass
class Fitted:
    """The fit phase: the fit cells, the joint PCA, their scores and coordinates, the joint model (method joint)."""

    fit: FitSample
    full: bool  # every probed cell is fitted: nothing else to place
    probed: int
    mask: np.ndarray  # (sample, sigma) bool: the fit cells
    pca: PCAModel
    fit_scores: np.ndarray
    coords: list[np.ndarray]  # per sigma, the fit cells' coordinates
    model: Any  # the joint UMAP (method joint; its transform places the rest), None for aligned
    embedding: np.ndarray  # (sample, sigma, 2): the fit cells now, every probed cell once placed


@dataclass
class Scores:
    """The per-sigma scores of the embedding and of independent per-sigma UMAPs, with their definitions."""

    samples: int  # rows of the score sample
    per_sigma: dict[str, tuple[np.ndarray, str]]


INDEPENDENT = "; independent per-sigma UMAPs on the same fit cells"
# The per-sigma scores whose medians the result's attributes (and its closing line) carry, in that order.
MEDIANS = ("jump", "jump_independent", "jump_local", "jump_local_independent", "trustworthiness", "trustworthiness_independent")


@dataclass
class Placed:
    """One schedule's steps placed in the joint embedding."""

    sigmas: list[float]
    targets: list[float] | None  # per step, the probe sigma whose fitted cells placed it (None: the joint model)
    embedding: np.ndarray  # (sample, step sigma, axis)
    sample_id: np.ndarray
    class_id: np.ndarray


@dataclass(frozen=True)
class TrajectoryStep(Step):
    """The joint embedding of one layer across sigma with `params`."""

    kind: ClassVar[str] = "trajectory"
    summary_fields: ClassVar[tuple[str, ...]] = ("method", "sigmas", "n_rows", "fit_rows", "jump_median", "jump_independent_median",
                                                 "jump_local_median", "jump_local_independent_median",
                                                 "trustworthiness_median", "trustworthiness_independent_median", "schedules", "seconds")
    uses_dask: ClassVar[bool] = True
    reads_pca: ClassVar[bool] = False  # fits its own PCA on cells of every sigma
    reuse_reason: ClassVar[str] = "same parameters and input rows"

    params: TrajectoryParams = field(default_factory=TrajectoryParams)

    def group(self, key: Any) -> str:
        return joint_embedding_group(key.layer)

    def label(self, key: AnalysisKey) -> str:
        return key.layer

    def parameters(self) -> dict[str, Any]:
        return self.params.as_dict()

    def check(self, lake: Any) -> None:
        p = self.params
        require(p.method in METHODS, f"--method {p.method!r}: must be one of {', '.join(METHODS)}")
        require(p.pca_dim >= 2, f"--pca-dim {p.pca_dim}: must be at least 2")
        require(p.n_neighbors >= 2, f"--n-neighbors {p.n_neighbors}: must be at least 2")
        require(p.score_samples >= 10, f"score_samples {p.score_samples}: must be at least 10")
        check_metric(p.metric)

    def provenance(self, ctx: Context) -> dict[str, Any]:
        return {"layer": ctx.key.layer, **self.parameters(), "scheduler": ctx.scheduler or "threads"}

    def _inputs(self, ctx: Context) -> TrajectoryInputs:
        if "inputs" not in ctx.cache:
            ctx.cache["inputs"] = read_inputs(ctx.lake, ctx.key.layer, self.params.sigmas)
        return ctx.cache["inputs"]

    def reusable(self, ctx: Context, stored: dict[str, Any]) -> bool:
        inputs = self._inputs(ctx)
        return stored.get("parameters") == to_attr(self.parameters()) and all(
            stored.get(name) == to_attr(value) for name, value in inputs.fingerprint.items()
        )

    def compute(self, ctx: Context) -> Computed:
        """Fit, place the other cells, score against independent per-sigma UMAPs, place the schedules' steps."""
        lake, layer, p = ctx.lake, ctx.key.layer, self.params
        inputs = self._inputs(ctx)
        check_counts(inputs.valid, inputs.sigmas, f"{lake.path}: {inputs.group}")
        laps = Laps()
        fitted = self._fit(ctx, inputs, laps)
        if not fitted.full:
            values = lake.activations(layer)["mean"].data[:, inputs.positions, :]
            keep = inputs.valid & ~fitted.mask
            rest = place_blocks(self._placer(fitted, tuple(range(len(inputs.sigmas)))), values, keep, f"place {layer}", ctx.progress)
            fitted.embedding[~fitted.mask] = rest[~fitted.mask]
        laps.lap("transform")
        scores = self._scores(lake, inputs, fitted, laps)
        placed = {schedule: self._place_schedule(ctx, schedule, lambda targets: self._placer(fitted, targets), inputs.sigmas,
                                                 len(fitted.pca.mean), fitted.model is None)
                  for schedule in inputs.schedules}
        laps.lap("trajectories")
        seconds = round(time.perf_counter() - laps.started, 2)
        n, n_sigma = inputs.valid.shape
        medians = {name: _median(values) for name, (values, _) in scores.per_sigma.items()}
        return Computed(
            attrs=self._attrs(ctx, inputs, fitted, scores, medians, sorted(placed), laps.timings, seconds),
            write=self._writer(layer, inputs, fitted, scores, placed, self._labels(lake, inputs)),
            message=lambda attrs: (
                f"wrote {self.group(ctx.key)}: {n} rows x {n_sigma} sigmas ({p.method}), median jump {_fmt(medians['jump'])} "
                f"(independent per-sigma UMAPs: {_fmt(medians['jump_independent'])}), local jump {_fmt(medians['jump_local'])} "
                f"({_fmt(medians['jump_local_independent'])}), median trustworthiness {_fmt(medians['trustworthiness'])} "
                f"({_fmt(medians['trustworthiness_independent'])}); {seconds:.1f} s"
                + (f"; placed {', '.join(sorted(placed))}" if placed else "")
            ),
        )

    def _fit(self, ctx: Context, inputs: TrajectoryInputs, laps: Laps) -> Fitted:
        """Choose the fit cells, fit the joint PCA on them, then their 2-D coordinates (joint UMAP or AlignedUMAP)."""
        p = self.params
        n, n_sigma = inputs.valid.shape
        probed = int(inputs.valid.sum())
        full = p.full_fit or probed <= p.fit_size
        groups = group_labels(inputs.source, inputs.class_id)
        fit = all_cells(inputs.valid) if full else fit_cells(inputs.sample_id, groups, inputs.valid, p.fit_size, p.seed)
        sigma_text = ", ".join(format_sigma(s) for s in inputs.sigmas)
        ctx.log(f"trajectory of {inputs.group} at sigmas {sigma_text}: {probed} probed cells of {n} rows; "
                f"{'fitting on all of them' if full else f'fitting on a balanced sample of {fit.size}'} ({p.method}), on {ctx.where}")
        fit_values = read_cells(ctx.lake, inputs.group, fit, inputs.positions)
        pca = fit_pca(fit_values, p.pca_dim)
        fit_scores = pca.transform(fit_values)
        del fit_values  # the fit cells' activations are the largest thing held; only their scores are needed now
        laps.lap("read_and_pca")
        embedding = np.full((n, n_sigma, 2), np.nan, dtype=np.float32)
        model = None
        if p.method == "joint":
            model = fit_umap(fit_scores, p.umap(), will_transform=not full or bool(inputs.schedules))
            coords = [np.asarray(model.embedding_[fit.slice(j)], dtype=np.float32) for j in range(n_sigma)]
        else:
            coords = aligned_embedding(fit_scores, fit, inputs.sample_id, inputs.sigmas, p)
        for j, rows in enumerate(fit.rows):
            embedding[rows, j] = coords[j]
        laps.lap("fit")
        return Fitted(fit, full, probed, fit.mask(n), pca, fit_scores, coords, model, embedding)

    def _placer(self, fitted: Fitted, targets: tuple[int, ...]) -> Any:
        """How cells are placed: the joint model's transform, or the fitted cells of slice targets[j] (aligned)."""
        if fitted.model is not None:
            prepare_for_transform(fitted.model)
            return ModelPlacer(fitted.model, fitted.pca)
        fit = fitted.fit
        return SlicePlacer(fitted.pca, tuple(np.ascontiguousarray(fitted.fit_scores[fit.slice(j)]) for j in range(len(fit.rows))),
                           tuple(fitted.coords), targets, min(self.params.n_neighbors, fit.size), self.params.metric)

    def _scores(self, lake: Any, inputs: TrajectoryInputs, fitted: Fitted, laps: Laps) -> Scores:
        """Scores on the seeded score sample, for this embedding and for independent per-sigma UMAPs."""
        p, sigmas = self.params, inputs.sigmas
        srows = score_rows(inputs.sample_id, inputs.valid, p.score_samples, p.seed)
        score_pca = self._score_pca(lake, inputs, fitted.pca, srows)
        joint = fitted.embedding[srows]
        trust, jump, local = trust_scores(score_pca, joint), jump_scores(joint, sigmas), jump_scores(joint, sigmas, local=True)
        laps.lap("scores")
        independent = self._independent(fitted.fit, fitted.fit_scores, srows, score_pca, p.umap())
        trust_ind, jump_ind = trust_scores(score_pca, independent), jump_scores(independent, sigmas)
        local_ind = jump_scores(independent, sigmas, local=True)
        laps.lap("independent")
        per_sigma = {
            "trustworthiness": (trust, TRUST_DEFINITION),
            "jump": (jump, JUMP_DEFINITION),
            "trustworthiness_independent": (trust_ind, TRUST_DEFINITION + INDEPENDENT),
            "jump_independent": (jump_ind, JUMP_DEFINITION + INDEPENDENT),
            "jump_local": (local, LOCAL_JUMP_DEFINITION),
            "jump_local_independent": (local_ind, LOCAL_JUMP_DEFINITION + INDEPENDENT),
        }
        return Scores(int(len(srows)), per_sigma)

    def _labels(self, lake: Any, inputs: TrajectoryInputs) -> LabelColumns:
        lookup = SampleLookup.from_lake(lake)
        sample_rows = lookup.rows(inputs.sample_id)
        return LabelColumns(inputs.sample_id, inputs.source, inputs.class_id, lookup.splits(sample_rows), sample_rows)

    def _writer(self, layer: str, inputs: TrajectoryInputs, fitted: Fitted, scores: Scores, placed: dict[str, Placed],
                labels: LabelColumns) -> Any:
        """The write phase: the embedding table, the per-sigma scores, `fit_cell`, and one child group per schedule."""
        method = self.params.method

        def write(staged: StagedGroup, attrs: dict[str, Any]) -> None:
            write_rows(staged.table(joint_embedding_spec(layer, inputs.sigmas, 2, attrs)), labels, {"embedding": fitted.embedding})
            for name, (values, definition) in scores.per_sigma.items():
                staged.write_array(name, np.asarray(values, dtype=np.float32), ("sigma",),
                                   {"description": definition, "score_samples": scores.samples})
            staged.write_array("fit_cell", fitted.mask, ("sample", "sigma"), {"description": "True where the (sample, sigma) cell is in the fit sample"})
            for schedule, steps in placed.items():
                child = {"analysis": self.kind, "method": method, "parameters": attrs["parameters"], "run_id": attrs["run_id"],
                         "created": attrs["created"], "source_group": trajectory_layer_group(schedule, layer),
                         "placement": ("the joint UMAP's transform" if steps.targets is None else
                                       "among the fitted cells of the probe sigma nearest in log sigma: " + PLACEMENT_DETAIL),
                         "placed_among_sigma": steps.targets}
                spec = joint_embedding_spec(layer, steps.sigmas, 2, to_attr(child), schedule=schedule)
                table = staged.writer.table(replace(spec, path=f"{staged.staging_path}/{schedule}"))
                table.append({"embedding": steps.embedding, "sample_id": steps.sample_id, "class_id": steps.class_id})

        return write

    def _attrs(self, ctx: Context, inputs: TrajectoryInputs, fitted: Fitted, scores: Scores, medians: dict[str, float | None],
               schedules: list[str], timings: dict[str, float], seconds: float) -> dict[str, Any]:
        """The result's own attributes: method, fit and placement counts, median scores, timings."""
        p, fit, pca = self.params, fitted.fit, fitted.pca
        return dict(
            sigma=None,  # every sigma: see `sigmas` (the key attribute names the layer)
            sigmas=[float(s) for s in inputs.sigmas],
            method=p.method,
            method_detail=("one standardise+PCA and one UMAP fitted on a balanced (sample, sigma) fit sample; other cells placed "
                           "by UMAP.transform" if p.method == "joint" else "one standardise+PCA fitted on a balanced (sample, sigma) "
                           "fit sample; AlignedUMAP across its sigma slices (increasing sigma, relations = the same sample id); "
                           "other cells placed within their sigma slice " + PLACEMENT_DETAIL),
            placement=("UMAP.transform of the joint model" if p.method == "joint" else "within the sigma slice: " + PLACEMENT_DETAIL),
            fitted_cells=fit.size,
            placed_cells=fitted.probed - fit.size,
            pca_components_used=int(pca.n_components),
            pca_explained_variance_ratio_total=float(pca.explained_variance_ratio.sum()),
            n_rows=int(inputs.valid.shape[0]),
            probed_cells=fitted.probed,
            fit_rows=fit.size,
            fit_rows_per_sigma=[int(len(r)) for r in fit.rows],
            fit_mode="all probed cells" if fitted.full else "balanced sample + transform",
            score_samples=scores.samples,
            **{f"{name}_median": medians[name] for name in MEDIANS},
            schedules=schedules,
            timings=timings,
            seconds=seconds,
            scheduler=ctx.where,
            **inputs.fingerprint,
        )

    def _score_pca(self, lake: Any, inputs: TrajectoryInputs, pca: PCAModel, srows: np.ndarray) -> np.ndarray:
        """Joint PCA scores (sample, sigma, component) of the score sample, NaN at cells not probed."""
        values = np.asarray(lake.column(inputs.group, "mean", rows=srows), dtype=np.float32)[:, inputs.positions]
        out = np.full((len(srows), len(inputs.positions), pca.n_components), np.nan, dtype=np.float32)
        keep = inputs.valid[srows] & ~np.isnan(values).any(axis=2)
        if keep.any():
            out[keep] = pca.transform(values[keep])
        return out

    def _independent(self, fit: FitSample, fit_scores: np.ndarray, srows: np.ndarray, score_pca: np.ndarray, umap_params: Any) -> np.ndarray:
        """The score sample in independent per-sigma UMAPs (the anchor's approach), each fitted on that sigma's fit cells."""
        from ..embedding import transform_rows

        out = np.full((len(srows), len(fit.rows), 2), np.nan, dtype=np.float32)
        for j, rows in enumerate(fit.rows):
            present = np.flatnonzero(~np.isnan(score_pca[:, j]).any(axis=1))
            position = np.searchsorted(rows, srows[present])
            position = np.minimum(position, max(len(rows) - 1, 0))
            in_fit = (rows[position] == srows[present]) if len(rows) else np.zeros(len(present), dtype=bool)
            model = fit_umap(fit_scores[fit.slice(j)], umap_params, will_transform=not in_fit.all())
            out[present[in_fit], j] = model.embedding_[position[in_fit]]
            if not in_fit.all():
                prepare_for_transform(model)
                out[present[~in_fit], j] = transform_rows(model, score_pca[present[~in_fit], j], np.ones(int((~in_fit).sum()), dtype=bool))
        return out

    def _place_schedule(self, ctx: Context, schedule: str, placer: Any, sigmas: list[float], channels: int, by_slice: bool) -> Placed:
        """Every step of `schedule`'s multi-step samples placed in the embedding: by the joint model's transform, or
        (`by_slice`, method aligned) among the fitted cells of the probe sigma nearest each step's sigma in log sigma."""
        lake, layer = ctx.lake, ctx.key.layer
        ds = lake.trajectory(schedule, layer)
        values = ds["mean"].data
        if int(values.shape[2]) != channels:
            raise AnalysisError(f"{lake.path}: {trajectory_layer_group(schedule, layer)} has {values.shape[2]} channels; "
                                f"activations/{layer} has {channels}")
        step_sigmas = [float(s) for s in np.asarray(ds["sigma"].values, dtype=np.float32)]
        targets = nearest_slices(step_sigmas, sigmas)
        ctx.log(f"placing the {values.shape[0]} samples x {values.shape[1]} steps of {schedule} in the joint embedding"
                + (f" (among the fitted cells of sigma {', '.join(format_sigma(sigmas[t]) for t in targets)})" if by_slice else ""))
        embedding = place_blocks(placer(targets), values, None, f"place {schedule}", ctx.progress)
        return Placed(
            sigmas=step_sigmas,
            targets=[float(sigmas[t]) for t in targets] if by_slice else None,
            embedding=embedding,
            sample_id=np.asarray(ds["sample_id"].values, dtype=object),
            class_id=np.asarray(ds["class_id"].values, dtype=np.int16),
        )


PLACEMENT_DETAIL = ("from its n_neighbors nearest fitted cells of that sigma in the joint PCA space (exact), UMAP membership "
                    "weights, weighted mean of their coordinates (analysis.placement.place); no model object, no pickle")


def _median(values: np.ndarray) -> float | None:
    finite = np.asarray(values)[np.isfinite(values)]
    return float(np.median(finite)) if len(finite) else None


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"
