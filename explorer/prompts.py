"""Text-to-image samples in the explorer: the model and prompt of every sample, clusters, and one sample's details.

A text-to-image sample is an ordinary `samples` row (64x64 thumbnail, split `t2i`,
model_id `<name>`) joined on `sample_id` with `t2i/<name>/samples` (prompt, native
image, per-step x0 previews; lake.layout "Text-to-image models"). This module makes that
join once per lake commit, vectorised, into small per-row vectors (`PromptIndex`: a
model code, a row in the model's table and a prompt code per `samples` row), so that
colouring, searching and exporting by prompt cost numpy lookups at 1.28M rows; prompt
text is held once per distinct prompt. Native images and previews are read only for the
selected sample. Plain numpy/pandas over a `LakeSession`: no Streamlit.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .columns import NO_CLASS
from .frames import EmbeddingFrame
from .rows import align_rows, factorize
from .session import LakeSession
from .tables import T2ISample

# Colourings this module adds to "Colour by" (besides class, source, split and the columns).
PROMPT, PROMPT_CLUSTER, CLUSTER, MODEL = "prompt", "prompt_cluster", "cluster", "model"
COLOUR_OPTIONS = (PROMPT, PROMPT_CLUSTER, CLUSTER, MODEL)
OPTION_LABELS = {PROMPT: "prompt", PROMPT_CLUSTER: "prompt cluster", CLUSTER: "activation cluster (k-means)", MODEL: "model"}
NO_PROMPT = "no prompt"  # legend/hover entry of a sample no prompt made (an ImageNet image)
NO_CLUSTER = "no cluster"
NO_MODEL = "no model (real image)"
LEGEND_CHARS = 48  # a prompt in the legend: long prompts are cut, with an ellipsis
HOVER_CHARS = 100  # ... and in the hover


@dataclass(frozen=True)
class PromptIndex:
    """Which text-to-image model and prompt made each `samples` row, and each distinct prompt's text.

    A prompt is one (model, prompt_id) pair: the same text given to two models is two
    prompts, since their clusters and maps are per model.
    """

    models: tuple[str, ...]  # the lake's text-to-image model names
    model_code: np.ndarray  # (num_samples,) int16 index into `models`, -1 for other samples
    t2i_row: np.ndarray  # (num_samples,) int64 row in t2i/<model>/samples, -1 for other samples
    prompt_code: np.ndarray  # (num_samples,) int32 index into the per-prompt arrays, -1 for other samples
    prompt_model: np.ndarray  # (n_prompts,) int16 index into `models`
    prompt_id: np.ndarray  # (n_prompts,) object
    prompt: np.ndarray  # (n_prompts,) object: the full text
    negative_prompt: np.ndarray  # (n_prompts,) object
    _labels: dict[int, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    @property
    def n_prompts(self) -> int:
        return len(self.prompt_id)

    def matching(self, text: str) -> np.ndarray:
        """Per prompt: whether it contains `text`, ignoring case (every prompt for blank text)."""
        needle = text.strip().lower()
        if not needle:
            return np.ones(self.n_prompts, dtype=bool)
        haystack = np.asarray(self.prompt, dtype=np.dtypes.StringDType())
        return np.strings.find(np.strings.lower(haystack), needle) >= 0

    def labels(self, chars: int) -> np.ndarray:
        """Per prompt, a distinct label of at most ~`chars` characters (see `short_labels`), memoised per length."""
        if chars not in self._labels:
            self._labels[chars] = short_labels(self.prompt, self.prompt_id, chars, np.asarray(self.models, dtype=object)[self.prompt_model])
        return self._labels[chars]


def short_labels(texts: np.ndarray, ids: np.ndarray, chars: int, owners: np.ndarray | None = None) -> np.ndarray:
    """`texts` cut to `chars` characters (an ellipsis marks a cut), made distinct, so a legend or a categorical
    never merges two prompts: a label several prompts share gets its owner (the model) in brackets when that
    tells them apart, else the first 6 characters of its id."""
    import pandas as pd

    text = pd.Series(np.asarray(texts, dtype=object), dtype="object").astype(str)
    cut = text.str.slice(0, chars)
    cut = cut.where(text.str.len() <= chars, cut.str.rstrip() + "…")
    if owners is not None:
        by_owner = cut + " [" + pd.Series(np.asarray(owners, dtype=object)).astype(str) + "]"
        # The owner only where it tells a shared label apart (one model's two such prompts need their ids).
        cut = cut.where(~(cut.duplicated(keep=False) & ~by_owner.duplicated(keep=False)), by_owner)
    dup = cut.duplicated(keep=False) | (cut == NO_PROMPT)  # a prompt that reads "no prompt" must not merge with the none entry
    if dup.any():
        cut = cut.where(~dup, cut + " [" + pd.Series(np.asarray(ids, dtype=object)).astype(str).str.slice(0, 6) + "]")
    return cut.to_numpy(dtype=object)


def build_prompt_index(session: LakeSession) -> PromptIndex:
    """Join every ``t2i/<name>/samples`` with ``samples`` on ``sample_id`` (`session.column_rows`: ids -> samples rows).

    Per model: its ids and prompt ids are read whole (short strings), prompt ids factorised
    with pandas, and the prompt text read only at each prompt's first row, so memory is
    a few vectors per sample plus the text once per distinct prompt.
    """
    import pandas as pd

    n = int(session.lake.num_samples)
    model_code = np.full(n, -1, np.int16)
    t2i_row = np.full(n, -1, np.int64)
    prompt_code = np.full(n, -1, np.int32)
    models: list[str] = []
    owners, pids, texts, negatives = [], [], [], []
    offset = 0
    for name in session.lake.t2i_models():
        ids, prompt_ids = session.t2i_ids(name)
        if len(ids) == 0:
            continue
        code = len(models)
        models.append(name)
        codes, uniques = pd.factorize(np.asarray(prompt_ids, dtype=object))
        _, first = np.unique(codes, return_index=True)  # the first row of each prompt (codes are 0..k-1)
        rows = np.asarray(session.column_rows(ids), dtype=np.int64)
        found = rows >= 0  # a t2i row whose samples row is missing (never committed together) is left out
        model_code[rows[found]] = code
        t2i_row[rows[found]] = np.flatnonzero(found)
        prompt_code[rows[found]] = codes[found] + offset
        owners.append(np.full(len(uniques), code, np.int16))
        pids.append(np.asarray(uniques, dtype=object))
        text, negative = session.t2i_prompt_text(name, first)
        texts.append(text)
        negatives.append(negative)
        offset += len(uniques)

    def joined(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0, dtype)

    return PromptIndex(tuple(models), model_code, t2i_row, prompt_code, joined(owners, np.int16), joined(pids, object),
                       joined(texts, object), joined(negatives, object))  # fmt: skip


def prompt_index(session: LakeSession) -> PromptIndex:
    """The lake's `PromptIndex`, built once per commit (empty when the lake has no text-to-image samples)."""
    return session.memo("prompt_index", lambda: build_prompt_index(session))


def has_t2i(session: LakeSession) -> bool:
    """Whether the lake holds text-to-image samples (cheap: the model list, no join)."""
    return session.memo("has_t2i", lambda: bool(session.lake.t2i_models()))


def _take(values: np.ndarray, rows: np.ndarray, missing: Any) -> np.ndarray:
    """values[rows], `missing` where rows is -1 (rows outside the samples table)."""
    out = values[np.clip(rows, 0, max(len(values) - 1, 0))] if len(values) else np.full(len(rows), missing, values.dtype)
    return np.where(rows >= 0, out, missing).astype(values.dtype, copy=False)


def embedding_prompt_codes(session: LakeSession, frame: EmbeddingFrame, ref: str) -> np.ndarray:
    """Prompt code of each embedding row (-1: not a text-to-image sample)."""
    return session.memo(("prompt_codes", ref), lambda: _take(prompt_index(session).prompt_code, frame.sample_row, -1))


def prompt_codes_of(session: LakeSession, sample_ids: np.ndarray) -> np.ndarray:
    """Prompt code of each sample id (-1: not a text-to-image sample, or not in `samples`), for tables that are not embeddings."""
    rows = session.column_rows(np.asarray(sample_ids)) if len(sample_ids) else np.zeros(0, np.int64)
    return _take(prompt_index(session).prompt_code, rows, -1)


def codes_matching(session: LakeSession, codes: np.ndarray, text: str) -> np.ndarray:
    """Per prompt code (-1: none): whether its prompt contains `text`, ignoring case; every one for blank text or a lake without prompts.

    The match runs over the distinct prompts, then one table lookup per row.
    """
    if not text.strip() or not has_t2i(session):
        return np.ones(len(codes), dtype=bool)
    lut = np.concatenate([[False], prompt_index(session).matching(text)])  # code -1 (no prompt) -> False
    return lut[np.asarray(codes, dtype=np.int64) + 1]


def search_mask(session: LakeSession, frame: EmbeddingFrame, ref: str, text: str) -> np.ndarray:
    """Embedding rows whose prompt contains `text` (case-insensitive); every row for blank text or a lake without prompts."""
    if not text.strip() or not has_t2i(session):
        return np.ones(frame.size, dtype=bool)
    return codes_matching(session, embedding_prompt_codes(session, frame, ref), text)


def matching_prompts(session: LakeSession, text: str) -> int:
    """How many distinct prompts contain `text`."""
    return int(prompt_index(session).matching(text).sum()) if text.strip() and has_t2i(session) else 0


def prompt_clusters(session: LakeSession) -> np.ndarray:
    """Per prompt of the index, its cluster in ``analysis/prompts/<model>`` (-1 where the model has none or lacks the prompt)."""

    def compute() -> np.ndarray:
        index = prompt_index(session)
        out = np.full(index.n_prompts, -1, np.int32)
        for code, name in enumerate(index.models):
            table = session.prompt_clusters(name)
            if table is None:
                continue
            mine = np.flatnonzero(index.prompt_model == code)
            table_ids, cluster = table
            rows = align_rows(np.asarray(index.prompt_id[mine], dtype=object), table_ids)
            out[mine] = np.where(rows >= 0, cluster[np.clip(rows, 0, max(len(cluster) - 1, 0))], -1) if len(cluster) else -1
        return out

    return session.memo("prompt_clusters", compute)


def activation_clusters(session: LakeSession, ref: str) -> np.ndarray | None:
    """Per embedding row, its k-means cluster in ``analysis/clusters/<key>`` (-1 where absent); None without that table."""
    key = session.embedding(ref).key
    if not session.has_activation_clusters(key):
        return None

    def compute() -> np.ndarray:
        cluster = session.activation_clusters(key)
        assert cluster is not None  # checked above; the memo reads it once
        return _take(cluster, session.table_rows(session.clusters_group(key), ref), -1)

    return session.memo(("activation_clusters", ref), compute)


def colour_options(session: LakeSession, ref: str) -> list[str]:
    """The colourings of this module that the lake's data supports for embedding `ref`, in menu order."""
    options = []
    prompted = embedding_has_t2i(session, ref)  # an ImageNet key's points have no prompt to colour by
    if prompted:
        options.append(PROMPT)
        if (prompt_clusters(session) >= 0).any():
            options.append(PROMPT_CLUSTER)
    if session.has_activation_clusters(session.embedding(ref).key):
        options.append(CLUSTER)
    if has_t2i(session):  # which generator made each point: meaningful on every key of such a lake
        options.append(MODEL)
    return options


def embedding_has_t2i(session: LakeSession, ref: str) -> bool:
    """Whether any point of embedding `ref` is a text-to-image sample (so it has a prompt and a model)."""
    if not has_t2i(session):
        return False

    def find() -> bool:
        rows = session.frame(ref).sample_row
        t2i_row = prompt_index(session).t2i_row
        rows = rows[(rows >= 0) & (rows < len(t2i_row))]
        return bool((t2i_row[rows] >= 0).any())

    return bool(session.memo(("embedding_has_t2i", ref), find))


def colour_codes(session: LakeSession, frame: EmbeddingFrame, ref: str, option: str) -> tuple[np.ndarray, np.ndarray]:
    """(codes, labels) of a categorical colouring: per embedding row a code into `labels`; code 0 is the 'none' entry.

    The same shape as the class colouring (class_id + 1 into ["no class", ...]), so the
    Explore and 3D pages colour, rank and legend these categories like classes.
    """
    return session.memo(("colour_codes", ref, option), lambda: _colour_codes(session, frame, ref, option))


def _colour_codes(session: LakeSession, frame: EmbeddingFrame, ref: str, option: str) -> tuple[np.ndarray, np.ndarray]:
    if option == PROMPT:
        labels = np.concatenate([[NO_PROMPT], prompt_index(session).labels(LEGEND_CHARS)]).astype(object)
        return embedding_prompt_codes(session, frame, ref).astype(np.int64) + 1, labels
    if option == PROMPT_CLUSTER:
        index = prompt_index(session)
        clusters = prompt_clusters(session)
        # One category per (model, cluster): two models' cluster 0 are unrelated.
        pair = index.prompt_model.astype(np.int64) * (1 << 32) + clusters
        pairs = np.unique(pair[clusters >= 0])
        per_prompt = np.where(clusters >= 0, np.searchsorted(pairs, pair) + 1, 0)
        several = len(np.unique(index.prompt_model[clusters >= 0])) > 1  # name the model only when two have clusters
        names = [NO_CLUSTER] + [f"{index.models[p >> 32] + ' · ' if several else ''}cluster {p & 0xFFFFFFFF}" for p in pairs.tolist()]
        codes = np.concatenate([[0], per_prompt])[embedding_prompt_codes(session, frame, ref) + 1]
        return codes.astype(np.int64), np.array(names, dtype=object)
    if option == CLUSTER:
        cluster = activation_clusters(session, ref)
        if cluster is None:
            raise KeyError(f"{ref}: no analysis/clusters table for this key")
        top = int(cluster.max()) if len(cluster) else -1
        return cluster + 1, np.array([NO_CLUSTER] + [f"cluster {c}" for c in range(top + 1)], dtype=object)
    if option == MODEL:
        model_ids = session.column_values(ref, "samples.model_id") if any(c.ref == "samples.model_id" for c in session.columns(ref)) else None
        if model_ids is None:  # a lake without model_id: the join says which rows came from which model
            index = prompt_index(session)
            code = _take(index.model_code, frame.sample_row, -1).astype(np.int64)
            return code + 1, np.array([NO_MODEL, *index.models], dtype=object)
        codes, categories = factorize(model_ids)
        # factorize sorts categories, so '' (a real image's model_id) is first when present: it is the 'none' entry.
        if categories and categories[0] == "":
            return codes.astype(np.int64), np.array([NO_MODEL, *categories[1:]], dtype=object)
        return codes.astype(np.int64) + 1, np.array([NO_MODEL, *categories], dtype=object)
    raise KeyError(option)


def hover_prompts(session: LakeSession, frame: EmbeddingFrame, ref: str, rows: np.ndarray) -> Any:
    """The prompt of each row, cut to `HOVER_CHARS`, as a pandas Categorical (the text once per prompt, not per row)."""
    import pandas as pd

    # The categories are built and checked once per lake commit: every rerun's highlights reuse them.
    dtype = session.memo("hover_prompt_dtype", lambda: pd.CategoricalDtype([NO_PROMPT, *prompt_index(session).labels(HOVER_CHARS)]))
    codes = embedding_prompt_codes(session, frame, ref)[np.asarray(rows, dtype=np.int64)] + 1
    return pd.Categorical.from_codes(codes, dtype=dtype)


def export_columns(session: LakeSession, frame: EmbeddingFrame, ref: str) -> Callable[[np.ndarray], dict[str, Any]] | None:
    """For `export.points_frame`: the model and prompt columns of any rows (empty text for rows no prompt made);
    None when no point of embedding `ref` has a prompt (an ImageNet key's export keeps its usual columns)."""
    if not embedding_has_t2i(session, ref):
        return None

    def columns(rows: np.ndarray) -> dict[str, Any]:
        import pandas as pd

        index = prompt_index(session)
        codes = embedding_prompt_codes(session, frame, ref)[np.asarray(rows, dtype=np.int64)] + 1
        model = np.asarray(index.models, dtype=object)[index.prompt_model] if index.n_prompts else np.zeros(0, object)

        def column(values: np.ndarray) -> Any:
            # Categorical over the distinct prompts (+ '' first): repeated text costs nothing per row.
            uniques, inverse = np.unique(np.concatenate([[""], np.asarray(values, dtype=object)]).astype(str), return_inverse=True)
            return pd.Categorical.from_codes(inverse[codes], categories=list(uniques))

        return {"model": column(model), "prompt_id": column(index.prompt_id), "prompt": column(index.prompt),
                "negative_prompt": column(index.negative_prompt)}  # fmt: skip

    return columns


def row_label(session: LakeSession, frame: EmbeddingFrame, ref: str, row: int) -> str:
    """What names a sample where a class name would: its class, else its prompt (cut), else 'no class'."""
    class_id = int(frame.class_id[row])
    if 0 <= class_id < 1000:
        return session.classes.label(class_id)
    if has_t2i(session):
        code = int(embedding_prompt_codes(session, frame, ref)[row])
        if code >= 0:
            return str(prompt_index(session).labels(LEGEND_CHARS)[code])
    return NO_CLASS


def t2i_sample(session: LakeSession, sample_row: int) -> T2ISample | None:
    """The text-to-image record of `samples` row `sample_row`, or None when no prompt made it."""
    if sample_row < 0 or not has_t2i(session):
        return None
    index = prompt_index(session)
    if sample_row >= len(index.t2i_row) or index.t2i_row[sample_row] < 0:
        return None
    name, row = index.models[int(index.model_code[sample_row])], int(index.t2i_row[sample_row])
    return session.t2i_sample(name, row)


IDENTITY_FIELDS = (("family", "family"), ("base", "base"), ("UNet", "unet"), ("LoRA", "lora"))


def identity_facts(identity: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) pairs naming the model: family, base folder, UNet and LoRA file, each with its hash's first 12 hex digits."""
    facts = []
    for label, key in IDENTITY_FIELDS:
        value = str(identity.get(key, "") or "")
        digest = str(identity.get(f"{key}_sha256", "") or "")
        if not value and not digest:
            continue
        facts.append((label, f"{value or '—'}" + (f" (sha256 {digest[:12]})" if digest else "")))
    size = (identity.get("height"), identity.get("width"))
    if all(isinstance(v, int) for v in size):
        facts.append(("size", f"{size[1]}×{size[0]}"))
    return facts
