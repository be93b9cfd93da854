"""Tiny benchmark files in each benchmark's published format, written by the tests (a handful of items)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from eval_helpers import SIZE, polygon, rle, square_mask, vg_file, write_image, write_json, write_video


@dataclass
class BenchmarkFiles:
    data: Path
    media_root: Path
    aux: dict[str, Path] = field(default_factory=dict)


def user_text(messages: list[dict[str, Any]]) -> str:
    content = messages[-1]["content"]
    return content if isinstance(content, str) else " ".join(part["text"] for part in content)


def osprey(root: Path) -> BenchmarkFiles:
    """Osprey ``lvis_val_1k_category.json`` / ``paco_val_1k_category.json``: 5 regions, 2 of them bad."""
    write_image(root / "val2017" / "000001.jpg")
    write_image(root / "000002.jpg")
    entries = [
        {
            "file_name": "000001.jpg",
            "height": SIZE,
            "width": SIZE,
            "categories": ["dog", "dining_table"],
            "annotations": [{"segmentation": polygon()}, {"segmentation": rle(square_mask(0, 0, 10, 10))}],
        },
        {
            "file_name": "000002.jpg",
            "height": SIZE,
            "width": SIZE,
            "categories": ["chair:leg", "cat"],
            "annotations": [
                {"segmentation": polygon(2, 2, 12, 12)},
                {"segmentation": rle(np.zeros((SIZE, SIZE), np.uint8))},
            ],
        },
        {
            "file_name": "missing.jpg",
            "height": SIZE,
            "width": SIZE,
            "categories": ["bus"],
            "annotations": [{"segmentation": polygon()}],
        },
    ]
    return BenchmarkFiles(write_json(root / "lvis_val_1k_category.json", entries), root)


def vg(root: Path) -> BenchmarkFiles:
    return BenchmarkFiles(vg_file(root, n=4), root / "images")


def refl4(root: Path) -> BenchmarkFiles:
    """``ref-l4-val.json`` (JSON lines); the refcoco line is not in the Objects365 split."""
    write_image(root / "o365" / "1.jpg")
    lines = [
        {
            "file_name": "o365/1.jpg",
            "height": SIZE,
            "width": SIZE,
            "caption": "a red square",
            "bbox": [8, 8, 16, 16],
            "ori_dataset": "objects365",
        },
        {
            "file_name": "coco/2.jpg",
            "height": SIZE,
            "width": SIZE,
            "caption": "skipped",
            "bbox": [0, 0, 4, 4],
            "ori_dataset": "refcoco",
        },
        {
            "file_name": "o365/1.jpg",
            "height": SIZE,
            "width": SIZE,
            "caption": "a small red block",
            "bbox": [4, 4, 8, 8],
            "ori_dataset": "objects365",
        },
    ]
    path = root / "ref-l4-val.json"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return BenchmarkFiles(path, root)


def dlc_bench(root: Path) -> BenchmarkFiles:
    """DLC-Bench ``annotations.json`` (COCO) + ``qa.json`` + ``class_names.json``."""
    write_image(root / "images" / "a.jpg")
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": SIZE, "width": SIZE}],
        "categories": [{"id": 1, "name": "dog"}],
        "annotations": [
            {"id": 11, "image_id": 1, "category_id": 1, "segmentation": polygon()},
            {"id": 12, "image_id": 1, "category_id": 1, "segmentation": rle(square_mask(0, 0, 6, 6))},
        ],
    }
    qa = {
        "11": [
            {
                "question": "What colour is the dog?",
                "choices": [["brown", 1], ["not mentioned", 0], ["black", -1]],
                "type": "positive",
            },
            {
                "question": "Does it wear a hat?",
                "choices": [["no hat mentioned", 1], ["a hat", -1]],
                "type": "negative",
            },
        ],
        "12": [
            {
                "question": "What colour is the dog?",
                "choices": [["brown", 1], ["black", -1]],
                "type": "positive",
            }
        ],
    }
    aux = {
        "qa": write_json(root / "qa.json", qa),
        "class_names": write_json(root / "class_names.json", {"11": "dog", "12": "dogs"}),
    }
    return BenchmarkFiles(write_json(root / "annotations.json", coco), root / "images", aux)


def dlc_judge(messages: list[dict[str, Any]]) -> str:
    text = user_text(messages)
    if "Is it likely" in text:
        return "No" if "objects in the description are dogs" in text else "Yes"
    return "A. brown" if "colour" in text else "B"


def ferret(root: Path) -> BenchmarkFiles:
    """Osprey ``box_refer_reason.json`` + Ferret ``question/context/answer.jsonl``; item 6 has no mask."""
    write_image(root / "coco" / "val2017" / "x.jpg")
    questions = [
        {
            "question_id": 5,
            "image": "x.jpg",
            "text": "Why is <region> here?",
            "category": "refer_reason",
            "annotation": {"segmentation": polygon()},
            "height": SIZE,
            "width": SIZE,
        },
        {
            "question_id": 6,
            "image": "x.jpg",
            "text": "What is <region> for?",
            "category": "refer_reason",
            "annotation": {"segmentation": None},
        },
    ]
    data = write_json(root / "box_refer_reason.json", questions)

    def lines(rows: list[dict[str, Any]]) -> str:
        return "\n".join(json.dumps(r) for r in rows) + "\n"

    (root / "question.jsonl").write_text(
        lines(
            [
                {
                    "question_id": q["question_id"],
                    "image": "x.jpg",
                    "text": q["text"],
                    "category": "refer_reason",
                }
                for q in questions
            ]
        )
    )
    (root / "context.jsonl").write_text(lines([{"image": "x.jpg", "text": "A red square on black."}]))
    (root / "answer.jsonl").write_text(
        lines(
            [
                {"question_id": 5, "text": "It is a sign [0.1, 0.2, 0.3, 0.4] of art."},
                {"question_id": 6, "text": "Decoration."},
            ]
        )
    )
    return BenchmarkFiles(
        data, root / "coco", {k: root / f"{k}.jsonl" for k in ("question", "context", "answer")}
    )


def ferret_judge(messages: list[dict[str, Any]]) -> str:
    return (
        "1 8\nno answer"
        if "[Assistant 1]\n\n" in user_text(messages)
        else "6 8\nAssistant 2 is more detailed."
    )


def videorefer_d(root: Path) -> BenchmarkFiles:
    write_video(root / "v.mp4", num_frames=4)
    entries = [
        {
            "video": "v.mp4",
            "frame_idx": "1",
            "caption": "A green block slides right.",
            "annotation": [
                {"0": {"segmentation": rle(square_mask())}, "1": {"segmentation": rle(square_mask())}}
            ],
        }
    ]
    return BenchmarkFiles(write_json(root / "VideoRefer-Bench-D.json", entries), root)


VIDEOREFER_D_REPLY = (
    "1. Subject Correspondence: 5\nExplanation: x\n2. Appearance Description: 4\nExplanation: x\n"
    "3. Temporal Description: 3\nExplanation: x\n4. Hallucination Detection: 2\nExplanation: x"
)


def videorefer_q(root: Path) -> BenchmarkFiles:
    """``VideoRefer-Bench-Q.json``: one- and two-object questions; item 2 has no mask on its frame_idx."""
    write_video(root / "videos" / "v1.mp4", num_frames=4, fps=2.0)
    one = {"0": {"segmentation": rle(square_mask())}, "2": {"segmentation": rle(square_mask(10, 8, 26, 24))}}
    entries = [
        {
            "video": "v1.mp4",
            "Question": "What is <region> doing?",
            "options": ["(A) sleeping", "(B) moving"],
            "Answer": "(B) moving",
            "type": "Basic Questions",
            "annotation": [one],
            "frame_idx": "2",
        },
        {
            "video": "v1.mp4",
            "Question": "Is <region> left of <region>?",
            "options": ["(A) yes", "(B) no"],
            "Answer": "(A) yes",
            "type": "Relationship Questions",
            "annotation": [one, one],
            "frame_idx": "0",
        },
        {
            "video": "v1.mp4",
            "Question": "Where will <region> go?",
            "options": ["(A) left", "(B) right"],
            "Answer": "(B) right",
            "type": "Future Predictions",
            "annotation": [one],
            "frame_idx": "1",
        },
    ]
    return BenchmarkFiles(write_json(root / "VideoRefer-Bench-Q.json", entries), root / "videos")


def hc_stvg(root: Path) -> BenchmarkFiles:
    write_video(root / "v.mp4", num_frames=4)
    entries = [
        {"video": "v.mp4", "frame_idx": 1, "mask": rle(square_mask()), "caption": "a man walks to the left"},
        {"video": "v.mp4", "frame_idx": 3, "mask": rle(square_mask(4, 4, 20, 20)), "caption": "a woman sits"},
    ]
    return BenchmarkFiles(write_json(root / "hc_stvg_val.json", entries), root)


def mvbench(root: Path) -> BenchmarkFiles:
    """Two MVBench task JSONs (one with start/end bounds) and their video folders; one video is missing."""
    questions, videos = root / "json", root / "video"
    write_video(videos / "star/Charades_v1_480/a.mp4", num_frames=6, fps=2.0)
    write_video(videos / "perception/videos/b.mp4")
    write_json(
        questions / "action_sequence.json",
        [
            {
                "video": "a.mp4",
                "question": "What happened first?",
                "candidates": ["sat", "stood"],
                "answer": "stood",
                "start": 0.5,
                "end": 2.0,
            },
            {
                "video": "a.mp4",
                "question": "Then?",
                "candidates": ["ran", "slept"],
                "answer": "ran",
                "start": 0,
                "end": 1,
            },
        ],
    )
    write_json(
        questions / "object_shuffle.json",
        [
            {
                "video": "b.mp4",
                "question": "Where is the ball?",
                "candidates": ["left", "right", "middle"],
                "answer": "middle",
            },
            {"video": "gone.mp4", "question": "?", "candidates": ["x", "y"], "answer": "x"},
            {"video": "b.mp4", "question": "?", "candidates": 5, "answer": "x"},
        ],
    )
    return BenchmarkFiles(questions, videos)


def synthetic(root: Path, n: int = 24, seed: int = 1, paraphrases: bool = False) -> BenchmarkFiles:
    """A :mod:`pixelrefer.synth` test split (official training JSON + ``meta``), images and frame-list videos."""
    from pixelrefer.synth.build import build_dataset

    build_dataset(
        root,
        n_train=0,
        n_val=0,
        n_test=n,
        n_heldout=0,
        seed=seed,
        video_fraction=0.5 if n < 24 else 0.3,
        image_size=64,
        progress=False,
        paraphrases=paraphrases,
    )
    return BenchmarkFiles(root / "test.json", root)


BUILDERS: dict[str, Callable[[Path], BenchmarkFiles]] = {
    "lvis": osprey,
    "paco": osprey,
    "vg": vg,
    "refl4": refl4,
    "refl4_clair": refl4,
    "dlc_bench": dlc_bench,
    "ferret": ferret,
    "videorefer_d": videorefer_d,
    "videorefer_q": videorefer_q,
    "hc_stvg": hc_stvg,
    "mvbench": mvbench,
    "synthetic": synthetic,
}
JUDGE_REPLIES: dict[str, Callable[[list[dict[str, Any]]], str]] = {
    "refl4": lambda messages: "a red square",
    "refl4_clair": lambda messages: 'Sure. {"score": 80, "reason": "same object"}',
    "dlc_bench": dlc_judge,
    "ferret": ferret_judge,
    "videorefer_d": lambda messages: VIDEOREFER_D_REPLY,
}
