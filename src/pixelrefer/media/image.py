"""Load a still image as an ``(H, W, 3) uint8`` RGB array from a path, bytes, PIL image or array.

Every image is turned upright first: an EXIF (or XMP) orientation tag is applied exactly as PIL's
:func:`PIL.ImageOps.exif_transpose` applies it, for files, encoded bytes and PIL images given by callers alike, so a
photo is seen (and its regions drawn) as a viewer shows it.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ExifTags, Image, ImageOps

from pixelrefer.errors import PixelReferError, reason
from pixelrefer.limits import check_image_pixels, decompression_bomb
from pixelrefer.media.errors import MediaError

ImageLike = str | os.PathLike | Image.Image | np.ndarray | bytes


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.size and float(np.nanmax(array)) <= 1.0:
            array = array * 255.0
        array = np.clip(np.nan_to_num(array), 0, 255).astype(np.uint8)
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim == 3 and array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    if array.ndim == 3 and array.shape[2] == 4:
        return np.ascontiguousarray(array[:, :, :3])
    if array.ndim == 3 and array.shape[2] == 3:
        return np.ascontiguousarray(array)
    raise MediaError(f"an image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got shape {array.shape}")


def pil_to_rgb(image: Image.Image) -> np.ndarray:
    """Convert any PIL mode (L, P, RGBA, I;16, ...) to an RGB uint8 array; alpha is dropped."""
    if image.mode in ("I;16", "I;16B", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = float(array.max()) if array.size else 0.0
        scaled = array * (255.0 / peak) if peak > 255 else array
        return _array_to_rgb(np.clip(scaled, 0, 255).astype(np.uint8))
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def upright(image: Image.Image) -> Image.Image:
    """``image`` with its orientation tag applied by :func:`PIL.ImageOps.exif_transpose` (a new image; the
    caller's image is never modified)."""
    return ImageOps.exif_transpose(image)


def shown_size(image: Image.Image) -> tuple[int, int]:
    """``(height, width)`` of ``image`` once upright, from its header (no pixels decoded): orientations 5 to 8
    turn it a quarter, swapping the two."""
    turned = header_orientation(image) in (5, 6, 7, 8)
    return (image.width, image.height) if turned else (image.height, image.width)


def header_orientation(image: Image.Image) -> int:
    """The EXIF orientation tag (1 when absent) from what the file's header holds.

    PIL's ``getexif`` on a PNG whose header has no eXIf chunk decodes every pixel to look for one after the image
    data; the PNG specification (third edition) places eXIf before the image data, so such a PNG has none.
    """
    if image.format == "PNG" and "exif" not in image.info:
        return 1
    return image.getexif().get(ExifTags.Base.Orientation, 1)


def open_pil(src: str | os.PathLike | bytes) -> Image.Image:
    """Open an image file (or encoded bytes) with PIL, upright (EXIF orientation applied), raising
    :class:`MediaError` on failure.

    The size in the header is checked against :attr:`Limits.max_image_pixels` before the pixels are decoded, so a
    small file declaring a huge image is refused unread. Messages name the file, never its folder.
    """
    if isinstance(src, bytes):
        stream: Any = io.BytesIO(src)
        name = "the image data"
    else:
        path = Path(src)
        if not path.is_file():
            raise MediaError(f"image file not found: {path}")
        stream, name = path, path.name
    try:
        image = Image.open(stream)
        check_image_pixels(*image.size, what=name)
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
    except PixelReferError:
        raise
    except Image.DecompressionBombError as exc:
        raise decompression_bomb(exc, name) from exc
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, EOFError, ... on corrupt data
        raise MediaError(f"cannot read {name} as an image: {reason(exc, None if isinstance(src, bytes) else src)}") from exc
    return image


def load_image(src: ImageLike) -> np.ndarray:
    """Return the image as a C-contiguous ``(H, W, 3) uint8`` RGB array.

    ``src`` may be a file path, encoded image bytes, a PIL image or an array (grey, RGB or RGBA;
    float arrays in 0..1 are scaled to 0..255).
    """
    if isinstance(src, Image.Image):
        check_image_pixels(*src.size)
        rgb = pil_to_rgb(upright(src))
    elif isinstance(src, np.ndarray):
        if src.ndim >= 2:
            check_image_pixels(src.shape[1], src.shape[0])
        rgb = _array_to_rgb(src)
    elif isinstance(src, (str, os.PathLike, bytes)):
        rgb = pil_to_rgb(open_pil(src))
    else:
        raise MediaError(f"cannot load an image from {type(src).__name__}; pass a path, bytes, PIL image or array")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise MediaError(f"the image is empty (shape {rgb.shape})")
    return rgb
