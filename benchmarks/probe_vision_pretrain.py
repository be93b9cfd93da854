"""Compare vision-pretraining variants on one short budget: same seed, same rendered scenes, same steps.

Each variant is a list of ``key=value`` overrides of the recipe config (``vision_pretrain.*``, ``model.overrides.*``);
a fresh tower is pretrained for ``--steps`` steps and its label head is scored on unseen scenes (``val``) and on the
held-out (category, colour) combinations in their named colours (``heldout``), overall, on the ten plain shapes
(the bundled tower's weak point) and per object size. Wall time is reported too (the CPU is shared: compare it only
between runs of one invocation).

    nice python benchmarks/probe_vision_pretrain.py --steps 200 --config nano \\
        --variant base= --variant cells=vision_pretrain.cell_loss=1.0 --json runs/probe.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from common import save_rows

from pixelrefer.recipes.config import load_recipe_config
from pixelrefer.recipes.vision import pretrain_vision
from pixelrefer.synth import world
from pixelrefer.train.run import build_model, load_tokenizer


@torch.no_grad()
def plain_shape_accuracy(classifier: torch.nn.Module, batches: list, labels: tuple[str, ...]) -> float:
    shapes = {labels.index(s) for s in world.SHAPES}
    classifier.eval()
    hits = []
    for visual, target, _ in batches:
        pred = classifier(visual).argmax(1)
        hits += [bool(p == t) for p, t in zip(pred.tolist(), target.tolist()) if t in shapes]
    return sum(hits) / max(len(hits), 1)


def run(name: str, overrides: list[str], config: str, steps: int, out: Path) -> dict:
    cfg = load_recipe_config(config, ["model.vision_init=null", f"vision_pretrain.steps={steps}",
                                      f"vision_pretrain.eval_every={steps}", "progress=false", *overrides])
    assert cfg.vision_pretrain is not None
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, load_tokenizer(cfg))
    start = time.perf_counter()
    trainer = pretrain_vision(model, cfg.vision_pretrain, out / name, torch.device("cpu"), progress=False)
    seconds = time.perf_counter() - start
    evals, labels = trainer.objective.evals, world.category_labels()
    row = {"variant": name, "overrides": overrides, "steps": steps, "seconds": round(seconds, 1),
           "params": sum(p.numel() for p in model.vision_model.parameters())}
    per_size = trainer.objective.evaluate(trainer)["per_size"]
    for split, batches in evals.items():
        row[split] = {**per_size[split], "plain_shapes": plain_shape_accuracy(trainer.model, batches, labels)}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--config", default="nano")
    parser.add_argument("--variant", action="append", required=True, help="NAME=key=value,key=value (or NAME=)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/probe-vision"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for spec in args.variant:
        name, _, rest = spec.partition("=")
        rows.append(run(name, [o for o in rest.split(",") if o], args.config, args.steps, args.out))
        print(json.dumps(rows[-1]), flush=True)
    print("| variant | s | val all | val plain shapes | heldout all | heldout plain shapes | heldout tiny |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        v, h = r["val"], r["heldout"]
        print(f"| {r['variant']} | {r['seconds']:.0f} | {100 * v['all']:.1f} | {100 * v['plain_shapes']:.1f} | "
              f"{100 * h['all']:.1f} | {100 * h['plain_shapes']:.1f} | {100 * h.get('tiny', float('nan')):.1f} |")
    save_rows(args.json, args, rows)


if __name__ == "__main__":
    main()
