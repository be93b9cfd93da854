"""Read videos (mp4/webm/avi/gif/... or a folder of frame images) as sampled RGB frames; write them back.

Decoding streams: a first pass demuxes packets only (no decoding) to learn every frame's
presentation timestamp; the frames to keep are chosen from those timestamps; a second pass decodes
in order and keeps only the chosen frames, so memory holds the sampled frames and nothing more.
Timestamps are ``pts * time_base`` of the kept frames (seconds), not ``index / fps`` estimates.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from pixelrefer.errors import PixelReferError, reason
from pixelrefer.limits import active_limits, check_video_metadata, check_video_sampled
from pixelrefer.media.container import Media
from pixelrefer.media.detect import FRAME_EXTENSIONS
from pixelrefer.media.errors import MediaError
from pixelrefer.media.image import load_image, open_pil
from pixelrefer.media.sampling import DEFAULT_FOLDER_FPS, DEFAULT_LIST_FPS

logger = logging.getLogger(__name__)

def select_indices(
    times: Sequence[float],
    fps: float | None = None,
    num_frames: int | None = None,
    max_frames: int | None = None,
) -> list[int]:
    """Choose positions in ``times`` (sorted seconds): every frame, one per ``1/fps`` s, or ``num_frames`` uniform.

    ``fps`` picks, for each target time ``t0 + k / fps``, the frame nearest to it (ties: the earlier).
    ``num_frames`` picks evenly spaced positions including the first and the last. ``max_frames``
    then thins the choice uniformly. The result is sorted and has no duplicates.
    """
    n = len(times)
    if n == 0:
        return []
    if fps is not None and num_frames is not None:
        raise MediaError("give either fps or num_frames, not both")
    if fps is not None:
        if fps <= 0:
            raise MediaError(f"fps must be positive, got {fps}")
        arr = np.asarray(times, dtype=np.float64)
        targets = np.arange(arr[0], arr[-1] + 1e-9, 1.0 / fps)
        pos = np.clip(np.searchsorted(arr, targets), 1, n - 1) if n > 1 else np.zeros(len(targets), int)
        if n > 1:
            left_closer = (targets - arr[pos - 1]) <= (arr[pos] - targets)
            pos = np.where(left_closer, pos - 1, pos)
        chosen = sorted({int(p) for p in pos})
    elif num_frames is not None:
        if num_frames <= 0:
            raise MediaError(f"num_frames must be positive, got {num_frames}")
        chosen = sorted(set(np.linspace(0, n - 1, min(num_frames, n)).round().astype(int).tolist()))
    else:
        chosen = list(range(n))
    if max_frames is not None and len(chosen) > max_frames:
        if max_frames <= 0:
            raise MediaError(f"max_frames must be positive, got {max_frames}")
        keep = np.linspace(0, len(chosen) - 1, max_frames).round().astype(int)
        chosen = [chosen[i] for i in sorted(set(keep.tolist()))]
    return chosen


def _window(times: list[float], start: float | None, end: float | None) -> list[int]:
    lo = -np.inf if start is None else start
    hi = np.inf if end is None else end
    if lo > hi:
        raise MediaError(f"start ({start}) is after end ({end})")
    return [i for i, t in enumerate(times) if lo - 1e-9 <= t <= hi + 1e-9]


def _natural_key(name: str) -> list[object]:
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


def _read_folder(folder: Path, sampling: dict, folder_fps: float) -> Media:
    files = sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in FRAME_EXTENSIONS), key=lambda p: _natural_key(p.name)
    )
    if not files:
        raise MediaError(f"the folder {folder} holds no frame images ({', '.join(sorted(FRAME_EXTENSIONS))})")
    if folder_fps <= 0:
        raise MediaError(f"folder_fps must be positive, got {folder_fps}")
    check_video_metadata(0, 0, len(files), (len(files) - 1) / folder_fps, what=f"the folder {folder.name}")
    times = [i / folder_fps for i in range(len(files))]
    window = _window(times, sampling.pop("start"), sampling.pop("end"))
    picked = [window[i] for i in select_indices([times[i] for i in window], **sampling)]
    if not picked:
        raise MediaError(f"no frame of {folder} falls in the requested time window")
    with open_pil(files[picked[0]]) as first:  # one frame (header checked first) gives the size of all
        check_video_sampled(len(picked), first.width, first.height, what=f"the folder {folder.name}")
    frames = [load_image(files[i]) for i in picked]
    if any(f.shape != frames[0].shape for f in frames):
        raise MediaError(f"the frames in {folder} do not all have the same size")
    return Media(frames, [times[i] for i in picked], picked, folder_fps, len(files))


def _open_container(path: Path):
    import av

    if not path.is_file():
        raise MediaError(f"video file not found: {path}")
    try:
        container = av.open(str(path))
    except Exception as exc:  # av raises FFmpegError subclasses, OSError, ValueError, ... on bad files
        raise MediaError(f"cannot open {path.name} as a video: {reason(exc, path)}") from exc
    if not container.streams.video:
        container.close()
        raise MediaError(f"{path.name} has no video stream")
    return container


@dataclass
class _Probe:
    """What the first pass learns: sorted pts (or indices when ``by_index``), their time base, fps, frame size."""

    pts: list[int]
    time_base: Fraction
    fps: float
    by_index: bool
    width: int
    height: int


def _check_metadata(container, stream, name: str) -> tuple[int, int]:
    """Frame size, frame count and duration from the container headers, before reading any packet."""
    duration = None
    if stream.duration is not None and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000  # av.time_base: microseconds
    width, height = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
    check_video_metadata(width, height, int(stream.frames) or None, duration, what=name)
    return width, height


def _probe_pts(path: Path) -> _Probe:
    """First pass: presentation timestamps of every frame, without decoding (``by_index``: no pts, use indices).

    The container's declared frame size, frame count and duration are checked first; the packet count is checked
    again while demuxing, since headers can lie."""
    container = _open_container(path)
    max_frames = active_limits().max_video_frames
    try:
        stream = container.streams.video[0]
        width, height = _check_metadata(container, stream, path.name)
        time_base = stream.time_base or Fraction(1, 1)
        pts = []
        for packet in container.demux(stream):
            if packet.size > 0:
                pts.append(packet.pts if packet.pts is not None else packet.dts)
                if len(pts) > max_frames:
                    check_video_metadata(0, 0, len(pts), None, what=path.name)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    except PixelReferError:
        raise
    except Exception as exc:  # av raises many error types for corrupt files
        raise MediaError(f"cannot read the frames of {path.name}: {reason(exc, path)}") from exc
    finally:
        container.close()
    fps = float(rate) if rate else 0.0
    if any(p is None for p in pts):
        step = 1.0 / fps if fps else 1.0
        return _Probe(list(range(len(pts))), Fraction(step).limit_denominator(1_000_000), fps, True, width, height)
    return _Probe(sorted(pts), time_base, fps, False, width, height)


def _decode_selected(path: Path, wanted_pts: set[int], use_index: bool) -> dict[int, np.ndarray]:
    """Second pass: decode in order, convert and keep only the wanted frames."""
    container = _open_container(path)
    kept: dict[int, np.ndarray] = {}
    try:
        for i, frame in enumerate(container.decode(video=0)):
            key = i if use_index or frame.pts is None else frame.pts
            if key in wanted_pts:
                check_video_metadata(frame.width, frame.height, None, None, what=path.name)  # headers can lie
                kept[key] = frame.to_ndarray(format="rgb24")
                if len(kept) == len(wanted_pts):
                    break
    except PixelReferError:
        raise
    except Exception as exc:
        raise MediaError(f"decoding {path.name} failed: {reason(exc, path)}") from exc
    finally:
        container.close()
    return kept


def _read_file(path: Path, sampling: dict) -> Media:
    probe = _probe_pts(path)
    pts, fps = probe.pts, probe.fps
    if not pts:
        raise MediaError(f"{path.name} has zero video frames")
    times = [float(p * probe.time_base) for p in pts]
    window = _window(times, sampling.pop("start"), sampling.pop("end"))
    picked = [window[i] for i in select_indices([times[i] for i in window], **sampling)]
    if not picked:
        raise MediaError(f"no frame of {path.name} falls in the requested time window")
    check_video_sampled(len(picked), probe.width, probe.height, what=path.name)
    decoded = _decode_selected(path, {pts[i] for i in picked}, probe.by_index)
    missing = [i for i in picked if pts[i] not in decoded]
    if missing:
        logger.warning("%s: %d sampled frames could not be decoded and are skipped", path.name, len(missing))
        picked = [i for i in picked if pts[i] in decoded]
    if not picked:
        raise MediaError(f"{path.name}: no frame could be decoded")
    if not fps and len(times) > 1:
        fps = (len(times) - 1) / max(times[-1] - times[0], 1e-9)
    frames = [decoded[pts[i]] for i in picked]
    return Media(frames, [times[i] for i in picked], picked, fps, len(pts))


def read_video(
    src: str | os.PathLike,
    fps: float | None = None,
    num_frames: int | None = None,
    max_frames: int | None = None,
    start: float | None = None,
    end: float | None = None,
    folder_fps: float = DEFAULT_FOLDER_FPS,
) -> Media:
    """Read a video file or a folder of frames, keeping only the sampled frames.

    Sampling: ``fps`` (frames per second of the result, nearest source frame to each target time),
    or ``num_frames`` (evenly spaced, first and last included), or every frame; ``max_frames`` caps
    the count by uniform thinning; ``start``/``end`` (seconds, inclusive) restrict the window.
    A folder's frames are sorted naturally by file name and shown at ``folder_fps``.
    """
    path = Path(src)
    sampling = {"fps": fps, "num_frames": num_frames, "max_frames": max_frames, "start": start, "end": end}
    clip = _read_folder(path, sampling, folder_fps) if path.is_dir() else _read_file(path, sampling)
    logger.debug("read %s: %d frames sampled of %s", path, clip.num_frames, clip.source_num_frames)
    return clip


def read_video_bytes(data: bytes, suffix: str, **sampling: Any) -> Media:
    """Read an encoded video held in memory (``suffix``: its container, e.g. ``".mp4"``), with ``sampling`` as in
    :func:`read_video`. It is decoded from a temporary file named ``upload<suffix>``; messages name only that."""
    with tempfile.TemporaryDirectory(prefix="pixelrefer-video-") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            return read_video(path, **sampling)
        except PixelReferError:
            raise
        except Exception as exc:  # PyAV raises many types; never show the temporary folder
            raise MediaError(f"cannot read the video: {type(exc).__name__}: {reason(exc, path)}") from exc


def clip_from_frames(
    frames: Sequence[object] | np.ndarray, timestamps: Sequence[float] | None = None, fps: float = DEFAULT_LIST_FPS,
) -> Media:
    """A :class:`Media` from frames in memory: a list of arrays, PIL images, image paths or bytes (or a
    ``(T, H, W, C)`` array), shown at ``timestamps`` (seconds, non-decreasing) or one every ``1 / fps`` s."""
    if isinstance(frames, np.ndarray) and frames.ndim != 4:
        raise MediaError(f"a video array must have shape (T, H, W, C), got {frames.shape}")
    n = len(frames)
    if n == 0:
        raise MediaError("a video needs at least one frame; got an empty list")
    check_video_metadata(0, 0, n, None, what="the frame list")
    if timestamps is None:
        if fps <= 0:
            raise MediaError(f"fps must be positive, got {fps}")
        times = [i / fps for i in range(n)]
    else:
        try:
            times = [float(t) for t in timestamps]
        except (TypeError, ValueError) as exc:
            raise MediaError(f"video timestamps must be numbers: {exc}") from exc
        if len(times) != n:
            raise MediaError(f"{n} frames but {len(times)} timestamps")
        if not all(np.isfinite(times)) or bool(np.any(np.diff(times) < 0)):
            raise MediaError("video timestamps must be finite and non-decreasing")
    loaded = [load_image(f) for f in frames]
    if any(f.shape != loaded[0].shape for f in loaded):
        raise MediaError(f"the frames do not all have the same size ({sorted({f.shape[:2] for f in loaded})})")
    check_video_sampled(n, loaded[0].shape[1], loaded[0].shape[0], what="the frame list")
    rate = fps if timestamps is None else ((n - 1) / (times[-1] - times[0]) if n > 1 and times[-1] > times[0] else 0.0)
    return Media(loaded, times, list(range(n)), rate, n)


def _even(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge") if (h % 2 or w % 2) else frame


def write_video(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: float = 3.0) -> Path:
    """Write RGB frames to ``.gif`` (PIL) or a video file (PyAV; libx264 for mp4/mkv/mov)."""
    out = Path(path)
    if not frames:
        raise MediaError("write_video needs at least one frame")
    if fps <= 0:
        raise MediaError(f"fps must be positive, got {fps}")
    rgb = [load_image(f) for f in frames]
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in rgb]
        images[0].save(out, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
        return out
    import av

    codec = "mpeg4" if out.suffix.lower() == ".avi" else "libvpx-vp9" if out.suffix.lower() == ".webm" else "libx264"
    with av.open(str(out), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        first = _even(rgb[0])
        stream.width, stream.height, stream.pix_fmt = first.shape[1], first.shape[0], "yuv420p"
        for frame in rgb:
            video_frame = av.VideoFrame.from_ndarray(_even(frame), format="rgb24")
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out
