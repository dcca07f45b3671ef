"""Sets step: two generated sets compared in one key's PCA space, overall and per class.

A *generated set* is every sample of the key's table that one model made one way: a
registered model's name for its one-step samples (``micro``), with ``~<schedule>`` for its
multi-step or Heun samples (``micro~sigmas80-21.3641-4.19162-0.5``, ``teacher~heun32``).
The key chooses the feature space (e.g. the student's bottleneck at sigma 2, or the
teacher's), so "how far are the teacher's images from the student's, as the student sees
them?" is one command. The metrics are `compare`'s, with the first set where `compare` has
the real one: Frechet distance on every row; precision, recall, density and coverage of
the second set against the first on up to `max_per_set` rows per set (seeded, class
balanced). Writes ``analysis/sets/<key>/<first>__vs__<second>`` (`lake.layout.sets_spec`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from lake import StagedGroup, imagenet_classes
from lake.layout import check_schedule_id, parse_generated_id, sets_group, sets_spec

from ..errors import AnalysisError
from ..metrics import METRIC_NAMES, compare_sets, frechet_distance_of
from ..results import read_labels
from ..sampling import balanced_subsample
from ..store import load_scores, pca_run_id
from .base import Computed, Context, Step, pca_components


@dataclass(frozen=True)
class GeneratedSet:
    """One model's samples made one way: the name as given, and the samples/model_id it selects."""

    name: str
    model_id: str


def resolve_set(lake: Any, text: str) -> GeneratedSet:
    """`text` (a registered model name, or a samples model id, with an optional ``~<schedule>``) as a set of samples."""
    name, tilde, schedule = text.strip().partition("~")
    records = lake.models()
    by_name = {record.name: record.model_id for record in records}
    if name in by_name:
        base = by_name[name]
    elif name in by_name.values():
        base = name
    else:
        registered = ", ".join(by_name) or "none"
        raise AnalysisError(f"--models: {name!r} is not a registered model of {lake.path} (registered: {registered})")
    if tilde:
        try:
            check_schedule_id(schedule)
        except ValueError as exc:
            raise AnalysisError(f"--models: {text!r}: {exc}") from None
    return GeneratedSet(text.strip(), f"{base}~{schedule}" if tilde else base)


@dataclass(frozen=True)
class SetsConfig:
    """Parameters of the comparison (compare's)."""

    k: int = 5
    max_per_set: int = 10000
    seed: int = 42
    pca_dim: int = 50


@dataclass(frozen=True)
class SetsStep(Step):
    """`second` against `first` (the reference) with `config`."""

    kind: ClassVar[str] = "sets"

    first: GeneratedSet = GeneratedSet("", "")
    second: GeneratedSet = GeneratedSet("", "")
    config: SetsConfig = field(default_factory=SetsConfig)

    def group(self, key: Any) -> str:
        return sets_group(key, self.first.name, self.second.name)

    def parameters(self) -> dict[str, Any]:
        return {**asdict(self.config), "first": self.first.model_id, "second": self.second.model_id}

    def summary(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return {k: attrs.get(k) for k in ("n_first", "n_second", *METRIC_NAMES)}

    def check(self, lake: Any) -> None:
        if self.first.model_id == self.second.model_id:
            raise AnalysisError(f"--models: {self.first.name} and {self.second.name} are the same samples; give two sets")

    def compute(self, ctx: Context) -> Computed:
        lake, key, config = ctx.lake, ctx.key, self.config
        dims = pca_components(lake, key, config.pca_dim)
        labels = read_labels(lake, key.pca_group)
        models = np.array([(parse_generated_id(str(i)) or ("",))[0] for i in labels.sample_id], dtype=object)
        members = {}
        for chosen in (self.first, self.second):
            members[chosen.name] = models == chosen.model_id
            if not members[chosen.name].any():
                raise AnalysisError(f"{lake.path}: {key.name} holds no samples of {chosen.name} ({chosen.model_id}); probe them "
                                    f"with `python -m ingest activations ... --source generated`, then analyse the key again")
        in_first, in_second = members[self.first.name], members[self.second.name]
        scores = load_scores(lake, key, dims)
        ctx.log(f"{self.second.name} against {self.first.name} in {key.name}: {int(in_first.sum())} and {int(in_second.sum())} samples, "
                f"k={config.k}, {dims} PCA components")

        def metrics(first: np.ndarray, second: np.ndarray) -> dict[str, float]:
            def capped(mask: np.ndarray, salt: str) -> np.ndarray:
                rows = np.flatnonzero(mask)
                return rows[balanced_subsample(labels.sample_id[rows], labels.class_id[rows], config.max_per_set, config.seed, salt=salt)]

            values = compare_sets(scores[capped(first, "sets-first")], scores[capped(second, "sets-second")], config.k)
            if first.sum() >= 2 and second.sum() >= 2:
                values["frechet_distance"] = frechet_distance_of(scores[first], scores[second])  # on every row
            return values

        overall = metrics(in_first, in_second)
        classes = np.intersect1d(labels.class_id[in_first], labels.class_id[in_second])
        per_class = [metrics(in_first & (labels.class_id == c), in_second & (labels.class_id == c)) for c in classes]
        table = imagenet_classes()

        def write(staged: StagedGroup, attrs: dict[str, Any]) -> None:
            staged.table(sets_spec(key, self.first.name, self.second.name, attrs)).append({
                "class_label": [table.label(int(c)) for c in classes], "class_id": classes.astype(np.int16),
                "n_first": [int((in_first & (labels.class_id == c)).sum()) for c in classes],
                "n_second": [int((in_second & (labels.class_id == c)).sum()) for c in classes],
                **{name: np.array([m[name] for m in per_class], dtype=np.float64) for name in METRIC_NAMES},
            })

        return Computed(
            attrs=dict(pca_run_id=pca_run_id(lake, key), components=dims, first=self.first.name, second=self.second.name,
                       first_model_id=self.first.model_id, second_model_id=self.second.model_id,
                       space=f"PCA scores of {key.name}'s standardised activations ({dims} components)",
                       n_first=int(in_first.sum()), n_second=int(in_second.sum()), **overall),
            write=write,
            message=lambda attrs: f"wrote {self.group(key)}",
        )
