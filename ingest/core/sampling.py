"""How a run's samples are made, from its flags: DMD2's sampler on a schedule of sigmas (one step at 80,
--steps K or --sigmas LIST) or EDM's Heun sampler (--sampler heun), and the model identity that names them.

Pure and torch-free except `Sampling.config` and the Heun sigma axis, which import `models.heun`
lazily (so `--help` stays light).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..options import parse_sigmas
from .generation import ONE_STEP, SIGMA_LIMIT


def step_count(steps: int | str | None, default: int) -> int:
    """--steps as a positive integer (`default` when not given); InputError (one line) otherwise."""
    try:
        k = int(str(steps).strip()) if steps is not None else default
    except ValueError:
        raise InputError(f"--steps must be a positive integer, got {steps!r}") from None
    if k < 1:
        raise InputError(f"--steps must be a positive integer, got {k}")
    return k


def parse_schedule(steps: int | str | None = None, sigmas: str | Sequence[float] | None = None) -> tuple[float, ...]:
    """The sampling schedule --steps or --sigmas ask for (default: one step at 80), as canonical sigmas.

    Canonical: each sigma is the float32 value of what the schedule id prints
    (`lake.layout.schedule_id`, 6 significant digits), so one id always means one set of
    input sigmas, whether it came from --steps or was typed back as --sigmas. Raises
    InputError (one line naming the flag) for both flags, a K that is not a positive
    integer, an empty list, a non-number, a sigma outside (0, 80] or a schedule that is
    not strictly decreasing.
    """
    import models
    from lake.layout import parse_schedule_id, schedule_id

    if steps is not None and sigmas is not None:
        raise InputError("--steps and --sigmas: give one of them, not both (--steps K picks the Karras schedule)")
    if sigmas is None:
        values, flag = models.karras_sigmas(step_count(steps, default=1)), "--steps"
    else:
        tokens = sigmas.split(",") if isinstance(sigmas, str) else [str(t) for t in sigmas]
        values, flag = [], "--sigmas"
        for token in (t for t in tokens if t.strip()):
            # One token at a time: a repeated sigma must stay to be refused, not be dropped as a duplicate.
            [value] = parse_sigmas(token)  # a number, positive and finite, or a one-line --sigmas error
            if value > SIGMA_LIMIT:
                raise InputError(f"--sigmas: every sigma must lie in (0, {SIGMA_LIMIT:g}], got {token.strip()}")
            values.append(value)
        if not values:
            raise InputError("--sigmas: give at least one sigma, e.g. 80,20,5,1.5")
    canonical = parse_schedule_id(schedule_id(values))
    if any(b >= a for a, b in zip(canonical, canonical[1:], strict=False)):
        shown = ",".join(f"{v:g}" for v in canonical)
        raise InputError(f"{flag}: the schedule must be strictly decreasing (each step less noisy), got {shown}")
    return canonical


@dataclass(frozen=True)
class Sampling:
    """How the samples are made: DMD2's sampler on `sigmas`, or EDM's Heun sampler (`heun`)."""

    sigmas: tuple[float, ...] = ONE_STEP  # DMD2: its input sigmas; Heun: the sigma of each step's first pass
    heun: Any = None  # lake.layout.HeunSchedule

    @property
    def schedule(self) -> str:
        """The schedule id: the trajectories group and the samples' ``~<schedule>``."""
        from lake.layout import schedule_id

        return self.heun.name if self.heun is not None else schedule_id(self.sigmas)

    def model_id(self, model_id: str) -> str:
        """The model identity of samples made this way (their ids, origins and samples/model_id)."""
        from lake.layout import heun_model_id, schedule_model_id

        return heun_model_id(model_id, self.heun) if self.heun is not None else schedule_model_id(model_id, self.sigmas)

    def config(self) -> Any:
        """The Heun sampler's `models.heun.HeunConfig` (None for DMD2's sampler); imports torch."""
        if self.heun is None:
            return None
        from models.heun import HeunConfig

        return HeunConfig.from_schedule(self.heun.steps, self.heun.churn)


def parse_sampling(sampler: str = "dmd2", steps: int | str | None = None, sigmas: str | Sequence[float] | None = None,
                   churn: float = 0.0) -> Sampling:
    """--sampler with its --steps/--sigmas/--churn as a `Sampling`; InputError (one line naming the flag) when they clash."""
    from lake.layout import HeunSchedule

    if sampler not in ("dmd2", "heun"):
        raise InputError(f"--sampler must be dmd2 or heun, got {sampler!r}")
    if not math.isfinite(churn) or churn < 0:
        raise InputError(f"--churn must be a non-negative number, got {churn:g}")
    if sampler == "dmd2":
        if churn:
            raise InputError("--churn is EDM's Heun sampler's: add --sampler heun, or drop --churn")
        return Sampling(parse_schedule(steps, sigmas))
    if sigmas is not None:
        raise InputError("--sigmas: --sampler heun samples on EDM's Karras schedule; give --steps K instead")
    from lake.layout import parse_heun_schedule_id
    from models.heun import HeunConfig

    heun = parse_heun_schedule_id(HeunSchedule(step_count(steps, default=18), churn).name)  # churn as a rerun reads it back
    assert heun is not None
    step_sigmas = HeunConfig.from_schedule(heun.steps, heun.churn).step_sigmas()
    return Sampling(tuple(float(np.float32(s)) for s in step_sigmas), heun)
