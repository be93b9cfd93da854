"""The Region type: one user-given region, on an image or on one or more video frames."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixelrefer.regions import codecs
from pixelrefer.regions.errors import RegionError
from pixelrefer.regions.prompts import (
    BoxPrompt,
    MaskPrompt,
    PointsPrompt,
    PolygonPrompt,
    Prompt,
    RLEPrompt,
    ScribblePrompt,
)
from pixelrefer.regions.serialize import prompt_from_dict
from pixelrefer.utils.text import ascii_decimal

logger = logging.getLogger(__name__)

__all__ = ["Region", "RegionError", "ResolvedRegion", "as_region"]


@dataclass(frozen=True)
class ResolvedRegion:
    """Binary masks of one region, keyed by frame index (0 for a still image).

    ``masks`` holds only non-empty masks. ``empty_frames`` lists frames where propagation found the
    object gone; ``scores`` the segmenter's confidence per segmented frame; ``segmenter`` the backend
    used (``None`` when every prompt was already a mask); ``warnings`` anything worth telling the user.
    """

    masks: dict[int, np.ndarray]
    source: str = "mask"
    segmenter: str | None = None
    scores: dict[int, float] = field(default_factory=dict)
    empty_frames: tuple[int, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def frames(self) -> list[int]:
        return sorted(self.masks)


def _as_prompt(value: Any) -> Prompt:
    if isinstance(value, Prompt):
        return value
    if isinstance(value, Region):
        if set(value.data) != {0}:
            raise RegionError("a per-frame entry must be a single-frame prompt")
        return _as_prompt(value.data[0])
    if isinstance(value, dict):
        return prompt_from_dict(value)
    if isinstance(value, np.ndarray) or hasattr(value, "__array__"):
        return MaskPrompt(np.asarray(value))
    raise RegionError(f"cannot use {type(value).__name__} as a region prompt")


def _frame(frame: Any) -> int:
    """A frame index from an int or a decimal string (JSON object keys are strings)."""
    if isinstance(frame, (int, np.integer)) and not isinstance(frame, bool) and frame >= 0:
        return int(frame)
    number = ascii_decimal(frame) if isinstance(frame, str) else None
    if number is not None:
        return number
    raise RegionError(f"frame index must be a non-negative integer, got {frame!r}")


@dataclass(frozen=True)
class Region:
    """A region: one prompt per annotated frame (``data = {frame index: prompt}``; 0 for an image).

    Build it with a ``from_*`` constructor, :meth:`from_dict` (JSON) or :func:`as_region`; turn it
    into masks with :meth:`resolve`. ``kind`` is the prompt type, or ``"mixed"`` across frames.
    """

    kind: str
    data: dict[int, Any] = field(default_factory=dict)

    @classmethod
    def from_prompts(cls, prompts: Mapping[Any, Any]) -> Region:
        """Per-frame prompts ``{frame: prompt}``; a prompt is a Prompt, dict, mask array or single-frame Region."""
        if not prompts:
            raise RegionError("a region needs at least one prompt")
        data = {_frame(k): _as_prompt(v) for k, v in prompts.items()}
        kinds = {p.kind for p in data.values()}
        return cls(kind=kinds.pop() if len(kinds) == 1 else "mixed", data=dict(sorted(data.items())))

    @classmethod
    def from_mask(cls, mask: np.ndarray, frame: int = 0) -> Region:
        return cls.from_prompts({frame: MaskPrompt(np.asarray(mask))})

    @classmethod
    def from_frames(cls, masks: Mapping[int, np.ndarray]) -> Region:
        return cls.from_prompts({k: MaskPrompt(np.asarray(v)) for k, v in masks.items()})

    @classmethod
    def from_mask_file(cls, path: str | os.PathLike, frame: int = 0, channel: str = "auto") -> Region:
        """A PNG (or other image) mask: its alpha channel if it has one, else its non-zero pixels."""
        return cls.from_prompts({frame: MaskPrompt(codecs.load_mask_file(path, channel))})

    @classmethod
    def from_rgba(cls, image: Any, frame: int = 0) -> Region:
        """The alpha channel (> 0) of an RGBA PIL image or ``(H, W, 4)`` array."""
        if hasattr(image, "mode"):
            return cls.from_prompts({frame: MaskPrompt(codecs.mask_from_image(image, "alpha"))})
        array = np.asarray(image)
        if array.ndim != 3 or array.shape[2] != 4:
            raise RegionError(f"an RGBA array must have shape (H, W, 4), got {array.shape}")
        return cls.from_prompts({frame: MaskPrompt(array[:, :, 3] > 0)})

    @classmethod
    def from_rle(cls, rle: dict[str, Any], frame: int = 0) -> Region:
        """COCO RLE, compressed (``counts`` str) or uncompressed (``counts`` list of ints)."""
        return cls.from_prompts({frame: RLEPrompt(rle)})

    @classmethod
    def from_polygon(cls, polygons: Any, size: tuple[int, int] | None = None, frame: int = 0) -> Region:
        """COCO polygon(s) in pixels; ``size`` = (height, width) of the image they belong to."""
        return cls.from_prompts({frame: PolygonPrompt(polygons, size)})

    @classmethod
    def from_box(cls, box: Sequence[float], fmt: str = "xyxy", normalized: bool = False, frame: int = 0) -> Region:
        """A box: ``xyxy`` = (x0, y0, x1, y1), ``xywh`` = (x0, y0, w, h); pixels or normalised to [0, 1]."""
        return cls.from_prompts({frame: BoxPrompt(np.asarray(box), fmt, normalized)})

    @classmethod
    def from_points(
        cls, points: Any, labels: Sequence[int] | None = None, normalized: bool = False, frame: int = 0
    ) -> Region:
        """Clicks ``[[x, y], ...]`` with labels 1 (on the object, the default) or 0 (background)."""
        return cls.from_prompts({frame: PointsPrompt(points, None if labels is None else np.asarray(labels),
                                                     normalized)})

    @classmethod
    def from_scribble(
        cls,
        strokes: Any = None,
        brush: np.ndarray | None = None,
        negative_strokes: Any = None,
        width: float = ScribblePrompt.width,
        frame: int = 0,
    ) -> Region:
        """Strokes (each ``[[x, y], ...]``) drawn ``width`` px wide and/or a brush mask on the object."""
        prompt = ScribblePrompt(strokes=[] if strokes is None else strokes,
                                negative_strokes=[] if negative_strokes is None else negative_strokes, width=width,
                                brush=brush)
        return cls.from_prompts({frame: prompt})

    @classmethod
    def from_dict(cls, data: Any) -> Region:
        """Parse the JSON form (see :mod:`pixelrefer.regions` for the schema)."""
        if isinstance(data, dict) and data.get("type") == "frames":
            unknown = data.keys() - {"type", "frames"}
            if unknown or not isinstance(data.get("frames"), dict):
                raise RegionError("a 'frames' region is {\"type\": \"frames\", \"frames\": {\"<frame>\": region}}")
            return cls.from_prompts(data["frames"])
        if not isinstance(data, dict):
            raise RegionError(f"a region must be a JSON object, got {type(data).__name__}")
        return cls.from_prompts({_frame(data.get("frame", 0)): prompt_from_dict(data)})

    def prompts(self) -> dict[int, Prompt]:
        return {frame: _as_prompt(value) for frame, value in self.data.items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form; masks are written as compressed RLE. ``from_dict(to_dict())`` resolves identically."""
        prompts = self.prompts()
        if len(prompts) == 1:
            frame, prompt = next(iter(prompts.items()))
            out = prompt.to_dict()
            return out if frame == 0 else {**out, "frame": frame}
        return {"type": "frames", "frames": {str(f): p.to_dict() for f, p in sorted(prompts.items())}}

    @property
    def needs_segmenter(self) -> bool:
        return any(p.needs_segmenter for p in self.prompts().values())

    def resolve(
        self,
        height: int,
        width: int,
        num_frames: int = 1,
        segmenter: Any = None,
        *,
        frames: Any = None,
        propagate: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> ResolvedRegion:
        """Masks of this region on media of ``height`` x ``width`` with ``num_frames`` frames.

        Box/points/scribble prompts need the pixels (``frames``: the image, or the list of frames) and
        are segmented by ``segmenter`` (default: the classical one). Mask prompts ignore both.
        ``propagate=True`` carries the masks to every frame of ``frames``; frames where the object
        vanishes are left out of ``masks`` and listed in ``empty_frames``.
        """
        from pixelrefer.regions.resolve import resolve_region

        return resolve_region(self, height, width, num_frames, segmenter, frames, propagate, progress)


def as_region(obj: Any) -> Region:
    """Accept a Region, a JSON dict, a 2-D mask array, an RGBA PIL image, a mask file path, or ``{frame: prompt}``."""
    if isinstance(obj, Region):
        return obj
    if isinstance(obj, ResolvedRegion):
        return Region.from_frames(obj.masks)
    if isinstance(obj, dict):
        if "type" in obj:
            return Region.from_dict(obj)
        if not all(isinstance(k, (int, np.integer)) or (isinstance(k, str) and ascii_decimal(k) is not None)
                   for k in obj):
            raise RegionError(f"a region dict needs a 'type' key (or frame-index keys), got keys {sorted(map(str, obj))}")
        return Region.from_prompts(obj)
    if isinstance(obj, (str, os.PathLike)):
        return Region.from_mask_file(Path(obj))
    if hasattr(obj, "mode") and hasattr(obj, "convert"):
        return Region.from_prompts({0: MaskPrompt(codecs.mask_from_image(obj))})
    if isinstance(obj, np.ndarray) or hasattr(obj, "__array__"):
        return Region.from_mask(np.asarray(obj))
    raise TypeError(f"cannot use {type(obj).__name__} as a region; pass a Region, a JSON dict or a binary mask array")
