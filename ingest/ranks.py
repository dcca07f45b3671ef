"""Process ranks for `accelerate launch -m ingest ...` (or torchrun): who computes what, and how
results reach the one process that writes the lake.

Only rank 0 ever opens the lake writer (the lake has one writer lock). Other ranks
compute their share and hand it over with collective gathers, so the lake rows are
appended by one process in one order whatever the number of processes. Without a
launcher (WORLD_SIZE unset or 1) everything here is a no-op and accelerate is never
imported.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np


@dataclass
class Ranks:
    """This process's place among the processes of one job."""

    index: int = 0
    count: int = 1
    device: str | None = None  # the device the launcher assigned, if any
    state: Any = None  # accelerate.PartialState when distributed

    @property
    def is_main(self) -> bool:
        return self.index == 0

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value`, on every rank (any picklable object)."""
        if self.count == 1:
            return value
        from accelerate.utils import broadcast_object_list

        box = [value if self.is_main else None]
        broadcast_object_list(box, from_process=0)
        return box[0]

    def gather(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Concatenate every rank's equally shaped arrays along axis 0, in rank order."""
        if self.count == 1:
            return arrays
        import torch
        from accelerate.utils import gather

        device = self.state.device
        out = {}
        for name in sorted(arrays):  # the same order on every rank: collectives must match up
            tensor = torch.from_numpy(np.ascontiguousarray(arrays[name])).to(device)
            out[name] = gather(tensor).cpu().numpy()
        return out

    def close(self) -> None:
        """Leave the process group, on every rank after its last collective.

        A process that exits with the group still open tears gloo down during interpreter
        shutdown, and one of the two processes of the suite's launches sometimes aborted
        there ("terminate called without an active exception") on a loaded machine.
        """
        if self.count == 1:
            return
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def detect_ranks(device_flag: str | None) -> Ranks:
    """Join the launcher's process group when there is one (WORLD_SIZE > 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Ranks()
    import torch
    from accelerate import PartialState

    # Gloo on CPU: when asked for, or when there is no GPU to give each process.
    cpu = (device_flag or "auto").startswith("cpu") or not torch.cuda.is_available()
    state = PartialState(cpu=cpu)
    device = "cpu" if cpu else str(state.device)
    return Ranks(index=state.process_index, count=state.num_processes, device=device, state=state)


class Failure:
    """Sent from rank 0 instead of a plan when the job cannot start (the others then exit quietly)."""


class _Sliceable(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, index: slice, /) -> Any: ...


BlocksT = TypeVar("BlocksT", bound=_Sliceable)


def split_steps(blocks: BlocksT, blocks_per_rank: int, ranks: int) -> list[BlocksT]:
    """Consecutive groups of blocks (an array or a list of any block type), one group per write;
    rank r takes the r-th slice of each group. Each group is a slice of `blocks`, of its type."""
    per_step = blocks_per_rank * ranks
    return [blocks[i : i + per_step] for i in range(0, len(blocks), per_step)]
