"""Contact sheets of synthetic data, for a person to check by eye.

Detection tiles show the photo with each lesion's outline (benign yellow, malignant red)
and its id; pair tiles show A | B with correspondence lines (green), new lesions in B
(cyan) and lesions gone from A (magenta). All images RGB uint8.
"""

from __future__ import annotations

import cv2
import numpy as np

BENIGN_RGB = (255, 215, 0)
MALIGNANT_RGB = (255, 40, 40)
LINE_RGB = (60, 230, 90)
NEW_RGB = (0, 230, 255)
GONE_RGB = (255, 0, 255)


def outline(
    image: np.ndarray,
    instance_map: np.ndarray,
    lesions: list[dict],
    *,
    colours: dict[int, tuple[int, int, int]] | None = None,
    numbers: bool = True,
) -> np.ndarray:
    """Draw each lesion's outline (dilated a little, so tiny ones stay visible) and its id.

    lesions: manifest-style dicts with "id", "label", "bbox", "centroid".
    colours: optional colour per id, overriding the class colour.
    """
    out = image.copy()
    for les in lesions:
        k = int(les["id"])
        x0, y0, x1, y1 = les["bbox"]
        pad = 4
        x0, y0 = max(0, x0 - pad), max(0, y0 - pad)
        sub = (instance_map[y0 : y1 + pad, x0 : x1 + pad] == k).astype(np.uint8)
        sub = cv2.dilate(sub, np.ones((5, 5), np.uint8))
        contours, _ = cv2.findContours(sub, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        colour = (colours or {}).get(k, MALIGNANT_RGB if les["label"] == 2 else BENIGN_RGB)
        cv2.drawContours(out, contours, -1, colour, 1, offset=(x0, y0))
        if numbers:
            cx, cy = les["centroid"]
            cv2.putText(
                out,
                str(k),
                (int(cx) + 6, int(cy) - 6),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.4,
                colour,
                1,
                cv2.LINE_AA,
            )
    return out


def _grid(tiles: list[np.ndarray], columns: int) -> np.ndarray:
    h = max(t.shape[0] for t in tiles)
    w = max(t.shape[1] for t in tiles)
    rows = (len(tiles) + columns - 1) // columns
    sheet = np.full((rows * (h + 4) + 4, columns * (w + 4) + 4, 3), 30, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        sheet[
            4 + r * (h + 4) : 4 + r * (h + 4) + tile.shape[0],
            4 + c * (w + 4) : 4 + c * (w + 4) + tile.shape[1],
        ] = tile
    return sheet


def detection_sheet(
    items: list[tuple[np.ndarray, np.ndarray, list[dict]]], columns: int = 3
) -> np.ndarray:
    """Sheet of (image, instance_map, lesions) triples, full resolution tiles."""
    return _grid([outline(img, inst, les) for img, inst, les in items], columns)


def pair_tile(
    image_a: np.ndarray,
    image_b: np.ndarray,
    instance_a: np.ndarray,
    instance_b: np.ndarray,
    entry: dict,
) -> np.ndarray:
    """A | B side by side with outlines and correspondence lines (manifest-style ``entry``)."""
    new = {k: NEW_RGB for k in entry["new_in_b"]}
    gone = {k: GONE_RGB for k in entry["gone_from_a"]}
    a = outline(image_a, instance_a, entry["lesions_a"], colours=gone)
    b = outline(image_b, instance_b, entry["lesions_b"], colours=new)
    w = a.shape[1]
    tile = np.hstack([a, np.full((a.shape[0], 6, 3), 255, np.uint8), b])
    cen_a = {les["id"]: les["centroid"] for les in entry["lesions_a"]}
    cen_b = {les["id"]: les["centroid"] for les in entry["lesions_b"]}
    for ia, ib in entry["correspondences"]:
        (xa, ya), (xb, yb) = cen_a[ia], cen_b[ib]
        cv2.line(tile, (int(xa), int(ya)), (int(xb) + w + 6, int(yb)), LINE_RGB, 1, cv2.LINE_AA)
    return tile


def pair_sheet(tiles: list[np.ndarray], columns: int = 1) -> np.ndarray:
    """Sheet of pair tiles (see ``pair_tile``)."""
    return _grid(tiles, columns)


def scale_to_width(image: np.ndarray, width: int) -> np.ndarray:
    """Downscale an RGB image to ``width`` pixels wide (never upscales)."""
    if image.shape[1] <= width:
        return image
    h = round(image.shape[0] * width / image.shape[1])
    return cv2.resize(image, (width, h), interpolation=cv2.INTER_AREA)
