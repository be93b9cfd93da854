"""Region -> masks: the one place where prompts become masks (segmenting and propagating if needed)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pixelrefer.regions.errors import RegionError

if TYPE_CHECKING:
    from pixelrefer.regions.region import Region, ResolvedRegion
    from pixelrefer.segment.base import Segmenter

logger = logging.getLogger(__name__)


def _frame_list(frames: Any, num_frames: int, height: int, width: int) -> list[np.ndarray] | None:
    if frames is None:
        return None
    if isinstance(frames, np.ndarray) and frames.ndim == 3:
        frames = [frames]
    frames = list(getattr(frames, "frames", frames))
    if len(frames) != num_frames:
        raise RegionError(f"{len(frames)} frames given for media of {num_frames} frames")
    for frame in frames:
        if np.asarray(frame).shape[:2] != (height, width):
            raise RegionError(f"a frame of shape {np.asarray(frame).shape} does not match the size {(height, width)}")
    return frames


def _default_segmenter(segmenter: Segmenter | None) -> Segmenter:
    if segmenter is not None:
        return segmenter
    from pixelrefer.segment import get_segmenter

    return get_segmenter("classical")


def _check_mask(mask: np.ndarray, frame: int, what: str, warnings: list[str]) -> np.ndarray:
    if not mask.any():
        raise RegionError(f"the {what} on frame {frame} is empty (no pixel inside the region)")
    if mask.all():
        message = f"the {what} on frame {frame} covers the whole image (inverted or placeholder mask?)"
        logger.warning(message)
        warnings.append(message)
    return mask


def _propagate(
    masks: dict[int, np.ndarray],
    frames: list[np.ndarray],
    segmenter: Segmenter,
    progress: Callable[[int], None] | None,
    warnings: list[str],
) -> tuple[dict[int, np.ndarray], tuple[int, ...]]:
    carried = segmenter.propagate(frames, masks, progress=progress)
    missing = [i for i in range(len(frames)) if i not in carried]
    if missing:
        raise RegionError(f"the {segmenter.name} segmenter returned no mask for frames {missing}")
    out = {i: np.asarray(m, dtype=bool) for i, m in carried.items() if np.asarray(m).any()}
    out.update(masks)
    empty = tuple(sorted(i for i in range(len(frames)) if i not in out))
    if empty:
        message = f"the region vanished during propagation on {len(empty)} of {len(frames)} frames: {list(empty)}"
        logger.warning(message)
        warnings.append(message)
    return dict(sorted(out.items())), empty


def resolve_region(
    region: Region,
    height: int,
    width: int,
    num_frames: int,
    segmenter: Segmenter | None,
    frames: Sequence[np.ndarray] | np.ndarray | None,
    propagate: bool,
    progress: Callable[[int], None] | None,
) -> ResolvedRegion:
    """See :meth:`pixelrefer.regions.Region.resolve`."""
    from pixelrefer.regions.region import ResolvedRegion

    if height <= 0 or width <= 0 or num_frames <= 0:
        raise RegionError(f"invalid media size {height}x{width} with {num_frames} frames")
    prompts = region.prompts()
    if not prompts:
        raise RegionError("a region needs at least one prompt")
    for frame in prompts:
        if not 0 <= frame < num_frames:
            raise RegionError(f"region frame index {frame} is outside the media (0..{num_frames - 1})")
    pixels = _frame_list(frames, num_frames, height, width)
    used: Segmenter | None = None
    masks: dict[int, np.ndarray] = {}
    scores: dict[int, float] = {}
    warnings: list[str] = []
    for frame, prompt in prompts.items():
        if not prompt.needs_segmenter:
            masks[frame] = _check_mask(prompt.to_mask(height, width), frame, f"{prompt.kind} mask", warnings)
            continue
        seg_prompt = prompt.to_segment_prompt(height, width)
        if pixels is None:
            raise RegionError(f"a {prompt.kind} region needs the image pixels to be segmented (pass frames=...)")
        used = _default_segmenter(segmenter if used is None else used)
        result = used.segment(pixels[frame], seg_prompt)
        masks[frame] = _check_mask(np.asarray(result.mask, dtype=bool), frame, f"{used.name} mask for the "
                                   f"{prompt.kind} prompt", warnings)
        scores[frame] = float(result.score)
    empty: tuple[int, ...] = ()
    if propagate and num_frames > 1:
        if pixels is None:
            raise RegionError("propagating a region through a video needs the frames (pass frames=...)")
        used = _default_segmenter(segmenter if used is None else used)
        masks, empty = _propagate(masks, pixels, used, progress, warnings)
    return ResolvedRegion(masks=masks, source=region.kind, segmenter=used.name if used else None, scores=scores,
                          empty_frames=empty, warnings=tuple(warnings))
