"""How many CPU threads torch uses, and how its idle OpenMP threads wait.

torch's CPU kernels run on an OpenMP pool (libgomp on Linux). By default every worker of that
pool *spins* for a while after each parallel region instead of sleeping, and the pool has one
thread per core. On a machine whose cores other processes also want, the spinning threads
take the cores from the threads that have work (and from the other processes), so every
region waits for a descheduled thread: a job on a loaded 2-core machine ran 12x slower with
the default pool than with one thread (benchmarks/bench_threads.py measures it).

Our choice, made once per process by `configure_threads` (the loaders `models.load_generator`
and `models.t2i.load_t2i` call it, so every job that runs torch does):

- wait policy PASSIVE (``OMP_WAIT_POLICY``): an idle worker sleeps at once, so a busy machine
  costs a job its share of the cores and no more. libgomp reads the variable once, when torch
  loads it, so this module sets it on import (`models/__init__` imports it before torch), and
  only when the user has not set it;
- threads: ``OMP_NUM_THREADS`` when set (torch reads it too), else the CPUs this process may
  run on (``os.sched_getaffinity``; a container's or ``taskset``'s limit, not the host's).
  Never a function of the machine's momentary load: CPU results depend on the thread count
  in their last bits, and a job's samples must not depend on what else was running.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

WAIT_POLICY = "PASSIVE"


@dataclass(frozen=True)
class ThreadConfig:
    """What `configure_threads` chose: torch's thread count and the OpenMP wait policy in force."""

    threads: int
    source: str  # "OMP_NUM_THREADS" or "affinity" (the CPUs this process may use)
    wait_policy: str  # the OMP_WAIT_POLICY value, or "default" (unset)
    wait_policy_applied: bool  # False when torch was loaded before the policy was set (then it is libgomp's default)


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask where the OS has one, else os.cpu_count()."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def choose_threads(environ: dict[str, str] | None = None) -> tuple[int, str]:
    """(thread count, where it came from): a valid positive ``OMP_NUM_THREADS``, else `available_cpus`."""
    env = os.environ if environ is None else environ
    text = env.get("OMP_NUM_THREADS", "").split(",")[0].strip()  # OpenMP allows a per-level list: "4,2"
    if text.isdigit() and int(text) > 0:
        return int(text), "OMP_NUM_THREADS"
    return available_cpus(), "affinity"


def prefer_passive_wait() -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless the user chose a policy; True when it can still act
    (torch, which loads libgomp, is not imported yet)."""
    os.environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)
    return "torch" not in sys.modules


# On import: models/__init__ imports this module before torch, so libgomp starts with the policy.
_POLICY_BEFORE_TORCH = prefer_passive_wait()


_configured: ThreadConfig | None = None


def configure_threads() -> ThreadConfig:
    """Give torch the thread count of `choose_threads`, once per process (the wait policy was set when
    `models` was imported); later calls return the first call's choice and change nothing, so a
    ``torch.set_num_threads`` made after the first load stands.
    """
    global _configured
    if _configured is None:
        import torch

        threads, source = choose_threads()
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        _configured = ThreadConfig(threads=threads, source=source,
                                   wait_policy=os.environ.get("OMP_WAIT_POLICY", "default"),
                                   wait_policy_applied=_POLICY_BEFORE_TORCH)
    return _configured
