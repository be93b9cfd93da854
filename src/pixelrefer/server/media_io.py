"""Turn uploaded bytes (multipart files, base64, data URLs) into :class:`~pixelrefer.media.Media`, within limits.

Nothing here reads a path named by a request: media arrive as bytes only. Error messages never show server
paths or object addresses (a video is decoded from a temporary file whose name is replaced by "the upload").
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import re

import numpy as np
from PIL import Image

from pixelrefer.errors import LimitError
from pixelrefer.media import Media, MediaError, read_video_bytes, sniff
from pixelrefer.media.image import open_pil, pil_to_rgb
from pixelrefer.server.errors import ApiError
from pixelrefer.server.settings import ServerSettings

logger = logging.getLogger(__name__)

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w=.+-]+)*?)(;base64)?,", re.IGNORECASE)
_INLINE_ONLY = "only inline data (base64 or a data: URL) is accepted, not URLs or server paths"
_VIDEO_SUFFIX = {"mp4": ".mp4", "webm": ".webm", "avi": ".avi", "mpegts": ".ts", "gif": ".gif"}


def decode_base64(text: str, settings: ServerSettings, what: str = "media") -> bytes:
    """Bytes of a base64 string or a ``data:`` URL; other URLs (http, file, paths) are refused."""
    if not isinstance(text, str) or not text:
        raise ApiError(400, "invalid_media", f"{what} must be a non-empty base64 string or data: URL")
    match = _DATA_URL.match(text)
    if match:
        text = text[match.end():]
    elif re.match(r"^[a-z][a-z0-9+.-]*:", text, re.IGNORECASE):
        raise ApiError(400, "unsupported_media_source", f"{what}: {_INLINE_ONLY}")
    if len(text) * 3 // 4 > settings.max_upload_bytes:
        raise ApiError(413, "payload_too_large", f"{what} is larger than {settings.max_upload_bytes} bytes")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        if text.startswith(("/", "~", ".")) and len(text) < 4096:  # looks like a path (base64 JPEG starts "/9j/")
            raise ApiError(400, "unsupported_media_source", f"{what}: {_INLINE_ONLY}") from exc
        raise ApiError(400, "invalid_media", f"{what} is not valid base64: {exc}") from exc


def decode_media(data: bytes, settings: ServerSettings) -> Media:
    """Decode an uploaded image or video, enforcing size, pixel, duration and frame limits."""
    if len(data) > settings.max_upload_bytes:
        raise ApiError(413, "payload_too_large", f"the upload is larger than {settings.max_upload_bytes} bytes")
    if not data:
        raise ApiError(400, "invalid_media", "the upload is empty")
    kind = sniff(data)
    if kind is None:
        raise ApiError(415, "unsupported_media_type",
                       "unsupported file type; send an image (PNG, JPEG, GIF, BMP, TIFF, WebP) or a video (MP4, WebM, AVI)")
    if kind[0] == "image":
        return _decode_image(data, settings)
    return _decode_video(data, kind[1], settings)


def _decode_image(data: bytes, settings: ServerSettings) -> Media:
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
    except Image.DecompressionBombError as exc:  # PIL refuses to even open a header this large
        raise ApiError(413, "image_too_large",
                       f"the image declares more pixels than can be decoded safely; at most "
                       f"{settings.max_image_pixels} pixels are accepted") from exc
    except Exception as exc:
        raise ApiError(400, "invalid_media", f"cannot read the image: {_clean(exc)}") from exc
    if width * height > settings.max_image_pixels:
        raise ApiError(413, "image_too_large",
                       f"the image is {width}x{height}; at most {settings.max_image_pixels} pixels are accepted")
    try:
        pil = open_pil(data)  # upright: the EXIF orientation is applied to the pixels and the alpha alike
        rgb = pil_to_rgb(pil)
        alpha = np.asarray(pil.getchannel("A")) if "A" in pil.getbands() else None
    except LimitError:
        raise
    except (MediaError, OSError, ValueError, SyntaxError) as exc:
        raise ApiError(400, "invalid_media", f"cannot read the image: {_clean(exc)}") from exc
    mask = None
    if alpha is not None and (alpha < 255).any() and (alpha > 0).any():
        mask = alpha > 0
    return Media.image(rgb, mask)


def _decode_video(data: bytes, fmt: str, settings: ServerSettings) -> Media:
    try:
        clip = read_video_bytes(data, _VIDEO_SUFFIX[fmt], **settings.sampling.read_kwargs())
    except LimitError as exc:  # from the container's metadata, before any frame was decoded
        kind = "video_too_long" if "max_video_seconds" in str(exc) else "video_too_large"
        raise ApiError(413, kind, _clean(exc)) from exc
    except MediaError as exc:
        raise ApiError(400, "invalid_media", f"cannot read the video: {_clean(exc)}") from exc
    duration = _duration(clip)
    if duration > settings.max_video_seconds:
        raise ApiError(413, "video_too_long",
                       f"the video lasts {duration:.1f} s; at most {settings.max_video_seconds:g} s are accepted")
    if clip.height * clip.width > settings.max_image_pixels:
        raise ApiError(413, "video_too_large", f"video frames of {clip.width}x{clip.height} are too large")
    logger.debug("decoded a %s video: %d frames, %.1f s", fmt, clip.num_frames, duration)
    return clip


_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>")


def _clean(exc: BaseException) -> str:
    """The exception's message without object reprs (media messages name files, never their folders)."""
    return _OBJECT_REPR.sub("the upload", str(exc))


def _duration(clip: Media) -> float:
    if clip.source_num_frames and clip.fps:
        return clip.source_num_frames / clip.fps
    return clip.timestamps[-1] - clip.timestamps[0] if clip.timestamps else 0.0
