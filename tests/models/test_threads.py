"""models.threads: the thread count and OpenMP wait policy every job's model loader sets."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from models.threads import available_cpus, choose_threads
from tests.models.conftest import REPO

PROBE = """
import json, os, sys
{before}
import models, torch
loaded = models.load_generator("tiny", device="cpu")
config = models.configure_threads()
print(json.dumps({{"policy": os.environ.get("OMP_WAIT_POLICY"), "threads": torch.get_num_threads(),
                  "config": [config.threads, config.source, config.wait_policy, config.wait_policy_applied]}}))
"""


def probe(env_extra: dict[str, str], before: str = "") -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", PROBE.format(before=before)], cwd=REPO, env={**env, **env_extra},
                         capture_output=True, text=True, check=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_thread_count_comes_from_omp_num_threads_else_the_affinity_mask():
    assert choose_threads({"OMP_NUM_THREADS": "3"}) == (3, "OMP_NUM_THREADS")
    assert choose_threads({"OMP_NUM_THREADS": "4,2"}) == (4, "OMP_NUM_THREADS")  # OpenMP's per-level list
    for bad in ("", "0", "many"):
        assert choose_threads({"OMP_NUM_THREADS": bad}) == (available_cpus(), "affinity")
    assert available_cpus() == len(os.sched_getaffinity(0))


def test_a_loaded_generator_runs_with_passive_waits_and_the_chosen_threads():
    found = probe({})
    assert found["policy"] == "PASSIVE" and found["threads"] == available_cpus()
    assert found["config"] == [available_cpus(), "affinity", "PASSIVE", True]
    # The user's choices win.
    found = probe({"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "ACTIVE"})
    assert found["policy"] == "ACTIVE" and found["threads"] == 1 and found["config"] == [1, "OMP_NUM_THREADS", "ACTIVE", True]
    # torch loaded before models: the policy cannot act any more, and configure_threads says so.
    assert probe({}, before="import torch")["config"][3] is False


def test_a_thread_count_set_after_the_first_load_stands():
    script = ("import models, torch\nmodels.load_generator('tiny', device='cpu')\ntorch.set_num_threads(1)\n"
              "models.load_generator('tiny', device='cpu')\nprint(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip() == "1"
