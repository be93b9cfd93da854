"""One video-sampling default: every entry point takes pixelrefer.media.DEFAULT_SAMPLING unless told otherwise."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import pixelrefer
from pixelrefer.media import DEFAULT_SAMPLING, OFFICIAL_EVAL_SAMPLING, VideoSampling, load_media, write_video

SRC = Path(pixelrefer.__file__).resolve().parent


def _default(function, name: str):
    return inspect.signature(function).parameters[name].default


def test_every_front_end_defaults_to_the_one_sampling() -> None:
    from pixelrefer.cli import ask, chat, segment, serve
    from pixelrefer.server.settings import ServerSettings

    assert ServerSettings().sampling == DEFAULT_SAMPLING
    assert ServerSettings(video_fps=2.0, max_video_frames=4).sampling == VideoSampling(fps=2.0, max_frames=4)
    for command in (ask.ask, ask.describe, chat.chat, segment.segment):
        assert _default(command, "fps") == DEFAULT_SAMPLING.fps, command.__name__
        assert _default(command, "max_frames") == DEFAULT_SAMPLING.max_frames, command.__name__
    assert _default(serve.serve, "video_fps") == DEFAULT_SAMPLING.fps
    assert _default(serve.serve, "max_video_frames") == DEFAULT_SAMPLING.max_frames


def test_api_demo_and_server_sample_a_video_alike(tmp_path: Path) -> None:
    from pixelrefer.demo.session import DemoController
    from pixelrefer.inference.resolve import prepare
    from pixelrefer.server.media_io import decode_media
    from pixelrefer.server.settings import ServerSettings

    path = write_video([np.full((16, 16, 3), 4 * i, np.uint8) for i in range(48)], tmp_path / "v.mp4", fps=12)
    expected = load_media(path).frame_indices
    assert len(expected) == DEFAULT_SAMPLING.max_frames and expected[-1] == 47
    assert prepare(str(path), [], SimpleNamespace(is_lite=False)).media.frame_indices == expected  # the API's loading
    assert DemoController(None, None).load(path).media.frame_indices == expected
    assert decode_media(path.read_bytes(), ServerSettings()).frame_indices == expected


def test_no_sampling_number_is_written_outside_the_media_module() -> None:
    """Front-ends name DEFAULT_SAMPLING's fields; only benchmarks with their own official rate write one."""
    assignment = re.compile(r"\b(fps|max_frames|num_frames|video_fps|max_video_frames|VIDEO_FPS|VIDEO_MAX_FRAMES)"
                            r"\s*(:[^=\n]*)?=\s*[0-9]")
    files = [*(SRC / "cli").glob("*.py"), *(SRC / "server").glob("*.py"), *(SRC / "demo").glob("*.py"),
             *(SRC / "inference").glob("*.py"), *(SRC / "processing").glob("*.py"), SRC / "eval" / "predictor.py",
             SRC / "eval" / "types.py", SRC / "train" / "dataset.py"]
    found = [f"{p.name}: {line.strip()}" for p in files for line in p.read_text().splitlines() if assignment.search(line)]
    assert not found, found
    assert OFFICIAL_EVAL_SAMPLING == VideoSampling(fps=1.0, max_frames=768)
