"""Text-to-image samples in the explorer (AppTest, real lakes on disk written with the committed specs).

The lake holds ImageNet-style rows (their own key) and two text-to-image models: `tiny-sdxl`
(10 prompts, per-step x0 previews, prompt clusters, activation clusters) and `tiny-sd15`
(2 prompts, no previews, no prompt analysis), each with its own key, as `ingest generate-t2i`
and `analysis run` lay them out. The t2i tables are written in another order than `samples`,
so the join by `sample_id` is what finds each row.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from apptest import chart_datasets, markdown_text, open_app, scatter_points

from explorer import charts, export, job_commands, prompts
from explorer.columns import NO_CLASS
from explorer.session import LakeSession
from explorer.state import ViewState, decode_query_params, encode_query_params
from lake import SAMPLES, LakeWriter, Provenance, imagenet_classes
from lake.layout import (
    T2I_SPLIT,
    AnalysisKey,
    clusters_spec,
    embedding_spec,
    joint_embedding_spec,
    knn_spec,
    pca_spec,
    preview_size,
    prompt_clusters_spec,
    prompt_id,
    t2i_prompts_spec,
    t2i_sample_id,
    t2i_samples_spec,
)

SDXL, SD15 = "tiny-sdxl", "tiny-sd15"
SDXL_PROMPTS = (
    ("a photo of a goldfish", 1, 0),  # (prompt, class_id, prompt cluster)
    ("A red Cat sleeping on a sofa", -1, 1),
    ("a cat in the snow", -1, 1),
    ("a CATHEDRAL at night", -1, 2),
    ("a mountain lake at dawn", -1, 2),
    ("an astronaut riding a horse on the moon, highly detailed, photorealistic, trending on artstation", -1, 0),
    ("a bowl of ramen", -1, 0),
    ("two dogs playing in a park", -1, 1),
    ("a lighthouse in a storm", -1, 2),
    ("a watercolour of a fox", -1, 1),
)
SD15_PROMPTS = (("a cat in the snow", -1), ("a photo of a tabby cat", 281))
SEEDS = (0, 1, 2)
TIMESTEPS = (999, 749, 499, 249)
SIGMAS = (157.4, 9.07, 2.04, 0.59)
IDENTITY = {"family": "sdxl", "base": "tiny-base", "base_sha256": "ab" * 32, "unet": "dmd2_tiny_4step.bin", "unet_sha256": "cd" * 32,
            "lora": "", "lora_sha256": "", "sigmas": list(SIGMAS)}  # fmt: skip
HEIGHT, WIDTH = 96, 80
NEGATIVE = "blurry, low quality"
IMAGENET_KEY = AnalysisKey("enc.8x8_block2", 2.0)
SDXL_KEY = AnalysisKey(f"{SDXL}.mid_block.attentions.0", 9.07)
SD15_KEY = AnalysisKey(f"{SD15}.mid_block.attentions.0", 157.4)
UMAP2D, UMAP3D = "umap2d-n15-d0.1-euclidean-s42", "umap3d-n15-d0.1-euclidean-s42"


@dataclass(frozen=True)
class T2ILake:
    path: Path
    samples: pd.DataFrame  # one row per samples row: sample_id, class_id, model, prompt, prompt_id, negative, seed, index
    activation_cluster: dict[str, int]  # sdxl key: sample id -> cluster


def _ref(key: AnalysisKey, name: str = UMAP2D) -> str:
    return f"{key.name}/{name}"


def _image(seed: int, height: int, width: int, tint: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(seed)
    base = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), np.full_like(x, tint)], axis=-1)
    return np.clip(base + rng.integers(-20, 20, size=(height, width, 3)), 0, 255).astype(np.uint8)


def _thumb(image: np.ndarray) -> np.ndarray:
    side = min(image.shape[:2])
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    square = image[top : top + side, left : left + side]
    rows = np.linspace(0, side - 1, 64).astype(int)
    return square[rows][:, rows]


def _write_key(writer: LakeWriter, key: AnalysisKey, table: pd.DataFrame, dims: tuple[int, ...] = (2,), clusters: np.ndarray | None = None) -> None:
    """PCA scores, embeddings and a k-NN graph of `table`'s rows, with the committed specs (as `analysis run` writes them)."""
    rng = np.random.default_rng(len(key.name))
    n = len(table)
    centre = rng.normal(0, 5, size=(64, 6))
    group_of = pd.factorize(table["group"])[0]
    scores = (centre[group_of % 64] + rng.normal(0, 0.5, size=(n, 6))).astype(np.float32)
    labels = {"sample_id": table["sample_id"].to_numpy(object), "source": table["source"].to_numpy(object),
              "class_id": table["class_id"].to_numpy(np.int16), "split": table["split"].to_numpy(object),
              "sample_row": table.index.to_numpy(np.int64)}  # fmt: skip
    writer.table(pca_spec(key, 6, {})).append({"scores": scores, **labels})
    for d in dims:
        writer.table(embedding_spec(key, UMAP2D if d == 2 else UMAP3D, d, {"method": "umap"})).append({"embedding": scores[:, :d].copy(), **labels})
    k = 4
    d2 = ((scores[:, None, :] - scores[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    index = np.argsort(d2, axis=1)[:, :k]
    writer.table(knn_spec(key, k, {"k": k})).append(
        {"neighbor_id": labels["sample_id"][index], "neighbor_row": index.astype(np.int64),
         "distance": np.sqrt(np.take_along_axis(d2, index, 1)).astype(np.float32), **labels}  # fmt: skip
    )
    if clusters is not None:
        writer.table(clusters_spec(key, {"n_clusters": int(clusters.max()) + 1})).append({"cluster": clusters.astype(np.int32), **labels})


def build_t2i_lake(path: Path) -> T2ILake:
    classes = imagenet_classes()
    rows = []
    for cid in (1, 9, 130, 207):
        for source in ("real", "generated"):
            for j in range(3):
                sid = f"in64/val/{cid}/{j}" if source == "real" else f"gen/dmd2-test/s7/{cid}-{j}"
                rows.append({"sample_id": sid, "class_id": cid, "source": source, "split": "val" if source == "real" else "generated",
                             "model": "" if source == "real" else "dmd2-test", "prompt": "", "prompt_id": "", "negative": "",
                             "seed": -1 if source == "real" else j, "index": 0, "group": f"c{cid}"})  # fmt: skip
    for name, prompt_list in ((SDXL, [(p, c) for p, c, _ in SDXL_PROMPTS]), (SD15, list(SD15_PROMPTS))):
        for p, cid in prompt_list:
            negative = NEGATIVE if name == SDXL and "cat" in p.lower() else ""
            pid = prompt_id(p, negative)
            for seed in SEEDS:
                rows.append({"sample_id": t2i_sample_id(name, pid, seed, 0), "class_id": cid, "source": "generated", "split": T2I_SPLIT,
                             "model": name, "prompt": p, "prompt_id": pid, "negative": negative, "seed": seed, "index": 0,
                             "group": f"{name}/{pid}"})  # fmt: skip
    table = pd.DataFrame(rows)
    n = len(table)
    images = np.zeros((n, 64, 64, 3), np.uint8)
    natives: dict[int, np.ndarray] = {}
    for i, row in table.iterrows():
        if row["model"] in (SDXL, SD15):
            natives[i] = _image(i, HEIGHT, WIDTH, 40 * (i % 6))
            images[i] = _thumb(natives[i])
        else:
            images[i] = _image(i, 64, 64, row["class_id"] % 255)
    cid = table["class_id"].to_numpy(np.int16)
    # Recorded as `ingest generate` records a random-weight run: the ImageNet keys get the random-weights note.
    with LakeWriter.open(path, Provenance(job="ingest generate", parameters={"weights": "random", "model_id": "dmd2-test"})) as writer:
        writer.table(SAMPLES).append({
            "image": images, "sample_id": table["sample_id"].to_numpy(object), "source": table["source"].to_numpy(object),
            "split": table["split"].to_numpy(object), "class_id": cid,
            "wnid": np.array([classes.wnids[c] if c >= 0 else "" for c in cid], object),
            "class_name": np.array([classes.names[c] if c >= 0 else "" for c in cid], object),
            "origin": np.array([f"t2i {m}: {p}" if p else "test" for m, p in zip(table["model"], table["prompt"])], object),
            "seed": table["seed"].to_numpy(np.int64), "model_id": table["model"].to_numpy(object),
        })  # fmt: skip
        for name, previews in ((SDXL, True), (SD15, False)):
            mine = table.index[table["model"] == name].to_numpy()[::-1]  # another order than `samples`
            attrs = {**IDENTITY, "family": "sdxl" if name == SDXL else "sd15"}
            timesteps = TIMESTEPS if name == SDXL else (999,)
            spec = t2i_samples_spec(name, HEIGHT, WIDTH, timesteps, attrs, step_previews=previews)
            columns = {
                "image": np.stack([natives[i] for i in mine]), "sample_id": table.loc[mine, "sample_id"].to_numpy(object),
                "prompt_id": table.loc[mine, "prompt_id"].to_numpy(object), "prompt": table.loc[mine, "prompt"].to_numpy(object),
                "negative_prompt": table.loc[mine, "negative"].to_numpy(object), "guidance": np.zeros(len(mine), np.float32),
                "seed": table.loc[mine, "seed"].to_numpy(np.int64), "index": table.loc[mine, "index"].to_numpy(np.int64),
                "class_id": table.loc[mine, "class_id"].to_numpy(np.int16),
            }  # fmt: skip
            if previews:
                ph, pw = preview_size(HEIGHT, WIDTH)
                columns["x0"] = np.stack([np.stack([_image(100 * i + s, ph, pw, 60 * s) for s in range(len(timesteps))]) for i in mine])
            writer.table(spec).append(columns)
            distinct = table[table["model"] == name].drop_duplicates("prompt_id")
            writer.table(t2i_prompts_spec(name, 8, attrs)).append({
                "pooled": np.random.default_rng(0).normal(size=(len(distinct), 8)).astype(np.float32),
                "prompt_id": distinct["prompt_id"].to_numpy(object), "prompt": distinct["prompt"].to_numpy(object),
                "negative_prompt": distinct["negative"].to_numpy(object), "class_id": distinct["class_id"].to_numpy(np.int16),
            })  # fmt: skip
        # Prompt clusters of the sdxl model only, rows in reverse prompt order (joined on prompt_id).
        sdxl_prompts = [(prompt_id(p, NEGATIVE if "cat" in p.lower() else ""), p, c) for p, _, c in SDXL_PROMPTS][::-1]
        writer.table(prompt_clusters_spec(SDXL, {"n_clusters": 3})).append({
            "cluster": np.array([c for *_, c in sdxl_prompts], np.int32), "embedding": np.random.default_rng(1).normal(size=(len(sdxl_prompts), 2)).astype(np.float32),
            "prompt_id": np.array([i for i, *_ in sdxl_prompts], object), "prompt": np.array([p for _, p, _ in sdxl_prompts], object),
        })  # fmt: skip
        _write_key(writer, IMAGENET_KEY, table[table["model"].isin(["", "dmd2-test"])])
        sdxl = table[table["model"] == SDXL]
        activation = (np.arange(len(sdxl)) % 4).astype(np.int32)
        _write_key(writer, SDXL_KEY, sdxl, dims=(2, 3), clusters=activation)
        # The joint embedding of the sdxl layer across its steps' sigmas (`analysis trajectory`), rows as the activations'.
        joint = np.random.default_rng(2).normal(size=(len(sdxl), len(SIGMAS), 2)).astype(np.float32)
        writer.table(joint_embedding_spec(SDXL_KEY.layer, sorted(SIGMAS), 2, {"method": "test"})).append({
            "embedding": joint, "sample_id": sdxl["sample_id"].to_numpy(object), "source": sdxl["source"].to_numpy(object),
            "class_id": sdxl["class_id"].to_numpy(np.int16), "split": sdxl["split"].to_numpy(object),
            "sample_row": sdxl.index.to_numpy(np.int64),
        })  # fmt: skip
        _write_key(writer, SD15_KEY, table[table["model"] == SD15])
    return T2ILake(path, table, dict(zip(sdxl["sample_id"], activation.tolist())))


@pytest.fixture(scope="module")
def t2i_lake(tmp_path_factory: pytest.TempPathFactory) -> T2ILake:
    return build_t2i_lake(tmp_path_factory.mktemp("t2i") / "lake")


def _points_layer(at) -> dict:
    spec, _ = chart_datasets(at)
    return next(layer for layer in spec["layer"] if layer["data"]["name"] == "points")


def _legend(at) -> list[str]:
    return list(_points_layer(at)["encoding"]["color"]["scale"]["domain"])


def _count(at) -> int:
    caption = next(c.value for c in at.caption if "filtered points in view" in c.value)
    return int(caption.split(" of ")[0].replace(",", ""))


def _sdxl(lake: T2ILake) -> pd.DataFrame:
    return lake.samples[lake.samples["model"] == SDXL]


# --- the data layer ---------------------------------------------------------------------


def test_prompt_index_joins_every_t2i_row_to_its_samples_row(t2i_lake):
    session = LakeSession(t2i_lake.path)
    index = prompts.prompt_index(session)
    assert index.models == (SD15, SDXL)  # the lake's t2i models, sorted
    table = t2i_lake.samples
    is_t2i = table["model"].isin([SDXL, SD15]).to_numpy()
    assert ((index.prompt_code >= 0) == is_t2i).all() and ((index.t2i_row >= 0) == is_t2i).all()
    # Each samples row's prompt, model and t2i row come back right although the t2i tables run in reverse order.
    assert list(index.prompt[index.prompt_code[is_t2i]]) == list(table["prompt"][is_t2i])
    assert list(np.asarray(index.models)[index.model_code[is_t2i]]) == list(table["model"][is_t2i])
    assert list(index.negative_prompt[index.prompt_code[is_t2i]]) == list(table["negative"][is_t2i])
    for row in np.flatnonzero(is_t2i):
        name = index.models[index.model_code[row]]
        stored = session.lake.column(f"t2i/{name}/samples", "sample_id", [index.t2i_row[row]])[0]
        assert stored == table["sample_id"][row]
    # One prompt per (model, prompt id): the text both models were given is two prompts.
    assert index.n_prompts == len(SDXL_PROMPTS) + len(SD15_PROMPTS)
    assert list(index.prompt).count("a cat in the snow") == 2
    assert index.matching("CAT").sum() == sum("cat" in p.lower() for p in index.prompt) == 5


def test_column_rows_finds_a_run_in_order_and_joins_any_other_order(t2i_lake):
    session = LakeSession(t2i_lake.path)
    ids = t2i_lake.samples["sample_id"].to_numpy(object)
    run = ids[24:40]  # as a job writes a linked table: the same order as its samples rows
    assert list(session.column_rows(run)) == list(range(24, 40))
    shuffled = np.concatenate([ids[::-1][:30], ["t2i/absent/0/s0/0"]])
    assert list(session.column_rows(shuffled)) == [*range(len(ids) - 1, len(ids) - 31, -1), -1]


def test_short_labels_cut_long_prompts_and_never_merge_two():
    ids = np.array(["aaaaaa111", "bbbbbb222", "cccccc333"], object)
    texts = np.array(["a very long prompt about a cat", "a very long prompt about a dog", "short"], object)
    labels = prompts.short_labels(texts, ids, 12)
    assert labels[2] == "short"
    assert labels[0] == "a very long… [aaaaaa]" and labels[1] == "a very long… [bbbbbb]"
    assert len(set(labels)) == 3
    # Two models given the same text: the model tells them apart; one model's two prompts that cut alike: their ids.
    owners = np.array(["sdxl", "sd15", "sdxl"], object)
    texts = np.array(["a cat", "a cat", "a cat"], object)
    assert list(prompts.short_labels(texts, ids, 12, owners)) == ["a cat [aaaaaa]", "a cat [sd15]", "a cat [cccccc]"]
    # A prompt that reads like the legend's entry for samples without one keeps its own entry.
    assert prompts.short_labels(np.array([prompts.NO_PROMPT], object), ids[:1], 48)[0] == f"{prompts.NO_PROMPT} [aaaaaa]"


def test_the_prompt_search_is_in_the_url():
    state = replace(ViewState(), prompt="red cat")
    assert encode_query_params(state)["prompt"] == "red cat"
    assert decode_query_params({"prompt": "red cat"}).prompt == "red cat"
    assert "prompt" not in encode_query_params(ViewState())


def test_export_has_prompt_columns_for_t2i_rows_and_empty_text_for_the_others(t2i_lake):
    session = LakeSession(t2i_lake.path)
    # An ImageNet key's points have no prompt: its export keeps the usual columns.
    assert prompts.export_columns(session, session.frame(_ref(IMAGENET_KEY)), _ref(IMAGENET_KEY)) is None
    for key, models in ((SDXL_KEY, {SDXL}),):
        ref = _ref(key)
        frame = session.frame(ref)
        table = export.points_frame(frame, np.arange(frame.size), session.classes, prompts.export_columns(session, frame, ref))
        csv = pd.read_csv(io.BytesIO(export.to_csv(table)), keep_default_na=False)
        truth = t2i_lake.samples.set_index("sample_id").loc[csv["sample_id"]]
        assert list(csv["prompt"]) == list(truth["prompt"]) and list(csv["prompt_id"]) == list(truth["prompt_id"])
        assert list(csv["negative_prompt"]) == list(truth["negative"]) and set(csv["model"]) == models
        assert set(csv["class"]) <= {NO_CLASS, *(imagenet_classes().label(c) for c in range(1000))}
    frame = session.frame(_ref(SDXL_KEY))
    assert (export.points_frame(frame, np.arange(frame.size), session.classes, None).columns.str.contains("prompt")).sum() == 0


# --- the page -------------------------------------------------------------------------------


def test_colour_options_follow_the_data(t2i_lake, small_lake, monkeypatch):
    at = open_app(t2i_lake.path, monkeypatch, {"emb": _ref(SDXL_KEY)})
    options = at.selectbox(key="w_color").options
    for label in ("prompt", "prompt cluster", "activation cluster (k-means)", "model"):
        assert label in options
    assert "model_id (samples)" in options  # every per-sample column stays a colouring
    # The sd15 key has no clusters table: no activation clusters there (prompt clusters exist for the lake's sdxl prompts).
    at = open_app(t2i_lake.path, monkeypatch, {"emb": _ref(SD15_KEY)})
    assert "activation cluster (k-means)" not in at.selectbox(key="w_color").options
    # A lake without text-to-image samples offers none of them, and no prompt search.
    at = open_app(small_lake.path, monkeypatch)
    options = at.selectbox(key="w_color").options
    assert not {"prompt", "prompt cluster", "activation cluster (k-means)", "model"} & set(options)
    assert "model_id (samples)" in options
    assert not [t for t in at.sidebar.text_input if t.key == "w_prompt"]
    assert "prompt" not in scatter_points(at).columns


def test_colour_by_prompt_gives_the_top_prompts_and_grey_other(t2i_lake, monkeypatch):
    at = open_app(t2i_lake.path, monkeypatch, {"emb": _ref(SDXL_KEY), "color": "prompt"})
    legend = _legend(at)
    assert len(legend) == 9 and legend[-1] == charts.OTHER  # 10 prompts: 8 colours plus "other"
    assert "top 8 in view" in _points_layer(at)["encoding"]["color"]["title"]
    points = scatter_points(at)
    coloured = points[points["colour"] != charts.OTHER]
    assert set(coloured["colour"]) == set(legend[:-1])
    # A colour means its prompt (legend labels are the prompts, long ones cut with an ellipsis).
    assert all(str(c).rstrip("…") in str(p) or str(c).rstrip("…") == str(p) for c, p in zip(coloured["colour"], coloured["prompt"]))
    assert len(set(points.loc[points["colour"] == charts.OTHER, "prompt"])) == 2  # the other two prompts are grey
    at.text_input(key="w_prompt").input("astronaut").run()
    (label,) = _legend(at)
    assert label == SDXL_PROMPTS[5][0][: prompts.LEGEND_CHARS].rstrip() + "…"  # a long prompt is cut in the legend


def test_search_narrows_to_exactly_the_matching_rows_and_combines_with_filters(t2i_lake, monkeypatch):
    at = open_app(t2i_lake.path, monkeypatch, {"emb": _ref(SDXL_KEY), "color": "prompt"})
    sdxl = _sdxl(t2i_lake)
    assert _count(at) == len(sdxl)
    at.text_input(key="w_prompt").input("CAT").run()
    matching = sdxl[sdxl["prompt"].str.lower().str.contains("cat")]
    assert _count(at) == len(matching) == 9  # red Cat, cat in the snow, CATHEDRAL: 3 seeds each
    points = scatter_points(at)
    assert set(points["sample_id"]) == set(matching["sample_id"])
    # The legend: exactly the matching prompts (the text the sd15 model was also given names its model).
    assert sorted(_legend(at)) == sorted(p if p != "a cat in the snow" else f"{p} [{SDXL}]" for p in set(matching["prompt"]))
    assert "5 of the lake's 12 prompts match" in " ".join(c.value for c in at.sidebar.caption)
    assert at.query_params["prompt"] == "CAT"
    # With the class filter: a prompt search and a class narrow together.
    at.text_input(key="w_prompt").input("photo of").run()
    assert _count(at) == 3
    at.multiselect(key="w_classes").set_value([1]).run()
    assert _count(at) == 3 and set(scatter_points(at)["class"]) == {imagenet_classes().label(1)}
    at.text_input(key="w_prompt").input("snow").run()
    assert _count(at) == 0  # no goldfish in the snow
    at.multiselect(key="w_classes").set_value([]).run()
    assert _count(at) == 3


def test_colour_by_prompt_cluster_and_activation_cluster(t2i_lake, monkeypatch):
    at = open_app(t2i_lake.path, monkeypatch, {"emb": _ref(SDXL_KEY), "color": "prompt_cluster"})
    assert _legend(at) == ["cluster 0", "cluster 1", "cluster 2"]
    points = scatter_points(at)
    cluster_of = {p: f"cluster {c}" for p, _, c in SDXL_PROMPTS}
    truth = _sdxl(t2i_lake).set_index("sample_id").loc[points["sample_id"], "prompt"].map(cluster_of)
    assert list(points["colour"].astype(str)) == list(truth)
    at.selectbox(key="w_color").set_value("cluster").run()
    assert _legend(at) == [f"cluster {c}" for c in range(4)]
    points = scatter_points(at)
    assert list(points["colour"].astype(str)) == [f"cluster {t2i_lake.activation_cluster[s]}" for s in points["sample_id"]]
    # The sd15 model has no prompt analysis: its rows read "no cluster".
    at = open_app(t2i_lake.path, monkeypatch, {"emb": _ref(SD15_KEY), "color": "prompt_cluster"})
    assert _legend(at) == [prompts.NO_CLUSTER]


def test_class_and_model_colourings_name_samples_without_a_class(t2i_lake, monkeypatch):
    at = open_app(t2i_lake.path, monkeypatch, {"emb": _ref(SDXL_KEY)})
    assert _legend(at) == [NO_CLASS, imagenet_classes().label(1)]
    assert set(scatter_points(at)["class"].astype(str)) == {NO_CLASS, imagenet_classes().label(1)}
    at.selectbox(key="w_color").set_value("model").run()
    assert _legend(at) == [SDXL]
    at = open_app(t2i_lake.path, monkeypatch, {"emb": _ref(IMAGENET_KEY), "color": "model"})
    assert _legend(at) == [prompts.NO_MODEL, "dmd2-test"]


def test_hover_carries_the_prompt_and_the_thumbnail_row(t2i_lake, monkeypatch):
    at = open_app(t2i_lake.path, monkeypatch, {"emb": _ref(SDXL_KEY)})
    tooltip = [t["field"] for t in _points_layer(at)["encoding"]["tooltip"]]
    assert tooltip[:2] == ["image", "prompt"]
    points = scatter_points(at)
    truth = t2i_lake.samples.assign(row=np.arange(len(t2i_lake.samples))).set_index("sample_id").loc[points["sample_id"]]
    assert list(points["thumb"]) == list(truth["row"])  # the samples row: the thumbnail server's key
    for shown, prompt in zip(points["prompt"].astype(str), truth["prompt"]):
        cut = prompt if len(prompt) <= prompts.HOVER_CHARS else prompt[: prompts.HOVER_CHARS].rstrip() + "…"
        assert shown == (f"{cut} [{SDXL}]" if prompt == "a cat in the snow" else cut)  # the text both models had names its model


def _image_captions(at) -> list[list[str]]:
    return [[i.caption for i in image.proto.imgs] for image in at.get("image")]


def test_details_show_the_prompt_model_and_every_step_preview(t2i_lake, monkeypatch):
    sdxl = _sdxl(t2i_lake)
    row = sdxl[sdxl["negative"] != ""].iloc[0]
    at = open_app(t2i_lake.path, monkeypatch, {"emb": _ref(SDXL_KEY), "sel": row["sample_id"]})
    text = markdown_text(at)
    for expected in (row["prompt"], NEGATIVE, row["prompt_id"], "999, 749, 499, 249", "dmd2\\_tiny\\_4step.bin",
                     "sha256 cdcdcdcdcdcd", "**family**: sdxl", f"{row['seed']} · 0", "80×96", "**guidance**: 0"):  # fmt: skip
        assert expected in text, expected
    assert "**class**: no class" in text
    captions = _image_captions(at)
    steps = next(c for c in captions if c and c[0].startswith("t="))
    assert steps == [f"t={t} · σ={s:.3g}" for t, s in zip(TIMESTEPS, SIGMAS)]  # one preview per step, with its timestep
    native = at.get("image")[0].proto.imgs[0]
    assert captions[0] == [f"{SDXL} · {WIDTH}×{HEIGHT}"] and native.url  # the native image, first
    # Neighbours are named by their prompt where they have no class.
    neighbour_captions = " ".join(c for cs in captions[2:] for c in cs)
    assert any(p[:20] in neighbour_captions for p, _, _ in SDXL_PROMPTS)


def test_edit_jobs_are_not_offered_for_text_to_image_samples_or_keys(t2i_lake, monkeypatch):
    sdxl_id = str(_sdxl(t2i_lake)["sample_id"].iloc[0])
    imagenet_id = str(t2i_lake.samples.loc[t2i_lake.samples["model"] == "dmd2-test", "sample_id"].iloc[0])
    facts = job_commands.LakeFacts(t2i_lake.path, lambda ids: [True] * len(ids), lambda ids: ["generated"] * len(ids), (IMAGENET_KEY.layer,),
                           {IMAGENET_KEY.layer: 16}, (IMAGENET_KEY.name, SDXL_KEY.name))  # fmt: skip
    with pytest.raises(job_commands.JobRefused, match="text-to-image sample"):
        job_commands.build_commands(job_commands.JobRequest("regenerate", (sdxl_id,), IMAGENET_KEY.name), facts)
    with pytest.raises(job_commands.JobRefused, match="text-to-image model's key"):
        job_commands.build_commands(job_commands.JobRequest("regenerate", (imagenet_id,), SDXL_KEY.name), facts)
    assert job_commands.build_commands(job_commands.JobRequest("regenerate", (imagenet_id,), IMAGENET_KEY.name), facts)  # the ImageNet sample still can
    at = open_app(t2i_lake.path, monkeypatch, {"emb": _ref(SDXL_KEY), "sel": sdxl_id})
    assert any("No edit jobs here" in c.value and "text-to-image sample" in c.value for c in at.caption)
    assert not [b for b in at.button if b.label == "Regenerate"]
    at = open_app(t2i_lake.path, monkeypatch, {"emb": _ref(IMAGENET_KEY), "sel": imagenet_id})
    assert [b for b in at.button if b.label == "Regenerate"]


def test_details_without_previews_show_no_step_strip(t2i_lake, monkeypatch):
    sd15 = t2i_lake.samples[t2i_lake.samples["model"] == SD15]
    row = sd15.iloc[-1]
    at = open_app(t2i_lake.path, monkeypatch, {"emb": _ref(SD15_KEY), "sel": row["sample_id"]})
    text = markdown_text(at)
    assert row["prompt"] in text and "**family**: sd15" in text and "**Steps**" not in text
    assert not [c for cs in _image_captions(at) for c in cs if c.startswith("t=")]
    assert row["class_id"] == 281 and f"**class**: {imagenet_classes().label(281)}" in text  # a prompt made from a class keeps it


def test_an_imagenet_sample_in_a_t2i_lake_keeps_its_usual_details(t2i_lake, monkeypatch):
    table = t2i_lake.samples
    row = table[table["model"] == "dmd2-test"].iloc[0]
    at = open_app(t2i_lake.path, monkeypatch, {"emb": _ref(IMAGENET_KEY), "sel": row["sample_id"], "color": "prompt"})
    text = markdown_text(at)
    assert "**prompt**" not in text and imagenet_classes().label(int(row["class_id"])) in text
    # No point of an ImageNet key has a prompt, so prompt colourings are not offered there (the link falls back to class).
    assert not {"prompt", "prompt_cluster"} & set(at.selectbox(key="w_color").options)
    assert at.session_state["view"].color_by == "class"


def test_other_pages_colour_by_prompt_too(t2i_lake, monkeypatch):
    at = open_app(t2i_lake.path, monkeypatch, {"emb": _ref(SDXL_KEY), "color": "prompt", "prompt": "cat"})
    for page in ("3d", "compare", "explore"):
        at.radio(key="w_page").set_value(page).run()  # CheckedAppTest: no error box, no exception
    assert at.session_state["view"].prompt == "cat"
    at.radio(key="w_page").set_value("compare").run()
    assert any("nothing real to compare with" in i.value for i in at.info)  # not "run analysis run", which skips it here
    at.radio(key="w_page").set_value("3d").run()
    (deck,) = at.get("deck_gl_json_chart")
    assert "{prompt}" in deck.proto.tooltip  # the 3D hover names the prompt
    data = json.loads(deck.proto.json)["layers"][0]["data"]
    sdxl = _sdxl(t2i_lake)
    assert sorted(d["sample_id"] for d in data) == sorted(sdxl.loc[sdxl["prompt"].str.lower().str.contains("cat"), "sample_id"])


def test_the_prompts_page_maps_the_prompts_by_cluster(t2i_lake, small_lake, monkeypatch):
    at = open_app(t2i_lake.path, monkeypatch, {"emb": _ref(SDXL_KEY), "page": "prompts"})
    assert "Prompts" in at.radio(key="w_page").options and at.radio(key="w_page").value == "prompts"
    assert at.selectbox(key="w_prompt_model").options == [SD15, SDXL]
    at.selectbox(key="w_prompt_model").set_value(SDXL).run()
    spec, frames = chart_datasets(at)
    drawn = frames["prompts"]
    cluster_of = {p: c for p, _, c in SDXL_PROMPTS}
    assert sorted(drawn["prompt"]) == sorted(cluster_of)  # every prompt of the model, once
    assert all(str(c) == f"cluster {cluster_of[p]}" for p, c in zip(drawn["prompt"], drawn["colour"]))
    assert set(drawn["samples"]) == {len(SEEDS)}  # each prompt's samples in the lake
    assert spec["encoding"]["color"]["scale"]["domain"] == ["cluster 0", "cluster 1", "cluster 2"]
    listed = at.dataframe[0].value
    assert list(listed["cluster"]) == sorted(listed["cluster"]) and len(listed) == len(SDXL_PROMPTS)
    # The prompt search narrows the map and the list.
    at.text_input(key="w_prompt").input("cat").run()
    assert sorted(chart_datasets(at)[1]["prompts"]["prompt"]) == sorted(p for p in cluster_of if "cat" in p.lower())
    # A model without a prompt map: the page names the command that makes one.
    at.selectbox(key="w_prompt_model").set_value(SD15).run()
    assert any(f"analysis prompts --lake {t2i_lake.path} --name {SD15}" in c.value for c in at.code)
    # A lake without text-to-image samples has no Prompts page (a URL naming it falls back to Explore).
    at = open_app(small_lake.path, monkeypatch, {"page": "prompts"})
    assert "Prompts" not in at.radio(key="w_page").options and at.radio(key="w_page").value == "explore"


def test_the_noise_levels_page_applies_the_prompt_search(t2i_lake, monkeypatch):
    at = open_app(t2i_lake.path, monkeypatch, {"emb": _ref(SDXL_KEY), "page": "noise"})
    sdxl = _sdxl(t2i_lake)
    assert set(chart_datasets(at)[1]["points"]["sample_id"]) == set(sdxl["sample_id"])
    at.text_input(key="w_prompt").input("Snow").run()
    drawn = chart_datasets(at)[1]["points"]
    assert set(drawn["sample_id"]) == set(sdxl.loc[sdxl["prompt"] == "a cat in the snow", "sample_id"])
    assert len(drawn) == len(SEEDS) * len(SIGMAS)  # every step of the three matching samples


def test_the_random_weights_note_is_for_the_imagenet_generator_only(t2i_lake, monkeypatch):
    at = open_app(t2i_lake.path, monkeypatch, {"emb": _ref(IMAGENET_KEY)})
    assert any("seeded random weights" in i.value for i in at.info)  # the ImageNet generator's samples
    at = open_app(t2i_lake.path, monkeypatch, {"emb": _ref(SDXL_KEY)})
    assert not any("seeded random weights" in i.value for i in at.info)  # not said of a text-to-image model's key
