"""What an analysis step is: the `Step` contract and the types it shares with the runner.

A step (``analysis/steps/<name>.py``) subclasses `Step`; `analysis.runner` runs it. The
types live here, below both, so that the runner may import the step it needs (the PCA
that derived steps read) while the steps it imports take their types from here: no cycle.
(A step that resolves its own key, like placement, calls `runner.execute`; the runner
never imports it.)
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from lake import Lake, LakeWriter, StagedGroup

from ..errors import AnalysisError
from ..keys import AnalysisKey
from ..results import base_attrs, group_attrs, to_attr
from ..store import is_current

Log = Callable[[str], None]
# What a step runs on: an AnalysisKey for the per-table steps, a model name for the prompts.
K = TypeVar("K")


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
class Context(Generic[K]):
    """What a step sees while it runs: the lake at its last commit, the key and how to report."""

    lake: Lake
    key: K
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
    # False: the rows are appended to the group where it is (placed samples), not staged and swapped.
    staged: bool = True
    # Called once the writer holds the lake's lock, before anything is written: a step that computed
    # without the lock refuses here when another writer changed its inputs meanwhile.
    verify: Callable[[], None] | None = None
    # The Outcome's numbers from the final attrs (None: `Step.summary`).
    summary: Callable[[dict[str, Any]], dict[str, Any]] | None = None


class InPlaceGroup(StagedGroup):
    """A result group written where it is (rows appended to it): `StagedGroup`'s interface, nothing to swap.

    The writer session still rolls every appended row back when the run fails.
    """

    def __init__(self, writer: LakeWriter, final_path: str):
        self.writer = writer
        self.final_path = self.staging_path = final_path

    def publish(self) -> None:
        """Nothing to swap: the rows are committed with the session."""


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

    def job(self) -> str:
        """The provenance record's job name."""
        return f"analysis {self.kind}"

    def provenance(self, ctx: Context) -> dict[str, Any]:
        """Parameters of the run's provenance record."""
        return {"key": ctx.key.name, **self.parameters()}

    def reusable(self, ctx: Context, stored: dict[str, Any]) -> bool:
        """Whether the stored result (attributes `stored`) is what this step would write."""
        group = self.group(ctx.key)
        return is_current(ctx.lake, group, ctx.key) and stored.get("parameters") == to_attr(self.parameters())

    def reuse(self, ctx: Context, stored: dict[str, Any], force: bool) -> Outcome | None:
        """The Outcome of reusing the stored result (attributes `stored`, empty when none), or None to compute."""
        if force or not stored or not self.reusable(ctx, stored):
            return None
        group = self.group(ctx.key)
        ctx.log(f"reusing {group} ({self.reuse_reason}; --force recomputes)")
        return Outcome(self.kind, self.label(ctx.key), group, True, self.summary(stored))

    def compute(self, ctx: Context) -> Computed:
        raise NotImplementedError

    def attributes(self, ctx: Context, computed: Computed) -> dict[str, Any]:
        """The result group's attributes but its run id (which the runner fills in once the writer is open)."""
        attrs = base_attrs(ctx.key, "", self.kind, self.parameters(), **computed.attrs)
        attrs["key"] = self.label(ctx.key)
        return attrs

    def summary(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """The headline numbers an Outcome carries, from the result's attributes."""
        return {k: attrs.get(k) for k in self.summary_fields}


def pca_components(lake: Lake, key: AnalysisKey, requested: int | None) -> int:
    """PCA components a derived step uses: `requested`, at most what is stored."""
    stored = int(group_attrs(lake, key.pca_group)["n_components"])
    return stored if requested is None else min(requested, stored)


def require(condition: bool, message: str) -> None:
    """One-line AnalysisError unless `condition` (for parameter checks)."""
    if not condition:
        raise AnalysisError(message)
