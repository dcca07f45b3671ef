"""One runner for every analysis: resolve, reuse, compute, write staged, publish, outcome.

An analysis is a `Step` (pca, umap, knn, compare in ``analysis/steps/``): it says what
it reads, computes and writes. Everything they share lives here, once:

1. resolve the (layer, sigma) key against the lake (notes go to `log`);
2. check the step's parameters and make sure the PCA it reads exists (`ensure_pca`);
3. reuse the stored result when it is current (`Step.reusable`) unless `force`;
4. compute, on the Dask scheduler when the step uses one (`Step.compute`);
5. write the result under a staging name in one `LakeWriter` session, with the
   attributes every result carries (`results.base_attrs` + the run id), publish it
   (the atomic group swap, `lake.writer.StagedGroup`) and commit;
6. return an `Outcome`.

`run_steps` runs a list of steps on one key (what ``python -m analysis run`` is), in
the manner of pangeo-forge-recipes' composable stages: a pipeline is data, not code.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from lake import Lake, LakeWriter, Provenance, StagedGroup

from .errors import AnalysisError
from .keys import AnalysisKey, resolve_key
from .results import base_attrs, group_attrs, to_attr
from .scheduler import dask_scheduler
from .store import as_lake, is_current

Log = Callable[[str], None]


def stderr_log(message: str) -> None:
    """The default `log`: one line on stderr, flushed (progress bars share the stream)."""
    print(message, file=sys.stderr, flush=True)


@dataclass
class Outcome:
    """What a step did: the result group, whether it was reused, and its headline numbers."""

    analysis: str
    key: str
    group: str
    reused: bool
    summary: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return to_attr(asdict(self))


@dataclass
class Context:
    """What a step sees while it runs: the lake at its last commit, the key and how to report."""

    lake: Lake
    key: AnalysisKey
    scheduler: str | None
    log: Log
    progress: bool
    where: str = "local"  # the Dask scheduler's description, once one is open
    cache: dict[str, Any] = field(default_factory=dict)  # what a step's reuse check read, for its compute


@dataclass
class Computed:
    """A step's result before it is written: extra attributes, the writer, and the closing line."""

    attrs: dict[str, Any]
    write: Callable[[StagedGroup, dict[str, Any]], None]  # (staged group, final attrs) -> None
    message: Callable[[dict[str, Any]], str]  # final attrs -> "wrote ..." line


class Step:
    """An analysis: its identity, parameters, reuse rule and computation. Subclasses are dataclasses."""

    kind: ClassVar[str]  # Outcome.analysis and the `analysis` attribute (pca, umap, knn, compare)
    summary_fields: ClassVar[tuple[str, ...]] = ()
    uses_dask: ClassVar[bool] = False
    reads_pca: ClassVar[bool] = True  # reads the key's PCA scores (`parameters()["pca_dim"]` components)
    reuse_reason: ClassVar[str] = "same parameters and PCA"

    def group(self, key: AnalysisKey) -> str:
        """The result group this step writes for `key`."""
        raise NotImplementedError

    def label(self, key: AnalysisKey) -> str:
        """What the Outcome names as its key (a step over every sigma of a layer names the layer)."""
        return key.name

    def parameters(self) -> dict[str, Any]:
        """What the result's `parameters` attribute holds (and reuse compares)."""
        raise NotImplementedError

    def check(self, lake: Lake) -> None:
        """Refuse bad parameters with one-line AnalysisErrors before anything runs."""

    def skip(self, lake: Lake, key: AnalysisKey) -> str | None:
        """Why `run_steps` should leave this step out for `key` (None: run it)."""
        return None

    def provenance(self, ctx: Context) -> dict[str, Any]:
        """Parameters of the run's provenance record."""
        return {"key": ctx.key.name, **self.parameters()}

    def reusable(self, ctx: Context, stored: dict[str, Any]) -> bool:
        """Whether the stored result (attributes `stored`) is what this step would write."""
        group = self.group(ctx.key)
        return is_current(ctx.lake, group, ctx.key) and stored.get("parameters") == to_attr(self.parameters())

    def compute(self, ctx: Context) -> Computed:
        raise NotImplementedError

    def summary(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """The headline numbers an Outcome carries, from the result's attributes."""
        return {k: attrs.get(k) for k in self.summary_fields}


def resolve(lake: Any, layer: str | None, sigma: float | None, log: Log, timestep: int | None = None) -> tuple[Lake, AnalysisKey]:
    """A fresh view of the lake and the key (layer, sigma or a text-to-image table's timestep) resolved against it."""
    lake = as_lake(lake)
    key, notes = resolve_key(lake, layer, sigma, timestep)
    for note in notes:
        log(note)
    return lake, key


def run_step(
    step: Step,
    lake: Any,
    layer: str | None = None,
    sigma: float | None = None,
    *,
    scheduler: str | None = None,
    force: bool = False,
    log: Log = stderr_log,
    progress: bool = True,
    timestep: int | None = None,
) -> Outcome:
    """Run one step on one (layer, sigma) table of the lake: reuse or compute, write, publish.

    `timestep` instead of `sigma` names a text-to-image table's noise level by its step.
    """
    lake, key = resolve(lake, layer, sigma, log, timestep)
    step.check(lake)
    if step.reads_pca:
        lake = ensure_pca(lake, key, int(step.parameters()["pca_dim"]), scheduler, log, progress)
    ctx = Context(lake, key, scheduler, log, progress)
    group = step.group(key)
    stored = group_attrs(lake, group)
    if not force and stored and step.reusable(ctx, stored):
        log(f"reusing {group} ({step.reuse_reason}; --force recomputes)")
        return Outcome(step.kind, step.label(key), group, True, step.summary(stored))

    with dask_scheduler(scheduler) if step.uses_dask else nullcontext("local") as where:
        ctx.where = where
        computed = step.compute(ctx)
        attrs = base_attrs(key, "", step.kind, step.parameters(), **computed.attrs)
        attrs["key"] = step.label(key)
        job = Provenance(job=f"analysis {step.kind}", parameters=to_attr(step.provenance(ctx)))
        with LakeWriter.open(lake.path, job, create=False) as writer:
            attrs["run_id"] = writer.provenance.run_id
            staged = writer.staged(group)
            computed.write(staged, attrs)
            staged.publish()
    log(computed.message(attrs))
    return Outcome(step.kind, step.label(key), group, False, step.summary(attrs))


def ensure_pca(lake: Lake, key: AnalysisKey, pca_dim: int, scheduler: str | None, log: Log, progress: bool) -> Lake:
    """The lake with a PCA for `key` holding at least `pca_dim` components (computed if missing)."""
    from .steps.pca import PcaStep

    attrs = group_attrs(lake, key.pca_group)
    if attrs:
        stored = int(attrs.get("n_components", 0))
        possible = min(int(attrs.get("n_features", stored)), int(attrs.get("n_rows", stored)))
        if stored >= min(pca_dim, possible):
            return lake
        log(f"{key.pca_group} has {stored} components; recomputing with {pca_dim}")
    run_step(PcaStep(pca_dim=pca_dim), lake, key.layer, key.sigma, scheduler=scheduler, force=bool(attrs), log=log, progress=progress)
    return as_lake(lake)


def pca_components(lake: Lake, key: AnalysisKey, requested: int | None) -> int:
    """PCA components a derived step uses: `requested`, at most what is stored."""
    stored = int(group_attrs(lake, key.pca_group)["n_components"])
    return stored if requested is None else min(requested, stored)


def run_steps(
    steps: Sequence[Step],
    lake: Any,
    layer: str | None = None,
    sigma: float | None = None,
    *,
    scheduler: str | None = None,
    force: bool = False,
    log: Log = stderr_log,
    progress: bool = True,
    timestep: int | None = None,
) -> list[Outcome]:
    """Run `steps` in order on one key; each commits on its own.

    A step whose `skip(lake, key)` gives a reason is left out with a note. With `force`,
    only the first step is forced when it recomputes: the PCA it writes makes every
    derived result stale anyway, so forcing them again would only repeat work.
    """
    lake, key = resolve(lake, layer, sigma, log, timestep)
    outcomes: list[Outcome] = []
    for position, step in enumerate(steps):
        reason = step.skip(as_lake(lake), key)
        if reason:
            log(f"skipping {step.kind}: {reason}")
            continue
        forced = force if position == 0 else force and outcomes[0].reused
        outcomes.append(run_step(step, lake, key.layer, key.sigma, scheduler=scheduler, force=forced, log=log, progress=progress))
    return outcomes


def require(condition: bool, message: str) -> None:
    """One-line AnalysisError unless `condition` (for parameter checks)."""
    if not condition:
        raise AnalysisError(message)
