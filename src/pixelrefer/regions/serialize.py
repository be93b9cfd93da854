"""JSON form of one prompt (see the schema in :mod:`pixelrefer.regions`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from pixelrefer.errors import PixelReferError
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
    if size is not None and not isinstance(size, list | tuple):
        raise RegionError(f"polygon 'size' must be [height, width], got {size!r}")
    return PolygonPrompt(data["polygons"], tuple(size) if size is not None else None)


def _box(data: dict[str, Any]) -> Prompt:
    _keys(data, {"box"}, {"format", "normalized"})
    return BoxPrompt(data["box"], data.get("format", "xyxy"), _flag(data, "normalized"))


def _points(data: dict[str, Any]) -> Prompt:
    _keys(data, {"points"}, {"labels", "normalized"})
    return PointsPrompt(data["points"], data.get("labels"), _flag(data, "normalized"))


def _brush(value: Any) -> np.ndarray | None:
    return None if value is None else codecs.decode_rle(value)


def _flag(data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if value not in (True, False):  # also accepts 0 and 1
        raise RegionError(f"{key!r} must be true or false, got {value!r}")
    return bool(value)


def _scribble(data: dict[str, Any]) -> Prompt:
    _keys(data, set(), {"strokes", "negative_strokes", "width", "normalized", "brush", "negative_brush"})
    width = data.get("width", ScribblePrompt.width)
    if isinstance(width, bool) or not isinstance(width, int | float):
        raise RegionError(f"scribble 'width' must be a number of pixels, got {width!r}")
    return ScribblePrompt(
        strokes=data.get("strokes") or [],
        negative_strokes=data.get("negative_strokes") or [],
        width=float(width),
        normalized=_flag(data, "normalized"),
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
    """Parse one prompt dict (``{"type": ..., ...}``); raises :class:`RegionError` on any problem.

    JSON values of the wrong type that reach numpy (ragged lists, strings where numbers belong) raise
    ``TypeError``/``ValueError`` there; at this boundary they become a :class:`RegionError` naming the type.
    """
    if not isinstance(data, dict):
        raise RegionError(f"a region must be a JSON object, got {type(data).__name__}")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in PARSERS:
        raise RegionError(f"unknown region type {kind!r}; expected one of {sorted(PARSERS) + ['frames']}")
    try:
        return PARSERS[kind](data)
    except PixelReferError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise RegionError(f"region of type {kind!r}: a value has the wrong type or shape ({exc})") from exc
