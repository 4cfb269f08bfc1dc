"""`lesion-train synth`: write a fixed synthetic dataset (detection photos or tracking pairs).

Writes the layout described in ``training.synthesis.store`` plus ``contact_sheet.png``,
shows a progress bar and prints the throughput. Output is bit-identical for the same
arguments, whatever ``--workers``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from training.synthesis import contact_sheet, store
from training.synthesis.detection import SynthConfig, make_detection_sample
from training.synthesis.pairs import make_pair_sample
from training.synthesis.sources import check_training_lesion_source

_STATE: dict = {}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", choices=("detection", "pairs"), required=True)
    parser.add_argument("--n", type=int, required=True, help="number of samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=768)
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    parser.add_argument(
        "--format", choices=("png", "jpg"), default="png", help="photo files (jpg: quality 95)"
    )
    parser.add_argument(
        "--lesions",
        default="default",
        help='lesion source: "default", "procedural" or a folder (these folders are for '
        "training: the held-out patients' lesions are not offered)",
    )
    parser.add_argument(
        "--bodies", default="procedural", help='body source: "procedural" or a folder'
    )
    parser.add_argument(
        "--body-pool",
        type=int,
        default=SynthConfig.body_pool,
        help="bodies made per seed and re-augmented for every sample (0: a new body for "
        "every sample; a network that sees few bodies learns their look-alikes by heart)",
    )
    parser.add_argument("--sheet", type=int, default=6, help="samples on the contact sheet")


def _work(index: int) -> dict:
    config, out, ext = _STATE["config"], _STATE["out"], _STATE["ext"]
    seed = _STATE["seed"]
    if _STATE["kind"] == "detection":
        return store.write_detection(out, index, make_detection_sample(index, seed, config), ext)
    return store.write_pair(out, index, make_pair_sample(index, seed, config), ext)


def _init_worker(config: SynthConfig, kind: str, out: Path, ext: str, seed: int) -> None:
    cv2.setNumThreads(1)  # one core per worker process
    _STATE.update(config=config, kind=kind, out=out, ext=ext, seed=seed)


def _sheet(out: Path, kind: str, entries: list[dict]) -> np.ndarray:
    if kind == "detection":
        items = [
            (
                store.read_rgb(out / e["image"]),
                store.read_label(out / e["instance_map"], np.uint16),
                e["lesions"],
            )
            for e in entries
        ]
        return contact_sheet.detection_sheet(items, columns=2 if len(items) > 1 else 1)
    tiles = [
        contact_sheet.pair_tile(
            store.read_rgb(out / e["image_a"]),
            store.read_rgb(out / e["image_b"]),
            store.read_label(out / e["instance_map_a"], np.uint16),
            store.read_label(out / e["instance_map_b"], np.uint16),
            e,
        )
        for e in entries
    ]
    return contact_sheet.pair_sheet(tiles)


def run(args: argparse.Namespace) -> int:
    if args.n < 1 or args.width < 64 or args.height < 64 or args.workers < 1 or args.body_pool < 0:
        print(
            "lesion-train synth: --n and --workers must be >= 1, --width/--height >= 64, "
            "--body-pool >= 0"
        )
        return 2
    check_training_lesion_source(args.lesions, args.out)
    config = SynthConfig(
        width=args.width,
        height=args.height,
        lesion_source=args.lesions,
        body_source=args.bodies,
        body_pool=args.body_pool,
    )
    out: Path = args.out
    store.make_dirs(out, args.kind)
    ext = ".jpg" if args.format == "jpg" else ".png"
    start = time.perf_counter()
    indices = range(args.n)
    bar = tqdm(total=args.n, unit="img" if args.kind == "detection" else "pair", desc="synth")
    if args.workers == 1:
        _init_worker(config, args.kind, out, ext, args.seed)
        entries = []
        for i in indices:
            entries.append(_work(i))
            bar.update()
    else:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(args.workers, _init_worker, (config, args.kind, out, ext, args.seed)) as pool:
            entries = []
            for entry in pool.imap(_work, indices, chunksize=1):
                entries.append(entry)
                bar.update()
    bar.close()
    elapsed = time.perf_counter() - start
    manifest = {
        "kind": args.kind,
        "seed": args.seed,
        "n": args.n,
        "config": asdict(config),
        "image_format": args.format,
        "flow_format": "npy float32 (H, W, 2), A pixel + flow = position in B"
        if args.kind == "pairs"
        else None,
        "samples": entries,
    }
    path = store.write_manifest(out, manifest)
    sheet = _sheet(out, args.kind, entries[: max(1, args.sheet)])
    sheet_path = out / "contact_sheet.png"
    cv2.imwrite(str(sheet_path), sheet[..., ::-1])
    rate = args.n / elapsed
    print(
        f"wrote {args.n} {args.kind} samples to {out} in {elapsed:.1f} s: {rate:.2f} per second "
        f"({rate / args.workers:.2f} per second per worker process)"
    )
    print(f"manifest: {path}\ncontact sheet: {sheet_path}")
    return 0
