"""`python -m ingest generate-t2i` on tiny diffusers-format bases: what it writes, that every way of making a
sample gives the same bits, and that every refusal leaves the lake as it was."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import xarray as xr

from ingest.cli import main
from ingest.errors import InputError
from ingest.t2i import ComputeBlock, PlannedSample, compute_blocks, default_name, parse_timesteps, plan_samples
from lake import imagenet_classes, open_lake
from lake.layout import prompt_id, t2i_sample_id
from tests.conftest import REPO, tree_digest
from tests.ingest.test_generate import committed_samples

NAME = "dmd2-sdxl-4step"
TIMESTEPS = (999, 749, 499, 249)
SITES = ("down_blocks.2.attentions.1", "mid_block.attentions.0", "up_blocks.0.attentions.0", "up_blocks.0.attentions.1")
HEIGHT, WIDTH = 64, 96  # not square: the thumbnail is a real centre crop
PROMPTS = ["a red fox in the snow", "a lighthouse at dusk"]
CLASSES = "goldfish,tabby"
ALL_PROMPTS = [*PROMPTS, "a photo of a goldfish", "a photo of a tabby"]
CLASS_IDS = [-1, -1, 1, imagenet_classes().resolve("tabby")]
# One thread per process: CPU results depend on the thread count in their low bits, and a
# 2-core machine shared by several jobs runs one-thread processes far faster (no spinning).
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The jobs run in this process (refusals, small runs) use one thread too, as ENV gives subprocesses
    (OMP_NUM_THREADS: the loaders' models.configure_threads reads it)."""
    import torch

    threads, variable = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    if variable is None:
        del os.environ["OMP_NUM_THREADS"]
    else:
        os.environ["OMP_NUM_THREADS"] = variable


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """A tiny SDXL base with a "DMD2 UNet" for it, a tiny SD v1.5 base, and a prompt file (with a repeat)."""
    from models.t2i import build_tiny_base, save_tiny_dmd2_unet

    root = tmp_path_factory.mktemp("t2i")
    sdxl = build_tiny_base(root / "sdxl-base", "sdxl", size=64)
    sd15 = build_tiny_base(root / "sd15-base", "sd15", size=64)
    prompts = root / "prompts.txt"
    prompts.write_text(f"# two prompts, one given twice\n{PROMPTS[0]}\n\n{PROMPTS[1]}\n{PROMPTS[0]}\n")
    return {"sdxl": sdxl, "sd15": sd15, "unet": save_tiny_dmd2_unet(sdxl, root / "dmd2_unet.bin"),
            "sd15_unet": save_tiny_dmd2_unet(sd15, root / "sd15_unet.bin"), "prompts": prompts, "root": root}


def job_args(bases, lake, *args) -> list[str]:
    return ["generate-t2i", "--lake", str(lake), "--base", str(bases["sdxl"]), "--checkpoint", str(bases["unet"]),
            "--device", "cpu", "--no-progress", "--height", str(HEIGHT), "--width", str(WIDTH), *map(str, args)]


FULL = ["--prompts", "{prompts}", "--prompts-from-classes", CLASSES, "--samples-per-prompt", "2", "--residual",
        "--spatial", "2"]


def full_args(bases, *extra) -> list[str]:
    return [a.format(prompts=bases["prompts"]) for a in FULL] + list(extra)


def run_job(bases, lake, *args) -> subprocess.CompletedProcess:
    """The job in a fresh process, as users run it (and as bit-for-bit comparisons need)."""
    return subprocess.run([sys.executable, "-m", "ingest", *job_args(bases, lake, *args)], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=300)


def read(lake, group: str) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_zarr(lake, group=group).load()


def groups(lake) -> list[str]:
    return ["samples", f"t2i/{NAME}/samples", f"t2i/{NAME}/prompts",
            *(g for g in open_lake(lake).groups("activations") if g != "activations")]


def assert_same(got, ref, by_id: bool = False) -> None:
    """Every table of `got` equals `ref`'s, row for row (`by_id`: after sorting both by their key column)."""
    assert groups(got) == groups(ref)
    for group in groups(ref):
        a, b = read(got, group), read(ref, group)
        dim, key = ("prompt", "prompt_id") if group.endswith("/prompts") else ("sample", "sample_id")
        if by_id:
            a = a.isel({dim: np.argsort(a[key].values.tolist())})
            b = b.isel({dim: np.argsort(b[key].values.tolist())})
        assert a.sizes[dim] == b.sizes[dim], group
        for name in [*b.data_vars, *b.coords]:
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=f"{group}/{name}")


@pytest.fixture(scope="module")
def reference(bases):
    """Four prompts (two from classes) x 2 samples, 4 steps, every capture, one batch."""
    lake = bases["root"] / "reference"
    result = run_job(bases, lake, *full_args(bases, "--batch-size", "16"))
    assert result.returncode == 0, result.stderr[-3000:]
    return lake, result.stderr


EXPECTED_SCRIPT = """
import sys, numpy as np, torch
from models.t2i import load_t2i, encode_prompts, t2i_generate
from lake.layout import prompt_id
base, unet, out, prompt, index, height, width = sys.argv[1:8]
model = load_t2i(base, checkpoint=unet, device="cpu")
embeds = encode_prompts(model, [prompt])
with torch.inference_mode():
    r = t2i_generate(model, embeds, [(0, prompt_id(prompt), int(index))], (999, 749, 499, 249), int(height), int(width),
                     sites=list(model.family.default_sites), residual=True, spatial=2)
np.savez(out, image=r.images, x0=r.x0_images, pooled=embeds.pooled_numpy(), sigmas=np.asarray(r.sigmas),
         **{f"mean:{s}": v for s, v in r.means.items()}, **{f"update:{s}": v for s, v in r.updates.items()},
         **{f"spatial:{s}": v for s, v in r.spatial.items()})
"""


def test_the_lake_holds_every_table_of_every_sample(bases, reference, tmp_path):
    lake, stderr = reference
    ids = [t2i_sample_id(NAME, prompt_id(p), 0, i) for p in ALL_PROMPTS for i in range(2)]  # prompt-major
    assert "note: 1 repeated prompt(s) skipped" in stderr and f"{bases['prompts']}:5" in stderr

    samples = read(lake, "samples")
    assert samples.sample_id.values.tolist() == ids
    assert set(samples.source.values) == {"generated"} and set(samples.split.values) == {"t2i"}
    assert set(samples.model_id.values) == {NAME} and samples.seed.values.tolist() == [0] * 8
    assert samples.class_id.values.tolist() == [c for c in CLASS_IDS for _ in range(2)]
    assert samples.wnid.values.tolist()[:4] == [""] * 4 and samples.class_name.values[4] == "goldfish"
    assert samples.origin.values[2] == f"t2i {NAME}: {PROMPTS[1]}"

    t2i = read(lake, f"t2i/{NAME}/samples")
    assert t2i.sample_id.values.tolist() == ids
    assert t2i.prompt.values.tolist() == [p for p in ALL_PROMPTS for _ in range(2)]
    assert t2i.prompt_id.values.tolist() == [prompt_id(p) for p in ALL_PROMPTS for _ in range(2)]
    assert t2i["index"].values.tolist() == [0, 1] * 4 and t2i.class_id.values.tolist() == samples.class_id.values.tolist()
    assert set(t2i.negative_prompt.values) == {""} and set(t2i.guidance.values) == {0.0}
    assert t2i.image.shape == (8, HEIGHT, WIDTH, 3) and t2i.x0.shape == (8, 4, HEIGHT, WIDTH, 3)
    assert t2i.timestep.values.tolist() == list(TIMESTEPS)
    np.testing.assert_array_equal(t2i.x0.values[:, -1], t2i.image.values)  # previews at native size here
    assert t2i.image.values.std() > 5  # pictures, not fill
    # The thumbnail: centre square (64x64 of 64x96: columns 16..79), box-resized to 64x64 (identity here).
    np.testing.assert_array_equal(samples.image.values, t2i.image.values[:, :, 16:80])
    identity = open_lake(lake).t2i_model(NAME)
    assert identity["family"] == "sdxl" and identity["unet"] == "dmd2_unet.bin" and identity["timesteps"] == list(TIMESTEPS)
    assert (identity["height"], identity["width"]) == (HEIGHT, WIDTH) and len(identity["unet_sha256"]) == 64

    prompts = read(lake, f"t2i/{NAME}/prompts")
    assert prompts.prompt.values.tolist() == ALL_PROMPTS  # one row per distinct prompt
    assert prompts.prompt_id.values.tolist() == [prompt_id(p) for p in ALL_PROMPTS]
    assert prompts.class_id.values.tolist() == CLASS_IDS

    # Sample 1 of prompt 1, made directly with the models API (in a fresh one-thread process, like the job).
    expected = tmp_path / "expected.npz"
    subprocess.run([sys.executable, "-c", EXPECTED_SCRIPT, str(bases["sdxl"]), str(bases["unet"]), str(expected),
                    PROMPTS[1], "1", str(HEIGHT), str(WIDTH)], cwd=REPO, env=ENV, check=True, capture_output=True)
    want = np.load(expected)
    np.testing.assert_array_equal(t2i.image.values[3], want["image"][0])
    np.testing.assert_array_equal(t2i.x0.values[3], want["x0"][0])
    np.testing.assert_array_equal(prompts.pooled.values[1], want["pooled"][0])
    layers = open_lake(lake).groups("activations")
    for site in SITES:
        assert f"activations/{NAME}.{site}" in layers and f"activations/{NAME}.{site}+update" in layers
        act, update = read(lake, f"activations/{NAME}.{site}"), read(lake, f"activations/{NAME}.{site}+update")
        assert act.sample_id.values.tolist() == ids and update.sample_id.values.tolist() == ids
        np.testing.assert_array_equal(act.sigma.values, want["sigmas"].astype(np.float32))
        assert act.attrs["timesteps"] == list(TIMESTEPS) and act.attrs["module"] == site
        np.testing.assert_array_equal(act["mean"].values[3], want[f"mean:{site}"][0])
        np.testing.assert_array_equal(update["mean"].values[3], want[f"update:{site}"][0])
        np.testing.assert_array_equal(act["spatial"].values[3], want[f"spatial:{site}"][0].astype(np.float16))
        assert act["spatial"].shape[-2:] == (2, 2) and "spatial" not in update
        assert act.probed.values.all()

    [record] = open_lake(lake).provenance()
    assert record["status"] == "complete" and record["parameters"]["samples_per_prompt"] == 2
    assert record["rows_added"]["samples"] == 8 and record["rows_added"][f"t2i/{NAME}/prompts"] == 4


def test_resume_with_more_prompts_and_samples_computes_only_the_new_ones(bases, reference, tmp_path):
    lake = tmp_path / "lake"
    first = run_job(bases, lake, "--prompts", bases["prompts"], "--residual", "--spatial", "2", "--batch-size", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    assert open_lake(lake).num_samples == 2
    second = run_job(bases, lake, *full_args(bases, "--batch-size", "5"))
    assert second.returncode == 0, second.stderr[-3000:]
    assert_same(lake, reference[0], by_id=True)  # the first run's rows come first, so compare by id
    records = open_lake(lake).provenance()
    assert [r["rows_added"]["samples"] for r in records] == [2, 6]  # only the new samples were made
    assert [r["rows_added"][f"t2i/{NAME}/prompts"] for r in records] == [2, 2]  # only the new prompts
    # Asking again for what is there changes no table.
    before = {g: tree_digest(lake / g) for g in ["samples", "t2i", "activations"]}
    assert main(job_args(bases, lake, *full_args(bases))) == 0  # in this process: it computes nothing
    assert {g: tree_digest(lake / g) for g in ["samples", "t2i", "activations"]} == before


def test_kill_minus_9_then_rerun_is_identical(bases, reference, tmp_path):
    """Killed after 3 samples, rerun: the reference's bits. Both runs use --batch-size 1 and the reference 16,
    so this also proves another batch size gives the same bits (as the resume test does with 1 and 5; a separate
    uninterrupted run with another batch size would be one job process more)."""
    lake = tmp_path / "lake"
    command = [sys.executable, "-m", "ingest", *job_args(bases, lake, *full_args(bases, "--batch-size", "1"))]
    process = subprocess.Popen(command, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while process.poll() is None and committed_samples(lake) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the job finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    seen = committed_samples(lake)
    assert 3 <= seen < 8
    # What a reader sees after the kill: whole write steps, every table together.
    for group in groups(lake)[1:]:
        if not group.endswith("/prompts"):
            assert read(lake, group).sizes["sample"] == seen, group
    rerun = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert_same(lake, reference[0])


@pytest.fixture
def small_lake(bases, tmp_path):
    """A lake with one one-step sample of the tiny SDXL model (its own name), made in this process."""
    lake = tmp_path / "lake"
    assert main(job_args(bases, lake, "--prompt", "a fox", "--steps", "1", "--layers", "mid", "--name", "small")) == 0
    return lake


@pytest.mark.parametrize(("args", "says"), [
    (["--base", "{root}/nowhere"], "base folder not found"),
    (["--base", "{root}/novae"], "component folder vae/ is missing"),
    (["--base", "{root}/notext2"], "component folder text_encoder_2/ is missing (model_index.json names it"),
    (["--checkpoint", "{sd15_unet}"], "does not fit the UNet of"),
    (["--family", "sd15"], "--family sd15: {sdxl} is an sdxl base folder (with text_encoder_2/)"),
    (["--prompts", "{root}/missing.txt"], "missing.txt: no such prompt file"),
    (["--prompt", ""], "--prompt: empty prompt"),
    (["--timesteps", "249,499"], "--timesteps must be strictly decreasing"),
    (["--timesteps", "1000"], "--timesteps: every timestep must lie in 0..999"),
    (["--steps", "2"], "--steps 2: DMD2 sdxl has schedules for 1, 4 step(s)"),
    (["--layers", "mid,nope"], "--layers: unknown capture site 'nope'; aliases: down2.attn1=down_blocks.2.attentions.1"),
    (["--layers", "down_blocks.0", "--residual"], "--layers: site down_blocks.0: input and output shapes differ"),
    (["--height", "100"], "--height must be a positive multiple of 8"),
    (["--dtype", "fp16"], "--dtype: dtype 'fp16' needs a CUDA device"),
    (["--name", "Bad.Name"], "--name: 'Bad.Name': not a model name"),
    (["--name", "small", "--steps", "4"], f"t2i/small/samples was computed with timesteps=[399], this run has timesteps={list(TIMESTEPS)}"),
    (["--name", "small", "--steps", "1", "--checkpoint", "{other_unet}"], "pass another --name than small"),
    (["--name", "small", "--steps", "1", "--no-step-previews"], "was made with step previews"),
    (["--name", "small", "--steps", "1", "--layers", "mid", "--spatial", "2"], "run with the --spatial it was made with"),
])
def test_refusals_are_one_line_and_leave_the_lake_unchanged(bases, small_lake, capsys, args, says):
    from models.t2i import save_tiny_dmd2_unet

    root = bases["root"]
    if not (root / "novae").exists():
        shutil.copytree(bases["sdxl"], root / "novae", ignore=shutil.ignore_patterns("vae"))
        shutil.copytree(bases["sdxl"], root / "notext2", ignore=shutil.ignore_patterns("text_encoder_2"))
        save_tiny_dmd2_unet(bases["sdxl"], root / "other_unet.bin", seed=7)
    values = {"root": root, "sd15_unet": bases["sd15_unet"], "other_unet": root / "other_unet.bin", "sdxl": bases["sdxl"]}
    before = tree_digest(small_lake)
    capsys.readouterr()
    argv = job_args(bases, small_lake, "--prompt", "a fox", *[a.format(**values) for a in args])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and says.format(**values) in err, err
    assert tree_digest(small_lake) == before


def test_sd15_with_guidance_lora_and_class_prompts_get_their_names_and_sites(bases, tmp_path):
    from models.t2i import save_tiny_lora

    lake = tmp_path / "lake"
    lora = save_tiny_lora(bases["sdxl"], tmp_path / "lora.safetensors")
    assert main(["generate-t2i", "--lake", str(lake), "--base", str(bases["sd15"]), "--device", "cpu", "--no-progress",
                 "--prompts-from-classes", "1", "--prompt-template", "{name}, watercolor", "--no-step-previews",
                 "--guidance", "3", "--negative-prompt", "blurry"]) == 0
    assert main(["generate-t2i", "--lake", str(lake), "--base", str(bases["sdxl"]), "--lora", str(lora), "--device",
                 "cpu", "--no-progress", "--prompt", "a fox", "--steps", "1", "--layers", "none"]) == 0
    found = open_lake(lake)
    assert found.t2i_models() == ["dmd2-sd15-1step", "dmd2-sdxl-1step-lora"]
    sd15 = read(lake, "t2i/dmd2-sd15-1step/samples")
    assert sd15.prompt.values.tolist() == ["goldfish, watercolor"] and sd15.class_id.values.tolist() == [1]
    assert sd15.negative_prompt.values.tolist() == ["blurry"] and sd15.guidance.values.tolist() == [3.0]
    assert sd15.prompt_id.values.tolist() == [prompt_id("goldfish, watercolor", "blurry")]
    assert found.t2i_model("dmd2-sd15-1step")["guidance"] == 3.0
    assert "x0" not in sd15 and sd15.image.shape == (1, 64, 64, 3)
    assert [g for g in found.groups("activations") if "sd15" in g] == [
        f"activations/dmd2-sd15-1step.{m}" for m in
        ("down_blocks.2.attentions.1", "mid_block.attentions.0", "up_blocks.1.attentions.0", "up_blocks.1.attentions.1")]
    assert not [g for g in found.groups("activations") if "lora" in g]  # --layers none
    assert found.t2i_model("dmd2-sdxl-1step-lora")["lora"] == "lora.safetensors"


def test_large_images_get_resized_previews_and_a_centre_square_thumbnail(bases, tmp_path):
    from PIL import Image

    lake = tmp_path / "lake"
    assert main(["generate-t2i", "--lake", str(lake), "--base", str(bases["sdxl"]), "--device", "cpu", "--no-progress",
                 "--prompt", "a fox", "--steps", "1", "--layers", "none", "--height", "256", "--width", "320"]) == 0
    t2i, samples = read(lake, "t2i/dmd2-sdxl-1step/samples"), read(lake, "samples")
    image = t2i.image.values[0]
    assert image.shape == (256, 320, 3) and t2i.x0.shape == (1, 1, 205, 256, 3)
    resized = Image.fromarray(image).resize((256, 205), Image.Resampling.BOX)
    np.testing.assert_array_equal(t2i.x0.values[0, -1], np.asarray(resized))
    square = Image.fromarray(image[:, 32:288]).resize((64, 64), Image.Resampling.BOX)
    np.testing.assert_array_equal(samples.image.values[0], np.asarray(square))


def test_prompts_longer_than_77_tokens_are_named_once(bases, tmp_path, capsys):
    long = "a red fox " + " ".join(["cat"] * 100)  # 3 + 100 tokens + BOS + EOS
    capsys.readouterr()
    assert main(job_args(bases, tmp_path / "lake", "--prompt", long, "--prompt", "a moth", "--samples-per-prompt", "2",
                         "--steps", "1", "--layers", "none", "--no-step-previews")) == 0
    warnings_ = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings_ == ["warning: 1 prompt(s) longer than the text encoder's 77 tokens, shortened to their first 77 "
                         "(the rest changes nothing): 'a red fox cat cat cat cat cat cat cat ca...' (77 of 105 tokens)"]


def test_help_imports_neither_torch_nor_diffusers():
    script = ("import sys\nfrom ingest.cli import main\nfor argv in (['--help'], ['generate-t2i', '--help']):\n"
              "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
              "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=ENV, capture_output=True, text=True, check=True)
    assert "--samples-per-prompt" in result.stdout and "generate-t2i" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_plan_and_blocks_are_pure_functions_of_the_samples():
    assert plan_samples(2, 3) == [PlannedSample(p, i) for p in range(2) for i in range(3)]
    needed = [PlannedSample(0, 1), PlannedSample(0, 2), PlannedSample(1, 0), PlannedSample(0, 3)]
    assert compute_blocks(needed, 1) == [ComputeBlock(0, 1, 1), ComputeBlock(0, 2, 1), ComputeBlock(1, 0, 1),
                                         ComputeBlock(0, 3, 1)]
    # Larger blocks: block k of a prompt is indices kB..kB+B-1 whatever else is needed.
    assert compute_blocks(needed, 2) == [ComputeBlock(0, 0, 2), ComputeBlock(0, 2, 2), ComputeBlock(1, 0, 2)]
    assert ComputeBlock(0, 2, 2).samples == [PlannedSample(0, 2), PlannedSample(0, 3)]


def test_timesteps_and_names():
    sdxl = {1: (399,), 4: (999, 749, 499, 249)}
    assert parse_timesteps(sdxl, "sdxl") == (999, 749, 499, 249)
    assert parse_timesteps(sdxl, "sdxl", steps="1") == (399,)
    assert parse_timesteps(sdxl, "sdxl", timesteps="800, 400,0") == (800, 400, 0)
    assert parse_timesteps(sdxl, "sdxl", timesteps=[500]) == (500,)
    for kwargs, says in [({"steps": 1, "timesteps": "399"}, "not both"), ({"steps": "x"}, "--steps must be an integer"),
                         ({"timesteps": "a"}, "not an integer"), ({"timesteps": ","}, "at least one"),
                         ({"timesteps": "-1"}, "0..999"), ({"timesteps": "5,5"}, "strictly decreasing")]:
        with pytest.raises(InputError, match=says):
            parse_timesteps(sdxl, "sdxl", **kwargs)
    assert default_name("sdxl", (399,), lora=False) == "dmd2-sdxl-1step"
    assert default_name("sdxl", (999, 749, 499, 249), lora=True) == "dmd2-sdxl-4step-lora"


def test_two_processes_write_the_same_lake_as_one(bases, reference, tmp_path):
    from tests.ingest.test_accelerate import free_port

    lake = tmp_path / "lake"
    # accelerate's torchrun-based launcher (--multi_gpu) with --device cpu gives gloo processes on any machine;
    # --batch-size 3 over 2 processes leaves one process padding the last write step.
    launched = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()), "-m", "ingest",
         *job_args(bases, lake, *full_args(bases, "--batch-size", "3"))],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert launched.returncode == 0, launched.stderr[-3000:]
    [record] = open_lake(lake).provenance()
    assert record["parameters"]["processes"] == 2
    assert_same(lake, reference[0])


def test_sites_added_later_fill_in_without_duplicating_samples(bases, tmp_path):
    later, once = tmp_path / "later", tmp_path / "once"
    common = ["--prompt", "a fox", "--prompt", "a moth", "--samples-per-prompt", "2", "--steps", "1"]
    assert main(job_args(bases, later, *common, "--layers", "none")) == 0
    assert not open_lake(later).groups("activations")
    assert main(job_args(bases, later, *common, "--layers", "mid", "--residual")) == 0
    assert main(job_args(bases, once, *common, "--layers", "mid", "--residual")) == 0  # same process, same threads
    assert [r["rows_added"] for r in open_lake(later).provenance()][1] == {
        f"activations/dmd2-sdxl-1step.mid_block.attentions.0{s}": 4 for s in ("", "+update")}
    for group in ["samples", "t2i/dmd2-sdxl-1step/samples", "t2i/dmd2-sdxl-1step/prompts",
                  "activations/dmd2-sdxl-1step.mid_block.attentions.0", "activations/dmd2-sdxl-1step.mid_block.attentions.0+update"]:
        a, b = read(later, group), read(once, group)
        for name in [*b.data_vars, *b.coords]:
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=f"{group}/{name}")
