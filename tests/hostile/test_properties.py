"""Property-based tests of the region codecs and the region JSON schema (hypothesis, 1,000 examples each).

Round trips: RLE (compressed and uncompressed), polygons, boxes, points and the JSON form of each region type
give back the same mask or prompt. Hostility: random counts, coordinates and JSON never raise anything but a
:class:`~pixelrefer.errors.PixelReferError`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pixelrefer.errors import PixelReferError
from pixelrefer.regions import BoxPrompt, PointsPrompt, Region, codecs

EXAMPLES = settings(max_examples=1000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

sizes = st.integers(1, 12)
masks = st.tuples(sizes, sizes).flatmap(lambda hw: arrays(bool, hw))
finite = st.floats(-40, 80, allow_nan=False, allow_infinity=False)
any_float = st.floats(allow_nan=True, allow_infinity=True)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**9) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8,
)
small_json = st.recursive(st.none() | st.booleans() | st.integers(-3, 40) | st.floats() | st.text(max_size=4),
                          lambda inner: st.lists(inner, max_size=4), max_leaves=5)


# ----------------------------------------------------------------------------------------------------------- RLE
@EXAMPLES
@given(masks)
def test_rle_round_trips(mask: np.ndarray) -> None:
    compressed = codecs.encode_rle(mask)
    assert np.array_equal(codecs.decode_rle(compressed), mask)
    uncompressed = codecs.uncompressed_rle(mask)
    assert np.array_equal(codecs.decode_rle(uncompressed), mask)
    assert codecs.compressed_counts(compressed["counts"]).tolist() == uncompressed["counts"]
    assert codecs.rle_size(json.loads(json.dumps(compressed))) == mask.shape


@EXAMPLES
@given(sizes, sizes, st.text(alphabet=[chr(c) for c in range(48, 112)], max_size=30) | st.binary(max_size=30)
       | st.text(max_size=30) | st.lists(st.integers(-3, 200), max_size=30))
def test_random_rle_counts_are_refused_or_exact(h: int, w: int, counts) -> None:
    try:
        mask = codecs.decode_rle({"size": [h, w], "counts": counts})
    except PixelReferError:
        return
    assert mask.shape == (h, w)
    assert sum(codecs.uncompressed_rle(mask)["counts"]) == h * w
    assert np.array_equal(codecs.decode_rle(codecs.encode_rle(mask)), mask)


@EXAMPLES
@given(masks, st.integers(1, 8))
def test_truncated_compressed_counts_are_refused(mask: np.ndarray, cut: int) -> None:
    counts = codecs.encode_rle(mask)["counts"]
    if len(counts) <= cut:
        return
    with pytest.raises(PixelReferError):
        codecs.decode_rle({"size": list(mask.shape), "counts": counts[:-cut]})


# ----------------------------------------------------------------------------------------------------------- polygons
@EXAMPLES
@given(sizes, sizes, st.lists(st.tuples(finite, finite), min_size=3, max_size=8))
def test_polygon_json_round_trip(h: int, w: int, points: list[tuple[float, float]]) -> None:
    region = Region.from_polygon([c for p in points for c in p], size=(h, w))
    again = Region.from_dict(json.loads(json.dumps(region.to_dict())))
    try:
        first = region.resolve(h, w).masks
    except PixelReferError:  # an empty or degenerate polygon
        with pytest.raises(PixelReferError):
            again.resolve(h, w)
        return
    second = again.resolve(h, w).masks
    assert first.keys() == second.keys() and all(np.array_equal(first[k], second[k]) for k in first)


@EXAMPLES
@given(sizes, sizes, st.lists(any_float | st.integers() | st.text(max_size=3), max_size=12)
       | st.lists(st.lists(any_float, max_size=4), max_size=5))
def test_random_polygons_are_refused_or_rasterised(h: int, w: int, polygons) -> None:
    try:
        resolved = Region.from_polygon(polygons).resolve(h, w)
    except PixelReferError:
        return
    assert all(m.shape == (h, w) and m.any() for m in resolved.masks.values())


# ----------------------------------------------------------------------------------------------------------- boxes, points
@EXAMPLES
@given(sizes, sizes, st.lists(any_float, min_size=4, max_size=4), st.sampled_from(["xyxy", "xywh"]), st.booleans())
def test_boxes_round_trip_and_stay_inside(h: int, w: int, box: list[float], fmt: str, normalized: bool) -> None:
    try:
        prompt = BoxPrompt(np.asarray(box), fmt, normalized)
        x0, y0, x1, y1 = prompt.xyxy(h, w)
    except PixelReferError:
        return
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    again = Region.from_dict(json.loads(json.dumps(Region.from_box(box, fmt, normalized).to_dict())))
    assert np.array_equal(again.prompts()[0].xyxy(h, w), [x0, y0, x1, y1])


@EXAMPLES
@given(sizes, sizes, st.lists(st.tuples(any_float, any_float), min_size=1, max_size=5), st.data())
def test_points_round_trip_and_stay_inside(h: int, w: int, points, data) -> None:
    labels = data.draw(st.lists(st.sampled_from([0, 1]), min_size=len(points), max_size=len(points)))
    try:
        prompt = PointsPrompt(np.asarray(points), np.asarray(labels))
        xy = prompt.to_segment_prompt(h, w).points
    except PixelReferError:
        return
    assert np.all((xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h))
    again = Region.from_dict(json.loads(json.dumps(Region.from_points(points, labels).to_dict())))
    assert np.array_equal(again.prompts()[0].points, prompt.points)


# ----------------------------------------------------------------------------------------------------------- JSON schema
@EXAMPLES
@given(json_values | st.fixed_dictionaries(
    {"type": st.sampled_from(["mask", "mask_png", "rle", "polygon", "box", "points", "scribble", "frames"])},
    optional={k: small_json for k in ("mask", "data", "rle", "polygons", "size", "box", "points", "labels",
                                       "strokes", "width", "normalized", "format", "frames", "frame", "channel")}))
def test_random_region_json_raises_only_our_errors(data) -> None:
    try:
        region = Region.from_dict(data)
        resolved = region.resolve(16, 16, num_frames=2, frames=[np.zeros((16, 16, 3), np.uint8)] * 2)
    except PixelReferError:
        return
    assert all(m.shape == (16, 16) for m in resolved.masks.values())


@EXAMPLES
@given(masks, st.integers(0, 3))
def test_mask_regions_round_trip_through_json(mask: np.ndarray, frame: int) -> None:
    if not mask.any():
        return
    region = Region.from_mask(mask, frame=frame)
    again = Region.from_dict(json.loads(json.dumps(region.to_dict())))
    resolved = again.resolve(*mask.shape, num_frames=4)
    assert np.array_equal(resolved.masks[frame], mask)
