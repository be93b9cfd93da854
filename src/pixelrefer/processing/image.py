"""Image -> normalised patches, exactly as the official SigLIP-NaViT image processor does it.

Layout: each 14x14 patch is flattened channel-major (3, 14, 14) into 588 values. With merge ``m`` the patches
are ordered by (h/m, w/m, m, m): every m x m merge window is m*m consecutive rows (``m = 1`` is row-major).

:class:`~pixelrefer.image_settings.ImageProcessorSettings` (imported here) holds what a checkpoint's
``preprocessor_config.json`` decides (mean, std, rescale factor, resample filter, minimum pixels); the pixel
budget and merge come from the model config.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from pixelrefer.constants import PATCH_SIZE
from pixelrefer.errors import MediaError
from pixelrefer.image_settings import RESAMPLE_FILTERS, ImageProcessorSettings

MAX_ASPECT_RATIO = 200

class ImageSizeError(MediaError):
    """An image cannot be resized to a patch grid (degenerate size or extreme aspect ratio)."""


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Target (h, w), multiples of ``factor``, keeping the aspect ratio within the pixel budget.

    Follows the official rule including its small-side branch (a side shorter than ``factor`` is first scaled
    up to ``factor``) and Python's round-half-to-even.
    """
    if height < 1 or width < 1:
        raise ImageSizeError(f"image size must be positive, got {height}x{width}")
    if height < factor or width < factor:
        scale = factor / min(height, width)
        height, width = max(factor, round(height * scale)), max(factor, round(width * scale))
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ImageSizeError(f"aspect ratio of {height}x{width} exceeds {MAX_ASPECT_RATIO}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def resize_image(image: np.ndarray, height: int, width: int, resample: int) -> np.ndarray:
    """PIL resize of an (H, W, 3) uint8 image with filter ``resample``; identity when the size is unchanged."""
    if image.shape[:2] == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), resample=RESAMPLE_FILTERS[resample]))


def normalize(image: np.ndarray, settings: ImageProcessorSettings) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (3, H, W), bit-identical to the official rescale + normalise (transformers'
    ``rescale``: float64 product cast to float32; ``normalize``: ``(x - mean) / std`` in float32)."""
    x = image.astype(np.float32)
    if settings.do_rescale:
        x = (image.astype(np.float64) * settings.rescale_factor).astype(np.float32)
    if settings.do_normalize:
        mean = np.asarray(settings.image_mean, dtype=np.float32)
        std = np.asarray(settings.image_std, dtype=np.float32)
        x = (x - mean) / std
    return x.transpose(2, 0, 1)


def to_patches(chw: np.ndarray, merge: int) -> np.ndarray:
    """(3, H, W) -> (H/14 * W/14, 588) in merge-window order."""
    c, h, w = chw.shape
    gh, gw = h // PATCH_SIZE, w // PATCH_SIZE
    x = chw.reshape(c, gh // merge, merge, PATCH_SIZE, gw // merge, merge, PATCH_SIZE)
    x = x.transpose(1, 4, 2, 5, 0, 3, 6)
    return np.ascontiguousarray(x.reshape(gh * gw, c * PATCH_SIZE * PATCH_SIZE))


def patchify(
    image: np.ndarray, merge: int, max_pixels: int, settings: ImageProcessorSettings
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Resize an (H, W, 3) uint8 image onto the patch grid and patchify it with ``settings``.

    Returns ``(patches (N, 588) float32, grid (1, gh, gw))``.
    """
    h, w = smart_resize(image.shape[0], image.shape[1], PATCH_SIZE * merge, settings.min_pixels, max_pixels)
    resized = resize_image(image, h, w, settings.resample)
    patches = to_patches(normalize(resized, settings), merge)
    return patches, (1, h // PATCH_SIZE, w // PATCH_SIZE)


def media_pixel_budget(max_visual_tokens: int, merge: int, num_images: int) -> int:
    """Per-image pixel budget: the official ``max_pixels / (merge/d)^2 / n`` with d = merge of this media."""
    return (max_visual_tokens * merge * merge * PATCH_SIZE * PATCH_SIZE) // max(num_images, 1)
