"""Per-family facts of the text-to-image DMD2 models (SDXL and SD v1.5).

Pure data, no heavy imports: the ingest job's ``--help`` and the explorer read these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lake.schema import T2I_SITE_ALIASES


@dataclass(frozen=True)
class T2IFamily:
    """What differs between SDXL and SD v1.5 DMD2 models.

    ``default_timesteps`` maps a step count to the timesteps DMD2 samples at;
    ``site_aliases`` maps short capture-site names to UNet module paths, and
    ``default_sites`` are the canonical module paths captured by default.
    """

    name: str
    default_size: tuple[int, int]
    default_timesteps: dict[int, tuple[int, ...]]
    vae_fp32: bool  # the SDXL VAE overflows in fp16, so it always decodes in fp32
    site_aliases: dict[str, str] = field(default_factory=dict)
    default_sites: tuple[str, ...] = ()
    dual_encoder: bool = False  # two CLIP text encoders (SDXL) or one (SD v1.5)

    def __hash__(self) -> int:  # the dict fields are not hashable; a family is its name
        return hash(self.name)

    def timesteps_for(self, steps: int) -> tuple[int, ...]:
        """DMD2's timesteps for a ``steps``-step run; ValueError naming the known step counts."""
        if steps not in self.default_timesteps:
            known = ", ".join(str(k) for k in sorted(self.default_timesteps))
            raise ValueError(f"{self.name}: no default timesteps for {steps} steps (known: {known}); "
                             f"pass the timesteps explicitly")
        return self.default_timesteps[steps]


# The capture sites' aliases live in the torch-free lake package (lake.schema), which the
# analysis and the explorer read too: one table for every package.
_SDXL_SITES = T2I_SITE_ALIASES["sdxl"]
_SD15_SITES = T2I_SITE_ALIASES["sd15"]

FAMILIES: dict[str, T2IFamily] = {
    "sdxl": T2IFamily(
        name="sdxl", default_size=(1024, 1024),
        default_timesteps={1: (399,), 4: (999, 749, 499, 249)},
        vae_fp32=True, site_aliases=dict(_SDXL_SITES), default_sites=tuple(_SDXL_SITES.values()),
        dual_encoder=True),
    "sd15": T2IFamily(
        name="sd15", default_size=(512, 512),
        default_timesteps={1: (999,)},
        vae_fp32=False, site_aliases=dict(_SD15_SITES), default_sites=tuple(_SD15_SITES.values()),
        dual_encoder=False),
}


def get_family(name: str) -> T2IFamily:
    """The family called ``name``; ValueError listing the known ones."""
    key = name.strip().lower()
    if key not in FAMILIES:
        raise ValueError(f"unknown text-to-image family {name!r}; use one of: {', '.join(FAMILIES)}")
    return FAMILIES[key]
