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

from pixelrefer.media.container import Media, map_frames
from pixelrefer.media.detect import is_video_path, media_kind, sniff
from pixelrefer.media.errors import MediaError
from pixelrefer.media.image import load_image
from pixelrefer.media.load import load_media, load_video
from pixelrefer.media.sampling import DEFAULT_SAMPLING, OFFICIAL_EVAL_SAMPLING, VideoSampling
from pixelrefer.media.video import clip_from_frames, read_video, read_video_bytes, write_video

VideoClip = Media  # the former name of the container, kept while cli/ask.py and cli/segment.py still use it

__all__ = [
    "DEFAULT_SAMPLING",
    "OFFICIAL_EVAL_SAMPLING",
    "Media",
    "MediaError",
    "VideoClip",
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
