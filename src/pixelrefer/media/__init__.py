"""Media: the one owner of loading, image-vs-video detection, video sampling and the media container.

* :class:`Media`: the container every layer passes on (one frame for an image; the sampled frames of a video with
  their timestamps and source frame indices, :meth:`Media.source_index` / :meth:`Media.sampled_index`).
* :func:`load_media`: anything a user hands over (path, folder, bytes, PIL image, array, frame list) -> Media;
  images upright by EXIF orientation; videos sampled by a :class:`VideoSampling`, default
  :data:`DEFAULT_SAMPLING` (16 frames spread over the clip); :data:`OFFICIAL_EVAL_SAMPLING` for benchmarks.
* :func:`media_kind`: ``"image"`` or ``"video"``, the one detection rule.
* :func:`load_image` -> ``(H, W, 3) uint8`` RGB; :func:`read_video` decodes with explicit sampling (every frame by
  default); :func:`clip_from_frames` makes a video of frames in memory; :func:`map_frames` maps source frame
  indices onto sampled frames; :func:`write_video` writes mp4 (PyAV) or GIF (PIL) for inspection.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from pixelrefer.media.errors import MediaError
from pixelrefer.media.sampling import DEFAULT_SAMPLING, OFFICIAL_EVAL_SAMPLING, VideoSampling

# The rest is imported on first use (PEP 562), so the sampling defaults and MediaError can be read without
# numpy, PIL or a video decoder (the command line's option defaults and `pixelrefer ask --server` need only them).
_LAZY = {
    "Media": "container", "map_frames": "container", "is_video_path": "detect", "media_kind": "detect",
    "sniff": "detect", "load_image": "image", "load_media": "load", "load_video": "load",
    "clip_from_frames": "video", "read_video": "video", "read_video_bytes": "video", "write_video": "video",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(f"pixelrefer.media.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "DEFAULT_SAMPLING",
    "OFFICIAL_EVAL_SAMPLING",
    "Media",
    "MediaError",
    "VideoSampling",
    "clip_from_frames",
    "is_video_path",
    "load_image",
    "load_media",
    "load_video",
    "map_frames",
    "media_kind",
    "read_video",
    "read_video_bytes",
    "sniff",
    "write_video",
]
