"""The Region type: one user-given region, on an image or on one or more video frames."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


class RegionError(ValueError):
    """A region cannot be turned into a usable mask (empty, wrong size, out of the image, ...)."""


@dataclass(frozen=True)
class ResolvedRegion:
    """Binary masks of one region, keyed by frame index (0 for a still image)."""

    masks: dict[int, np.ndarray]
    source: str = "mask"

    @property
    def frames(self) -> list[int]:
        return sorted(self.masks)


@dataclass(frozen=True)
class Region:
    """A region given as binary masks per frame. Other prompt kinds are added by the region layer."""

    kind: str
    data: dict[int, Any] = field(default_factory=dict)

    @classmethod
    def from_mask(cls, mask: np.ndarray, frame: int = 0) -> "Region":
        return cls(kind="mask", data={int(frame): np.asarray(mask)})

    @classmethod
    def from_frames(cls, masks: dict[int, np.ndarray]) -> "Region":
        return cls(kind="mask", data={int(k): np.asarray(v) for k, v in masks.items()})

    def resolve(self, height: int, width: int, num_frames: int = 1, segmenter: Any = None) -> ResolvedRegion:
        out: dict[int, np.ndarray] = {}
        for frame, mask in sorted(self.data.items()):
            if not 0 <= frame < num_frames:
                raise RegionError(f"region frame index {frame} is outside the media (0..{num_frames - 1})")
            mask = np.asarray(mask)
            if mask.ndim != 2:
                raise RegionError(f"a mask must be 2-D (H, W), got shape {mask.shape}")
            if mask.shape != (height, width):
                raise RegionError(f"mask of shape {mask.shape} does not match the media size {(height, width)}")
            binary = mask > 0
            if not binary.any():
                raise RegionError(f"the mask on frame {frame} is empty")
            out[frame] = binary
        if not out:
            raise RegionError("a region needs at least one mask")
        return ResolvedRegion(masks=out, source=self.kind)


def as_region(obj: Any) -> Region:
    """Accept a :class:`Region` or a 2-D mask array (frame 0)."""
    if isinstance(obj, Region):
        return obj
    if isinstance(obj, np.ndarray) or hasattr(obj, "__array__"):
        return Region.from_mask(np.asarray(obj))
    raise TypeError(f"cannot use {type(obj).__name__} as a region; pass a Region or a binary mask array")
