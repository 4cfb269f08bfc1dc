"""Process-wide memory settings for full-resolution analysis.

numpy advises the kernel to back every large array with transparent huge pages. Where the
kernel's THP defrag setting is "madvise" (a common default), each first touch of such an
array may stall in synchronous memory compaction, and in a process that has already
allocated and freed a few GB (tiled inference, a 12 MP photo after another) the stalls
grow faster than the array: a 24 MP photo took 4.7x the time of a 6 MP one instead of
about 4x (``lesionviewer bench``). Analysis allocates a few arrays of hundreds of MB per
photo and gains nothing from huge pages, so the advice is turned off for the process.
"""

from __future__ import annotations

import os

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
