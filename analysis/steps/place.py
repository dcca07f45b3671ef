"""Place step: new samples on a key's stored map, without refitting anything (docs/analysis.md "Placing new samples").

Reads ``activations/<layer>`` at the key's sigma, ``analysis/pca/<key>`` (its transform and
the fitted rows' scores) and every current ``analysis/embeddings/<key>/<name>`` (their
coordinates and, from their attributes, n_neighbors, metric and the PCA components they
used). Writes, in one writer session (atomic per run):

- ``analysis/placed/<key>`` (`lake.layout.placed_spec`): the placed samples' PCA scores,
  their nearest fitted rows (ids, rows, distances in PCA space) and the label columns;
- ``analysis/placed/<key>/<name>`` (`lake.layout.placed_embedding_spec`): their
  coordinates in each stored embedding, placed by `analysis.placement` (no pickles).

Which samples: every sample probed at the key that is not a fitted row of the PCA, or
only `ids`. Only samples not placed yet are appended, so rows placed earlier stay
bit-identical (the placement of a sample depends only on it and the stored map). When
the PCA or an embedding was recomputed since (its run id differs from the one in the
placed group's attributes), every placed row is stale: all are recomputed, and the
group is replaced as a whole (`StagedGroup`). Samples that became fitted rows leave
the placed group then.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from lake import StagedGroup
from lake.layout import PLACED_NEIGHBOURS, placed_embedding_spec, placed_spec

from ..errors import AnalysisError
from ..inputs import SampleLookup
from ..keys import AnalysisKey, format_sigma, parse_key, resolve_key, sigma_index
from ..placement import (
    METHOD,
    METHOD_DESCRIPTION,
    Neighbourhood,
    check_rows,
    leave_one_out,
    nearest_fitted,
    place,
)
from ..results import base_attrs, to_attr
from .base import Computed, Context, Log, Outcome, Step, stderr_log
from ..runner import execute
from ..store import as_lake, load_pca_model, load_scores, pca_run_id, require_pca

KIND = "placed"
# The measured figure each placed embedding carries (docs/analysis.md "Placing new samples"): fitted rows placed
# as if new, median displacement from their stored coordinates / median nearest-neighbour distance.
LEAVE_ONE_OUT_ATTRS = ("leave_one_out_displacement", "leave_one_out_displacement_nearest_neighbour", "leave_one_out_rows")


@dataclass(frozen=True)
class StoredEmbedding:
    """What placing in one stored embedding needs, read from the lake (arrays and attributes only)."""

    name: str
    coords: np.ndarray  # (fitted rows, axis) float32, in the PCA table's row order
    n_neighbors: int  # the fitted model's effective n_neighbors
    metric: str
    dims: int  # PCA components the embedding was computed on
    seed: int
    run_id: str


@dataclass(frozen=True)
class Candidates:
    """Rows of ``activations/<layer>`` to place, with their labels."""

    rows: np.ndarray  # int64, increasing
    sample_id: np.ndarray
    source: np.ndarray
    class_id: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, keep: np.ndarray) -> Candidates:
        return Candidates(self.rows[keep], self.sample_id[keep], self.source[keep], self.class_id[keep])


def resolve_place_key(lake: Any, text: str) -> AnalysisKey:
    """The key ``LAYER@sigmaS`` checked against the lake's activation tables (one-line errors)."""
    try:
        key = parse_key(text)
    except AnalysisError as exc:
        raise AnalysisError(f"--key {exc}") from None
    key, _ = resolve_key(lake, key.layer, key.sigma)
    return key


def _embeddings_of(lake: Any, key: AnalysisKey, n_fitted: int) -> list[tuple[str, dict[str, Any], str | None]]:
    """Each embedding of the key with its attributes and why it cannot be placed in (None: it can).

    Attributes and shapes only, nothing is read: `list` uses it too.
    """
    current = pca_run_id(lake, key)
    out: list[tuple[str, dict[str, Any], str | None]] = []
    for name in lake.children(key.embeddings_group):
        group = key.embedding_group(name)
        attrs = lake.attrs(group)
        if attrs.get("analysis") != "umap":
            continue
        shape = lake.shape(group, "embedding")
        reason = None
        if attrs.get("pca_run_id") != current:
            reason = f"not placing in {group}: it was made from an older PCA (`python -m analysis umap` refreshes it)"
        elif shape is None or shape[0] != n_fitted:
            reason = f"not placing in {group}: {shape[0] if shape else 0} rows, the PCA has {n_fitted}"
        out.append((name, attrs, reason))
    return out


def _n_neighbors(attrs: dict[str, Any]) -> int:
    return int(attrs.get("effective_n_neighbors", attrs.get("parameters", {}).get("n_neighbors", 15)))


def current_embeddings(lake: Any, key: AnalysisKey, n_fitted: int, log: Log) -> list[StoredEmbedding]:
    """The key's embeddings computed from the PCA now stored (stale ones are left out, with a note)."""
    out = []
    for name, attrs, reason in _embeddings_of(lake, key, n_fitted):
        if reason:
            log(reason)
            continue
        parameters = attrs.get("parameters", {})
        out.append(StoredEmbedding(
            name=name,
            coords=np.asarray(lake.column(key.embedding_group(name), "embedding"), dtype=np.float32),
            n_neighbors=_n_neighbors(attrs),
            metric=str(parameters.get("metric", "euclidean")),
            dims=int(attrs.get("pca_components_used", parameters.get("pca_dim", 50))),
            seed=int(parameters.get("seed", 42)),
            run_id=str(attrs.get("run_id")),
        ))
    return out


def probed_candidates(lake: Any, key: AnalysisKey, fitted_ids: Any) -> Candidates:
    """Every row of the activation table probed at the key's sigma whose sample is not a fitted PCA row."""
    import pandas as pd

    group = key.activations_group
    index = sigma_index(lake.activation_sigmas(key.layer), key.sigma)
    ids = np.asarray(lake.column(group, "sample_id"), dtype=object)
    if lake.shape(group, "probed") is not None:
        probed = np.asarray(lake.column(group, "probed", cols=index), dtype=bool)
    else:  # tables without the probed column mark missing cells by NaN
        probed = np.asarray(np.isfinite(np.asarray(lake.column(group, "mean", cols=index), dtype=np.float32)).all(axis=1))
    keep = probed & ~np.asarray(pd.Index(ids).isin(fitted_ids))
    rows = np.flatnonzero(keep)
    return Candidates(rows, ids[rows], np.asarray(lake.column(group, "source", rows), dtype=object),
                      np.asarray(lake.column(group, "class_id", rows), dtype=np.int16))


def parse_ids(text: str | None) -> tuple[str, ...] | None:
    """``--ids a,b,c`` as a tuple without repeats (None: every candidate)."""
    if text is None:
        return None
    ids = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not ids:
        raise AnalysisError(f"--ids {text!r}: give comma-separated sample ids")
    return ids


def check_ids(lake: Any, key: AnalysisKey, ids: tuple[str, ...], candidates: Candidates, fitted_ids: Any) -> None:
    """Refuse ids that are not probed at the key or are fitted rows already (one line naming the first)."""
    import pandas as pd

    known = pd.Index(candidates.sample_id)
    fitted = pd.Index(fitted_ids)
    table_ids = None
    for sample_id in ids:
        if known.get_indexer([sample_id])[0] >= 0:
            continue
        if fitted.get_indexer([sample_id])[0] >= 0:
            raise AnalysisError(f"--ids {sample_id}: a fitted row of {key.pca_group}, already on the map; only new samples are placed")
        if table_ids is None:
            table_ids = pd.Index(np.asarray(lake.column(key.activations_group, "sample_id"), dtype=object))
        if table_ids.get_indexer([sample_id])[0] >= 0:
            raise AnalysisError(f"--ids {sample_id}: not probed at sigma {format_sigma(key.sigma)} in {key.activations_group}; "
                                f"probe it first (`python -m ingest activations`)")
        raise AnalysisError(f"--ids {sample_id}: unknown sample id (not in {key.activations_group})")


def placement_state(lake: Any, key: AnalysisKey, n_fitted: int) -> dict[str, Any]:
    """What placed rows computed now would be computed from; stored rows from anything else are stale.

    The PCA run, every usable embedding's run, the neighbours kept per sample (k) and the method.
    """
    usable = [(name, attrs) for name, attrs, reason in _embeddings_of(lake, key, n_fitted) if reason is None]
    k = min(max([PLACED_NEIGHBOURS, *(_n_neighbors(attrs) for _, attrs in usable)]), n_fitted)
    return to_attr({"pca_run_id": pca_run_id(lake, key), "embedding_run_ids": {name: str(attrs.get("run_id")) for name, attrs in usable},
                    "neighbours_k": k, "method": METHOD})


def placed_is_stale(lake: Any, key: AnalysisKey) -> bool:
    """Whether ``analysis/placed/<key>`` was computed from another PCA or embeddings than those stored now."""
    if not lake.has(key.pca_group):
        return True
    n_fitted = int((lake.shape(key.pca_group, "sample_id") or (0,))[0])
    return is_stale(lake.attrs(key.placed_group), placement_state(lake, key, n_fitted))


def is_stale(stored: dict[str, Any], state: dict[str, Any]) -> bool:
    return any(stored.get(name) != value for name, value in state.items())


@dataclass(frozen=True)
class Placed:
    """The computed rows of one run: scores, neighbours and labels, and the coordinates per embedding."""

    candidates: Candidates
    scores: np.ndarray
    neighbours: Neighbourhood  # euclidean, all stored components, k columns
    coords: dict[str, np.ndarray]


def compute_placement(lake: Any, key: AnalysisKey, candidates: Candidates, fitted: np.ndarray,
                      embeddings: list[StoredEmbedding], k: int) -> Placed:
    """Project the candidates through the stored PCA, find their fitted neighbours, place them in every embedding."""
    index = sigma_index(lake.activation_sigmas(key.layer), key.sigma)
    values = np.asarray(lake.column(key.activations_group, "mean", candidates.rows, cols=index), dtype=np.float32)
    if len(values) and not np.isfinite(values).all():
        bad = candidates.sample_id[~np.isfinite(values).all(axis=1)][0]
        raise AnalysisError(f"{key.activations_group}: sample {bad} is marked probed at sigma {format_sigma(key.sigma)} but holds NaN")
    scores = load_pca_model(lake, key).transform(values) if len(values) else np.zeros((0, fitted.shape[1]), np.float32)
    if len(scores) == 0:
        empty = Neighbourhood(np.zeros((0, k), np.int64), np.zeros((0, k), np.float32))
        return Placed(candidates, scores, empty, {e.name: np.zeros((0, e.coords.shape[1]), np.float32) for e in embeddings})
    neighbours = nearest_fitted(fitted, scores, k)
    coords = {}
    for e in embeddings:
        if e.metric == "euclidean" and e.dims >= fitted.shape[1]:
            near = neighbours.first(e.n_neighbors)  # the same search: its first n_neighbors columns
        else:
            near = nearest_fitted(fitted[:, : e.dims], scores[:, : e.dims], e.n_neighbors, e.metric)
        coords[e.name] = place(fitted, e.coords, scores, e.n_neighbors, e.metric, neighbourhood=near)
    return Placed(candidates, scores, neighbours, coords)


@dataclass(frozen=True)
class Plan:
    """What a placement run will do, decided from the lake before anything is computed."""

    fitted_ids: np.ndarray  # the PCA's fitted rows' sample ids, in its row order
    fitted: np.ndarray  # their PCA scores
    embeddings: list[StoredEmbedding]
    state: dict[str, Any]  # `placement_state`: what the rows placed now are computed from
    stored: dict[str, Any]  # the placed group's attributes (empty when none)
    rebuild: bool  # every placed row is computed again and the group replaced (else: appended to)
    placed_before: int
    todo: Candidates

    @property
    def k(self) -> int:
        return int(self.state["neighbours_k"])


@dataclass(frozen=True)
class PlaceStep(Step):
    """Place `ids` (None: every probed sample that is not a fitted row) on the key's stored map; `force` rebuilds."""

    kind: ClassVar[str] = KIND
    reads_pca: ClassVar[bool] = False  # reads the stored PCA, never computes one (`run_place` requires it)

    ids: tuple[str, ...] | None = None
    force: bool = False

    def group(self, key: Any) -> str:
        return str(key.placed_group)

    def job(self) -> str:
        return "analysis place"

    def parameters(self) -> dict[str, Any]:
        return {"ids": list(self.ids) if self.ids else None, "force": self.force}

    def plan(self, ctx: Context) -> Plan:
        """Which samples this run places, and whether it appends or rebuilds (read once, cached for compute)."""
        if "plan" in ctx.cache:
            return ctx.cache["plan"]
        lake, key = ctx.lake, ctx.key
        fitted_ids = np.asarray(lake.column(key.pca_group, "sample_id"), dtype=object)
        candidates = probed_candidates(lake, key, fitted_ids)
        if self.ids is not None:
            check_ids(lake, key, self.ids, candidates, fitted_ids)
        fitted = load_scores(lake, key)
        embeddings = current_embeddings(lake, key, len(fitted), ctx.log)
        state = placement_state(lake, key, len(fitted))
        stored = lake.attrs(key.placed_group)
        rebuild = self.force or not stored or is_stale(stored, state)
        before = np.asarray(lake.column(key.placed_group, "sample_id"), dtype=object) if stored else np.zeros(0, object)
        in_set = np.isin(candidates.sample_id, before) if len(before) else np.zeros(len(candidates), bool)
        requested = np.ones(len(candidates), bool) if self.ids is None else np.isin(candidates.sample_id, np.asarray(self.ids, dtype=object))
        todo = candidates.take((requested | in_set) if rebuild else (requested & ~in_set))
        ctx.cache["plan"] = Plan(fitted_ids, fitted, embeddings, state, stored, rebuild, len(before), todo)
        return ctx.cache["plan"]

    def reuse(self, ctx: Context, stored: dict[str, Any], force: bool) -> Outcome | None:
        """Nothing to place (no new sample, nothing stale to replace): the stored group stands as it is."""
        plan = self.plan(ctx)
        if plan.stored and plan.rebuild and not self.force:
            ctx.log(f"{self.group(ctx.key)} is stale (the PCA or an embedding was recomputed since): placing all {len(plan.todo)} samples again")
        if plan.todo.rows.size or (plan.rebuild and plan.stored):
            return None
        ctx.log(f"nothing new to place at {ctx.key.name} ({plan.placed_before} placed, {len(plan.fitted)} fitted)")
        return Outcome(KIND, ctx.key.name, self.group(ctx.key), True, _summary(plan.stored, 0))

    def provenance(self, ctx: Context) -> dict[str, Any]:
        plan = self.plan(ctx)
        return {"key": ctx.key.name, **self.parameters(), "rebuild": plan.rebuild, "samples": len(plan.todo)}

    def attributes(self, ctx: Context, computed: Computed) -> dict[str, Any]:
        plan = self.plan(ctx)
        attrs = base_attrs(ctx.key, "", KIND, {"neighbours_k": plan.k}, **plan.state, **computed.attrs)
        if not plan.rebuild:
            attrs["created"] = plan.stored.get("created", attrs["created"])  # `runs` says who appended since
        return attrs

    def compute(self, ctx: Context) -> Computed:
        lake, key, plan = ctx.lake, ctx.key, self.plan(ctx)
        todo, fitted, embeddings, k = plan.todo, plan.fitted, plan.embeddings, plan.k
        ctx.log(f"placing {len(todo)} samples at {key.name} through the stored PCA into "
                f"{', '.join(e.name for e in embeddings) or 'no embedding (none is current)'}")
        result = compute_placement(lake, key, todo, fitted, embeddings, k)
        labels = _labels(lake, todo)
        neighbour_ids = plan.fitted_ids[result.neighbours.rows] if len(todo) else np.zeros((0, k), object)
        total = len(todo) + (0 if plan.rebuild else plan.placed_before)
        # measured before the writer opens, so the lake's lock is held only for writing
        e_attrs = {e.name: _embedding_attrs(lake, key, e, fitted, total, plan.rebuild) for e in embeddings}
        figures = {name: a["leave_one_out_displacement"] for name, a in e_attrs.items()}

        def verify() -> None:
            # The work above ran without the lock (so the lake stays usable); now that we hold it,
            # make sure no other writer placed samples or refitted the map in the meantime.
            if _snapshot(as_lake(lake.path), key) != _snapshot(lake, key):
                raise AnalysisError(f"{lake.path}: {key.placed_group}, its PCA or an embedding changed while placing; "
                                    f"run `python -m analysis place --lake {lake.path} --key {key.name}` again")

        def write(target: StagedGroup, attrs: dict[str, Any]) -> None:
            run_id = attrs["run_id"]
            attrs["runs"] = [run_id] if plan.rebuild else [*plan.stored.get("runs", []), run_id]  # needs this run's id
            target.table(placed_spec(key, fitted.shape[1], attrs, k=k)).append(
                {"scores": result.scores, "neighbor_id": neighbour_ids, "neighbor_row": result.neighbours.rows,
                 "distance": result.neighbours.distances, **labels})
            for e in embeddings:
                spec = placed_embedding_spec(key, e.name, e.coords.shape[1], {**e_attrs[e.name], "run_id": run_id})
                target.writer.table(replace(spec, path=f"{target.staging_path}/{e.name}")).append({"embedding": result.coords[e.name], **labels})

        return Computed(
            attrs=dict(method_description=METHOD_DESCRIPTION, leave_one_out_displacement=figures, n_rows=total,
                       n_fitted=len(fitted), runs=[]),
            write=write,
            message=lambda attrs: (f"wrote {key.placed_group}: {len(todo)} samples {'placed' if plan.rebuild else 'appended'} "
                                   f"({total} in all), in {len(embeddings)} embedding(s)"),
            staged=plan.rebuild,
            verify=verify,
            summary=lambda attrs: _summary(attrs, len(todo)),
        )


def run_place(lake: Any, key_name: str, ids: str | Sequence[str] | None = None, *, force: bool = False,
              log: Log = stderr_log) -> Outcome:
    """Place the samples probed at key `key_name` that are not fitted rows (or only `ids`) on the key's stored map.

    Appends only samples not placed yet; recomputes every placed row when the PCA or an
    embedding changed since (or with `force`). Raises AnalysisError (one line) for an
    unknown key, unknown or fitted ids, or a key without PCA; the lake is then unchanged.
    Run by `analysis.runner.execute` (reuse, provenance, staged write or append, Outcome).
    """
    lake = as_lake(lake)
    key = resolve_place_key(lake, str(key_name))
    require_pca(lake, key)
    wanted = parse_ids(ids) if isinstance(ids, str) or ids is None else parse_ids(",".join(ids))
    return execute(PlaceStep(wanted, force), Context(lake, key, None, log, False), force)


def _snapshot(lake: Any, key: AnalysisKey) -> tuple[Any, ...]:
    """What a placement run was computed from: the placed group's last run and size, the PCA's and embeddings' runs."""
    placed = lake.attrs(key.placed_group)
    embeddings = {name: lake.attrs(key.embedding_group(name)).get("run_id") for name in lake.children(key.embeddings_group)}
    return placed.get("run_id"), placed.get("n_rows"), pca_run_id(lake, key), embeddings


def _labels(lake: Any, todo: Candidates) -> dict[str, np.ndarray]:
    lookup = SampleLookup.from_lake(lake)
    rows = lookup.rows(todo.sample_id)
    return {"sample_id": todo.sample_id, "source": todo.source, "class_id": todo.class_id,
            "split": lookup.splits(rows), "sample_row": rows}


def _embedding_attrs(lake: Any, key: AnalysisKey, e: StoredEmbedding, fitted: np.ndarray, total: int,
                     rebuild: bool) -> dict[str, Any]:
    """The placed embedding's attributes (but its run id); the leave-one-out check is measured when the group is (re)built."""
    group = key.placed_embedding_group(e.name)
    previous = {} if rebuild else lake.attrs(group)
    attrs = base_attrs(key, "", KIND, {"n_neighbors": e.n_neighbors, "metric": e.metric, "pca_components_used": e.dims},
                       name=e.name, embedding_run_id=e.run_id, pca_run_id=pca_run_id(lake, key), method=METHOD,
                       method_description=METHOD_DESCRIPTION, n_rows=total)
    if "leave_one_out_displacement" in previous:
        for name in (*LEAVE_ONE_OUT_ATTRS, "created"):
            attrs[name] = previous.get(name)
        return attrs
    check = leave_one_out(fitted[:, : e.dims], e.coords, e.n_neighbors, e.metric, check_rows(len(fitted), e.seed))
    attrs.update(to_attr({"leave_one_out_displacement": check.placed,
                          "leave_one_out_displacement_nearest_neighbour": check.nearest_neighbour,
                          "leave_one_out_rows": check.rows}))
    return attrs


def _summary(attrs: dict[str, Any], new: int) -> dict[str, Any]:
    return {"placed": attrs.get("n_rows", 0), "new": new, "method": attrs.get("method"),
            "leave_one_out_displacement": attrs.get("leave_one_out_displacement", {})}
