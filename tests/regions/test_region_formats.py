"""Round trips for every region format: constructors, JSON (to_dict/from_dict), RLE, polygons, PNG, alpha."""

from __future__ import annotations

import base64
import io
import json

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from pixelrefer.regions import Region, RegionError, ResolvedRegion, as_region, decode_rle, encode_rle
from pixelrefer.regions.codecs import mask_to_png_bytes, png_bytes_to_mask, uncompressed_rle

H, W = 37, 53  # odd sizes catch row/column and Fortran-order mistakes


def _mask(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros((H, W), bool)
    mask[5:20, 7:31] = True
    mask[rng.integers(0, H, 40), rng.integers(0, W, 40)] = True  # scattered pixels: runs of length 1
    mask[0, 0] = True  # a run starting at pixel 0 needs the leading zero-length run
    return mask


def _json(region: Region) -> Region:
    return Region.from_dict(json.loads(json.dumps(region.to_dict())))


def _resolved(region: Region) -> dict[int, np.ndarray]:
    return region.resolve(H, W, num_frames=8).masks


def test_compressed_rle_round_trip_matches_pycocotools() -> None:
    mask = _mask()
    rle = encode_rle(mask)
    assert np.array_equal(decode_rle(rle), mask)
    reference = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert rle["counts"] == reference["counts"].decode("ascii")
    assert rle["size"] == [H, W]


def test_uncompressed_rle_round_trip_and_equivalence() -> None:
    mask = _mask(1)
    rle = uncompressed_rle(mask)
    assert sum(rle["counts"]) == H * W and rle["counts"][0] == 0
    assert np.array_equal(decode_rle(rle), mask)
    ours = _resolved(Region.from_rle(rle))[0]
    assert np.array_equal(ours, mask)
    assert _json(Region.from_rle(rle)).to_dict()["rle"]["counts"] == rle["counts"]


@pytest.mark.parametrize("frame", [0, 5])
def test_mask_region_json_round_trip(frame: int) -> None:
    mask = _mask(2)
    region = Region.from_mask(mask, frame=frame)
    data = region.to_dict()
    assert data["type"] == "rle" and data.get("frame", 0) == frame
    assert np.array_equal(_resolved(_json(region))[frame], mask)


def test_mask_png_file_rgba_alpha_and_base64(tmp_path) -> None:
    mask = _mask(3)
    grey = tmp_path / "mask.png"
    Image.fromarray(mask.astype(np.uint8) * 255).save(grey)
    assert np.array_equal(_resolved(Region.from_mask_file(grey))[0], mask)
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., :3] = 200  # colour everywhere: only alpha may decide
    rgba[..., 3] = mask * 255
    rgba_path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(rgba_path)
    assert np.array_equal(_resolved(Region.from_mask_file(rgba_path))[0], mask)
    assert np.array_equal(_resolved(Region.from_rgba(Image.open(rgba_path)))[0], mask)
    assert np.array_equal(_resolved(Region.from_rgba(rgba))[0], mask)
    assert np.array_equal(png_bytes_to_mask(mask_to_png_bytes(mask)), mask)
    payload = base64.b64encode(rgba_path.read_bytes()).decode()
    for data in (payload, "data:image/png;base64," + payload):
        region = Region.from_dict({"type": "mask_png", "data": data})
        assert np.array_equal(_resolved(region)[0], mask)


def test_nested_list_mask_and_as_region_inputs(tmp_path) -> None:
    mask = _mask(4)
    assert np.array_equal(_resolved(Region.from_dict({"type": "mask", "mask": mask.astype(int).tolist()}))[0], mask)
    path = tmp_path / "m.png"
    path.write_bytes(mask_to_png_bytes(mask))
    buffer = io.BytesIO(mask_to_png_bytes(mask))
    for obj in (mask, mask.astype(np.uint8) * 255, str(path), path, Image.open(buffer),
                Region.from_mask(mask).to_dict(), {0: mask}, ResolvedRegion({0: mask})):
        assert np.array_equal(_resolved(as_region(obj))[0], mask), type(obj)


def test_polygon_matches_pycocotools_and_cv2() -> None:
    flat = [4.0, 3.0, 40.0, 6.0, 30.0, 30.0, 8.0, 25.0]
    pairs = np.array(flat).reshape(-1, 2).tolist()
    reference = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([flat], H, W))).astype(bool)
    for polygons in (flat, [flat], pairs, [pairs], np.array(pairs)):
        region = Region.from_polygon(polygons, size=(H, W))
        assert np.array_equal(_resolved(region)[0], reference)
        assert np.array_equal(_resolved(_json(region))[0], reference)
    drawn = np.zeros((H, W), np.uint8)
    cv2.fillPoly(drawn, [np.array(pairs, np.int32)], 1)
    agreement = (drawn.astype(bool) == reference).mean()
    assert agreement > 0.95  # COCO and OpenCV rasterise edges a little differently
    second = [45.0, 30.0, 52.0, 30.0, 52.0, 36.0]
    union = Region.from_polygon([flat, second], size=(H, W))
    assert _resolved(union)[0].sum() > reference.sum()


def test_box_formats_agree() -> None:
    expected = np.array([5.0, 4.0, 25.0, 30.0])
    variants = [
        Region.from_box([5, 4, 25, 30]),
        Region.from_box([5, 4, 20, 26], fmt="xywh"),
        Region.from_box([5 / W, 4 / H, 25 / W, 30 / H], normalized=True),
        Region.from_box([5 / W, 4 / H, 20 / W, 26 / H], fmt="xywh", normalized=True),
    ]
    for region in variants:
        for candidate in (region, _json(region)):
            prompt = candidate.prompts()[0].to_segment_prompt(H, W)
            np.testing.assert_allclose(prompt.box, expected, atol=1e-9)


def test_points_labels_and_normalised() -> None:
    region = Region.from_points([[10, 12], [30, 20]], labels=[1, 0])
    back = _json(region)
    prompt = back.prompts()[0].to_segment_prompt(H, W)
    np.testing.assert_array_equal(prompt.points, [[10, 12], [30, 20]])
    np.testing.assert_array_equal(prompt.labels, [1, 0])
    single = Region.from_points([10, 12]).prompts()[0].to_segment_prompt(H, W)
    np.testing.assert_array_equal(single.labels, [1])
    norm = Region.from_points([[0.5, 0.25]], normalized=True).prompts()[0].to_segment_prompt(H, W)
    np.testing.assert_allclose(norm.points, [[W / 2, H / 4]])


def test_scribble_strokes_brush_and_json() -> None:
    stroke = [[5, 5], [20, 5], [20, 15]]
    region = Region.from_scribble([stroke], negative_strokes=[[[30, 30], [40, 30]]], width=3)
    prompt = region.prompts()[0].to_segment_prompt(H, W)
    assert prompt.scribble[5, 12] and prompt.scribble[10, 20] and not prompt.scribble[30, 5]
    assert prompt.negative_scribble[30, 35]
    again = _json(region).prompts()[0].to_segment_prompt(H, W)
    assert np.array_equal(again.scribble, prompt.scribble)
    assert np.array_equal(again.negative_scribble, prompt.negative_scribble)
    brush = np.zeros((H, W), bool)
    brush[10:13, 10:30] = True
    from_brush = _json(Region.from_scribble(brush=brush)).prompts()[0].to_segment_prompt(H, W)
    assert np.array_equal(from_brush.scribble, brush)


def test_per_frame_prompts_round_trip() -> None:
    mask = _mask(5)
    region = Region.from_prompts({0: Region.from_box([1, 1, 9, 9]), "3": mask, 6: {"type": "points", "points": [[4, 4]]}})
    assert region.kind == "mixed" and sorted(region.data) == [0, 3, 6]
    data = json.loads(json.dumps(region.to_dict()))
    assert data["type"] == "frames" and sorted(data["frames"], key=int) == ["0", "3", "6"]
    back = Region.from_dict(data)
    assert back.to_dict() == region.to_dict()
    masks_only = Region.from_frames({2: mask, 4: ~mask})
    resolved = _resolved(_json(masks_only))
    assert sorted(resolved) == [2, 4] and np.array_equal(resolved[4], ~mask)


def test_unknown_types_and_keys_are_errors() -> None:
    with pytest.raises(RegionError, match="unknown region type"):
        Region.from_dict({"type": "lasso"})
    with pytest.raises(RegionError, match="unknown key"):
        Region.from_dict({"type": "box", "box": [1, 2, 3, 4], "fromat": "xywh"})
    with pytest.raises(RegionError, match="needs key"):
        Region.from_dict({"type": "points"})
    with pytest.raises(RegionError, match="needs a 'type'"):
        as_region({"box": [1, 2, 3, 4]})
    with pytest.raises(TypeError):
        as_region(3.5)
