"""Image or video? The one rule, :func:`media_kind`, for paths, encoded bytes and in-memory media.

* a folder (of frame images) or a video file extension is a video; a ``.gif`` is a video when it has more than
  one frame, else an image; any other path is an image;
* bytes are recognised by their first bytes (:func:`sniff`), GIF again by its frame count;
* a ``(T, H, W, C)`` array, a list of frames or a ``(frames, timestamps)`` pair is a video; a PIL image or a 2-D/3-D
  array is an image; a :class:`~pixelrefer.media.container.Media` says itself.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pixelrefer.media.container import Media

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".gif", ".mpg", ".mpeg", ".ts"})
FRAME_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
IMAGE, VIDEO = "image", "video"


def sniff(data: bytes) -> tuple[str, str] | None:
    """``(kind, format)`` from the first bytes: ("image", "png"), ("video", "mp4"), ...; ``None`` if unknown.

    A GIF is ("video", "gif") when it holds more than one frame, else ("image", "gif")."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return IMAGE, "png"
    if head.startswith(b"\xff\xd8\xff"):
        return IMAGE, "jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return (VIDEO if _animated(io.BytesIO(data)) else IMAGE), "gif"
    if head.startswith(b"BM"):
        return IMAGE, "bmp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return IMAGE, "tiff"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return IMAGE, "webp"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return VIDEO, "avi"
    if head[4:8] == b"ftyp":
        return VIDEO, "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return VIDEO, "webm"
    if len(data) > 188 and data[0] == 0x47 and data[188] == 0x47:
        return VIDEO, "mpegts"
    return None


def _animated(source: Any) -> bool:
    """A GIF with more than one frame; an unreadable one counts as a video (the video reader then says why)."""
    try:
        with Image.open(source) as image:
            return bool(getattr(image, "n_frames", 1) > 1)
    except (OSError, SyntaxError, ValueError, EOFError):  # what PIL raises on corrupt data
        return True


def is_video_path(path: str | os.PathLike) -> bool:
    """True for a folder (read as frames) or a video file (a ``.gif`` only when it has several frames)."""
    p = Path(path)
    if p.is_dir():
        return True
    suffix = p.suffix.lower()
    if suffix == ".gif":
        return _animated(p) if p.is_file() else True
    return suffix in VIDEO_EXTENSIONS


def media_kind(src: Any) -> str:
    """``"image"`` or ``"video"`` for anything :func:`pixelrefer.media.load_media` accepts."""
    if isinstance(src, Media):
        return src.kind
    if isinstance(src, Image.Image):
        return IMAGE
    if isinstance(src, np.ndarray):
        return VIDEO if src.ndim == 4 else IMAGE
    if isinstance(src, list | tuple):
        return VIDEO
    if isinstance(src, bytes):
        found = sniff(src)
        return found[0] if found is not None else IMAGE
    if isinstance(src, str | os.PathLike):
        return VIDEO if is_video_path(src) else IMAGE
    return IMAGE


__all__ = ["FRAME_EXTENSIONS", "IMAGE", "VIDEO", "VIDEO_EXTENSIONS", "is_video_path", "media_kind", "sniff"]
