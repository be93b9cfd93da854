"""`pixelrefer synth`: the sample scene for newcomers and a small build through the command line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import typer
from PIL import Image
from typer.testing import CliRunner

from pixelrefer.cli.main import COMMANDS
from pixelrefer.cli.synth import synth


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("synth")(synth)
    app.command("noop")(lambda: None)  # two commands, so `synth` is addressed by name as in `pixelrefer`
    return app


def test_synth_is_registered() -> None:
    assert COMMANDS["synth"] == "synth:synth"


def test_sample_writes_a_scene_and_prints_boxes_matching_its_masks(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["synth", "--out", str(tmp_path), "--sample", "--seed", "5"])
    assert result.exit_code == 0, result.output
    truth = json.loads((tmp_path / "scene.json").read_text())
    image = np.asarray(Image.open(tmp_path / "scene.png"))
    image_lines = result.output.split("wrote ")[1]  # the scene's part of the output (the clip's follows)
    boxes = re.findall(r"--box (\d+),(\d+),(\d+),(\d+)", image_lines)
    assert len(boxes) == len(truth["objects"]) + 1  # one per object and the suggested command
    assert "pixelrefer ask" in result.output
    for obj, box in zip(truth["objects"], boxes):
        mask = np.asarray(Image.open(tmp_path / obj["mask"])) > 0
        assert mask.shape == image.shape[:2]
        ys, xs = np.nonzero(mask)
        assert [int(v) for v in box] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == obj["box"]
        assert obj["category"] in result.output


def test_sample_writes_a_clip_whose_frame_0_boxes_match_its_ground_truth(tmp_path: Path) -> None:
    from pixelrefer.media import read_video

    result = CliRunner().invoke(_app(), ["synth", "--out", str(tmp_path), "--sample", "--seed", "5"])
    assert result.exit_code == 0, result.output
    truth = json.loads((tmp_path / "clip.json").read_text())
    clip = read_video(tmp_path / "clip.mp4")
    assert clip.num_frames == truth["frames"] and clip.timestamps[:2] == [0.0, 1.0]
    tracks = re.findall(r"track (\d+) on frame 0: --box (\d+),(\d+),(\d+),(\d+)", result.output)
    assert tracks, result.output
    by_index = {obj["index"]: obj for obj in truth["objects"]}
    for index, *box in tracks:
        obj = by_index[int(index)]
        assert obj["first_frame"] == 0 and [int(v) for v in box] == obj["box_on_first_frame"]
    assert f"pixelrefer ask {tmp_path / 'clip.mp4'}" in result.output


def test_build_through_the_cli(tmp_path: Path) -> None:
    args = ["synth", "--out", str(tmp_path), "--n-train", "4", "--n-val", "2", "--n-test", "2", "--n-heldout", "2",
            "--image-size", "96", "--no-progress", "--tokenizer", "--vocab-size", "400"]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    assert len(json.loads((tmp_path / "train.json").read_text())) == 4
    assert (tmp_path / "tokenizer" / "tokenizer.json").is_file()
    for split, n in (("train", 4), ("val", 2), ("test", 2)):
        assert f"{split}: {n} samples -> {tmp_path / (split + '.json')}" in result.output
    assert re.search(rf"tokenizer: \d+ tokens -> {re.escape(str(tmp_path / 'tokenizer'))}", result.output), result.output
