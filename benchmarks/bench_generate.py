"""Benchmark: `ingest generate` and `ingest activations` against the bare network in the same run.

Baselines, on the same device, preset and compute blocks as the jobs:
- generation: `models.one_step_generate` on pre-drawn noise, block after block, no
  hooks, no lake;
- probing: the denoiser forward on the same images at the same sigmas, cut after the
  deepest requested layer exactly as the job cuts it, no capture, no lake.
- K-step generation: the K forward passes of each block (`multi_step_generate`'s
  recurrence, x = x0_hat + sigma * eps, on pre-drawn noise), no hooks, no uint8, no lake.
- EDM's Heun sampler (the teacher's, `--parts heun`): the 2K-1 bare forward passes of each
  block on pre-drawn inputs (the network alone), and `models.heun.heun_generate` (the sampler
  alone: its float64 updates and keyed churn noise, no hooks, no lake).
Then the real jobs (in-process `ingest.generate.generate` (also with --steps K) and
`ingest.activations.probe_activations`, what `python -m ingest generate|activations` calls;
fresh lake in a temporary directory) make the same number of images/probes. A ratio of 1.10 means
the lake, the hooks and the bookkeeping cost 10% over the bare forward passes. FLOPs
per image are counted with torch's FlopCounterMode; the fraction of peak divides the
achieved FLOP rate by --peak-flops (default: H100 SXM dense bf16). Prints JSON.

    python benchmarks/bench_generate.py                      # tiny preset, CPU
    python benchmarks/bench_generate.py --preset dmd2-imagenet64 --dtype bf16 --device cuda --num-images 2048
    python benchmarks/bench_generate.py --preset dmd2-imagenet64 --parts steps --num-images 16   # full model, CPU
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def synchronize(device) -> None:  # noqa: ANN001 - torch.device
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_flops(fn) -> float:  # noqa: ANN001 - a zero-argument callable
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def bare_generation(module, device, indices: np.ndarray, block: int, seed: int) -> float:  # noqa: ANN001
    """Seconds for one_step_generate over `indices` in compute blocks (noise drawn beforehand)."""
    import torch

    import models

    blocks = []
    for start in range(0, len(indices), block):
        part = indices[start : start + block]
        noise, classes = models.sample_batch(seed, part.tolist())
        blocks.append((noise.to(device), classes))
    synchronize(device)
    began = time.perf_counter()
    with torch.inference_mode():
        outputs = [models.one_step_generate(module, noise, classes) for noise, classes in blocks]
    synchronize(device)
    del outputs
    return time.perf_counter() - began


def bare_steps(module, device, indices: np.ndarray, block: int, seed: int, sigmas: list[float]) -> float:  # noqa: ANN001
    """Seconds for the K forward passes of every compute block (noise of every step drawn beforehand)."""
    import torch
    from torch.nn import functional as F

    import models

    blocks = []
    for start in range(0, len(indices), block):
        part = indices[start : start + block].tolist()
        noises = models.step_noise_batch(seed, part, len(sigmas)).to(device)
        labels = F.one_hot(torch.tensor([models.sample_class(seed, i) for i in part]), module.label_dim).float().to(device)
        blocks.append((noises, labels))
    synchronize(device)
    began = time.perf_counter()
    with torch.inference_mode():
        for noises, labels in blocks:
            x = noises[0] * sigmas[0]
            for i, sigma in enumerate(sigmas):
                x0_hat = module(x, torch.full((x.shape[0],), sigma, device=device), labels)
                if i + 1 < len(sigmas):
                    x = x0_hat + sigmas[i + 1] * noises[i + 1]
    synchronize(device)
    return time.perf_counter() - began


def bare_heun_passes(module, device, indices: np.ndarray, block: int, steps: int) -> float:  # noqa: ANN001
    """Seconds for the 2K-1 forward passes of EDM's Heun sampler on every compute block, inputs drawn beforehand."""
    import torch
    from torch.nn import functional as F

    from models.heun import HeunConfig

    sigmas = HeunConfig(steps=steps).time_steps()[:-1].tolist()
    passes = [*sigmas, *sigmas[1:]]  # each step's first pass, and the correction at every next sigma
    blocks = []
    for start in range(0, len(indices), block):
        part = indices[start : start + block]
        x = torch.randn((len(part), 3, 64, 64), generator=torch.Generator().manual_seed(int(start))).to(device)
        blocks.append((x, F.one_hot(torch.zeros(len(part), dtype=torch.int64), module.label_dim).float().to(device)))
    synchronize(device)
    began = time.perf_counter()
    with torch.inference_mode():
        for x, labels in blocks:
            for sigma in passes:
                module(x * sigma, torch.full((x.shape[0],), sigma, device=device), labels)
    synchronize(device)
    return time.perf_counter() - began


def bare_heun_sampler(module, indices: np.ndarray, block: int, steps: int) -> float:  # noqa: ANN001
    """Seconds for `models.heun.heun_generate` on every compute block: the sampler alone, no hooks, no lake."""
    import torch

    from models.heun import HeunConfig, heun_generate

    device = next(module.parameters()).device
    synchronize(device)
    began = time.perf_counter()
    for start in range(0, len(indices), block):
        part = indices[start : start + block].tolist()
        heun_generate(module, 0, part, torch.zeros(len(part), dtype=torch.int64), HeunConfig(steps=steps))
    synchronize(device)
    return time.perf_counter() - began


def bare_probe(module, device, images: np.ndarray, class_ids: np.ndarray, sigmas: list[float],  # noqa: ANN001
               block: int, layers: list[str]) -> float:
    """Seconds for the cut denoiser forward of every (image, sigma), in compute blocks.

    The pass stops after the deepest of `layers`, as the job's does; the capture hooks
    themselves cost a detach per layer.
    """
    import torch
    from torch.nn import functional as F

    import models

    x0 = torch.from_numpy(images).permute(0, 3, 1, 2).to(device, torch.float32) / 127.5 - 1
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0)).to(device)
    labels = F.one_hot(torch.from_numpy(class_ids.astype(np.int64)), module.label_dim).float().to(device)
    synchronize(device)
    began = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(x0), block):
            part = slice(start, start + block)
            for sigma in sigmas:
                n = x0[part].shape[0]
                with models.capture(module, layers, stop_early=True):
                    module(x0[part] + sigma * eps[part], torch.full((n,), sigma, device=device), labels[part])
    synchronize(device)
    return time.perf_counter() - began


def timed_job(job, *args, **kwargs) -> float:  # noqa: ANN001 - an ingest job function
    """Seconds one ingest job function takes (what `python -m ingest ...` calls, minus argparse)."""
    began = time.perf_counter()
    job(*args, **kwargs)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--num-images", type=int, default=64, help="images generated, and probed at every sigma")
    parser.add_argument("--layers", default="bottleneck,mid")
    parser.add_argument("--sigmas", default="0.5,2,10,80")
    parser.add_argument("--steps", type=int, default=4, help="K of the K-step generation (the Karras schedule of --steps K) and of the Heun sampler")
    parser.add_argument("--parts", default="generate,activations,steps,heun",
                        help="which comparisons to run, comma-separated: generate (one step), activations, steps (K-step)")
    parser.add_argument("--batch-size", type=int, default=None, help="job --batch-size (default: the jobs' defaults)")
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed warm-up calls of each bare pass on one block (default 3; 1 suffices for the full preset on CPU)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating repeats; the fastest of each is kept")
    parser.add_argument("--peak-flops", type=float, default=989e12,
                        help="device peak FLOP/s for the fraction of peak (default 989e12: H100 SXM dense bf16)")
    parser.add_argument("--workdir", default=None, help="where the temporary lakes go (default: system temp)")
    args = parser.parse_args()
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    known = {"generate", "activations", "steps", "heun"}
    if not parts <= known:
        parser.error(f"--parts: unknown part(s) {sorted(parts - known)}")
    if "activations" in parts:
        parts.add("generate")  # the probes read the images the one-step job generates

    import torch

    import models
    from ingest.core.sampling import parse_schedule
    from ingest.options import parse_sigmas
    from ingest.core.models import ModelSpec, compute_block, load_model, resolve_layer_flag

    model = ModelSpec(preset=args.preset, checkpoint=None, device=args.device, dtype=args.dtype)
    began = time.perf_counter()
    loaded, identity = load_model(model)
    load_s = time.perf_counter() - began
    module, device = loaded.module, loaded.device
    layers = resolve_layer_flag(args.layers, module)
    sigmas = parse_sigmas(args.sigmas)
    schedule = list(parse_schedule(steps=args.steps))  # the job's canonical sigmas, so both run the same passes
    stop = max(layers, key=models.layer_names(module).index)
    block = compute_block(device)
    n = args.num_images
    indices = np.arange(n)

    # FLOPs per image: the full generation pass, and the probe cut after the deepest layer.
    noise, classes = models.sample_batch(0, [0])
    gen_flops = count_flops(lambda: models.one_step_generate(module, noise.to(device), classes))
    # Warm-up: the first few calls of each shape pick kernels and fill the allocator (seconds on CPU).
    for _ in range(args.warmup if "generate" in parts else 0):
        bare_generation(module, device, indices[:block], block, seed=0)
    for _ in range(args.warmup if "steps" in parts else 0):
        bare_steps(module, device, indices[:block], block, 0, schedule)

    from ingest.activations import probe_activations
    from ingest.generate import generate

    batch = {"batch_size": args.batch_size} if args.batch_size else {}
    names = {"generate": ["bare_generate", "job_generate"], "activations": ["bare_probe", "job_probe"],
             "steps": ["bare_steps", "job_steps"], "heun": ["bare_heun_passes", "bare_heun_sampler", "job_heun"]}
    results: dict[str, list[float]] = {name: [] for part in sorted(parts) for name in names[part]}
    images = class_ids = None
    probe_flops = 0.0
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for repeat in range(args.repeats):
            lake = Path(tmp) / f"lake{repeat}"
            if "steps" in parts:  # into its own lake: the same run, another schedule
                results["bare_steps"].append(bare_steps(module, device, indices, block, 0, schedule))
                results["job_steps"].append(timed_job(
                    generate, Path(tmp) / f"steps{repeat}", model, n, seed=0, layers=args.layers, progress=False,
                    steps=args.steps, **batch))
            if "heun" in parts:
                results["bare_heun_passes"].append(bare_heun_passes(module, device, indices, block, args.steps))
                results["bare_heun_sampler"].append(bare_heun_sampler(module, indices, block, args.steps))
                results["job_heun"].append(timed_job(
                    generate, Path(tmp) / f"heun{repeat}", model, n, seed=0, layers=args.layers, progress=False,
                    steps=args.steps, sampler="heun", **batch))
            if not parts & {"generate", "activations"}:
                continue
            results["bare_generate"].append(bare_generation(module, device, indices, block, seed=0))
            results["job_generate"].append(timed_job(
                generate, lake, model, n, seed=0, layers=args.layers, progress=False, **batch))
            if "activations" not in parts:
                continue
            if images is None:
                from lake import open_lake
                from lake.layout import SAMPLES_GROUP

                opened = open_lake(lake)
                images, class_ids = opened.images(slice(0, n)), opened.column(SAMPLES_GROUP, "class_id")
                probe_flops = count_flops(lambda: bare_probe(module, device, images[:1], class_ids[:1], [1.0], 1, layers))  # noqa: B023 (called at once)
                for _ in range(args.warmup):
                    bare_probe(module, device, images[:block], class_ids[:block], sigmas[:1], block, layers)
            results["bare_probe"].append(bare_probe(module, device, images, class_ids, sigmas, block, layers))
            results["job_probe"].append(timed_job(
                probe_activations, lake, model, args.layers, args.sigmas, source="generated", progress=False, **batch))

    best = {k: min(v) for k, v in results.items()}
    probes = n * len(sigmas)
    report: dict[str, object] = {
        "preset": args.preset, "device": str(device), "dtype": args.dtype, "weights": identity.weights,
        "torch_threads": torch.get_num_threads(), "num_images": n, "compute_block": block,
        "layers": layers, "sigmas": sigmas, "probe_stops_after": stop, "model_load_s": round(load_s, 3),
    }
    if "generate" in parts:
        report["generate"] = {
            "bare_images_per_s": round(n / best["bare_generate"], 2),
            "job_images_per_s": round(n / best["job_generate"], 2),
            "ratio": round(best["job_generate"] / best["bare_generate"], 3),
            "gflops_per_image": round(gen_flops / 1e9, 2),
        }
    if "activations" in parts:
        report["activations"] = {
            "bare_probes_per_s": round(probes / best["bare_probe"], 2),
            "job_probes_per_s": round(probes / best["job_probe"], 2),
            "ratio": round(best["job_probe"] / best["bare_probe"], 3),
            "gflops_per_probe": round(probe_flops / 1e9, 2),
        }
    if "steps" in parts:
        # Overhead of the K-step job (noise of every step, hooks, per-step uint8 and means, the
        # trajectories tables) over its K bare forward passes per block; target <= 1.1.
        report["generate_steps"] = {
            "steps": args.steps, "schedule": schedule,
            "bare_images_per_s": round(n / best["bare_steps"], 2),
            "job_images_per_s": round(n / best["job_steps"], 2),
            "bare_forward_passes_per_s": round(n * args.steps / best["bare_steps"], 2),
            "ratio": round(best["job_steps"] / best["bare_steps"], 3),
            "gflops_per_image": round(gen_flops * args.steps / 1e9, 2),
        }
    if "heun" in parts:
        # EDM's Heun sampler (2K-1 passes per image): the job (hooks, per-step uint8 and means, trajectories)
        # and the sampler's own arithmetic against the bare passes.
        passes = 2 * args.steps - 1
        report["generate_heun"] = {
            "steps": args.steps, "forward_passes_per_image": passes,
            "bare_forward_passes_per_s": round(n * passes / best["bare_heun_passes"], 2),
            "sampler_images_per_s": round(n / best["bare_heun_sampler"], 2),
            "job_images_per_s": round(n / best["job_heun"], 2),
            "sampler_over_passes": round(best["bare_heun_sampler"] / best["bare_heun_passes"], 3),
            "ratio": round(best["job_heun"] / best["bare_heun_passes"], 3),
        }
    report["seconds"] = {k: [round(s, 3) for s in v] for k, v in results.items()}
    if device.type == "cuda":
        report["peak_flops"] = args.peak_flops
        for part, count, flops, key in [("generate", n, gen_flops, "job_generate"),
                                        ("activations", probes, probe_flops, "job_probe"),
                                        ("generate_steps", n, gen_flops * args.steps, "job_steps")]:
            if part in report:
                report[part]["fraction_of_peak"] = round(count / best[key] * flops / args.peak_flops, 4)  # type: ignore[index]
        if "generate" in report:
            report["generate"]["bare_fraction_of_peak"] = round(n / best["bare_generate"] * gen_flops / args.peak_flops, 4)  # type: ignore[index]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
