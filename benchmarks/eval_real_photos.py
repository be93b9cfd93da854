"""Accuracy of the bundled models on real photographs, per world-agnostic skill (colour, size, position,
left/right/above/below/larger relations, same colour), with n and the standard error.

The photos ship inside scikit-image and scikit-learn (the ``photos`` extra); the hand-drawn boxes and answers
are ``tests/data/real_photos.json``; questions are the synthetic world's templates, decoded greedily and scored
by exact match like ``pixelrefer eval synthetic``. Each box is given the way a user gives one: ``segment`` turns it
into a mask with the default segmenter (what ``pixelrefer ask --box`` does), ``box`` uses the filled rectangle.

    python benchmarks/eval_real_photos.py --models nano nano-lite --regions segment box
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch

from pixelrefer import PixelRefer, Region
from pixelrefer.eval.real_photos import SKILLS, load_annotations, load_photo, questions
from pixelrefer.eval.tasks.synthetic import normalize_answer
from pixelrefer.inference.generation import GenerationConfig

ROOT = Path(__file__).resolve().parent.parent
ANNOTATIONS = ROOT / "tests" / "data" / "real_photos.json"
OUT = ROOT / "benchmarks" / "results" / "real_photos"
GREEDY = GenerationConfig(max_new_tokens=16)


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


def evaluate(model_name: str, mode: str, qs, photos) -> dict[str, object]:
    model = PixelRefer.from_pretrained(model_name, device="cpu", dtype="float32")
    by_skill: dict[str, list[bool]] = defaultdict(list)
    answers: dict[str, Counter[str]] = defaultdict(Counter)
    items = []
    start = time.perf_counter()
    for q in qs:
        image = photos[q.photo]
        regions = [region(b, mode, image.shape[:2]) for b in q.boxes]
        pred = model.ask(image, regions, q.question, generation=GREEDY).text
        ok = normalize_answer(pred) == normalize_answer(q.answer)
        by_skill[q.skill].append(ok)
        answers[q.skill][normalize_answer(pred)] += 1
        items.append({"id": q.id, "skill": q.skill, "answer": q.answer, "pred": pred, "correct": ok})
    per_skill = {s: accuracy(by_skill[s]) for s in SKILLS if by_skill[s]}
    return {"model": model_name, "regions": mode, "seconds": round(time.perf_counter() - start, 1),
            "overall": accuracy([i["correct"] for i in items]), "per_skill": per_skill,
            "answers_given": {s: dict(c.most_common()) for s, c in answers.items()}, "items": items}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["nano", "nano-lite"])
    parser.add_argument("--regions", nargs="+", choices=["segment", "box"], default=["segment", "box"])
    parser.add_argument("--annotations", type=Path, default=ANNOTATIONS)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ann = load_annotations(args.annotations)
    qs = questions(ann)
    photos = {name: load_photo(name) for name in ann["photos"]}
    args.out.mkdir(parents=True, exist_ok=True)
    for model_name in args.models:
        for mode in args.regions:
            result = evaluate(model_name, mode, qs, photos)
            result |= {"annotations": str(args.annotations.relative_to(ROOT)) if args.annotations.is_relative_to(ROOT)
                       else str(args.annotations), "photos": len(photos), "torch": torch.__version__,
                       "machine": platform.machine()}
            path = args.out / f"{model_name}_{mode}.json"
            path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
            table = "  ".join(f"{s} {v['acc']:.1f}±{v['se']:.1f} (n={v['n']})" for s, v in result["per_skill"].items())
            print(f"{model_name:9s} {mode:7s} overall {result['overall']['acc']:.1f}  {table}  -> {path}")


if __name__ == "__main__":
    main()
