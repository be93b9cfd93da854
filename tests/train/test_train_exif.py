"""A training photo with an EXIF orientation tag is validated and encoded upright, like every other entry point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from train_fixtures import rle

from pixelrefer.errors import DataError
from pixelrefer.train.data import parse_sample, sample_ref
from pixelrefer.train.dataset import sample_media


def _sample(root: Path, mask: np.ndarray) -> dict:
    shown = np.full((48, 32, 3), 50, np.uint8)
    shown[30:40, 8:20] = (220, 40, 40)
    exif = Image.Exif()
    exif[0x0112] = 8  # "turn 90 degrees counter-clockwise to show": stored 32 x 48
    Image.fromarray(np.ascontiguousarray(np.rot90(shown, k=-1))).save(root / "photo.png", exif=exif)
    return {"id": "rotated", "image": "photo.png", "masks": [rle(mask)],
            "conversations": [{"from": "human", "value": "<image>\nWhat is <region>?"}, {"from": "gpt", "value": "x"}]}


def test_rotated_photo_is_checked_and_loaded_upright(tmp_path: Path) -> None:
    mask = np.zeros((48, 32), bool)
    mask[30:40, 8:20] = True
    raw = _sample(tmp_path, mask)
    parsed = parse_sample(raw, sample_ref(raw, tmp_path / "d.json", 0), tmp_path)
    media = sample_media(parsed)
    assert media.size == (48, 32) and parsed.regions[0][0].shape == (48, 32)
    assert media.frames[0][mask].mean(axis=0).tolist() == [220, 40, 40]


def test_a_mask_of_the_stored_size_is_refused(tmp_path: Path) -> None:
    raw = _sample(tmp_path, np.ones((32, 48), bool))
    with pytest.raises(DataError, match="size"):
        parse_sample(raw, sample_ref(raw, tmp_path / "d.json", 0), tmp_path)
