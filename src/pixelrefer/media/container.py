"""The one media container every layer passes on: :class:`Media` (a still image, or the sampled frames of a video).

For a video, ``frame_indices[i]`` is the source frame (0-based, presentation order) that sampled frame ``i`` was
read from; :meth:`Media.source_index` and :meth:`Media.sampled_index` map between the two numberings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pixelrefer.media.errors import MediaError


@dataclass(eq=False)
class Media:
    """Frames as ``(H, W, 3) uint8`` RGB arrays: one for an image, the sampled frames of a video.

    ``timestamps``: seconds at which each sampled frame is shown; ``None`` for a still image (this is what makes
    it an image). ``frame_indices``: the source frame of each sampled frame (default ``0..n-1``). ``fps``: the
    source frame rate (0 when unknown or for an image). ``source_num_frames``: frames in the whole source, when
    known. ``alpha``: an image's own alpha channel as a mask, when it has a meaningful one (uploads).
    """

    frames: list[np.ndarray]
    timestamps: list[float] | None = None
    frame_indices: list[int] | None = None
    fps: float = 0.0
    source_num_frames: int | None = None
    alpha: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.frames = list(self.frames)
        if not self.frames:
            raise MediaError("media need at least one frame")
        n = len(self.frames)
        if self.timestamps is not None:
            self.timestamps = [float(t) for t in self.timestamps]
            if len(self.timestamps) != n:
                raise MediaError(f"{n} frames but {len(self.timestamps)} timestamps")
        elif n != 1:
            raise MediaError(f"an image has one frame, got {n} (give timestamps for a video)")
        if self.frame_indices is None:
            self.frame_indices = list(range(n))
        elif len(self.frame_indices) != n:
            raise MediaError(f"{n} frames but {len(self.frame_indices)} source frame indices")
        if self.timestamps is None and self.source_num_frames is None:
            self.source_num_frames = 1

    @classmethod
    def image(cls, rgb: np.ndarray, alpha: np.ndarray | None = None) -> Media:
        return cls([rgb], alpha=alpha)

    @property
    def is_video(self) -> bool:
        return self.timestamps is not None

    @property
    def kind(self) -> str:
        return "video" if self.is_video else "image"

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def height(self) -> int:
        return int(self.frames[0].shape[0])

    @property
    def width(self) -> int:
        return int(self.frames[0].shape[1])

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)``."""
        return self.height, self.width

    def source_index(self, sampled: int) -> int:
        """The source frame that sampled frame ``sampled`` was read from."""
        if not 0 <= sampled < self.num_frames:
            raise MediaError(f"sampled frame {sampled} is outside 0..{self.num_frames - 1}")
        return self.frame_indices[sampled]

    def sampled_index(self, source: int) -> int:
        """The sampled frame nearest to source frame ``source`` (ties go to the earlier one).

        Raises :class:`MediaError` for an index that is negative or past the end of the source."""
        total = self.source_num_frames
        if source < 0 or (total is not None and source >= total):
            limit = f"0..{total - 1}" if total is not None else ">= 0"
            raise MediaError(f"frame {source} is outside the video (source frames {limit})")
        return int(np.argmin(np.abs(np.asarray(self.frame_indices) - source)))


def map_frames(source_indices: Sequence[int], media: Media) -> dict[int, int]:
    """``{source frame: nearest sampled frame}`` for each index (see :meth:`Media.sampled_index`)."""
    return {int(index): media.sampled_index(int(index)) for index in source_indices}


__all__ = ["Media", "map_frames"]
