"""Carry masks through video frames with dense optical flow (OpenCV DIS) and GrabCut re-segmentation."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

import cv2
import numpy as np

from pixelrefer.segment.base import ProgressFn
from pixelrefer.segment.classical import MIN_OBJECT_PIXELS, PROPAGATION_AREA_RATIO, _bbox, grabcut

logger = logging.getLogger(__name__)

BAND_SHARE = 0.15  # uncertain band around the warped mask, as a share of the object's size
MIN_BAND_PX = 2
HIST_BINS = 8  # per RGB channel, for the appearance check
MAX_APPEARANCE_DISTANCE = 0.6  # Bhattacharyya distance to the annotated object above which it is gone
MIN_VISIBLE_SHARE = 0.05  # an object smaller than this share of its annotated area is gone


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(frame[:, :, :3], dtype=np.uint8), cv2.COLOR_RGB2GRAY)


def warp_mask(flow_engine: cv2.DISOpticalFlow, prev: np.ndarray, cur: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Move ``mask`` from frame ``prev`` to frame ``cur``: backward flow cur -> prev, then a remap."""
    flow = flow_engine.calc(_gray(cur), _gray(prev), None)
    height, width = mask.shape
    gx, gy = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    warped = cv2.remap(mask.astype(np.float32), gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return warped >= 0.5


def shift_by_template(prev: np.ndarray, cur: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """Move ``mask`` by the translation whose masked pixels of ``prev`` best match ``cur`` (squared difference),
    searched within one object size around the mask: follows fast rigid motion that dense flow loses."""
    box = _bbox(mask)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    reach = max(x1 - x0, y1 - y0)
    height, width = mask.shape
    sx0, sy0 = max(0, x0 - reach), max(0, y0 - reach)
    sx1, sy1 = min(width, x1 + reach), min(height, y1 + reach)
    template = np.ascontiguousarray(prev[y0:y1, x0:x1, :3], dtype=np.float32)
    weights = np.repeat(mask[y0:y1, x0:x1, None], 3, axis=2).astype(np.float32)
    search = np.ascontiguousarray(cur[sy0:sy1, sx0:sx1, :3], dtype=np.float32)
    if search.shape[0] < template.shape[0] or search.shape[1] < template.shape[1]:
        return None
    cost = cv2.matchTemplate(search, template, cv2.TM_SQDIFF, mask=weights)
    _, _, best, _ = cv2.minMaxLoc(cost)
    dx, dy = sx0 + best[0] - x0, sy0 + best[1] - y0
    moved = cv2.warpAffine(mask.astype(np.uint8), np.float32([[1, 0, dx], [0, 1, dy]]), (width, height),
                           flags=cv2.INTER_NEAREST, borderValue=0)
    return moved.astype(bool)


def follow(engine: cv2.DISOpticalFlow, prev: np.ndarray, cur: np.ndarray, mask: np.ndarray,
           reference: tuple[np.ndarray, int]) -> np.ndarray:
    """The mask on ``cur``: the flow-warped or the template-shifted one, whichever looks more like the annotated
    object, then re-segmented around it."""
    candidates = [warp_mask(engine, prev, cur, mask)]
    shifted = shift_by_template(prev, cur, mask)
    if shifted is not None and shifted.sum() >= MIN_OBJECT_PIXELS:
        candidates.append(shifted)

    def distance(candidate: np.ndarray) -> float:
        if candidate.sum() < MIN_OBJECT_PIXELS:
            return float("inf")
        return cv2.compareHist(reference[0], colour_histogram(cur, candidate), cv2.HISTCMP_BHATTACHARYYA)

    return refine(cur, min(candidates, key=distance))


def refine(frame: np.ndarray, warped: np.ndarray) -> np.ndarray:
    """Re-segment around a warped mask: its eroded core is object, a band around it is uncertain."""
    box = _bbox(warped)
    if box is None or warped.sum() < MIN_OBJECT_PIXELS:
        return np.zeros_like(warped)
    band = max(MIN_BAND_PX, round(BAND_SHARE * min(box[2] - box[0], box[3] - box[1])))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    core = cv2.erode(warped.astype(np.uint8), kernel).astype(bool)
    halo = cv2.dilate(warped.astype(np.uint8), kernel).astype(bool)
    init = np.full(warped.shape, cv2.GC_BGD, np.uint8)
    init[halo] = cv2.GC_PR_BGD
    init[warped] = cv2.GC_PR_FGD
    init[core] = cv2.GC_FGD
    refined = grabcut(np.ascontiguousarray(frame[:, :, :3], dtype=np.uint8), init, _bbox(halo) or box)
    ratio = refined.sum() / max(1, warped.sum())
    if not PROPAGATION_AREA_RATIO[0] <= ratio <= PROPAGATION_AREA_RATIO[1]:
        logger.debug("re-segmentation changed the area by %.2fx; keeping the flow-warped mask", ratio)
        return warped
    return refined


def colour_histogram(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Normalised RGB histogram of the masked pixels."""
    image = np.ascontiguousarray(frame[:, :, :3], dtype=np.uint8)
    hist = cv2.calcHist([image], [0, 1, 2], mask.astype(np.uint8), [HIST_BINS] * 3, [0, 256] * 3)
    return cv2.normalize(hist, None, alpha=1.0, norm_type=cv2.NORM_L1)


def still_there(frame: np.ndarray, mask: np.ndarray, reference: tuple[np.ndarray, int]) -> bool:
    """False when the mask has shrunk to almost nothing or no longer looks like the annotated object."""
    hist, area = reference
    if mask.sum() < max(MIN_OBJECT_PIXELS, MIN_VISIBLE_SHARE * area):
        return False
    distance = cv2.compareHist(hist, colour_histogram(frame, mask), cv2.HISTCMP_BHATTACHARYYA)
    return distance <= MAX_APPEARANCE_DISTANCE


def _run(order: list[int], frames: Sequence[np.ndarray], out: dict[int, np.ndarray],
         engine: cv2.DISOpticalFlow, progress: ProgressFn | None) -> None:
    reference = (colour_histogram(frames[order[0]], out[order[0]]), int(out[order[0]].sum()))
    for prev, cur in itertools.pairwise(order):
        if cur in out:  # an annotated frame restarts the chain
            reference = (colour_histogram(frames[cur], out[cur]), int(out[cur].sum()))
            continue
        mask = out[prev]
        if mask.any():
            mask = follow(engine, frames[prev], frames[cur], mask, reference)
            if not still_there(frames[cur], mask, reference):
                logger.debug("the object is gone on frame %d", cur)
                mask = np.zeros_like(mask)
        out[cur] = mask
        if progress is not None:
            progress(1)


def propagate_with_flow(
    frames: Sequence[np.ndarray], masks: dict[int, np.ndarray], progress: ProgressFn | None = None
) -> dict[int, np.ndarray]:
    """Forward from each annotated frame to the next one, and backward from the first to frame 0."""
    if not masks:
        raise ValueError("propagation needs at least one annotated mask")
    n = len(frames)
    bad = [f for f in masks if not 0 <= f < n]
    if bad:
        raise ValueError(f"annotated frames {bad} are outside 0..{n - 1}")
    engine = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    out = {f: np.asarray(m, dtype=bool) for f, m in masks.items()}
    first = min(out)
    _run(list(range(first, n)), frames, out, engine, progress)
    _run(list(range(first, -1, -1)), frames, out, engine, progress)
    return dict(sorted(out.items()))
