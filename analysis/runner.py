"""One runner for every analysis: resolve, reuse, compute, write staged, publish, outcome.

An analysis is a `Step` (pca, umap, knn, compare in ``analysis/steps/``): it says what
it reads, computes and writes (the `Step` contract, `Context`, `Computed` and `Outcome`
are in `analysis.steps.base`, which the steps import instead of this module). Everything
they share at run time lives here, once:

1. resolve the (layer, sigma) key against the lake (notes go to `log`);
2. check the step's parameters and make sure the PCA it reads exists (`ensure_pca`);
3. reuse the stored result when it is current (`Step.reusable`) unless `force`;
4. compute, on the Dask scheduler when the step uses one (`Step.compute`);
5. write the result under a staging name in one `LakeWriter` session, with the
   attributes every result carries (`results.base_attrs` + the run id), publish it
   (the atomic group swap, `lake.writer.StagedGroup`) and commit;
6. return an `Outcome`.

Steps 3-6 are `execute`: placement (``steps/place.py``) and the prompts (``prompts.py``)
resolve their own key (a ``--key``, a model name) and hand their step to it.
`run_steps` runs a list of steps on one key (what ``python -m analysis run`` is), in
the manner of pangeo-forge-recipes' composable stages: a pipeline is data, not code.
"""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

from lake import Lake, LakeWriter, Provenance

from .keys import AnalysisKey, resolve_key
from .results import group_attrs, to_attr
from .scheduler import dask_scheduler
from .steps.base import Computed, Context, InPlaceGroup, Log, Outcome, Step, pca_components, require, stderr_log
from .steps.pca import PcaStep
from .store import as_lake

# The step contract lives in analysis.steps.base (below the runner and every step); these
# names stay importable from here, where callers met them first.
__all__ = ["Computed", "Context", "Log", "Outcome", "Step", "ensure_pca", "execute", "pca_components", "require", "resolve",
           "run_step", "run_steps", "stderr_log"]


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
    return execute(step, Context(lake, key, scheduler, log, progress), force)


def execute(step: Step, ctx: Context, force: bool = False) -> Outcome:
    """Reuse or compute `step` on a resolved context, write its group in one writer session, publish it.

    What every analysis shares once its key is resolved (`run_step` resolves a table's key;
    placement and the prompts resolve their own and call this): the reuse check, the Dask
    scheduler, the provenance record, the staged write (or in-place append) and its
    publication, the closing line and the Outcome.
    """
    group = step.group(ctx.key)
    reused = step.reuse(ctx, group_attrs(ctx.lake, group), force)
    if reused is not None:
        return reused
    with dask_scheduler(ctx.scheduler) if step.uses_dask else nullcontext("local") as where:
        ctx.where = where
        computed = step.compute(ctx)
        attrs = step.attributes(ctx, computed)
        job = Provenance(job=step.job(), parameters=to_attr(step.provenance(ctx)))
        with LakeWriter.open(ctx.lake.path, job, create=False) as writer:
            if computed.verify is not None:
                computed.verify()
            attrs["run_id"] = writer.provenance.run_id
            target = writer.staged(group) if computed.staged else InPlaceGroup(writer, group)
            computed.write(target, attrs)
            target.publish()
    ctx.log(computed.message(attrs))
    summary = computed.summary(attrs) if computed.summary is not None else step.summary(attrs)
    return Outcome(step.kind, step.label(ctx.key), group, False, summary)


def ensure_pca(lake: Lake, key: AnalysisKey, pca_dim: int, scheduler: str | None, log: Log, progress: bool) -> Lake:
    """The lake with a PCA for `key` holding at least `pca_dim` components (computed if missing)."""
    attrs = group_attrs(lake, key.pca_group)
    if attrs:
        stored = int(attrs.get("n_components", 0))
        possible = min(int(attrs.get("n_features", stored)), int(attrs.get("n_rows", stored)))
        if stored >= min(pca_dim, possible):
            return lake
        log(f"{key.pca_group} has {stored} components; recomputing with {pca_dim}")
    run_step(PcaStep(pca_dim=pca_dim), lake, key.layer, key.sigma, scheduler=scheduler, force=bool(attrs), log=log, progress=progress)
    return as_lake(lake)


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

