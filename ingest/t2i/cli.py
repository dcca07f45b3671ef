"""The command line of `python -m ingest generate-t2i`: `add_parser` registers the flags, `run` turns them into
`generate_t2i`'s typed arguments. Nothing heavy is imported here (``--help`` loads neither torch nor diffusers)."""
from __future__ import annotations

import argparse

from ..options import add_lake_flag, add_run_flags
from .job import generate_t2i
from .prompts import DEFAULT_TEMPLATE, collect_prompts
from .spec import T2IModelSpec, T2ISettings


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `generate-t2i`: its description, then the model, prompt, sampling and capture flags."""
    from lake.cli import command

    parser = command(
        subparsers,
        "generate-t2i",
        run,
        help="generate text-to-image DMD2 samples (SDXL, SD v1.5) from prompts, with their activations",
        description="Generate --samples-per-prompt samples of each prompt with a DMD2 text-to-image UNet on a local "
        "diffusers-format base folder, into the lake: 64x64 thumbnails in samples (split t2i), native images, per-step "
        "x0 previews and prompt coordinates in t2i/<name>/samples, each prompt's pooled text embedding in "
        "t2i/<name>/prompts, and each capture site's per-step channel means in activations/<name>.<module> (its sigma "
        "axis: each step's noise level sqrt((1-abar_t)/abar_t)). Sample (prompt, index) depends only on (model, "
        "prompt, --seed, index): reruns add only what is missing, a killed run resumes, and --batch-size or the number "
        "of processes change no bit. Prompts come from --prompts FILE, --prompt TEXT and --prompts-from-classes, in "
        "that order. Multi-GPU: accelerate launch -m ingest generate-t2i ...",
    )
    add_lake_flag(parser)
    _model_flags(parser.add_argument_group("model"))
    _prompt_flags(parser.add_argument_group("prompts"))
    _sampling_flags(parser.add_argument_group("sampling"))
    _capture_flags(parser.add_argument_group("capture"))
    add_run_flags(parser, default_batch=16)


def run(args: argparse.Namespace) -> None:
    """`python -m ingest generate-t2i`: the flags as `generate_t2i`'s typed arguments."""
    prompts = collect_prompts(args.prompts, args.prompt, args.prompts_from_classes, args.prompt_template,
                              args.negative_prompt)
    model = T2IModelSpec(base=args.base, checkpoint=args.checkpoint, lora=args.lora, family=args.family,
                         device=args.device, dtype=args.dtype)
    settings = T2ISettings(
        name=args.name, samples_per_prompt=args.samples_per_prompt, seed=args.seed, steps=args.steps,
        timesteps=args.timesteps, guidance=args.guidance, height=args.height, width=args.width, layers=args.layers,
        residual=args.residual, spatial=args.spatial, step_previews=not args.no_step_previews,
        batch_size=args.batch_size, progress=not args.no_progress)
    generate_t2i(args.lake, model, prompts, settings)


def _model_flags(model: argparse._ArgumentGroup) -> None:
    """--base, --checkpoint, --lora, --family, --name, --device, --dtype."""
    model.add_argument("--base", required=True, metavar="PATH",
                       help="diffusers-format base folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, "
                       "[text_encoder_2/, tokenizer_2/], scheduler/), e.g. a local copy of "
                       "stabilityai/stable-diffusion-xl-base-1.0; nothing is downloaded")
    model.add_argument("--checkpoint", default=None, metavar="PATH",
                       help="DMD2 whole-UNet weights (.bin or .safetensors, e.g. dmd2_sdxl_4step_unet_fp16.bin) loaded "
                       "strictly into the base UNet's architecture. Default: the base UNet as it is")
    model.add_argument("--lora", default=None, metavar="PATH",
                       help="a DMD2 LoRA (e.g. dmd2_sdxl_4step_lora_fp16.safetensors) fused into the base UNet; "
                       "not with --checkpoint")
    model.add_argument("--family", default=None, choices=["sdxl", "sd15"],
                       help="model family, checked against the base folder; default: detected (a base folder with "
                       "text_encoder_2/ is sdxl, else sd15)")
    model.add_argument("--name", default=None, metavar="NAME",
                       help="the model's name in the lake (t2i/<name>, activations/<name>.<module>): lower-case "
                       "letters, digits, '-' and '_'. Default dmd2-<family>-<K>step (plus -lora with --lora). One name "
                       "holds one model (base, UNet and LoRA hashes), size, timesteps and guidance")
    model.add_argument("--device", default="auto",
                       help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps; under `accelerate launch` each process uses "
                       "its own GPU (cpu: gloo processes)")
    model.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"],
                       help="UNet and text encoder precision: fp32 (default), fp16 or bf16 (CUDA only; fp16 is how DMD2 "
                       "ships its weights). The SDXL VAE always decodes in fp32; stored activations are float32")


def _prompt_flags(prompts: argparse._ArgumentGroup) -> None:
    """--prompts, --prompt, --prompts-from-classes, --prompt-template, --negative-prompt."""
    prompts.add_argument("--prompts", default=None, metavar="FILE",
                         help="prompt file: .txt (one prompt per line; blank lines and lines starting with # are "
                         "skipped) or .csv (header row; column prompt required, optional negative_prompt and "
                         "class_id or class: an ImageNet class id, wnid or name)")
    prompts.add_argument("--prompt", action="append", default=[], metavar="TEXT",
                         help="a prompt (repeatable), after those of --prompts")
    prompts.add_argument("--prompts-from-classes", default=None, metavar="LIST",
                         help="one prompt per ImageNet class (comma-separated ids, wnids or names), from "
                         "--prompt-template; the samples keep the class id, so they line up with ImageNet classes")
    prompts.add_argument("--prompt-template", default=DEFAULT_TEMPLATE, metavar="TEXT",
                         help=f"template of --prompts-from-classes, with {{name}} for the class name "
                         f"(default {DEFAULT_TEMPLATE!r})")
    prompts.add_argument("--negative-prompt", default=None, metavar="TEXT",
                         help="negative prompt for every prompt without one of its own (a CSV's negative_prompt column "
                         "wins); it is part of the prompt's id and only acts with --guidance above 1")


def _sampling_flags(sampling: argparse._ArgumentGroup) -> None:
    """--samples-per-prompt, --seed, --steps, --timesteps, --guidance, --height, --width."""
    sampling.add_argument("--samples-per-prompt", type=int, default=1, metavar="N",
                          help="samples 0..N-1 of each prompt (default 1); a larger N later adds only the new ones")
    sampling.add_argument("--seed", type=int, default=0, metavar="S",
                          help="generation seed (default 0): sample i of a prompt draws its noise from (S, prompt id, i, step)")
    sampling.add_argument("--steps", default=None, metavar="K",
                          help="DMD2's K-step schedule of the family: sdxl 4 (timesteps 999,749,499,249; the default) "
                          "or 1 (timestep 399, for the one-step checkpoint); sd15 1 (999). Not with --timesteps")
    sampling.add_argument("--timesteps", default=None, metavar="LIST",
                          help="explicit timesteps, comma-separated, strictly decreasing, each in 0..999 "
                          "(e.g. 999,749,499,249). Not with --steps")
    sampling.add_argument("--guidance", type=float, default=0.0, metavar="G",
                          help="classifier-free guidance scale; default 0 = none, DMD2's setting (values up to 1 "
                          "mean none too)")
    sampling.add_argument("--height", type=int, default=None, metavar="PX",
                          help="image height; default: the base UNet's size (1024 for SDXL, 512 for SD v1.5); a "
                          "multiple of the VAE factor (8)")
    sampling.add_argument("--width", type=int, default=None, metavar="PX",
                          help="image width; default and rule as --height")


def _capture_flags(capture: argparse._ArgumentGroup) -> None:
    """--layers, --residual, --spatial, --no-step-previews."""
    capture.add_argument("--layers", default=None, metavar="LIST",
                         help="capture sites, comma-separated: aliases (sdxl: down2.attn1, mid, up0.attn0, up0.attn1; "
                         "sd15: down2.attn1, mid, up1.attn0, up1.attn1) or any UNet module path "
                         "(e.g. down_blocks.2.attentions.1). Default: the family's four sites; 'none': no capture")
    capture.add_argument("--residual", action="store_true",
                         help="also store each site's residual update (output - input) in activations/<name>.<module>+update")
    capture.add_argument("--spatial", type=int, default=0, metavar="S",
                         help="also store each site's output average-pooled to S x S maps (float16, the activation "
                         "table's spatial column); default 0 = none")
    capture.add_argument("--no-step-previews", action="store_true",
                         help="do not decode each step's x0 (t2i/<name>/samples then has no x0 previews); saves one VAE "
                         "decode per step")
