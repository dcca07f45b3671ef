"""`generate_t2i`, the plain function behind `python -m ingest generate-t2i`: check the arguments, prepare the
job on every rank, then rank 0 writes (`ingest.t2i.write`) while the other ranks compute their share."""
from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence

from ..errors import InputError
from ..options import positive
from ..ranks import Failure
from .compute import T2IJob, compute_steps
from .plan import parse_layers
from .prepare import prepare_job
from .prompts import PromptList, PromptSpec
from .spec import T2IModelSpec, T2ISettings
from .write import write_lake


def generate_t2i(lake: str | os.PathLike[str], model: T2IModelSpec, prompts: PromptList | Sequence[PromptSpec],
                 settings: T2ISettings | None = None) -> str:
    """Make sure samples 0..N-1 of every prompt (N = `settings.samples_per_prompt`) are in `lake`; returns the model name.

    `model` names the base folder and the DMD2 UNet (checkpoint or LoRA); `prompts` come from
    `ingest.t2i.prompts.collect_prompts` (distinct prompt ids). Only missing samples are made
    (and missing rows of any table they belong in). Under `accelerate launch`/torchrun every
    process calls this; rank 0 alone writes. Bad input raises InputError (one line) before
    the lake is touched, or rolls the lake back to how it was. `settings` None: `T2ISettings()`.
    """
    from ..ranks import detect_ranks

    settings = settings if settings is not None else T2ISettings()
    prompt_list = prompts if isinstance(prompts, PromptList) else PromptList(tuple(prompts))
    check_arguments(prompt_list, settings)
    layer_names = parse_layers(settings.layers)

    ranks = detect_ranks(model.device)
    try:
        job = prepare_job(model, prompt_list, settings, layer_names, ranks)
    except InputError:
        if not ranks.is_main:
            raise SystemExit(2) from None  # rank 0 reports the same error once
        raise
    if not ranks.is_main:
        plan = ranks.broadcast(None)
        if isinstance(plan, Failure):
            raise SystemExit(2)
        for _ in compute_steps(job, plan[0], plan[1], ranks):
            pass
        ranks.close()
        return job.name
    _print_notes(prompt_list, job)
    write_lake(lake, model, settings, job, ranks)
    ranks.close()
    return job.name


def check_arguments(prompt_list: PromptList, settings: T2ISettings) -> None:
    """InputError (one line, naming the flag) for what is wrong before any file is read."""
    from lake.layout import check_t2i_name

    if not prompt_list.prompts:
        raise InputError("no prompts: give --prompts FILE, --prompt TEXT or --prompts-from-classes LIST")
    if len({p.prompt_id for p in prompt_list.prompts}) != len(prompt_list.prompts):
        raise InputError("repeated prompts: pass them through ingest.t2i.prompts.collect_prompts, which drops repeats")
    if any(not p.prompt.strip() for p in prompt_list.prompts):
        raise InputError("empty prompt: every prompt needs some text")
    positive(settings.samples_per_prompt, "--samples-per-prompt")
    positive(settings.batch_size, "--batch-size")
    if settings.seed < 0:
        raise InputError(f"--seed must be >= 0, got {settings.seed}")
    if not math.isfinite(settings.guidance) or settings.guidance < 0:
        raise InputError(f"--guidance must be a number >= 0, got {settings.guidance}")
    if settings.spatial < 0:
        raise InputError(f"--spatial must be >= 0 (0: no maps), got {settings.spatial}")
    for flag, value in (("--height", settings.height), ("--width", settings.width)):
        if value is not None and (value <= 0 or value % 8):
            raise InputError(f"{flag} must be a positive multiple of 8 (the VAE factor), got {value}")
    if settings.name is not None:
        try:
            check_t2i_name(settings.name)
        except ValueError as exc:
            raise InputError(f"--name: {exc}") from None


def _print_notes(prompt_list: PromptList, job: T2IJob) -> None:
    """Rank 0's notes on stderr, once per run: dropped repeats, negative prompts that cannot act, prompts
    the text encoders shorten."""
    note = prompt_list.note()
    if note:
        print(note, file=sys.stderr)
    if any(p.negative_prompt for p in job.prompts) and not job.guided:
        print("note: negative prompts only act with --guidance above 1; they still name their prompts' ids",
              file=sys.stderr)
    warning = truncation_warning(job)
    if warning:
        print(warning, file=sys.stderr)


def truncation_warning(job: T2IJob) -> str | None:
    """One line naming the run's prompts (and, with guidance, negative prompts) longer than CLIP's 77 tokens,
    each with the tokens kept of its total; None when every prompt fits. The encoders see only the first 77
    tokens (diffusers cuts them silently too), so the rest of such a prompt changes no pixel."""
    from models.t2i import truncated_prompts

    texts = [p.prompt for p in job.prompts]
    if job.guided:
        texts += [p.negative_prompt for p in job.prompts]
    cut = truncated_prompts(job.model, texts)
    if not cut:
        return None
    shown = ", ".join(f"{_shorten(t.prompt)!r} ({t.kept} of {t.total} tokens)" for t in cut[:_SHOWN])
    more = f", and {len(cut) - _SHOWN} more" if len(cut) > _SHOWN else ""
    return (f"warning: {len(cut)} prompt(s) longer than the text encoder's {cut[0].kept} tokens, shortened to their "
            f"first {cut[0].kept} (the rest changes nothing): {shown}{more}")


_SHOWN = 3  # prompts named in the truncation warning
_PROMPT_CHARS = 40  # characters of each named prompt


def _shorten(prompt: str) -> str:
    """A prompt's first characters, for naming it in a one-line warning."""
    return prompt if len(prompt) <= _PROMPT_CHARS else prompt[:_PROMPT_CHARS].rstrip() + "..."
