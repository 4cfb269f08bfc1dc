"""numpy's BLAS held to one thread where the caller spreads the work over the cores itself.

numpy's OpenBLAS starts a worker per core, and after each call its workers keep spinning
for a while, waiting for the next one. When the caller already runs one BLAS call per
core (the verifier's crops, :func:`core.verification.candidate_inputs`), those workers only
compete for the cores, and they go on competing with the next network pass afterwards: a
12 MP analysis took 1.036 s instead of 0.997 s (median of 8, the same process).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import ThreadpoolController

_lock = threading.Lock()
_controller: ThreadpoolController | None = None


def _blas_controller() -> ThreadpoolController:
    global _controller
    with _lock:
        if _controller is None:  # looks through the loaded libraries once (~10 ms)
            _controller = ThreadpoolController()
        return _controller


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Within the block, numpy's matrix products run on the calling thread alone."""
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield
