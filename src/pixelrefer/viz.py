"""Draw regions on images and video frames (colour fill + contour + index label) and save PNG/GIF/mp4."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pixelrefer.media.image import load_image
from pixelrefer.media.video import write_video

PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
)
FILL_ALPHA = 0.45
CONTOUR_PX = 2


def color_for(index: int) -> tuple[int, int, int]:
    return PALETTE[index % len(PALETTE)]


def _label(canvas: np.ndarray, mask: np.ndarray, text: str, color: tuple[int, int, int]) -> None:
    dist = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    scale = max(0.35, min(canvas.shape[:2]) / 400)
    thickness = max(1, round(scale * 2))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x0 = int(np.clip(x - tw // 2, 0, max(0, canvas.shape[1] - tw - 4)))
    y0 = int(np.clip(y + th // 2, th + 2, canvas.shape[0] - 2))
    cv2.rectangle(canvas, (x0, y0 - th - 3), (x0 + tw + 3, y0 + 3), color, -1)
    cv2.putText(canvas, text, (x0 + 1, y0), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness,
                cv2.LINE_AA)


def overlay(image: Any, masks: Sequence[np.ndarray | None], labels: Sequence[str] | None = None,
            alpha: float = FILL_ALPHA) -> np.ndarray:
    """Return a copy of ``image`` with each mask filled, outlined and labelled (``labels`` default 0, 1, ...).

    ``None`` entries keep their colour and index but draw nothing (a region absent from this frame).
    """
    canvas = load_image(image).copy()
    labels = list(labels) if labels is not None else [str(i) for i in range(len(masks))]
    if len(labels) != len(masks):
        raise ValueError(f"{len(masks)} masks but {len(labels)} labels")
    for index, mask in enumerate(masks):
        if mask is None:
            continue
        binary = np.asarray(mask, dtype=bool)
        if binary.shape != canvas.shape[:2]:
            raise ValueError(f"mask {index} has shape {binary.shape}, the image is {canvas.shape[:2]}")
        if not binary.any():
            continue
        color = np.array(color_for(index), dtype=np.float32)
        canvas[binary] = ((1 - alpha) * canvas[binary] + alpha * color).astype(np.uint8)
        contours, _ = cv2.findContours(binary.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(canvas, contours, -1, color_for(index), CONTOUR_PX)
        _label(canvas, binary, labels[index], color_for(index))
    return canvas


def overlay_frames(frames: Sequence[Any], regions: Sequence[Mapping[int, np.ndarray] | Any],
                   labels: Sequence[str] | None = None) -> list[np.ndarray]:
    """Overlay every region on every frame; a region is ``{frame: mask}`` or has a ``.masks`` dict."""
    per_region = [getattr(r, "masks", r) for r in regions]
    return [overlay(frame, [m.get(i) for m in per_region], labels) for i, frame in enumerate(frames)]


def save_overlay(frames: Sequence[np.ndarray] | np.ndarray, path: str | os.PathLike, fps: float = 3.0) -> Path:
    """Save one overlay (an image: PNG/JPEG) or several (GIF, or a video file such as mp4)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(frames, np.ndarray) and frames.ndim == 3:
        frames = [frames]
    frames = list(frames)
    if len(frames) == 1 and out.suffix.lower() not in (".gif", ".mp4", ".webm", ".avi", ".mkv", ".mov"):
        from PIL import Image

        Image.fromarray(frames[0]).save(out)
        return out
    if out.suffix.lower() in (".png", ".jpg", ".jpeg"):
        raise ValueError(f"{len(frames)} frames cannot be saved as {out.suffix}; use .gif or .mp4")
    return write_video(frames, out, fps=fps)
