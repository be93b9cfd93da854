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
from PIL import Image
from pycocotools import mask as mask_utils

from pixelrefer.errors import PixelReferError, reason
from pixelrefer.limits import (
    check_declared_size,
    check_polygon_points,
    check_upload_bytes,
    decompression_bomb,
)
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


def _dimension(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer | float):
        raise RegionError(f"{what} must be a positive integer, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise RegionError(f"{what} must be a positive integer, got {value!r}")
    if int(value) <= 0:
        raise RegionError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def check_size(size: Any, what: str) -> tuple[int, int]:
    """A declared ``[height, width]`` as ints, within :attr:`Limits.max_mask_pixels` (nothing is decoded)."""
    if not (isinstance(size, list | tuple) and len(size) == 2):
        raise RegionError(f"{what} size must be [height, width], got {size!r}")
    h, w = _dimension(size[0], f"{what} height"), _dimension(size[1], f"{what} width")
    check_declared_size(h, w, what)
    return h, w


# Compressed COCO RLE (pycocotools ``rleToString``): each count is a variable-length signed number written 5 bits
# per character ('0' + bits, 0x20 = "more follows", 0x10 of the last character = negative); from the fourth count
# on, a count is stored as the difference to the one two places earlier.
_RLE_CHAR_MIN, _RLE_CHAR_MAX = 48, 48 + 63
_RLE_MAX_CHARS_PER_COUNT = 7  # 35 bits: far beyond any accepted mask size


def compressed_counts(counts: str | bytes) -> np.ndarray:
    """The run lengths of a compressed RLE string, decoded without pycocotools (vectorised); raises
    :class:`RegionError` for characters outside the alphabet, a truncated last count or a negative run."""
    if isinstance(counts, str) and not counts.isascii():
        raise RegionError("corrupt RLE: compressed counts must be ASCII")
    raw = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    if not raw:
        return np.zeros(0, dtype=np.int64)
    chars = np.frombuffer(raw, dtype=np.uint8).astype(np.int64)
    bad = np.flatnonzero((chars < _RLE_CHAR_MIN) | (chars > _RLE_CHAR_MAX))
    if bad.size:
        raise RegionError(f"corrupt RLE: character {bad[0]} of counts is not in the compressed RLE alphabet")
    c = chars - _RLE_CHAR_MIN
    more = (c & 0x20) != 0
    if more[-1]:
        raise RegionError("corrupt RLE: the counts string is truncated (its last run is incomplete)")
    ends = np.flatnonzero(~more)
    starts = np.concatenate([[0], ends[:-1] + 1])
    lengths = ends - starts + 1
    if lengths.max() > _RLE_MAX_CHARS_PER_COUNT:
        raise RegionError("corrupt RLE: a run length in counts is too long to be valid")
    group = np.repeat(np.arange(len(ends)), lengths)
    shift = 5 * (np.arange(len(c)) - starts[group])
    values = np.add.reduceat((c & 0x1F) << shift, starts)
    negative = (c[ends] & 0x10) != 0
    values = np.where(negative, values - (np.int64(1) << (5 * lengths)), values)
    runs = values.copy()  # undo the delta coding: runs[m] = values[m] + runs[m - 2] for m > 2
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    if np.any(runs < 0):
        raise RegionError("corrupt RLE: counts decode to a negative run length")
    return runs


def rle_size(rle: Any) -> tuple[int, int]:
    """Check an RLE without decoding it: its declared size (against the limits) and that its runs cover exactly
    ``h * w`` pixels. Returns ``(h, w)``."""
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise RegionError("an RLE must be a dict with 'size' [h, w] and 'counts'")
    h, w = check_size(rle["size"], "RLE")
    counts = rle["counts"]
    if isinstance(counts, list | tuple):
        if any(isinstance(c, bool) or not isinstance(c, int | np.integer) or c < 0 for c in counts):
            raise RegionError("uncompressed RLE counts must be non-negative integers")
        total = sum(int(c) for c in counts)
        kind = "uncompressed"
    elif isinstance(counts, str | bytes):
        total = int(compressed_counts(counts).sum())
        kind = "compressed"
    else:
        raise RegionError(f"RLE counts must be a string or a list of ints, got {type(counts).__name__}")
    if total != h * w:
        raise RegionError(f"{kind} RLE counts sum to {total}, expected h*w = {h * w} for its size {h}x{w} "
                          "(truncated or corrupt counts)")
    return h, w


def decode_rle(rle: RLE) -> np.ndarray:
    """Decode a compressed (``counts`` str/bytes) or uncompressed (``counts`` list of ints) COCO RLE."""
    h, w = rle_size(rle)
    counts = rle["counts"]
    if isinstance(counts, list | tuple):
        compressed = mask_utils.frPyObjects({"size": [h, w], "counts": [int(c) for c in counts]}, h, w)
    else:
        compressed = {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else bytes(counts)}
    decoded = mask_utils.decode(compressed)
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
    n_points = 0
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
        n_points += flat.size // 2
        check_polygon_points(n_points)
    if not out:
        raise RegionError("no polygon given")
    return out


NEAR_IMAGE_FACTOR = 8  # how many image sizes a point may lie outside the image


def check_near_image(xy: np.ndarray, height: int, width: int, what: str) -> None:
    """Points ``(N, 2)`` must lie within ``NEAR_IMAGE_FACTOR`` times the image's larger side of the image.

    Rasterisation walks every edge pixel by pixel, so one vertex at 1e8 would take minutes; a point that far
    outside the image is a mistake (wrong units or size), not a shape.
    """
    margin = NEAR_IMAGE_FACTOR * max(height, width)
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    outside = (np.abs(xy[:, 0] - width / 2) > width / 2 + margin) | (np.abs(xy[:, 1] - height / 2) > height / 2 + margin)
    if outside.any():
        x, y = xy[outside][0]
        raise RegionError(f"{what} point ({x:g}, {y:g}) lies far outside the {width}x{height} image "
                          f"(points may be at most {margin} px outside it)")


def polygons_to_mask(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Rasterise COCO polygons (pixel ``x, y``) exactly as COCO tools do (union of all polygons)."""
    check_declared_size(height, width, "polygon")
    for poly in polygons:
        check_near_image(np.asarray(poly), height, width, "a polygon")
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


def _read_mask_image(source: Any, name: str, channel: str) -> np.ndarray:
    """Open a mask image, check its header size against the limits, then decode it."""
    try:
        with Image.open(source) as image:
            width, height = image.size
            check_declared_size(height, width, f"the mask image {name}")
            image.load()
            return mask_from_image(image, channel)
    except PixelReferError:
        raise
    except Image.DecompressionBombError as exc:
        raise decompression_bomb(exc, f"the mask image {name}", "max_mask_pixels") from exc
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, EOFError, ... on corrupt data
        raise RegionError(f"cannot read {name} as a mask image: {reason(exc, source if isinstance(source, Path) else None)}") from exc


def load_mask_file(path: str | os.PathLike, channel: str = "auto") -> np.ndarray:
    """Read a mask from a PNG (or other) file: alpha if present, else non-zero pixels."""
    p = Path(path)
    if not p.is_file():
        raise RegionError(f"mask file not found: {p}")
    return _read_mask_image(p, p.name, channel)


def mask_to_png_bytes(mask: np.ndarray) -> bytes:
    """A 1-bit PNG of the mask (lossless, compact)."""
    buffer = io.BytesIO()
    Image.fromarray(to_bool_mask(mask)).convert("1").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def png_bytes_to_mask(data: bytes, channel: str = "auto") -> np.ndarray:
    """A mask from encoded image bytes (PNG or any format PIL reads); the size is checked before decoding."""
    if not isinstance(data, bytes | bytearray):
        raise RegionError(f"mask image data must be bytes, got {type(data).__name__}")
    return _read_mask_image(io.BytesIO(data), "(inline data)", channel)


def b64_to_bytes(text: str) -> bytes:
    """Decode base64, also accepting a ``data:image/png;base64,`` URL prefix."""
    if not isinstance(text, str):
        raise RegionError("base64 mask data must be a string")
    payload = text.split(",", 1)[1] if text.startswith("data:") else text
    check_upload_bytes(len(payload) * 3 // 4, "the mask image data")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RegionError(f"invalid base64 mask data: {exc}") from exc


def bytes_to_b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
