"""`python -m ingest edit OPERATION ...`: the flags of each edit as its plain function's typed arguments."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from ..options import add_lake_flag
from .operations import class_swap, from_real, interpolate, neighbours, regenerate, variations
from .parents import MAX_N
from .plan import EditOutcome

CLI_OPERATIONS = {"variations": "variations", "class-swap": "class_swap", "interpolate": "interpolate",
                  "neighbours": "neighbours", "from-real": "from_real"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from lake.cli import command

    parser = subparsers.add_parser(
        "edit", help="from a point back to the generator: regenerate, variations, class swap, interpolate, "
        "neighbour blends, from a real image",
        description="Make new samples from samples already in the lake (or check one): each operation writes its "
        "samples (split 'edited'), their lineage and generation means in one commit, then probes only them "
        "(--probe) so `python -m analysis place` can put them on the map. Rerunning the same edit adds nothing.")
    operations = parser.add_subparsers(dest="operation", required=True, metavar="OPERATION")

    def common(name: str, run: Any, help: str, description: str, from_help: str) -> argparse.ArgumentParser:
        sub = command(operations, name, run, help=help, description=description)
        add_lake_flag(sub)
        sub.add_argument("--from", dest="parents", required=True, metavar="ID[,ID...]", help=from_help)
        sub.add_argument("--checkpoint", default=None, metavar="PATH",
                         help="generator weights, when the lake's provenance does not locate them (the samples' "
                         "model id must match); not needed for seeded random weights")
        sub.add_argument("--device", default="auto",
                         help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps. Bits are reproducible on the "
                         "device type that made them")
        sub.add_argument("--no-progress", action="store_true", help="hide the progress bars")
        if name != "regenerate":
            sub.add_argument("--probe", default="all", metavar="all|none|KEY,KEY",
                             help="probe the new samples afterwards: all (default: every activations/<layer> group at "
                             "every sigma it has), none, or keys like enc.8x8_block2@sigma2")
        return sub

    common("regenerate", run_regenerate, "recompute stored generated samples and compare them bit for bit",
           "Recompute each sample of `ingest generate` from its id (model, schedule, seed, index) in its original "
           "compute block and compare with the stored image. Prints match or mismatch per sample; exit status 1 on "
           "any mismatch. Writes no sample, only a provenance record holding the results.",
           "comma-separated ids of generated samples (gen/<model>/s<seed>/<index>)")
    sub = common("variations", run_variations, "N new noise draws of a sample's class",
                 "N new samples of the parent's class, model and schedule, variation k with noise drawn from "
                 "(--seed, k) on a stream of their own; a real parent gets its class by the lake's probe model, in "
                 "one step. A larger --n later adds only the new variations.",
                 "one sample (generated, or real)")
    sub.add_argument("--n", type=int, default=8, metavar="N", help=f"how many variations, 1..{MAX_N} (default 8)")
    sub.add_argument("--seed", type=int, default=0, metavar="S", help="edit seed of the new noise draws (default 0)")
    sub = common("class-swap", run_class_swap, "the same noise with another class",
                 "One sample per --class: the parent's own noise (every step's, for a multi-step parent) conditioned "
                 "on that class instead.", "one sample of `ingest generate`")
    sub.add_argument("--class", dest="classes", required=True, metavar="C[,C...]",
                     help="target classes: ids 0..999, wnids or names, comma-separated")
    sub = common("interpolate", run_interpolate, "N steps between two generated samples",
                 "N samples from A to B, both ends included (t = 0, 1/(N-1), ..., 1; t=0 reproduces A, t=1 B): "
                 "spherical interpolation of their noise, linear interpolation of their class one-hot vectors.",
                 "two samples of `ingest generate` of one model and schedule: A,B")
    sub.add_argument("--n", type=int, default=8, metavar="N", help=f"points including both ends, 2..{MAX_N} (default 8)")
    sub = common("neighbours", run_neighbours, "generate with a block's output replaced by the samples' mean there",
                 "Activation masking: the mean of the --from samples' outputs at --layer (recomputed now: generated "
                 "samples by re-running their generation pass, real ones by probing them at --sigma) replaces that "
                 "block's output while the generator runs from the first sample's noise and class; optionally only "
                 "inside --mask and/or for --channels.",
                 "sample ids: the first a one-step sample of `ingest generate` (its noise and class), then any "
                 "generated or real ones (e.g. its neighbours)")
    sub.add_argument("--layer", required=True, metavar="L",
                     help="the block to replace (name or alias, e.g. bottleneck or enc.8x8_block2); an unknown one "
                     "lists the valid ones")
    sub.add_argument("--mask", default=None, metavar="0101...",
                     help="replace only where this row-major '0'/'1' string over the layer's H x W map has '1' "
                     "(64 characters for 8x8); default everywhere")
    sub.add_argument("--channels", default=None, metavar="LIST",
                     help="replace only these channels (comma-separated indices); default all")
    sub.add_argument("--sigma", default=None, metavar="S",
                     help="noise level at which real samples are probed for their maps, in (0, 80]; required when "
                     "--from holds a real sample")
    sub = common("from-real", run_from_real, "denoise a real image from noise level sigma in one step",
                 "Probe each real sample at --sigma exactly as `ingest activations` does (x0 + sigma*eps, eps from "
                 "the probes' noise seed and the sample id, its own class) and keep the one-step denoised image.",
                 "one or more real samples")
    sub.add_argument("--sigma", required=True, metavar="S", help="noise level in (0, 80], e.g. 10")


def _report(outcome: EditOutcome) -> None:
    kept = len(outcome.sample_ids) - outcome.added
    print(f"ingest edit {outcome.operation}: {outcome.added} new sample(s)"
          + (f", {kept} already in the lake" if kept else "") + f" (run {outcome.run_id})", file=sys.stderr)
    for sample_id in outcome.sample_ids:
        print(sample_id)


def _common(args: argparse.Namespace) -> dict[str, Any]:
    return {"probe": args.probe, "checkpoint": args.checkpoint, "device": args.device, "progress": not args.no_progress}


def run_regenerate(args: argparse.Namespace) -> int:
    """`python -m ingest edit regenerate`: one line per sample; status 1 on any mismatch."""
    results = regenerate(args.lake, args.parents, checkpoint=args.checkpoint, device=args.device)
    for result in results:
        print(result.message(), file=sys.stdout if result.match else sys.stderr)
    return 0 if all(r.match for r in results) else 1


def run_variations(args: argparse.Namespace) -> None:
    _report(variations(args.lake, args.parents, args.n, seed=args.seed, **_common(args)))


def run_class_swap(args: argparse.Namespace) -> None:
    _report(class_swap(args.lake, args.parents, args.classes, **_common(args)))


def run_interpolate(args: argparse.Namespace) -> None:
    _report(interpolate(args.lake, args.parents, args.n, **_common(args)))


def run_neighbours(args: argparse.Namespace) -> None:
    _report(neighbours(args.lake, args.parents, args.layer, mask=args.mask, channels=args.channels, sigma=args.sigma,
                       **_common(args)))


def run_from_real(args: argparse.Namespace) -> None:
    _report(from_real(args.lake, args.parents, args.sigma, **_common(args)))
