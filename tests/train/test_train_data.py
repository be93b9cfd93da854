"""Strict validation of the official JSON format: a bad sample raises naming its id and index."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from train_fixtures import SIZE, rle, shape_mask

from pixelrefer.processing.processor import PixelReferProcessor
from pixelrefer.train.data import DataError, validate_dataset
from pixelrefer.train.dataset import SupervisedDataset
from pixelrefer.train.run import build_model, load_tokenizer


def _write(tmp_path: Path, tiny_data: Path, samples: list[dict]) -> Path:
    for sub in ("images", "videos"):
        link = tmp_path / sub
        if not link.exists():
            link.symlink_to(tiny_data / sub)
    path = tmp_path / "data.json"
    path.write_text(json.dumps(samples))
    return path


def _good(tiny_data: Path) -> list[dict]:
    return json.loads((tiny_data / "train.json").read_text())


def test_the_tiny_dataset_validates(tiny_data):
    report = validate_dataset(tiny_data / "train.json")
    assert report.samples == 15 and report.videos == 1 and report.regions == 15


def _broken(tiny_data: Path, index: int, edit) -> list[dict]:
    samples = copy.deepcopy(_good(tiny_data))
    edit(samples[index])
    return samples


def _two_regions_one_mask(s: dict) -> None:
    s["conversations"][0]["value"] += " And <region>?"


def _bad_rle_size(s: dict) -> None:
    s["masks"][0]["size"] = [SIZE + 1, SIZE]


def _missing_image(s: dict) -> None:
    s["image"] = "images/nope.png"


def _garbage_rle(s: dict) -> None:
    s["masks"][0]["counts"] = 12


def _video_frame_out_of_range(s: dict) -> None:
    s["masks"][0] = {"7": s["masks"][0]["0"]}


def _no_answer(s: dict) -> None:
    s["conversations"] = s["conversations"][:1]


@pytest.mark.parametrize(("index", "edit", "message"), [
    (3, _two_regions_one_mask, "2 <region> placeholder(s) but 1 mask(s)"),
    (5, _bad_rle_size, "RLE size"),
    (2, _missing_image, "missing media file"),
    (4, _garbage_rle, "mask 0"),
    (14, _video_frame_out_of_range, "outside the 3 frames"),
    (6, _no_answer, "no answer"),
])
def test_a_bad_sample_is_named(tiny_data, tmp_path, index, edit, message):
    samples = _broken(tiny_data, index, edit)
    path = _write(tmp_path, tiny_data, samples)
    with pytest.raises(DataError) as info:
        validate_dataset(path)
    text = str(info.value)
    assert message in text and f"'{samples[index]['id']}' (index {index})" in text


def test_polygon_masks_need_and_match_the_declared_size(tiny_data, tmp_path):
    samples = _good(tiny_data)[:2]
    samples[0]["masks"] = [[[10, 10, 40, 10, 40, 40, 10, 40]]]
    path = _write(tmp_path, tiny_data, samples)
    assert validate_dataset(path).regions == 2
    del samples[0]["height"]
    path.write_text(json.dumps(samples))
    with pytest.raises(DataError, match="polygon mask needs"):
        validate_dataset(path)


def test_duplicate_ids_and_encoding_errors_are_named(tiny_data, tiny_config, tmp_path):
    cfg = tiny_config()
    tokenizer = load_tokenizer(cfg)
    processor = PixelReferProcessor(tokenizer, build_model(cfg, tokenizer).config)
    samples = _good(tiny_data)[:3]
    samples[2]["id"] = samples[0]["id"]
    path = _write(tmp_path, tiny_data, samples)
    with pytest.raises(DataError, match="is used at index 0 and 2"):
        SupervisedDataset(path, processor)
    samples[2]["id"] = "fine"
    empty = np.zeros((SIZE, SIZE), bool)
    empty[0, 0] = True  # a one-pixel region still encodes
    samples[1]["masks"] = [rle(empty | shape_mask("circle", 30, 30, 3))]
    path.write_text(json.dumps(samples))
    dataset = SupervisedDataset(path, processor)
    encoded = dataset[1]
    assert encoded.labels is not None and len(encoded.labels) == len(encoded.input_ids)
    supervised = [t for t, label in zip(encoded.input_ids, encoded.labels) if label != -100]
    assert tokenizer.decode(supervised) == samples[1]["conversations"][1]["value"] + "<|im_end|>"
