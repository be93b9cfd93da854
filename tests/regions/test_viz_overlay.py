"""Overlays: fill colour inside masks, untouched pixels outside, contour, labels, PNG/GIF output."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pixelrefer.media import read_video
from pixelrefer.viz import FILL_ALPHA, color_for, overlay, overlay_frames, save_overlay

IMAGE = np.full((60, 80, 3), 100, np.uint8)


def _mask(y0: int, x0: int) -> np.ndarray:
    mask = np.zeros((60, 80), bool)
    mask[y0:y0 + 25, x0:x0 + 30] = True
    return mask


def test_fill_contour_and_untouched_background() -> None:
    a, b = _mask(5, 5), _mask(30, 45)
    out = overlay(IMAGE, [a, b])
    expected = ((1 - FILL_ALPHA) * 100 + FILL_ALPHA * np.array(color_for(1))).astype(np.uint8)
    assert np.array_equal(out[35, 50], expected)  # inside b, away from contour and label
    assert np.array_equal(out[2, 78], IMAGE[2, 78])  # outside both
    assert np.array_equal(out[5, 20], np.array(color_for(0), np.uint8))  # on a's contour
    assert np.array_equal(IMAGE, np.full((60, 80, 3), 100, np.uint8))


def test_labels_and_errors() -> None:
    plain = overlay(IMAGE, [_mask(10, 10)], labels=[""])
    labelled = overlay(IMAGE, [_mask(10, 10)], labels=["12"])
    assert (plain != labelled).any()
    with pytest.raises(ValueError, match="labels"):
        overlay(IMAGE, [_mask(0, 0)], labels=["a", "b"])
    with pytest.raises(ValueError, match="shape"):
        overlay(IMAGE, [np.ones((5, 5), bool)])


def test_frames_png_and_gif(tmp_path) -> None:
    frames = overlay_frames([IMAGE] * 3, [{0: _mask(5, 5), 2: _mask(5, 5)}, {1: _mask(30, 40)}])
    assert len(frames) == 3 and np.array_equal(frames[0][35, 50], IMAGE[35, 50])
    assert not np.array_equal(frames[1][35, 50], IMAGE[35, 50])
    png = save_overlay(frames[0], tmp_path / "one.png")
    assert np.array_equal(np.asarray(Image.open(png)), frames[0])
    gif = save_overlay(frames, tmp_path / "all.gif", fps=4)
    assert read_video(gif).num_frames == 3
    with pytest.raises(ValueError, match="cannot be saved"):
        save_overlay(frames, tmp_path / "all.png")
