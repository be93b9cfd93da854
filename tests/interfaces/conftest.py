"""Fixtures for the interface tests: the tiny random model and a folder of generated media."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from interface_scenes import SCENE_HW, make_scene, png_bytes
from PIL import Image

from pixelrefer.media import write_video


@pytest.fixture(scope="session")
def pipeline():
    from pixelrefer import PixelRefer

    return PixelRefer.from_pretrained("tiny", device="cpu", dtype="float32", segmenter="classical")


@pytest.fixture(scope="session")
def scene_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scene.png, a 2-second 4 fps video.mp4, a mask png, an RLE json, a corrupt png and a text file."""
    root = tmp_path_factory.mktemp("scenes")
    scene = make_scene()
    (root / "scene.png").write_bytes(png_bytes(scene))
    frames = []
    for t in range(8):
        frame = np.full((64, 64, 3), 225, np.uint8)
        frame[20:40, 8 + 2 * t:28 + 2 * t] = (200, 40, 40)
        frames.append(frame)
    write_video(frames, root / "video.mp4", fps=4)
    mask = np.zeros(SCENE_HW, np.uint8)
    mask[30:50, 95:115] = 255
    Image.fromarray(mask).save(root / "mask.png")
    from pixelrefer.regions import encode_rle

    (root / "rle.json").write_text(json.dumps(encode_rle(mask > 0)))
    (root / "corrupt.png").write_bytes(png_bytes(scene)[:80])
    (root / "notes.txt").write_text("not an image")
    (root / "bad_regions.json").write_text('[{"type": "box", "box": [1, 2, 3]')
    return root
