"""Edit job requests and their command lines: what the researcher asks for, validated into argument lists.

A request (`JobRequest`) is checked against the lake's facts (`LakeFacts`: ids that
exist, known layers and channel counts, keys with PCA scores) and becomes two argument
lists (`build_commands`): `python -m ingest edit <operation> ...`, then
`python -m analysis place ...`. Only validated values reach them: nothing from the browser
is a path, a flag or code. Anything wrong is a `JobRefused` with a one-line reason.
Nothing here imports Streamlit or starts a process (`explorer.jobs` runs them).
"""
from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lake.layout import T2I_GROUP, parse_key, split_t2i_layer

# The edit operations as the CLI names them (`python -m ingest edit <operation>`).
OPERATIONS = ("regenerate", "variations", "class-swap", "interpolate", "neighbours", "from-real")
MAX_N = 64  # the bound on samples per job
MAX_PARENTS = 64
MAX_SEED = 2**31 - 1
MAX_SIGMA = 80.0  # the generator's largest noise level
_LAYER_MAP = re.compile(r"(\d+)x(\d+)")



class JobRefused(ValueError):
    """A job request that is not started; the message is one line for the page."""


@dataclass(frozen=True)
class LakeFacts:
    """What a request is checked against: what the lake holds (read once per lake commit)."""

    lake: Path
    sample_exists: Callable[[Sequence[str]], list[bool]]  # per id: is it a row of `samples`?
    source_of: Callable[[Sequence[str]], list[str]]  # per id: its source ('real'/'generated'; '' when absent)
    layers: tuple[str, ...]  # layers with generation means or probes (canonical names)
    channels: dict[str, int] = field(default_factory=dict)  # layer -> channel count, where known
    keys: tuple[str, ...] = ()  # analysis keys with a stored PCA (placement needs one)


@dataclass(frozen=True)
class JobRequest:
    """One edit as the explorer asks for it; every field is checked by `build_commands`."""

    operation: str
    parents: tuple[str, ...]
    key: str  # the current embedding's key: probe and place the new samples there
    n: int = 8
    seed: int = 0
    class_id: int | None = None
    layer: str = ""
    mask: str = ""  # '0'/'1' row-major over the layer's map; '' = everywhere
    channels: tuple[int, ...] = ()  # () = all
    sigma: float | None = None


@dataclass(frozen=True)
class JobCommand:
    """One step of a job: a name for the page and the argument list it runs."""

    name: str
    argv: tuple[str, ...]


def layer_map(layer: str) -> tuple[int, int] | None:
    """The spatial size a layer's name states (`enc.8x8_block2` -> (8, 8)), else None."""
    found = _LAYER_MAP.search(layer)
    return (int(found.group(1)), int(found.group(2))) if found else None


def t2i_refusal(parents: Sequence[str], key: str) -> str | None:
    """Why an edit cannot run on these samples or this key because they belong to a text-to-image model (None: they do not).

    The edits (`ingest edit`) rerun the ImageNet generator from a sample's seed and class;
    a text-to-image sample (id ``t2i/<name>/...``) or key (layer ``<name>.<module>``) has neither.
    """
    t2i = next((p for p in parents if p.startswith(f"{T2I_GROUP}/")), None)
    if t2i is not None:
        return f"{t2i} is a text-to-image sample; edits rerun the ImageNet generator, which did not make it"
    try:
        layer = parse_key(key).layer
    except ValueError:
        return None
    if split_t2i_layer(layer) is not None:
        return f"{key} is a text-to-image model's key; edits probe and place with the ImageNet generator's layers"
    return None


def build_commands(request: JobRequest, facts: LakeFacts, python: str = sys.executable) -> list[JobCommand]:
    """The argument lists of a job (the edit, then the placement), or JobRefused naming the problem.

    Pure apart from the lookups in `facts`: what comes from the page is only ever a value
    checked against the lake (a sample id that exists, a known layer, numbers in range).
    """
    op = request.operation
    if op not in OPERATIONS:
        raise JobRefused(f"unknown operation {op!r}; expected one of {', '.join(OPERATIONS)}")
    parents = tuple(dict.fromkeys(request.parents))
    if not parents:
        raise JobRefused(f"{op}: select a sample first")
    if len(parents) > MAX_PARENTS:
        raise JobRefused(f"{op}: at most {MAX_PARENTS} samples, not {len(parents)}")
    why = t2i_refusal(parents, request.key)
    if why is not None:
        raise JobRefused(f"{op}: {why}")
    missing = [p for p, ok in zip(parents, facts.sample_exists(parents)) if not ok]
    if missing:
        raise JobRefused(f"{op}: no sample {missing[0]!r} in the lake")
    sources = facts.source_of(parents)
    if op == "from-real":
        if len(parents) != 1 or sources[0] != "real":
            raise JobRefused("from-real: select exactly one real sample")
    elif op in ("neighbours", "variations"):
        pass  # any samples: a blend recomputes their outputs at the layer; variations of a real one take its class
    elif any(s != "generated" for s in sources):
        raise JobRefused(f"{op}: needs generated samples (a real image has no seed to reuse)")
    if op == "interpolate" and len(parents) != 2:
        raise JobRefused(f"interpolate: select exactly two generated samples (the selection and one manual neighbour), not {len(parents)}")
    if op in ("regenerate", "variations", "class-swap") and len(parents) != 1:
        raise JobRefused(f"{op}: works on one sample, not {len(parents)}")
    if op == "neighbours" and len(parents) < 2:
        raise JobRefused("neighbours: select a sample and at least one manual neighbour to blend")
    if op == "neighbours" and sources[0] != "generated":
        raise JobRefused("neighbours: the selected sample must be a generated one (its noise and class start the pass)")
    args = ["--lake", str(facts.lake), "--from", ",".join(parents)]
    if op in ("variations", "interpolate"):
        low = 2 if op == "interpolate" else 1  # interpolation counts both ends
        if not (isinstance(request.n, int) and low <= request.n <= MAX_N):
            raise JobRefused(f"{op}: N must be between {low} and {MAX_N}, not {request.n}")
        args += ["--n", str(request.n)]
    if op == "variations":
        if not (isinstance(request.seed, int) and 0 <= request.seed <= MAX_SEED):
            raise JobRefused(f"{op}: the seed must be between 0 and {MAX_SEED}, not {request.seed}")
        args += ["--seed", str(request.seed)]
    if op == "class-swap":
        if request.class_id is None or not 0 <= int(request.class_id) < 1000:
            raise JobRefused(f"class-swap: the class must be an ImageNet class 0..999, not {request.class_id}")
        args += ["--class", str(int(request.class_id))]
    if op == "neighbours":
        args += _layer_args(request, facts)
    # from-real probes its sample at sigma; a neighbour blend probes its real samples there for their maps.
    if op == "from-real" or (op == "neighbours" and "real" in sources):
        sigma = request.sigma
        if sigma is None or not math.isfinite(sigma) or not 0 < sigma <= MAX_SIGMA:
            raise JobRefused(f"{op}: sigma must be in (0, {MAX_SIGMA:g}], not {sigma}")
        args += ["--sigma", repr(float(sigma))]
    commands = []
    if op == "regenerate":
        commands.append(JobCommand("regenerate", (python, "-m", "ingest", "edit", op, *args)))
        return commands  # writes no sample: nothing to place
    if request.key not in facts.keys:
        raise JobRefused(f"{op}: the current embedding's key {request.key!r} has no stored PCA to place new samples in")
    commands.append(JobCommand(op, (python, "-m", "ingest", "edit", op, *args, "--probe", request.key)))
    commands.append(JobCommand("place", (python, "-m", "analysis", "place", "--lake", str(facts.lake), "--key", request.key)))
    return commands


def _layer_args(request: JobRequest, facts: LakeFacts) -> list[str]:
    if request.layer not in facts.layers:
        raise JobRefused(f"neighbours: unknown layer {request.layer!r}; the lake has {', '.join(facts.layers) or 'none'}")
    args = ["--layer", request.layer]
    if request.mask:
        size = layer_map(request.layer)
        cells = size[0] * size[1] if size else None
        if cells is None or len(request.mask) != cells or set(request.mask) - {"0", "1"}:
            raise JobRefused(f"neighbours: the mask must be {cells or 'one per map cell'} characters of 0/1 for {request.layer}")
        if "1" not in request.mask:
            raise JobRefused("neighbours: the mask selects no cell; tick at least one (or none for everywhere)")
        if "0" in request.mask:  # all ones is everywhere: the same edit, the same ids
            args += ["--mask", request.mask]
    if request.channels:
        limit = facts.channels.get(request.layer)
        bad = [c for c in request.channels if c < 0 or (limit is not None and c >= limit)]
        if bad:
            raise JobRefused(f"neighbours: channel {bad[0]} is not a channel of {request.layer} (0..{(limit or 1) - 1})")
        args += ["--channels", ",".join(str(c) for c in sorted(set(request.channels)))]
    return args


def parse_channels(text: str) -> tuple[int, ...]:
    """'0,5,9' or '0-3,7' -> (0, 5, 9) / (0, 1, 2, 3, 7); JobRefused (one line) otherwise."""
    found: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        low, dash, high = part.partition("-")
        try:
            start, end = int(low), int(high) if dash else int(low)
        except ValueError:
            raise JobRefused(f"channels: {part!r} is not a channel number or a range like 0-3") from None
        if start < 0 or end < start or end - start > 4096:
            raise JobRefused(f"channels: {part!r} is not a valid range")
        found.extend(range(start, end + 1))
    return tuple(dict.fromkeys(found))


# --------------------------------------------------------------------------- job state on disk
