"""Benchmark: an edit job (`ingest edit variations`) against the bare forward passes it needs, in the same run.

The lake: a few real images and one-step samples of the preset, probed like the demo
(bottleneck and mid at sigma 0.5, 2, 10, 80), generation means at both layers. The job is
`ingest.edit.variations` (what `python -m ingest edit variations` calls) with N new
samples, on a fresh copy of that lake each repeat, timed twice: with ``--probe none`` (load
the generator, generate, write samples + lineage + generation means in one commit) and with
the default ``--probe all`` (then probe the new samples at every stored layer and sigma).

The baselines are the network calls those need and nothing else, on the same device and
compute blocks: generating the N samples (`models.one_step_generate` on the edit noise,
blocks of the device's compute block) and probing them (the denoiser forward on their
images at every sigma, cut after the deepest probed layer). A ratio of 3 means the job takes
three times its bare forward passes; with the tiny preset on a CPU most of the difference
is fixed cost (loading the network, opening and committing the lake), which does not grow
with the network. Median of --repeats, the three measurements interleaved. Prints JSON.

    python benchmarks/bench_edit.py                   # tiny preset, CPU, N=8
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LAYERS = ["enc.8x8_block2", "dec.8x8_in0"]  # bottleneck, mid: what the demo probes
SIGMAS = [0.5, 2.0, 10.0, 80.0]


def build_lake(path: Path, preset: str, device: str, real: int, generated: int) -> None:
    """Real photo-like images and one-step samples, probed at LAYERS x SIGMAS, with generation means."""
    from ingest.activations import probe_activations
    from ingest.generate import generate
    from ingest.pipeline import SampleBatch, SampleSink
    from ingest.core.models import ModelSpec
    from lake import LakeWriter, Provenance
    from tests.conftest import photo_like_images

    spec = ModelSpec(preset=preset, device=device)
    with LakeWriter.open(path, Provenance(job="bench_edit")) as writer:
        SampleSink(writer).write(SampleBatch(images=photo_like_images(real, 0), sample_ids=[f"real/{i}" for i in range(real)],
                                             class_ids=np.arange(real) % 8, origins=["bench"] * real, source="real",
                                             split="val"))
    generate(path, spec, generated, seed=0, samples_per_class=max(1, generated // 8), classes="0,1,2,3,4,5,6,7",
             layers=",".join(LAYERS), progress=False)
    probe_activations(path, spec, LAYERS, SIGMAS, progress=False)


def bare_passes(preset: str, device_name: str, n: int, seed: int, class_id: int) -> tuple[float, float]:
    """Seconds of (generation of the N edit samples, their probes at every sigma), network calls only."""
    import torch

    import models
    from ingest.core.forward import one_hot
    from ingest.edit.parents import edit_noise
    from ingest.core.models import compute_block

    device = models.pick_device(None if device_name == "auto" else device_name)
    module = models.load_generator(preset, device=str(device)).module
    block = compute_block(device)
    count = -(-n // block) * block  # whole blocks, as the job computes them
    noise = torch.stack([edit_noise(seed, k, 0) for k in range(count)]).to(device)
    classes = torch.full((count,), class_id, dtype=torch.int64)
    began = time.perf_counter()
    with torch.inference_mode():
        images = torch.cat([models.one_step_generate(module, noise[i : i + block], classes[i : i + block])
                            for i in range(0, count, block)])
    generation = time.perf_counter() - began
    x0 = images[:n].permute(0, 3, 1, 2).to(device, torch.float32) / 127.5 - 1
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0)).to(device)
    labels = one_hot(classes[:n].tolist()).to(device)
    began = time.perf_counter()
    with torch.inference_mode():
        for sigma in SIGMAS:
            for i in range(0, n, block):
                part = slice(i, i + block)
                # Cut after the deepest probed layer, as the probe job does (capture ends the pass there).
                with models.capture(module, LAYERS, stop_early=True):
                    module(x0[part] + sigma * eps[part], torch.full((len(x0[part]),), sigma, device=device), labels[part])
    probing = time.perf_counter() - began
    return generation, probing


def timed_job(base: Path, work: Path, parent: str, n: int, seed: int, device: str, probe: str) -> float:
    from ingest.edit import variations

    lake = work / f"lake-{probe}"
    shutil.rmtree(lake, ignore_errors=True)
    shutil.copytree(base, lake)
    began = time.perf_counter()
    outcome = variations(lake, parent, n, seed=seed, probe=probe, device=device, progress=False)
    elapsed = time.perf_counter() - began
    assert outcome.added == n, outcome
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--preset", default="tiny", help="generator preset (default tiny)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, auto")
    parser.add_argument("--n", type=int, default=8, help="variations per job (default 8)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each, median reported (default 3)")
    args = parser.parse_args(argv)

    import torch

    from lake import open_lake
    from lake.layout import SAMPLES_GROUP

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        build_lake(work / "base", args.preset, args.device, real=8, generated=8)
        handle = open_lake(work / "base")
        parent = f"gen/{args.preset}-random-seed0/s0/3"
        class_id = int(handle.column(SAMPLES_GROUP, "class_id")[list(handle.sample_ids()).index(parent)])
        bare, no_probe, full = [], [], []
        for _ in range(args.repeats):  # interleaved, so a change in the machine's load hits all three alike
            bare.append(bare_passes(args.preset, args.device, args.n, 5, class_id))
            no_probe.append(timed_job(work / "base", work, parent, args.n, 5, args.device, "none"))
            full.append(timed_job(work / "base", work, parent, args.n, 5, args.device, "all"))
    generation = statistics.median(b[0] for b in bare)
    probing = statistics.median(b[1] for b in bare)
    job_none, job_all = statistics.median(no_probe), statistics.median(full)
    print(json.dumps({
        "benchmark": "edit variations vs bare forward passes", "preset": args.preset, "device": args.device,
        "threads": torch.get_num_threads(), "n": args.n, "repeats": args.repeats,
        "bare_generation_s": round(generation, 4), "bare_probe_s": round(probing, 4),
        "job_probe_none_s": round(job_none, 4), "job_probe_all_s": round(job_all, 4),
        "ratio_probe_none": round(job_none / generation, 3),
        "ratio_probe_all": round(job_all / (generation + probing), 3),
        "probe_layers": LAYERS, "probe_sigmas": SIGMAS,
    }, indent=2))


if __name__ == "__main__":
    main()
