"""pixelrefer.limits: per-interface values, the active-limits context, and checks that run before decoding."""

from __future__ import annotations

import numpy as np
import pytest

from pixelrefer.errors import ConfigError, LimitError
from pixelrefer.limits import (
    DEFAULT_LIMITS,
    active_limits,
    check_prompt_tokens,
    limits_for,
    use_limits,
)


def test_interfaces_and_overrides() -> None:
    assert limits_for("api") is DEFAULT_LIMITS and limits_for("server").max_regions < DEFAULT_LIMITS.max_regions
    assert limits_for("server", max_regions=3).max_regions == 3
    with pytest.raises(ConfigError, match="unknown limit"):
        limits_for("api", max_bananas=1)
    with pytest.raises(ConfigError, match="unknown interface"):
        limits_for("fax")
    with pytest.raises(ConfigError, match="positive"):
        limits_for("api", max_regions=0)


def test_use_limits_nests_and_restores() -> None:
    outer, inner = limits_for("server"), limits_for("api", max_regions=2)
    with use_limits(outer):
        assert active_limits() is outer
        with use_limits(inner):
            assert active_limits().max_regions == 2
        assert active_limits() is outer
    assert active_limits() is DEFAULT_LIMITS


def test_prompt_length_against_the_model_maximum() -> None:
    class Text:
        max_position_embeddings = 100

    class Config:
        text_config = Text()

    check_prompt_tokens(90, Config(), max_new_tokens=10)
    with pytest.raises(LimitError, match="max_position_embeddings"):
        check_prompt_tokens(91, Config(), max_new_tokens=10)
    with use_limits(limits_for("api", max_prompt_tokens=50)), pytest.raises(LimitError, match="max_prompt_tokens"):
        check_prompt_tokens(51, Config())


def test_video_limits_are_checked_before_any_frame_is_decoded(tmp_path, monkeypatch) -> None:
    from pixelrefer.media import read_video, write_video
    from pixelrefer.media import video as video_module

    path = write_video([np.zeros((64, 64, 3), np.uint8)] * 4, tmp_path / "v.mp4", fps=2)

    def no_decoding(*args, **kwargs):
        raise AssertionError("a frame was decoded before the limits were checked")

    monkeypatch.setattr(video_module, "_decode_selected", no_decoding)
    for limit, match in (({"max_video_frame_pixels": 32 * 32}, "frame size"), ({"max_video_seconds": 1.0}, "duration"),
                         ({"max_video_frames": 2}, "frame count"), ({"max_video_sampled_pixels": 2 * 64 * 64}, "sampled")):
        with use_limits(limits_for("api", **limit)), pytest.raises(LimitError, match=match):
            read_video(path)


def test_image_header_is_checked_before_decoding(tmp_path) -> None:
    from PIL import Image

    from pixelrefer.media import load_image

    Image.new("L", (300, 200)).save(tmp_path / "a.png")
    assert load_image(tmp_path / "a.png").shape == (200, 300, 3)
    with use_limits(limits_for("api", max_image_pixels=300 * 199)), pytest.raises(LimitError, match="a.png"):
        load_image(tmp_path / "a.png")
