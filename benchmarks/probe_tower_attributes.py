"""What a trained model's frozen tower keeps of the facts the LLM is asked about: colour, pattern, size, position
and category, each read by a linear probe from the features the object tokenizer pools.

Per region (single-region image samples of whole objects from a ``pixelrefer synth`` dataset): the mean of the
masked crop features plus the box position embedding (``RegionClassifier.region_tokens``, the tower's
pretraining readout). A logistic regression (standardised features) is fitted on ``--fit`` regions of the train
split and scored on ``--score`` regions of the held-out split (unseen (category, colour) combinations). Position
is the world's position phrase of the box centre (``world.position_phrase``, thirds of the scene). The answer
the LLM gives can hardly beat what a linear readout of its inputs finds, so low rows point at the tower, not the LLM stage.

    python benchmarks/probe_tower_attributes.py --model nano --data runs/synth-nano
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import torch
from common import save_rows
from PIL import Image

from pixelrefer import PixelRefer, Region
from pixelrefer.processing.processor import collate_visual
from pixelrefer.recipes.vision import RegionClassifier
from pixelrefer.regions.codecs import decode_rle
from pixelrefer.synth import world

FACTS = ("colour", "pattern", "size", "position", "category")


def regions(pr: PixelRefer, classifier: RegionClassifier, root: Path, split: str, n: int):
    samples = [s for s in json.loads((root / f"{split}.json").read_text())
               if s["meta"]["media"] == "image" and len(s["masks"]) == 1 and s["meta"]["targets"][0]["part"] is None]
    random.Random(0).shuffle(samples)
    features, facts = [], []
    for s in samples[:n]:
        index = s["meta"]["targets"][0]["object"]
        obj = next(o for o in s["meta"]["objects"] if o["index"] == index)
        box = obj["box"]
        centre = ((box[0] + box[2]) / 2 / s["width"], (box[1] + box[3]) / 2 / s["height"])
        image = np.asarray(Image.open(root / s["image"]).convert("RGB"))
        encoded = pr.processor.encode(image, [Region.from_mask(decode_rle(s["masks"][0]))],
                                      [{"role": "user", "content": "<region>"}])
        with torch.inference_mode():
            features.append(classifier.region_tokens(collate_visual([encoded]))[0].mean(0).numpy())
        facts.append({"colour": obj["colour"], "pattern": obj["pattern"], "size": obj["size"],
                      "position": world.position_phrase(*centre), "category": obj["category"]})
    return np.stack(features), facts


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="nano")
    ap.add_argument("--data", type=Path, default=Path("runs/synth-nano"))
    ap.add_argument("--fit", type=int, default=1500)
    ap.add_argument("--score", type=int, default=400)
    ap.add_argument("--out", type=Path, default=None, help="JSON of the rows (default: benchmarks/results/...)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = args.out or Path(__file__).parent / "results" / f"probe_tower_attributes_{Path(args.model).name}.json"
    pr = PixelRefer.from_pretrained(args.model, device="cpu", dtype="float32", segmenter=None)
    classifier = RegionClassifier(pr.model, 1).eval()
    x_fit, y_fit = regions(pr, classifier, args.data, "train", args.fit)
    x_score, y_score = regions(pr, classifier, args.data, "heldout", args.score)
    scaler = StandardScaler().fit(x_fit)
    rows = []
    for fact in FACTS:
        fit, score = [y[fact] for y in y_fit], np.array([y[fact] for y in y_score])
        probe = LogisticRegression(max_iter=2000).fit(scaler.transform(x_fit), fit)
        accuracy = float((probe.predict(scaler.transform(x_score)) == score).mean())
        majority = max(np.mean(score == v) for v in set(score.tolist()))
        rows.append({"fact": fact, "accuracy": accuracy, "majority": float(majority), "classes": len(set(fit)),
                     "fit": len(fit), "scored": len(score)})
        print(f"{fact:9s} linear probe {100 * accuracy:5.1f} %  (majority class {100 * majority:4.1f} %, "
              f"{len(set(fit))} classes)", flush=True)
    save_rows(out, args, rows)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
