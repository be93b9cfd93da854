"""Does a readout re-learn the held-out colour exclusion, and does mixing off-palette examples into its data stop it?

A trained model's vision tower stays fixed (default: the bundled nano); a linear readout (the stand-in for the LLM,
which reads the same region features) is fitted on mean region features of rendered scenes and scored on the
held-out (category, colour) combinations in their named colours and on unseen scenes of the seen combinations.
Readout data variants, same number of regions: ``palette`` (the instruction data's colours: each category lacks its
held-out colour), ``mixed`` (half of it replaced by objects in random off-palette colours, as the vision
pretraining paints them), ``off_palette`` (only those).

    nice python benchmarks/probe_readout_mixing.py --regions 1536 --json runs/probe-readout.json
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import torch
from common import save_rows

from pixelrefer.recipes.config import load_recipe_config
from pixelrefer.recipes.regions import SyntheticRegions, collate_regions
from pixelrefer.recipes.vision import RegionClassifier, crop_spec
from pixelrefer.synth import world
from pixelrefer.synth.scenes import MIN_PART_PIXELS
from pixelrefer.train.run import build_model, load_tokenizer

BUNDLED = "src/pixelrefer/assets/pixelrefer-nano"
STREAMS = {"palette": 10, "off_palette": 11, "seen_eval": 12, "heldout_eval": 13}  # apart from the recipe's 0..2


@torch.no_grad()
def features(classifier: RegionClassifier, regions: SyntheticRegions, count: int, batch: int = 64
             ) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for items in itertools.islice((items for items, _ in regions.batches(batch)), (count + batch - 1) // batch):
        visual, target, *_ = collate_regions(items)
        xs.append(torch.stack([t.mean(0) for t in classifier.region_tokens(visual)]))
        ys.append(target)
    return torch.cat(xs)[:count], torch.cat(ys)[:count]


def fit(x: torch.Tensor, y: torch.Tensor, num_labels: int, steps: int = 400) -> torch.nn.Linear:
    torch.manual_seed(0)
    mean, std = x.mean(0), x.std(0) + 1e-6
    head = torch.nn.Linear(x.shape[1], num_labels)
    opt = torch.optim.Adam(head.parameters(), lr=0.05, weight_decay=1e-4)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(head((x - mean) / std), y).backward()
        opt.step()
    head.norm = (mean, std)  # type: ignore[attr-defined]
    return head


def score(head: torch.nn.Linear, x: torch.Tensor, y: torch.Tensor, shapes: set[int]) -> dict[str, float]:
    mean, std = head.norm  # type: ignore[attr-defined]
    pred = head((x - mean) / std).argmax(1)
    plain = torch.tensor([int(t) in shapes for t in y])
    return {"all": float((pred == y).float().mean()), "plain_shapes": float((pred == y)[plain].float().mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=BUNDLED)
    parser.add_argument("--regions", type=int, default=1536, help="readout training regions per variant")
    parser.add_argument("--eval-regions", type=int, default=768)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = load_recipe_config("nano", [f"model.init_from={args.model}", f"data.tokenizer={args.model}"])
    model = build_model(cfg, load_tokenizer(cfg)).eval()
    labels = world.category_labels()
    classifier = RegionClassifier(model, len(labels)).eval()
    spec, shapes = crop_spec(model), {labels.index(s) for s in world.SHAPES}

    def regions(name: str, **kw: object) -> SyntheticRegions:
        return SyntheticRegions(spec, labels, 0, STREAMS[name], 224, MIN_PART_PIXELS, **kw)  # type: ignore[arg-type]

    n = args.regions
    pal = features(classifier, regions("palette", palette=True), n)
    off = features(classifier, regions("off_palette", palette=False), n)
    evals = {"seen": features(classifier, regions("seen_eval", palette=True), args.eval_regions),
             "heldout": features(classifier, regions("heldout_eval", palette=True, held_out="require"),
                                 args.eval_regions)}
    half = n // 2
    data = {"palette": pal, "mixed": (torch.cat([pal[0][:half], off[0][:half]]), torch.cat([pal[1][:half], off[1][:half]])),
            "off_palette": off}
    rows = []
    for name, (x, y) in data.items():
        head = fit(x, y, len(labels))
        row = {"readout_data": name, **{k: score(head, *v, shapes) for k, v in evals.items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("| readout data | seen all | held-out all | seen plain shapes | held-out plain shapes |")
    print("|---|---|---|---|---|")
    for r in rows:
        s, h = r["seen"], r["heldout"]
        print(f"| {r['readout_data']} | {100 * s['all']:.1f} | {100 * h['all']:.1f} | {100 * s['plain_shapes']:.1f} | "
              f"{100 * h['plain_shapes']:.1f} |")
    save_rows(args.json, args, rows)


if __name__ == "__main__":
    main()
