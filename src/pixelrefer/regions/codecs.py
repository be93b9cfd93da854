"""Exact conversions between binary masks and their encodings: COCO RLE, polygons, PNG bytes, base64.

RLE and polygon rasterisation go through pycocotools (the COCO reference codec), so masks made here
match the ones in COCO-format training and benchmark files pixel for pixel.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from pycocotools import mask as mask_utils

from pixelrefer.regions.errors import RegionError

RLE = dict[str, Any]


def to_bool_mask(mask: Any, what: str = "mask") -> np.ndarray:
    """A 2-D boolean copy of ``mask`` (non-zero is inside); raises :class:`RegionError` for other shapes."""
    array = np.asarray(mask)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != 2:
        raise RegionError(f"a {what} must be 2-D (H, W), got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise RegionError(f"a {what} has zero size: {array.shape}")
    return array > 0


def encode_rle(mask: np.ndarray) -> RLE:
    """Compressed COCO RLE ``{"size": [h, w], "counts": str}`` of a 2-D mask."""
    binary = np.asfortranarray(to_bool_mask(mask).astype(np.uint8))
    rle = mask_utils.encode(binary)
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def _check_rle(rle: Any) -> tuple[int, int]:
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise RegionError("an RLE must be a dict with 'size' [h, w] and 'counts'")
    size = rle["size"]
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(int(s) > 0 for s in size)):
        raise RegionError(f"RLE 'size' must be [height, width] with positive values, got {size!r}")
    return int(size[0]), int(size[1])


def decode_rle(rle: RLE) -> np.ndarray:
    """Decode a compressed (``counts`` str/bytes) or uncompressed (``counts`` list of ints) COCO RLE."""
    h, w = _check_rle(rle)
    counts = rle["counts"]
    if isinstance(counts, list):
        if any((not isinstance(c, (int, np.integer))) or c < 0 for c in counts):
            raise RegionError("uncompressed RLE counts must be non-negative integers")
        if sum(counts) != h * w:
            raise RegionError(f"uncompressed RLE counts sum to {sum(counts)}, expected h*w = {h * w}")
        compressed = mask_utils.frPyObjects({"size": [h, w], "counts": [int(c) for c in counts]}, h, w)
    elif isinstance(counts, (str, bytes)):
        compressed = {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    else:
        raise RegionError(f"RLE counts must be a string or a list of ints, got {type(counts).__name__}")
    try:
        decoded = mask_utils.decode(compressed)
    except Exception as exc:  # pycocotools raises bare exceptions on corrupt strings
        raise RegionError(f"corrupt RLE: {exc}") from exc
    if decoded.shape != (h, w):
        raise RegionError(f"RLE decodes to {decoded.shape}, expected {(h, w)}")
    return decoded.astype(bool)


def uncompressed_rle(mask: np.ndarray) -> RLE:
    """Uncompressed COCO RLE ``{"size": [h, w], "counts": [int, ...]}`` (column-major runs, zeros first)."""
    binary = to_bool_mask(mask)
    flat = binary.flatten(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        runs = [0, *runs]
    return {"size": [int(binary.shape[0]), int(binary.shape[1])], "counts": [int(r) for r in runs]}


def depth(obj: Any) -> int:
    """Nesting depth of lists/arrays, following first items (``[[1, 2]]`` -> 2)."""
    level = 0
    while isinstance(obj, (list, tuple, np.ndarray)):
        if len(obj) == 0:
            return level + 1
        obj, level = obj[0], level + 1
    return level


def normalise_polygons(polygons: Any) -> list[list[float]]:
    """Accept one polygon or several, each flat ``[x0, y0, x1, y1, ...]`` or ``[[x, y], ...]``.

    A list whose items all have two numbers is read as the points of one polygon.
    """
    level = depth(polygons)
    if level == 1 or level == 2 and all(len(item) == 2 for item in polygons):
        polygons = [polygons]
    elif level not in (2, 3):
        raise RegionError("polygons must be [x0, y0, ...], [[x, y], ...] or a list of those")
    out: list[list[float]] = []
    for poly in polygons:
        try:
            flat = np.asarray(poly, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise RegionError(f"polygon coordinates must be numbers: {exc}") from exc
        if flat.size % 2:
            raise RegionError(f"a polygon needs an even number of coordinates, got {flat.size}")
        if not np.all(np.isfinite(flat)):
            raise RegionError("polygon coordinates must be finite numbers")
        if flat.size < 6:
            raise RegionError(f"a polygon needs at least 3 points, got {flat.size // 2}")
        out.append(flat.tolist())
    if not out:
        raise RegionError("no polygon given")
    return out


def polygons_to_mask(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Rasterise COCO polygons (pixel ``x, y``) exactly as COCO tools do (union of all polygons)."""
    rles = mask_utils.frPyObjects([list(map(float, p)) for p in polygons], height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def mask_to_polygons(mask: np.ndarray) -> list[list[float]]:
    """Outer contours of a mask as COCO polygons (lossy: for display and export, not round trips)."""
    import cv2

    contours, _ = cv2.findContours(to_bool_mask(mask).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]


def mask_from_image(image: Image.Image, channel: str = "auto") -> np.ndarray:
    """A mask from a PIL image: the alpha channel of RGBA/LA (``auto`` or ``alpha``), else non-zero pixels."""
    if channel not in ("auto", "alpha", "luma"):
        raise RegionError(f"channel must be 'auto', 'alpha' or 'luma', got {channel!r}")
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if channel == "alpha" and not has_alpha:
        raise RegionError(f"the mask image (mode {image.mode}) has no alpha channel")
    if has_alpha and channel != "luma":
        return np.asarray(image.convert("RGBA"))[:, :, 3] > 0
    if image.mode == "1":
        return np.asarray(image, dtype=bool)
    array = np.asarray(image.convert("RGB") if image.mode == "P" else image)
    return (array.max(axis=2) if array.ndim == 3 else array) > 0


def load_mask_file(path: str | os.PathLike, channel: str = "auto") -> np.ndarray:
    """Read a mask from a PNG (or other) file: alpha if present, else non-zero pixels."""
    p = Path(path)
    if not p.is_file():
        raise RegionError(f"mask file not found: {p}")
    try:
        with Image.open(p) as image:
            image.load()
            return mask_from_image(image, channel)
    except (UnidentifiedImageError, OSError) as exc:
        raise RegionError(f"cannot read {p} as a mask image: {exc}") from exc


def mask_to_png_bytes(mask: np.ndarray) -> bytes:
    """A 1-bit PNG of the mask (lossless, compact)."""
    buffer = io.BytesIO()
    Image.fromarray(to_bool_mask(mask)).convert("1").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def png_bytes_to_mask(data: bytes, channel: str = "auto") -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return mask_from_image(image, channel)
    except (UnidentifiedImageError, OSError) as exc:
        raise RegionError(f"cannot decode the mask image: {exc}") from exc


def b64_to_bytes(text: str) -> bytes:
    """Decode base64, also accepting a ``data:image/png;base64,`` URL prefix."""
    if not isinstance(text, str):
        raise RegionError("base64 mask data must be a string")
    payload = text.split(",", 1)[1] if text.startswith("data:") else text
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RegionError(f"invalid base64 mask data: {exc}") from exc


def bytes_to_b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
