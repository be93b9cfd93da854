"""Turn uploaded bytes (multipart files, base64, data URLs) into an image array or a VideoClip, within limits.

Nothing here reads a path named by a request: media arrive as bytes only. Error messages never show server
paths or object addresses (a video is decoded from a temporary file whose name is replaced by "the upload").
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pixelrefer.errors import LimitError
from pixelrefer.media import MediaError, VideoClip, load_image, read_video
from pixelrefer.server.errors import ApiError
from pixelrefer.server.settings import ServerSettings

logger = logging.getLogger(__name__)

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w=.+-]+)*?)(;base64)?,", re.IGNORECASE)
_INLINE_ONLY = "only inline data (base64 or a data: URL) is accepted, not URLs or server paths"
_VIDEO_SUFFIX = {"mp4": ".mp4", "webm": ".webm", "avi": ".avi", "mpegts": ".ts"}


@dataclass
class DecodedMedia:
    """``media``: ``(H, W, 3) uint8`` image or a :class:`VideoClip`; ``alpha``: an image's own alpha mask, if any."""

    media: np.ndarray | VideoClip
    kind: str
    alpha: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        if isinstance(self.media, VideoClip):
            return self.media.height, self.media.width
        return int(self.media.shape[0]), int(self.media.shape[1])

    @property
    def num_frames(self) -> int:
        return self.media.num_frames if isinstance(self.media, VideoClip) else 1


def sniff(data: bytes) -> tuple[str, str] | None:
    """``(kind, format)`` from the first bytes: ("image", "png"), ("video", "mp4"), ...; ``None`` if unknown."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image", "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image", "jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image", "gif"
    if head.startswith(b"BM"):
        return "image", "bmp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image", "tiff"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image", "webp"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "video", "avi"
    if head[4:8] == b"ftyp":
        return "video", "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video", "webm"
    if len(data) > 188 and data[0] == 0x47 and data[188] == 0x47:
        return "video", "mpegts"
    return None


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


def decode_media(data: bytes, settings: ServerSettings) -> DecodedMedia:
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
    return DecodedMedia(_decode_video(data, kind[1], settings), "video")


def _decode_image(data: bytes, settings: ServerSettings) -> DecodedMedia:
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
        pil = Image.open(io.BytesIO(data))
        pil.load()
        rgb = load_image(pil)
        alpha = np.asarray(pil.getchannel("A")) if "A" in pil.getbands() else None
    except LimitError:
        raise
    except (MediaError, OSError, ValueError, SyntaxError) as exc:
        raise ApiError(400, "invalid_media", f"cannot read the image: {_clean(exc)}") from exc
    mask = None
    if alpha is not None and (alpha < 255).any() and (alpha > 0).any():
        mask = alpha > 0
    return DecodedMedia(rgb, "image", mask)


def _decode_video(data: bytes, fmt: str, settings: ServerSettings) -> VideoClip:
    with tempfile.TemporaryDirectory(prefix="pixelrefer-upload-") as tmp:
        path = Path(tmp) / f"upload{_VIDEO_SUFFIX[fmt]}"
        path.write_bytes(data)
        try:
            clip = read_video(path, fps=settings.video_fps, max_frames=settings.max_video_frames)
        except LimitError as exc:  # from the container's metadata, before any frame was decoded
            kind = "video_too_long" if "max_video_seconds" in str(exc) else "video_too_large"
            raise ApiError(413, kind, _clean(exc, tmp)) from exc
        except MediaError as exc:
            raise ApiError(400, "invalid_media", f"cannot read the video: {_clean(exc, tmp)}") from exc
        except Exception as exc:
            raise ApiError(400, "invalid_media",
                           f"cannot read the video: {type(exc).__name__}: {_clean(exc, tmp)}") from exc
    if clip.num_frames == 0:
        raise ApiError(400, "invalid_media", "the video has no frames")
    duration = _duration(clip)
    if duration > settings.max_video_seconds:
        raise ApiError(413, "video_too_long",
                       f"the video lasts {duration:.1f} s; at most {settings.max_video_seconds:g} s are accepted")
    if clip.height * clip.width > settings.max_image_pixels:
        raise ApiError(413, "video_too_large", f"video frames of {clip.width}x{clip.height} are too large")
    logger.debug("decoded a %s video: %d frames, %.1f s", fmt, clip.num_frames, duration)
    return clip


_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>")


def _clean(exc: BaseException, tmp: str | None = None) -> str:
    """The exception's message without the temporary folder's paths or object reprs."""
    message = str(exc)
    if tmp is not None:
        message = re.sub(re.escape(tmp) + r"[^\s'\":]*", "the upload", message)
    return _OBJECT_REPR.sub("the upload", message)


def _duration(clip: VideoClip) -> float:
    if clip.source_num_frames and clip.fps:
        return clip.source_num_frames / clip.fps
    return clip.timestamps[-1] - clip.timestamps[0] if clip.timestamps else 0.0
