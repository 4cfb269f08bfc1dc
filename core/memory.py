"""Process-wide memory settings for full-resolution analysis.

numpy advises the kernel to back every large array with transparent huge pages. Where the
kernel's THP defrag setting is "madvise" (a common default), each first touch of such an
array may stall in synchronous memory compaction, and in a process that has already
allocated and freed a few GB (tiled inference, a 12 MP photo after another) the stalls
grow faster than the array: a 24 MP photo took 4.7x the time of a 6 MP one instead of
about 4x (``lesionviewer bench``). Analysis allocates a few arrays of hundreds of MB per
photo and gains nothing from huge pages, so the advice is turned off for the process.

Second, glibc's malloc hands large freed blocks back to the kernel (blocks over its dynamic
mmap threshold are unmapped, the top of the heap is trimmed past 128 KB free), and every
reuse then faults the pages in again: 70-100 thousand page faults per 12 MP analysis, whose
network allocates and frees blocks of 1-30 MB per layer and tile. Keeping freed blocks for
reuse (:func:`reuse_freed_memory`) made a 12 MP analysis 1.21 s -> 1.05 s with the same
peak memory (655 MB), and steadied the sliding-window baseline of ``lesionviewer bench``,
whose time had depended on whether glibc's dynamic threshold happened to have grown: about
39 s with 8 thousand faults per batch, 30 s without (2 cores).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

import numpy as np

#: numpy's own switch; when a user has set it, their choice stands.
NUMPY_HUGEPAGE_ENV = "NUMPY_MADVISE_HUGEPAGE"


def avoid_hugepage_stalls() -> bool:
    """Turn off numpy's huge-page advice for new arrays (unless the user set
    ``NUMPY_MADVISE_HUGEPAGE``); returns whether the advice is now off. Idempotent."""
    multiarray = getattr(getattr(np, "_core", None), "multiarray", None) or getattr(
        getattr(np, "core", None), "multiarray", None
    )
    setter = getattr(multiarray, "_set_madvise_hugepage", None)
    getter = getattr(multiarray, "_get_madvise_hugepage", None)
    if setter is None or getter is None:  # a numpy without the switch: nothing to do
        return False
    if NUMPY_HUGEPAGE_ENV not in os.environ:
        setter(False)
    return not getter()


#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: blocks up to this come from the heap and are reused: the ceiling glibc's own dynamic
#: threshold may reach on 64-bit systems. Larger blocks (a whole photo) are still mapped and
#: unmapped one by one: keeping them too (a 1 GB threshold) raised a 12 MP analysis's peak
#: memory by 31 MB for no measurable gain (1.049 s against 1.05 s)
MMAP_THRESHOLD_BYTES = 32 << 20
#: free memory kept at the top of the heap before it is given back to the kernel
TRIM_THRESHOLD_BYTES = 1 << 30
#: the user's own malloc settings, which stand
MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")

_reusing: bool | None = None


def reuse_freed_memory() -> bool:
    """Have glibc's malloc keep freed blocks for reuse instead of returning them to the
    kernel (see the module docstring). Linux with glibc only, and not when the user set
    glibc's malloc variables or tunables; returns whether the setting is in force.
    Idempotent. The peak memory of an analysis is unchanged; between analyses the process
    keeps up to its peak instead of shrinking back.
    """
    global _reusing
    if _reusing is not None:
        return _reusing
    _reusing = False
    user_set = any(name in os.environ for name in MALLOC_ENV) or "glibc.malloc" in os.environ.get(
        "GLIBC_TUNABLES", ""
    )
    if not sys.platform.startswith("linux") or user_set:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 (glibc only: other libcs' mallopt differ)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # the mmap threshold first: setting the trim threshold alone freezes glibc's dynamic
    # mmap threshold at its 128 KB start, and every layer's blocks are then mapped afresh
    if mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1:
        _reusing = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    return _reusing
