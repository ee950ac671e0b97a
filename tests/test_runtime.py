"""`ramit.runtime.tune_allocator`: what every `ramit` command applies before torch allocates."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# A 64 MB tensor allocated, filled, freed and allocated again: how many pages the second one faults in.
REUSE = r"""
import json, os, resource, sys
if sys.argv[1] == "tuned":
    import ramit.cli  # noqa: F401  (the CLI module applies the settings on import)
import torch
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
x = torch.empty(16 * 2**20); x.fill_(1.0); del x
before = faults()
y = torch.empty(16 * 2**20); y.fill_(2.0)
print(json.dumps({"faults": faults() - before, "thp": os.environ.get("THP_MEM_ALLOC_ENABLE")}))
"""


def _run(mode: str, **env) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in ("THP_MEM_ALLOC_ENABLE", "RAMIT_ALLOCATOR")}
    out = subprocess.run([sys.executable, "-c", REUSE, mode], env={**base, **env}, capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


LINUX = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt and THP are Linux settings")


@LINUX
def test_cli_keeps_freed_activations_instead_of_faulting_them_in_again():
    default, tuned = _run("default"), _run("tuned")
    pages = 64 * 2**20 // 4096
    # glibc as shipped serves 64 MB with a fresh mmap: every page faults again (16384 of 4 kB).
    assert default["faults"] > pages // 2, default
    # Tuned, the block comes back from the heap: (almost) no page is faulted in again (measured: 0-600).
    assert tuned["faults"] < pages // 10, tuned
    assert tuned["thp"] == "1"


@LINUX
def test_opt_out_leaves_the_process_alone():
    r = _run("tuned", RAMIT_ALLOCATOR="default")
    assert r["thp"] is None
    assert r["faults"] > 64 * 2**20 // 4096 // 2
