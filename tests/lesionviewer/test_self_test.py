"""``lesionviewer --self-test`` from source: offscreen and under a real X server (Xvfb).

The machinery is tested with small randomly initialised model folders and a synthetic
photo pair made here (training's synthesis); the shipped models and bundled demo photos
are checked by ``test_self_test_with_shipped_files`` once they exist.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO_ROOT
from tests.lesionviewer.app_samples import tiny_model_folders

STEP_NAMES = ("models", "photos", "detect", "closeup", "track", "store", "views", "report")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Tiny random model folders and a small synthetic visit pair (one body site)."""
    from core.io import save_rgb
    from training.synthesis.detection import SynthConfig
    from training.synthesis.pairs import make_pair_sample

    root = tmp_path_factory.mktemp("self_test_inputs")
    tiny_model_folders(root / "models")
    config = SynthConfig(
        width=320, height=240, lesion_source="procedural", body_pool=0, lesion_pool=0
    )
    pair = make_pair_sample(0, 7, config)
    photos = root / "photos"
    photos.mkdir()
    save_rgb(photos / "visit1_back.jpg", pair.image_a)
    save_rgb(photos / "visit2_back.jpg", pair.image_b)
    return {"models": root / "models", "photos": photos}


def run_cli(args: list[str], env: dict[str, str], timeout: float = 120) -> tuple[int, str]:
    """Run ``python -m lesionviewer.cli ARGS`` from the checkout; (exit code, stdout+stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "lesionviewer.cli", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.returncode, done.stdout + done.stderr


def step_lines(output: str) -> dict[str, str]:
    """{step name: status} from the self-test's per-step lines."""
    found = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "self-test:" and parts[2] in STEP_NAMES:
            found[parts[2]] = parts[1]
    return found


def offscreen_env() -> dict[str, str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    env.pop("DISPLAY", None)
    return env


def self_test_args(inputs: dict[str, Path], out: Path) -> list[str]:
    return [
        "--device",
        "cpu",
        "--self-test",
        "--models",
        str(inputs["models"]),
        "--self-test-photos",
        str(inputs["photos"]),
        "--self-test-out",
        str(out),
    ]


def test_self_test_passes_offscreen(inputs, tmp_path):
    code, output = run_cli(self_test_args(inputs, tmp_path / "out"), offscreen_env())
    assert code == 0, output
    assert step_lines(output) == dict.fromkeys(STEP_NAMES, "ok"), output
    assert "Qt offscreen" in output
    for name in ("main_window", "photo_view", "compare_view"):
        assert (tmp_path / "out" / "views" / f"{name}.png").stat().st_size > 1000
    assert (tmp_path / "out" / "report" / "report.pdf").read_bytes().startswith(b"%PDF-")


@pytest.fixture
def xvfb_display():
    """A private Xvfb server on a free display number; yields DISPLAY (":N")."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb; .ci/run installs it)")
    read_fd, write_fd = os.pipe()
    server = subprocess.Popen(
        [xvfb, "-displayfd", str(write_fd), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as pipe:
            number = pipe.readline().strip()
        if not number:
            pytest.fail(f"Xvfb did not start (exit code {server.poll()})")
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_self_test_passes_under_xvfb(inputs, tmp_path, xvfb_display):
    env = dict(os.environ, DISPLAY=xvfb_display)
    env.pop("QT_QPA_PLATFORM", None)
    env.pop("WAYLAND_DISPLAY", None)
    code, output = run_cli(self_test_args(inputs, tmp_path / "out"), env)
    assert code == 0, output
    assert step_lines(output) == dict.fromkeys(STEP_NAMES, "ok"), output
    assert "Qt xcb" in output, output  # really drawn through the X server's platform plugin


def test_missing_models_fail_with_reason_and_other_steps_still_run(inputs, tmp_path):
    empty = tmp_path / "no_models"
    empty.mkdir()
    args = self_test_args(inputs, tmp_path / "out")
    args[args.index(str(inputs["models"]))] = str(empty)
    code, output = run_cli(args, offscreen_env())
    assert code == 1, output
    steps = step_lines(output)
    assert steps["models"] == "FAIL"
    assert steps["detect"] == steps["closeup"] == steps["track"] == "skip"
    assert steps["photos"] == steps["store"] == steps["views"] == steps["report"] == "ok"
    [summary] = [line for line in output.splitlines() if line.startswith("self-test: FAILED")]
    assert "no model" in summary and str(empty / "detector") in summary


def test_corrupt_weights_fail_the_sha256_check(inputs, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(inputs["models"], models)
    weights = models / "tracker" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    args = self_test_args(inputs, tmp_path / "out")
    args[args.index(str(inputs["models"]))] = str(models)
    code, output = run_cli(args, offscreen_env())
    assert code == 1, output
    models_line = next(line for line in output.splitlines() if " models " in line)
    assert "FAIL" in models_line and "SHA-256" in models_line and "tracker" in models_line


def test_grab_check_rejects_empty_and_uniform_images():
    from lesionviewer.self_test import StepFailed
    from lesionviewer.self_test_views import check_grab

    rng = np.random.default_rng(0)
    assert check_grab(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8), "noise") == "noise 80x64"
    with pytest.raises(StepFailed, match="uniform"):
        check_grab(np.full((64, 80, 3), 200, np.uint8), "grey")
    with pytest.raises(StepFailed, match="empty"):
        check_grab(np.zeros((0, 0, 3), np.uint8), "nothing")


def test_self_test_with_shipped_files(tmp_path):
    from core.resources import models_dir, resource_path

    missing = [
        str(p)
        for p in (models_dir() / "detector" / "model.json", models_dir() / "tracker" / "model.json")
        if not p.is_file()
    ]
    if not list(resource_path("demo").glob("visit2_*.jpg")):
        missing.append(str(resource_path("demo") / "visit2_<site>.jpg"))
    if missing:
        pytest.skip(f"shipped models / demo photos not in the checkout yet: {', '.join(missing)}")
    code, output = run_cli(["--device", "cpu", "--self-test"], offscreen_env(), timeout=300)
    assert code == 0, output
    assert step_lines(output) == dict.fromkeys(STEP_NAMES, "ok"), output
