"""JSON form of one prompt (see the schema in :mod:`pixelrefer.regions`)."""

from __future__ import annotations

from collections.abc import Callable
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

COMMON_KEYS = frozenset({"type", "frame"})


def _keys(data: dict[str, Any], required: set[str], optional: set[str]) -> None:
    missing = required - data.keys()
    if missing:
        raise RegionError(f"region of type {data['type']!r} needs key(s) {sorted(missing)}")
    unknown = data.keys() - required - optional - COMMON_KEYS
    if unknown:
        raise RegionError(f"region of type {data['type']!r} has unknown key(s) {sorted(unknown)}")


def _mask(data: dict[str, Any]) -> Prompt:
    _keys(data, {"mask"}, set())
    return MaskPrompt(np.asarray(data["mask"]))


def _mask_png(data: dict[str, Any]) -> Prompt:
    _keys(data, {"data"}, {"channel"})
    return MaskPrompt(codecs.png_bytes_to_mask(codecs.b64_to_bytes(data["data"]), data.get("channel", "auto")))


def _rle(data: dict[str, Any]) -> Prompt:
    _keys(data, {"rle"}, set())
    return RLEPrompt(data["rle"])


def _polygon(data: dict[str, Any]) -> Prompt:
    _keys(data, {"polygons"}, {"size"})
    size = data.get("size")
    return PolygonPrompt(data["polygons"], tuple(size) if size is not None else None)


def _box(data: dict[str, Any]) -> Prompt:
    _keys(data, {"box"}, {"format", "normalized"})
    return BoxPrompt(data["box"], data.get("format", "xyxy"), bool(data.get("normalized", False)))


def _points(data: dict[str, Any]) -> Prompt:
    _keys(data, {"points"}, {"labels", "normalized"})
    return PointsPrompt(data["points"], data.get("labels"), bool(data.get("normalized", False)))


def _brush(value: Any) -> np.ndarray | None:
    return None if value is None else codecs.decode_rle(value)


def _scribble(data: dict[str, Any]) -> Prompt:
    _keys(data, set(), {"strokes", "negative_strokes", "width", "normalized", "brush", "negative_brush"})
    return ScribblePrompt(
        strokes=data.get("strokes") or [],
        negative_strokes=data.get("negative_strokes") or [],
        width=float(data.get("width", ScribblePrompt.width)),
        normalized=bool(data.get("normalized", False)),
        brush=_brush(data.get("brush")),
        negative_brush=_brush(data.get("negative_brush")),
    )


PARSERS: dict[str, Callable[[dict[str, Any]], Prompt]] = {
    "mask": _mask,
    "mask_png": _mask_png,
    "rle": _rle,
    "polygon": _polygon,
    "box": _box,
    "points": _points,
    "scribble": _scribble,
}


def prompt_from_dict(data: Any) -> Prompt:
    """Parse one prompt dict (``{"type": ..., ...}``); raises :class:`RegionError` on any problem."""
    if not isinstance(data, dict):
        raise RegionError(f"a region must be a JSON object, got {type(data).__name__}")
    kind = data.get("type")
    if kind not in PARSERS:
        raise RegionError(f"unknown region type {kind!r}; expected one of {sorted(PARSERS) + ['frames']}")
    return PARSERS[kind](data)
