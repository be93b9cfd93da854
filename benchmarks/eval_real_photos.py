"""Accuracy of the bundled models on real photographs, per world-agnostic skill (colour, size, position,
left/right/above/below/larger relations, same colour), with n and the standard error.

The photos ship inside scikit-image and scikit-learn (the ``photos`` extra); the hand-drawn boxes and answers
are ``tests/data/real_photos.json``; questions are the synthetic world's templates, decoded greedily and scored
by exact match like ``pixelrefer eval synthetic``. Each box is given the way a user gives one: ``segment`` turns it
into a mask with the default segmenter (what ``pixelrefer ask --box`` does), ``box`` uses the filled rectangle.

A control separates "does not transfer to photos" from "does not know the skill": the same question types on freshly
rendered scenes of the plain world (``--control-scenes``, seeds the datasets never use), asked by the world's own
generators, with each object's exact mask (as in training) and with its bounding box.

    python benchmarks/eval_real_photos.py --models nano nano-lite --regions segment box
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch

from pixelrefer import PixelRefer, Region
from pixelrefer.engines.generation import GenerationConfig
from pixelrefer.eval.real_photos import (
    REGION_QA_KINDS,
    SKILLS,
    Question,
    load_annotations,
    load_photo,
    questions,
)
from pixelrefer.eval.tasks.synthetic import normalize_answer
from pixelrefer.synth.scenes import render_scene
from pixelrefer.synth.tasks import image_region_qa, image_relation

ROOT = Path(__file__).resolve().parent.parent
ANNOTATIONS = ROOT / "tests" / "data" / "real_photos.json"
OUT = ROOT / "benchmarks" / "results" / "real_photos"
GREEDY = GenerationConfig(max_new_tokens=16)
CHANCE = {"colour": 1 / 8, "size": 1 / 4, "position": 1 / 9, "relation": 1 / 2, "same_colour": 1 / 2}
CONTROL_SEED = 7_000_000  # scene seeds of the control: far from the datasets' (seed, split, index) streams
CONTROL_RELATIONS = ("left_of", "right_of", "above", "below", "larger_than", "smaller_than", "same_colour")


def region(box: tuple[int, int, int, int], mode: str, shape: tuple[int, int]) -> Region:
    if mode == "segment":
        return Region.from_box(list(box))
    mask = np.zeros(shape, dtype=bool)
    mask[box[1]:box[3], box[0]:box[2]] = True
    return Region.from_mask(mask)


def accuracy(flags: list[bool]) -> dict[str, float | int]:
    n = len(flags)
    p = sum(flags) / n if n else 0.0
    return {"n": n, "acc": round(100 * p, 1), "se": round(100 * math.sqrt(p * (1 - p) / n), 1) if n else 0.0}


def control_questions(n_scenes: int) -> list[tuple[np.ndarray, list[np.ndarray], Question]]:
    """(image, exact masks, question) on plain-world scenes, from the world's own generators; the question's
    boxes are the objects' bounding boxes."""
    out = []
    for s in range(n_scenes):
        scene = render_scene(np.random.default_rng(CONTROL_SEED + s))
        for i, obj in enumerate(scene.objects):
            rng = np.random.default_rng([CONTROL_SEED, s, i])
            for generator in (image_region_qa, image_relation):
                for _ in range(6):  # redraw until a kind measured here comes up
                    ins = generator(scene, rng, [obj.index])
                    kind = str(ins.meta.get("question_type", ins.meta.get("relation"))) if ins else ""
                    if kind in REGION_QA_KINDS or kind in CONTROL_RELATIONS:
                        break
                else:
                    continue
                targets = [scene.objects[t.obj] for t in ins.targets]
                skill = kind if kind in REGION_QA_KINDS or kind == "same_colour" else "relation"
                q = Question(f"control/{s}/{i}/{kind}", skill, "control", [o.box for o in targets], ins.question,
                             ins.answer)
                out.append((scene.image, [o.mask for o in targets], q))
    return out


def photo_asks(qs: list[Question], photos: dict[str, np.ndarray], mode: str) -> list:
    return [(photos[q.photo], [region(b, mode, photos[q.photo].shape[:2]) for b in q.boxes], q) for q in qs]


def control_asks(control: list, mode: str) -> list:
    """The control's questions with exact masks (``mask``) or bounding boxes (``box``)."""
    return [(img, [Region.from_mask(m) for m in masks] if mode == "mask"
             else [region(b, "box", img.shape[:2]) for b in q.boxes], q) for img, masks, q in control]


def evaluate(model_name: str, mode: str, asks: list) -> dict[str, object]:
    """Ask every (image, regions, question) of ``asks`` and score it per skill."""
    model = PixelRefer.from_pretrained(model_name, device="cpu", dtype="float32")
    by_skill: dict[str, list[bool]] = defaultdict(list)
    answers: dict[str, Counter[str]] = defaultdict(Counter)
    items = []
    start = time.perf_counter()
    for image, regions, q in asks:
        pred = model.ask(image, regions, q.question, generation=GREEDY).text
        ok = normalize_answer(pred) == normalize_answer(q.answer)
        by_skill[q.skill].append(ok)
        answers[q.skill][normalize_answer(pred)] += 1
        items.append({"id": q.id, "skill": q.skill, "answer": q.answer, "pred": pred, "correct": ok})
    per_skill = {s: accuracy(by_skill[s]) | {"chance": round(100 * CHANCE[s], 1)} for s in SKILLS if by_skill[s]}
    return {"model": model_name, "regions": mode, "seconds": round(time.perf_counter() - start, 1),
            "overall": accuracy([i["correct"] for i in items]), "per_skill": per_skill,
            "answers_given": {s: dict(c.most_common()) for s, c in answers.items()}, "items": items}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["nano", "nano-lite"])
    parser.add_argument("--regions", nargs="+", choices=["segment", "box"], default=["segment", "box"])
    parser.add_argument("--annotations", type=Path, default=ANNOTATIONS)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--control-scenes", type=int, default=40, help="plain-world scenes of the control (0: none)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ann = load_annotations(args.annotations)
    qs = questions(ann)
    photos = {name: load_photo(name) for name in ann["photos"]}
    args.out.mkdir(parents=True, exist_ok=True)
    control = control_questions(args.control_scenes) if args.control_scenes else []
    runs = [(m, mode, False) for m in args.models for mode in args.regions]
    runs += [(m, mode, True) for m in args.models for mode in ("mask", "box") if control]
    for model_name, mode, is_control in runs:
        asks = control_asks(control, mode) if is_control else photo_asks(qs, photos, mode)
        result = evaluate(model_name, mode, asks)
        label = re.sub(r"[^A-Za-z0-9_.-]+", "-", model_name).strip("-")  # a checkpoint folder's path as a file name
        name = f"control_{label}_{mode}" if is_control else f"{label}_{mode}"
        if not is_control:
            result |= {"annotations": str(args.annotations.relative_to(ROOT)) if args.annotations.is_relative_to(ROOT)
                       else str(args.annotations), "photos": len(photos), "torch": torch.__version__,
                       "machine": platform.machine()}
        else:  # the control's items are reproduced from the seed; only the summary is kept
            result.pop("items")
            result |= {"control_scenes": args.control_scenes, "control_seed": CONTROL_SEED, "torch": torch.__version__}
        path = args.out / f"{name}.json"
        path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        table = "  ".join(f"{s} {v['acc']:.1f}±{v['se']:.1f} (n={v['n']})" for s, v in result["per_skill"].items())
        print(f"{name:22s} overall {result['overall']['acc']:.1f}  {table}  -> {path}")


if __name__ == "__main__":
    main()
