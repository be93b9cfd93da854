"""What a segmentation backend does: prompts -> one mask on an image; masks -> masks through a video.

Coordinates are pixels, ``x`` along the width and ``y`` along the height (SAM convention); masks are
``(H, W)`` bool arrays indexed ``[row, col]`` = ``[y, x]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class SegmentPrompt:
    """A validated, pixel-space prompt for one image.

    ``points``: ``(N, 2)`` float ``x, y``; ``labels``: ``(N,)`` int, 1 = on the object, 0 = background.
    ``box``: ``(4,)`` float ``x0, y0, x1, y1`` (inclusive-exclusive pixel extent).
    ``scribble`` / ``negative_scribble``: ``(H, W)`` bool brush masks on / off the object.
    """

    points: np.ndarray | None = None
    labels: np.ndarray | None = None
    box: np.ndarray | None = None
    scribble: np.ndarray | None = None
    negative_scribble: np.ndarray | None = None

    def positive_points(self) -> np.ndarray:
        if self.points is None or self.labels is None:
            return np.zeros((0, 2))
        return self.points[self.labels == 1]

    def negative_points(self) -> np.ndarray:
        if self.points is None or self.labels is None:
            return np.zeros((0, 2))
        return self.points[self.labels == 0]


@dataclass(frozen=True)
class SegmentResult:
    """One mask (``(H, W)`` bool) with the backend's confidence in ``[0, 1]`` (or ``nan`` if it has none)."""

    mask: np.ndarray
    score: float


@runtime_checkable
class Segmenter(Protocol):
    """A segmentation backend. ``name`` says which one ran (``"classical"``, ``"sam2"``)."""

    name: str

    def segment(self, image: np.ndarray, prompt: SegmentPrompt) -> SegmentResult:
        """Segment the object that ``prompt`` designates in an ``(H, W, 3) uint8`` RGB image."""
        ...

    def propagate(
        self,
        frames: Sequence[np.ndarray],
        masks: dict[int, np.ndarray],
        progress: ProgressFn | None = None,
    ) -> dict[int, np.ndarray]:
        """Carry annotated masks (``{frame position: mask}``) to every frame, forward and backward.

        Returns a mask for every position ``0..len(frames)-1`` (annotated ones unchanged); an object that
        leaves the scene gets an all-False mask. ``progress(n)`` is called with the number of frames done.
        """
        ...
