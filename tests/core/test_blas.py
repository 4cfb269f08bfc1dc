"""numpy's BLAS held to one thread, and given back, also when blocks overlap (core.blas)."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_info

from core.blas import single_threaded_blas


def _blas_threads() -> list[int]:
    np.dot(np.ones((4, 4)), np.ones((4, 4)))  # numpy's BLAS is loaded
    return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]


def test_overlapping_blocks_restore_the_original_limit_when_the_last_ends() -> None:
    """Two analyses on two workers overlap: A enters, B enters, A ends, B ends. The limit
    must hold until B ends, then come back (entered and left here in that order)."""
    before = _blas_threads()
    first, second = single_threaded_blas(), single_threaded_blas()
    first.__enter__()
    second.__enter__()
    assert set(_blas_threads()) <= {1}
    first.__exit__(None, None, None)
    assert set(_blas_threads()) <= {1}  # the second block still holds it
    second.__exit__(None, None, None)
    assert _blas_threads() == before
