"""What a trained model's frozen tower keeps of the facts the LLM is asked about: colour, pattern, size, position
and category, each read by a linear probe from the features the object tokenizer pools.

Per region (the first region of image samples, a whole object, from a ``pixelrefer synth`` dataset), one vector
per ``--readout``: ``pooled`` (default), the mean of the masked crop features plus the box position embedding
(``RegionClassifier.region_tokens``, the tower's pretraining readout); ``kmeans``, the mean of the object tokens
k-means leaves, before the projector; ``llm-input``, the mean of the object tokens the LLM receives (k-means,
then the projector MLP: ``object_features``); ``fact-head``, the logits of the vision pretraining's fact head
(mean RGB, box and pattern; ``--tower``, the pretraining folder, whose tower and box position embedding replace
the model's). A logistic regression (standardised features) is fitted on
``--fit`` regions of the train split and scored on ``--score`` regions of the held-out split (unseen (category,
colour) combinations), or of ``--score-split val`` (seen ones). Position is the world's position phrase of the
box centre (``world.position_phrase``, thirds of the scene). The answer the LLM gives can hardly beat what a
linear readout of its inputs finds, so a fact the tower keeps (``pooled``, ``kmeans``) and the LLM's input has
lost (``llm-input``) points at the projector, and one lost at the first two at the tower.

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
from pixelrefer.model.modeling import region_grids
from pixelrefer.processing.processor import collate_visual
from pixelrefer.recipes.vision import RegionClassifier
from pixelrefer.regions.codecs import decode_rle
from pixelrefer.synth import world
from pixelrefer.train.run import FACT_HEAD_PREFIX, HEAD_FILE, load_vision_weights

FACTS = ("colour", "pattern", "size", "position", "category")


def readout_vector(pr: PixelRefer, classifier: RegionClassifier, readout: str, visual) -> np.ndarray:
    if readout == "pooled":
        return classifier.region_tokens(visual)[0].mean(0).numpy()
    if readout == "fact-head":
        return classifier.facts(classifier.pooled(visual))[0].numpy()
    feats = pr.model.encode_vision(visual)
    if readout == "kmeans":
        positions, masks = region_grids(visual)
        return pr.model.object_tokenizer.pool(feats["crop"], positions, masks)[0].float().mean(0).numpy()
    return pr.model.object_features(visual, feats).float().mean(0).numpy()


def tower_classifier(pr: PixelRefer, tower: Path | None) -> RegionClassifier:
    """The pretraining's classifier: its tower and box position embedding put into ``pr.model``, its heads loaded."""
    from safetensors.torch import load_file

    if tower is None:
        raise SystemExit("--readout fact-head needs --tower (the vision pretraining folder)")
    load_vision_weights(pr.model, tower)
    heads = load_file(tower / HEAD_FILE)
    classifier = RegionClassifier(pr.model, heads["weight"].shape[0], facts=True)
    classifier.head.load_state_dict({"weight": heads["weight"], "bias": heads["bias"]})
    classifier.facts.load_state_dict({k: heads[FACT_HEAD_PREFIX + k] for k in ("weight", "bias")})
    return classifier


def regions(pr: PixelRefer, classifier: RegionClassifier, readout: str, root: Path, split: str, n: int):
    samples = [s for s in json.loads((root / f"{split}.json").read_text())
               if s["meta"]["media"] == "image" and s["meta"]["targets"][0]["part"] is None]
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
            features.append(readout_vector(pr, classifier, readout, collate_visual([encoded])))
        facts.append({"colour": obj["colour"], "pattern": obj["pattern"], "size": obj["size"],
                      "position": world.position_phrase(*centre), "category": obj["category"]})
    return np.stack(features), facts


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="nano")
    ap.add_argument("--data", type=Path, default=Path("runs/synth-nano"))
    ap.add_argument("--readout", choices=("pooled", "kmeans", "llm-input", "fact-head"), default="pooled")
    ap.add_argument("--tower", type=Path, default=None, help="vision pretraining folder (--readout fact-head)")
    ap.add_argument("--fit", type=int, default=1500)
    ap.add_argument("--score", type=int, default=400)
    ap.add_argument("--score-split", default="heldout", help="split scored (heldout: unseen combinations; val: seen)")
    ap.add_argument("--out", type=Path, default=None, help="JSON of the rows (default: benchmarks/results/...)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = args.out or Path(__file__).parent / "results" / f"probe_tower_attributes_{Path(args.model).name}{'' if args.readout == 'pooled' else '_' + args.readout}.json"
    pr = PixelRefer.from_pretrained(args.model, device="cpu", dtype="float32", segmenter=None)
    classifier = tower_classifier(pr, args.tower) if args.readout == "fact-head" else RegionClassifier(pr.model, 1)
    classifier.eval()
    x_fit, y_fit = regions(pr, classifier, args.readout, args.data, "train", args.fit)
    x_score, y_score = regions(pr, classifier, args.readout, args.data, args.score_split, args.score)
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
