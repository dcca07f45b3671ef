"""The Noise levels page under Streamlit's AppTest, on a small lake with the noise-axis groups.

`build_noise_lake` writes, through the lake's layout specs and `LakeWriter`, what the
noise-axis jobs write: multi-step samples (rows of `samples` plus `trajectories/<schedule>`),
stored reconstructions for some real images, the joint embedding of every sigma
(`analysis/trajectory/<layer>`, with NaN where a sample was not probed) and the steps
placed in it (`analysis/trajectory/<layer>/<schedule>`). The page must draw the stored
coordinates (no re-projection), from high sigma to low, and the right images under them.
"""
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from apptest import chart_datasets, markdown_text, open_app
from conftest import CLASSES, KEY, BuiltLake, build_lake, make_images

from explorer import animation, charts
from explorer.noise_map import NOISE_KEY
from explorer.page_noise import LAYER_KEY, PATHS_KEY, SHOW_3D_KEY
from lake import SAMPLES, LakeWriter, Provenance, imagenet_classes, parse_key
from lake.layout import (
    joint_embedding_group,
    joint_embedding_spec,
    reconstructions_spec,
    schedule_id,
    trajectory_spec,
)

LAYER = parse_key(KEY).layer
PROBE_SIGMAS = (0.5, 2.0, 10.0, 80.0)  # as `ingest activations` stores them: increasing
STEP_SIGMAS = (80.0, 20.0, 5.0, 1.5)
SCHEDULE = schedule_id(STEP_SIGMAS)


@dataclass(frozen=True)
class NoiseLake:
    path: Path
    base: BuiltLake
    probe_ids: np.ndarray  # rows of the joint embedding
    probe_coords: np.ndarray  # (n, sigmas, 2), NaN where not probed
    step_ids: np.ndarray  # the multi-step samples
    step_coords: np.ndarray  # (m, steps, 2)
    step_images: np.ndarray  # (m, steps, 64, 64, 3)
    reconstructed: np.ndarray  # ids with stored reconstructions
    unprobed: str  # a real sample whose probe at sigma 10 is missing (NaN)


def build_noise_lake(path: Path, per_group: int = 6, steps_samples: int = 6) -> NoiseLake:
    base = build_lake(path, per_group=per_group)
    classes = imagenet_classes()
    model = f"dmd2-test~{SCHEDULE}"
    step_ids = np.array([f"gen/{model}/s3/{i}" for i in range(steps_samples)], dtype=object)
    step_class = np.array([CLASSES[i % len(CLASSES)] for i in range(steps_samples)], dtype=np.int16)
    step_images = np.stack([make_images(step_class, np.arange(steps_samples) * 10 + k) for k in range(len(STEP_SIGMAS))], axis=1)
    rng = np.random.default_rng(5)
    probe_ids = np.concatenate([base.sample_ids, step_ids])
    probe_class = np.concatenate([base.class_ids, step_class])
    probe_source = np.concatenate([base.sources, np.full(steps_samples, "generated", dtype=object)])
    n, s = len(probe_ids), len(PROBE_SIGMAS)
    # Each sample drifts from its class centre (low sigma) towards the middle (high sigma).
    centres = rng.normal(0, 5, size=(1000, 2))
    weight = np.linspace(0.0, 0.9, s)[None, :, None]
    probe_coords = ((1 - weight) * centres[probe_class.astype(int)][:, None, :] + rng.normal(0, 0.6, size=(n, s, 2))).astype(np.float32)
    unprobed_row = 1
    probe_coords[unprobed_row, PROBE_SIGMAS.index(10.0)] = np.nan
    step_coords = rng.normal(0, 3, size=(steps_samples, len(STEP_SIGMAS), 2)).astype(np.float32)
    real_rows = np.flatnonzero(base.sources == "real")
    reconstructed = base.sample_ids[real_rows[::2]]
    with LakeWriter.open(path, Provenance(job="test noise axis")) as writer:
        writer.table(SAMPLES).append({
            "image": step_images[:, -1],
            "sample_id": step_ids,
            "source": np.full(steps_samples, "generated", dtype=object),
            "split": np.full(steps_samples, "generated", dtype=object),
            "class_id": step_class,
            "wnid": np.array([classes.wnids[c] for c in step_class], dtype=object),
            "class_name": np.array([classes.names[c] for c in step_class], dtype=object),
            "origin": np.array([f"generator:{model}#{i}" for i in range(steps_samples)], dtype=object),
            "seed": np.full(steps_samples, 3, dtype=np.int64),
            "model_id": np.full(steps_samples, model, dtype=object),
        })  # fmt: skip
        writer.table(trajectory_spec(SCHEDULE, STEP_SIGMAS, {})).append({"x0_hat": step_images, "sample_id": step_ids, "class_id": step_class})
        m = len(reconstructed)
        noisy = rng.integers(0, 256, size=(m, s, 64, 64, 3), dtype=np.uint8)
        x0_hat = rng.integers(0, 256, size=(m, s, 64, 64, 3), dtype=np.uint8)
        writer.table(reconstructions_spec(PROBE_SIGMAS, {})).append({
            "noisy": noisy, "x0_hat": x0_hat, "probed": np.ones((m, s), dtype=bool),
            "sample_id": reconstructed, "class_id": base.class_ids[real_rows[::2]],
        })  # fmt: skip
        writer.table(joint_embedding_spec(LAYER, PROBE_SIGMAS, 2, {"method": "test"})).append({
            "embedding": probe_coords, "sample_id": probe_ids, "source": probe_source, "class_id": probe_class,
            "split": np.full(n, "", dtype=object), "sample_row": np.arange(n, dtype=np.int64),
        })  # fmt: skip
        group = writer.group(joint_embedding_group(LAYER))
        for name in ("trustworthiness", "jump", "trustworthiness_independent", "jump_independent"):
            group.create_array(name, data=rng.random(s).astype(np.float32), dimension_names=("sigma",))
        writer.table(joint_embedding_spec(LAYER, STEP_SIGMAS, 2, {"method": "test"}, schedule=SCHEDULE)).append(
            {"embedding": step_coords, "sample_id": step_ids, "class_id": step_class}
        )
    return NoiseLake(path, base, probe_ids, probe_coords, step_ids, step_coords, step_images, reconstructed, str(probe_ids[unprobed_row]))


@pytest.fixture(scope="module")
def noise_lake(tmp_path_factory: pytest.TempPathFactory) -> NoiseLake:
    return build_noise_lake(tmp_path_factory.mktemp("noise") / "lake")


def _noise_page(lake: Path, monkeypatch: pytest.MonkeyPatch, **query: str):
    at = open_app(lake, monkeypatch, query=query)
    return at.radio(key="w_page").set_value("noise").run()


def _paths(at):
    _, frames = chart_datasets(at, 0)
    return frames["paths"], frames["arrows"], frames["points"]


def _strip_images(at) -> int:
    return sum(len(image.proto.imgs) for image in at.get("image"))


def _expected_path(coords: np.ndarray, sigmas: tuple[float, ...]) -> tuple[list[float], np.ndarray]:
    order = np.argsort(-np.asarray(sigmas))
    keep = [i for i in order if np.isfinite(coords[i]).all()]
    return [sigmas[i] for i in keep], coords[keep]


def test_no_joint_embedding_is_a_friendly_info_line(small_lake, monkeypatch):
    at = _noise_page(small_lake.path, monkeypatch)
    info = " ".join(i.value for i in at.info)
    assert "no joint embedding" in info
    assert f"python -m analysis trajectory --lake {small_lake.path} --layer {LAYER}" in info
    assert len(at.get("vega_lite_chart")) == 0


def test_a_real_samples_path_is_its_stored_probes_from_high_sigma_to_low(noise_lake, monkeypatch):
    sample = str(noise_lake.reconstructed[0])
    at = _noise_page(noise_lake.path, monkeypatch, sel=sample)
    assert at.selectbox(key=LAYER_KEY).value == LAYER
    paths, arrows, points = _paths(at)
    row = list(noise_lake.probe_ids).index(sample)
    sigmas, xy = _expected_path(noise_lake.probe_coords[row], PROBE_SIGMAS)
    assert sigmas == [80.0, 10.0, 2.0, 0.5]
    mine = paths[paths["role"] == "selected"].sort_values("order")
    assert mine["sample_id"].unique().tolist() == [sample]
    np.testing.assert_array_equal(mine[["x", "y"]].to_numpy(np.float32), xy)
    assert mine["label"].tolist() == ["σ=80", "σ=10", "σ=2", "σ=0.5"]
    assert mine["sigma"].tolist() == sigmas
    # One arrow head per segment, at its middle, pointing along it (triangle-up turned clockwise).
    assert len(arrows) == 3
    np.testing.assert_allclose(arrows[["x", "y"]].to_numpy(), (xy[:-1] + xy[1:]) / 2, rtol=1e-6)
    # Every sigma's points are drawn (all samples are few), coloured by class like the Explore page.
    assert len(points) == np.isfinite(noise_lake.probe_coords).all(axis=2).sum()
    spec, _ = chart_datasets(at, 0)
    assert spec["layer"][0]["encoding"]["color"]["scale"]["range"][: len(CLASSES)] == list(charts.OKABE_ITO[: len(CLASSES)])
    # The strip: the noisy input and the reconstruction at each of the 4 sigmas.
    assert _strip_images(at) == 2 * len(PROBE_SIGMAS)
    captions = [c for image in at.get("image") for c in (i.caption for i in image.proto.imgs)]
    assert captions[:4] == ["noisy · σ=80", "noisy · σ=10", "noisy · σ=2", "noisy · σ=0.5"]


def test_an_unprobed_sigma_is_left_out_of_the_path(noise_lake, monkeypatch):
    at = _noise_page(noise_lake.path, monkeypatch, sel=noise_lake.unprobed)
    paths, arrows, _ = _paths(at)
    mine = paths[paths["role"] == "selected"]
    assert mine["label"].tolist() == ["σ=80", "σ=2", "σ=0.5"]
    assert len(arrows) == 2


def test_a_multi_step_samples_path_is_its_steps_and_the_strip_its_x0_hat(noise_lake, monkeypatch):
    sample = str(noise_lake.step_ids[2])
    at = _noise_page(noise_lake.path, monkeypatch, sel=sample)
    paths, arrows, _ = _paths(at)
    mine = paths[paths["role"] == "selected"].sort_values("order")
    # Its steps (the schedule's table), not its probes (it has those too).
    np.testing.assert_array_equal(mine[["x", "y"]].to_numpy(np.float32), noise_lake.step_coords[2])
    assert mine["label"].tolist() == ["σ=80", "σ=20", "σ=5", "σ=1.5"]
    assert len(arrows) == len(STEP_SIGMAS) - 1
    images = at.get("image")
    assert _strip_images(at) == len(STEP_SIGMAS)
    assert [i.caption for i in images[0].proto.imgs] == ["step 1 · σ=80", "step 2 · σ=20", "step 3 · σ=5", "step 4 · σ=1.5"]
    assert SCHEDULE in markdown_text(at)


def test_arrow_heads_point_from_high_sigma_to_low():
    from explorer.noise_paths import Trajectory, arrows_frame

    path = Trajectory("a", (80.0, 10.0, 2.0), np.array([[0, 0], [1, 0], [1, -1]], dtype=np.float32), "probes")
    arrows = arrows_frame([(path, "selected", "#000")], (-1.0, 2.0, -2.0, 1.0), 300, 300)
    # Right on screen is 90 degrees clockwise from up; down is 180.
    assert arrows["angle"].round(6).tolist() == [90.0, 180.0]


def test_a_sample_without_stored_reconstructions_offers_to_compute_them(noise_lake, monkeypatch):
    real = noise_lake.base.sample_ids[noise_lake.base.sources == "real"]
    sample = str(next(s for s in real if s not in set(noise_lake.reconstructed) and s != noise_lake.unprobed))
    at = _noise_page(noise_lake.path, monkeypatch, sel=sample)
    assert _strip_images(at) == 0
    button = next(b for b in at.button if b.label.startswith("Compute its reconstructions"))
    assert button.label.endswith("σ = 80, 10, 2, 0.5")
    # This lake has no probes (no activations/<layer>), so there is no network set-up to
    # rerun: one warning line, no error box, no images.
    at = button.click().run()
    warning = " ".join(w.value for w in at.warning)
    assert warning.startswith("Could not compute the reconstructions:") and "no probes" in warning
    assert _strip_images(at) == 0


def test_neighbour_paths_are_drawn_in_lighter_colours(noise_lake, monkeypatch):
    sample = str(noise_lake.base.sample_ids[0])
    at = _noise_page(noise_lake.path, monkeypatch, sel=sample)
    assert set(_paths(at)[0]["role"]) == {"selected"}
    at = at.toggle(key=PATHS_KEY).set_value(True).run()
    paths = _paths(at)[0]
    roles = paths.groupby("path")["role"].first()
    assert (roles == "selected").sum() == 1 and (roles == "knn").sum() == 10
    colours = paths.groupby("path")["colour"].first()
    assert colours[roles == "selected"].tolist() == [charts.SELECTED_FILL]
    assert charts.SELECTED_FILL not in colours[roles == "knn"].tolist()
    assert colours[roles == "knn"].nunique() == 10
    # Only the selection's vertices are labelled (the text layer filters on its role).
    spec, _ = chart_datasets(at, 0)
    assert any(layer.get("transform") == [{"filter": "datum.role === 'selected'"}] for layer in spec["layer"])


def test_a_click_on_the_map_selects(noise_lake, monkeypatch):
    at = _noise_page(noise_lake.path, monkeypatch)
    assert len(_paths(at)[0]) == 0
    before, component = _raw(at), at.get("iframe")[0].proto.srcdoc
    clicked = str(noise_lake.step_ids[0])
    at.session_state[NOISE_KEY] = {"selection": {charts.PICK: [{"sample_id": clicked}]}}
    at = at.run()
    assert at.session_state["view"].selected == clicked
    assert _paths(at)[0]["sample_id"].unique().tolist() == [clicked]
    # Same spec (same window) and the points byte for byte: the browser keeps the drawn
    # cloud and redraws only the path.
    after = _raw(at)
    assert after[0] == before[0] and after[1]["points"] == before[1]["points"]
    assert after[1]["paths"] != before[1]["paths"]
    assert at.get("iframe")[0].proto.srcdoc == component  # the animation is not sent again, nor restarted
    # The selection is the explorer's: the URL carries it to the other pages.
    assert at.query_params["sel"] == clicked


def _raw(at):
    chart = at.get("vega_lite_chart")[0]
    return json.loads(chart.proto.spec), {d.name: bytes(d.data.data) for d in chart.proto.datasets}


def test_the_animation_sends_every_sigma_frame_once_in_decreasing_sigma(noise_lake, monkeypatch):
    at = _noise_page(noise_lake.path, monkeypatch)
    frames = at.get("iframe")
    assert len(frames) == 1
    html = frames[0].proto.srcdoc
    data = json.loads(re.search(r'<script id="dmd2viz-data" type="application/json">(.*?)</script>', html, re.S).group(1))
    assert data["sigmas"] == [80.0, 10.0, 2.0, 0.5]
    n = len(noise_lake.probe_ids)
    assert data["n"] == n
    coords = np.frombuffer(base64.b64decode(data["coords"]), dtype="<u2").reshape(4, n, 2)
    expected = animation.quantise(noise_lake.probe_coords[:, ::-1].transpose(1, 0, 2), animation.fit_extent(noise_lake.probe_coords, animation.WIDTH, animation.HEIGHT))
    np.testing.assert_array_equal(coords, expected)
    assert (coords == animation.MISSING).sum() == 2  # the one unprobed (sample, sigma): x and y
    assert "window.dmd2vizAnimation" in html and "http" not in html.split("<script>")[1]  # nothing fetched


def test_the_3d_view_has_log_sigma_up_and_the_path(noise_lake, monkeypatch):
    sample = str(noise_lake.step_ids[1])
    at = _noise_page(noise_lake.path, monkeypatch, sel=sample)
    assert len(at.get("deck_gl_json_chart")) == 0
    at = at.toggle(key=SHOW_3D_KEY).set_value(True).run()
    deck = json.loads(at.get("deck_gl_json_chart")[0].proto.json)
    cloud, path = deck["layers"]
    zs = sorted({round(p["z"], 5) for p in cloud["data"]})
    assert len(zs) == len(PROBE_SIGMAS)
    # Heights are log sigma, stretched: equal sigma ratios give equal steps.
    logs = np.log(sorted(PROBE_SIGMAS))
    np.testing.assert_allclose(np.diff(zs) / (zs[-1] - zs[0]), np.diff(logs) / (logs[-1] - logs[0]), rtol=1e-4)
    vertices = np.array(path["data"][0]["path"])
    np.testing.assert_allclose(vertices[:, :2], noise_lake.step_coords[1], rtol=1e-6)
    assert (np.diff(vertices[:, 2]) < 0).all()  # from high sigma (top) down


def test_fit_extent_keeps_the_canvas_aspect_and_every_point():
    xy = np.array([[0, 0], [10, 1], [np.nan, 5]], dtype=np.float32)
    x0, x1, y0, y1 = animation.fit_extent(xy, 200, 100)
    assert (x1 - x0) / (y1 - y0) == pytest.approx(2.0)
    assert x0 < 0 and x1 > 10 and y0 < 0 and y1 > 1
    q = animation.quantise(np.array([[x0, y1], [np.nan, 0.0]]), (x0, x1, y0, y1))
    assert q.tolist() == [[0, animation.STEPS], [animation.MISSING, animation.MISSING]]
