"""Benchmark annotations to binary masks: COCO polygons, RLE (compressed or not), xywh boxes.

Every failure is a :class:`~pixelrefer.eval.types.BadItem` with a message naming what was wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from pixelrefer.eval.types import BadItem


def decode_segmentation(segmentation: Any, height: int | None = None, width: int | None = None) -> np.ndarray:
    """Decode a COCO segmentation (polygon list, uncompressed or compressed RLE) to a ``uint8 (H, W)`` mask."""
    try:
        if isinstance(segmentation, list):
            if height is None or width is None:
                raise BadItem("a polygon segmentation needs the image height and width")
            polygons = [p for p in segmentation if isinstance(p, list) and len(p) >= 6]
            if not polygons:
                raise BadItem("polygon segmentation has no polygon with at least 3 points")
            rle = mask_utils.merge(mask_utils.frPyObjects(polygons, int(height), int(width)))
        elif isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
            if isinstance(segmentation["counts"], list):
                h, w = segmentation["size"]
                rle = mask_utils.frPyObjects(segmentation, int(h), int(w))
            else:
                counts = segmentation["counts"]
                rle = {
                    "size": list(segmentation["size"]),
                    "counts": counts.encode() if isinstance(counts, str) else counts,
                }
        else:
            raise BadItem(f"unrecognised segmentation of type {type(segmentation).__name__}")
        mask = np.ascontiguousarray(mask_utils.decode(rle), dtype=np.uint8)
    except BadItem:
        raise
    except Exception as exc:  # pycocotools raises bare TypeError/ValueError/AssertionError on bad input
        raise BadItem(f"malformed segmentation: {exc}") from exc
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    return check_mask(mask)


def box_mask(box_xywh: Any, height: int, width: int) -> np.ndarray:
    """An ``(x, y, w, h)`` box filled as a rectangle mask (VG and Ref-L4 protocol)."""
    try:
        x, y, w, h = (float(v) for v in box_xywh)
    except (TypeError, ValueError) as exc:
        raise BadItem(f"malformed box {box_xywh!r}") from exc
    mask = np.zeros((int(height), int(width)), dtype=np.uint8)
    x0, y0 = max(int(np.floor(x)), 0), max(int(np.floor(y)), 0)
    x1, y1 = min(int(np.ceil(x + w)), int(width)), min(int(np.ceil(y + h)), int(height))
    mask[y0:y1, x0:x1] = 1
    return check_mask(mask)


def check_mask(mask: np.ndarray) -> np.ndarray:
    if mask.ndim != 2:
        raise BadItem(f"a mask must be 2-D, got shape {mask.shape}")
    if not mask.any():
        raise BadItem("the mask is empty")
    return mask


def require_file(path: Path) -> str:
    """Return ``str(path)`` if the image/video exists (a file or a frame folder), else raise BadItem."""
    if not path.exists():
        raise BadItem(f"media not found: {path}")
    return str(path)
