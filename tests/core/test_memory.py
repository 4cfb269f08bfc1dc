"""Process-wide memory settings (core.memory)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core import memory
from core.memory import MALLOC_ENV, NUMPY_HUGEPAGE_ENV, avoid_hugepage_stalls

multiarray = np._core.multiarray


@pytest.fixture
def restore_advice():
    before = multiarray._get_madvise_hugepage()
    yield
    multiarray._set_madvise_hugepage(before)


def test_huge_page_advice_is_turned_off(monkeypatch, restore_advice) -> None:
    monkeypatch.delenv(NUMPY_HUGEPAGE_ENV, raising=False)
    multiarray._set_madvise_hugepage(True)
    assert avoid_hugepage_stalls() is True
    assert multiarray._get_madvise_hugepage() is False


def test_a_users_explicit_choice_stands(monkeypatch, restore_advice) -> None:
    monkeypatch.setenv(NUMPY_HUGEPAGE_ENV, "1")
    multiarray._set_madvise_hugepage(True)
    assert avoid_hugepage_stalls() is False
    assert multiarray._get_madvise_hugepage() is True


#: run in a fresh process, so that its allocator starts from glibc's defaults
_CONV_FAULTS = """
import resource, sys
import torch
from core.memory import reuse_freed_memory
print(reuse_freed_memory() if sys.argv[1] == "reuse" else False)
torch.set_num_threads(1)
convs = [torch.nn.Conv2d(16 if i else 3, 16, 3, padding=1) for i in range(4)]
net = torch.nn.Sequential(*convs).eval()
x = torch.rand(1, 3, 384, 384)
with torch.inference_mode():
    net(x), net(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        net(x)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 5)
"""


def _faults_per_pass(mode: str) -> tuple[bool, int]:
    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}
    out = subprocess.run(
        [sys.executable, "-c", _CONV_FAULTS, mode],
        capture_output=True, text=True, check=True, env=env, cwd=Path(__file__).parents[2],
    ).stdout.split()  # fmt: skip
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="a glibc setting",
)
def test_freed_blocks_are_reused_instead_of_faulted_in_again() -> None:
    # a small network's layer outputs (9 MB, 2304 pages each) are freed and allocated again
    # every pass. With glibc's defaults a fresh process faults some of them in again on every
    # pass: usually about 9000 pages here, but glibc's adaptive threshold makes it vary from
    # one process to the next (a few hundred in some). With the setting no buffer is faulted
    # in again: under 100 pages a pass, a small fraction of one buffer.
    default_faults = _faults_per_pass("default")[1]
    in_force, reuse_faults = _faults_per_pass("reuse")
    assert in_force
    assert reuse_faults < 100 and reuse_faults < default_faults


def test_the_users_malloc_settings_stand(monkeypatch) -> None:
    monkeypatch.setattr(memory, "_reusing", None)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert memory.reuse_freed_memory() is False
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.setattr(memory, "_reusing", None)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536")
    assert memory.reuse_freed_memory() is False
