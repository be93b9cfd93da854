"""How a video is sampled: one :class:`VideoSampling` type and its one default, :data:`DEFAULT_SAMPLING`.

Every entry point (Python API, ``pixelrefer ask``/``chat``/``segment``, the server, the demo, training data and
evaluation) reads videos with :data:`DEFAULT_SAMPLING` unless the call overrides it, so the same clip gives the
same frames wherever it enters.

The default is **16 frames spread evenly over the whole clip** (every frame of a shorter clip): a bounded cost
for interactive use on a CPU, whatever the clip's length or frame rate, and the whole clip is seen. The paper's
evaluation setting, one frame per second up to 768 frames, is :data:`OFFICIAL_EVAL_SAMPLING`; benchmarks pass it
explicitly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from pixelrefer.media.errors import MediaError

DEFAULT_FOLDER_FPS = 3.0  # a folder of frame images is shown at this rate
DEFAULT_LIST_FPS = 1.0  # frames given as a list are shown one per second (the official sampling rate)


@dataclass(frozen=True)
class VideoSampling:
    """Which frames of a video are read (see :func:`pixelrefer.media.read_video`).

    ``fps``: frames per second of the result (nearest source frame to each target time); ``None`` keeps every frame.
    ``num_frames``: evenly spaced frames, first and last included (instead of ``fps``). ``max_frames`` then caps the
    count by uniform thinning. ``start``/``end``: the time window (seconds, inclusive). ``folder_fps``: the rate at
    which a folder of frame images is shown.
    """

    fps: float | None = None
    max_frames: int | None = 16
    num_frames: int | None = None
    start: float | None = None
    end: float | None = None
    folder_fps: float = DEFAULT_FOLDER_FPS

    def __post_init__(self) -> None:
        if self.fps is not None and self.num_frames is not None:
            raise MediaError("give either fps or num_frames, not both")
        for name in ("fps", "max_frames", "num_frames", "folder_fps"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise MediaError(f"{name} must be positive, got {value}")

    def replace(self, **changes: Any) -> VideoSampling:
        """A copy with ``changes`` applied (a per-call override of the default)."""
        return replace(self, **changes)

    def read_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`pixelrefer.media.read_video`."""
        return asdict(self)


DEFAULT_SAMPLING = VideoSampling()
OFFICIAL_EVAL_SAMPLING = VideoSampling(fps=1.0, max_frames=768)

__all__ = ["DEFAULT_FOLDER_FPS", "DEFAULT_LIST_FPS", "DEFAULT_SAMPLING", "OFFICIAL_EVAL_SAMPLING", "VideoSampling"]
