"""Segmentation backends that turn point/box/scribble prompts into masks and carry masks through videos.

``get_segmenter("auto")`` uses SAM2 when weights are configured (the ``weights`` argument or the
``PIXELREFER_SAM2`` environment variable: a local folder or a hub id), else the classical fallback,
and logs which one it picked.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from pixelrefer.segment.base import Segmenter, SegmentPrompt, SegmentResult
from pixelrefer.segment.classical import ClassicalSegmenter

logger = logging.getLogger(__name__)

SAM2_ENV = "PIXELREFER_SAM2"
SEGMENTER_NAMES = ("auto", "classical", "sam2")

__all__ = ["SAM2_ENV", "ClassicalSegmenter", "SegmentPrompt", "SegmentResult", "Segmenter", "get_segmenter"]


def get_segmenter(
    name: str = "auto",
    weights: str | os.PathLike | None = None,
    device: Any = "cpu",
    dtype: Any = None,
) -> Segmenter:
    """Build a segmenter: ``"classical"``, ``"sam2"`` (needs weights) or ``"auto"``.

    ``weights``: a local SAM2 folder or hub id (default: ``$PIXELREFER_SAM2``). ``device``/``dtype``
    are passed to SAM2 (``dtype`` default float32); the classical segmenter ignores them.
    """
    if name not in SEGMENTER_NAMES:
        raise ValueError(f"unknown segmenter {name!r}; choose one of {SEGMENTER_NAMES}")
    weights = weights or os.environ.get(SAM2_ENV) or None
    if name == "classical" or (name == "auto" and weights is None):
        if name == "auto":
            logger.info("segmenter: classical (GrabCut + optical flow); set %s to use SAM2", SAM2_ENV)
        return ClassicalSegmenter()
    if weights is None:
        raise ValueError(f"the sam2 segmenter needs weights: pass weights=... or set {SAM2_ENV}")
    from pixelrefer.segment.sam2 import Sam2Segmenter

    segmenter = Sam2Segmenter.from_pretrained(weights, device=device, dtype=dtype)
    logger.info("segmenter: sam2 from %s on %s", weights, device)
    return segmenter
