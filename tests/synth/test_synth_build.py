"""The on-disk dataset: byte-identical rebuilds, official-format validity, held-out split, exact answers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from pixelrefer.constants import IMAGE_TOKEN, REGION_PLACEHOLDER, VIDEO_TAG
from pixelrefer.synth import world
from pixelrefer.synth.build import SPLITS, build_dataset
from pixelrefer.synth.tasks import AREA_RATIO, SEPARATION

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # inside pycocotools

ARGS = {"n_train": 40, "n_val": 6, "n_test": 6, "n_heldout": 16, "seed": 3, "video_fraction": 0.35,
        "image_size": 128, "progress": False}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "ds"
    build_dataset(out, **ARGS)
    return out


def _samples(root: Path, split: str) -> list[dict]:
    return json.loads((root / f"{split}.json").read_text())


def _all(root: Path) -> list[dict]:
    return [s for split in SPLITS for s in _samples(root, split)]


def _decode(rle: dict) -> np.ndarray:
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(bool)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files_with_any_worker_count(dataset: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    build_dataset(again, workers=2, **ARGS)
    assert _files(dataset) == _files(again)
    other = tmp_path / "other"
    build_dataset(other, **(ARGS | {"seed": 4, "n_val": 0, "n_test": 0, "n_heldout": 0}))
    assert (other / "train.json").read_bytes() != (dataset / "train.json").read_bytes()


def test_split_sizes_and_dataset_info(dataset: Path) -> None:
    info = json.loads((dataset / "dataset_info.json").read_text())
    assert info["seed"] == 3 and info["arguments"]["image_size"] == [128, 128]
    for split, key in zip(SPLITS, ("n_train", "n_val", "n_test", "n_heldout")):
        samples = _samples(dataset, split)
        assert len(samples) == ARGS[key] == info["splits"][split]["samples"]
        assert len({s["id"] for s in samples}) == len(samples)
    assert sorted(map(tuple, info["world"]["held_out"])) == sorted(world.HELD_OUT)


def test_every_sample_is_in_the_official_format(dataset: Path) -> None:
    kinds = set()
    for s in _all(dataset):
        human, gpt = s["conversations"]
        assert human["from"] == "human" and gpt["from"] == "gpt" and gpt["value"]
        assert human["value"].count(REGION_PLACEHOLDER) == len(s["masks"]) >= 1, s["id"]
        assert REGION_PLACEHOLDER not in gpt["value"]
        h, w = s["height"], s["width"]
        if "image" in s:
            kinds.add("image")
            assert human["value"].startswith(IMAGE_TOKEN + "\n")
            assert (dataset / s["image"]).is_file()
            masks = [_decode(rle) for rle in s["masks"]]
        else:
            kinds.add("video")
            assert human["value"].startswith(VIDEO_TAG + "\n")
            assert len(s["timestamps"]) == len(s["video"]) >= 4
            assert all((dataset / f).is_file() for f in s["video"])
            masks, used = [], []
            for per_frame in s["masks"]:
                assert per_frame and all(0 <= int(k) < len(s["video"]) for k in per_frame), s["id"]
                masks += [_decode(rle) for rle in per_frame.values()]
                used += [int(k) for k in per_frame if int(k) not in used]
            assert s["masked_video"] == [s["video"][k] for k in used]
        for m in masks:
            assert m.shape == (h, w) and m.any(), s["id"]
    assert kinds == {"image", "video"}


def test_held_out_combos_only_in_the_heldout_split(dataset: Path) -> None:
    for split in ("train", "val", "test"):
        for s in _samples(dataset, split):
            for obj in s["meta"]["objects"]:
                assert not world.is_held_out(obj["category"], obj["colour"]), s["id"]
    for s in _samples(dataset, "heldout"):
        first = s["meta"]["objects"][0]
        assert world.is_held_out(first["category"], first["colour"]), s["id"]


def _box(mask: np.ndarray) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(mask)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def _check_relation(s: dict) -> None:
    a, b = (_decode(r) for r in s["masks"])
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = _box(a), _box(b)
    acx, acy, bcx, bcy = (ax0 + ax1) / 2, (ay0 + ay1) / 2, (bx0 + bx1) / 2, (by0 + by1) / 2
    meta, oa, ob = s["meta"], *s["meta"]["objects"]
    truth = {
        "left_of": acx < bcx, "right_of": acx > bcx, "above": acy < bcy, "below": acy > bcy,
        "larger_than": a.sum() > b.sum(), "smaller_than": a.sum() < b.sum(),
        "same_colour": oa["colour"] == ob["colour"], "same_category": oa["category"] == ob["category"],
    }[meta["relation"]]
    if meta["relation"] in ("left_of", "right_of"):
        assert abs(acx - bcx) >= SEPARATION * s["width"]
    if meta["relation"] in ("larger_than", "smaller_than"):
        assert max(a.sum(), b.sum()) / min(a.sum(), b.sum()) >= AREA_RATIO
    expected = ("yes" if truth else "no") if meta["form"] == "yesno" else ("<region0>" if truth else "<region1>")
    assert s["meta"]["answer"] == expected, s["id"]


def test_answers_agree_with_the_ground_truth(dataset: Path) -> None:
    seen = set()
    for s in _all(dataset):
        meta, answer = s["meta"], s["conversations"][1]["value"]
        assert meta["answer"] == answer
        obj = meta["objects"][0]
        seen.add(meta["task"])
        if meta["task"] == "category":
            assert answer == obj["category"]
        elif meta["task"] == "part_category":
            assert answer == world.part_label(obj["category"], meta.get("part"))
        elif meta["task"] == "relation":
            _check_relation(s)
        elif meta["task"] == "multiple_choice":
            options = re.findall(r"\(([A-D])\) ([^()]+?)(?= \([A-D]\)|\. Answer)", s["conversations"][0]["value"])
            assert dict(options)[answer] == meta["correct"] == meta["options"]["ABCD".index(answer)]
        elif meta["task"] == "brief":
            assert obj["category"] in answer and obj["colour"] in answer and obj["size"] in answer
        if "image" in s and meta["task"] in ("category", "brief", "detail", "region_qa"):
            ys, xs = np.nonzero(_decode(s["masks"][0]))
            assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == obj["box"]
    assert {"category", "relation", "multiple_choice"} <= seen
