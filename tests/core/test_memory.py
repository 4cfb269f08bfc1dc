"""Process-wide memory settings (core.memory)."""

from __future__ import annotations

import numpy as np
import pytest

from core.memory import NUMPY_HUGEPAGE_ENV, avoid_hugepage_stalls

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
