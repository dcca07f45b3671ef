"""`python -m ingest activations`: probe lake samples through the generator as a denoiser.

For each sample (real or generated) and noise level sigma the network sees
``x = x0 + sigma * eps`` with ``x0 = image / 127.5 - 1`` and ``eps ~ N(0, I)`` drawn from an
RNG keyed by (noise_seed, sample_id) -- the same eps at every sigma -- conditioned on the
sample's own class, exactly as DMD2 denoises at that noise level. The outputs of the
requested blocks are reduced to per-channel spatial means (optionally kept whole) in
`activations/<layer>`, whose `sigma` axis is a labelled dimension. With --reconstructions the
pass runs to the end and its input and output images (the noisy probe and the one-step
reconstruction x0_hat) go to the `reconstructions` table (ingest.core.reconstruct), in the same
commit as the activations of that batch.

Resumable and crash-safe: each batch is one commit, and a rerun computes only the
(sample, sigma) pairs not yet `probed` in some requested table (a layer's, or
`reconstructions` when asked for); sigmas new to a group extend its sigma axis.
The network runs on fixed blocks of samples-table rows (see ingest.core.models), so a value
does not depend on --batch-size or on how the work was split across runs. The probing itself
is `ingest.probing.probe_activations`, shared with the edit jobs; this module is its command line.
"""
from __future__ import annotations

import argparse

from .options import add_lake_flag, add_run_flags
from .probing import SOURCES, probe_activations  # the job's plain function lives with the probing loop edits share


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from lake.cli import command

    from .core.models import add_model_flags

    parser = command(
        subparsers,
        "activations",
        run,
        help="probe lake samples through the generator as a denoiser at several noise levels",
        description="For every selected sample and sigma, run D(x0 + sigma*eps, sigma, onehot(class)) with "
        "x0 = image/127.5 - 1 and eps drawn from (--noise-seed, sample_id), and store the per-channel spatial mean of "
        "each --layers block in activations/<layer> (dimensions sample, sigma, channel). Resumable: only missing "
        "(sample, sigma) pairs are computed; new sigmas extend an existing group. --reconstructions also stores each "
        "probe's noisy input and one-step output as images in `reconstructions`.",
    )
    add_lake_flag(parser)
    parser.add_argument("--layers", required=True, metavar="LIST",
                        help="comma-separated blocks to record, e.g. bottleneck,mid or enc.8x8_block2 "
                        "(an unknown name lists the valid ones)")
    parser.add_argument("--sigmas", default="0.5,2,10,80", metavar="LIST",
                        help="comma-separated noise levels (EDM sigma, pixel range [-1, 1]); default 0.5,2,10,80")
    parser.add_argument("--source", default="all", choices=sorted(SOURCES),
                        help="which samples to probe: real, generated or all (default); text-to-image samples "
                        "(split t2i) are never probed by the ImageNet denoiser")
    parser.add_argument("--noise-seed", type=int, default=0, metavar="S",
                        help="seed of the probe noise eps, drawn per sample from (S, sample_id); default 0. "
                        "A group holds one noise seed")
    parser.add_argument("--keep-spatial", action="store_true",
                        help="also store the full maps (sample, sigma, channel, y, x) as float16: large "
                        "(a 64x64 block is hundreds of KB per sample and sigma)")
    parser.add_argument("--reconstructions", action="store_true",
                        help="also store, per probed (sample, sigma), the noisy input x0 + sigma*eps and the one-step "
                        "reconstruction D(x0 + sigma*eps, sigma, class) as uint8 images in `reconstructions` (24 KB per "
                        "pair raw; the pass then runs the whole network, ~3x the FLOPs of probing bottleneck,mid). "
                        "Pairs already probed get only their missing reconstructions")
    add_model_flags(parser)
    add_run_flags(parser, default_batch=64)


def run(args: argparse.Namespace) -> None:
    """`python -m ingest activations`: the flags as `probe_activations`'s typed arguments."""
    from .core.models import ModelSpec

    probe_activations(args.lake, ModelSpec.from_args(args), args.layers, args.sigmas, source=args.source,
                      noise_seed=args.noise_seed, keep_spatial=args.keep_spatial,
                      reconstructions=args.reconstructions, batch_size=args.batch_size, progress=not args.no_progress)


