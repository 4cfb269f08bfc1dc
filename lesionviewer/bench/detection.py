"""Detection speed and memory (issue 3 figures), medians of repeated runs.

(a) FLOP/s of the detector's forward pass on tiles vs a large float32 matrix product
    (sgemm, 2048^3) on the same device, measured interleaved in the same process;
(b) a synthetic 12-megapixel photo analysed end to end (JPEG decode, tiled inference,
    post-processing, JSON) in a fresh subprocess: median time and peak resident memory
    (VmHWM high-water of that process, which includes Python and torch);
(c) time of a 24 MP photo over a 6 MP photo (same subprocess);
(d) the sliding-window baseline (``core.models.patch_classifier``, one patch per stride
    position) on the same 12 MP photo: its per-patch time measured on real patches of
    the photo, multiplied by the number of positions, over the detector's time from (b);
    the two are timed back to back in rounds and the speed-up is the median of the rounds'
    ratios;
(e) the same for a 12 MP body photo (:func:`demo_body_photo`). The synthetic photo of (b)
    is a worst case: its coloured noise has no skin's texture, and the detector leaves
    over a hundred regions on it, each cropped and verified; a body photo has the lesions
    a body has. The baseline's time does not depend on the content. The target is checked
    on (b), as it always was; (e) is reported beside it.
The detector timed is ``--model`` if given, else the shipped one, else (no trained
weights yet) a randomly initialised one of the default architecture: speed does not
depend on the weights' values.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.device import native_bfloat16
from lesionviewer.bench import BenchOptions, Measurement

SECTION = "detection"
SGEMM_N = 2048
#: sizes (width, height) of the synthetic photos
SIZE_12MP = (4000, 3000)
SIZE_6MP = (3000, 2000)
SIZE_24MP = (6000, 4000)
#: batches of the sliding-window baseline timed per round (median): one batch is ~40 ms
WINDOW_BATCHES = 5


def synthetic_photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Skin-toned photo with soft shading, grain and a few dozen dark spots: uint8 (H, W, 3)."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.normal(0.0, 1.0, (max(2, height // 64), max(2, width // 64), 3)).astype(np.float32)
    shade = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    base = np.array([205.0, 160.0, 135.0], np.float32)
    image = np.clip(base + 12.0 * shade, 0, 255).astype(np.uint8)
    for _ in range(40):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        radius = int(rng.integers(3, 60))
        colour = tuple(int(c) for c in rng.integers(40, 120, 3))
        cv2.circle(image, (x, y), radius, colour, -1, cv2.LINE_AA)
    grain = rng.integers(-6, 7, (height, width, 1), dtype=np.int16)
    return np.clip(image.astype(np.int16) + grain, 0, 255).astype(np.uint8)


def demo_body_photo(width: int, height: int) -> np.ndarray:
    """The demo's four body photos (1024x768 each: two backs, two legs) as one photo of
    2 x 2 panels, each resized (bicubic) to (width / 2, height / 2): uint8 (H, W, 3) RGB."""
    import cv2

    from core.io import load_photo
    from core.resources import resource_path

    names = ("visit1_back", "visit1_left_leg", "visit2_back", "visit2_left_leg")
    half = (width // 2, height // 2)
    panels = [
        cv2.resize(load_photo(resource_path("demo", f"{name}.jpg")), half,
                   interpolation=cv2.INTER_CUBIC)
        for name in names
    ]  # fmt: skip
    photo = np.zeros((height, width, 3), np.uint8)
    photo[: 2 * half[1], : 2 * half[0]] = np.vstack([np.hstack(panels[:2]), np.hstack(panels[2:])])
    return photo


def _median_time(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _model_folder(options: BenchOptions, scratch: Path) -> tuple[Path, str]:
    """The detector folder to time and a note saying which it is."""
    from core.model_folder import save_model_folder
    from core.models import build_model
    from core.resources import models_dir

    if options.model:
        return Path(options.model), f"model {options.model}"
    shipped = models_dir() / "detector"
    if (shipped / "model.json").is_file():
        return shipped, "shipped detector"
    import torch

    torch.manual_seed(0)
    folder = scratch / "random-detector"
    save_model_folder(
        folder,
        build_model("lesion_fcn"),
        arch="lesion_fcn",
        arch_kwargs={},
        meta={"name": "untrained-lesion_fcn", "version": "bench"},
    )
    return folder, "untrained default lesion_fcn (no shipped weights yet)"


def _flops_ratio(options: BenchOptions, folder: Path, note: str) -> list[Measurement]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from core.analyzer import Analyzer
    from core.tiling import default_batch_size

    analyzer = Analyzer.load(options.device, detector=folder, precision="float32")
    device = analyzer.device
    model = analyzer._detector  # noqa: SLF001 (the prepared, BatchNorm-folded network)
    tile = analyzer.tile_size
    batch_size = analyzer.batch_size or default_batch_size(device.type == "cuda", tile, tile)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    x = torch.rand(batch_size, 3, tile, tile, device=device).contiguous(
        memory_format=torch.channels_last
    )
    a = torch.randn(SGEMM_N, SGEMM_N, device=device)
    b = torch.randn(SGEMM_N, SGEMM_N, device=device)
    use_amp = device.type == "cuda"

    def forward() -> None:
        with torch.autocast(device_type=device.type, enabled=use_amp):
            model.logits_lowres(x)

    # FLOPs on the plain path (autograd on, so no fused oneDNN kernels that the counter
    # cannot see): the same convolutions, counted as 2 x multiply-adds
    with FlopCounterMode(display=False) as counter:
        forward()
    flops = counter.get_total_flops()
    with torch.inference_mode():
        for _ in range(3):  # warm up: oneDNN/cuDNN kernels, thread pools
            forward()
            torch.mm(a, b)
        sync()
        net_times, mm_times = [], []
        for _ in range(max(3, options.repeats)):  # interleaved: same load on both
            net_times.append(_median_time(forward, 1, sync))
            mm_times.append(_median_time(lambda: torch.mm(a, b), 1, sync))
    sgemm = 2 * SGEMM_N**3 / statistics.median(mm_times)
    network = flops / statistics.median(net_times)
    ratio = network / sgemm
    params = sum(p.numel() for p in model.parameters())
    tiles = f"{batch_size} tiles of {tile}x{tile}"
    return [
        Measurement(SECTION, "sgemm FLOP/s", sgemm / 1e9, "GFLOP/s", note=f"{SGEMM_N}^3 fp32"),
        Measurement(
            SECTION, "detector forward FLOP/s", network / 1e9, "GFLOP/s",
            note=f"{tiles}, {flops / 1e9:.1f} GFLOP/batch, {params} params, {note}",
        ),
        Measurement(
            SECTION, "forward / sgemm FLOP/s", ratio, "ratio", ">= 0.40", ratio >= 0.40,
            note="medians of interleaved runs",
        ),
    ]  # fmt: skip


def _child(config: dict) -> dict:
    """Runs in a fresh process: end-to-end timings, peak memory, baseline timings."""
    import torch

    from core.analyzer import Analyzer
    from core.io import load_photo
    from lesionviewer.commands.analyze import detection_json

    # the figures in float32, whatever LESIONVIEWER_PRECISION says; bfloat16 below
    analyzer = Analyzer.load(config["device"], detector=config["model"], precision="float32")
    out: dict = {"rss_after_load_mb": _peak_rss_mb()}
    paths = {key: Path(path) for key, path in config["photos"].items()}
    sync = torch.cuda.synchronize if analyzer.device.type == "cuda" else (lambda: None)

    def analyse(path: Path) -> int:
        detection = analyzer.detect(load_photo(path))
        json.dumps(detection_json(detection))
        return len(detection.lesions)

    analyse(paths["12mp"])  # warm up, then the memory high-water of one more analysis
    out["regions_12mp"] = analyse(paths["12mp"])
    out["peak_rss_12mp_mb"] = _peak_rss_mb()
    window, batch, positions, out["window_note"] = _sliding_window_pass(
        config["device"], load_photo(paths["12mp"])
    )
    window()
    out["regions_body"] = analyse(paths["body"])
    t12, tw, tbody, speedups, speedups_body = [], [], [], [], []
    for _ in range(config["pair_repeats"]):
        # back to back, so that all see the same load on a shared machine; the speed-up is
        # the median of the per-round ratios, which a slow spell of the machine cancels out of
        t12.append(_median_time(lambda: analyse(paths["12mp"]), 1, sync))
        tw.append(_median_time(window, WINDOW_BATCHES, lambda: None) / batch * positions)
        tbody.append(_median_time(lambda: analyse(paths["body"]), 1, sync))
        speedups.append(tw[-1] / t12[-1])
        speedups_body.append(tw[-1] / tbody[-1])
    out["t_12mp"] = statistics.median(t12)
    out["t_window"] = statistics.median(tw)
    out["speedup"] = statistics.median(speedups)
    out["t_body"] = statistics.median(tbody)
    out["speedup_body"] = statistics.median(speedups_body)
    analyse(paths["6mp"])
    analyse(paths["24mp"])
    t6, t24 = [], []
    for _ in range(config["repeats"]):
        t6.append(_median_time(lambda: analyse(paths["6mp"]), 1, sync))
        t24.append(_median_time(lambda: analyse(paths["24mp"]), 1, sync))
    out["t_6mp"], out["t_24mp"] = statistics.median(t6), statistics.median(t24)
    if config["bfloat16"]:
        # the opt-in bfloat16 network (core.device.choose_precision), timed against float32
        # in rounds, after the memory figure (it holds a second copy of the network)
        fast = Analyzer.load(config["device"], detector=config["model"], precision="bfloat16")
        fast.detect(load_photo(paths["12mp"]))
        t32, t16 = [], []
        for _ in range(config["repeats"]):
            t32.append(_median_time(lambda: analyse(paths["12mp"]), 1, sync))
            start = time.perf_counter()
            json.dumps(detection_json(fast.detect(load_photo(paths["12mp"]))))
            t16.append(time.perf_counter() - start)
        out["t_12mp_bf16"] = statistics.median(t16)
        out["bf16_gain"] = statistics.median([a / b for a, b in zip(t32, t16, strict=True)])
    return out


def _run_child(options: BenchOptions, folder: Path, scratch: Path, sizes: dict) -> dict:
    """Write the synthetic photos as JPEG here, then time them in a fresh process."""
    from core.io import save_rgb

    photos = {}
    for key, (w, h) in sizes.items():
        photos[key] = str(scratch / f"{key}.jpg")
        save_rgb(photos[key], synthetic_photo(w, h, seed=1))
    photos["body"] = str(scratch / "body.jpg")
    save_rgb(photos["body"], demo_body_photo(*sizes["12mp"]))
    config = {
        "device": options.device,
        "model": str(folder),
        "photos": photos,
        "repeats": max(1, min(options.repeats, 5)),
        "bfloat16": _cpu_run(options) and native_bfloat16(),
        "pair_repeats": max(3, options.repeats),
    }
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-m", __name__, json.dumps(config)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"bench subprocess failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _sliding_window_pass(
    device_name: str, image: np.ndarray
) -> tuple[Callable[[], None], int, int, str]:
    """A timed unit of the sliding-window baseline over ``image``.

    Returns (forward of one batch of real patches of the photo, patches per batch,
    patch positions of the whole photo, note). The whole pass is projected as
    batch time / batch size x positions (patch extraction not counted, which favours
    the baseline).
    """
    import torch

    from core.analyzer import prepare_for_inference
    from core.device import choose_device
    from core.models import build_model
    from core.models.patch_classifier import DEFAULT_PATCH_SIZE, DEFAULT_STRIDE, window_grid

    device = choose_device(device_name)
    torch.manual_seed(0)
    model = prepare_for_inference(build_model("patch_cnn"), device)
    rows, cols = window_grid(*image.shape[:2])
    batch, half, step = 256, DEFAULT_PATCH_SIZE // 2, DEFAULT_STRIDE
    strip = np.pad(image[: 4 * step + 2 * half], ((half, half), (half, half), (0, 0)))
    patches = np.stack(
        [
            strip[step * (k // 64) : step * (k // 64) + DEFAULT_PATCH_SIZE,
                  step * (k % 64) : step * (k % 64) + DEFAULT_PATCH_SIZE]
            for k in range(batch)
        ]
    )  # fmt: skip
    x = torch.from_numpy(patches).permute(0, 3, 1, 2).to(device).float().div_(255)
    use_amp = device.type == "cuda"
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def forward() -> None:
        with torch.inference_mode(), torch.autocast(device_type=device.type, enabled=use_amp):
            model(x)
        sync()

    note = (
        f"{rows * cols} patches of {DEFAULT_PATCH_SIZE} px at stride {step}; "
        f"projected from timed batches of {batch} real patches, interleaved with the detector"
    )
    return forward, batch, rows * cols, note


def _cpu_run(options: BenchOptions) -> bool:
    """Whether the bench's networks run on the CPU (not CUDA)."""
    from core.device import choose_device

    return getattr(choose_device(options.device), "type", "cpu") == "cpu"


def _peak_rss_mb() -> float:
    """High-water resident memory of this process in MB (VmHWM: not inherited over fork)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(options: BenchOptions) -> list[Measurement]:
    """All detection figures (see the module docstring)."""
    sizes = {"12mp": SIZE_12MP, "6mp": SIZE_6MP, "24mp": SIZE_24MP}
    if options.quick:
        sizes = {"12mp": (2000, 1500), "6mp": (1500, 1000), "24mp": (3000, 2000)}
    results: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="lv-bench-") as tmp:
        scratch = Path(tmp)
        folder, note = _model_folder(options, scratch)
        results += _flops_ratio(options, folder, note)
        child = _run_child(options, folder, scratch, sizes)
        mp = sizes["12mp"][0] * sizes["12mp"][1] / 1e6
        results.append(
            Measurement(SECTION, f"{mp:.0f} MP photo end to end", child["t_12mp"], "s",
                        note="JPEG decode + tiled inference + post-processing + JSON (as "
                             "analyze --json: no full-resolution heatmap is made); "
                             f"synthetic photo, {child['regions_12mp']} regions")
        )  # fmt: skip
        peak = child["peak_rss_12mp_mb"]
        results.append(
            Measurement(
                SECTION, f"{mp:.0f} MP peak memory", peak, "MB", "<= 1536", peak <= 1536,
                note=f"VmHWM of a fresh process; {child['rss_after_load_mb']:.0f} MB "
                "after imports and model load",
            )
        )  # fmt: skip
        scaling = child["t_24mp"] / child["t_6mp"]
        results.append(
            Measurement(
                SECTION, "24 MP / 6 MP time", scaling, "ratio", "3.5 - 4.5",
                3.5 <= scaling <= 4.5,
                note=f"{child['t_6mp']:.2f} s and {child['t_24mp']:.2f} s, interleaved medians",
            )
        )  # fmt: skip
        speedup = child["speedup"]
        results.append(Measurement(SECTION, "sliding-window baseline", child["t_window"], "s",
                                   note=child["window_note"]))  # fmt: skip
        results.append(
            Measurement(SECTION, "speed-up over sliding window", speedup, "x", ">= 30",
                        speedup >= 30,
                        note=f"on the same {mp:.0f} MP photo, same process; median of "
                        "per-round ratios; float32 both")
        )  # fmt: skip
        results.append(
            Measurement(SECTION, f"{mp:.0f} MP body photo end to end", child["t_body"], "s",
                        note=f"the demo's 4 body photos as 2 x 2 panels, "
                             f"{child['regions_body']} regions")
        )  # fmt: skip
        results.append(
            Measurement(SECTION, "speed-up over sliding window, body photo",
                        child["speedup_body"], "x",
                        note="baseline as above (its time does not depend on the content), "
                             "in the same rounds")
        )  # fmt: skip
        if "t_12mp_bf16" in child:
            results.append(
                Measurement(SECTION, f"{mp:.0f} MP photo end to end, bfloat16 (opt-in)",
                            child["t_12mp_bf16"], "s",
                            note=f"float32 / bfloat16 time {child['bf16_gain']:.2f} (rounds in "
                            "the same process; this CPU computes bfloat16 natively)")
            )  # fmt: skip
    return results


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))
