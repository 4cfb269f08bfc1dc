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
from typing import Any

from threadpoolctl import ThreadpoolController

_lock = threading.Lock()
_controller: ThreadpoolController | None = None
#: blocks now inside single_threaded_blas, and the limit they share
_holders = 0
_limit: Any = None


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Within the block, numpy's matrix products run on the calling thread alone.

    The limit is process-wide (it is the library's own setting): blocks on several threads
    share it, the first sets it and the last restores the original, so overlapping blocks
    cannot leave it set.
    """
    global _controller, _holders, _limit
    with _lock:
        if _holders == 0:
            if _controller is None:  # looks through the loaded libraries once (~10 ms)
                _controller = ThreadpoolController()
            _limit = _controller.limit(limits=1, user_api="blas")
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                _limit.restore_original_limits()
                _limit = None
