"""Segmentation without weights: GrabCut (OpenCV) seeded by boxes, clicks or scribbles, colour flood fill
to find the object's extent from a click, and dense optical flow (DIS) + GrabCut re-segmentation to
carry masks through a video.

Deterministic: GrabCut initialises its colour models with k-means, which draws from OpenCV's per-thread RNG;
:func:`grabcut` reseeds that RNG with :data:`GRABCUT_SEED` right before each call, so identical inputs give
identical masks however many calls came before."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import cv2
import numpy as np

from pixelrefer.segment.base import ProgressFn, SegmentPrompt, SegmentResult

logger = logging.getLogger(__name__)

GRABCUT_ITERATIONS = 5
GRABCUT_SEED = 0  # OpenCV's RNG state for each GrabCut call (its GMM k-means init)
MAX_WORK_SIDE = 256  # GrabCut runs on a crop scaled so its longer side is at most this
CONTEXT_MARGIN = 0.5  # crop = region of interest grown by this fraction of its size on each side
MIN_CONTEXT_PX = 12
FLOOD_MAX_SHARE = 0.5  # a flood fill covering more than this share of the image has leaked
FLOOD_TOL_RANGE = (6.0, 40.0)  # clamp of the per-channel flood tolerance
SEED_RADIUS_SHARE = 0.012  # click disk radius as a share of min(H, W)
PROPAGATION_AREA_RATIO = (0.4, 2.5)  # re-segmented/warped area outside this range: keep the warped mask
MIN_OBJECT_PIXELS = 4
COLLAPSE_SHARE = 0.5  # GrabCut keeping less than this share of the flood fill has collapsed onto the seeds


def _disk_mask(points: np.ndarray, radius: int, shape: tuple[int, int]) -> np.ndarray:
    canvas = np.zeros(shape, np.uint8)
    for x, y in np.round(points).astype(int):
        cv2.circle(canvas, (int(x), int(y)), radius, 1, -1)
    return canvas.astype(bool)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _grow(box: Sequence[float], share: float, min_px: int, height: int, width: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    mx = max(min_px, share * (x1 - x0))
    my = max(min_px, share * (y1 - y0))
    return (max(0, int(np.floor(x0 - mx))), max(0, int(np.floor(y0 - my))),
            min(width, int(np.ceil(x1 + mx))), min(height, int(np.ceil(y1 + my))))


def flood_fill(image: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Pixels connected to the seed pixels within a colour tolerance set from the local noise level."""
    height, width = image.shape[:2]
    smooth = cv2.medianBlur(image, 5)
    out = np.zeros((height + 2, width + 2), np.uint8)
    ys, xs = np.nonzero(seeds)
    step = max(1, len(xs) // 16)
    for x, y in zip(xs[::step], ys[::step]):
        if out[y + 1, x + 1]:
            continue
        patch = smooth[max(0, y - 3): y + 4, max(0, x - 3): x + 4].reshape(-1, 3).astype(np.float64)
        tol = float(np.clip(3.0 * patch.std(axis=0).max() + 4.0, *FLOOD_TOL_RANGE))
        flags = 8 | cv2.FLOODFILL_FIXED_RANGE | cv2.FLOODFILL_MASK_ONLY | (1 << 8)
        cv2.floodFill(smooth, out, (int(x), int(y)), 0, (tol,) * 3, (tol,) * 3, flags)
    return out[1:-1, 1:-1].astype(bool)


def _keep_components(mask: np.ndarray, seeds: np.ndarray | None) -> np.ndarray:
    """Connected components touching the seeds, or the largest one when there are no seeds."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask
    if seeds is not None and seeds.any():
        keep = np.unique(labels[seeds & mask])
        keep = keep[keep > 0]
        if len(keep):
            return np.isin(labels, keep)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def grabcut(image: np.ndarray, init: np.ndarray, roi: tuple[int, int, int, int]) -> np.ndarray:
    """Run GrabCut with an initial label map (cv2.GC_*), on a crop around ``roi`` at bounded resolution."""
    height, width = image.shape[:2]
    x0, y0, x1, y1 = _grow(roi, CONTEXT_MARGIN, MIN_CONTEXT_PX, height, width)
    crop_img, crop_lab = image[y0:y1, x0:x1], init[y0:y1, x0:x1].copy()
    if not np.isin(crop_lab, (cv2.GC_BGD, cv2.GC_PR_BGD)).any():
        crop_lab[[0, -1], :] = cv2.GC_PR_BGD
        crop_lab[:, [0, -1]] = cv2.GC_PR_BGD
    if not np.isin(crop_lab, (cv2.GC_FGD, cv2.GC_PR_FGD)).any():
        return np.zeros((height, width), bool)
    scale = min(1.0, MAX_WORK_SIDE / max(crop_img.shape[:2]))
    if scale < 1.0:
        size = (max(1, round(crop_img.shape[1] * scale)), max(1, round(crop_img.shape[0] * scale)))
        crop_img = cv2.resize(crop_img, size, interpolation=cv2.INTER_AREA)
        crop_lab = cv2.resize(crop_lab, size, interpolation=cv2.INTER_NEAREST)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    bgr = np.ascontiguousarray(crop_img[:, :, ::-1])
    cv2.setRNGSeed(GRABCUT_SEED)
    try:
        cv2.grabCut(bgr, crop_lab, None, bgd, fgd, GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_MASK)
    except cv2.error as exc:
        logger.debug("GrabCut failed (%s); keeping the initial labels", exc)
    fg = np.isin(crop_lab, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    if scale < 1.0:
        fg = cv2.resize(fg, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
    out = np.zeros((height, width), bool)
    out[y0:y1, x0:x1] = fg.astype(bool)
    return out


def _seeds(prompt: SegmentPrompt, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    radius = max(2, round(SEED_RADIUS_SHARE * min(shape)))
    fg = _disk_mask(prompt.positive_points(), radius, shape)
    bg = _disk_mask(prompt.negative_points(), radius, shape)
    if prompt.scribble is not None:
        fg |= prompt.scribble
    if prompt.negative_scribble is not None:
        bg |= prompt.negative_scribble
    return fg & ~bg, bg


def _segment_box(image: np.ndarray, box: np.ndarray) -> SegmentResult:
    height, width = image.shape[:2]
    x0, y0 = int(np.floor(box[0])), int(np.floor(box[1]))
    x1, y1 = int(np.ceil(box[2])), int(np.ceil(box[3]))
    init = np.full((height, width), cv2.GC_BGD, np.uint8)
    init[y0:y1, x0:x1] = cv2.GC_PR_FGD
    mask = _keep_components(grabcut(image, init, (x0, y0, x1, y1)), None)
    if mask.sum() < MIN_OBJECT_PIXELS:
        logger.warning("GrabCut found no object in box %s; returning the box itself (score 0)", box.tolist())
        mask = init == cv2.GC_PR_FGD
        return SegmentResult(mask, 0.0)
    return SegmentResult(mask, float("nan"))


def _segment_seeds(image: np.ndarray, prompt: SegmentPrompt) -> SegmentResult:
    height, width = image.shape[:2]
    fg, bg = _seeds(prompt, (height, width))
    candidate = flood_fill(image, fg) & ~bg
    if candidate.mean() > FLOOD_MAX_SHARE:
        candidate = fg.copy()
    init = np.full((height, width), cv2.GC_PR_BGD, np.uint8)
    init[candidate] = cv2.GC_PR_FGD
    init[fg] = cv2.GC_FGD
    init[bg] = cv2.GC_BGD
    roi = _bbox(candidate | fg)
    assert roi is not None  # fg is non-empty: prompts are validated upstream
    outer = _grow(roi, 0.5, MIN_CONTEXT_PX, height, width)
    far = np.ones((height, width), bool)
    far[outer[1]:outer[3], outer[0]:outer[2]] = False
    init[far] = cv2.GC_BGD
    if prompt.box is not None:
        bx0, by0, bx1, by1 = np.round(prompt.box).astype(int)
        inside = np.zeros_like(far)
        inside[by0:by1, bx0:bx1] = True
        init[~inside] = cv2.GC_BGD
    mask = _keep_components(grabcut(image, init, outer), fg)
    if mask.sum() < COLLAPSE_SHARE * candidate.sum():
        # GrabCut collapses onto the seeds when object and background colours overlap; the flood fill
        # (bounded by FLOOD_MAX_SHARE above) is the better estimate of the object's extent then.
        logger.debug("GrabCut kept %d of %d flood-filled pixels; using the flood fill", mask.sum(), candidate.sum())
        return SegmentResult(_keep_components(candidate | mask, fg), 0.0)
    return SegmentResult(mask, float("nan"))


class ClassicalSegmenter:
    """The weight-free segmenter: GrabCut + flood fill on images, DIS optical flow + GrabCut on videos."""

    name = "classical"

    def segment(self, image: np.ndarray, prompt: SegmentPrompt) -> SegmentResult:
        image = np.ascontiguousarray(image[:, :, :3], dtype=np.uint8)
        has_seeds = (prompt.points is not None) or (prompt.scribble is not None)
        if prompt.box is not None and not has_seeds:
            return _segment_box(image, prompt.box)
        if not has_seeds:
            raise ValueError("a segment prompt needs points, a box or a scribble")
        return _segment_seeds(image, prompt)

    def propagate(
        self,
        frames: Sequence[np.ndarray],
        masks: dict[int, np.ndarray],
        progress: ProgressFn | None = None,
    ) -> dict[int, np.ndarray]:
        from pixelrefer.segment.flow import propagate_with_flow

        return propagate_with_flow(frames, masks, progress)
