"""Process-wide memory settings for CPU runs, applied by the CLI before torch allocates anything.

Why: a RAMiT forward on a full-size test image allocates and frees gigabytes of activations (a 512x512
map of 64 channels is 64 MB; one full-resolution block makes about 2 GB of them). glibc serves every
allocation over 32 MB with a fresh `mmap` and returns it on free, so each forward faults in and zeroes
every page again: the released RAMiT-1 CDN on one 500x500 Kodak image (2 threads) spent 14 s in the
kernel for 13 s of compute, 6 million page faults per image.

Two settings remove most of it (benchmarks/bench_alloc.py measures them):

* `THP_MEM_ALLOC_ENABLE=1`: torch aligns allocations over 2 MB to huge pages and asks for transparent
  huge pages, so a fault maps 2 MB instead of 4 kB;
* glibc `mallopt`: no `mmap` for large blocks (`M_MMAP_MAX=0`) and no trimming of the heap
  (`M_TRIM_THRESHOLD`), so freed activations are reused by the next forward instead of going back to
  the kernel. The cost is a resident set that stays at the run's peak (about 1.7x on that image).

`RAMIT_ALLOCATOR=default` leaves both alone (for a comparison, or a platform where they misbehave).
"""

from __future__ import annotations

import ctypes
import os

# glibc's mallopt parameter numbers (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4

_applied: dict[str, bool] = {}


def tune_allocator() -> dict[str, bool]:
    """Apply the settings above once per process; returns what was applied (empty when opted out)."""
    if _applied or os.environ.get("RAMIT_ALLOCATOR", "tuned") == "default":
        return _applied
    # Read by torch once, at its first large allocation: so this must run before any tensor exists.
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    _applied["thp"] = os.environ["THP_MEM_ALLOC_ENABLE"] == "1"
    try:
        # The process's own symbols include libc's (find_library would run ldconfig in every job).
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to tune
        mallopt = None
    if mallopt is not None:
        _applied["mallopt"] = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))  # an int: 2 GB
    return _applied


def reapply_env() -> None:
    """For a process whose environment was replaced after `tune_allocator` (a preload server's job,
    ramit/preload.py): the heap settings are the process's and stay, the THP request is an environment
    variable and is set again (unless the new environment opts out)."""
    if _applied and os.environ.get("RAMIT_ALLOCATOR", "tuned") != "default":
        os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
