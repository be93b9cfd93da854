"""Media IO: still images and videos as numpy RGB arrays, with exact frame timestamps.

* :func:`load_image` -> ``(H, W, 3) uint8`` RGB.
* :func:`read_video` -> :class:`VideoClip` of sampled frames (streaming decode, pts-based timestamps).
* :func:`clip_from_frames` makes a clip of frames in memory (a list of arrays, PIL images or paths).
* :func:`map_frames` maps original frame indices onto the nearest sampled frame.
* :func:`write_video` writes mp4 (PyAV, libx264) or GIF (PIL) for inspection.
"""

from pixelrefer.media.errors import MediaError
from pixelrefer.media.image import load_image
from pixelrefer.media.video import (
    VideoClip,
    clip_from_frames,
    is_video_path,
    map_frames,
    read_video,
    write_video,
)

__all__ = ["MediaError", "VideoClip", "clip_from_frames", "is_video_path", "load_image", "map_frames", "read_video", "write_video"]
