"""Shared loading for VideoRefer-Bench-D and -Q: per-object RLE masks keyed by source frame."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pixelrefer.eval.masks import decode_segmentation, require_file
from pixelrefer.eval.tasks.base import require, resolve_media
from pixelrefer.eval.types import BadItem


def _segmentation(frame_entry: Any) -> Any:
    if isinstance(frame_entry, dict) and "segmentation" in frame_entry:
        return frame_entry["segmentation"]
    return frame_entry


def object_masks(entry: dict[str, Any], all_frames: bool) -> list[dict[int, np.ndarray]]:
    """One ``{frame: mask}`` per object: only ``frame_idx`` (PixelRefer) or every annotated frame (Lite)."""
    (annotation,) = require(entry, "annotation")
    if not isinstance(annotation, list) or not annotation:
        raise BadItem("'annotation' must be a non-empty list of objects")
    regions = []
    for number, obj in enumerate(annotation):
        if not isinstance(obj, dict):
            raise BadItem(f"object {number} annotation is not a frame -> mask mapping")
        if all_frames:
            frames = {
                int(k): decode_segmentation(_segmentation(v)) for k, v in obj.items() if _segmentation(v)
            }
        else:
            (frame_idx,) = require(entry, "frame_idx")
            key = str(frame_idx) if str(frame_idx) in obj else frame_idx
            if key not in obj or _segmentation(obj[key]) is None:
                raise BadItem(f"object {number} has no mask on frame {frame_idx}")
            frames = {int(frame_idx): decode_segmentation(_segmentation(obj[key]))}
        if not frames:
            raise BadItem(f"object {number} has no annotated frame")
        regions.append(frames)
    return regions


def video_path(entry: dict[str, Any], media_root: Path) -> str:
    (video,) = require(entry, "video")
    name = video[0] if isinstance(video, list) and video else video
    if not isinstance(name, str):
        raise BadItem("'video' must be a path")
    return require_file(resolve_media(media_root, name))
