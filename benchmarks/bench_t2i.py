"""Benchmark: text-to-image DMD2 generation and capture against diffusers' bare pipeline, in the same run.

Baseline: diffusers' own `StableDiffusionXLPipeline` (or `StableDiffusionPipeline`) over the
same components with an `LCMScheduler` at DMD2's timesteps, guidance 0, prompt embeddings
computed beforehand and the same initial latents, one image per call (the job's compute
block is one sample, so that batch size never changes a bit). Then, on the same images:
- `t2i_generate` without capture (our step loop: the DMD2 recurrence with keyed noise);
- `t2i_generate` capturing the family's four default sites, with the residual update;
- the job itself (`ingest.t2i.generate_t2i`, what `python -m ingest generate-t2i` calls) into
  a fresh lake, without and with the per-step x0 previews (which decode every step).
Ratios are times over the pipeline's (capture: over our bare loop). FLOPs per UNet step and
per VAE decode come from torch's FlopCounterMode; the fraction of peak divides the
achieved rate by --peak-flops (default: H100 SXM dense bf16). Prints JSON.

    python benchmarks/bench_t2i.py                                   # tiny SDXL components, CPU
    python benchmarks/bench_t2i.py --base sdxl-base-1.0 --checkpoint dmd2_sdxl_4step_unet_fp16.bin \\
        --size 1024 --steps 4 --device cuda --dtype fp16 --num-images 32
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PROMPTS = ("a photo of a red fox in the snow", "a bowl of ramen, studio lighting", "a lighthouse in a storm",
           "a steam locomotive on a bridge")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", help="diffusers-format base folder; default: tiny SDXL components built in a temp dir")
    parser.add_argument("--checkpoint", help="DMD2 UNet (.bin/.safetensors); default: the tiny one built beside the tiny base")
    parser.add_argument("--size", type=int, default=128, help="image height and width (default 128)")
    parser.add_argument("--steps", type=int, default=4, help="DMD2 steps: the family's default timesteps for K steps (default 4)")
    parser.add_argument("--num-images", type=int, default=16, help="images per measurement (default 16)")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs per measurement (default 2)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16"), help="UNet and text encoder precision")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's); 1 is steadiest on a shared machine")
    parser.add_argument("--peak-flops", type=float, default=989e12, help="peak FLOP/s for the fraction of peak")
    return parser.parse_args()


def synchronize(device) -> None:  # noqa: ANN001 - torch.device
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(fn: Callable[[], object], device, repeats: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


def count_flops(fn: Callable[[], object]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def main() -> None:
    import torch

    from ingest.t2i.prompts import PromptSpec
    from ingest.t2i import T2IModelSpec, T2ISettings, generate_t2i
    from lake.layout import prompt_id
    from models.t2i.reference import diffusers_pipeline
    from models.t2i import (build_tiny_base, decode_latents, encode_prompts, latent_noise, load_t2i,
                            save_tiny_dmd2_unet, t2i_generate)

    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench_t2i-"))
    if args.base is None:
        base = build_tiny_base(work / "base", family="sdxl", seed=0, size=args.size)
        checkpoint = str(save_tiny_dmd2_unet(base, work / "dmd2_unet.safetensors", format="safetensors"))
    else:
        base, checkpoint = Path(args.base), args.checkpoint
    model = load_t2i(base, checkpoint=checkpoint, device=args.device, dtype=args.dtype)
    family = model.family
    timesteps = list(family.default_timesteps[args.steps])
    n, size = args.num_images, args.size

    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(n)]
    ids = [prompt_id(p) for p in prompts]
    keys = [(0, pid, i) for i, pid in enumerate(ids)]
    embeds = encode_prompts(model, list(dict.fromkeys(prompts)))
    row_of = {p: i for i, p in enumerate(dict.fromkeys(prompts))}
    per_image = [embeds.take([row_of[p]]) for p in prompts]
    latent_shape = (model.latent_channels, size // model.vae_factor, size // model.vae_factor)
    latents = [latent_noise(*key, latent_shape).unsqueeze(0).to(model.device, model.dtype) for key in keys]
    pipe = diffusers_pipeline(model, base)
    pipe.set_progress_bar_config(disable=True)

    def run_pipeline() -> None:
        for e, x in zip(per_image, latents):
            extra = {"pooled_prompt_embeds": e.pooled} if family.name == "sdxl" else {}
            pipe(prompt_embeds=e.embeds, **extra, num_inference_steps=len(timesteps), timesteps=timesteps,
                 guidance_scale=0.0, latents=x, height=size, width=size, output_type="np")

    def run_ours(sites: tuple[str, ...], residual: bool) -> Callable[[], None]:
        def run() -> None:
            for e, key in zip(per_image, keys):
                t2i_generate(model, e, [key], timesteps, size, size, sites=sites, residual=residual, decode_steps=False)
        return run

    def run_job(step_previews: bool) -> tuple[Callable[[], None], int]:
        specs = [PromptSpec(p) for p in dict.fromkeys(prompts)]
        per_prompt = -(-n // len(specs))

        def run() -> None:
            lake = Path(tempfile.mkdtemp(dir=work)) / "lake"
            generate_t2i(lake, T2IModelSpec(str(base), checkpoint, device=args.device, dtype=args.dtype), specs,
                         T2ISettings(samples_per_prompt=per_prompt, steps=args.steps, height=size, width=size,
                                     residual=True, step_previews=step_previews, progress=False))
        return run, per_prompt * len(specs)

    run_pipeline()  # warm-up: first-call allocations and kernel selection
    sites = tuple(family.default_sites)
    seconds = {
        "pipeline": best_seconds(run_pipeline, model.device, args.repeats),
        "ours_bare": best_seconds(run_ours((), False), model.device, args.repeats),
        "ours_capture": best_seconds(run_ours(sites, True), model.device, args.repeats),
    }
    job_images = {}
    for label, previews in (("job", False), ("job_previews", True)):
        fn, count = run_job(previews)
        seconds[label] = best_seconds(fn, model.device, args.repeats)
        job_images[label] = count
    rate = {k: (job_images.get(k, n)) / v for k, v in seconds.items()}

    e0, x0 = per_image[0], latents[0]
    added = None
    if family.name == "sdxl":
        time_ids = torch.tensor([[size, size, 0, 0, size, size]], dtype=model.dtype, device=model.device)
        added = {"text_embeds": e0.pooled, "time_ids": time_ids}
    with torch.no_grad():
        unet_flops = count_flops(lambda: model.unet(x0, torch.tensor(timesteps[0], device=model.device),
                                                    encoder_hidden_states=e0.embeds, added_cond_kwargs=added))
        vae_flops = count_flops(lambda: decode_latents(model, x0))
    flops_per_image = len(timesteps) * unet_flops + vae_flops
    result = {
        "benchmark": "t2i", "family": family.name, "base": str(args.base or "tiny (built)"), "size": size,
        "timesteps": timesteps, "device": str(model.device), "dtype": args.dtype, "num_images": n,
        "threads": torch.get_num_threads(),
        "images_per_s": {k: round(v, 3) for k, v in rate.items()},
        "ratios": {
            "capture_over_bare_loop": round(seconds["ours_capture"] / seconds["ours_bare"], 3),
            "bare_loop_over_pipeline": round(seconds["ours_bare"] / seconds["pipeline"], 3),
            "job_over_pipeline": round((seconds["job"] / job_images["job"]) / (seconds["pipeline"] / n), 3),
            "job_with_step_previews_over_pipeline": round(
                (seconds["job_previews"] / job_images["job_previews"]) / (seconds["pipeline"] / n), 3),
        },
        "gflop": {"unet_step": round(unet_flops / 1e9, 3), "vae_decode": round(vae_flops / 1e9, 3),
                  "per_image": round(flops_per_image / 1e9, 3)},
        "fraction_of_peak_job": round(flops_per_image * rate["job"] / args.peak_flops, 6),
        "captured_sites": list(sites),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
