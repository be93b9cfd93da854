"""`pixelrefer segment` end to end on small generated media, and its one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from region_scenes import box_of, inner_point, iou, make_scene
from typer.testing import CliRunner

from pixelrefer.cli.main import app
from pixelrefer.media import read_video, write_video
from pixelrefer.regions import decode_rle

runner = CliRunner()


@pytest.fixture(scope="module")
def scene():
    return make_scene(11, "large", num_frames=4)


@pytest.fixture
def image_path(tmp_path, scene):
    path = tmp_path / "scene.png"
    Image.fromarray(scene.frames[0]).save(path)
    return path


def test_box_on_image_writes_overlay_and_rle(image_path, tmp_path, scene) -> None:
    box = ",".join(str(int(v)) for v in box_of(scene.masks[0]))
    result = runner.invoke(app, ["segment", str(image_path), "--box", box, "--segmenter", "classical",
                                 "--out", str(tmp_path / "o.png"), "--save-mask", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    overlay = np.asarray(Image.open(tmp_path / "o.png"))
    assert overlay.shape == scene.frames[0].shape and not np.array_equal(overlay, scene.frames[0])
    mask = decode_rle(json.loads((tmp_path / "m.json").read_text()))
    assert iou(mask, scene.masks[0]) > 0.9
    assert f"box region via classical: 1/1 frames, {int(mask.sum())} px" in result.output
    assert f"wrote {tmp_path / 'o.png'}" in result.output and f"wrote {tmp_path / 'm.json'}" in result.output


def test_points_and_png_mask_output(image_path, tmp_path, scene) -> None:
    x, y = inner_point(scene.masks[0])
    result = runner.invoke(app, ["segment", str(image_path), "--point", f"{x},{y}", "--point", "2,2,0",
                                 "--save-mask", str(tmp_path / "m.png")])
    assert result.exit_code == 0, result.output
    mask = np.asarray(Image.open(tmp_path / "m.png")) > 0
    assert iou(mask, scene.masks[0]) > 0.9
    assert f"1/1 frames, {int(mask.sum())} px" in result.output and f"wrote {tmp_path / 'm.png'}" in result.output


def test_video_propagation_with_mask_prompt(tmp_path, scene) -> None:
    video = write_video(scene.frames, tmp_path / "clip.mp4", fps=4)
    mask_file = tmp_path / "first.png"
    Image.fromarray(scene.masks[1].astype(np.uint8) * 255).save(mask_file)
    result = runner.invoke(app, ["segment", str(video), "--mask", str(mask_file), "--frame", "1", "--no-progress",
                                 "--out", str(tmp_path / "o.gif"), "--save-mask", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    assert read_video(tmp_path / "o.gif").num_frames == 4
    frames = json.loads((tmp_path / "m.json").read_text())["frames"]
    assert sorted(frames, key=int) == ["0", "1", "2", "3"]
    assert np.mean([iou(decode_rle(frames[str(i)]), scene.masks[i]) for i in range(4)]) > 0.85
    area = sum(int(decode_rle(rle).sum()) for rle in frames.values())
    assert f"4/4 frames, {area} px" in result.output and f"wrote {tmp_path / 'o.gif'}" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--box", "10,10,5,40"], "degenerate"),
        (["--box", "1,2,3"], "expected 4 numbers"),
        (["--point", "500,5"], "outside"),
        (["--polygon", "1,1,5,5"], "at least 3 points"),
        (["--point", "5,5", "--box", "1,1,9,9"], "exactly one"),
        ([], "exactly one"),
        (["--box", "1,1,9,9", "--frame", "3"], "still image"),
        (["--mask", "missing.png"], "not found"),
    ],
)
def test_bad_input_is_one_line_error(image_path, args, message) -> None:
    result = runner.invoke(app, ["segment", str(image_path), *args])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.output


def test_unreadable_media_and_frame_past_the_end(tmp_path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"nope" * 50)
    result = runner.invoke(app, ["segment", str(bad), "--box", "1,1,5,5"])
    assert result.exit_code == 2 and "cannot open" in result.output
    video = write_video([np.zeros((32, 32, 3), np.uint8)] * 3, tmp_path / "v.mp4", fps=3)
    result = runner.invoke(app, ["segment", str(video), "--box", "1,1,5,5", "--frame", "7"])
    assert result.exit_code == 2 and "outside the video" in result.output
