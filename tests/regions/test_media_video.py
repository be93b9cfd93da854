"""Image loading and video IO: exact pts-based timestamps, sampling, folders, GIFs, and bad input."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from pixelrefer.media import Media, MediaError, load_image, map_frames, read_video, write_video

SIDE = 32


def _frame(i: int) -> np.ndarray:
    return np.full((SIDE, SIDE + 8, 3), (i * 20) % 250, np.uint8)


def _write_pts(path: Path, pts: list[int], time_base: Fraction) -> Path:
    """An H.264 mp4 whose frames carry exactly these presentation timestamps (variable frame rate)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=int(1 / time_base))
        stream.width, stream.height, stream.pix_fmt = SIDE + 8, SIDE, "yuv420p"
        stream.time_base = stream.codec_context.time_base = time_base
        for i, p in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(_frame(i), format="rgb24")
            frame.pts, frame.time_base = p, time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_timestamps_are_exact_pts(tmp_path) -> None:
    path = _write_pts(tmp_path / "vfr.mp4", [0, 1, 2, 5, 6, 10, 13], Fraction(1, 10))
    clip = read_video(path)
    assert clip.timestamps == [0.0, 0.1, 0.2, 0.5, 0.6, 1.0, 1.3]
    assert clip.frame_indices == list(range(7)) and clip.source_num_frames == 7
    assert [round(f.mean() / 20) for f in clip.frames] == list(range(7))  # the right pixels per frame
    assert (clip.height, clip.width, clip.num_frames) == (SIDE, SIDE + 8, 7)


def test_sampling_by_fps_count_window_and_cap(tmp_path) -> None:
    path = _write_pts(tmp_path / "vfr.mp4", [0, 1, 2, 5, 6, 10, 13], Fraction(1, 10))
    by_fps = read_video(path, fps=2)  # targets 0, 0.5, 1.0 -> nearest frames
    assert by_fps.timestamps == [0.0, 0.5, 1.0] and by_fps.frame_indices == [0, 3, 5]
    by_count = read_video(path, num_frames=3)
    assert by_count.frame_indices == [0, 3, 6] and by_count.timestamps == [0.0, 0.5, 1.3]
    window = read_video(path, start=0.15, end=0.6)
    assert window.timestamps == [0.2, 0.5, 0.6]
    capped = read_video(path, max_frames=2)
    assert capped.frame_indices == [0, 6]
    assert round(by_fps.frames[1].mean() / 20) == 3


@pytest.mark.parametrize("suffix", [".mp4", ".gif", ".avi", ".webm"])
def test_write_then_read_every_container(tmp_path, suffix) -> None:
    frames = [_frame(i) for i in range(6)]
    path = write_video(frames, tmp_path / f"clip{suffix}", fps=5)
    clip = read_video(path)
    assert clip.num_frames == 6 and clip.frames[0].shape == (SIDE, SIDE + 8, 3)
    assert np.allclose(np.diff(clip.timestamps), 0.2, atol=0.011)  # GIF stores centiseconds
    means = [float(f.mean()) for f in clip.frames]
    assert np.allclose(means, [f.mean() for f in frames], atol=3)


def test_long_video_keeps_only_sampled_frames(tmp_path, monkeypatch) -> None:
    path = write_video([_frame(i) for i in range(60)], tmp_path / "long.mp4", fps=30)
    converted = []
    original = av.VideoFrame.to_ndarray
    monkeypatch.setattr(av.VideoFrame, "to_ndarray", lambda self, *a, **k: converted.append(1) or original(self, *a, **k))
    clip = read_video(path, num_frames=4)
    assert clip.num_frames == 4 and len(converted) == 4  # only the sampled frames are converted and kept


def test_folder_of_frames(tmp_path) -> None:
    for i in (10, 2, 1):  # natural sort: 1, 2, 10
        Image.fromarray(_frame(i)).save(tmp_path / f"frame_{i}.png")
    (tmp_path / "notes.txt").write_text("ignored")
    clip = read_video(tmp_path, folder_fps=2.0)
    assert [round(f.mean() / 20) for f in clip.frames] == [1, 2, 10]
    assert clip.timestamps == [0.0, 0.5, 1.0] and clip.fps == 2.0
    assert read_video(tmp_path).timestamps == [0.0, 1 / 3, 2 / 3]  # default 3 fps


def test_map_frames_to_nearest_sampled(tmp_path) -> None:
    clip = Media([_frame(0)] * 3, [0.0, 1.0, 2.0], [0, 10, 20], 10.0, source_num_frames=25)
    assert map_frames([0, 4, 6, 14, 15, 24], clip) == {0: 0, 4: 0, 6: 1, 14: 1, 15: 1, 24: 2}
    with pytest.raises(MediaError, match="outside the video"):
        map_frames([25], clip)
    with pytest.raises(MediaError, match="outside the video"):
        map_frames([-1], clip)


def test_unreadable_and_zero_frame_videos(tmp_path) -> None:
    with pytest.raises(MediaError, match="not found"):
        read_video(tmp_path / "missing.mp4")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 20)
    with pytest.raises(MediaError, match="cannot open"):
        read_video(garbage)
    empty = tmp_path / "empty.avi"
    container = av.open(str(empty), "w")
    stream = container.add_stream("mpeg4", rate=8)
    stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
    container.start_encoding()
    container.close()
    with pytest.raises(MediaError, match="zero video frames"):
        read_video(empty)
    (tmp_path / "no_frames").mkdir()
    with pytest.raises(MediaError, match="no frame image"):
        read_video(tmp_path / "no_frames")
    good = _write_pts(tmp_path / "ok.mp4", [0, 1], Fraction(1, 10))
    with pytest.raises(MediaError, match="either fps or num_frames"):
        read_video(good, fps=1, num_frames=2)
    with pytest.raises(MediaError, match="time window"):
        read_video(good, start=5.0)


def test_load_image_modes_and_errors(tmp_path) -> None:
    grey = np.arange(20 * 30, dtype=np.uint8).reshape(20, 30)
    out = load_image(grey)
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8 and np.array_equal(out[..., 1], grey)
    rgba = np.dstack([np.full((5, 6, 3), 7, np.uint8), np.zeros((5, 6), np.uint8)])
    assert np.array_equal(load_image(rgba), rgba[..., :3])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    Image.fromarray(grey).save(tmp_path / "g.png")
    assert load_image(tmp_path / "a.png").shape == (5, 6, 3)
    assert np.array_equal(load_image(str(tmp_path / "g.png"))[..., 0], grey)
    assert load_image(Image.fromarray(grey).convert("P")).shape == (20, 30, 3)
    assert load_image(np.ones((4, 4, 3), np.float32)).max() == 255
    (tmp_path / "bad.png").write_bytes(b"garbage")
    with pytest.raises(MediaError, match="cannot read"):
        load_image(tmp_path / "bad.png")
    with pytest.raises(MediaError, match="not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(MediaError, match="shape"):
        load_image(np.zeros((2, 3, 4, 5), np.uint8))
