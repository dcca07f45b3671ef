"""Pure planning of a text-to-image run: its timesteps, default name, capture sites, samples and compute blocks.

Nothing here loads a model or touches the lake: a run's samples (prompt-major), the blocks the
network computes them in and the schedule are functions of the flags alone (see ingest.t2i).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import InputError


# Samples per network call. One: a DMD2 step at 1024x1024 is a 128x128-latent UNet pass that
# fills a GPU by itself, and a block must be a function of the sample alone (an extended run
# adds samples to prompts that already have some), so any larger block would compute samples
# nobody asked for whenever --samples-per-prompt is below it.
T2I_COMPUTE_BLOCK = 1


TIMESTEP_LIMIT = 1000  # DDPM timesteps of both families: 0..999


def parse_timesteps(default_timesteps: dict[int, tuple[int, ...]], family: str, steps: int | str | None = None,
                    timesteps: str | Sequence[int] | None = None) -> tuple[int, ...]:
    """The run's timesteps: --timesteps as given, or the family's DMD2 schedule for --steps K.

    Default: the family's longest DMD2 schedule (sdxl: 4 steps; sd15: 1). InputError (one
    line, naming the flag) for both flags, a bad K, a non-integer, a timestep outside 0..999
    or a list that is not strictly decreasing.
    """
    if steps is not None and timesteps is not None:
        raise InputError("--steps and --timesteps: give one of them, not both")
    if timesteps is None:
        known = ", ".join(str(k) for k in sorted(default_timesteps))
        if steps is None:
            return tuple(default_timesteps[max(default_timesteps)])
        try:
            k = int(str(steps).strip())
        except ValueError:
            raise InputError(f"--steps must be an integer ({family}: {known}), got {steps!r}") from None
        if k not in default_timesteps:
            raise InputError(f"--steps {k}: DMD2 {family} has schedules for {known} step(s); "
                             "give other schedules with --timesteps")
        return tuple(default_timesteps[k])
    tokens = timesteps.split(",") if isinstance(timesteps, str) else [str(t) for t in timesteps]
    values = []
    for token in (t.strip() for t in tokens if t.strip()):
        try:
            value = int(token)
        except ValueError:
            raise InputError(f"--timesteps: {token!r} is not an integer timestep") from None
        if not 0 <= value < TIMESTEP_LIMIT:
            raise InputError(f"--timesteps: every timestep must lie in 0..{TIMESTEP_LIMIT - 1}, got {value}")
        values.append(value)
    if not values:
        raise InputError("--timesteps: give at least one timestep, e.g. 999,749,499,249")
    if any(b >= a for a, b in zip(values, values[1:], strict=False)):
        raise InputError(f"--timesteps must be strictly decreasing (each step less noisy), got {','.join(map(str, values))}")
    return tuple(values)


def default_name(family: str, timesteps: Sequence[int], lora: bool) -> str:
    """``dmd2-<family>-<K>step`` (plus ``-lora`` for a LoRA-fused UNet)."""
    return f"dmd2-{family}-{len(timesteps)}step" + ("-lora" if lora else "")


def parse_layers(text: str | Sequence[str] | None) -> list[str] | None:
    """--layers as names (None: the family's default sites; [] for 'none')."""
    if text is None:
        return None
    names = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    if names == ["none"]:
        return []
    if not names:
        raise InputError("--layers: give site names or aliases, comma-separated, or 'none'")
    return names


@dataclass(frozen=True)
class PlannedSample:
    """One sample of the run: its prompt's position in the prompt list, and its index among the prompt's samples."""

    prompt: int
    index: int


def plan_samples(num_prompts: int, samples_per_prompt: int) -> list[PlannedSample]:
    """Every sample of the run, prompt-major: prompt 0's indices 0..N-1, then prompt 1's, ..."""
    return [PlannedSample(p, i) for p in range(num_prompts) for i in range(samples_per_prompt)]


@dataclass(frozen=True)
class ComputeBlock:
    """Samples computed in one network call: indices start..start+size-1 of one prompt."""

    prompt: int
    start: int
    size: int

    @property
    def samples(self) -> list[PlannedSample]:
        return [PlannedSample(self.prompt, i) for i in range(self.start, self.start + self.size)]


def compute_blocks(needed: Sequence[PlannedSample], block: int) -> list[ComputeBlock]:
    """The compute blocks covering `needed`, in plan order: block k of a prompt is its indices kB..kB+B-1.

    A block's members depend only on (prompt, index // block), so a sample is computed in the
    same company whatever else the run needs (a block is computed whole; samples nobody asked
    for are dropped).
    """
    seen: dict[tuple[int, int], ComputeBlock] = {}
    for sample in needed:
        key = (sample.prompt, sample.index // block)
        if key not in seen:
            seen[key] = ComputeBlock(sample.prompt, key[1] * block, block)
    return list(seen.values())
