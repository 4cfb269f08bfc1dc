"""Contact sheets of body photos, for a person to check skin masks and moles by eye."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from core.io import save_rgb
from training.sources.base import BodyPhoto


def body_thumbnail(body: BodyPhoto, width: int = 384, *, outline: bool = True) -> np.ndarray:
    """One body as a (h, width, 3) uint8 RGB tile: the photo, the skin-mask outline in cyan,
    moles circled in magenta and a caption (source, mm/px)."""
    image = body.image
    scale = width / image.shape[1]
    height = max(1, int(round(image.shape[0] * scale)))
    tile = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    if outline:
        mask = cv2.resize(body.skin_mask.view(np.uint8), (width, height),
                          interpolation=cv2.INTER_NEAREST)  # fmt: skip
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(tile, contours, -1, (0, 255, 255), 1, cv2.LINE_AA)
        ids = np.unique(body.mole_instances)
        for ident in ids[ids > 0]:
            ys, xs = np.nonzero(body.mole_instances == ident)
            centre = (int(xs.mean() * scale), int(ys.mean() * scale))
            cv2.circle(tile, centre, 7, (255, 0, 255), 1, cv2.LINE_AA)
    caption = f"{body.source.removeprefix('procedural:')} {body.mm_per_px:.2f}mm/px"
    cv2.rectangle(tile, (0, height - 16), (width, height), (0, 0, 0), -1)
    cv2.putText(tile, caption[:60], (3, height - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.38,
                (255, 255, 255), 1, cv2.LINE_AA)  # fmt: skip
    return tile


def body_contact_sheet(
    bodies: Sequence[BodyPhoto],
    path: str | Path,
    *,
    columns: int = 4,
    tile_width: int = 384,
    outline: bool = True,
) -> Path:
    """Write a grid of body thumbnails (see :func:`body_thumbnail`) to ``path`` (PNG/JPEG)."""
    if not bodies:
        raise ValueError("no bodies to put on a contact sheet")
    tiles = [body_thumbnail(b, tile_width, outline=outline) for b in bodies]
    tile_h = max(t.shape[0] for t in tiles)
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * (tile_h + 4), columns * (tile_width + 4), 3), 40, np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        y, x = r * (tile_h + 4), c * (tile_width + 4)
        sheet[y : y + tile.shape[0], x : x + tile_width] = tile
    path = Path(path)
    save_rgb(path, sheet)
    return path
