"""The one entry point from anything a user may hand over to :class:`~pixelrefer.media.container.Media`."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from PIL import Image

from pixelrefer.media.container import Media
from pixelrefer.media.detect import VIDEO, is_video_path, sniff
from pixelrefer.media.errors import MediaError
from pixelrefer.media.image import load_image
from pixelrefer.media.sampling import DEFAULT_SAMPLING, VideoSampling
from pixelrefer.media.video import clip_from_frames, read_video, read_video_bytes

_SUFFIX = {"mp4": ".mp4", "webm": ".webm", "avi": ".avi", "mpegts": ".ts", "gif": ".gif"}


def load_video(src: str | os.PathLike, sampling: VideoSampling | None = None) -> Media:
    """A video file or folder of frames, sampled by ``sampling`` (default :data:`DEFAULT_SAMPLING`)."""
    return read_video(src, **(sampling or DEFAULT_SAMPLING).read_kwargs())


def load_media(src: Any, sampling: VideoSampling | None = None) -> Media:
    """:class:`Media` from an image or video in any accepted form; ``sampling`` (default :data:`DEFAULT_SAMPLING`)
    applies to videos read from a file, a folder or bytes.

    Accepted: a :class:`Media` (returned as is); an image or video path, or a folder of frames (kind from
    :func:`pixelrefer.media.media_kind`); encoded image or video bytes; a PIL image; an ``(H, W[, C])`` array; a
    ``(T, H, W, C)`` array or a list of frames (arrays, PIL images, paths or bytes; one per second); a
    ``(frames, timestamps)`` pair. Images are turned upright by their EXIF orientation."""
    if isinstance(src, Media):
        return src
    if isinstance(src, tuple) and len(src) == 2:
        return clip_from_frames(*src)
    if isinstance(src, list) or (isinstance(src, np.ndarray) and src.ndim == 4):
        return clip_from_frames(src)
    if isinstance(src, bytes):
        found = sniff(src)
        if found is not None and found[0] == VIDEO:
            return read_video_bytes(src, _SUFFIX[found[1]], **(sampling or DEFAULT_SAMPLING).read_kwargs())
        return Media.image(load_image(src))
    if isinstance(src, str | os.PathLike) and is_video_path(src):
        return load_video(src, sampling)
    if isinstance(src, str | os.PathLike | Image.Image | np.ndarray):
        return Media.image(load_image(src))
    raise MediaError(f"cannot load media from {type(src).__name__}; pass a path, bytes, PIL image, array, list of "
                     "frames or (frames, timestamps)")


__all__ = ["load_media", "load_video"]
