"""Generated media for the interface tests: a scene with a red rectangle and a blue square, a short video."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image

SCENE_HW = (96, 128)
RED_BOX = (30, 20, 80, 60)  # x0, y0, x1, y1 of the red rectangle
BLUE_POINT = (105, 40)  # inside the blue square


def make_scene() -> np.ndarray:
    img = np.full((*SCENE_HW, 3), 225, np.uint8)
    x0, y0, x1, y1 = RED_BOX
    img[y0:y1, x0:x1] = (200, 40, 40)
    img[30:50, 95:115] = (40, 80, 200)
    return img


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def moving_box_video(path: Path) -> Path:
    """40 source frames (10 fps) of a red box drifting right: more frames than the default sampling keeps."""
    from pixelrefer.media import write_video

    frames = []
    for t in range(40):
        frame = np.full((48, 48, 3), 225, np.uint8)
        frame[10:30, 5 + t // 4:25 + t // 4] = (200, 40, 40)
        frames.append(frame)
    return write_video(frames, path, fps=10)
