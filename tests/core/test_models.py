"""Networks: registry, shapes, features for the tracker, BatchNorm folding."""

from __future__ import annotations

import pytest
import torch

from core.models import available, build_model
from core.models.detector import LesionFCN
from core.models.patch_classifier import PatchClassifier, window_grid

SMALL = {"widths": (16, 16, 32, 32), "depths": (1, 1, 1, 1), "decoder_widths": (16, 16, 16)}


def _randomise_batchnorm(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
            module.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=g) * 0.2)


def test_registry_builds_known_archs_and_rejects_unknown() -> None:
    assert {"lesion_fcn", "patch_cnn"} <= set(available())
    assert isinstance(build_model("lesion_fcn", **SMALL), LesionFCN)
    assert isinstance(build_model("patch_cnn"), PatchClassifier)
    with pytest.raises(KeyError, match="no_such_net"):
        build_model("no_such_net")
    with pytest.raises(TypeError):
        LesionFCN((16, 16, 32, 32))  # keyword-only constructor


def test_default_detector_size_is_trainable_on_cpu() -> None:
    params = sum(p.numel() for p in build_model("lesion_fcn").parameters())
    assert 200_000 <= params <= 1_500_000


@pytest.mark.parametrize("size", [(64, 96), (50, 77)])
def test_forward_gives_full_resolution_logits(size: tuple[int, int]) -> None:
    model = build_model("lesion_fcn", **SMALL).eval()
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        logits = model(x)
        low = model.logits_lowres(x)
    assert logits.shape == (2, 3, *size)
    assert low.shape[-2:] == (-(-size[0] // 32) * 8, -(-size[1] // 32) * 8)
    assert torch.isfinite(logits).all()


def test_features_at_strides_4_8_16() -> None:
    model = build_model("lesion_fcn", **SMALL).eval()
    with torch.no_grad():
        feats = model.features(torch.rand(1, 3, 128, 64))
    assert set(feats) == {"s4", "s8", "s16"}
    assert feats["s4"].shape == (1, 16, 32, 16)
    assert feats["s8"].shape == (1, 16, 16, 8)
    assert feats["s16"].shape == (1, 32, 8, 4)
    assert len(model.stages) == 4 and model.stem is not None


def test_normalisation_is_saved_as_buffers() -> None:
    keys = build_model("lesion_fcn", **SMALL).state_dict().keys()
    assert "normalize.mean" in keys and "normalize.std" in keys


@pytest.mark.parametrize("arch", ["lesion_fcn", "patch_cnn"])
def test_batchnorm_folding_keeps_outputs(arch: str) -> None:
    kwargs = SMALL if arch == "lesion_fcn" else {}
    model = build_model(arch, **kwargs).eval()
    _randomise_batchnorm(model, seed=3)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        model.fuse_for_inference()
        after = model(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)


def test_patch_classifier_and_window_grid() -> None:
    model = build_model("patch_cnn").eval()
    with torch.no_grad():
        assert model(torch.rand(5, 3, 64, 64)).shape == (5, 3)
    assert window_grid(100, 17, stride=8) == (13, 3)


def test_fine_branch_starts_as_the_doubled_stride_4_logits() -> None:
    coarse = build_model("lesion_fcn", **SMALL).eval()
    fine = build_model("lesion_fcn", **SMALL, fine_width=8).eval()
    missing, unexpected = fine.load_state_dict(coarse.state_dict(), strict=False)
    assert not unexpected and all(k.split(".")[0] in {"fine_stem", "up2", "fuse2", "head2"}
                                  for k in missing)  # fmt: skip
    assert (coarse.output_stride, fine.output_stride) == (4, 2)
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        low = fine.logits_lowres(x)
        doubled = torch.nn.functional.interpolate(
            coarse.logits_lowres(x), scale_factor=2, mode="bilinear", align_corners=False
        )
    assert low.shape == (1, 3, 32, 48)
    torch.testing.assert_close(low, doubled)


def test_batchnorm_and_normalisation_folding_keep_the_fine_branch() -> None:
    model = build_model("lesion_fcn", **SMALL, fine_width=8).eval()
    _randomise_batchnorm(model, seed=5)
    torch.nn.init.normal_(model.head2.weight, std=0.5)  # it starts at zero: make it count
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        before = model.logits_lowres(x)
        model.fuse_for_inference()
        after = model.logits_lowres(x)
    assert before.shape == (2, 3, 32, 32)
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)
