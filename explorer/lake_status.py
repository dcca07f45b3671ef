"""What the explorer finds at a lake path: its state (with the command that fixes it), its embeddings, random weights.

Plain Python over `lake.Lake`: no Streamlit. `diagnose_lake` decides whether the app can
draw anything; `list_embeddings` is the catalogue every page picks from.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from lake.layout import GENERATION_GROUP, activations_group, analysis_prefix, format_sigma, parse_key, split_model_layer, split_t2i_layer


class LakeState(Enum):
    """What the explorer found at the lake path."""

    MISSING = "missing"
    NOT_A_LAKE = "not_a_lake"
    EMPTY = "empty"
    NO_EMBEDDINGS = "no_embeddings"
    READY = "ready"


@dataclass(frozen=True)
class LakeDiagnosis:
    """The lake's state plus a friendly message and the command that fixes it."""

    state: LakeState
    message: str
    command: str = ""


def diagnose_lake(path: str | os.PathLike[str]) -> LakeDiagnosis:
    """Decide whether the explorer can show anything, and if not, what to run."""
    from lake import open_lake
    from lake.errors import LakeError

    text = os.fspath(path)
    if not Path(text).exists():
        return LakeDiagnosis(
            LakeState.MISSING,
            f"There is no lake at `{text}` yet.",
            f"make demo    # or: python -m ingest npz ... --lake {text} && python -m analysis run --lake {text}",
        )
    try:
        lake = open_lake(text)
    except LakeError as exc:
        return LakeDiagnosis(LakeState.NOT_A_LAKE, str(exc), "make demo    # builds demo_lake/")
    except Exception as exc:  # an unreadable directory must still give a page, not a traceback
        return LakeDiagnosis(LakeState.NOT_A_LAKE, f"{text}: cannot be read ({exc})", "make demo")
    if lake.num_samples == 0:
        return LakeDiagnosis(
            LakeState.EMPTY,
            f"The lake at `{text}` holds no samples yet.",
            f"python -m ingest npz ... --lake {text}    # or: make demo",
        )
    if not list_embeddings(lake):
        return LakeDiagnosis(
            LakeState.NO_EMBEDDINGS,
            f"The lake at `{text}` has {lake.num_samples:,} samples but no embeddings yet.",
            f"python -m analysis run --lake {text}",
        )
    return LakeDiagnosis(LakeState.READY, "")


def lake_version(path: str | os.PathLike[str]) -> str:
    """A token that changes with every commit (the root document is rewritten by each one)."""
    try:
        st = (Path(path) / "zarr.json").stat()
    except OSError:
        return "absent"
    return f"{st.st_mtime_ns}-{st.st_size}"


@dataclass(frozen=True)
class EmbeddingInfo:
    """One stored embedding: `analysis/embeddings/<key>/<name>`."""

    path: str
    key: str
    name: str
    dims: int
    rows: int
    attrs: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def ref(self) -> str:
        """The short reference used in URLs: `<key>/<name>`."""
        return f"{self.key}/{self.name}"

    @property
    def layer(self) -> str:
        try:
            return parse_key(self.key).layer
        except ValueError:  # a folder that is not a key: show it whole
            return self.key

    @property
    def sigma(self) -> str:
        """The key's sigma as keys print it (`format_sigma`); '' when the folder is not a key."""
        try:
            return format_sigma(parse_key(self.key).sigma)
        except ValueError:
            return ""

    def label(self) -> str:
        trust = self.attrs.get("trustworthiness")
        trust_text = f", trustworthiness {float(trust):.3f}" if isinstance(trust, (int, float)) else ""
        return f"{self.layer} · sigma {self.sigma or '?'} · {self.dims}D · {self.name}{trust_text}"


def list_embeddings(lake: Any) -> list[EmbeddingInfo]:
    """Every committed embedding in the lake, sorted by layer, sigma and name."""
    found = []
    prefix = analysis_prefix("embeddings")
    for group in lake.results("embeddings"):
        shape = lake.shape(group, "embedding")
        if shape is None or len(shape) != 2 or shape[1] not in (2, 3):
            continue
        rel = group[len(prefix) + 1 :]  # <key>/<name>
        key, _, name = rel.rpartition("/")
        found.append(
            EmbeddingInfo(path=group, key=key or rel, name=name, dims=int(shape[1]), rows=int(shape[0]), attrs=lake.attrs(group))
        )
    return sorted(found, key=lambda e: (e.layer, _sigma_sort_key(e.sigma), e.name))


FIRST_MODEL = ""  # the group name of the lake's first ImageNet model, whose layers are unqualified


def embedding_model(layer: str) -> str:
    """The model whose layer an embedding projects: a text-to-image model's or a registered
    ImageNet model's name (``teacher.enc.8x8_block2`` -> ``teacher``), FIRST_MODEL for the
    lake's first ImageNet model (its layers are unqualified)."""
    t2i = split_t2i_layer(layer)
    if t2i is not None:
        return t2i[0]
    model, _ = split_model_layer(layer)
    return model or FIRST_MODEL


@dataclass(frozen=True)
class ModelGroup:
    """The embeddings of one model, as the sidebar's model picker offers them."""

    name: str  # FIRST_MODEL for the lake's first ImageNet model
    label: str
    refs: tuple[str, ...]


def group_by_model(embeddings: list[EmbeddingInfo], first_model: str | None, t2i_models: set[str]) -> list[ModelGroup]:
    """The embeddings grouped by model: the lake's first model first, then the others by name.

    `first_model` is the registered name of the lake's first model (None for a lake made
    before the registry); `t2i_models` names the text-to-image models, which are labelled so.
    """
    refs: dict[str, list[str]] = {}
    for info in embeddings:
        refs.setdefault(embedding_model(info.layer), []).append(info.ref)

    def label(name: str) -> str:
        if name == FIRST_MODEL:
            return f"{first_model} (the lake's first model)" if first_model else "the ImageNet generator"
        return f"{name} · text-to-image" if name in t2i_models else f"{name} · ImageNet"

    order = sorted(refs, key=lambda name: (name != FIRST_MODEL, name))
    return [ModelGroup(name, label(name), tuple(refs[name])) for name in order]


def embedding_of_key(embeddings: list[EmbeddingInfo], ref: str, dims: int) -> str | None:
    """The ref of a `dims`-D embedding of the same key (layer and sigma) as `ref`, else None.

    Prefers the one whose name differs only by its dimension (`umap2d-...` <-> `umap3d-...`),
    so the 3D twin of a 2D UMAP has the same parameters.
    """
    current = next((e for e in embeddings if e.ref == ref), None)
    if current is None:
        return None
    if current.dims == dims:
        return current.ref
    candidates = [e for e in embeddings if e.key == current.key and e.dims == dims]
    twin = current.name.replace(f"{current.dims}d", f"{dims}d", 1)
    preferred = [e for e in candidates if e.name == twin]
    chosen = preferred or candidates
    return chosen[0].ref if chosen else None


@dataclass(frozen=True)
class RandomWeights:
    """Parts of a lake computed with seeded random weights instead of a checkpoint."""

    generated: bool  # the generated samples (their images) came from a random-weight generator
    probes: bool  # the activations of the embedding's layer came from a random-weight network
    model_ids: tuple[str, ...]  # e.g. ("tiny-random-seed0",)


def random_weights(lake: Any, layer: str) -> RandomWeights | None:
    """What of the lake, for `layer`, was made with random weights (None when nothing was).

    Reads the `weights` attribute the ingest jobs write on `generation/<layer>` and
    `activations/<layer>` groups, and, for lakes whose generated samples have no
    generation group, the `ingest generate` provenance records.
    """
    model_ids: list[str] = []

    def is_random(attrs: dict[str, Any]) -> bool:
        if str(attrs.get("weights", "")) != "random":
            return False
        model_ids.append(str(attrs.get("model_id", "")))
        return True

    generated = any([is_random(lake.attrs(group)) for group in lake.groups(GENERATION_GROUP)])
    if not generated:
        for attrs in lake.provenance():
            if attrs.get("job") == "ingest generate" and attrs.get("status") == "complete":
                generated = is_random(dict(attrs.get("parameters") or {})) or generated
    probes = lake.has(activations_group(layer)) and is_random(lake.attrs(activations_group(layer)))
    if not (generated or probes):
        return None
    return RandomWeights(generated, bool(probes), tuple(sorted({m for m in model_ids if m})))


def _sigma_sort_key(sigma: str) -> float:
    try:
        return float(sigma)
    except ValueError:
        return float("inf")
