"""Prompt kinds of a region on one frame, their JSON form, and their validation against an image size.

Mask-like prompts (:class:`MaskPrompt`, :class:`RLEPrompt`, :class:`PolygonPrompt`) become masks
directly. The others (:class:`BoxPrompt`, :class:`PointsPrompt`, :class:`ScribblePrompt`) become a
:class:`~pixelrefer.segment.base.SegmentPrompt` in pixels, which a segmenter turns into a mask.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import cv2
import numpy as np

from pixelrefer.limits import check_scribble_width
from pixelrefer.regions import codecs
from pixelrefer.regions.errors import RegionError
from pixelrefer.segment.base import SegmentPrompt

logger = logging.getLogger(__name__)

BOX_FORMATS = ("xyxy", "xywh")
DEFAULT_SCRIBBLE_WIDTH = 5.0


def _numbers(values: Any, what: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RegionError(f"{what} must be numbers: {exc}") from exc
    if not np.all(np.isfinite(array)):
        raise RegionError(f"{what} must be finite numbers, got {array.tolist()}")
    return array


def _box4(values: Any) -> np.ndarray:
    array = _numbers(values, "a box")
    if array.shape != (4,):
        raise RegionError(f"a box needs 4 numbers, got shape {array.shape}")
    return array


def _xy(values: Any, what: str) -> np.ndarray:
    """``(N, 2)`` float ``x, y`` with N >= 1 (a single ``[x, y]`` pair is accepted)."""
    array = _numbers(values, what)
    if array.shape == (2,):
        array = array[None]
    if array.ndim != 2 or array.shape[1] != 2 or len(array) == 0:
        raise RegionError(f"{what} must be a non-empty list of [x, y] pairs, got shape {array.shape}")
    return array


def _scale(xy: np.ndarray, normalized: bool, height: int, width: int) -> np.ndarray:
    if not normalized:
        return xy
    if np.any(xy < -1e-6) or np.any(xy > 1 + 1e-6):
        raise RegionError(f"normalised coordinates must lie in [0, 1], got {xy.reshape(-1).tolist()}")
    return xy * np.array([width, height], dtype=np.float64)


@dataclass(frozen=True, eq=False)
class Prompt:
    """Base class. ``needs_segmenter`` tells whether pixels and a segmenter are needed to get a mask."""

    kind: ClassVar[str] = ""
    needs_segmenter: ClassVar[bool] = False

    def to_mask(self, height: int, width: int) -> np.ndarray:
        raise NotImplementedError

    def to_segment_prompt(self, height: int, width: int) -> SegmentPrompt:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class MaskPrompt(Prompt):
    mask: np.ndarray
    kind: ClassVar[str] = "mask"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mask", codecs.to_bool_mask(self.mask))

    def to_mask(self, height: int, width: int) -> np.ndarray:
        if self.mask.shape != (height, width):
            raise RegionError(f"mask of shape {self.mask.shape} does not match the media size {(height, width)}")
        return self.mask

    def to_dict(self) -> dict[str, Any]:
        return {"type": "rle", "rle": codecs.encode_rle(self.mask)}


@dataclass(frozen=True, eq=False)
class RLEPrompt(Prompt):
    rle: dict[str, Any]
    kind: ClassVar[str] = "rle"

    def __post_init__(self) -> None:
        codecs.rle_size(self.rle)  # fail at construction on corrupt or oversized input, without decoding it

    def to_mask(self, height: int, width: int) -> np.ndarray:
        size = list(codecs.rle_size(self.rle))
        if size != [height, width]:
            raise RegionError(f"RLE size {size} (h, w) does not match the media size {[height, width]}")
        return codecs.decode_rle(self.rle)

    def to_dict(self) -> dict[str, Any]:
        counts = self.rle["counts"]
        counts = counts.decode("ascii") if isinstance(counts, bytes) else counts
        return {"type": "rle", "rle": {"size": [int(s) for s in self.rle["size"]], "counts": counts}}


@dataclass(frozen=True, eq=False)
class PolygonPrompt(Prompt):
    """COCO polygons in pixels; ``size`` = the (h, w) they were drawn on, checked against the media."""

    polygons: list[list[float]]
    size: tuple[int, int] | None = None
    kind: ClassVar[str] = "polygon"

    def __post_init__(self) -> None:
        object.__setattr__(self, "polygons", codecs.normalise_polygons(self.polygons))
        if self.size is not None:
            object.__setattr__(self, "size", codecs.check_size(self.size, "polygon"))

    def to_mask(self, height: int, width: int) -> np.ndarray:
        if self.size is not None and self.size != (height, width):
            raise RegionError(f"polygon drawn on size {list(self.size)} (h, w) but the media is {[height, width]}")
        return codecs.polygons_to_mask(self.polygons, height, width)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "polygon", "polygons": self.polygons}
        if self.size is not None:
            out["size"] = list(self.size)
        return out


@dataclass(frozen=True, eq=False)
class BoxPrompt(Prompt):
    """A box ``xyxy`` (corners) or ``xywh`` (corner + size), in pixels or normalised to [0, 1]."""

    box: np.ndarray
    format: str = "xyxy"
    normalized: bool = False
    kind: ClassVar[str] = "box"
    needs_segmenter: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.format not in BOX_FORMATS:
            raise RegionError(f"box format must be one of {BOX_FORMATS}, got {self.format!r}")
        object.__setattr__(self, "box", _box4(self.box))

    def xyxy(self, height: int, width: int) -> np.ndarray:
        """The box as pixel ``x0, y0, x1, y1``, clipped to the image; raises if degenerate or outside."""
        x0, y0, a, b = self.box
        corners = np.array([[x0, y0], [a, b] if self.format == "xyxy" else [x0 + a, y0 + b]])
        corners = _scale(corners, self.normalized, height, width)
        (x0, y0), (x1, y1) = corners
        if x1 <= x0 or y1 <= y0:
            raise RegionError(f"degenerate box {self.box.tolist()} ({self.format}): it must have positive width and height")
        clipped = np.array([max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)])
        if clipped[2] - clipped[0] < 1 or clipped[3] - clipped[1] < 1:
            raise RegionError(f"box {self.box.tolist()} lies outside the {width}x{height} image")
        if not np.allclose(clipped, [x0, y0, x1, y1]):
            logger.warning("box %s extends past the %dx%d image; clipped to %s", self.box.tolist(), width, height,
                           clipped.tolist())
        return clipped

    def to_segment_prompt(self, height: int, width: int) -> SegmentPrompt:
        return SegmentPrompt(box=self.xyxy(height, width))

    def to_dict(self) -> dict[str, Any]:
        return {"type": "box", "box": self.box.tolist(), "format": self.format, "normalized": self.normalized}


@dataclass(frozen=True, eq=False)
class PointsPrompt(Prompt):
    """Clicks ``(N, 2)`` ``x, y`` with labels 1 (object) / 0 (background); at least one positive."""

    points: np.ndarray
    labels: np.ndarray | None = None
    normalized: bool = False
    kind: ClassVar[str] = "points"
    needs_segmenter: ClassVar[bool] = True

    def __post_init__(self) -> None:
        points = _xy(self.points, "points")
        labels = np.ones(len(points), dtype=np.int64) if self.labels is None else np.asarray(self.labels)
        if labels.shape != (len(points),):
            raise RegionError(f"{len(points)} points but labels of shape {labels.shape}")
        if not np.isin(labels, (0, 1)).all():
            raise RegionError(f"point labels must be 1 (object) or 0 (background), got {labels.tolist()}")
        if not (labels == 1).any():
            raise RegionError("points need at least one positive (label 1) point on the object")
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "labels", labels.astype(np.int64))

    def to_segment_prompt(self, height: int, width: int) -> SegmentPrompt:
        xy = _scale(self.points, self.normalized, height, width)
        if self.normalized:
            xy = np.minimum(xy, np.array([width, height]) - 0.5)
        outside = (xy[:, 0] < 0) | (xy[:, 0] >= width) | (xy[:, 1] < 0) | (xy[:, 1] >= height)
        if outside.any():
            raise RegionError(f"points {xy[outside].tolist()} lie outside the {width}x{height} image")
        return SegmentPrompt(points=xy, labels=self.labels)

    def to_dict(self) -> dict[str, Any]:
        assert self.labels is not None
        return {"type": "points", "points": self.points.tolist(), "labels": self.labels.tolist(),
                "normalized": self.normalized}


def _strokes(strokes: Any, what: str) -> list[np.ndarray]:
    if strokes is None:
        return []
    if not isinstance(strokes, list | tuple | np.ndarray):
        raise RegionError(f"{what}s must be a list of [[x, y], ...] polylines, got {type(strokes).__name__}")
    if len(strokes) == 0:
        return []
    if codecs.depth(strokes) <= 2:
        strokes = [strokes]
    return [_xy(stroke, what) for stroke in strokes]


def _draw(strokes: Sequence[np.ndarray], width_px: float, height: int, width: int) -> np.ndarray:
    canvas = np.zeros((height, width), dtype=np.uint8)
    thickness = max(1, round(width_px))
    for stroke in strokes:
        codecs.check_near_image(stroke, height, width, "a scribble")
        pts = np.round(stroke).astype(np.int32).reshape(-1, 1, 2)
        if len(pts) == 1:
            cv2.circle(canvas, tuple(int(v) for v in pts[0, 0]), max(1, thickness // 2), 1, -1)
        else:
            cv2.polylines(canvas, [pts], False, 1, thickness)
    return canvas.astype(bool)


@dataclass(frozen=True, eq=False)
class ScribblePrompt(Prompt):
    """Strokes (polylines of ``x, y``) drawn ``width`` px wide, or a brush mask; optional negative ones."""

    strokes: list[np.ndarray] = field(default_factory=list)
    negative_strokes: list[np.ndarray] = field(default_factory=list)
    width: float = DEFAULT_SCRIBBLE_WIDTH
    normalized: bool = False
    brush: np.ndarray | None = None
    negative_brush: np.ndarray | None = None
    kind: ClassVar[str] = "scribble"
    needs_segmenter: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "strokes", _strokes(self.strokes, "a scribble stroke"))
        object.__setattr__(self, "negative_strokes", _strokes(self.negative_strokes, "a negative stroke"))
        for name in ("brush", "negative_brush"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, codecs.to_bool_mask(getattr(self, name), f"scribble {name}"))
        if not self.strokes and self.brush is None:
            raise RegionError("a scribble needs at least one stroke or a brush mask")
        if not (isinstance(self.width, numbers.Real) and np.isfinite(self.width) and self.width > 0):
            raise RegionError(f"scribble width must be a positive number, got {self.width!r}")
        check_scribble_width(self.width)

    def _layer(self, strokes: list[np.ndarray], brush: np.ndarray | None, height: int, width: int) -> np.ndarray:
        layer = _draw([_scale(s, self.normalized, height, width) for s in strokes], self.width, height, width)
        if brush is not None:
            if brush.shape != (height, width):
                raise RegionError(f"scribble brush of shape {brush.shape} does not match the media {(height, width)}")
            layer |= brush
        return layer

    def to_segment_prompt(self, height: int, width: int) -> SegmentPrompt:
        positive = self._layer(self.strokes, self.brush, height, width)
        negative = self._layer(self.negative_strokes, self.negative_brush, height, width)
        positive &= ~negative
        if not positive.any():
            raise RegionError(f"the scribble has no pixel inside the {width}x{height} image")
        return SegmentPrompt(scribble=positive, negative_scribble=negative if negative.any() else None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "scribble", "width": self.width, "normalized": self.normalized}
        if self.strokes:
            out["strokes"] = [s.tolist() for s in self.strokes]
        if self.negative_strokes:
            out["negative_strokes"] = [s.tolist() for s in self.negative_strokes]
        if self.brush is not None:
            out["brush"] = codecs.encode_rle(self.brush)
        if self.negative_brush is not None:
            out["negative_brush"] = codecs.encode_rle(self.negative_brush)
        return out
