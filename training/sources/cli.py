"""`lesion-train sources`: read a lesion folder and write a contact sheet to check masks."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from training.sources.base import CLASS_NAMES, LesionPatch

TILE = 192


def _tile(patch: LesionPatch, caption: str) -> np.ndarray:
    """A TILE x TILE RGB tile of the patch with its mask outline and a caption."""
    h, w = patch.mask.shape
    factor = TILE / max(h, w)
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    image = cv2.resize(patch.image, size, interpolation=cv2.INTER_AREA)
    mask = cv2.resize(patch.mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    tile = np.full((TILE, TILE, 3), 40, np.uint8)
    y0, x0 = (TILE - size[1]) // 2, (TILE - size[0]) // 2
    tile[y0 : y0 + size[1], x0 : x0 + size[0]] = image
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    colour = (255, 60, 60) if patch.label == 2 else (255, 230, 0)
    cv2.drawContours(tile, contours, -1, colour, 1, offset=(x0, y0))
    cv2.rectangle(tile, (0, TILE - 18), (TILE, TILE), (0, 0, 0), -1)
    cv2.putText(tile, caption[:30], (3, TILE - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255,) * 3, 1)
    return tile


def contact_sheet(patches: list[tuple[LesionPatch, str]], columns: int = 8) -> np.ndarray:
    """Tiles of (patch, caption) in rows of ``columns`` -> RGB uint8 sheet."""
    tiles = [_tile(p, c) for p, c in patches]
    while len(tiles) % columns:
        tiles.append(np.zeros((TILE, TILE, 3), np.uint8))
    rows = [np.hstack(tiles[i : i + columns]) for i in range(0, len(tiles), columns)]
    return np.vstack(rows)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preview", type=Path, required=True, help="contact sheet PNG to write")
    parser.add_argument("--folder", type=Path, help="lesion folder (default: ../shared/data PAD)")
    parser.add_argument("--n", type=int, default=64, help="number of lesions to show")
    parser.add_argument("--procedural", action="store_true", help="show procedural lesions")
    parser.add_argument("--seed", type=int, default=0, help="seed of procedural lesions")
    parser.add_argument("--diameter", type=int, default=64, help="procedural diameter (px)")
    parser.add_argument("--cache", type=Path, help="mask cache folder")
    parser.add_argument("--skip-bad", action="store_true", help="skip bad rows and photos")


def run(args: argparse.Namespace) -> int:
    from core.io import save_rgb

    patches: list[tuple[LesionPatch, str]] = []
    if args.procedural:
        from training.sources.procedural_lesions import KINDS, generate_lesion

        for i in range(args.n):
            rng = np.random.default_rng([args.seed, i])
            patch = generate_lesion(rng, kind=KINDS[i % len(KINDS)], diameter_px=args.diameter)
            patches.append((patch, f"{KINDS[i % len(KINDS)]} {CLASS_NAMES[patch.label][:3]}"))
    else:
        from training.sources.bank import PAD_UFES_DEV
        from training.sources.real_lesions import read_lesion_folder

        folder = read_lesion_folder(
            args.folder or PAD_UFES_DEV, skip_bad=args.skip_bad, cache_folder=args.cache
        )
        for file, reason in folder.skipped:
            print(f"skipped {Path(file).name}: {reason}")
        for i in range(min(args.n, len(folder))):
            patch = folder[i]
            patches.append((patch, f"{i} {patch.diagnosis} {Path(patch.source).stem}"))
        print(f"{len(folder)} lesions ({folder.layout}), {len(folder.skipped)} skipped")
    args.preview.parent.mkdir(parents=True, exist_ok=True)
    save_rgb(args.preview, contact_sheet(patches))
    print(f"wrote {args.preview} ({len(patches)} lesions)")
    return 0
