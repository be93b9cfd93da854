"""Every bad input named in the issue raises RegionError/MediaError with a clear reason, or is reported."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from pixelrefer.regions import Region, RegionError, encode_rle
from pixelrefer.segment.base import SegmentPrompt, SegmentResult

H, W = 40, 60
IMAGE = np.full((H, W, 3), 128, np.uint8)


class FixedSegmenter:
    """Returns a given mask and, in propagation, given per-frame masks; records what it was asked."""

    name = "fixed"

    def __init__(self, mask: np.ndarray, carried: dict[int, np.ndarray] | None = None) -> None:
        self.mask, self.carried, self.calls = mask, carried or {}, []

    def segment(self, image: np.ndarray, prompt: SegmentPrompt) -> SegmentResult:
        self.calls.append(prompt)
        return SegmentResult(self.mask, 0.9)

    def propagate(self, frames, masks, progress=None):
        return {i: self.carried.get(i, masks.get(i, np.zeros((H, W), bool))) for i in range(len(frames))}


def _resolve(region: Region, frames=IMAGE, num_frames: int = 1, segmenter=None, **kw):
    return region.resolve(H, W, num_frames, segmenter=segmenter, frames=frames, **kw)


@pytest.mark.parametrize(
    ("box", "fmt", "match"),
    [
        ([10, 10, 10, 20], "xyxy", "degenerate"),
        ([30, 10, 20, 20], "xyxy", "degenerate"),
        ([10, 10, 0, 5], "xywh", "degenerate"),
        ([70, 50, 90, 60], "xyxy", "outside"),
        ([-20, -20, -1, -1], "xyxy", "outside"),
        ([1, 2, 3], "xyxy", "4 numbers"),
        ([1, 2, float("nan"), 4], "xyxy", "finite"),
        ([1, 2, 3, 4], "cxcywh", "format"),
    ],
)
def test_bad_boxes(box, fmt, match) -> None:
    with pytest.raises(RegionError, match=match):
        _resolve(Region.from_box(box, fmt=fmt), segmenter=FixedSegmenter(np.ones((H, W), bool)))


def test_partly_outside_box_is_clipped_with_a_warning(caplog) -> None:
    seg = FixedSegmenter(np.pad(np.ones((10, 10), bool), ((0, H - 10), (0, W - 10))))
    with caplog.at_level(logging.WARNING):
        _resolve(Region.from_box([-5, -5, 20, 20]), segmenter=seg)
    np.testing.assert_array_equal(seg.calls[0].box, [0, 0, 20, 20])
    assert "clipped" in caplog.text


def test_normalised_box_out_of_range() -> None:
    with pytest.raises(RegionError, match=r"\[0, 1\]"):
        _resolve(Region.from_box([0.1, 0.1, 1.5, 0.5], normalized=True), segmenter=FixedSegmenter(IMAGE[..., 0] > 0))


@pytest.mark.parametrize("points", [[[60, 10]], [[-1, 5]], [[10, 40]], [[5, 5], [100, 5]]])
def test_points_outside_the_image(points) -> None:
    with pytest.raises(RegionError, match="outside"):
        _resolve(Region.from_points(points, labels=[1] * len(points)), segmenter=FixedSegmenter(IMAGE[..., 0] > 0))


def test_bad_point_labels() -> None:
    with pytest.raises(RegionError, match="at least one positive"):
        Region.from_points([[5, 5]], labels=[0])
    with pytest.raises(RegionError, match="labels"):
        Region.from_points([[5, 5], [6, 6]], labels=[1])
    with pytest.raises(RegionError, match="1 \\(object\\) or 0"):
        Region.from_points([[5, 5]], labels=[2])
    with pytest.raises(RegionError, match="pairs"):
        Region.from_points([])


def test_empty_mask_and_all_ones_mask() -> None:
    with pytest.raises(RegionError, match="empty"):
        _resolve(Region.from_mask(np.zeros((H, W), bool)))
    resolved = _resolve(Region.from_mask(np.ones((H, W), bool)))
    assert resolved.masks[0].all() and any("whole image" in w for w in resolved.warnings)


def test_mask_size_mismatch_and_bad_dims() -> None:
    with pytest.raises(RegionError, match="does not match"):
        _resolve(Region.from_mask(np.ones((H + 1, W), bool)))
    with pytest.raises(RegionError, match="2-D"):
        Region.from_mask(np.ones((2, H, W), bool))


def test_polygons_with_fewer_than_three_points() -> None:
    for polygon in ([1, 1, 5, 5], [[1, 1], [5, 5]], [1, 2, 3, 4, 5], []):
        with pytest.raises(RegionError):
            Region.from_polygon(polygon)


def test_polygon_outside_or_wrong_size() -> None:
    with pytest.raises(RegionError, match="empty"):
        _resolve(Region.from_polygon([100, 100, 120, 100, 110, 120]))
    with pytest.raises(RegionError, match="media is"):
        _resolve(Region.from_polygon([1, 1, 10, 1, 5, 9], size=(H * 2, W)))


def test_rle_size_mismatch_and_corrupt() -> None:
    rle = encode_rle(np.ones((H, W + 2), bool))
    with pytest.raises(RegionError, match="does not match"):
        _resolve(Region.from_rle(rle))
    with pytest.raises(RegionError, match="sum to"):
        Region.from_rle({"size": [H, W], "counts": [5, 3]})
    with pytest.raises(RegionError, match="size"):
        Region.from_rle({"size": [H], "counts": "abc"})
    with pytest.raises(RegionError):
        Region.from_dict({"type": "mask_png", "data": "not base64!"})


def test_frame_index_beyond_the_video() -> None:
    region = Region.from_mask(np.ones((H, W), bool), frame=8)
    with pytest.raises(RegionError, match="outside the media"):
        region.resolve(H, W, num_frames=8)
    with pytest.raises(RegionError, match="non-negative"):
        Region.from_dict({"type": "box", "box": [1, 1, 5, 5], "frame": -1})


@pytest.mark.parametrize("frame", ["8\x1f", "\u00b2", "\u0663", "1.5", "", "-2"])
def test_frame_keys_that_are_not_ascii_decimals_are_region_errors(frame) -> None:
    # "\x1f" is whitespace to str.strip() and "²", "٣" are digits to str.isdigit(), but int() takes none of them
    box = {"type": "box", "box": [1, 1, 5, 5]}
    with pytest.raises(RegionError, match="frame index must be a non-negative integer"):
        Region.from_dict({**box, "frame": frame})
    with pytest.raises(RegionError, match="frame index must be a non-negative integer"):
        Region.from_dict({"type": "frames", "frames": {frame: box}})
    assert list(Region.from_dict({"type": "frames", "frames": {" 3 ": box}}).data) == [3]


def test_prompt_without_pixels_or_with_wrong_frames() -> None:
    with pytest.raises(RegionError, match="needs the image pixels"):
        Region.from_box([1, 1, 9, 9]).resolve(H, W)
    with pytest.raises(RegionError, match="frames given"):
        _resolve(Region.from_box([1, 1, 9, 9]), frames=[IMAGE, IMAGE], num_frames=3)


def test_segmenter_returning_nothing_is_an_error() -> None:
    with pytest.raises(RegionError, match="fixed mask for the box prompt on frame 0 is empty"):
        _resolve(Region.from_box([1, 1, 9, 9]), segmenter=FixedSegmenter(np.zeros((H, W), bool)))


def test_mask_vanishing_during_propagation_is_reported() -> None:
    start = np.zeros((H, W), bool)
    start[5:15, 5:15] = True
    carried = {1: start, 2: np.zeros((H, W), bool), 3: np.zeros((H, W), bool)}
    resolved = _resolve(Region.from_mask(start), frames=[IMAGE] * 4, num_frames=4,
                        segmenter=FixedSegmenter(start, carried), propagate=True)
    assert resolved.frames == [0, 1] and resolved.empty_frames == (2, 3)
    assert any("vanished" in w for w in resolved.warnings)


def test_scribble_errors() -> None:
    with pytest.raises(RegionError, match="stroke or a brush"):
        Region.from_scribble()
    with pytest.raises(RegionError, match="no pixel inside"):
        _resolve(Region.from_scribble([[[200, 200], [300, 210]]]), segmenter=FixedSegmenter(IMAGE[..., 0] > 0))
    with pytest.raises(RegionError, match="brush"):
        _resolve(Region.from_scribble(brush=np.ones((3, 3), bool)), segmenter=FixedSegmenter(IMAGE[..., 0] > 0))
