"""The real-photo annotations (tests/data/real_photos.json): well-formed, in the world's vocabulary, agreeing with
the world's rules, on photos that load offline from the scikit-image / scikit-learn wheels."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from pixelrefer.errors import DataError
from pixelrefer.eval.real_photos import (
    SKILLS,
    load_annotations,
    position_word,
    questions,
    relation_holds,
    size_word,
)
from pixelrefer.synth import world

ANNOTATIONS = Path(__file__).resolve().parent.parent / "data" / "real_photos.json"


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_annotations_are_well_formed_and_cover_the_skills() -> None:
    ann = load_annotations(ANNOTATIONS)
    qs = questions(ann)
    assert len(qs) >= 40 and len(ann["photos"]) >= 8
    assert {q.skill for q in qs} == set(SKILLS)
    for q in qs:
        assert q.question.count("<region>") == len(q.boxes)
        if q.skill == "colour":
            assert q.answer in world.COLOURS
        elif q.skill == "size":
            assert q.answer in world.SIZE_ORDER
    assert len({q.id for q in qs}) == len(qs)


def test_rules_match_the_world() -> None:
    assert size_word((0, 0, 40, 10), 100, 200) == "large"  # 40 / short side 100
    assert size_word((0, 0, 30, 10), 100, 200) is None  # in the gap between medium and large
    assert position_word((0, 0, 20, 20), 100, 100) == "top left"
    assert position_word((23, 0, 43, 20), 100, 100) is None  # centre x = 0.33, on a border of the thirds
    assert relation_holds("left_of", (0, 0, 10, 10), (20, 0, 30, 10), 100, 100) is True  # centres 20 px apart
    assert relation_holds("left_of", (0, 0, 10, 10), (5, 50, 15, 60), 100, 100) is None  # 5 px: not clear-cut
    assert relation_holds("smaller_than", (0, 0, 10, 10), (0, 0, 20, 10), 100, 100) is True  # area ratio 2
    assert relation_holds("larger_than", (0, 0, 10, 10), (0, 0, 14, 10), 100, 100) is None  # ratio 1.4 < 1.6


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["regions"]["coffee/crema"].update(box=[500, 100, 700, 195]), "not inside"),
    (lambda d: d["regions"]["coffee/crema"].update(colour="brown"), "not one of the world's"),
    (lambda d: d["regions"]["coffee/crema"].update(size="tiny"), "the world's rule gives large"),
    (lambda d: d["regions"]["coffee/crema"].update(position="top left"), "the rule gives center"),
    (lambda d: d["relations"][0].update(holds=not d["relations"][0]["holds"]), "by the world's rule"),
])
def test_wrong_annotations_are_rejected(tmp_path: Path, edit, message: str) -> None:
    data = copy.deepcopy(json.loads(ANNOTATIONS.read_text(encoding="utf-8")))
    edit(data)
    with pytest.raises(DataError, match=message):
        load_annotations(_write(tmp_path, data))


def test_photos_load_offline_with_the_annotated_shapes() -> None:
    pytest.importorskip("skimage")
    pytest.importorskip("sklearn")
    from pixelrefer.eval.real_photos import load_photo

    ann = load_annotations(ANNOTATIONS)
    for name, shape in ann["photos"].items():
        image = load_photo(name)
        assert image.shape == (shape["height"], shape["width"], 3) and image.dtype.name == "uint8"
