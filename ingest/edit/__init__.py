"""`python -m ingest edit ...`: from a point of the map back to the generator.

Six operations on samples already in the lake (each a plain function here, a CLI
subcommand, and what the explorer's job buttons run):

- **regenerate** ``--from ID[,ID...]``: recompute stored samples of ``ingest generate`` from
  what their ids say (model, schedule, seed, index) and the job's recorded class plan and
  compute block; reports match (bit for bit) or mismatch (exit status 1). Writes no sample,
  only its provenance record, which holds the result.
- **variations** ``--from ID --n N --seed S``: N new noise draws, the parent's class, model and
  schedule (a real parent: its class, the lake's probe model, one step). Variation k's noise comes from (S, k) on a stream of its own (`EDIT_STREAM`).
- **class-swap** ``--from ID --class C[,C...]``: the parent's own noise (every step's), another class; one
  sample per class.
- **interpolate** ``--from A,B --n N``: N points t = 0, 1/(N-1), ..., 1, *ends included* (t=0
  is A's noise and class, t=1 B's): spherical interpolation (slerp) of every step's noise,
  linear interpolation of the class one-hot vectors (the network takes a label vector, so a
  mix is a valid input).
- **neighbours** ``--from ID,ID,... --layer L [--mask 0101...] [--channels 0,5] [--sigma S]``:
  activation masking. The mean of the chosen samples' block outputs at L (the spatial maps,
  recomputed now: generated samples by re-running their generation pass, real ones by
  probing them at --sigma with their probe noise) replaces L's output while the generator
  runs from the *first* parent's noise and class; optionally only inside a spatial mask and/or
  for a channel subset (`models.replace`).
- **from-real** ``--from ID[,ID...] --sigma S``: probe a real sample at S exactly as ``ingest
  activations`` does (x0 + S * eps, eps from (noise_seed, sample_id), its own class) and keep
  the one-step denoised image (`ingest.core.reconstruct`), one sample per parent.

What is written (one commit): the new rows of ``samples`` (source ``generated``, split
``edited``, origin ``edit:<operation>``, ``model_id`` the generator's, with ``~<schedule>`` for a
multi-step parent, ``seed`` the edit seed or -1), their rows of ``lineage`` (operation,
parents and every parameter, the job's run id) and, for one-pass edits, their generation-pass
channel means in every ``generation/<layer>`` group of the same model. Then the new samples
(only them) are probed as ``--probe`` says (default: every ``activations/<layer>`` at every
sigma it holds), so ``analysis place`` can put them on the map.

Ids and resumption: ``edit/<operation>/<digest>/<k>``, the digest a hash of (model, operation,
parents, every parameter that shapes the result) and k the member: the variation index, the
target class of a class swap, the interpolation step; 0 for neighbours and from-real. So the
same edit always makes the same ids, a rerun adds nothing (and finishes probing a run killed
while probing), and ``variations --n 8`` after ``--n 4`` adds variations 4..7.

Determinism: a sample's low bits depend on the other samples of its forward call, so each
edit fixes its calls by its own identity: variations run in compute blocks of variation
indices (k = jB .. jB+B-1, B the device's `ingest.core.models.compute_block`, as ``generate``
does), so variation k is the same bits whatever N; every other edited sample runs in a pass
of its own (one per class, per interpolation point, per blend); from-real runs its parent's
probe block, so it equals the stored reconstruction. Same device type and thread count.

Modules: `parents` (the samples an edit starts from, flag checks, noise), `plan` (what an edit
writes, its ids and digest, `--probe`), `operations` (the plain functions), `write` (one
commit, then the probes) and `cli` (the subcommands). The forward passes and the model
identity are `ingest.core`'s.
"""
from __future__ import annotations

from ..core.forward import Passes, one_hot, run_passes
from .cli import CLI_OPERATIONS, add_parser
from .operations import RegenerateResult, class_swap, from_real, interpolate, neighbours, regenerate, variations
from .parents import MAX_N, Parent, edit_noise, load_parents, parent_noises, parse_channels, parse_ids, parse_mask, slerp
from .plan import EditOutcome, EditPlan, EditSample, ProbeRequest, edit_digest, parse_probe
from .write import SPLIT, write_edit

__all__ = [
    "CLI_OPERATIONS", "MAX_N", "SPLIT", "EditOutcome", "EditPlan", "EditSample", "Parent", "Passes", "ProbeRequest",
    "RegenerateResult", "add_parser", "class_swap", "edit_digest", "edit_noise", "from_real", "interpolate",
    "load_parents", "neighbours", "one_hot", "parent_noises", "parse_channels", "parse_ids", "parse_mask",
    "parse_probe", "regenerate", "run_passes", "slerp", "variations", "write_edit",
]
