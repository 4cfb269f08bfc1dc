"""numpy's BLAS held to one thread, and given back, also when blocks overlap (core.blas)."""

from __future__ import annotations

import threading

import numpy as np
from threadpoolctl import threadpool_info

from core.blas import single_threaded_blas


def _blas_threads() -> list[int]:
    np.dot(np.ones((4, 4)), np.ones((4, 4)))  # numpy's BLAS is loaded
    return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]


def test_overlapping_blocks_on_two_threads_restore_the_original_limit() -> None:
    before = _blas_threads()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, list[int]] = {}

    def first() -> None:
        with single_threaded_blas():
            first_in.set()
            second_in.wait(5)
            seen["first"] = _blas_threads()
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with single_threaded_blas():
            second_in.set()
            first_out.wait(5)  # the first block has ended: this one still holds the limit
            seen["second"] = _blas_threads()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert all(set(seen[name]) <= {1} for name in ("first", "second"))
    assert _blas_threads() == before  # given back once both are done
