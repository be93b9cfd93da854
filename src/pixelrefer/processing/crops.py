"""Scale-Adaptive Object Tokenizer, host side: the crop plan of one region mask.

For a binary mask on a frame this cuts a box around the mask with ``CROP_MARGIN_PX`` of context, rescales the
crop so the object covers about ``mask_num`` patches (up-scaling small objects, down-scaling huge ones), patchifies
it, resizes the mask to the crop's patch grid and computes the box position grid.

Two geometries (``PixelReferConfig.region_geometry``):

* ``official`` reproduces what the released weights were trained with, per variant: PixelRefer's crop drops the
  last row/column of the padded box, its mask is resized as uint8 with torch bilinear (values rounded to 0/1);
  Lite keeps them, resizes the float mask with OpenCV bilinear (fractional values) and shrinks objects above 50
  patches instead of 100. Both use :func:`position_grid_official`, which swaps rows and columns.
* ``clean`` uses an inclusive box, an area-weighted mask (a cell is in the object when at least half covered, and
  the best-covered cell always is) and :func:`position_grid_xy`.

With ``scale_adaptive=False`` (``PixelReferConfig.region_encoder="mask_pooling"``, an ablation baseline) the "crop"
is the whole frame at zoom 1, fitted into the same patch budget: the mask then selects the frame's features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from pixelrefer.config import PixelReferConfig
from pixelrefer.constants import CROP_MARGIN_PX, LITE_LOCAL_VIEW_SIZE, PATCH_AREA, PATCH_SIZE
from pixelrefer.processing.image import ImageProcessorSettings, patchify


@dataclass(frozen=True)
class CropSpec:
    """How a region is cut and scaled: the variant's official rules or the clean ones."""

    variant: str  # "full" | "lite"
    geometry: str  # "official" | "clean"
    mask_num: int
    downscale_threshold_patches: int
    max_crop_patches: int
    local_view_size: int = LITE_LOCAL_VIEW_SIZE
    scale_adaptive: bool = True
    image_processor: ImageProcessorSettings = field(default_factory=ImageProcessorSettings)

    @classmethod
    def from_config(cls, config: PixelReferConfig) -> CropSpec:
        """The crop rules of a model config."""
        return cls(
            variant=config.variant,
            geometry=config.region_geometry,
            mask_num=config.mask_num,
            downscale_threshold_patches=config.downscale_threshold_patches,
            max_crop_patches=config.max_crop_patches,
            local_view_size=config.local_view_size,
            scale_adaptive=config.region_encoder == "scale_adaptive",
            image_processor=config.image_processor,
        )


@dataclass
class RegionCrop:
    """Everything the object tokenizer needs for one region mask on one frame."""

    patches: np.ndarray  # (gh*gw, 588) float32, row-major
    grid: tuple[int, int, int]  # (1, gh, gw) of the crop patches
    mask_grid: np.ndarray  # (mh, mw) float32 mask on the token grid (usually == (gh, gw))
    position: np.ndarray  # (gh, gw, 2) float32 box position grid
    num_tokens: int  # object tokens this region contributes to the prompt
    box: tuple[int, int, int, int]  # (row0, col0, row1, col1) as stored for the position grid
    image_size: tuple[int, int]  # (H, W) of the frame
    scale: float
    local_view: tuple[np.ndarray, tuple[int, int, int]] | None = None  # Lite: patchified crop at local_view_size


def scale_rate(area: int, mask_num: int, downscale_threshold_patches: int) -> float:
    """Zoom that makes an object of ``area`` pixels cover about ``mask_num`` patches (never fewer)."""
    s: float = math.ceil(math.sqrt(PATCH_AREA * mask_num / max(area, 1)))
    if s == 1 and area / PATCH_AREA > downscale_threshold_patches:
        s = 1 / math.sqrt(area / PATCH_AREA / downscale_threshold_patches)
    return s


def position_grid_official(gh: int, gw: int, box: tuple[int, int, int, int], height: int, width: int) -> np.ndarray:
    """The official box position grid, including its row/column swap (the released weights depend on it).

    ``box`` holds (row0, col0, row1, col1) but is read as (x0, y0, x1, y1): channel 0 varies along the width with
    the box *height* and the top row, normalised by the image *width* - 1; channel 1 the other way round.
    """
    r0, c0, r1, c1 = (np.float32(v) for v in box)
    j = np.arange(gw, dtype=np.float32)[None, :] / np.float32(gw)
    i = np.arange(gh, dtype=np.float32)[:, None] / np.float32(gh)
    ch0 = (j * (r1 - r0) + r0) / np.float32(width - 1)
    ch1 = (i * (c1 - c0) + c0) / np.float32(height - 1)
    return np.stack(np.broadcast_arrays(ch0, ch1), axis=-1).astype(np.float32)


def position_grid_xy(gh: int, gw: int, box: tuple[int, int, int, int], height: int, width: int) -> np.ndarray:
    """Normalised (x, y) of each grid cell centre in the original frame."""
    r0, c0, r1, c1 = box
    xs = c0 + (np.arange(gw, dtype=np.float32) + 0.5) / gw * (c1 - c0 + 1)
    ys = r0 + (np.arange(gh, dtype=np.float32) + 0.5) / gh * (r1 - r0 + 1)
    x = np.broadcast_to((xs / width)[None, :], (gh, gw))
    y = np.broadcast_to((ys / height)[:, None], (gh, gw))
    return np.stack([x, y], axis=-1).astype(np.float32)


def _box(mask: np.ndarray, spec: CropSpec) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """(slice box r0, c0, r1_excl, c1_excl) and the stored box used by the position grid."""
    h, w = mask.shape
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    rmin, rmax, cmin, cmax = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    r0, c0 = max(0, rmin - CROP_MARGIN_PX), max(0, cmin - CROP_MARGIN_PX)
    if spec.geometry == "official" and spec.variant == "full":
        r1, c1 = min(h - 1, rmax + CROP_MARGIN_PX), min(w - 1, cmax + CROP_MARGIN_PX)
        return (r0, c0, r1, c1), (r0, c0, r1, c1)
    r1e, c1e = min(h, rmax + 1 + CROP_MARGIN_PX), min(w, cmax + 1 + CROP_MARGIN_PX)
    return (r0, c0, r1e, c1e), (r0, c0, min(h - 1, r1e - 1), min(w - 1, c1e - 1))


def _resize_mask(mask_crop: np.ndarray, mh: int, mw: int, spec: CropSpec) -> np.ndarray:
    if spec.geometry == "official" and spec.variant == "full":
        t = torch.from_numpy(mask_crop.astype(np.uint8))[None, None]
        return F.interpolate(t, size=(mh, mw), mode="bilinear", align_corners=False)[0, 0].numpy().astype(np.float32)
    if spec.geometry == "official":
        return cv2.resize(mask_crop.astype(np.float32), (mw, mh), interpolation=cv2.INTER_LINEAR)
    cover = cv2.resize(mask_crop.astype(np.float32), (mw, mh), interpolation=cv2.INTER_AREA)
    binary = (cover >= 0.5).astype(np.float32)
    binary.flat[int(np.argmax(cover))] = 1.0
    return binary


def _token_count(mask_grid: np.ndarray, spec: CropSpec) -> int:
    if spec.variant == "lite":
        return spec.mask_num
    return min(spec.mask_num, int((mask_grid > 0).sum()))


def crop_pixel_budget(spec: CropSpec, num_crops: int = 1) -> int:
    """Pixel budget of one crop: ``max_crop_patches`` patches (the official training value, ``mm_max_length``).
    The official inference code divides it by the number of crops of the sample (``num_crops``)."""
    return spec.max_crop_patches * PATCH_AREA // max(num_crops, 1)


def view_patches(view: np.ndarray, spec: CropSpec, budget: int) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Patches of a Lite view. The official geometry fits it into the crop budget, as the official processor
    does (a no-op for the released models' budget); the clean geometry keeps the view's size."""
    max_pixels = budget if spec.geometry == "official" else view.shape[0] * view.shape[1]
    return patchify(view, merge=1, max_pixels=max_pixels, settings=spec.image_processor)


def plan_crop(image: np.ndarray, mask: np.ndarray, spec: CropSpec, budget: int | None = None) -> RegionCrop:
    """Crop plan of one non-empty boolean mask on an (H, W, 3) uint8 frame, within ``budget`` pixels
    (default :func:`crop_pixel_budget`)."""
    budget = crop_pixel_budget(spec) if budget is None else budget
    height, width = mask.shape
    if spec.scale_adaptive:
        slice_box, stored_box = _box(mask, spec)
        s = scale_rate(int(mask.sum()), spec.mask_num, spec.downscale_threshold_patches)
    else:
        slice_box, stored_box, s = (0, 0, height, width), (0, 0, height - 1, width - 1), 1.0
    r0, c0, r1, c1 = slice_box
    crop = image[r0:r1, c0:c1]
    crop_h, crop_w = r1 - r0, c1 - c0
    rh = max(PATCH_SIZE, math.ceil(crop_h * s / PATCH_SIZE) * PATCH_SIZE)
    rw = max(PATCH_SIZE, math.ceil(crop_w * s / PATCH_SIZE) * PATCH_SIZE)
    shrink = spec.variant == "lite" and not (rh >= crop_h or rw >= crop_w)
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    resized = cv2.resize(np.ascontiguousarray(crop), (rw, rh), interpolation=interp)
    patches, grid = patchify(resized, merge=1, max_pixels=budget, settings=spec.image_processor)
    mask_grid = _resize_mask(mask[r0:r1, c0:c1], rh // PATCH_SIZE, rw // PATCH_SIZE, spec)
    grid_fn = position_grid_official if spec.geometry == "official" else position_grid_xy
    position = grid_fn(grid[1], grid[2], stored_box, height, width)
    local_view = None
    if spec.variant == "lite":
        size = spec.local_view_size
        view = cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_AREA)
        local_view = view_patches(view, spec, budget)
    return RegionCrop(
        patches=patches,
        grid=grid,
        mask_grid=mask_grid,
        position=position,
        num_tokens=_token_count(mask_grid, spec),
        box=stored_box,
        image_size=(height, width),
        scale=float(s),
        local_view=local_view,
    )


def global_view(image: np.ndarray, size: int) -> np.ndarray:
    """Lite's whole-frame view: the frame squeezed to size x size (aspect ratio not kept, as trained)."""
    return cv2.resize(np.ascontiguousarray(image), (size, size), interpolation=cv2.INTER_AREA)
