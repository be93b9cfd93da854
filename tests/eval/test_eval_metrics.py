"""Metric functions against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from eval_helpers import polygon, rle, square_mask

from pixelrefer.eval.masks import box_mask, decode_segmentation
from pixelrefer.eval.metrics.caption import caption_metrics, simple_tokenize
from pixelrefer.eval.metrics.mcq import accuracy_by_type, answer_letter, mvbench_choice, videorefer_letter
from pixelrefer.eval.metrics.semantic import normalize_phrase, semantic_iou, semantic_similarity
from pixelrefer.eval.tasks.dlc_bench import parse_choice, recognition_question, score_description
from pixelrefer.eval.tasks.ferret import parse_pair, strip_boxes
from pixelrefer.eval.tasks.refl4_clair import parse_clair
from pixelrefer.eval.tasks.videorefer_d import parse_dimensions
from pixelrefer.eval.types import BadItem


def test_normalize_and_semantic_iou() -> None:
    assert normalize_phrase(" Dining_Table: Leg.(x) ") == "dining table  leg  x"
    assert semantic_iou("red car", "car") == pytest.approx(1 / 2)
    assert semantic_iou("dining_table", "Dining table") == 1.0
    assert semantic_iou("chair:leg", "table:leg") == pytest.approx(1 / 3)
    assert semantic_iou("", "") == 0.0


def test_semantic_similarity_real_minilm(embedder) -> None:
    sims = semantic_similarity(
        ["a red car parked near a tree", "Dog.", "a red car parked near a tree"],
        ["a crimson automobile beside a tree", "dog", "a cat sleeping on a sofa"],
        embedder,
    )
    assert sims[0] == pytest.approx(0.666, abs=0.01)  # value measured in environment.md §5
    assert sims[1] == pytest.approx(1.0, abs=1e-5)
    assert sims[2] == pytest.approx(0.087, abs=0.01)


def test_caption_metrics_hand_computed() -> None:
    # "a red car" vs "a red bus": unigram precision 2/3, brevity penalty 1; LCS 2 -> P = R = 2/3.
    scores = caption_metrics(["a red car"], ["a red bus"], meteor=False, spice=False).scores
    assert scores["BLEU-1"] == pytest.approx(100 * 2 / 3, abs=1e-3)
    assert scores["ROUGE-L"] == pytest.approx(100 * 2 / 3, abs=1e-3)
    assert scores["BLEU-2"] == pytest.approx(100 * np.sqrt(2 / 3 * 1 / 2), abs=1e-3)
    same = caption_metrics(["the small dog runs fast"], ["the small dog runs fast"], meteor=False, spice=True)
    assert same.scores["BLEU-4"] == pytest.approx(100.0, abs=1e-3)
    assert "SPICE" not in same.scores and any("SPICE" in n for n in same.notes)


def test_caption_prediction_cut_to_100_words() -> None:
    long_pred = " ".join(["dog"] * 150)
    short = caption_metrics([long_pred], [" ".join(["dog"] * 100)], meteor=False, spice=False)
    assert short.scores["BLEU-1"] == pytest.approx(100.0, abs=1e-3)


def test_simple_tokenizer_drops_punctuation() -> None:
    assert simple_tokenize("A red car, parked.") == "a red car parked"


def test_videorefer_letter_rules() -> None:
    assert videorefer_letter("The answer is (B) a dog") == "B"
    assert videorefer_letter("C) running") == "C"
    assert videorefer_letter("D.") == "D"
    assert videorefer_letter("") == ""
    assert answer_letter("(C) The man") == "C"


def test_mvbench_choice() -> None:
    options = ["cat", "dog", "bird"]
    assert mvbench_choice("(B) dog", options) == 1
    assert mvbench_choice("Answer: C", options) == 2
    assert mvbench_choice("it is a bird", options) == 2
    assert mvbench_choice("no idea", options) is None


def test_accuracy_by_type() -> None:
    per_type, overall, sizes = accuracy_by_type([("BQ", True), ("BQ", False), ("SQ", True)])
    assert per_type == {"BQ": 50.0, "SQ": 100.0}
    assert overall == pytest.approx(200 / 3)
    assert sizes == {"BQ": 2, "SQ": 1}


def test_dlc_parse_and_score() -> None:
    choices = ["Yes", "No"]
    assert parse_choice("yes", choices) == 0
    assert parse_choice("B. No", choices) == 1
    assert parse_choice("", choices) is None
    questions = [
        recognition_question("dog"),
        {
            "question": "colour?",
            "choices": [["brown", 1], ["not mentioned", 0], ["black", -1]],
            "type": "positive",
        },
        {"question": "hat?", "choices": [["no hat", 1], ["hat", -1]], "type": "negative"},
    ]
    assert "a dog" in questions[0]["question"]
    assert "objects in the description are dogs" in recognition_question("dogs")["question"]
    good = score_description(["Yes", "A. brown", "no hat"], questions)
    assert good == {"recognised": True, "score_pos": 1.0, "score_neg": 1.0}
    wrong = score_description(["No", "A. brown", "hat"], questions)
    assert wrong == {"recognised": False, "score_pos": 0.0, "score_neg": -1.0}


def test_judge_reply_parsers() -> None:
    assert parse_clair('{"score": 85, "reason": "close"}') == pytest.approx(0.85)
    assert parse_clair("score: 0.7") == pytest.approx(0.7)
    assert parse_clair("no number") is None
    assert parse_pair("8 6\nbecause") == (8.0, 6.0)
    assert parse_pair("8,6") == (8.0, 6.0)
    assert parse_pair("8, 6") is None  # the official parser splits on single spaces
    assert parse_pair("Assistant 1: 8") is None
    assert strip_boxes("a cat [0.1, 0.2, 0.3, 0.4] sits") == "a cat sits"
    reply = (
        "1. Subject Correspondence: 5\nExplanation: ok\n2. Appearance Description: 4\n"
        "3. Temporal Description: 3.5\n4. Hallucination Detection: 2"
    )
    assert parse_dimensions(reply) == {
        "Subject Correspondence": 5.0,
        "Appearance Description": 4.0,
        "Temporal Description": 3.5,
        "Hallucination Detection": 2.0,
    }


def test_mask_decoding() -> None:
    expected = square_mask()
    assert (decode_segmentation(rle(expected)) == expected).all()
    poly = decode_segmentation(polygon(), 32, 32)
    assert poly[10:22, 10:22].all() and not poly[:6].any()
    assert box_mask([8, 8, 16, 16], 32, 32).sum() == 256
    with pytest.raises(BadItem, match="empty"):
        decode_segmentation(rle(np.zeros((32, 32), dtype=np.uint8)))
    with pytest.raises(BadItem, match="malformed"):
        decode_segmentation({"size": [32, 32], "counts": 17})
    with pytest.raises(BadItem, match="height and width"):
        decode_segmentation(polygon())
