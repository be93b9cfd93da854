"""The question-data options: paraphrased questions (phrasing families, held-out wordings; wording changes only) and
off-palette category scenes (only those scenes change)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pixelrefer.errors import ConfigError
from pixelrefer.processing.prompts import TASK_PROMPTS
from pixelrefer.synth.build import SPLITS, UNSEEN_PHRASING_SPLITS, build_dataset
from pixelrefer.synth.config import PHRASING_SET_NAMES, SynthConfig
from pixelrefer.synth.tasks import (
    IMAGE_FOLLOW_UP_TASKS,
    MCQ_TASK,
    PHRASING_SETS,
    PHRASINGS,
    VIDEO_FOLLOW_UP_TASKS,
    ask,
    with_share,
)
from pixelrefer.train.data import parse_sample, sample_ref

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # inside pycocotools

ARGS = {"n_train": 60, "n_val": 10, "n_test": 60, "n_heldout": 30, "seed": 5, "video_fraction": 0.3,
        "image_size": 64, "progress": False}
_PLACEHOLDER = re.compile(r"<(region|object)\d?>")


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[bool | str, Path]:
    """Without paraphrases (False), with the v1 wordings (True) and with the v2 ones ("v2")."""
    root = tmp_path_factory.mktemp("phrasings")
    out: dict[bool | str, Path] = {}
    for key, args in ((False, {"paraphrases": False}), (True, {"paraphrases": True}),
                      ("v2", {"paraphrases": True, "phrasing_set": "v2"})):
        out[key] = root / str(key)
        build_dataset(out[key], **(ARGS | args))
    return out


def _samples(root: Path, split: str) -> list[dict]:
    return json.loads((root / f"{split}.json").read_text())


@pytest.mark.parametrize("name", PHRASING_SET_NAMES)
def test_every_family_keeps_its_placeholders_and_holds_some_wordings_out(name: str) -> None:
    held_texts, trained_texts = set(), set()
    for key, family in PHRASING_SETS[name].items():
        texts = [p.text for p in family]
        assert len(set(texts)) == len(texts) >= 3, key
        assert not family[0].held_out and any(p.held_out for p in family) and sum(not p.held_out for p in family) >= 2
        for p in family:
            assert sorted(_PLACEHOLDER.findall(p.text)) == sorted(_PLACEHOLDER.findall(family[0].text)), (key, p)
            (held_texts if p.held_out else trained_texts).add(p.text)
    assert not held_texts & trained_texts, "a wording is held out in one family and trained in another"


def test_v2_keeps_the_v1_wordings_first_and_adds_trained_and_held_out_ones() -> None:
    assert tuple(PHRASING_SETS) == PHRASING_SET_NAMES and PHRASING_SETS["v1"] is PHRASINGS
    v1, v2 = PHRASING_SETS["v1"], PHRASING_SETS["v2"]
    assert v1.keys() == v2.keys()
    assert all(v2[k][: len(v1[k])] == v1[k] for k in v1)  # v1 indices mean the same wording in v2
    more = {k: v2[k][len(v1[k]):] for k in v1}
    assert sum(not p.held_out for p in more["category"]) >= 8 and sum(p.held_out for p in more["category"]) >= 3


def test_the_common_ways_of_asking_for_the_name_are_trained_category_questions() -> None:
    trained = {p.text for p in PHRASINGS["category"] if not p.held_out}
    assert {"What is <region>?", "Name the object in <region>.", TASK_PROMPTS["category"]} <= trained
    assert ask("category") == TASK_PROMPTS["category"]  # the official prompt is imported, not copied
    assert "What is <region>?" not in {p.text for k, f in PHRASINGS.items() if k != "mc_category" and k != "category"
                                       for p in f}


def test_off_is_the_default_and_writes_the_default_wording_only(builds: dict[bool, Path]) -> None:
    assert SynthConfig().paraphrases is False
    defaults = {f[0].text for f in PHRASINGS.values()}
    for split in SPLITS:
        for s in _samples(builds[False], split):
            assert "phrasing" not in s["meta"]
            question = s["conversations"][0]["value"]
            assert any(d in question for d in defaults), question


@pytest.mark.parametrize("key", [True, "v2"])
def test_on_changes_the_wording_only_and_holds_wordings_out_of_training(builds: dict[bool | str, Path],
                                                                        key: bool | str) -> None:
    phrasings = PHRASING_SETS["v2" if key == "v2" else "v1"]
    seen_held_out = 0
    for split in SPLITS:
        off, on = _samples(builds[False], split), _samples(builds[key], split)
        assert [(s["meta"]["answer"], s["masks"], s.get("image")) for s in off] == \
               [(s["meta"]["answer"], s["masks"], s.get("image")) for s in on]
        for s in on:
            phrasing = s["meta"]["phrasing"]
            chosen = phrasings[phrasing["family"]][phrasing["index"]]
            assert chosen.text in s["conversations"][0]["value"] and chosen.held_out == phrasing["held_out"]
            if split not in UNSEEN_PHRASING_SPLITS:
                assert not phrasing["held_out"], s["id"]
            seen_held_out += phrasing["held_out"]
    assert seen_held_out > 0
    wordings = {s["meta"]["phrasing"]["index"] for s in _samples(builds[key], "train")}
    assert len(wordings) >= 3, "training data should use several wordings"


def test_the_option_is_checked() -> None:
    with pytest.raises(ConfigError, match="paraphrases"):
        SynthConfig(paraphrases="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="off_palette_categories"):
        SynthConfig(off_palette_categories=1.5)
    with pytest.raises(ConfigError, match="phrasing_set"):
        SynthConfig(phrasing_set="v9")


def test_off_palette_category_scenes_change_only_themselves(builds: dict[bool, Path], tmp_path: Path) -> None:
    out = tmp_path / "off"
    build_dataset(out, **(ARGS | {"off_palette_categories": 0.5}))
    base = builds[False]
    for split in SPLITS[1:]:
        assert (out / f"{split}.json").read_bytes() == (base / f"{split}.json").read_bytes()
    off, plain = _samples(out, "train"), _samples(base, "train")
    marked = [(a, b) for a, b in zip(off, plain) if a["meta"].get("off_palette")]
    assert 0 < len(marked) < len(off)
    assert all(a == b for a, b in zip(off, plain) if not a["meta"].get("off_palette"))
    assert all(a["meta"]["task"] in ("category", "part_category") and "image" in a for a, _ in marked)
    images = {a["image"] for a, _ in marked}
    assert all((out / i).read_bytes() != (base / i).read_bytes() for i in images)


def test_follow_ups_add_short_turns_to_training_samples_only(builds: dict[bool, Path], tmp_path: Path) -> None:
    out = tmp_path / "follow"
    build_dataset(out, **(ARGS | {"paraphrases": True, "follow_ups": 3}))
    base = builds[True]
    for split in SPLITS[1:]:  # evaluation splits are byte-identical
        assert (out / f"{split}.json").read_bytes() == (base / f"{split}.json").read_bytes()
    follow, plain = _samples(out, "train"), _samples(base, "train")
    for a, b in zip(follow, plain, strict=True):
        convs = a["conversations"]
        assert len(convs) == 2 + 2 * 3 and [c["from"] for c in convs] == ["human", "gpt"] * 4
        assert convs[:2] == b["conversations"]  # the first turn is the sample without follow-ups
        assert a["masks"][: len(b["masks"])] == b["masks"]
        placeholders = sum(c["value"].count("<region>") for c in convs)
        assert placeholders == len(a["masks"]) > len(b["masks"])
        assert all("<image>" not in c["value"] and "<video>" not in c["value"] for c in convs[2:])
        ups = a["meta"]["follow_ups"]
        allowed = VIDEO_FOLLOW_UP_TASKS if "video" in a else IMAGE_FOLLOW_UP_TASKS
        assert [u["answer"] for u in ups] == [c["value"] for c in convs[3::2]]
        assert all(u["task"] in allowed for u in ups)
        assert not any((u["phrasing"] or {}).get("held_out") for u in ups)  # training wordings only
        assert {k: v for k, v in a["meta"].items() if k != "follow_ups"} == b["meta"]
        parse_sample(a, sample_ref(a, out / "train.json", 0), out)  # one mask per placeholder, valid turns
    info = json.loads((out / "dataset_info.json").read_text())
    assert sum(info["splits"]["train"]["follow_up_tasks"].values()) == 3 * len(follow)
    assert "follow_up_tasks" not in info["splits"]["heldout"]
    with pytest.raises(ConfigError, match="follow_ups"):
        SynthConfig(follow_ups=-1)


def test_follow_up_mcq_sets_the_share_of_multiple_choice_follow_ups(tmp_path: Path) -> None:
    shares, firsts = {}, {}
    for share in (None, 0.6):
        out = tmp_path / str(share)
        build_dataset(out, **(ARGS | {"follow_ups": 4, "follow_up_mcq": share}))
        ups = [u["task"] for s in _samples(out, "train") if not s["meta"].get("off_palette")
               for u in s["meta"]["follow_ups"]]
        shares[share] = ups.count(MCQ_TASK) / len(ups)
        firsts[share] = [s["conversations"][:2] for s in _samples(out, "train")]
    assert firsts[None] == firsts[0.6]  # the first turns do not depend on the follow-ups' mixture
    assert shares[None] < 0.35 and shares[0.6] > 0.45
    mixed = with_share(IMAGE_FOLLOW_UP_TASKS, MCQ_TASK, 0.6)
    assert mixed[MCQ_TASK] == 0.6 and sum(mixed.values()) == pytest.approx(1.0)
    assert mixed["relation"] / mixed["region_qa"] == pytest.approx(IMAGE_FOLLOW_UP_TASKS["relation"] / IMAGE_FOLLOW_UP_TASKS["region_qa"])
    assert with_share(IMAGE_FOLLOW_UP_TASKS, MCQ_TASK, None) is IMAGE_FOLLOW_UP_TASKS
    for bad in (1.0, -0.1, True, "half"):
        with pytest.raises(ConfigError, match="follow_up_mcq"):
            SynthConfig(follow_up_mcq=bad)
